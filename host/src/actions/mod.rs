//! Actions: the registry, the params pipeline, and the processor every transport uses.
//!
//! A call flows `transport -> Processor::process -> Registry::lookup -> scrub ->
//! Invoke::invoke (defaults, formatters, validators, run) -> ActionOutcome`; transports
//! only differ in how they render the outcome.

mod params;
mod processor;
mod registry;
mod stats;

pub use params::{RESERVED_PARAMS, requested_version, scrub};
pub use processor::{
    ActionOutcome, ActionRequest, PendingActions, PendingSlot, Processor, merge_result,
};
pub use registry::{Clash, Invoke, Origin, Registered, Registry};
pub use stats::{ActionCounters, Stats};
