//! Facts about a request that every server reads the same way, decided in one place:
//! who the client is ([`client`]) and which browser origins may call in ([`origin`]).
//!
//! `/api`, the Bayeux transports (long-polling, EventSource, websocket upgrades) and so
//! the actionhero websocket server all ask here rather than each reading headers their
//! own way.

pub mod client;
pub mod origin;
