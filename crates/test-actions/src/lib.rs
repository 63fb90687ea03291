//! Test actions for Hero's black-box tests; linked into `hero-testbed`, never into `hero`.
//!
//! - `panicTest`: panics (the host must answer an internal error and live on).
//! - `versionTest` v1 and v2: tell which version ran.
//! - `validatorTest`: `number` required, formatted from a string, validated positive.
//! - `webBlockedTest`: refused to `web` connections.
//! - `errorTest`: always fails with an [`ActionError`].
//! - `echoTest`: returns the params it received (after scrubbing and defaults).
//! - `hangTest`: never answers (the host's call deadline must).
//! - `cacheSetTest`, `cacheGetTest`, `cacheDeleteTest`: one cache operation each.
//! - [`middleware`]: middleware of every kind and the `mw*` actions that show it (the
//!   same file is compiled into the dynamic test fixture).
//! - [`routes`]: `rt*` actions declaring HTTP routes (compiled into the fixture too).

mod cache;
pub mod middleware;
mod rooms;
pub mod routes;

use plugin_api::{
    Action, ActionDefinition, ActionError, ActionResult, Context, Input, Value, json,
};

/// Panics on every call.
#[derive(Debug, Default)]
pub struct PanicTest;

impl Action for PanicTest {
    fn definition(&self) -> ActionDefinition {
        ActionDefinition::new("panicTest").description("I panic, to test panic isolation")
    }

    async fn run(&self, _ctx: Context) -> ActionResult {
        panic!("panicTest panicked on purpose")
    }
}

/// One action name with two versions.
#[derive(Debug)]
pub struct VersionTest(pub u32);

impl Action for VersionTest {
    fn definition(&self) -> ActionDefinition {
        ActionDefinition::new("versionTest")
            .description("I report my version")
            .version(self.0)
    }

    async fn run(&self, _ctx: Context) -> ActionResult {
        Ok(json!({ "versionTest": self.0 }))
    }
}

/// A required input with a formatter and a validator.
#[derive(Debug, Default)]
pub struct ValidatorTest;

fn to_integer(v: Value) -> Value {
    match &v {
        Value::String(s) => s.trim().parse::<i64>().map_or(v, Value::from),
        _ => v,
    }
}

fn positive(v: &Value) -> Result<(), String> {
    match v.as_i64() {
        Some(n) if n > 0 => Ok(()),
        _ => Err("number must be a positive integer".into()),
    }
}

impl Action for ValidatorTest {
    fn definition(&self) -> ActionDefinition {
        ActionDefinition::new("validatorTest")
            .description("I double a positive integer")
            .input(
                Input::required("number")
                    .formatter(to_integer)
                    .validator(positive),
            )
    }

    async fn run(&self, ctx: Context) -> ActionResult {
        let n = ctx
            .param("number")
            .and_then(Value::as_i64)
            .unwrap_or_default();
        Ok(json!({ "number": n, "doubled": n.saturating_mul(2) }))
    }
}

/// Refused to `web` connections.
#[derive(Debug, Default)]
pub struct WebBlockedTest;

impl Action for WebBlockedTest {
    fn definition(&self) -> ActionDefinition {
        ActionDefinition::new("webBlockedTest")
            .description("I cannot be called over HTTP")
            .block_connection_type("web")
    }

    async fn run(&self, _ctx: Context) -> ActionResult {
        Ok(json!({ "reached": true }))
    }
}

/// Always fails with an action error.
#[derive(Debug, Default)]
pub struct ErrorTest;

impl Action for ErrorTest {
    fn definition(&self) -> ActionDefinition {
        ActionDefinition::new("errorTest").description("I always fail")
    }

    async fn run(&self, _ctx: Context) -> ActionResult {
        Err(ActionError::new("errorTest always fails"))
    }
}

/// Returns the params it was called with.
#[derive(Debug, Default)]
pub struct EchoTest;

impl Action for EchoTest {
    fn definition(&self) -> ActionDefinition {
        ActionDefinition::new("echoTest")
            .description("I return the params I received")
            .input(Input::optional("kept"))
            .input(Input::optional("withDefault").default("fallback"))
            .input(Input::optional("payload"))
    }

    async fn run(&self, ctx: Context) -> ActionResult {
        Ok(json!({ "echo": ctx.params(), "connectionType": ctx.connection().kind }))
    }
}

/// Never answers: only the host's deadline ends the call.
#[derive(Debug, Default)]
pub struct HangTest;

impl Action for HangTest {
    fn definition(&self) -> ActionDefinition {
        ActionDefinition::new("hangTest").description("I never answer, to test call deadlines")
    }

    async fn run(&self, _ctx: Context) -> ActionResult {
        std::future::pending().await
    }
}

plugin_api::register_action!(
    HangTest,
    PanicTest,
    VersionTest(1),
    VersionTest(2),
    ValidatorTest,
    WebBlockedTest,
    ErrorTest,
    EchoTest,
);

/// Keeps this crate's registrations in a binary that names nothing else of it.
#[inline(never)]
pub fn link() {
    std::hint::black_box(&NAMES);
    cache::link();
    middleware::link();
    rooms::link();
    routes::link();
}

static NAMES: [&str; 6] = [
    "panicTest",
    "versionTest",
    "validatorTest",
    "webBlockedTest",
    "errorTest",
    "echoTest",
];
