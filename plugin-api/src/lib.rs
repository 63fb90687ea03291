//! The stable crate Hero plugin authors write against.
//!
//! A Hero plugin is a crate of **actions**: named, versioned functions that clients
//! call over HTTP (`/api/<name>`) or over the websocket protocol. The same action runs
//! whichever transport called it; the host scrubs and checks the params, counts and
//! times the call, and turns panics into a clean error.
//!
//! # Hello, action
//!
//! ```
//! use plugin_api::{Action, ActionDefinition, ActionError, ActionResult, Context, Input, json};
//!
//! /// Adds two numbers.
//! struct Add;
//!
//! impl Action for Add {
//!     fn definition(&self) -> ActionDefinition {
//!         ActionDefinition::new("add")
//!             .description("Adds a and b")
//!             .input(Input::required("a").formatter(to_number))
//!             .input(Input::optional("b").default(1).formatter(to_number))
//!             .output_example(json!({ "sum": 3 }))
//!     }
//!
//!     async fn run(&self, ctx: Context) -> ActionResult {
//!         let a = ctx.param("a").and_then(|v| v.as_f64());
//!         let b = ctx.param("b").and_then(|v| v.as_f64());
//!         match (a, b) {
//!             (Some(a), Some(b)) => Ok(json!({ "sum": a + b })),
//!             _ => Err(ActionError::new("a and b must be numbers")),
//!         }
//!     }
//! }
//!
//! fn to_number(v: plugin_api::Value) -> plugin_api::Value {
//!     v.as_str().and_then(|s| s.parse::<f64>().ok()).map_or(v, plugin_api::Value::from)
//! }
//!
//! plugin_api::register_action!(Add);
//! # fn main() {}
//! ```
//!
//! # Concepts
//!
//! - [`Action`]: the trait; [`ActionDefinition`] and [`Input`] describe it as data.
//! - [`Context`]: the call's params, a view of the [connection](ConnectionInfo), and
//!   host services: [`Cache`], [`Rooms`], connection attributes ([`Context::set`]).
//! - [`ActionError`]: what the client sees when the action fails; its [`ErrorKind`]
//!   picks the HTTP status.
//! - [`register_action!`]: static registration through `inventory`. The binary must
//!   reference the plugin crate (call any item of it) or the linker drops it.
//! - [`middleware`]: code around actions (pre- and post-processors), connections
//!   (create, destroy) and chat (join, leave, say), registered with
//!   [`register_middleware!`] or the `middleware: [...]` list of [`export_plugin!`].
//! - `plugin_api::testing` (cargo feature `testing`, for dev-dependencies): an
//!   in-memory host that runs an action after the host's params pipeline, with a cache,
//!   chat rooms and connection attributes, in a plain `cargo test`.
//!
//! # The params pipeline
//!
//! Before `run`, the host drops params the action does not declare (except `action`,
//! `apiVersion`, `callback` and `file`), then for each declared input in order applies
//! the default (an empty string counts as missing), the formatter, the validator, and
//! the required check. The first failure is the answer. Both steps are functions of
//! the definition ([`ActionDefinition::scrub`], [`ActionDefinition::prepare_params`]),
//! which the host and `plugin_api::testing` call alike.
//!
//! # Logging
//!
//! Use [`tracing`]'s macros; the host's subscriber records them with the action's span.
//!
//! # Static and dynamic plugins
//!
//! Register a plugin crate's actions with [`export_plugin!`] instead of
//! [`register_action!`] and set `crate-type = ["cdylib", "rlib"]`: linked into a binary
//! the actions register through `inventory`; dropped as a `.so` into the host's plugin
//! directory, the host loads them through the C boundary described in [`ffi`]. Same
//! source, same behaviour, no `unsafe` in the plugin.
//!
//! What still differs in a dynamic build (the host's issue tracker has the work on each):
//!
//! - A dynamic action runs on its own current-thread tokio runtime, one per host thread
//!   that calls in, driven only while a call runs on that thread: a task the action
//!   spawns, or a pooled client's background work, pauses between calls. Keep
//!   long-lived background work in a statically linked plugin for now.
//! - A host service call ([`Context::cache`], [`Context::rooms`], [`Context::set`]) from a
//!   dynamic action blocks its thread until the host answers; a `select!` or timeout
//!   around it inside the action does not interrupt it.
//! - Panics are caught in both builds and answered as internal errors, but only if the
//!   plugin unwinds: a library built with `panic = "abort"` takes the host down with it.
//! - A replaced library's old code stays mapped (libraries are never unloaded), so each
//!   reload costs its size in memory until the host restarts.
//!
//! The test harness (`plugin_api::testing`, feature `testing`) runs actions in-process, as a
//! static build does.

mod action;
mod context;
mod definition;
mod error;
pub mod ffi;
pub mod middleware;
mod params;
mod services;
#[cfg(feature = "testing")]
pub mod testing;

pub use action::{
    Action, ActionHandler, ActionResult, Registration, registered_actions, registered_packages,
};
pub use context::{Cache, ConnectionInfo, Context, Rooms};
pub use definition::{ActionDefinition, Formatter, Input, Method, Route, Validator};
pub use error::{ActionError, ErrorKind, ServiceError};
pub use middleware::{
    ActionMiddleware, ChatContext, ChatMiddleware, ConnectionContext, ConnectionMiddleware,
    MiddlewareDefinition, PostContext, PreContext,
};
pub use params::{BadVersion, RESERVED_PARAMS, requested_version};
pub use services::{BoxFuture, HostServices, ServiceResult};

pub use serde_json::{Map, Value, json};
pub use tracing;

/// Params of a call: a JSON object.
pub type Params = serde_json::Map<String, Value>;

#[doc(hidden)]
pub use inventory;
