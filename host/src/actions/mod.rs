//! Actions: the registry, the params pipeline, and the processor every transport uses.
//!
//! A call flows `transport -> Processor::process -> Registry::lookup -> scrub ->
//! Invoke::invoke (defaults, formatters, validators, run) -> ActionOutcome`; transports
//! only differ in how they render the outcome. Action middleware (see [`middleware`])
//! wraps `Invoke::invoke` inside the processor, so every transport runs it alike.

pub mod middleware;
mod params;
mod processor;
mod registry;
pub mod routes;
mod stats;

pub use middleware::{Hook, MiddlewareClash, MiddlewareRegistry, MissingMiddleware};
pub use params::{BadVersion, RESERVED_PARAMS, requested_version, scrub};
pub use processor::{
    ActionOutcome, ActionRequest, PendingActions, PendingSlot, Processor, merge_result,
};
pub use registry::{Clash, Invoke, Origin, Registered, Registry};
pub use stats::{ActionCounters, Stats};
