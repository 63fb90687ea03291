//! Protocol tests (PROTOCOL 1.2-1.4) through `Bayeux::process`, and transport tests
//! over real HTTP and websocket connections on port 0.

#![allow(clippy::unwrap_used)]

mod protocol;
mod transport;
