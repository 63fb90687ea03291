//! Facts about a request that every server reads the same way, decided in one place:
//! who the client is ([`client`]), which browser origins may call in ([`origin`]), the
//! body within its limit ([`body`]), form and query pairs ([`form`]) and JSONP callback
//! names ([`jsonp`]).
//!
//! `/api`, the Bayeux transports (long-polling, EventSource, websocket upgrades) and so
//! the actionhero websocket server all ask here rather than each reading headers their
//! own way.

pub mod body;
pub mod client;
pub mod form;
pub mod jsonp;
pub mod origin;
