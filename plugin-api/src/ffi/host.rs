//! The host side: checking a loaded library's header, calling it, and the table of
//! host services handed to it. The host crate itself only opens the library.

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, OnceLock};

use super::abi::{
    ABI_VERSION, FfiBuf, FfiStr, FreeFn, HEADER_FLAG_PANIC_ABORT, HostVTable, MIN_HEADER_SIZE,
    PluginHeader, PluginHeaderV1, STATUS_OK, STATUS_PANIC, STATUS_PENDING, StartFn, appended,
};
use super::log::level_number;
use super::wire::{
    CALL_MIDDLEWARE, CallReply, CallRequest, DESCRIBE_MIDDLEWARE, MiddlewareCall, MiddlewareList,
    MiddlewareReply, Reply, dispatch,
};
use crate::{ActionDefinition, HostServices};

/// The type of a plugin's entry symbol.
pub type EntryFn = unsafe extern "C" fn() -> *const PluginHeader;

/// Why a library's header is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// The entry symbol returned null.
    #[error("the entry symbol returned a null header")]
    Null,
    /// Another ABI version.
    #[error("ABI version {found}, this host speaks ABI version {expected}")]
    AbiVersion {
        /// What the library declares.
        found: u32,
        /// What this host speaks.
        expected: u32,
    },
    /// A header smaller than this ABI's.
    #[error("header is {found} bytes, this host needs at least {expected}")]
    TooSmall {
        /// What the library declares.
        found: u32,
        /// What this host needs.
        expected: usize,
    },
    /// Built for another target.
    #[error("built for {found}, this host is {expected}")]
    Target {
        /// The library's target triple.
        found: String,
        /// The host's.
        expected: String,
    },
    /// Built with `panic = "abort"`: the boundary's `catch_unwind` cannot stop its panics.
    #[error(
        "built with panic = \"abort\": a panic in it would kill the host; build it with \
         panic = \"unwind\" (the default: remove panic = \"abort\" from the [profile] it is \
         built with)"
    )]
    PanicAbort,
}

/// A call across the boundary failed (as opposed to an action returning an error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The plugin refused the request as malformed.
    #[error("the plugin refused the request: {0}")]
    BadRequest(String),
    /// The plugin panicked (the panic was caught inside the plugin).
    #[error("the plugin panicked: {0}")]
    Panic(String),
    /// The plugin's reply could not be read.
    #[error("malformed reply from the plugin: {0}")]
    Malformed(String),
}

/// A loaded plugin's checked header. Copyable; the library is never unloaded.
///
/// Only the frozen v1 prefix is held by reference (every accepted header is at least
/// that long); fields appended since are copied out at [`Plugin::from_raw`], when the
/// header's `struct_size` covers them.
#[derive(Debug, Clone, Copy)]
pub struct Plugin {
    header: &'static PluginHeaderV1,
    flags: u64,
    /// The appended `start`, when the header carries it.
    start: Option<StartFn>,
}

fn text(s: FfiStr) -> String {
    // SAFETY: header strings point at the library's static data, which lives for the
    // rest of the process (libraries are never unloaded).
    String::from_utf8_lossy(unsafe { s.as_bytes() }).into_owned()
}

/// The plugin-api version a header declares, read from the prefix every ABI version
/// shares (`abi_version`, `struct_size`, `api_version`): what a refusal names even when
/// the rest of the header is of another ABI. `None` if the header is null, too short to
/// hold it, or the text is not a version.
///
/// # Safety
///
/// As for [`Plugin::from_raw`]: `header` is what a loaded library's entry symbol
/// returned, and that library is never unloaded.
pub unsafe fn declared_api_version(header: *const PluginHeader) -> Option<String> {
    const END: usize = std::mem::offset_of!(PluginHeaderV1, api_version) + size_of::<FfiStr>();
    if header.is_null() {
        return None;
    }
    // SAFETY: a non-null header has at least its two leading words; the version is read
    // only when the header says it is large enough to hold it.
    let version = unsafe {
        let struct_size = header.cast::<u32>().add(1).read();
        if (struct_size as usize) < END {
            return None;
        }
        std::ptr::addr_of!((*header.cast::<PluginHeaderV1>()).api_version).read()
    };
    if version.len == 0 || version.len > 64 || version.ptr.is_null() {
        return None;
    }
    // SAFETY: the shared prefix makes this a `'static` string of the library (checked
    // for length above; libraries are never unloaded).
    let bytes = unsafe { version.as_bytes() };
    let text = std::str::from_utf8(bytes).ok()?;
    text.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'))
        .then(|| text.to_owned())
}

impl Plugin {
    /// Checks the header an entry symbol returned: not null, this ABI version, at least
    /// v1 long, same target, built to unwind.
    ///
    /// # Safety
    ///
    /// `header` is what a loaded library's entry symbol returned, and that library is
    /// never unloaded.
    ///
    /// # Errors
    ///
    /// The reason the header is refused.
    pub unsafe fn from_raw(header: *const PluginHeader) -> Result<Self, HeaderError> {
        if header.is_null() {
            return Err(HeaderError::Null);
        }
        // Read the two leading words before anything else: their meaning is the one
        // thing every ABI version shares.
        // SAFETY: a non-null header has at least these two fields.
        let (abi_version, struct_size) = unsafe {
            let words = header.cast::<u32>();
            (words.read(), words.add(1).read())
        };
        if abi_version != ABI_VERSION {
            return Err(HeaderError::AbiVersion {
                found: abi_version,
                expected: ABI_VERSION,
            });
        }
        if (struct_size as usize) < MIN_HEADER_SIZE {
            return Err(HeaderError::TooSmall {
                found: struct_size,
                expected: MIN_HEADER_SIZE,
            });
        }
        // SAFETY: same ABI and at least v1 long: its v1 prefix is ours, static,
        // immutable. Nothing past that prefix is referenced, only read when covered.
        let v1 = unsafe { &*header.cast::<PluginHeaderV1>() };
        // SAFETY: the header is `struct_size` bytes long; the field is read only if
        // that covers it. A header too old to carry the flags was built to unwind: the
        // only way before they existed (the boundary never supported anything else).
        let flags = unsafe {
            appended::<u64>(
                header.cast(),
                struct_size,
                std::mem::offset_of!(PluginHeader, flags),
            )
        }
        .unwrap_or(0);
        // SAFETY: as for the flags; a function pointer in a header of this ABI is one.
        let start = unsafe {
            appended::<StartFn>(
                header.cast(),
                struct_size,
                std::mem::offset_of!(PluginHeader, start),
            )
        };
        let plugin = Self {
            header: v1,
            flags,
            start,
        };
        let target = plugin.target();
        if target != super::abi::TARGET {
            return Err(HeaderError::Target {
                found: target,
                expected: super::abi::TARGET.into(),
            });
        }
        if plugin.flags & HEADER_FLAG_PANIC_ABORT != 0 {
            return Err(HeaderError::PanicAbort);
        }
        Ok(plugin)
    }

    /// The plugin's package name.
    pub fn name(&self) -> String {
        text(self.header.name)
    }

    /// The plugin's package version.
    pub fn version(&self) -> String {
        text(self.header.version)
    }

    /// The plugin-api version it was built against.
    pub fn api_version(&self) -> String {
        text(self.header.api_version)
    }

    /// The compiler that built it.
    pub fn rustc_version(&self) -> String {
        text(self.header.rustc_version)
    }

    /// Its target triple.
    pub fn target(&self) -> String {
        text(self.header.target)
    }

    /// Its ABI version.
    pub fn abi_version(&self) -> u32 {
        self.header.abi_version
    }

    /// Hands the plugin the host's table (log forwarding and services).
    ///
    /// # Errors
    ///
    /// The plugin refused the table or panicked.
    pub fn init(&self) -> Result<(), CallError> {
        // SAFETY: the table is 'static.
        let status = unsafe { (self.header.init)(host_vtable()) };
        match status {
            STATUS_OK => Ok(()),
            STATUS_PANIC => Err(CallError::Panic("in init".into())),
            other => Err(CallError::BadRequest(format!(
                "init returned status {other}"
            ))),
        }
    }

    /// The plugin's action definitions.
    ///
    /// # Errors
    ///
    /// The plugin failed or answered something that is not a list of definitions.
    pub fn describe(&self) -> Result<Vec<ActionDefinition>, CallError> {
        let mut out = FfiBuf::EMPTY;
        // SAFETY: `out` is ours to be written.
        let status = unsafe { (self.header.describe)(&mut out) };
        let bytes = self.take(out);
        check(status, &bytes)?;
        serde_json::from_slice(&bytes).map_err(|e| CallError::Malformed(e.to_string()))
    }

    /// Runs action `name` with `request` on the calling thread, to completion. Call it
    /// from a blocking-capable thread (`block_in_place` or the blocking pool), never the reactor.
    ///
    /// # Errors
    ///
    /// The call failed at the boundary (not: the action returned an error).
    pub fn call(
        &self,
        name: &str,
        request: &CallRequest,
        host: Arc<HostCall>,
    ) -> Result<CallReply, CallError> {
        self.call_json(name, request, Some(host))
    }

    /// The plugin's middleware definitions (none for a plugin built before middleware
    /// existed: it answers the reserved name as an unknown action, or refuses it).
    ///
    /// # Errors
    ///
    /// The plugin panicked or answered something unreadable.
    pub fn describe_middleware(&self) -> Result<MiddlewareList, CallError> {
        let request = CallRequest {
            version: 1,
            params: crate::Params::new(),
            connection: crate::ConnectionInfo::default(),
        };
        match self.call_json::<_, Reply<MiddlewareList, crate::ActionError>>(
            DESCRIBE_MIDDLEWARE,
            &request,
            None,
        ) {
            Ok(Reply::Ok(list)) => Ok(list),
            Ok(Reply::Error(_)) | Err(CallError::BadRequest(_)) => Ok(MiddlewareList::default()),
            Err(other) => Err(other),
        }
    }

    /// Runs one middleware hook on the calling thread, to completion (same thread rules
    /// as [`Plugin::call`]).
    ///
    /// # Errors
    ///
    /// The call failed at the boundary (not: the hook refused).
    pub fn call_middleware(
        &self,
        call: &MiddlewareCall,
        host: Arc<HostCall>,
    ) -> Result<MiddlewareReply, CallError> {
        self.call_json(CALL_MIDDLEWARE, call, Some(host))
    }

    /// Runs action `name` with a request already encoded by [`CallRequest::encode`].
    ///
    /// # Errors
    ///
    /// As [`Plugin::call`].
    pub fn call_encoded(
        &self,
        name: &str,
        request: &[u8],
        host: Arc<HostCall>,
    ) -> Result<CallReply, CallError> {
        self.call_bytes(name, request, Some(host))
    }

    /// Runs call `name` (an action or a reserved name) with an encoded request on the
    /// calling thread, to completion; the encoded reply.
    ///
    /// # Errors
    ///
    /// As [`Plugin::call`].
    pub fn call_bytes_for(
        &self,
        name: &str,
        request: &[u8],
        host: Arc<HostCall>,
    ) -> Result<Vec<u8>, CallError> {
        self.call_raw(name, request, Some(host))
    }

    fn call_json<Q: serde::Serialize, R: serde::de::DeserializeOwned>(
        &self,
        name: &str,
        request: &Q,
        host: Option<Arc<HostCall>>,
    ) -> Result<R, CallError> {
        let request =
            serde_json::to_vec(request).map_err(|e| CallError::BadRequest(e.to_string()))?;
        self.call_bytes(name, &request, host)
    }

    fn call_bytes<R: serde::de::DeserializeOwned>(
        &self,
        name: &str,
        request: &[u8],
        host: Option<Arc<HostCall>>,
    ) -> Result<R, CallError> {
        let bytes = self.call_raw(name, request, host)?;
        serde_json::from_slice(&bytes).map_err(|e| CallError::Malformed(e.to_string()))
    }

    fn call_raw(
        &self,
        name: &str,
        request: &[u8],
        host: Option<Arc<HostCall>>,
    ) -> Result<Vec<u8>, CallError> {
        // No host context (null) for requests that need no host services.
        let ctx = host.map_or(std::ptr::null(), |h| Arc::into_raw(h).cast::<c_void>());
        let mut out = FfiBuf::EMPTY;
        // SAFETY: both strings outlive the call; `ctx` holds one reference for the call.
        let status = unsafe {
            (self.header.call)(
                FfiStr::borrow(name.as_bytes()),
                FfiStr::borrow(request),
                ctx,
                &mut out,
            )
        };
        if !ctx.is_null() {
            // SAFETY: releases the reference taken by `into_raw` above.
            drop(unsafe { Arc::from_raw(ctx.cast::<HostCall>()) });
        }
        let bytes = self.take(out);
        check(status, &bytes)?;
        Ok(bytes)
    }

    /// Whether the plugin has `start` (built with a plugin-api that appended it).
    pub fn can_start(&self) -> bool {
        self.start.is_some()
    }

    /// Begins call `name` (an action, or a reserved name) with an encoded request. Its
    /// first poll runs on the calling thread (call it where blocking is allowed, e.g.
    /// in `block_in_place`); the rest, if any, on the plugin's runtime. `finished` runs
    /// once the plugin is done with the call, whether or not anyone still awaits it.
    /// `None` if the plugin has no `start` (use [`Plugin::call`]).
    pub fn start(
        &self,
        name: &str,
        request: &[u8],
        host: Arc<HostCall>,
        finished: Box<dyn FnOnce() + Send>,
    ) -> Option<Started> {
        let start = self.start?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let waiting = Box::into_raw(Box::new(Waiting {
            tx,
            free: self.header.free,
            finished,
        }))
        .cast::<c_void>();
        let ctx = Arc::into_raw(host).cast::<c_void>();
        let mut out = FfiBuf::EMPTY;
        // SAFETY: the strings outlive the call, `ctx` holds one reference for it (the
        // plugin retains its own for a pending call), `waiting` is the token `done`
        // takes back, `out` is ours to be written.
        let status = unsafe {
            start(
                FfiStr::borrow(name.as_bytes()),
                FfiStr::borrow(request),
                ctx,
                done,
                waiting,
                &mut out,
            )
        };
        // SAFETY: releases the reference taken by `into_raw` above.
        drop(unsafe { Arc::from_raw(ctx.cast::<HostCall>()) });
        let bytes = self.take(out);
        if status == STATUS_PENDING {
            return Some(Started::Pending(PendingCall(rx)));
        }
        // Finished in place: the token is still ours.
        // SAFETY: `waiting` came from `Box::into_raw` above and `done` was not called.
        let waiting = unsafe { Box::from_raw(waiting.cast::<Waiting>()) };
        (waiting.finished)();
        Some(Started::Done(check(status, &bytes).map(|()| bytes)))
    }

    /// Copies a plugin-written buffer out and frees it with the plugin's `free`.
    fn take(&self, out: FfiBuf) -> Vec<u8> {
        // SAFETY: the plugin wrote `out` (or left it empty) and nobody freed it.
        let bytes = unsafe { out.to_vec() };
        // SAFETY: the buffer goes back to its allocator, once.
        unsafe { (self.header.free)(out) };
        bytes
    }
}

fn check(status: i32, bytes: &[u8]) -> Result<(), CallError> {
    let message = || String::from_utf8_lossy(bytes).into_owned();
    match status {
        STATUS_OK => Ok(()),
        STATUS_PANIC => Err(CallError::Panic(message())),
        _ => Err(CallError::BadRequest(message())),
    }
}

/// How a started call goes on.
#[derive(Debug)]
pub enum Started {
    /// It finished in its first poll: the encoded reply, or why the call failed.
    Done(Result<Vec<u8>, CallError>),
    /// It goes on on the plugin's runtime.
    Pending(PendingCall),
}

/// A call going on on a plugin's runtime; resolves to its encoded reply when it ends.
/// Dropping it stops waiting, not the call.
#[derive(Debug)]
pub struct PendingCall(tokio::sync::oneshot::Receiver<(i32, Vec<u8>)>);

impl std::future::Future for PendingCall {
    type Output = Result<Vec<u8>, CallError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|answer| match answer {
                Ok((status, bytes)) => check(status, &bytes).map(|()| bytes),
                Err(_) => Err(CallError::Panic("the plugin dropped the call".into())),
            })
    }
}

/// The token of a pending call: where `done` sends the reply.
struct Waiting {
    tx: tokio::sync::oneshot::Sender<(i32, Vec<u8>)>,
    free: FreeFn,
    finished: Box<dyn FnOnce() + Send>,
}

unsafe extern "C" fn done(token: *mut c_void, status: i32, reply: FfiBuf) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if token.is_null() {
            return;
        }
        // SAFETY: `token` is a `Waiting` from `Plugin::start`, handed back once.
        let waiting = unsafe { Box::from_raw(token.cast::<Waiting>()) };
        // SAFETY: the plugin wrote `reply`; it goes back to the plugin's `free`, once.
        let bytes = unsafe { reply.to_vec() };
        // SAFETY: as above.
        unsafe { (waiting.free)(reply) };
        let Waiting { tx, finished, .. } = *waiting;
        let _ = tx.send((status, bytes));
        finished();
    }));
}

/// What a plugin's service requests run against during one call: the host's
/// services and the runtime to drive them on.
#[derive(Debug)]
pub struct HostCall {
    services: Arc<dyn HostServices>,
    handle: tokio::runtime::Handle,
}

impl HostCall {
    /// A context for one call; `handle` runs the (async) services from the plugin's thread.
    pub fn new(services: Arc<dyn HostServices>, handle: tokio::runtime::Handle) -> Arc<Self> {
        Arc::new(Self { services, handle })
    }
}

/// The host's table, built once (it captures the log level in force then).
pub fn host_vtable() -> &'static HostVTable {
    static TABLE: OnceLock<HostVTable> = OnceLock::new();
    TABLE.get_or_init(|| HostVTable {
        struct_size: std::mem::size_of::<HostVTable>() as u32,
        max_log_level: tracing::level_filters::LevelFilter::current()
            .into_level()
            .map_or(0, level_number),
        service,
        retain,
        release,
        log,
        free,
        #[cfg(feature = "__test-abi-next")]
        abi_next: super::export::ABI_NEXT_PROBE,
    })
}

unsafe extern "C" fn service(ctx: *const c_void, request: FfiStr, out: *mut FfiBuf) -> i32 {
    let run = AssertUnwindSafe(|| {
        if ctx.is_null() {
            return (
                super::abi::STATUS_BAD_REQUEST,
                b"null host context".to_vec(),
            );
        }
        // SAFETY: the plugin holds a reference on `ctx` (retain) for as long as it uses it.
        let call = unsafe { &*ctx.cast::<HostCall>() };
        // SAFETY: `request` is valid for this call.
        let request = unsafe { request.as_bytes() };
        let run = || {
            call.handle
                .block_on(dispatch(call.services.as_ref(), request))
        };
        // A plugin normally calls in from its own blocking pool; a synchronous call
        // from inside a call's first poll arrives on a host worker, which may block
        // only once handed off.
        let reply = if tokio::runtime::Handle::try_current().is_ok() {
            tokio::task::block_in_place(run)
        } else {
            run()
        };
        (STATUS_OK, reply)
    });
    let (status, bytes) = match catch_unwind(run) {
        Ok(done) => done,
        Err(_) => (STATUS_PANIC, b"the host service panicked".to_vec()),
    };
    if !out.is_null() {
        // SAFETY: `out` is the plugin's writable out-pointer.
        unsafe { out.write(FfiBuf::from_vec(bytes)) };
    }
    status
}

unsafe extern "C" fn retain(ctx: *const c_void) {
    if !ctx.is_null() {
        // SAFETY: `ctx` came from `Arc::into_raw` in `Plugin::call` and is still live.
        let _ = catch_unwind(|| unsafe { Arc::increment_strong_count(ctx.cast::<HostCall>()) });
    }
}

unsafe extern "C" fn release(ctx: *const c_void) {
    if !ctx.is_null() {
        // SAFETY: balances one `retain`. Dropping the last reference drops the host's
        // services handle, which must not unwind into the plugin.
        let _ = catch_unwind(|| unsafe { Arc::decrement_strong_count(ctx.cast::<HostCall>()) });
    }
}

unsafe extern "C" fn log(level: u32, target: FfiStr, message: FfiStr) {
    let _ = catch_unwind(|| {
        // SAFETY: both are valid for this call.
        let (target, message) = unsafe { (target.as_bytes(), message.as_bytes()) };
        let target = String::from_utf8_lossy(target);
        let message = String::from_utf8_lossy(message);
        match level {
            1 => tracing::error!(target: "hero::plugin", plugin = %target, "{message}"),
            2 => tracing::warn!(target: "hero::plugin", plugin = %target, "{message}"),
            3 => tracing::info!(target: "hero::plugin", plugin = %target, "{message}"),
            4 => tracing::debug!(target: "hero::plugin", plugin = %target, "{message}"),
            _ => tracing::trace!(target: "hero::plugin", plugin = %target, "{message}"),
        }
    });
}

unsafe extern "C" fn free(buf: FfiBuf) {
    // SAFETY: the plugin hands back only buffers the host wrote, once.
    let _ = catch_unwind(AssertUnwindSafe(|| unsafe { buf.free_local() }));
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{Action, ActionHandler, ActionResult, Context, json};

    struct Echo;
    impl Action for Echo {
        fn definition(&self) -> ActionDefinition {
            ActionDefinition::new("echo")
        }
        async fn run(&self, ctx: Context) -> ActionResult {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            Ok(json!({ "params": ctx.params() }))
        }
    }

    struct Exported;
    impl super::super::Exports for Exported {
        const NAME: &'static str = "echo-plugin";
        const VERSION: &'static str = "1.2.3";
        fn handlers() -> &'static [ActionHandler] {
            static HANDLERS: OnceLock<Vec<ActionHandler>> = OnceLock::new();
            HANDLERS.get_or_init(|| vec![ActionHandler::new(Echo)])
        }
    }

    fn leaked(edit: impl FnOnce(&mut PluginHeader)) -> *const PluginHeader {
        let mut header = super::super::header::<Exported>();
        edit(&mut header);
        Box::leak(Box::new(header))
    }

    #[test]
    fn headers_are_checked_before_use() {
        // SAFETY (all calls): leaked headers live for the rest of the test process.
        assert_eq!(
            unsafe { Plugin::from_raw(std::ptr::null()) }.unwrap_err(),
            HeaderError::Null
        );
        let other_abi = leaked(|h| h.abi_version = ABI_VERSION + 1);
        assert!(matches!(
            unsafe { Plugin::from_raw(other_abi) },
            Err(HeaderError::AbiVersion { found, .. }) if found == ABI_VERSION + 1
        ));
        // The plugin-api version is readable whatever the ABI: refusals name it.
        assert_eq!(
            unsafe { declared_api_version(other_abi) }.as_deref(),
            Some(super::super::API_VERSION)
        );
        assert_eq!(unsafe { declared_api_version(std::ptr::null()) }, None);
        let garbled = leaked(|h| h.api_version = FfiStr::from_static("not a version!"));
        assert_eq!(unsafe { declared_api_version(garbled) }, None);
        let short = leaked(|h| h.struct_size = 8);
        assert_eq!(unsafe { declared_api_version(short) }, None);
        assert!(matches!(
            unsafe { Plugin::from_raw(short) },
            Err(HeaderError::TooSmall { found: 8, .. })
        ));
        let target = leaked(|h| h.target = FfiStr::from_static("sparc-sun-solaris"));
        assert!(matches!(
            unsafe { Plugin::from_raw(target) },
            Err(HeaderError::Target { .. })
        ));
        let good = unsafe { Plugin::from_raw(leaked(|_| ())) }.unwrap();
        assert_eq!(
            (good.name(), good.version()),
            ("echo-plugin".into(), "1.2.3".into())
        );
    }

    /// The v1 prefix of a header of this build, as a plugin built before any appended
    /// field would have made it.
    fn v1_of(h: &PluginHeader) -> PluginHeaderV1 {
        PluginHeaderV1 {
            abi_version: h.abi_version,
            struct_size: MIN_HEADER_SIZE as u32,
            api_version: h.api_version,
            rustc_version: h.rustc_version,
            target: h.target,
            name: h.name,
            version: h.version,
            init: h.init,
            describe: h.describe,
            call: h.call,
            free: h.free,
        }
    }

    #[test]
    fn the_v1_layouts_are_frozen() {
        // Pinned on 64-bit targets: a change here breaks every plugin and host built
        // before it, whatever `ABI_VERSION` says.
        #[cfg(target_pointer_width = "64")]
        assert_eq!((MIN_HEADER_SIZE, super::super::MIN_HOST_SIZE), (120, 48));
        // The flags are the first field appended to the header, right after v1.
        assert_eq!(std::mem::offset_of!(PluginHeader, flags), MIN_HEADER_SIZE);
        let header = super::super::header::<Exported>();
        assert!(header.struct_size as usize > MIN_HEADER_SIZE);
        assert_eq!(header.flags & HEADER_FLAG_PANIC_ABORT, 0);
    }

    #[test]
    fn a_v1_header_is_accepted_and_nothing_past_it_is_read() {
        // A v1 header followed by bytes that are all ones: a host reading the flags of
        // a header too short to carry them would see `panic = "abort"` and refuse it.
        #[repr(C)]
        struct V1ThenOnes {
            v1: PluginHeaderV1,
            ones: [u64; 4],
        }
        let old = |struct_size: usize| -> *const PluginHeader {
            let mut v1 = v1_of(&super::super::header::<Exported>());
            v1.struct_size = struct_size as u32;
            let leaked = Box::leak(Box::new(V1ThenOnes {
                v1,
                ones: [u64::MAX; 4],
            }));
            (&raw const *leaked).cast()
        };
        // SAFETY (both): leaked, so they live for the rest of the test process.
        let plugin = unsafe { Plugin::from_raw(old(MIN_HEADER_SIZE)) }.unwrap();
        assert_eq!(plugin.flags, 0, "read as built to unwind");
        assert_eq!(plugin.name(), "echo-plugin");
        assert_eq!(plugin.describe().unwrap()[0].name, "echo");
        // One byte short of v1 is too small.
        assert!(matches!(
            unsafe { Plugin::from_raw(old(MIN_HEADER_SIZE - 1)) },
            Err(HeaderError::TooSmall {
                expected: MIN_HEADER_SIZE,
                ..
            })
        ));
    }

    #[test]
    fn a_header_longer_than_this_build_s_is_accepted() {
        // A newer plugin-api appended fields this host does not know: it reads its own.
        #[repr(C)]
        struct Newer {
            current: PluginHeader,
            unknown: [u64; 2],
        }
        let mut current = super::super::header::<Exported>();
        current.struct_size = size_of::<Newer>() as u32;
        let newer = Box::leak(Box::new(Newer {
            current,
            unknown: [u64::MAX; 2],
        }));
        // SAFETY: leaked, so it lives for the rest of the test process.
        let plugin = unsafe { Plugin::from_raw((&raw const *newer).cast()) }.unwrap();
        assert_eq!(plugin.flags, 0);
        assert_eq!(plugin.version(), "1.2.3");
    }

    struct AbortBuilt;
    impl super::super::Exports for AbortBuilt {
        const NAME: &'static str = "abort-plugin";
        const VERSION: &'static str = "0.1.0";
        const PANIC_ABORT: bool = true;
        fn handlers() -> &'static [ActionHandler] {
            Exported::handlers()
        }
    }

    #[test]
    fn a_panic_abort_build_is_refused_unless_its_header_predates_the_flag() {
        let header = super::super::header::<AbortBuilt>();
        assert_eq!(header.flags, HEADER_FLAG_PANIC_ABORT);
        let abort = Box::leak(Box::new(header));
        // SAFETY (both): leaked headers live for the rest of the test process.
        let refused = unsafe { Plugin::from_raw(&raw const *abort) }.unwrap_err();
        assert_eq!(refused, HeaderError::PanicAbort);
        assert!(
            refused.to_string().starts_with(
                "built with panic = \"abort\": a panic in it would kill the host; build it \
                 with panic = \"unwind\""
            ),
            "{refused}"
        );
        // Declared as v1, the flags are not part of the header: accepted as unwind.
        abort.struct_size = MIN_HEADER_SIZE as u32;
        assert!(unsafe { Plugin::from_raw(&raw const *abort) }.is_ok());
    }

    #[test]
    fn a_plugin_accepts_host_tables_from_v1_up_and_refuses_shorter_ones() {
        // A newer host's table: longer than this build's, its extra fields unknown.
        #[repr(C)]
        struct Newer {
            current: HostVTable,
            unknown: [u64; 2],
        }
        let mut current = *host_vtable();
        current.struct_size = size_of::<Newer>() as u32;
        let newer = Box::leak(Box::new(Newer {
            current,
            unknown: [u64::MAX; 2],
        }));
        let plugin = unsafe { Plugin::from_raw(leaked(|_| ())) }.unwrap();
        // SAFETY (all): the header's `init` takes any table that lives for the process.
        let init = plugin.header.init;
        assert_eq!(unsafe { init((&raw const *newer).cast()) }, STATUS_OK);
        let mut short = *host_vtable();
        short.struct_size = super::super::MIN_HOST_SIZE as u32 - 1;
        let short = Box::leak(Box::new(short));
        assert_eq!(
            unsafe { init(&raw const *short) },
            super::super::STATUS_BAD_REQUEST
        );
        assert_eq!(
            unsafe { init(std::ptr::null()) },
            super::super::STATUS_BAD_REQUEST
        );
    }

    #[test]
    fn a_call_round_trips_through_the_c_functions() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let plugin = unsafe { Plugin::from_raw(leaked(|_| ())) }.unwrap();
        plugin.init().unwrap();
        assert_eq!(plugin.describe().unwrap()[0].name, "echo");
        let mut params = crate::Params::new();
        params.insert("a".into(), json!(1));
        let request = CallRequest {
            version: 1,
            params,
            connection: Default::default(),
        };
        let services: Arc<dyn HostServices> = Arc::new(NoServices);
        let host = HostCall::new(services, runtime.handle().clone());
        let reply: Result<_, _> = plugin.call("echo", &request, host).unwrap().into();
        assert_eq!(reply.unwrap(), json!({ "params": { "a": 1 } }));
        let unknown: Result<_, crate::ActionError> = plugin
            .call(
                "nope",
                &request,
                HostCall::new(Arc::new(NoServices), runtime.handle().clone()),
            )
            .unwrap()
            .into();
        assert_eq!(unknown.unwrap_err().kind, crate::ErrorKind::UnknownAction);
    }

    struct NoServices;
    fn none<'a, T: Send + 'a>() -> crate::BoxFuture<'a, crate::ServiceResult<T>> {
        Box::pin(std::future::ready(Err(crate::ServiceError::Unavailable(
            "none".into(),
        ))))
    }
    impl HostServices for NoServices {
        fn cache_get<'a>(
            &'a self,
            _: &'a str,
        ) -> crate::BoxFuture<'a, crate::ServiceResult<Option<serde_json::Value>>> {
            none()
        }
        fn cache_set<'a>(
            &'a self,
            _: &'a str,
            _: serde_json::Value,
            _: Option<std::time::Duration>,
        ) -> crate::BoxFuture<'a, crate::ServiceResult<()>> {
            none()
        }
        fn cache_delete<'a>(
            &'a self,
            _: &'a str,
        ) -> crate::BoxFuture<'a, crate::ServiceResult<bool>> {
            none()
        }
        fn room_broadcast<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
            _: serde_json::Value,
        ) -> crate::BoxFuture<'a, crate::ServiceResult<()>> {
            none()
        }
        fn room_members<'a>(
            &'a self,
            _: &'a str,
        ) -> crate::BoxFuture<'a, crate::ServiceResult<Vec<String>>> {
            none()
        }
        fn room_create<'a>(
            &'a self,
            _: &'a str,
            _: crate::Params,
        ) -> crate::BoxFuture<'a, crate::ServiceResult<()>> {
            none()
        }
        fn room_delete<'a>(&'a self, _: &'a str) -> crate::BoxFuture<'a, crate::ServiceResult<()>> {
            none()
        }
        fn room_add<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
        ) -> crate::BoxFuture<'a, crate::ServiceResult<()>> {
            none()
        }
        fn room_remove<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
        ) -> crate::BoxFuture<'a, crate::ServiceResult<()>> {
            none()
        }
        fn set_attribute<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
            _: serde_json::Value,
        ) -> crate::BoxFuture<'a, crate::ServiceResult<()>> {
            none()
        }
        fn host_status(&self) -> crate::BoxFuture<'_, crate::ServiceResult<serde_json::Value>> {
            none()
        }
    }
}
