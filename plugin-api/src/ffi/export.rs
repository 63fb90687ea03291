//! The plugin side: the functions behind a plugin's header, generated per plugin by
//! [`export_plugin!`](crate::export_plugin).

use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::abi::{
    self, FfiBuf, FfiStr, HostVTable, MIN_HOST_SIZE, PluginHeader, STATUS_BAD_REQUEST, STATUS_OK,
    STATUS_PANIC,
};
use super::log;
use super::wire::{CallReply, CallRequest, Reply, ServiceCall};
use crate::{
    ActionError, ActionHandler, BoxFuture, Context, HostServices, Params, ServiceError,
    ServiceResult,
};

/// One plugin crate's exports; implemented by the code `export_plugin!` generates.
pub trait Exports: 'static {
    /// Package name.
    const NAME: &'static str;
    /// Package version.
    const VERSION: &'static str;
    /// The plugin's actions (built once).
    fn handlers() -> &'static [ActionHandler];
}

/// The header of plugin `P`; `export_plugin!` puts it in a static.
pub const fn header<P: Exports>() -> PluginHeader {
    PluginHeader {
        abi_version: abi::ABI_VERSION,
        // The header is a few dozen bytes: the cast cannot truncate.
        struct_size: std::mem::size_of::<PluginHeader>() as u32,
        api_version: FfiStr::from_static(abi::API_VERSION),
        rustc_version: FfiStr::from_static(abi::RUSTC_VERSION),
        target: FfiStr::from_static(abi::TARGET),
        name: FfiStr::from_static(P::NAME),
        version: FfiStr::from_static(P::VERSION),
        init,
        describe: describe::<P>,
        call: call::<P>,
        free,
    }
}

/// The host's table, once `init` ran (one per loaded library).
static HOST: OnceLock<HostVTable> = OnceLock::new();

thread_local! {
    /// The plugin's own runtime, one per host thread that calls in: actions may use
    /// `tokio::time` and spawn local tasks, and building a runtime per call would cost
    /// more than the call.
    static RUNTIME: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
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
        // SAFETY: the host passes a table that lives for the rest of the process; read
        // its size first, and the rest only if it is at least as large as ours.
        let size = unsafe { host.cast::<u32>().read() };
        if (size as usize) < MIN_HOST_SIZE {
            return STATUS_BAD_REQUEST;
        }
        // SAFETY: as above; the table is large enough.
        let table = unsafe { *host };
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

unsafe extern "C" fn call<P: Exports>(
    action: FfiStr,
    request: FfiStr,
    host_ctx: *const c_void,
    out: *mut FfiBuf,
) -> i32 {
    guarded(out, || {
        // SAFETY: `action` and `request` are valid for this call (the `call` contract).
        let (action, request) = unsafe { (action.as_bytes(), request.as_bytes()) };
        let Ok(name) = std::str::from_utf8(action) else {
            return (STATUS_BAD_REQUEST, b"action name is not UTF-8".to_vec());
        };
        let request: CallRequest = match serde_json::from_slice(request) {
            Ok(r) => r,
            Err(e) => {
                return (
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
            return (STATUS_OK, serde_json::to_vec(&reply).unwrap_or_default());
        };
        let Some(host) = HOST.get().copied() else {
            return (STATUS_BAD_REQUEST, b"plugin called before init".to_vec());
        };
        let services = Arc::new(Remote::new(host, host_ctx));
        let ctx = Context::new(request.params, request.connection, services);
        let previous = CURRENT.replace(host_ctx);
        let result = block_on(handler.invoke(ctx));
        CURRENT.set(previous);
        match result {
            Ok(result) => {
                let reply = CallReply::from(result);
                match serde_json::to_vec(&reply) {
                    Ok(bytes) => (STATUS_OK, bytes),
                    Err(e) => (
                        STATUS_BAD_REQUEST,
                        format!("unserializable result: {e}").into_bytes(),
                    ),
                }
            }
            Err(message) => (STATUS_PANIC, message.into_bytes()),
        }
    })
}

unsafe extern "C" fn free(buf: FfiBuf) {
    // SAFETY: the host hands back only buffers this library wrote, once.
    let _ = catch_unwind(AssertUnwindSafe(|| unsafe { buf.free_local() }));
}

/// Runs `future` on this thread's plugin runtime; a panic becomes its message.
fn block_on<T>(future: BoxFuture<'static, T>) -> Result<T, String> {
    RUNTIME.with(|cell| {
        let mut slot = cell
            .try_borrow_mut()
            .map_err(|_| "re-entrant call into the plugin on one thread".to_owned())?;
        if slot.is_none() {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the plugin runtime: {e}"))?;
            *slot = Some(runtime);
        }
        let runtime = slot.as_ref().ok_or("no plugin runtime")?;
        catch_unwind(AssertUnwindSafe(|| runtime.block_on(future)))
            .map_err(|panic| panic_text(panic.as_ref()))
    })
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

    fn request<T: DeserializeOwned>(&self, call: &ServiceCall) -> ServiceResult<T> {
        let request = serde_json::to_vec(call)
            .map_err(|e| ServiceError::Unavailable(format!("unserializable request: {e}")))?;
        let reply = service_raw(self.host, self.ctx, &request)?;
        let reply: Reply<T, ServiceError> = serde_json::from_slice(&reply)
            .map_err(|e| ServiceError::Unavailable(format!("malformed host reply: {e}")))?;
        reply.into()
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

fn ready<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

impl HostServices for Remote {
    fn cache_get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ServiceResult<Option<Value>>> {
        ready(self.request(&ServiceCall::CacheGet { key: key.into() }))
    }

    fn cache_set<'a>(
        &'a self,
        key: &'a str,
        value: Value,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, ServiceResult<()>> {
        let ttl_ms = ttl.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        ready(self.request(&ServiceCall::CacheSet {
            key: key.into(),
            value,
            ttl_ms,
        }))
    }

    fn cache_delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ServiceResult<bool>> {
        ready(self.request(&ServiceCall::CacheDelete { key: key.into() }))
    }

    fn room_broadcast<'a>(
        &'a self,
        room: &'a str,
        from: &'a str,
        message: Value,
    ) -> BoxFuture<'a, ServiceResult<()>> {
        ready(self.request(&ServiceCall::RoomBroadcast {
            room: room.into(),
            from: from.into(),
            message,
        }))
    }

    fn room_members<'a>(&'a self, room: &'a str) -> BoxFuture<'a, ServiceResult<Vec<String>>> {
        ready(self.request(&ServiceCall::RoomMembers { room: room.into() }))
    }

    fn room_create<'a>(&'a self, room: &'a str, auth: Params) -> BoxFuture<'a, ServiceResult<()>> {
        ready(self.request(&ServiceCall::RoomCreate {
            room: room.into(),
            auth,
        }))
    }

    fn room_delete<'a>(&'a self, room: &'a str) -> BoxFuture<'a, ServiceResult<()>> {
        ready(self.request(&ServiceCall::RoomDelete { room: room.into() }))
    }

    fn room_add<'a>(
        &'a self,
        connection: &'a str,
        room: &'a str,
    ) -> BoxFuture<'a, ServiceResult<()>> {
        ready(self.request(&ServiceCall::RoomAdd {
            connection: connection.into(),
            room: room.into(),
        }))
    }

    fn room_remove<'a>(
        &'a self,
        connection: &'a str,
        room: &'a str,
    ) -> BoxFuture<'a, ServiceResult<()>> {
        ready(self.request(&ServiceCall::RoomRemove {
            connection: connection.into(),
            room: room.into(),
        }))
    }

    fn set_attribute<'a>(
        &'a self,
        connection: &'a str,
        key: &'a str,
        value: Value,
    ) -> BoxFuture<'a, ServiceResult<()>> {
        ready(self.request(&ServiceCall::SetAttribute {
            connection: connection.into(),
            key: key.into(),
            value,
        }))
    }

    fn host_status(&self) -> BoxFuture<'_, ServiceResult<Value>> {
        ready(self.request(&ServiceCall::HostStatus))
    }
}
