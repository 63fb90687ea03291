//! Clustering over Redis: settings and the one connection layer every clustered backend
//! uses.
//!
//! - [`ClusterConfig`]: the `[cluster]` table (namespace, heartbeat, timeouts).
//! - [`RedisLink`]: a Redis connection with a deadline on every call, fail-fast while
//!   Redis is away, and reconnection with capped backoff in the background.
//! - [`Nodes`]: the node registry (heartbeats, who is alive, who died).
//!
//! The backends built on it (the Bayeux engine in [`crate::bayeux::engine::redis`]) are
//! chosen in [`crate::backends`], the one place that decides memory or Redis.

mod config;
mod link;
mod nodes;

pub use config::ClusterConfig;
pub use link::{LinkError, RedisLink};
pub use nodes::Nodes;
