//! Middleware the host runs: a registry by origin, and the runners of each kind's chain.
//!
//! Like actions, middleware comes from the binary (`inventory`, [`Origin::Static`]) or
//! from a plugin file ([`Origin::Dynamic`]), behind one object-safe trait per kind that
//! both implement (the dynamic ones in `crate::plugins`). Readers take a snapshot
//! (arc-swap) with each kind's chain sorted once (priority, then name); a plugin reload
//! replaces one origin's middleware atomically, and a name taken by another origin (same
//! kind) refuses the whole file. The runners here are the semantics documented in
//! `plugin_api::middleware`: each hook is isolated with `catch_unwind`, so a panicking
//! middleware is an error reply (or a log line), never a dead host.

use std::collections::HashMap;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use arc_swap::ArcSwap;
use futures_util::FutureExt;
use plugin_api::middleware::{
    ActionMiddlewareHandler, ChatHook, ChatMiddlewareHandler, ConnectionMiddlewareHandler,
    HookResult, MiddlewareHandler, MiddlewareKind,
};
use plugin_api::{
    ActionDefinition, ActionError, ActionResult, BoxFuture, ChatContext, ConnectionContext,
    ConnectionInfo, HostServices, MiddlewareDefinition, Params, PostContext, PreContext, Value,
};

use super::registry::Origin;

/// An action middleware the host can call, linked in or loaded.
pub trait DynActionMiddleware: Send + Sync + fmt::Debug {
    /// Its definition.
    fn definition(&self) -> &MiddlewareDefinition;
    /// Runs the pre-processor.
    fn pre(&self, ctx: PreContext) -> BoxFuture<'static, HookResult<PreContext>>;
    /// Runs the post-processor.
    fn post(&self, ctx: PostContext) -> BoxFuture<'static, HookResult<PostContext>>;
    /// Itself, for an action that can run a chain in one step to recognise its own
    /// library's middleware ([`Invoke::invoke_chained`](super::Invoke::invoke_chained)).
    fn as_any(&self) -> &dyn std::any::Any;
}

/// A connection middleware the host can call, linked in or loaded.
pub trait DynConnectionMiddleware: Send + Sync + fmt::Debug {
    /// Its definition.
    fn definition(&self) -> &MiddlewareDefinition;
    /// Runs `create` (`true`) or `destroy` (`false`).
    fn run(
        &self,
        create: bool,
        ctx: ConnectionContext,
    ) -> BoxFuture<'static, HookResult<ConnectionContext>>;
    /// Itself (see [`DynActionMiddleware::as_any`]).
    fn as_any(&self) -> &dyn std::any::Any;
}

/// A chat middleware the host can call, linked in or loaded.
pub trait DynChatMiddleware: Send + Sync + fmt::Debug {
    /// Its definition.
    fn definition(&self) -> &MiddlewareDefinition;
    /// Runs one hook.
    fn run(&self, hook: ChatHook, ctx: ChatContext) -> BoxFuture<'static, HookResult<ChatContext>>;
}

impl DynActionMiddleware for ActionMiddlewareHandler {
    fn definition(&self) -> &MiddlewareDefinition {
        ActionMiddlewareHandler::definition(self)
    }
    fn pre(&self, ctx: PreContext) -> BoxFuture<'static, HookResult<PreContext>> {
        ActionMiddlewareHandler::pre(self, ctx)
    }
    fn post(&self, ctx: PostContext) -> BoxFuture<'static, HookResult<PostContext>> {
        ActionMiddlewareHandler::post(self, ctx)
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl DynConnectionMiddleware for ConnectionMiddlewareHandler {
    fn definition(&self) -> &MiddlewareDefinition {
        ConnectionMiddlewareHandler::definition(self)
    }
    fn run(
        &self,
        create: bool,
        ctx: ConnectionContext,
    ) -> BoxFuture<'static, HookResult<ConnectionContext>> {
        if create {
            self.create(ctx)
        } else {
            self.destroy(ctx)
        }
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl DynChatMiddleware for ChatMiddlewareHandler {
    fn definition(&self) -> &MiddlewareDefinition {
        ChatMiddlewareHandler::definition(self)
    }
    fn run(&self, hook: ChatHook, ctx: ChatContext) -> BoxFuture<'static, HookResult<ChatContext>> {
        ChatMiddlewareHandler::run(self, hook, ctx)
    }
}

/// One middleware of any kind, as the registry stores it.
#[derive(Debug, Clone)]
pub enum Hook {
    /// Action middleware.
    Action(Arc<dyn DynActionMiddleware>),
    /// Connection middleware.
    Connection(Arc<dyn DynConnectionMiddleware>),
    /// Chat middleware.
    Chat(Arc<dyn DynChatMiddleware>),
}

impl Hook {
    /// Its kind.
    pub fn kind(&self) -> MiddlewareKind {
        match self {
            Hook::Action(_) => MiddlewareKind::Action,
            Hook::Connection(_) => MiddlewareKind::Connection,
            Hook::Chat(_) => MiddlewareKind::Chat,
        }
    }

    /// Its definition.
    pub fn definition(&self) -> &MiddlewareDefinition {
        match self {
            Hook::Action(h) => h.definition(),
            Hook::Connection(h) => h.definition(),
            Hook::Chat(h) => h.definition(),
        }
    }
}

impl From<MiddlewareHandler> for Hook {
    fn from(handler: MiddlewareHandler) -> Self {
        match handler {
            MiddlewareHandler::Action(h) => Hook::Action(Arc::new(h)),
            MiddlewareHandler::Connection(h) => Hook::Connection(Arc::new(h)),
            MiddlewareHandler::Chat(h) => Hook::Chat(Arc::new(h)),
        }
    }
}

/// Two sources define a middleware of the same kind and name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} middleware {name} from {new} clashes with the one from {existing}")]
pub struct MiddlewareClash {
    /// Its kind.
    pub kind: MiddlewareKind,
    /// Its name.
    pub name: String,
    /// Origin of the one registered already.
    pub existing: Origin,
    /// Origin of the one refused.
    pub new: Origin,
}

/// Why an action's middleware chain cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("action {action} names middleware {middleware}, which is not registered")]
pub struct MissingMiddleware {
    /// The action.
    pub action: String,
    /// The name it gave.
    pub middleware: String,
}

fn by_order(a: &MiddlewareDefinition, b: &MiddlewareDefinition) -> std::cmp::Ordering {
    (a.priority, &a.name).cmp(&(b.priority, &b.name))
}

/// One immutable state of the registry, with each kind's chain sorted.
#[derive(Debug, Default)]
struct Snapshot {
    entries: Vec<(Origin, Hook)>,
    global_actions: Vec<Arc<dyn DynActionMiddleware>>,
    actions: HashMap<String, Arc<dyn DynActionMiddleware>>,
    connection: Vec<Arc<dyn DynConnectionMiddleware>>,
    chat: Vec<Arc<dyn DynChatMiddleware>>,
}

impl Snapshot {
    fn build(entries: Vec<(Origin, Hook)>) -> Self {
        let mut s = Snapshot::default();
        for (_, hook) in &entries {
            match hook {
                Hook::Action(h) => {
                    if h.definition().global {
                        s.global_actions.push(Arc::clone(h));
                    }
                    s.actions.insert(h.definition().name.clone(), Arc::clone(h));
                }
                Hook::Connection(h) => s.connection.push(Arc::clone(h)),
                Hook::Chat(h) => s.chat.push(Arc::clone(h)),
            }
        }
        s.global_actions
            .sort_by(|a, b| by_order(a.definition(), b.definition()));
        s.connection
            .sort_by(|a, b| by_order(a.definition(), b.definition()));
        s.chat
            .sort_by(|a, b| by_order(a.definition(), b.definition()));
        s.entries = entries;
        s
    }
}

/// Every middleware, by origin; readers never block, writers replace a snapshot.
#[derive(Debug, Default)]
pub struct MiddlewareRegistry {
    current: ArcSwap<Snapshot>,
}

/// Logs a caught panic of a hook and answers what the client sees of it.
fn panicked(kind: &str, name: &str, panic: &(dyn std::any::Any + Send)) -> ActionError {
    let reason = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    tracing::error!(middleware = %name, %reason, "{kind} middleware {name} panicked");
    ActionError::internal()
}

impl MiddlewareRegistry {
    /// A registry of every statically linked middleware.
    ///
    /// # Errors
    ///
    /// Two static middleware of one kind share a name.
    pub fn with_static_middleware() -> Result<Self, MiddlewareClash> {
        let registry = Self::default();
        let hooks = plugin_api::middleware::registered_middleware()
            .map(|r| Hook::from(r.handler()))
            .collect();
        registry.replace(&Origin::Static, hooks)?;
        Ok(registry)
    }

    /// Whether replacing `origin`'s middleware with `hooks` would clash (with another
    /// origin's, or within `hooks`).
    ///
    /// # Errors
    ///
    /// The first clash.
    pub fn check(&self, origin: &Origin, hooks: &[Hook]) -> Result<(), MiddlewareClash> {
        let current = self.current.load();
        let mut seen: Vec<(MiddlewareKind, &str, &Origin)> = current
            .entries
            .iter()
            .filter(|(o, _)| o != origin)
            .map(|(o, h)| (h.kind(), h.definition().name.as_str(), o))
            .collect();
        for hook in hooks {
            let (kind, name) = (hook.kind(), hook.definition().name.as_str());
            if let Some((_, _, existing)) = seen.iter().find(|(k, n, _)| *k == kind && *n == name) {
                return Err(MiddlewareClash {
                    kind,
                    name: name.to_owned(),
                    existing: (*existing).clone(),
                    new: origin.clone(),
                });
            }
            seen.push((kind, name, origin));
        }
        Ok(())
    }

    /// Replaces every middleware from `origin` with `hooks`, atomically.
    ///
    /// # Errors
    ///
    /// A clash; nothing changes then.
    pub fn replace(&self, origin: &Origin, hooks: Vec<Hook>) -> Result<(), MiddlewareClash> {
        let mut result = Ok(());
        self.current.rcu(|current| {
            result = Ok(());
            let mut entries: Vec<(Origin, Hook)> = current
                .entries
                .iter()
                .filter(|(o, _)| o != origin)
                .cloned()
                .collect();
            for hook in &hooks {
                let (kind, name) = (hook.kind(), &hook.definition().name);
                if let Some((existing, _)) = entries
                    .iter()
                    .find(|(_, h)| h.kind() == kind && &h.definition().name == name)
                {
                    result = Err(MiddlewareClash {
                        kind,
                        name: name.clone(),
                        existing: existing.clone(),
                        new: origin.clone(),
                    });
                    return Arc::clone(current);
                }
                entries.push((origin.clone(), hook.clone()));
            }
            Arc::new(Snapshot::build(entries))
        });
        result
    }

    /// Removes every middleware from `origin`.
    pub fn remove(&self, origin: &Origin) {
        // Replacing with nothing cannot clash.
        let _ = self.replace(origin, Vec::new());
    }

    /// Every middleware: kind, definition, origin (sorted by kind, then run order).
    pub fn list(&self) -> Vec<(MiddlewareKind, MiddlewareDefinition, Origin)> {
        let mut all: Vec<_> = self
            .current
            .load()
            .entries
            .iter()
            .map(|(o, h)| (h.kind(), h.definition().clone(), o.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| by_order(&a.1, &b.1)));
        all
    }

    /// The action middleware of `definition`'s chain, in run order: the global ones and
    /// those it names, each once.
    ///
    /// # Errors
    ///
    /// It names one that is not registered (the call fails closed).
    pub fn action_chain(
        &self,
        definition: &ActionDefinition,
    ) -> Result<Vec<Arc<dyn DynActionMiddleware>>, MissingMiddleware> {
        let current = self.current.load();
        if current.global_actions.is_empty() && definition.middleware.is_empty() {
            return Ok(Vec::new());
        }
        let mut chain = current.global_actions.clone();
        for name in &definition.middleware {
            let Some(m) = current.actions.get(name) else {
                return Err(MissingMiddleware {
                    action: definition.name.clone(),
                    middleware: name.clone(),
                });
            };
            if !chain.iter().any(|c| &c.definition().name == name) {
                chain.push(Arc::clone(m));
            }
        }
        chain.sort_by(|a, b| by_order(a.definition(), b.definition()));
        Ok(chain)
    }

    /// Runs the pre-processors of `chain` in order: the params and connection as they
    /// left them, or the first refusal (the rest do not run).
    pub async fn run_pre(
        chain: &[Arc<dyn DynActionMiddleware>],
        action: &str,
        params: Params,
        connection: ConnectionInfo,
        services: &Arc<dyn HostServices>,
    ) -> Result<(Params, ConnectionInfo), (Params, ActionError)> {
        // Kept for the outcome, should a hook panic with the params inside.
        let original = params.clone();
        let mut ctx = PreContext::new(action, params, connection, Arc::clone(services));
        for m in chain {
            let name = &m.definition().name;
            match AssertUnwindSafe(m.pre(ctx)).catch_unwind().await {
                Ok((next, Ok(()))) => ctx = next,
                Ok((next, Err(err))) => {
                    tracing::debug!(middleware = %name, action, error = %err, "pre-processor refused the call");
                    return Err((next.into_parts().0, err));
                }
                Err(panic) => return Err((original, panicked("action", name, panic.as_ref()))),
            }
        }
        Ok(ctx.into_parts())
    }

    /// Runs the post-processors of `chain` in order on `result`; one that fails ends the
    /// chain with its error.
    pub async fn run_post(
        chain: &[Arc<dyn DynActionMiddleware>],
        action: &str,
        params: Params,
        connection: ConnectionInfo,
        result: ActionResult,
        services: &Arc<dyn HostServices>,
    ) -> ActionResult {
        let mut ctx = PostContext::new(action, params, connection, result, Arc::clone(services));
        for m in chain {
            let name = &m.definition().name;
            match AssertUnwindSafe(m.post(ctx)).catch_unwind().await {
                Ok((next, Ok(()))) => ctx = next,
                Ok((_, Err(err))) => return Err(err),
                Err(panic) => return Err(panicked("action", name, panic.as_ref())),
            }
        }
        ctx.into_result()
    }

    /// Whether any connection middleware is registered.
    pub fn has_connection_hooks(&self) -> bool {
        !self.current.load().connection.is_empty()
    }

    /// The connection middleware, in run order.
    pub fn connection_chain(&self) -> Vec<Arc<dyn DynConnectionMiddleware>> {
        self.current.load().connection.clone()
    }

    /// Runs every connection middleware's `create` (`true`) or `destroy` hook in order;
    /// returns the connection with the attributes they set. Failures are logged.
    pub async fn run_connection(
        &self,
        create: bool,
        connection: ConnectionInfo,
        services: &Arc<dyn HostServices>,
    ) -> ConnectionInfo {
        let chain = self.current.load().connection.clone();
        Self::run_connection_hooks(&chain, create, connection, services).await
    }

    /// Runs the `create` (`true`) or `destroy` hook of each of `chain` in order, as
    /// [`run_connection`](Self::run_connection) does with every registered one.
    pub async fn run_connection_hooks(
        chain: &[Arc<dyn DynConnectionMiddleware>],
        create: bool,
        connection: ConnectionInfo,
        services: &Arc<dyn HostServices>,
    ) -> ConnectionInfo {
        if chain.is_empty() {
            return connection;
        }
        let what = if create { "create" } else { "destroy" };
        let mut connection = connection;
        for m in chain {
            let name = &m.definition().name;
            let ctx = ConnectionContext::new(connection.clone(), Arc::clone(services));
            match AssertUnwindSafe(m.run(create, ctx)).catch_unwind().await {
                Ok((ctx, result)) => {
                    if let Err(err) = result {
                        tracing::warn!(middleware = %name, connection = %connection.id,
                            "connection middleware {name} failed in {what}: {}", err.message);
                    }
                    connection = ctx.into_connection();
                }
                Err(panic) => {
                    panicked("connection", name, panic.as_ref());
                }
            }
        }
        connection
    }

    /// Whether any chat middleware is registered.
    pub fn has_chat_hooks(&self) -> bool {
        !self.current.load().chat.is_empty()
    }

    /// Runs every chat middleware's `hook` in order: the message as they left it, or
    /// the first refusal.
    ///
    /// # Errors
    ///
    /// The refusal (a panic is an internal error).
    pub async fn run_chat(
        &self,
        hook: ChatHook,
        room: &str,
        connection: ConnectionInfo,
        message: Option<Value>,
        services: &Arc<dyn HostServices>,
    ) -> Result<Option<Value>, ActionError> {
        let chain = self.current.load().chat.clone();
        let mut ctx = ChatContext::new(room, connection, message, Arc::clone(services));
        for m in &chain {
            let name = &m.definition().name;
            match AssertUnwindSafe(m.run(hook, ctx)).catch_unwind().await {
                Ok((next, Ok(()))) => ctx = next,
                Ok((_, Err(err))) => return Err(err),
                Err(panic) => return Err(panicked("chat", name, panic.as_ref())),
            }
        }
        Ok(ctx.into_message())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use plugin_api::json;
    use plugin_api::middleware::{self, ActionMiddleware};

    struct Named(&'static str, i32, bool);
    impl ActionMiddleware for Named {
        fn definition(&self) -> MiddlewareDefinition {
            MiddlewareDefinition::new(self.0)
                .priority(self.1)
                .global(self.2)
        }
        async fn pre(&self, ctx: &mut PreContext) -> Result<(), ActionError> {
            let trail = ctx.params_mut().entry("trail").or_insert_with(|| json!([]));
            if let Value::Array(items) = trail {
                items.push(json!(self.0));
            }
            if self.0 == "refuse" {
                return Err(ActionError::new("refused"));
            }
            if self.0 == "boom" {
                panic!("boom");
            }
            Ok(())
        }
    }

    fn hook(name: &'static str, priority: i32, global: bool) -> Hook {
        Hook::from(middleware::action(Named(name, priority, global)))
    }

    fn services() -> Arc<dyn HostServices> {
        Arc::new(crate::services::Services::new(std::sync::Weak::new()))
    }

    #[tokio::test]
    async fn chains_run_global_and_named_once_in_priority_then_name_order() {
        let r = MiddlewareRegistry::default();
        r.replace(
            &Origin::Static,
            vec![
                hook("b", 5, true),
                hook("a", 5, true),
                hook("late", 50, false),
                hook("early", 1, false),
                hook("unused", 0, false),
            ],
        )
        .unwrap();
        let def = ActionDefinition::new("x")
            .middleware("late")
            .middleware("early")
            .middleware("a");
        let chain = r.action_chain(&def).unwrap();
        let names: Vec<_> = chain.iter().map(|m| m.definition().name.clone()).collect();
        assert_eq!(names, ["early", "a", "b", "late"]);
        let (params, _) = MiddlewareRegistry::run_pre(
            &chain,
            "x",
            Params::new(),
            Default::default(),
            &services(),
        )
        .await
        .unwrap();
        assert_eq!(params["trail"], json!(["early", "a", "b", "late"]));
        let missing = ActionDefinition::new("y").middleware("nope");
        assert_eq!(r.action_chain(&missing).unwrap_err().middleware, "nope");
    }

    #[tokio::test]
    async fn a_refusal_or_panic_stops_the_chain() {
        let r = MiddlewareRegistry::default();
        r.replace(
            &Origin::Static,
            vec![hook("refuse", 1, true), hook("after", 2, true)],
        )
        .unwrap();
        let chain = r.action_chain(&ActionDefinition::new("x")).unwrap();
        let (params, err) = MiddlewareRegistry::run_pre(
            &chain,
            "x",
            Params::new(),
            Default::default(),
            &services(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.message, "refused");
        assert_eq!(params["trail"], json!(["refuse"]));
        r.replace(&Origin::Static, vec![hook("boom", 1, true)])
            .unwrap();
        let chain = r.action_chain(&ActionDefinition::new("x")).unwrap();
        let (_, err) = MiddlewareRegistry::run_pre(
            &chain,
            "x",
            Params::new(),
            Default::default(),
            &services(),
        )
        .await
        .unwrap_err();
        assert_eq!(err, ActionError::internal());
    }

    #[test]
    fn clashes_name_both_origins_and_change_nothing() {
        let r = MiddlewareRegistry::default();
        r.replace(&Origin::Static, vec![hook("a", 1, true)])
            .unwrap();
        let file = Origin::Dynamic("x.so".into());
        let err = r
            .replace(&file, vec![hook("b", 1, true), hook("a", 1, false)])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "action middleware a from x.so clashes with the one from static"
        );
        assert_eq!(r.check(&file, &[hook("a", 1, true)]), Err(err));
        assert_eq!(r.list().len(), 1);
        r.replace(&file, vec![hook("b", 1, true)]).unwrap();
        assert_eq!(r.list().len(), 2);
        r.remove(&file);
        assert_eq!(r.list().len(), 1);
    }
}
