//! The plugin side: the functions behind a plugin's header, generated per plugin by
//! [`export_plugin!`](crate::export_plugin).

use std::cell::Cell;
use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::abi::{
    self, FfiBuf, FfiStr, HostVTable, PluginHeader, STATUS_BAD_REQUEST, STATUS_OK, STATUS_PANIC,
};
use super::log;
use super::wire::{
    CALL_CHAIN, CALL_MIDDLEWARE, CallReply, CallRequest, ChainCall, ChainOutcome, ChainReply,
    DESCRIBE_MIDDLEWARE, MiddlewareCall, MiddlewareList, MiddlewareOutcome, MiddlewareReply,
    RESERVED_CALL_PREFIX, Reply, ServiceCall,
};
use crate::middleware::{
    ChatContext, ConnectionContext, MiddlewareHandler, MiddlewareKind, PostContext, PreContext,
    registered_middleware,
};
use crate::{
    ActionError, ActionHandler, BoxFuture, Context, ErrorKind, HostServices, Params, Registration,
    ServiceError, ServiceResult,
};

/// One plugin crate's exports; implemented by the code `export_plugin!` generates.
pub trait Exports: 'static {
    /// Package name.
    const NAME: &'static str;
    /// Package version.
    const VERSION: &'static str;
    /// Whether the plugin crate is built with `panic = "abort"`. `export_plugin!` sets
    /// it from `cfg!(panic = "abort")` in the plugin crate itself, which is what decides
    /// whether its panics unwind to the boundary's `catch_unwind`.
    const PANIC_ABORT: bool = cfg!(panic = "abort");
    /// The plugin's actions (built once).
    fn handlers() -> &'static [ActionHandler];
    /// The plugin's middleware (built once); none unless the plugin has some.
    fn middleware() -> &'static [MiddlewareHandler] {
        &[]
    }
}

/// The actions a plugin library exports: those listed in `export_plugin!`, then those
/// its package registered with `register_action!` elsewhere in its source (so a source
/// file shared between crates registers in both builds alike), each name and version once.
pub fn package_actions(package: &str, listed: Vec<ActionHandler>) -> Vec<ActionHandler> {
    let mut all = listed;
    for registration in inventory::iter::<Registration>
        .into_iter()
        .filter(|r| r.package() == package)
    {
        let handler = registration.handler();
        let (name, version) = (&handler.definition().name, handler.definition().version);
        if !all
            .iter()
            .any(|h| &h.definition().name == name && h.definition().version == version)
        {
            all.push(handler);
        }
    }
    all
}

/// The middleware a plugin library exports: every one its package registered (with
/// `register_middleware!` or the `middleware` list of `export_plugin!`).
pub fn package_middleware(package: &str) -> Vec<MiddlewareHandler> {
    registered_middleware()
        .filter(|r| r.package() == package)
        .map(|r| r.handler())
        .collect()
}

/// The `struct_size` this build declares: its own header's, or (test builds) v1's, as
/// a plugin built before the appended fields would.
#[cfg(not(feature = "__test-abi-v1"))]
const DECLARED_HEADER_SIZE: usize = std::mem::size_of::<PluginHeader>();
#[cfg(feature = "__test-abi-v1")]
const DECLARED_HEADER_SIZE: usize = abi::MIN_HEADER_SIZE;

/// The flags this build declares. A test build posing as v1 fills the bytes past its
/// declared size with ones: a host reading them anyway would see `panic = "abort"`
/// and refuse it.
const fn flags<P: Exports>() -> u64 {
    if cfg!(feature = "__test-abi-v1") {
        u64::MAX
    } else if P::PANIC_ABORT {
        abi::HEADER_FLAG_PANIC_ABORT
    } else {
        0
    }
}

/// The header of plugin `P`; `export_plugin!` puts it in a static.
pub const fn header<P: Exports>() -> PluginHeader {
    PluginHeader {
        abi_version: abi::ABI_VERSION,
        // The header is a few dozen bytes: the cast cannot truncate.
        struct_size: DECLARED_HEADER_SIZE as u32,
        api_version: FfiStr::from_static(abi::API_VERSION),
        rustc_version: FfiStr::from_static(abi::RUSTC_VERSION),
        target: FfiStr::from_static(abi::TARGET),
        name: FfiStr::from_static(P::NAME),
        version: FfiStr::from_static(P::VERSION),
        init,
        describe: describe::<P>,
        call: call::<P>,
        free,
        flags: flags::<P>(),
        start: start::<P>,
        #[cfg(feature = "__test-abi-next")]
        abi_next: ABI_NEXT_PROBE,
    }
}

/// Test builds only: what a "next" build puts in its appended `abi_next` fields.
#[cfg(feature = "__test-abi-next")]
pub const ABI_NEXT_PROBE: u64 = 0x6e65_7874;

/// Test builds only: the host table's appended `abi_next` field as this plugin read it,
/// 0 when the host's table is too short to carry it (an older host's), `None` before
/// `init`.
#[cfg(feature = "__test-abi-next")]
#[doc(hidden)]
pub fn host_abi_next() -> Option<u64> {
    HOST.get().map(|host| host.abi_next)
}

/// The host's table, once `init` ran (one per loaded library).
static HOST: OnceLock<HostVTable> = OnceLock::new();

/// Worker threads of a library's runtime: they run what the plugin spawns (timers,
/// pooled connections, background loops); calls themselves are driven on the host's
/// calling thread.
const RUNTIME_WORKERS: usize = 1;

/// The plugin's own runtime, one per loaded library (each copy of a library has its own
/// statics), started at the first call and never stopped: libraries are never unloaded,
/// and tasks a plugin spawns must go on running between calls, as in a static plugin.
static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();

fn runtime() -> Result<&'static tokio::runtime::Runtime, String> {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(RUNTIME_WORKERS)
                .thread_name("hero-plugin")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the plugin runtime: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

thread_local! {
    /// The host context of the call running on this thread (for [`raw_service_call`]).
    static CURRENT: Cell<*const c_void> = const { Cell::new(std::ptr::null()) };
}

fn write(out: *mut FfiBuf, bytes: Vec<u8>) {
    if !out.is_null() {
        // SAFETY: the caller passes a writable out-pointer (the `call`/`describe` contract).
        unsafe { out.write(FfiBuf::from_vec(bytes)) };
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

/// Runs `f` with panics caught; a panic becomes `STATUS_PANIC` with its message.
fn guarded(out: *mut FfiBuf, f: impl FnOnce() -> (i32, Vec<u8>)) -> i32 {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok((status, bytes)) => {
            write(out, bytes);
            status
        }
        Err(panic) => {
            write(out, panic_text(panic.as_ref()).into_bytes());
            STATUS_PANIC
        }
    }
}

unsafe extern "C" fn init(host: *const HostVTable) -> i32 {
    catch_unwind(|| {
        if host.is_null() {
            return STATUS_BAD_REQUEST;
        }
        // SAFETY: the host passes a table that lives for the rest of the process, as
        // long as its `struct_size`; `read` checks it is at least v1 and reads appended
        // fields only when that size covers them (an older host's table is shorter
        // than this build's `HostVTable`).
        let Some(table) = (unsafe { HostVTable::read(host) }) else {
            return STATUS_BAD_REQUEST;
        };
        let host = *HOST.get_or_init(|| table);
        log::install(host);
        STATUS_OK
    })
    .unwrap_or(STATUS_PANIC)
}

unsafe extern "C" fn describe<P: Exports>(out: *mut FfiBuf) -> i32 {
    guarded(out, || {
        let definitions: Vec<_> = P::handlers()
            .iter()
            .map(ActionHandler::definition)
            .collect();
        match serde_json::to_vec(&definitions) {
            Ok(bytes) => (STATUS_OK, bytes),
            Err(e) => (STATUS_BAD_REQUEST, e.to_string().into_bytes()),
        }
    })
}

/// The work of one call: an answer known at once, or the future of the encoded reply.
enum Job {
    Answer(i32, Vec<u8>),
    Run(BoxFuture<'static, (i32, Vec<u8>)>),
}

/// Decodes one call (an action, or a reserved name) into its [`Job`].
fn job<P: Exports>(action: FfiStr, request: FfiStr, host_ctx: *const c_void) -> Job {
    // SAFETY: `action` and `request` are valid for this call (the `call` contract).
    let (action, request) = unsafe { (action.as_bytes(), request.as_bytes()) };
    let Ok(name) = std::str::from_utf8(action) else {
        return Job::Answer(STATUS_BAD_REQUEST, b"action name is not UTF-8".to_vec());
    };
    if name.starts_with(RESERVED_CALL_PREFIX) {
        return reserved_job::<P>(name, request, host_ctx);
    }
    let request: CallRequest = match serde_json::from_slice(request) {
        Ok(r) => r,
        Err(e) => {
            return Job::Answer(
                STATUS_BAD_REQUEST,
                format!("malformed call request: {e}").into_bytes(),
            );
        }
    };
    let Some(handler) = P::handlers()
        .iter()
        .find(|h| h.definition().name == name && h.definition().version == request.version)
    else {
        let reply = CallReply::Error(ActionError::unknown_action(name));
        return Job::Answer(STATUS_OK, serde_json::to_vec(&reply).unwrap_or_default());
    };
    let Some(host) = HOST.get().copied() else {
        return Job::Answer(STATUS_BAD_REQUEST, b"plugin called before init".to_vec());
    };
    let services = Arc::new(Remote::new(host, host_ctx));
    let ctx = Context::new(request.params, request.connection, services);
    let run = handler.invoke(ctx);
    Job::Run(Box::pin(async move {
        let reply = CallReply::from(run.await);
        match serde_json::to_vec(&reply) {
            Ok(bytes) => (STATUS_OK, bytes),
            Err(e) => (
                STATUS_BAD_REQUEST,
                format!("unserializable result: {e}").into_bytes(),
            ),
        }
    }))
}

unsafe extern "C" fn call<P: Exports>(
    action: FfiStr,
    request: FfiStr,
    host_ctx: *const c_void,
    out: *mut FfiBuf,
) -> i32 {
    guarded(out, || match job::<P>(action, request, host_ctx) {
        Job::Answer(status, bytes) => (status, bytes),
        Job::Run(run) => {
            let previous = CURRENT.replace(host_ctx);
            let done = block_on(run);
            CURRENT.set(previous);
            done.unwrap_or_else(|message| (STATUS_PANIC, message.into_bytes()))
        }
    })
}

/// A pointer handed back to the host from another thread (the host's `done` token).
struct Token(*mut c_void);

// SAFETY: the token is opaque to the plugin, which only hands it back once, to `done`;
// the host made it for exactly that.
unsafe impl Send for Token {}

unsafe extern "C" fn start<P: Exports>(
    action: FfiStr,
    request: FfiStr,
    host_ctx: *const c_void,
    done: abi::DoneFn,
    token: *mut c_void,
    out: *mut FfiBuf,
) -> i32 {
    guarded(out, || {
        let mut run = match job::<P>(action, request, host_ctx) {
            Job::Answer(status, bytes) => return (status, bytes),
            Job::Run(run) => run,
        };
        let runtime = match runtime() {
            Ok(r) => r,
            Err(message) => return (STATUS_PANIC, message.into_bytes()),
        };
        // The first poll here, inside the runtime (timers and spawns register with
        // it): a call that needs no waiting, the usual case, costs no thread hop.
        let polled = {
            let _inside = runtime.enter();
            let previous = CURRENT.replace(host_ctx);
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            let polled = catch_unwind(AssertUnwindSafe(|| run.as_mut().poll(&mut cx)));
            CURRENT.set(previous);
            polled
        };
        match polled {
            Ok(std::task::Poll::Ready(answer)) => answer,
            Err(panic) => (STATUS_PANIC, panic_text(panic.as_ref()).into_bytes()),
            Ok(std::task::Poll::Pending) => {
                // The rest on the runtime; a spawned task is polled again at once, so
                // the no-op waker of the first poll loses no wake-up.
                let token = Token(token);
                runtime.spawn(async move {
                    let token = token;
                    let (status, bytes) = caught(run)
                        .await
                        .unwrap_or_else(|message| (STATUS_PANIC, message.into_bytes()));
                    // SAFETY: the host's `done` takes its token back exactly once, with a
                    // buffer this library wrote (freed by the host through `free`).
                    unsafe { done(token.0, status, FfiBuf::from_vec(bytes)) };
                });
                (abi::STATUS_PENDING, Vec::new())
            }
        }
    })
}

/// Drives `run` with panics caught: its output, or the panic's message.
async fn caught<T>(mut run: BoxFuture<'_, T>) -> Result<T, String> {
    std::future::poll_fn(
        move |cx| match catch_unwind(AssertUnwindSafe(|| run.as_mut().poll(cx))) {
            Ok(polled) => polled.map(Ok),
            Err(panic) => std::task::Poll::Ready(Err(panic_text(panic.as_ref()))),
        },
    )
    .await
}

fn encoded<T: serde::Serialize>(reply: &T) -> (i32, Vec<u8>) {
    match serde_json::to_vec(reply) {
        Ok(bytes) => (STATUS_OK, bytes),
        Err(e) => (
            STATUS_BAD_REQUEST,
            format!("unserializable reply: {e}").into_bytes(),
        ),
    }
}

/// The host's own requests (see [`RESERVED_CALL_PREFIX`]): middleware definitions,
/// middleware hooks, and actions run inside their chain.
fn reserved_job<P: Exports>(name: &str, request: &[u8], host_ctx: *const c_void) -> Job {
    if name == DESCRIBE_MIDDLEWARE {
        let mut list = MiddlewareList {
            chain: true,
            ..MiddlewareList::default()
        };
        for m in P::middleware() {
            let into = match m.kind() {
                MiddlewareKind::Action => &mut list.action,
                MiddlewareKind::Connection => &mut list.connection,
                MiddlewareKind::Chat => &mut list.chat,
            };
            into.push(m.definition().clone());
        }
        let (status, bytes) = encoded(&Reply::<_, ActionError>::Ok(list));
        return Job::Answer(status, bytes);
    }
    if name != CALL_MIDDLEWARE && name != CALL_CHAIN {
        return Job::Answer(
            STATUS_BAD_REQUEST,
            format!("unknown reserved call {name}").into_bytes(),
        );
    }
    let Some(host) = HOST.get().copied() else {
        return Job::Answer(STATUS_BAD_REQUEST, b"plugin called before init".to_vec());
    };
    let malformed = |e: serde_json::Error| {
        Job::Answer(
            STATUS_BAD_REQUEST,
            format!("malformed {name} request: {e}").into_bytes(),
        )
    };
    if name == CALL_CHAIN {
        let call: ChainCall = match serde_json::from_slice(request) {
            Ok(c) => c,
            Err(e) => return malformed(e),
        };
        let services: Arc<dyn HostServices> = Arc::new(Remote::new(host, host_ctx));
        let chain = run_chain::<P>(call, services);
        return Job::Run(Box::pin(async move { encoded(&chain.await) }));
    }
    let call: MiddlewareCall = match serde_json::from_slice(request) {
        Ok(c) => c,
        Err(e) => return malformed(e),
    };
    let services: Arc<dyn HostServices> = Arc::new(Remote::new(host, host_ctx));
    let hook = run_hook::<P>(call, services);
    Job::Run(Box::pin(async move { encoded(&hook.await) }))
}

/// Runs an action inside its chain of this plugin's action middleware, as the host runs
/// a chain hook by hook (`hero::actions`), in one call: a web request's connection
/// `create` hooks, the pre-processors in order, the action on the prepared params (a
/// panic of the action is an internal error, and the post-processors still run), the
/// post-processors in order, the `destroy` hooks. Panics are caught hook by hook, with
/// the host's outcome: a pre- or post-processor's ends the chain with an internal
/// error, a connection hook's is logged and the request goes on; the `destroy` hooks
/// run whatever happened in between.
fn run_chain<P: Exports>(
    call: ChainCall,
    services: Arc<dyn HostServices>,
) -> BoxFuture<'static, ChainReply> {
    Box::pin(async move {
        let ChainCall {
            action,
            version,
            middleware,
            connection_middleware,
            params,
            connection,
        } = call;
        let Some(handler) = P::handlers()
            .iter()
            .find(|h| h.definition().name == action && h.definition().version == version)
        else {
            return Reply::Error(ActionError::unknown_action(&action));
        };
        let mut chain = Vec::with_capacity(middleware.len());
        for name in &middleware {
            let Some(MiddlewareHandler::Action(m)) = find::<P>(MiddlewareKind::Action, name) else {
                return Reply::Error(missing_error(MiddlewareKind::Action, name));
            };
            chain.push(m);
        }
        let mut hooks = Vec::with_capacity(connection_middleware.len());
        for name in &connection_middleware {
            let Some(MiddlewareHandler::Connection(m)) =
                find::<P>(MiddlewareKind::Connection, name)
            else {
                return Reply::Error(missing_error(MiddlewareKind::Connection, name));
            };
            hooks.push(m);
        }
        let connection = connection_hooks(true, &hooks, connection, &services).await;
        let kept = (!hooks.is_empty()).then(|| connection.clone());
        let outcome = run_action(handler, &chain, action, params, connection, &services).await;
        if let Some(kept) = kept {
            connection_hooks(false, &hooks, kept, &services).await;
        }
        Reply::Ok(outcome)
    })
}

/// The action of a chain call between its pre- and post-processors.
async fn run_action(
    handler: &ActionHandler,
    chain: &[&crate::middleware::ActionMiddlewareHandler],
    action: String,
    params: Params,
    connection: crate::ConnectionInfo,
    services: &Arc<dyn HostServices>,
) -> ChainOutcome {
    let definition = handler.definition();
    // Kept for the outcome, should a pre-processor panic with the params inside (as the
    // host keeps them).
    let original = (!chain.is_empty()).then(|| params.clone());
    let mut pre = PreContext::new(action.clone(), params, connection, Arc::clone(services));
    for m in chain {
        let refused = match caught(m.pre(pre)).await {
            Ok((next, Ok(()))) => {
                pre = next;
                continue;
            }
            Ok((next, Err(err))) => (next.into_parts().0, err),
            Err(reason) => (
                original.unwrap_or_default(),
                panicked(&m.definition().name, &reason),
            ),
        };
        return ChainOutcome {
            params: definition.prepare(refused.0),
            result: Reply::Error(refused.1),
        };
    }
    let (params, connection) = pre.into_parts();
    let params = definition.prepare(params);
    let ctx = Context::new(params.clone(), connection.clone(), Arc::clone(services));
    let result = match caught(handler.invoke(ctx)).await {
        Ok(result) => result,
        Err(reason) => {
            tracing::error!(%reason, %action, version = definition.version, "action panicked");
            Err(ActionError::internal())
        }
    };
    let mut post = PostContext::new(
        action,
        params.clone(),
        connection,
        result,
        Arc::clone(services),
    );
    for m in chain {
        let err = match caught(m.post(post)).await {
            Ok((next, Ok(()))) => {
                post = next;
                continue;
            }
            Ok((_, Err(err))) => err,
            Err(reason) => panicked(&m.definition().name, &reason),
        };
        return ChainOutcome {
            params,
            result: Reply::Error(err),
        };
    }
    ChainOutcome {
        params,
        result: post.into_result().into(),
    }
}

/// Logs a caught panic of an action middleware and answers what the client sees of it.
fn panicked(name: &str, reason: &str) -> ActionError {
    tracing::error!(middleware = %name, %reason, "action middleware {name} panicked");
    ActionError::internal()
}

/// Runs each connection hook's `create` (`true`) or `destroy` in order; a failure or a
/// panic is logged and the next one gets the connection as it was.
async fn connection_hooks(
    create: bool,
    hooks: &[&crate::middleware::ConnectionMiddlewareHandler],
    mut connection: crate::ConnectionInfo,
    services: &Arc<dyn HostServices>,
) -> crate::ConnectionInfo {
    let what = if create { "create" } else { "destroy" };
    for m in hooks {
        let name = &m.definition().name;
        let ctx = ConnectionContext::new(connection.clone(), Arc::clone(services));
        let run = if create {
            m.create(ctx)
        } else {
            m.destroy(ctx)
        };
        match caught(run).await {
            Ok((ctx, passed)) => {
                if let Err(err) = passed {
                    tracing::warn!(middleware = %name, connection = %connection.id,
                        "connection middleware {name} failed in {what}: {}", err.message);
                }
                connection = ctx.into_connection();
            }
            Err(reason) => {
                tracing::error!(middleware = %name, %reason, "connection middleware {name} panicked");
            }
        }
    }
    connection
}

fn find<P: Exports>(kind: MiddlewareKind, name: &str) -> Option<&'static MiddlewareHandler> {
    P::middleware()
        .iter()
        .find(|m| m.kind() == kind && m.definition().name == name)
}

fn missing_error(kind: MiddlewareKind, name: &str) -> ActionError {
    ActionError::with_kind(
        ErrorKind::Internal,
        format!("the plugin has no {kind} middleware {name}"),
    )
}

fn missing(kind: MiddlewareKind, name: &str) -> MiddlewareReply {
    Reply::Error(missing_error(kind, name))
}

/// Runs one hook of this plugin's middleware and encodes what it changed.
fn run_hook<P: Exports>(
    call: MiddlewareCall,
    services: Arc<dyn HostServices>,
) -> BoxFuture<'static, MiddlewareReply> {
    Box::pin(async move {
        match call {
            MiddlewareCall::Pre {
                middleware,
                action,
                params,
                connection,
            } => {
                let Some(MiddlewareHandler::Action(m)) =
                    find::<P>(MiddlewareKind::Action, &middleware)
                else {
                    return missing(MiddlewareKind::Action, &middleware);
                };
                let ctx = PreContext::new(action, params, connection, services);
                let (ctx, passed) = m.pre(ctx).await;
                passed
                    .map(|()| {
                        let (params, connection) = ctx.into_parts();
                        MiddlewareOutcome {
                            params: Some(params),
                            connection: Some(connection),
                            ..MiddlewareOutcome::default()
                        }
                    })
                    .into()
            }
            MiddlewareCall::Post {
                middleware,
                action,
                params,
                connection,
                result,
            } => {
                let Some(MiddlewareHandler::Action(m)) =
                    find::<P>(MiddlewareKind::Action, &middleware)
                else {
                    return missing(MiddlewareKind::Action, &middleware);
                };
                let ctx = PostContext::new(action, params, connection, result.into(), services);
                let (ctx, passed) = m.post(ctx).await;
                passed
                    .map(|()| MiddlewareOutcome {
                        result: Some(ctx.into_result().into()),
                        ..MiddlewareOutcome::default()
                    })
                    .into()
            }
            MiddlewareCall::Create {
                middleware,
                connection,
            } => connection_hook::<P>(true, &middleware, connection, services).await,
            MiddlewareCall::Destroy {
                middleware,
                connection,
            } => connection_hook::<P>(false, &middleware, connection, services).await,
            MiddlewareCall::Chat {
                middleware,
                chat,
                room,
                connection,
                message,
            } => {
                let Some(MiddlewareHandler::Chat(m)) = find::<P>(MiddlewareKind::Chat, &middleware)
                else {
                    return missing(MiddlewareKind::Chat, &middleware);
                };
                let ctx = ChatContext::new(room, connection, message, services);
                let (ctx, passed) = m.run(chat, ctx).await;
                passed
                    .map(|()| MiddlewareOutcome {
                        message: ctx.into_message(),
                        ..MiddlewareOutcome::default()
                    })
                    .into()
            }
        }
    })
}

async fn connection_hook<P: Exports>(
    create: bool,
    middleware: &str,
    connection: crate::ConnectionInfo,
    services: Arc<dyn HostServices>,
) -> MiddlewareReply {
    let Some(MiddlewareHandler::Connection(m)) = find::<P>(MiddlewareKind::Connection, middleware)
    else {
        return missing(MiddlewareKind::Connection, middleware);
    };
    let ctx = ConnectionContext::new(connection, services);
    let (ctx, passed) = if create {
        m.create(ctx).await
    } else {
        m.destroy(ctx).await
    };
    passed
        .map(|()| MiddlewareOutcome {
            connection: Some(ctx.into_connection()),
            ..MiddlewareOutcome::default()
        })
        .into()
}

unsafe extern "C" fn free(buf: FfiBuf) {
    // SAFETY: the host hands back only buffers this library wrote, once.
    let _ = catch_unwind(AssertUnwindSafe(|| unsafe { buf.free_local() }));
}

/// Drives `future` to completion on the calling thread, inside the library's runtime
/// (what it spawns runs on the runtime's workers); a panic becomes its message.
fn block_on<T>(future: BoxFuture<'static, T>) -> Result<T, String> {
    let runtime = runtime()?;
    catch_unwind(AssertUnwindSafe(|| runtime.block_on(future)))
        .map_err(|panic| panic_text(panic.as_ref()))
}

/// [`HostServices`] over the host's table: each call is one JSON round trip.
struct Remote {
    host: HostVTable,
    ctx: *const c_void,
}

// SAFETY: the host context is reference-counted and thread-safe on the host side.
unsafe impl Send for Remote {}
// SAFETY: as above.
unsafe impl Sync for Remote {}

impl Remote {
    fn new(host: HostVTable, ctx: *const c_void) -> Self {
        // SAFETY: `ctx` is the live context of the current call; retaining it keeps it
        // valid for as long as this value (and any clone of the action's Context) lives.
        unsafe { (host.retain)(ctx) };
        Self { host, ctx }
    }

    /// One service call, awaitable like a static plugin's: the host's (blocking) entry
    /// point runs on the library runtime's blocking pool, so the action's task is free
    /// meanwhile, and a `select!` or timeout around the call can drop it. A dropped
    /// call still completes on its thread, holding its own reference to the context.
    fn request<T: DeserializeOwned + Send + 'static>(
        &self,
        call: ServiceCall,
    ) -> BoxFuture<'static, ServiceResult<T>> {
        let remote = Remote::new(self.host, self.ctx);
        Box::pin(async move {
            let request = serde_json::to_vec(&call)
                .map_err(|e| ServiceError::Unavailable(format!("unserializable request: {e}")))?;
            let runtime = runtime().map_err(ServiceError::Unavailable)?;
            let reply = runtime
                .spawn_blocking(move || {
                    // Moved whole (not field by field): it is what is `Send`, and its
                    // drop releases the context after the call.
                    let remote = remote;
                    service_raw(remote.host, remote.ctx, &request)
                })
                .await
                .map_err(|e| {
                    ServiceError::Unavailable(format!("host service call failed: {e}"))
                })??;
            let reply: Reply<T, ServiceError> = serde_json::from_slice(&reply)
                .map_err(|e| ServiceError::Unavailable(format!("malformed host reply: {e}")))?;
            reply.into()
        })
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        // SAFETY: balances the retain in `new`.
        unsafe { (self.host.release)(self.ctx) };
    }
}

/// One raw service round trip: request bytes in, reply bytes out.
fn service_raw(host: HostVTable, ctx: *const c_void, request: &[u8]) -> ServiceResult<Vec<u8>> {
    let mut out = FfiBuf::EMPTY;
    // SAFETY: `ctx` is retained by the caller, `request` outlives the call, `out` is ours.
    let status = unsafe { (host.service)(ctx, FfiStr::borrow(request), &mut out) };
    // SAFETY: the host wrote `out` (or left it empty); it is freed right after.
    let bytes = unsafe { out.to_vec() };
    // SAFETY: the host's buffer goes back to the host's free, once.
    unsafe { (host.free)(out) };
    if status == STATUS_OK {
        Ok(bytes)
    } else {
        Err(ServiceError::Unavailable(
            String::from_utf8_lossy(&bytes).into_owned(),
        ))
    }
}

/// Sends raw bytes to the host's service function, as a broken plugin might; for
/// tests of the host's robustness. Only valid inside a dynamic action's call.
///
/// # Errors
///
/// Outside a dynamic call, or whatever the host answers to the bytes.
#[doc(hidden)]
pub fn raw_service_call(request: &[u8]) -> ServiceResult<Vec<u8>> {
    let ctx = CURRENT.get();
    let host = HOST.get().copied();
    match host {
        Some(host) if !ctx.is_null() => service_raw(host, ctx, request),
        _ => Err(ServiceError::Unavailable(
            "not inside a dynamic plugin call".into(),
        )),
    }
}

impl HostServices for Remote {
    fn cache_get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ServiceResult<Option<Value>>> {
        self.request(ServiceCall::CacheGet { key: key.into() })
    }

    fn cache_set<'a>(
        &'a self,
        key: &'a str,
        value: Value,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, ServiceResult<()>> {
        let ttl_ms = ttl.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.request(ServiceCall::CacheSet {
            key: key.into(),
            value,
            ttl_ms,
        })
    }

    fn cache_delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ServiceResult<bool>> {
        self.request(ServiceCall::CacheDelete { key: key.into() })
    }

    fn room_broadcast<'a>(
        &'a self,
        room: &'a str,
        from: &'a str,
        message: Value,
    ) -> BoxFuture<'a, ServiceResult<()>> {
        self.request(ServiceCall::RoomBroadcast {
            room: room.into(),
            from: from.into(),
            message,
        })
    }

    fn room_members<'a>(&'a self, room: &'a str) -> BoxFuture<'a, ServiceResult<Vec<String>>> {
        self.request(ServiceCall::RoomMembers { room: room.into() })
    }

    fn room_create<'a>(&'a self, room: &'a str, auth: Params) -> BoxFuture<'a, ServiceResult<()>> {
        self.request(ServiceCall::RoomCreate {
            room: room.into(),
            auth,
        })
    }

    fn room_delete<'a>(&'a self, room: &'a str) -> BoxFuture<'a, ServiceResult<()>> {
        self.request(ServiceCall::RoomDelete { room: room.into() })
    }

    fn room_add<'a>(
        &'a self,
        connection: &'a str,
        room: &'a str,
    ) -> BoxFuture<'a, ServiceResult<()>> {
        self.request(ServiceCall::RoomAdd {
            connection: connection.into(),
            room: room.into(),
        })
    }

    fn room_remove<'a>(
        &'a self,
        connection: &'a str,
        room: &'a str,
    ) -> BoxFuture<'a, ServiceResult<()>> {
        self.request(ServiceCall::RoomRemove {
            connection: connection.into(),
            room: room.into(),
        })
    }

    fn set_attribute<'a>(
        &'a self,
        connection: &'a str,
        key: &'a str,
        value: Value,
    ) -> BoxFuture<'a, ServiceResult<()>> {
        self.request(ServiceCall::SetAttribute {
            connection: connection.into(),
            key: key.into(),
            value,
        })
    }

    fn host_status(&self) -> BoxFuture<'_, ServiceResult<Value>> {
        self.request(ServiceCall::HostStatus)
    }
}
