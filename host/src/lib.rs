//! placeholder
pub mod bayeux;
