//! The `#[repr(C)]` types that cross the boundary, and the numbers that version them.
//!
//! [`PluginHeader`] and [`HostVTable`] grow by appending fields. Their first layouts are
//! frozen as [`PluginHeaderV1`] and [`HostVTableV1`]: those, not today's structs, set the
//! smallest size each side accepts ([`MIN_HEADER_SIZE`], [`MIN_HOST_SIZE`]), so a field
//! appended later does not lock out the builds made before it. A field past the v1
//! prefix is read only when the other side's `struct_size` covers it; compile-time
//! checks below keep today's structs a strict extension of v1.

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
    // --- end of v1: fields below are appended, read only when `struct_size` covers them.
    /// How the plugin was built: [`HEADER_FLAG_PANIC_ABORT`]. A header too old to carry
    /// it reads as 0 (built to unwind, the only way before the flag existed). A host
    /// ignores bits it does not know, so a bit added later must be one an older host
    /// may safely overlook.
    pub flags: u64,
    /// See [`StartFn`]. Appended after ABI 1's first release: read only when
    /// `struct_size` covers it (a plugin without it is called through `call`).
    pub start: StartFn,
    /// Test builds only: a field appended after every real one, as a newer plugin-api
    /// would, to prove older hosts ignore what they do not know.
    #[cfg(feature = "__test-abi-next")]
    pub abi_next: u64,
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

/// [`PluginHeader::flags`] bit: the plugin was built with `panic = "abort"`, so a panic
/// in it would abort the host instead of being caught at the boundary.
pub const HEADER_FLAG_PANIC_ABORT: u64 = 1;

/// The header as ABI version 1 first shipped it: frozen, never to change. Every later
/// [`PluginHeader`] starts with exactly these fields; its size is [`MIN_HEADER_SIZE`].
#[repr(C)]
#[derive(Debug)]
pub struct PluginHeaderV1 {
    /// See [`PluginHeader::abi_version`].
    pub abi_version: u32,
    /// See [`PluginHeader::struct_size`].
    pub struct_size: u32,
    /// See [`PluginHeader::api_version`].
    pub api_version: FfiStr,
    /// See [`PluginHeader::rustc_version`].
    pub rustc_version: FfiStr,
    /// See [`PluginHeader::target`].
    pub target: FfiStr,
    /// See [`PluginHeader::name`].
    pub name: FfiStr,
    /// See [`PluginHeader::version`].
    pub version: FfiStr,
    /// See [`PluginHeader::init`].
    pub init: InitFn,
    /// See [`PluginHeader::describe`].
    pub describe: DescribeFn,
    /// See [`PluginHeader::call`].
    pub call: CallFn,
    /// See [`PluginHeader::free`].
    pub free: FreeFn,
}

// SAFETY: as for `PluginHeader`, whose prefix this is.
unsafe impl Sync for PluginHeaderV1 {}

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
    // --- end of v1: fields below are appended, read only when `struct_size` covers them.
    /// Test builds only: a field appended after every real one, as a newer host would,
    /// to prove older plugins ignore it and newer ones do without it.
    #[cfg(feature = "__test-abi-next")]
    pub abi_next: u64,
}

/// The host table as ABI version 1 first shipped it: frozen, never to change. Every
/// later [`HostVTable`] starts with exactly these fields; its size is [`MIN_HOST_SIZE`].
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct HostVTableV1 {
    /// See [`HostVTable::struct_size`].
    pub struct_size: u32,
    /// See [`HostVTable::max_log_level`].
    pub max_log_level: u32,
    /// See [`HostVTable::service`].
    pub service: ServiceFn,
    /// See [`HostVTable::retain`].
    pub retain: RefFn,
    /// See [`HostVTable::release`].
    pub release: RefFn,
    /// See [`HostVTable::log`].
    pub log: LogFn,
    /// See [`HostVTable::free`].
    pub free: FreeFn,
}

/// Size of the v1 header (120 bytes on 64-bit targets): the smallest a host of this
/// ABI accepts, whatever fields later versions appended.
pub const MIN_HEADER_SIZE: usize = std::mem::size_of::<PluginHeaderV1>();
/// Size of the v1 host table (48 bytes on 64-bit targets): the smallest a plugin of
/// this ABI accepts, whatever fields later versions appended.
pub const MIN_HOST_SIZE: usize = std::mem::size_of::<HostVTableV1>();

/// Fails the build unless each listed field sits at the same offset in both structs
/// and the first field of `$grown` past the prefix starts after the frozen struct ends:
/// a field reordered, retyped to another size or inserted before the end of v1 would
/// silently break every build on the other side of the boundary.
macro_rules! extends {
    ($grown:ty, $frozen:ty, [$($field:ident),+], first appended: $next:ident) => {
        const _: () = {
            $(assert!(
                std::mem::offset_of!($grown, $field) == std::mem::offset_of!($frozen, $field)
            );)+
            assert!(std::mem::offset_of!($grown, $next) >= std::mem::size_of::<$frozen>());
        };
    };
}

extends!(
    PluginHeader,
    PluginHeaderV1,
    [
        abi_version, struct_size, api_version, rustc_version, target, name, version, init,
        describe, call, free
    ],
    first appended: flags
);

// The host table has no appended field yet outside test builds: then it is v1 exactly.
#[cfg(not(feature = "__test-abi-next"))]
const _: () = assert!(std::mem::size_of::<HostVTable>() == MIN_HOST_SIZE);
#[cfg(feature = "__test-abi-next")]
extends!(
    HostVTable,
    HostVTableV1,
    [struct_size, max_log_level, service, retain, release, log, free],
    first appended: abi_next
);

/// Reads the appended field of type `T` at `offset` of a struct the other side declared
/// `struct_size` bytes long: `None` when that struct (an older build's) ends before the
/// field does, so an older peer's missing field is never read out of bounds.
///
/// # Safety
///
/// `base` points at a struct at least `struct_size` bytes long, and the `T` at `offset`
/// (when covered) holds a valid `T`.
pub(crate) unsafe fn appended<T: Copy>(
    base: *const u8,
    struct_size: u32,
    offset: usize,
) -> Option<T> {
    let end = offset.checked_add(std::mem::size_of::<T>())?;
    // SAFETY: the field lies within the struct's declared size (the caller's contract).
    (end <= struct_size as usize).then(|| unsafe { base.add(offset).cast::<T>().read_unaligned() })
}

impl HostVTable {
    /// Copies a host's table of any size from v1 up: its v1 fields, and each appended
    /// field only if the host's `struct_size` covers it (a default otherwise). `None`
    /// when the table is smaller than v1.
    ///
    /// # Safety
    ///
    /// `table` is non-null and points at a host table at least as long as the
    /// `struct_size` it starts with.
    pub(crate) unsafe fn read(table: *const HostVTable) -> Option<HostVTable> {
        // SAFETY: every table starts with its size (the caller's contract).
        let size = unsafe { table.cast::<u32>().read() };
        if (size as usize) < MIN_HOST_SIZE {
            return None;
        }
        // SAFETY: the table is at least v1 long.
        let v1 = unsafe { table.cast::<HostVTableV1>().read() };
        Some(HostVTable {
            struct_size: v1.struct_size,
            max_log_level: v1.max_log_level,
            service: v1.service,
            retain: v1.retain,
            release: v1.release,
            log: v1.log,
            free: v1.free,
            // SAFETY: read only within the declared size.
            #[cfg(feature = "__test-abi-next")]
            abi_next: unsafe {
                appended(
                    table.cast(),
                    size,
                    std::mem::offset_of!(HostVTable, abi_next),
                )
            }
            .unwrap_or(0),
        })
    }
}
