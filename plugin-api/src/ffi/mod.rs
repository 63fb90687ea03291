//! The dynamic boundary: how a plugin built as a `cdylib` talks to the host.
//!
//! Plugin authors never touch this module: [`export_plugin!`](crate::export_plugin)
//! generates everything. It is the only place in `plugin-api` with `unsafe` code.
//!
//! # The contract (ABI version 1)
//!
//! Rust has no stable ABI, so only C-ABI items cross: `#[repr(C)]` structs, `extern "C"`
//! function pointers, and bytes. Everything structured travels as JSON.
//!
//! - **Entry symbol.** The library exports `hero_plugin_<crate_name>` (see
//!   [`ENTRY_PREFIX`]), an `extern "C" fn() -> *const PluginHeader`. The name carries
//!   the crate name, not a fixed string, so any number of plugin crates can be linked
//!   statically into one binary (or bundled into one cdylib) without duplicate-symbol
//!   errors; the host finds entries by listing the library's dynamic symbols with
//!   that prefix, so renaming the `.so` file does not matter.
//! - **Header** ([`PluginHeader`]): `abi_version: u32`, `struct_size: u32` and the
//!   plugin-api version (an [`FfiStr`]) first (the only fields every ABI version shares,
//!   so a host can say which plugin-api to rebuild a refused plugin against), then the
//!   `rustc -V` and target triple of the build (for logs and refusals), the plugin's
//!   name and version, and the vtable: `init`, `describe`, `call`, `free` (the v1
//!   layout, frozen as [`PluginHeaderV1`]); then, appended, `flags`
//!   ([`HEADER_FLAG_PANIC_ABORT`]: the plugin was built with `panic = "abort"`, which
//!   the host refuses, since no `catch_unwind` can stop such a panic from killing it).
//! - **`init(host)`** hands over the host's [`HostVTable`] (lives for the process):
//!   `service` (one [`ServiceCall`] as JSON in, `{"ok":..}`/`{"error":ServiceError}`
//!   out), `retain`/`release` of the per-call host context, `log` (records of the
//!   plugin's `tracing` events, forwarded by a subscriber the plugin installs in its own
//!   copy of `tracing`), and `free`.
//! - **`describe(out)`** writes the JSON array of [`ActionDefinition`](crate::ActionDefinition)s
//!   (validators and formatters are functions: they stay in the plugin and run there).
//! - **`call(action, request, host_ctx, out)`** runs one action to completion on the
//!   calling thread: `request` is a [`CallRequest`] (version, scrubbed params,
//!   connection), the reply is a [`CallReply`]. The plugin prepares the params and
//!   drives the async `run` on the calling thread inside its own tokio runtime: one
//!   multi-threaded runtime per loaded library, never stopped, whose workers run what
//!   the plugin spawns between calls too (timers, pooled connections), exactly as in a
//!   static plugin. A host calls it on its blocking pool, under a deadline it owns, when
//!   the plugin has no `start`.
//!   Host service calls from the action are futures: the blocking `service` entry
//!   point runs on the library runtime's blocking pool, so a `select!` or timeout in
//!   the plugin can drop them. `host_ctx` is valid for the call; a plugin that keeps it
//!   longer (a cloned `Context`, an unfinished service call) holds a reference through
//!   `retain`.
//! - **`start(action, request, host_ctx, done, token, out)`** (appended to the header
//!   after ABI 1's first release; a host reads it only when `struct_size` covers it)
//!   begins the same call and polls it once on the calling thread. A call that needs
//!   no waiting answers at once, as `call` would; otherwise `start` answers
//!   [`STATUS_PENDING`], the rest runs on the library's runtime, and the plugin calls
//!   `done(token, status, reply)` once when it ends. The host awaits that under its
//!   deadline, so a waiting plugin call holds no host thread. (Blocking inside the
//!   first poll holds the host's calling thread, as a static action that blocks does.)
//! - **Middleware** (see [`crate::middleware`]) crosses through the same `call`, under
//!   names no action can have (prefix [`RESERVED_CALL_PREFIX`], `$hero/`), so the ABI
//!   is unchanged and a plugin built before middleware existed keeps loading:
//!   - `call("$hero/middleware/describe", CallRequest)` ([`DESCRIBE_MIDDLEWARE`]) answers
//!     `{"ok": {"action": [def], "connection": [def], "chat": [def]}}` ([`MiddlewareList`];
//!     `def` is a [`MiddlewareDefinition`](crate::MiddlewareDefinition):
//!     `{"name", "priority", "global"}`). An older plugin answers `{"error": unknown
//!     action}`, which the host reads as no middleware.
//!   - `call("$hero/middleware/call", MiddlewareCall)` ([`CALL_MIDDLEWARE`]) runs one hook;
//!     the request is tagged by `hook`:
//!     `{"hook":"pre","middleware","action","params","connection"}`,
//!     `{"hook":"post","middleware","action","params","connection","result":{"ok":v}|{"error":e}}`,
//!     `{"hook":"create"|"destroy","middleware","connection"}`,
//!     `{"hook":"chat","middleware","chat":"join"|"leave"|"say","room","connection","message"?}`.
//!     The reply ([`MiddlewareReply`]) is `{"error": ActionError}` when the hook refused,
//!     else `{"ok": {..}}` with what it changed: `params` and `connection` (`pre`),
//!     `result` (`post`), `connection` (`create`/`destroy`), `message` (`say`).
//!   - Host services inside a hook work as in an action (the call carries a host
//!     context); a panic is `STATUS_PANIC`, as for actions.
//! - **Buffers** ([`FfiBuf`]) are freed by the `free` of the side that allocated them.
//! - **Panics** never cross: every exported function body and every host callback
//!   runs under `catch_unwind`; a caught panic is `STATUS_PANIC` plus its message.
//! - **Status codes**: [`STATUS_OK`] (the buffer holds JSON), [`STATUS_BAD_REQUEST`],
//!   [`STATUS_PANIC`] (the buffer holds a UTF-8 message).
//!
//! # What may change, and how
//!
//! A **minor** version of `plugin-api` may append fields at the end of
//! [`PluginHeader`] and [`HostVTable`]. The v1 layouts are frozen as
//! [`PluginHeaderV1`] and [`HostVTableV1`], and their sizes are the smallest each side
//! accepts, whatever has been appended since: [`MIN_HEADER_SIZE`] (120 bytes on 64-bit
//! targets) and [`MIN_HOST_SIZE`] (48 bytes). The rule for an appended field:
//!
//! - the side that writes the struct sets `struct_size` to its own `size_of` and fills
//!   every field it has;
//! - the side that reads it accepts any `struct_size` from the v1 size up, reads a field
//!   past v1 only when `struct_size` covers the field's end, and otherwise uses the
//!   field's documented default (so the default must mean "what a build before the
//!   field did": `flags` reads as 0, built to unwind);
//! - a field is never moved, removed or retyped, and the v1 structs never change (the
//!   build checks the current structs extend them).
//!
//! It may also add [`ServiceCall`] methods (an older host answers an unknown one with
//! an error), add optional JSON fields, and add enum values: a reader maps one it does
//! not know to a fallback ([`ErrorKind::Other`](crate::ErrorKind::Other),
//! [`ServiceError::Other`](crate::ServiceError::Other)) instead of failing the message.
//! The JSON of the messages is pinned by golden tests (`plugin-api/tests/wire_golden.rs`).
//! Anything else — reordering, removing or retyping a field, changing a function
//! signature, the meaning of a status, or the JSON shape of an existing message — needs
//! a new [`ABI_VERSION`], which hosts refuse with a log line naming both ABI versions
//! and both plugin-api versions (hence the shared prefix of the header).
//! `ABI_VERSION` is decoupled from the crate version on purpose.
//!
//! # Rules for the library
//!
//! Build the plugin with the same `plugin-api` ABI and target as the host, and with
//! `panic = "unwind"` (the default); the compiler may differ (nothing `repr(Rust)`
//! crosses). Do not install a custom global
//! allocator expecting the host to free your buffers: each side frees its own.
//! Libraries are never unloaded (`dlclose` is unsound with thread-locals); a reload
//! loads a copy under a new name.

#![allow(unsafe_code)]

mod abi;
mod export;
mod host;
mod log;
mod wire;

pub use abi::{
    ABI_VERSION, API_VERSION, CallFn, DescribeFn, DoneFn, ENTRY_PREFIX, FfiBuf, FfiStr, FreeFn,
    HEADER_FLAG_PANIC_ABORT, HostVTable, HostVTableV1, InitFn, LogFn, MIN_HEADER_SIZE,
    MIN_HOST_SIZE, PluginHeader, PluginHeaderV1, RUSTC_VERSION, RefFn, STATUS_BAD_REQUEST,
    STATUS_OK, STATUS_PANIC, STATUS_PENDING, ServiceFn, StartFn, TARGET,
};
#[cfg(feature = "__test-abi-next")]
pub use export::{ABI_NEXT_PROBE, host_abi_next};
pub use export::{Exports, header, package_actions, package_middleware, raw_service_call};
pub use host::{
    CallError, EntryFn, HeaderError, HostCall, PendingCall, Plugin, Started, declared_api_version,
    host_vtable,
};
pub use wire::{
    CALL_CHAIN, CALL_MIDDLEWARE, CallReply, CallRequest, ChainCall, ChainOutcome, ChainReply,
    DESCRIBE_MIDDLEWARE, MiddlewareCall, MiddlewareList, MiddlewareOutcome, MiddlewareReply,
    RESERVED_CALL_PREFIX, Reply, ServiceCall, dispatch,
};

/// Registers actions (and middleware) statically, like
/// [`register_action!`](crate::register_action), **and** exports them from the library
/// when the crate is built as a `cdylib`.
///
/// One invocation per plugin crate, listing every action:
///
/// ```
/// use plugin_api::{Action, ActionDefinition, ActionResult, Context, json};
///
/// struct Ping;
///
/// impl Action for Ping {
///     fn definition(&self) -> ActionDefinition {
///         ActionDefinition::new("ping")
///     }
///     async fn run(&self, _ctx: Context) -> ActionResult {
///         Ok(json!({ "pong": true }))
///     }
/// }
///
/// plugin_api::export_plugin!(Ping);
/// # fn main() {}
/// ```
///
/// With middleware (see [`middleware`](crate::middleware)), name the lists, each
/// middleware as `action(..)`, `connection(..)` or `chat(..)`:
///
/// ```
/// # use plugin_api::{Action, ActionDefinition, ActionResult, Context, json};
/// use plugin_api::middleware::{ActionMiddleware, MiddlewareDefinition, PostContext};
/// # struct Ping;
/// # impl Action for Ping {
/// #     fn definition(&self) -> ActionDefinition { ActionDefinition::new("ping") }
/// #     async fn run(&self, _ctx: Context) -> ActionResult { Ok(json!({})) }
/// # }
/// struct Stamp;
///
/// impl ActionMiddleware for Stamp {
///     fn definition(&self) -> MiddlewareDefinition {
///         MiddlewareDefinition::new("stamp").global(true)
///     }
///     async fn post(&self, ctx: &mut PostContext) -> Result<(), plugin_api::ActionError> {
///         if let Ok(plugin_api::Value::Object(fields)) = ctx.result_mut() {
///             fields.insert("stamped".into(), true.into());
///         }
///         Ok(())
///     }
/// }
///
/// plugin_api::export_plugin!(actions: [Ping], middleware: [action(Stamp)]);
/// # fn main() {}
/// ```
///
/// The library exports the listed actions and middleware, and also whatever its package
/// registers with [`register_action!`](crate::register_action) and
/// [`register_middleware!`](crate::register_middleware) elsewhere in its source, so a
/// source file registers the same things in a static and a dynamic build.
///
/// It emits the entry symbol `hero_plugin_<crate name>` (see the [`ffi`](crate::ffi)
/// docs for why the name carries the crate name) and the header, with the package name
/// and version from Cargo.
#[macro_export]
macro_rules! export_plugin {
    (actions: [$($action:expr),* $(,)?] $(, middleware: [$($kind:ident($middleware:expr)),* $(,)?])? $(,)?) => {
        $crate::register_action!($($action),*);
        $($crate::register_middleware!($($kind($middleware)),*);)?

        const _: () = {
            struct Exports;

            impl $crate::ffi::Exports for Exports {
                const NAME: &'static str = ::core::env!("CARGO_PKG_NAME");
                const VERSION: &'static str = ::core::env!("CARGO_PKG_VERSION");
                // Expanded in the plugin crate: its own panic strategy, not plugin-api's.
                const PANIC_ABORT: bool = ::core::cfg!(panic = "abort");

                fn handlers() -> &'static [$crate::ActionHandler] {
                    static HANDLERS: ::std::sync::OnceLock<::std::vec::Vec<$crate::ActionHandler>> =
                        ::std::sync::OnceLock::new();
                    HANDLERS.get_or_init(|| {
                        $crate::ffi::package_actions(
                            Self::NAME,
                            ::std::vec![$($crate::ActionHandler::new($action)),*],
                        )
                    })
                }

                fn middleware() -> &'static [$crate::middleware::MiddlewareHandler] {
                    static MIDDLEWARE: ::std::sync::OnceLock<
                        ::std::vec::Vec<$crate::middleware::MiddlewareHandler>,
                    > = ::std::sync::OnceLock::new();
                    MIDDLEWARE.get_or_init(|| $crate::ffi::package_middleware(Self::NAME))
                }
            }

            static HEADER: $crate::ffi::PluginHeader = $crate::ffi::header::<Exports>();

            #[unsafe(export_name = ::core::concat!("hero_plugin_", ::core::env!("CARGO_CRATE_NAME")))]
            extern "C" fn hero_plugin_entry() -> *const $crate::ffi::PluginHeader {
                &HEADER
            }
        };
    };
    ($($action:expr),+ $(,)?) => {
        $crate::export_plugin!(actions: [$($action),+]);
    };
}
