//! A dynamic action: an [`Invoke`] that calls into a loaded library off the reactor;
//! and a dynamic middleware, whose hooks are calls of the same entry point under a
//! reserved name.
//!
//! The request is encoded as JSON, passed through the library's `call` entry point on
//! the blocking pool, and the reply decoded; the library stays loaded while any action
//! of it is registered.
//!
//! Every call is bounded. The caller's side owns the deadline (the processor's for an
//! action, [`CallGate`]'s for a hook) and can always give up and answer, because the
//! call runs on a pool thread rather than on the worker that awaits it. A call that
//! never returns keeps its thread and its slot of the library's [`CallGate`] (so a
//! library cannot pile up stuck threads without bound) and is counted as stuck until
//! it does return; shutdown does not wait for it.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use plugin_api::ffi::{
    CALL_CHAIN, CallError, CallReply, CallRequest, ChainCall, ChainOutcome, ChainReply, HostCall,
    MiddlewareCall, MiddlewareOutcome, MiddlewareReply, Plugin, Reply, Started,
};
use plugin_api::middleware::{ChatHook, HookResult, MiddlewareKind};
use plugin_api::{
    ActionDefinition, ActionError, ActionResult, BoxFuture, ChatContext, ConnectionContext,
    ConnectionInfo, Context, HostServices, MiddlewareDefinition, Params, PostContext, PreContext,
};
use tokio::sync::Semaphore;

use crate::actions::Invoke;
use crate::actions::middleware::{
    DynActionMiddleware, DynChatMiddleware, DynConnectionMiddleware, Hook,
};

/// How every library's calls are bounded (`plugin_call_timeout_ms`,
/// `plugin_max_concurrent_calls`).
#[derive(Debug, Clone, Copy)]
pub struct CallLimits {
    /// Deadline of one middleware hook (actions get theirs from the processor).
    pub timeout: Duration,
    /// Calls in flight into one library at most.
    pub max_concurrent: usize,
}

impl Default for CallLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_concurrent: 64,
        }
    }
}

static LIMITS: OnceLock<CallLimits> = OnceLock::new();

/// Sets the limits of libraries loaded from now on (once per process: the host's
/// configuration; later calls are ignored).
pub fn set_call_limits(limits: CallLimits) {
    let _ = LIMITS.set(limits);
}

fn limits() -> CallLimits {
    LIMITS.get().copied().unwrap_or_default()
}

/// Calls past their deadline that have not returned yet, over every library.
static STUCK: AtomicU64 = AtomicU64::new(0);

/// Calls into plugins that their caller gave up on and that are still running.
pub fn stuck_calls() -> u64 {
    STUCK.load(Ordering::Relaxed)
}

/// What one crossing of the boundary is (the `call` label of the call-time metric).
#[derive(Debug, Clone, Copy)]
enum Crossing {
    /// An action alone.
    Action,
    /// An action inside its middleware chain.
    Chain,
    /// One middleware hook.
    Hook,
}

/// The call slots of one loaded library, shared by its actions and middleware, and what
/// the host knows of how to call it.
#[derive(Debug)]
pub struct CallGate {
    slots: Arc<Semaphore>,
    limits: CallLimits,
    /// Whether the library runs an action inside its chain in one call.
    chains: bool,
    /// The call-time histograms of this library, by [`Crossing`].
    seconds: [prometheus::Histogram; 3],
}

impl CallGate {
    /// A gate for `plugin` with the host's limits; `chains`: whether it runs chained
    /// calls ([`MiddlewareList::chain`](plugin_api::ffi::MiddlewareList::chain)).
    pub fn new(plugin: &Plugin, chains: bool) -> Arc<Self> {
        let limits = limits();
        let name = plugin.name();
        let seconds = ["action", "chain", "hook"]
            .map(|call| crate::metrics::PLUGIN_CALL_SECONDS.with_label_values(&[&name, call]));
        Arc::new(Self {
            slots: Arc::new(Semaphore::new(limits.max_concurrent.max(1))),
            limits,
            chains,
            seconds,
        })
    }

    /// Runs `f` (one call into `plugin`) on the blocking pool once a slot is free. The
    /// returned future may be dropped at any time (a deadline): the call then goes on
    /// alone, counted as stuck until it returns, and keeps its slot till then.
    async fn run<T: Send + 'static>(
        &self,
        plugin: Plugin,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, tokio::task::JoinError> {
        // Waiting for a slot is inside the caller's deadline, like the call itself. (The
        // semaphore is never closed, so a slot always comes.)
        let slot = Arc::clone(&self.slots).acquire_owned().await.ok();
        let state = Arc::new(AtomicU8::new(RUNNING));
        let abandoned = Abandoned {
            state: Arc::clone(&state),
            plugin,
        };
        let joined = tokio::task::spawn_blocking(move || {
            let out = f();
            drop(slot);
            unstick(&state, plugin);
            out
        })
        .await;
        drop(abandoned);
        joined
    }
}

impl CallGate {
    /// One call into `plugin` (`name`: an action or a reserved name) with an encoded
    /// request, once a slot is free: its first poll in place, on this worker, so a call
    /// that needs no waiting costs no thread hop;
    /// the rest on the plugin's runtime, awaited here. A plugin built before `start`
    /// is called on the blocking pool instead. Dropping the future (a deadline) leaves
    /// the call to finish alone, counted as stuck until it does.
    async fn call<R: serde::de::DeserializeOwned>(
        &self,
        plugin: Plugin,
        crossing: Crossing,
        name: String,
        request: Vec<u8>,
        host: Arc<HostCall>,
    ) -> Result<R, String> {
        let timer = self.seconds[crossing as usize].start_timer();
        let reply = self.cross(plugin, name, request, host).await;
        timer.observe_duration();
        reply
    }

    async fn cross<R: serde::de::DeserializeOwned>(
        &self,
        plugin: Plugin,
        name: String,
        request: Vec<u8>,
        host: Arc<HostCall>,
    ) -> Result<R, String> {
        if !plugin.can_start() {
            let bytes = self
                .run(plugin, move || plugin.call_bytes_for(&name, &request, host))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            return decode(&bytes);
        }
        let slot = Arc::clone(&self.slots).acquire_owned().await.ok();
        let state = Arc::new(AtomicU8::new(RUNNING));
        let finished = {
            let state = Arc::clone(&state);
            Box::new(move || {
                drop(slot);
                unstick(&state, plugin);
            })
        };
        let abandoned = Abandoned {
            state: Arc::clone(&state),
            plugin,
        };
        // The first poll runs right here on the worker, as a static action's does (and
        // with the same rule: it must not block). Handing the worker off with
        // `block_in_place` cost a thread hand-over per call, which under load spawned
        // threads by the hundred and cut throughput to a third.
        let started = plugin.start(&name, &request, host, finished);
        let bytes = match started {
            Some(Started::Done(bytes)) => bytes,
            Some(Started::Pending(pending)) => pending.await,
            None => Err(CallError::BadRequest(
                "the plugin cannot start calls".into(),
            )),
        };
        drop(abandoned);
        decode(&bytes.map_err(|e| e.to_string())?)
    }
}

fn decode<R: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<R, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("malformed reply from the plugin: {e}"))
}

/// A call ended: a stuck one (its caller gave up) is stuck no more.
fn unstick(state: &AtomicU8, plugin: Plugin) {
    if state.swap(DONE, Ordering::AcqRel) == ABANDONED {
        STUCK.fetch_sub(1, Ordering::Relaxed);
        crate::metrics::plugin_call_unstuck(&plugin.name());
        tracing::info!(plugin = %plugin.name(), "a plugin call past its deadline returned");
    }
}

const RUNNING: u8 = 0;
const ABANDONED: u8 = 1;
const DONE: u8 = 2;

/// Marks a call abandoned when its caller stops waiting before it returned.
struct Abandoned {
    state: Arc<AtomicU8>,
    plugin: Plugin,
}

impl Drop for Abandoned {
    fn drop(&mut self) {
        if self
            .state
            .compare_exchange(RUNNING, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            STUCK.fetch_add(1, Ordering::Relaxed);
            crate::metrics::plugin_call_stuck(&self.plugin.name());
            tracing::warn!(plugin = %self.plugin.name(), "a plugin call passed its deadline and is still running");
        }
    }
}

/// One action of a loaded library.
#[derive(Debug)]
pub struct DynamicAction {
    plugin: Plugin,
    gate: Arc<CallGate>,
    definition: ActionDefinition,
}

impl DynamicAction {
    /// The action `definition` served by `plugin`, through the library's `gate`.
    pub fn new(plugin: Plugin, gate: Arc<CallGate>, definition: ActionDefinition) -> Arc<Self> {
        Arc::new(Self {
            plugin,
            gate,
            definition,
        })
    }
}

impl Invoke for DynamicAction {
    fn definition(&self) -> &ActionDefinition {
        &self.definition
    }

    fn invoke(&self, ctx: Context) -> BoxFuture<'static, ActionResult> {
        let plugin = self.plugin;
        let gate = Arc::clone(&self.gate);
        let name = self.definition.name.clone();
        // Encoded here, from borrows: the params are not copied on their way out.
        let request = CallRequest::encode(self.definition.version, ctx.params(), ctx.connection());
        let services = Arc::clone(ctx.services());
        Box::pin(async move {
            let request = match request {
                Ok(bytes) => bytes,
                Err(err) => {
                    tracing::error!(plugin = %plugin.name(), error = %err, "dynamic action request unencodable");
                    return Err(ActionError::internal());
                }
            };
            let host = HostCall::new(services, tokio::runtime::Handle::current());
            let reply: Result<CallReply, String> = gate
                .call(plugin, Crossing::Action, name, request, host)
                .await;
            match reply {
                Ok(reply) => reply.into(),
                Err(err) => {
                    tracing::error!(plugin = %plugin.name(), error = %err, "dynamic action failed");
                    Err(ActionError::internal())
                }
            }
        })
    }

    fn invoke_chained(
        &self,
        chain: &[Arc<dyn DynActionMiddleware>],
        connection_hooks: &[Arc<dyn DynConnectionMiddleware>],
        params: &Params,
        connection: &ConnectionInfo,
        services: &Arc<dyn HostServices>,
    ) -> Option<BoxFuture<'static, Result<(Params, ActionResult), ActionError>>> {
        if !self.gate.chains {
            return None;
        }
        // Only when every one of them is this library's own.
        fn own<'a>(gate: &Arc<CallGate>, m: &'a dyn std::any::Any) -> Option<&'a str> {
            let m = m.downcast_ref::<DynamicMiddleware>()?;
            Arc::ptr_eq(&m.gate, gate).then_some(m.definition.name.as_str())
        }
        let names = chain
            .iter()
            .map(|m| own(&self.gate, m.as_any()))
            .collect::<Option<Vec<_>>>()?;
        let connection_names = connection_hooks
            .iter()
            .map(|m| own(&self.gate, m.as_any()))
            .collect::<Option<Vec<_>>>()?;
        let request = ChainCall::encode(
            &self.definition.name,
            self.definition.version,
            &names,
            &connection_names,
            params,
            connection,
        );
        let (plugin, gate) = (self.plugin, Arc::clone(&self.gate));
        let services = Arc::clone(services);
        Some(Box::pin(async move {
            let failed = |err: String| {
                tracing::error!(plugin = %plugin.name(), error = %err, "dynamic action chain failed");
                ActionError::internal()
            };
            let request = request.map_err(|e| failed(e.to_string()))?;
            let host = HostCall::new(services, tokio::runtime::Handle::current());
            let reply: ChainReply = gate
                .call(
                    plugin,
                    Crossing::Chain,
                    CALL_CHAIN.to_owned(),
                    request,
                    host,
                )
                .await
                .map_err(failed)?;
            match reply {
                Reply::Ok(ChainOutcome { params, result }) => Ok((params, result.into())),
                Reply::Error(err) => Err(failed(err.message)),
            }
        }))
    }
}

/// One middleware of a loaded library: each hook is one `call` of the reserved name
/// [`CALL_MIDDLEWARE`](plugin_api::ffi::CALL_MIDDLEWARE), with the JSON shapes of
/// `plugin_api::ffi`.
#[derive(Debug)]
pub struct DynamicMiddleware {
    plugin: Plugin,
    gate: Arc<CallGate>,
    definition: MiddlewareDefinition,
}

impl DynamicMiddleware {
    /// The middleware `definition` served by `plugin` through the library's `gate`, as
    /// the registry's hook of `kind`.
    pub fn hook(
        plugin: Plugin,
        gate: Arc<CallGate>,
        kind: MiddlewareKind,
        definition: MiddlewareDefinition,
    ) -> Hook {
        let m = Arc::new(Self {
            plugin,
            gate,
            definition,
        });
        match kind {
            MiddlewareKind::Action => Hook::Action(m),
            MiddlewareKind::Connection => Hook::Connection(m),
            MiddlewareKind::Chat => Hook::Chat(m),
        }
    }

    /// What a hook's future keeps of this middleware (it outlives the borrow).
    fn shared(&self) -> HookCaller {
        HookCaller {
            plugin: self.plugin,
            gate: Arc::clone(&self.gate),
            name: self.definition.name.clone(),
        }
    }
}

/// Calls the hooks of one dynamic middleware.
struct HookCaller {
    plugin: Plugin,
    gate: Arc<CallGate>,
    name: String,
}

impl HookCaller {
    /// One hook call within the gate's deadline: the plugin's outcome, or its refusal;
    /// a failure at the boundary (a panic included) is logged and answered as an
    /// internal error, a hook past its deadline as a timeout.
    async fn call(
        &self,
        call: MiddlewareCall,
        services: Arc<dyn HostServices>,
    ) -> Result<MiddlewareOutcome, ActionError> {
        let plugin = self.plugin;
        let limit = self.gate.limits.timeout;
        let request = match serde_json::to_vec(&call) {
            Ok(bytes) => bytes,
            Err(err) => {
                tracing::error!(plugin = %plugin.name(), error = %err, "middleware call unencodable");
                return Err(ActionError::internal());
            }
        };
        let host = HostCall::new(services, tokio::runtime::Handle::current());
        let run = self.gate.call::<MiddlewareReply>(
            plugin,
            Crossing::Hook,
            plugin_api::ffi::CALL_MIDDLEWARE.to_owned(),
            request,
            host,
        );
        match tokio::time::timeout(limit, run).await {
            Ok(Ok(reply)) => reply.into(),
            Ok(Err(err)) => {
                tracing::error!(plugin = %plugin.name(), error = %err, "dynamic middleware failed");
                Err(ActionError::internal())
            }
            Err(_) => Err(ActionError::timed_out(&self.name, limit)),
        }
    }
}

impl DynActionMiddleware for DynamicMiddleware {
    fn definition(&self) -> &MiddlewareDefinition {
        &self.definition
    }

    fn pre(&self, ctx: PreContext) -> BoxFuture<'static, HookResult<PreContext>> {
        let (this, middleware) = (self.shared(), self.definition.name.clone());
        Box::pin(async move {
            let call = MiddlewareCall::Pre {
                middleware,
                action: ctx.action().to_owned(),
                params: ctx.params().clone(),
                connection: ctx.connection().clone(),
            };
            match this.call(call, Arc::clone(ctx.services())).await {
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
        let (this, middleware) = (self.shared(), self.definition.name.clone());
        Box::pin(async move {
            let call = MiddlewareCall::Post {
                middleware,
                action: ctx.action().to_owned(),
                params: ctx.params().clone(),
                connection: ctx.connection().clone(),
                result: ctx.result().clone().into(),
            };
            match this.call(call, Arc::clone(ctx.services())).await {
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

    fn as_any(&self) -> &dyn std::any::Any {
        self
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
        let (this, middleware) = (self.shared(), self.definition.name.clone());
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
            match this.call(call, Arc::clone(&services)).await {
                Ok(MiddlewareOutcome {
                    connection: Some(connection),
                    ..
                }) => (ConnectionContext::new(connection, services), Ok(())),
                Ok(_) => (ctx, Ok(())),
                Err(err) => (ctx, Err(err)),
            }
        })
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl DynChatMiddleware for DynamicMiddleware {
    fn definition(&self) -> &MiddlewareDefinition {
        &self.definition
    }

    fn run(&self, hook: ChatHook, ctx: ChatContext) -> BoxFuture<'static, HookResult<ChatContext>> {
        let (this, middleware) = (self.shared(), self.definition.name.clone());
        Box::pin(async move {
            let call = MiddlewareCall::Chat {
                middleware,
                chat: hook,
                room: ctx.room().to_owned(),
                connection: ctx.connection().clone(),
                message: ctx.message().cloned(),
            };
            match this.call(call, Arc::clone(ctx.services())).await {
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
