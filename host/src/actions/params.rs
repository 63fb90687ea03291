//! Param scrubbing: what a client sent, reduced to what the action declares.
//!
//! The first step of the processor's pipeline: undeclared params are dropped (the
//! reserved ones the transports use are kept), versions are read from strings or
//! numbers. Defaults, formatters and validators run next, in the action definition.
//! The rules live in `plugin-api` ([`ActionDefinition::scrub`],
//! [`requested_version`]), so `plugin_api::testing` applies exactly the host's.

use plugin_api::{ActionDefinition, Params};

pub use plugin_api::{BadVersion, RESERVED_PARAMS, requested_version};

/// Drops every param the action does not declare, except the reserved ones
/// ([`ActionDefinition::scrub`]).
pub fn scrub(definition: &ActionDefinition, params: Params) -> Params {
    definition.scrub(params)
}
