//! The `#[repr(C)]` types that cross the boundary, and the numbers that version them.

use std::ffi::c_void;

/// The ABI this crate speaks. Bumped only for changes a `struct_size` check cannot
/// absorb (see the module docs); independent of the crate's semver.
#[cfg(not(feature = "__test-wrong-abi"))]
pub const ABI_VERSION: u32 = 1;
/// The ABI this crate speaks (test build: deliberately wrong).
#[cfg(feature = "__test-wrong-abi")]
pub const ABI_VERSION: u32 = 0xDEAD;

/// Name prefix of a plugin's entry symbol; the rest is the plugin crate's name.
pub const ENTRY_PREFIX: &str = "hero_plugin_";

/// The `plugin-api` version a library was built against.
#[cfg(not(feature = "__test-wrong-abi"))]
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The `plugin-api` version a library was built against (test build: an old one, as a
/// library of another ABI would have been built with).
#[cfg(feature = "__test-wrong-abi")]
pub const API_VERSION: &str = "0.0.1-old";
/// The compiler that built this crate (and so the plugin).
pub const RUSTC_VERSION: &str = env!("HERO_RUSTC_VERSION");
/// The target triple this crate was built for.
pub const TARGET: &str = env!("HERO_TARGET");

/// A function succeeded; its output buffer holds a JSON reply.
pub const STATUS_OK: i32 = 0;
/// The request was malformed; the output buffer holds a UTF-8 message.
pub const STATUS_BAD_REQUEST: i32 = 1;
/// The callee panicked; the output buffer holds the panic message.
pub const STATUS_PANIC: i32 = 2;
/// `start` did not finish the call in its first poll: `done` will be called once.
pub const STATUS_PENDING: i32 = 3;

/// A borrowed byte string: valid for the duration of the call it is passed to, or
/// `'static` inside a [`PluginHeader`].
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct FfiStr {
    /// First byte (may be null when `len` is 0).
    pub ptr: *const u8,
    /// Length in bytes.
    pub len: usize,
}

impl FfiStr {
    /// Borrows a static string.
    pub const fn from_static(s: &'static str) -> Self {
        Self {
            ptr: s.as_ptr(),
            len: s.len(),
        }
    }

    /// Borrows bytes for one call; the caller keeps them alive until the call returns.
    pub fn borrow(bytes: &[u8]) -> Self {
        Self {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }

    /// The bytes.
    ///
    /// # Safety
    ///
    /// `ptr..ptr+len` must be readable for `'a` (the contract of the function that
    /// received this value).
    pub unsafe fn as_bytes<'a>(self) -> &'a [u8] {
        if self.ptr.is_null() || self.len == 0 {
            &[]
        } else {
            // SAFETY: the caller vouches for the range.
            unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
        }
    }
}

/// An owned byte buffer, freed only by the `free` function of the side that made it.
#[repr(C)]
#[derive(Debug)]
pub struct FfiBuf {
    /// First byte (null for the empty buffer).
    pub ptr: *mut u8,
    /// Length in bytes.
    pub len: usize,
    /// Capacity of the allocation.
    pub cap: usize,
}

impl FfiBuf {
    /// The empty buffer (owns nothing).
    pub const EMPTY: FfiBuf = FfiBuf {
        ptr: std::ptr::null_mut(),
        len: 0,
        cap: 0,
    };

    /// Hands a vector over; free it with [`FfiBuf::free_local`] on this side.
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        let mut bytes = std::mem::ManuallyDrop::new(bytes);
        Self {
            ptr: bytes.as_mut_ptr(),
            len: bytes.len(),
            cap: bytes.capacity(),
        }
    }

    /// Frees a buffer this copy of the crate made.
    ///
    /// # Safety
    ///
    /// `self` came from [`FfiBuf::from_vec`] in this same library and was not freed.
    pub unsafe fn free_local(self) {
        if !self.ptr.is_null() {
            // SAFETY: the parts came from a Vec of this allocator.
            drop(unsafe { Vec::from_raw_parts(self.ptr, self.len, self.cap) });
        }
    }

    /// Copies the bytes out.
    ///
    /// # Safety
    ///
    /// The buffer must be live (not yet freed) and `ptr..ptr+len` readable.
    pub unsafe fn to_vec(&self) -> Vec<u8> {
        if self.ptr.is_null() || self.len == 0 {
            Vec::new()
        } else {
            // SAFETY: the caller vouches for the buffer.
            unsafe { std::slice::from_raw_parts(self.ptr, self.len) }.to_vec()
        }
    }
}

/// `init(host)`: gives the plugin the host's services table. Returns a `STATUS_*`.
pub type InitFn = unsafe extern "C" fn(host: *const HostVTable) -> i32;
/// `describe(out)`: writes the JSON array of action definitions. Returns a `STATUS_*`.
pub type DescribeFn = unsafe extern "C" fn(out: *mut FfiBuf) -> i32;
/// `call(action, request, host_ctx, out)`: runs an action to completion (blocking the
/// calling thread); writes `{"ok": value}` or `{"error": ActionError}`.
pub type CallFn = unsafe extern "C" fn(
    action: FfiStr,
    request: FfiStr,
    host_ctx: *const c_void,
    out: *mut FfiBuf,
) -> i32;
/// `free(buf)`: frees a buffer the same side wrote.
pub type FreeFn = unsafe extern "C" fn(buf: FfiBuf);

/// What a plugin's entry symbol returns: identification, then its vtable.
///
/// Fields are append-only; `struct_size` tells the host which ones exist.
#[repr(C)]
#[derive(Debug)]
pub struct PluginHeader {
    /// [`ABI_VERSION`] of the `plugin-api` the plugin was built with.
    pub abi_version: u32,
    /// `size_of::<PluginHeader>()` in the plugin's build.
    pub struct_size: u32,
    /// The plugin-api crate version. With the two fields above, the prefix every ABI
    /// version keeps (a refusal for another ABI names it).
    pub api_version: FfiStr,
    /// `rustc -V` of the build.
    pub rustc_version: FfiStr,
    /// Target triple of the build.
    pub target: FfiStr,
    /// The plugin crate's package name.
    pub name: FfiStr,
    /// The plugin crate's version.
    pub version: FfiStr,
    /// See [`InitFn`].
    pub init: InitFn,
    /// See [`DescribeFn`].
    pub describe: DescribeFn,
    /// See [`CallFn`].
    pub call: CallFn,
    /// See [`FreeFn`].
    pub free: FreeFn,
    /// See [`StartFn`]. Appended after ABI 1's first release: read only when
    /// `struct_size` covers it (a plugin without it is called through `call`).
    pub start: StartFn,
}

/// `start(action, request, host_ctx, done, token, out)`: begins one call (an action, or
/// a reserved name, as `call` takes) and polls it once on the calling thread. Finished
/// then: the reply is in `out` with its status, as `call` would answer. Otherwise:
/// [`STATUS_PENDING`], the call goes on on the plugin's runtime (holding its own
/// reference to `host_ctx`), and `done(token, status, reply)` is called exactly once,
/// from a plugin thread, when it ends; `token` is the host's until then.
pub type StartFn = unsafe extern "C" fn(
    action: FfiStr,
    request: FfiStr,
    host_ctx: *const c_void,
    done: DoneFn,
    token: *mut c_void,
    out: *mut FfiBuf,
) -> i32;

/// `done(token, status, reply)`: the end of a pending call; the host frees `reply` with
/// the plugin's `free`.
pub type DoneFn = unsafe extern "C" fn(token: *mut c_void, status: i32, reply: FfiBuf);

// SAFETY: a header only points at `'static` immutable data and functions.
unsafe impl Sync for PluginHeader {}

/// `service(host_ctx, request, out)`: runs one host service call (`request` is a
/// [`ServiceCall`](super::ServiceCall) as JSON) and writes `{"ok": ..}` or `{"error": ServiceError}`.
pub type ServiceFn =
    unsafe extern "C" fn(host_ctx: *const c_void, request: FfiStr, out: *mut FfiBuf) -> i32;
/// `retain(host_ctx)` / `release(host_ctx)`: reference counting of a call context.
pub type RefFn = unsafe extern "C" fn(host_ctx: *const c_void);
/// `log(level, target, message)`: one log record (level 1 = error .. 5 = trace).
pub type LogFn = unsafe extern "C" fn(level: u32, target: FfiStr, message: FfiStr);

/// What the host gives a plugin at `init`: its services, as JSON in and out.
///
/// Lives for the rest of the process. Fields are append-only, like the header's.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct HostVTable {
    /// `size_of::<HostVTable>()` in the host's build.
    pub struct_size: u32,
    /// Most verbose level the host records (0 = off, 1 = error .. 5 = trace).
    pub max_log_level: u32,
    /// See [`ServiceFn`].
    pub service: ServiceFn,
    /// Takes a reference on a call context (a plugin keeping it past one call).
    pub retain: RefFn,
    /// Drops a reference taken with `retain`.
    pub release: RefFn,
    /// See [`LogFn`].
    pub log: LogFn,
    /// Frees a buffer the host wrote.
    pub free: FreeFn,
}

/// Smallest header a host of this ABI accepts: ABI 1 as first released, up to `free`.
pub const MIN_HEADER_SIZE: usize = std::mem::offset_of!(PluginHeader, start);
/// Smallest host table a plugin of this ABI accepts.
pub const MIN_HOST_SIZE: usize = std::mem::size_of::<HostVTable>();
