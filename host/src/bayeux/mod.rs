//! Bayeux server, wire-compatible with the npm `faye` 1.4 client (PROTOCOL 1).
//!
//! # Layout
//!
//! - [`message`], [`channel`], [`error`]: the protocol's data: messages, channel grammar
//!   and matching, error codes.
//! - [`engine`]: where state lives (sessions, subscriptions, mailboxes) behind small
//!   traits; [`MemoryEngine`] is the default, [`RedisEngine`] clusters nodes.
//! - `server`: the [`Bayeux`] handle: processes messages (handshake, connect, subscribe,
//!   unsubscribe, disconnect, publish), holds connects, runs [`Extension`]s.
//! - [`LocalClient`]: the in-process client.
//! - `transport`: warp [`routes`] for websocket, long-polling, cross-origin long-polling,
//!   JSONP, EventSource and CORS preflight.
//!
//! ```no_run
//! # async fn demo() -> Result<(), hero::bayeux::BayeuxError> {
//! use hero::bayeux::{Bayeux, BayeuxConfig, routes};
//! let bayeux = Bayeux::new(BayeuxConfig::default());
//! let filter = routes(bayeux.clone()); // mount next to the other warp routes
//! let mut watcher = bayeux.local_client().await?;
//! watcher.subscribe("/chat/**").await?;
//! bayeux.publish("/chat/room", serde_json::json!({"text": "hi"})).await?;
//! let delivered = watcher.recv().await;
//! # let _ = (filter, delivered); Ok(()) }
//! ```

pub mod channel;
pub mod config;
pub mod engine;
pub mod error;
mod extension;
mod local;
pub mod message;
mod receipt;
mod server;
mod transport;

#[cfg(test)]
mod tests;

#[cfg(test)]
#[path = "../fuzz/bayeux.rs"]
mod fuzz;

pub use config::BayeuxConfig;
pub use engine::{BoxFuture, Engine, MemoryEngine, RedisEngine};
pub use error::{BayeuxError, ErrorCode};
pub use extension::{Extension, MessageContext, OutgoingContext, OutgoingKind, Transport, Verdict};
pub use local::LocalClient;
pub use message::Message;
pub use server::{Bayeux, CONNECTION_TYPES};
pub use transport::routes;
