//! A dynamic action: an [`Invoke`] that calls into a loaded library off the reactor;
//! and a dynamic middleware, whose hooks are calls of the same entry point under a
//! reserved name.
//!
//! The request is encoded as JSON, passed through the library's `call` entry point
//! with `block_in_place` (or the blocking pool on a current-thread runtime), and the
//! reply decoded; the library stays loaded while any action of it is registered.

use std::sync::Arc;

use plugin_api::ffi::{CallRequest, HostCall, MiddlewareCall, MiddlewareOutcome, Plugin};
use plugin_api::middleware::{ChatHook, HookResult, MiddlewareKind};
use plugin_api::{
    ActionDefinition, ActionError, ActionResult, BoxFuture, ChatContext, ConnectionContext,
    Context, HostServices, MiddlewareDefinition, PostContext, PreContext,
};
use tokio::runtime::RuntimeFlavor;

use crate::actions::Invoke;
use crate::actions::middleware::{
    DynActionMiddleware, DynChatMiddleware, DynConnectionMiddleware, Hook,
};

/// One action of a loaded library.
#[derive(Debug)]
pub struct DynamicAction {
    plugin: Plugin,
    definition: ActionDefinition,
}

impl DynamicAction {
    /// The action `definition` served by `plugin`.
    pub fn new(plugin: Plugin, definition: ActionDefinition) -> Arc<Self> {
        Arc::new(Self { plugin, definition })
    }
}

impl Invoke for DynamicAction {
    fn definition(&self) -> &ActionDefinition {
        &self.definition
    }

    fn invoke(&self, ctx: Context) -> BoxFuture<'static, ActionResult> {
        let plugin = self.plugin;
        let name = self.definition.name.clone();
        let request = CallRequest {
            version: self.definition.version,
            params: ctx.params().clone(),
            connection: ctx.connection().clone(),
        };
        let services = Arc::clone(ctx.services());
        Box::pin(async move {
            let handle = tokio::runtime::Handle::current();
            let multi_thread = handle.runtime_flavor() == RuntimeFlavor::MultiThread;
            let host = HostCall::new(services, handle);
            // The plugin drives the action to completion on the calling thread: that
            // thread must be one the reactor does not need. On the multi-threaded runtime
            // `block_in_place` hands this worker's other tasks to another thread and runs
            // the call right here; a hop to the blocking pool would cost two thread
            // wake-ups per call (20+ µs when the cores are idle, against ~1 µs here).
            let started = std::time::Instant::now();
            let joined = if multi_thread {
                Ok(tokio::task::block_in_place(|| {
                    plugin.call(&name, &request, host)
                }))
            } else {
                tokio::task::spawn_blocking(move || plugin.call(&name, &request, host)).await
            };
            crate::metrics::PLUGIN_CALL_SECONDS
                .with_label_values(&[&plugin.name()])
                .observe(started.elapsed().as_secs_f64());
            match joined {
                Ok(Ok(reply)) => reply.into(),
                Ok(Err(err)) => {
                    tracing::error!(plugin = %plugin.name(), error = %err, "dynamic action failed");
                    Err(ActionError::internal())
                }
                Err(err) => {
                    tracing::error!(plugin = %plugin.name(), error = %err, "dynamic action task failed");
                    Err(ActionError::internal())
                }
            }
        })
    }
}

/// Runs `f` (a call into a library) off the reactor, as [`DynamicAction`] does.
async fn off_reactor<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    let handle = tokio::runtime::Handle::current();
    if handle.runtime_flavor() == RuntimeFlavor::MultiThread {
        Ok(tokio::task::block_in_place(f))
    } else {
        tokio::task::spawn_blocking(f).await
    }
}

/// One middleware of a loaded library: each hook is one `call` of the reserved name
/// [`CALL_MIDDLEWARE`](plugin_api::ffi::CALL_MIDDLEWARE), with the JSON shapes of
/// `plugin_api::ffi`.
#[derive(Debug)]
pub struct DynamicMiddleware {
    plugin: Plugin,
    definition: MiddlewareDefinition,
}

impl DynamicMiddleware {
    /// The middleware `definition` served by `plugin`, as the registry's hook of `kind`.
    pub fn hook(plugin: Plugin, kind: MiddlewareKind, definition: MiddlewareDefinition) -> Hook {
        let m = Arc::new(Self { plugin, definition });
        match kind {
            MiddlewareKind::Action => Hook::Action(m),
            MiddlewareKind::Connection => Hook::Connection(m),
            MiddlewareKind::Chat => Hook::Chat(m),
        }
    }

    /// One hook call: the plugin's outcome, or its refusal; a failure at the boundary
    /// (a panic included) is logged and answered as an internal error.
    async fn call(
        plugin: Plugin,
        call: MiddlewareCall,
        services: Arc<dyn HostServices>,
    ) -> Result<MiddlewareOutcome, ActionError> {
        let host = HostCall::new(services, tokio::runtime::Handle::current());
        match off_reactor(move || plugin.call_middleware(&call, host)).await {
            Ok(Ok(reply)) => reply.into(),
            Ok(Err(err)) => {
                tracing::error!(plugin = %plugin.name(), error = %err, "dynamic middleware failed");
                Err(ActionError::internal())
            }
            Err(err) => {
                tracing::error!(plugin = %plugin.name(), error = %err, "dynamic middleware task failed");
                Err(ActionError::internal())
            }
        }
    }
}

impl DynActionMiddleware for DynamicMiddleware {
    fn definition(&self) -> &MiddlewareDefinition {
        &self.definition
    }

    fn pre(&self, ctx: PreContext) -> BoxFuture<'static, HookResult<PreContext>> {
        let (plugin, middleware) = (self.plugin, self.definition.name.clone());
        Box::pin(async move {
            let call = MiddlewareCall::Pre {
                middleware,
                action: ctx.action().to_owned(),
                params: ctx.params().clone(),
                connection: ctx.connection().clone(),
            };
            match Self::call(plugin, call, Arc::clone(ctx.services())).await {
                Ok(out) => {
                    let action = ctx.action().to_owned();
                    let services = Arc::clone(ctx.services());
                    let (params, connection) = ctx.into_parts();
                    let next = PreContext::new(
                        action,
                        out.params.unwrap_or(params),
                        out.connection.unwrap_or(connection),
                        services,
                    );
                    (next, Ok(()))
                }
                Err(err) => (ctx, Err(err)),
            }
        })
    }

    fn post(&self, ctx: PostContext) -> BoxFuture<'static, HookResult<PostContext>> {
        let (plugin, middleware) = (self.plugin, self.definition.name.clone());
        Box::pin(async move {
            let call = MiddlewareCall::Post {
                middleware,
                action: ctx.action().to_owned(),
                params: ctx.params().clone(),
                connection: ctx.connection().clone(),
                result: ctx.result().clone().into(),
            };
            match Self::call(plugin, call, Arc::clone(ctx.services())).await {
                Ok(out) => {
                    let mut ctx = ctx;
                    if let Some(result) = out.result {
                        ctx.set_result(result.into());
                    }
                    (ctx, Ok(()))
                }
                Err(err) => (ctx, Err(err)),
            }
        })
    }
}

impl DynConnectionMiddleware for DynamicMiddleware {
    fn definition(&self) -> &MiddlewareDefinition {
        &self.definition
    }

    fn run(
        &self,
        create: bool,
        ctx: ConnectionContext,
    ) -> BoxFuture<'static, HookResult<ConnectionContext>> {
        let (plugin, middleware) = (self.plugin, self.definition.name.clone());
        Box::pin(async move {
            let connection = ctx.connection().clone();
            let call = if create {
                MiddlewareCall::Create {
                    middleware,
                    connection,
                }
            } else {
                MiddlewareCall::Destroy {
                    middleware,
                    connection,
                }
            };
            let services = Arc::clone(ctx.services());
            match Self::call(plugin, call, Arc::clone(&services)).await {
                Ok(MiddlewareOutcome {
                    connection: Some(connection),
                    ..
                }) => (ConnectionContext::new(connection, services), Ok(())),
                Ok(_) => (ctx, Ok(())),
                Err(err) => (ctx, Err(err)),
            }
        })
    }
}

impl DynChatMiddleware for DynamicMiddleware {
    fn definition(&self) -> &MiddlewareDefinition {
        &self.definition
    }

    fn run(&self, hook: ChatHook, ctx: ChatContext) -> BoxFuture<'static, HookResult<ChatContext>> {
        let (plugin, middleware) = (self.plugin, self.definition.name.clone());
        Box::pin(async move {
            let call = MiddlewareCall::Chat {
                middleware,
                chat: hook,
                room: ctx.room().to_owned(),
                connection: ctx.connection().clone(),
                message: ctx.message().cloned(),
            };
            match Self::call(plugin, call, Arc::clone(ctx.services())).await {
                Ok(out) => {
                    let mut ctx = ctx;
                    if let Some(message) = out.message {
                        ctx.set_message(message);
                    }
                    (ctx, Ok(()))
                }
                Err(err) => (ctx, Err(err)),
            }
        })
    }
}
