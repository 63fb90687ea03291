//! Middleware test source shared by two builds: linked into `hero-testbed` through this
//! crate, and compiled into the dynamic fixture `tests/fixtures/test-plugin` with
//! `#[path]`, so the black-box tests prove the same source behaves alike both ways.
//! Everything registers with `register_action!`/`register_middleware!`, which
//! `export_plugin!` exports from a `cdylib` as well.
//!
//! Every effect is confined to names starting with `mw` (actions, rooms), so the other
//! tests of both binaries see no difference:
//!
//! - action middleware `mwGuard` (global, priority 1: refuses a call with a `deny`
//!   param), `mwLocal` (priority 5, only for actions naming it: upper-cases `word`),
//!   `mwTrace` (global, 10) and `mwSecond` (global, 20): each pre-processor appends its
//!   name to the param `mwTrail`, each post-processor to the result's `postTrail`;
//!   `mwTrace` sets the attribute `mwSeen` and turns `mwFail`'s error into a result,
//!   `mwSecond` redacts a result's `secret`; `mwBoom` (named by `mwBoomAction`) panics;
//! - connection middleware `mwConnections`: `create` sets the attribute `mwCreated`
//!   and counts `mwCreated:<type>` in process memory, `destroy` counts `mwDestroyed:<type>`;
//! - chat middleware `mwChat`: refuses joining a room starting with `mwVip` without the
//!   attribute `mwVip`, refuses leaving `mwSticky`, and rewrites `darn` to `****` in
//!   what is said in rooms starting with `mw`;
//! - actions `mwEcho` (names `mwLocal`; counts its runs in `mwEchoRuns`), `mwPlain`,
//!   `mwFail`, `mwBoomAction`, `mwBecomeVip`, `mwCounts` (reads the counters).

use plugin_api::middleware::{
    ActionMiddleware, ChatContext, ChatMiddleware, ConnectionContext, ConnectionMiddleware,
    MiddlewareDefinition, PostContext, PreContext,
};
use plugin_api::{
    Action, ActionDefinition, ActionError, ActionResult, Context, Input, Value, json,
};

fn ours(action: &str) -> bool {
    action.starts_with("mw")
}

fn push(list: Option<&mut Value>, name: &str) -> Option<Value> {
    match list {
        Some(Value::Array(items)) => {
            items.push(json!(name));
            None
        }
        _ => Some(json!([name])),
    }
}

/// Appends `name` to the `mwTrail` param.
fn trail(ctx: &mut PreContext, name: &str) {
    if let Some(fresh) = push(ctx.params_mut().get_mut("mwTrail"), name) {
        ctx.params_mut().insert("mwTrail".into(), fresh);
    }
}

/// Appends `name` to the result's `postTrail`.
fn post_trail(ctx: &mut PostContext, name: &str) {
    if let Ok(Value::Object(fields)) = ctx.result_mut()
        && let Some(fresh) = push(fields.get_mut("postTrail"), name)
    {
        fields.insert("postTrail".into(), fresh);
    }
}

/// Refuses `mw*` calls that carry a `deny` param.
#[derive(Debug)]
pub struct MwGuard;

impl ActionMiddleware for MwGuard {
    fn definition(&self) -> MiddlewareDefinition {
        MiddlewareDefinition::new("mwGuard")
            .priority(1)
            .global(true)
    }
    async fn pre(&self, ctx: &mut PreContext) -> Result<(), ActionError> {
        if ours(ctx.action()) && ctx.param("deny").is_some() {
            return Err(ActionError::new("denied by mwGuard"));
        }
        Ok(())
    }
}

/// Per-action: upper-cases `word`.
#[derive(Debug)]
pub struct MwLocal;

impl ActionMiddleware for MwLocal {
    fn definition(&self) -> MiddlewareDefinition {
        MiddlewareDefinition::new("mwLocal").priority(5)
    }
    async fn pre(&self, ctx: &mut PreContext) -> Result<(), ActionError> {
        trail(ctx, "mwLocal");
        if let Some(Value::String(word)) = ctx.params_mut().get_mut("word") {
            *word = word.to_uppercase();
        }
        Ok(())
    }
    async fn post(&self, ctx: &mut PostContext) -> Result<(), ActionError> {
        post_trail(ctx, "mwLocal");
        Ok(())
    }
}

/// Global, priority 10: traces, sets `mwSeen`, recovers `mwFail`.
#[derive(Debug)]
pub struct MwTrace;

impl ActionMiddleware for MwTrace {
    fn definition(&self) -> MiddlewareDefinition {
        MiddlewareDefinition::new("mwTrace")
            .priority(10)
            .global(true)
    }
    async fn pre(&self, ctx: &mut PreContext) -> Result<(), ActionError> {
        if ours(ctx.action()) {
            trail(ctx, "mwTrace");
            ctx.set("mwSeen", true).await?;
        }
        Ok(())
    }
    async fn post(&self, ctx: &mut PostContext) -> Result<(), ActionError> {
        if ctx.action() == "mwFail"
            && let Err(err) = ctx.result()
        {
            let seen = err.message.clone();
            ctx.set_result(Ok(json!({ "recovered": seen })));
        }
        if ours(ctx.action()) {
            post_trail(ctx, "mwTrace");
        }
        Ok(())
    }
}

/// Global, priority 20: traces, redacts `secret`.
#[derive(Debug)]
pub struct MwSecond;

impl ActionMiddleware for MwSecond {
    fn definition(&self) -> MiddlewareDefinition {
        MiddlewareDefinition::new("mwSecond")
            .priority(20)
            .global(true)
    }
    async fn pre(&self, ctx: &mut PreContext) -> Result<(), ActionError> {
        if ours(ctx.action()) {
            trail(ctx, "mwSecond");
        }
        Ok(())
    }
    async fn post(&self, ctx: &mut PostContext) -> Result<(), ActionError> {
        if !ours(ctx.action()) {
            return Ok(());
        }
        post_trail(ctx, "mwSecond");
        if let Ok(Value::Object(fields)) = ctx.result_mut()
            && fields.contains_key("secret")
        {
            fields.insert("secret".into(), json!("[redacted]"));
        }
        Ok(())
    }
}

/// Per-action: panics.
#[derive(Debug)]
pub struct MwBoom;

impl ActionMiddleware for MwBoom {
    fn definition(&self) -> MiddlewareDefinition {
        MiddlewareDefinition::new("mwBoom")
    }
    #[allow(clippy::panic)]
    async fn pre(&self, _ctx: &mut PreContext) -> Result<(), ActionError> {
        panic!("mwBoom panicked on purpose")
    }
}

/// Connection counts of this process, by key. In memory rather than in the cache:
/// the hooks run for every request of the testbed, and must not make HTTP wait on the
/// cache's backend (Redis, in the cluster tests) while it is away.
static CONNECTION_COUNTS: std::sync::Mutex<std::collections::BTreeMap<String, u64>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

fn count(key: &str) {
    let mut counts = CONNECTION_COUNTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    *counts.entry(key.to_owned()).or_default() += 1;
}

fn counted(key: &str) -> u64 {
    CONNECTION_COUNTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(key)
        .copied()
        .unwrap_or(0)
}

/// Counts connections created and destroyed, by type.
#[derive(Debug)]
pub struct MwConnections;

impl ConnectionMiddleware for MwConnections {
    fn definition(&self) -> MiddlewareDefinition {
        MiddlewareDefinition::new("mwConnections")
    }
    async fn create(&self, ctx: &mut ConnectionContext) -> Result<(), ActionError> {
        ctx.set("mwCreated", true).await?;
        count(&format!("mwCreated:{}", ctx.connection().kind));
        Ok(())
    }
    async fn destroy(&self, ctx: &mut ConnectionContext) -> Result<(), ActionError> {
        count(&format!("mwDestroyed:{}", ctx.connection().kind));
        Ok(())
    }
}

/// VIP rooms, a sticky room, and a word filter.
#[derive(Debug)]
pub struct MwChat;

impl ChatMiddleware for MwChat {
    fn definition(&self) -> MiddlewareDefinition {
        MiddlewareDefinition::new("mwChat")
    }
    async fn join(&self, ctx: &mut ChatContext) -> Result<(), ActionError> {
        let vip = ctx.connection().attributes.get("mwVip") == Some(&json!(true));
        if ctx.room().starts_with("mwVip") && !vip {
            return Err(ActionError::new("mwChat: VIPs only"));
        }
        Ok(())
    }
    async fn leave(&self, ctx: &mut ChatContext) -> Result<(), ActionError> {
        if ctx.room() == "mwSticky" {
            return Err(ActionError::new("mwChat: nobody leaves mwSticky"));
        }
        Ok(())
    }
    async fn say(&self, ctx: &mut ChatContext) -> Result<(), ActionError> {
        if ctx.room().starts_with("mw")
            && let Some(text) = ctx.message().and_then(Value::as_str)
        {
            let clean = text.replace("darn", "****");
            ctx.set_message(clean);
        }
        Ok(())
    }
}

/// Returns what the middleware did to its params and connection.
#[derive(Debug)]
pub struct MwEcho;

impl Action for MwEcho {
    fn definition(&self) -> ActionDefinition {
        ActionDefinition::new("mwEcho")
            .description("I show what middleware did")
            .middleware("mwLocal")
            .input(Input::optional("word"))
            .input(Input::optional("mwTrail"))
    }
    async fn run(&self, ctx: Context) -> ActionResult {
        let runs = ctx
            .cache()
            .get("mwEchoRuns")
            .await?
            .and_then(|v| v.as_u64())
            .unwrap_or(0)
            + 1;
        ctx.cache().set("mwEchoRuns", runs, None).await?;
        let attributes = &ctx.connection().attributes;
        Ok(json!({
            "word": ctx.param("word"),
            "mwTrail": ctx.param("mwTrail"),
            "mwSeen": attributes.get("mwSeen"),
            "mwCreated": attributes.get("mwCreated"),
            "runs": runs,
            "secret": "plain",
        }))
    }
}

/// Names no middleware of its own.
#[derive(Debug)]
pub struct MwPlain;

impl Action for MwPlain {
    fn definition(&self) -> ActionDefinition {
        ActionDefinition::new("mwPlain").input(Input::optional("mwTrail"))
    }
    async fn run(&self, ctx: Context) -> ActionResult {
        Ok(json!({ "mwTrail": ctx.param("mwTrail") }))
    }
}

/// Fails (a post-processor recovers it).
#[derive(Debug)]
pub struct MwFail;

impl Action for MwFail {
    fn definition(&self) -> ActionDefinition {
        ActionDefinition::new("mwFail")
    }
    async fn run(&self, _ctx: Context) -> ActionResult {
        Err(ActionError::new("mwFail failed"))
    }
}

/// Names the panicking middleware.
#[derive(Debug)]
pub struct MwBoomAction;

impl Action for MwBoomAction {
    fn definition(&self) -> ActionDefinition {
        ActionDefinition::new("mwBoomAction").middleware("mwBoom")
    }
    async fn run(&self, _ctx: Context) -> ActionResult {
        Ok(json!({ "reached": true }))
    }
}

/// Sets the attribute `mwVip`.
#[derive(Debug)]
pub struct MwBecomeVip;

impl Action for MwBecomeVip {
    fn definition(&self) -> ActionDefinition {
        ActionDefinition::new("mwBecomeVip")
    }
    async fn run(&self, ctx: Context) -> ActionResult {
        ctx.set("mwVip", true).await?;
        Ok(json!({ "vip": true }))
    }
}

/// The counters the middleware keeps.
#[derive(Debug)]
pub struct MwCounts;

impl Action for MwCounts {
    fn definition(&self) -> ActionDefinition {
        ActionDefinition::new("mwCounts")
    }
    async fn run(&self, ctx: Context) -> ActionResult {
        let mut out = plugin_api::Map::new();
        for key in [
            "mwCreated:web",
            "mwDestroyed:web",
            "mwCreated:webSocket",
            "mwDestroyed:webSocket",
        ] {
            out.insert(key.into(), counted(key).into());
        }
        let runs = ctx
            .cache()
            .get("mwEchoRuns")
            .await?
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        out.insert("mwEchoRuns".into(), runs.into());
        Ok(Value::Object(out))
    }
}

plugin_api::register_action!(MwEcho, MwPlain, MwFail, MwBoomAction, MwBecomeVip, MwCounts);

plugin_api::register_middleware!(
    action(MwGuard),
    action(MwLocal),
    action(MwTrace),
    action(MwSecond),
    action(MwBoom),
    connection(MwConnections),
    chat(MwChat),
);

/// Keeps these registrations in a binary that names nothing else of this file.
#[allow(dead_code)] // unused where the file is compiled into the dynamic fixture
#[inline(never)]
pub(crate) fn link() {
    std::hint::black_box(MwEcho);
}
