//! Clustering over Redis: settings and the one connection layer every clustered backend
//! uses.
//!
//! - [`ClusterConfig`]: the `[cluster]` table (namespace, heartbeat, timeouts).
//! - [`RedisLink`]: a Redis connection with a deadline on every call (a call that meets
//!   Redis away waits for the reconnection no longer than that), reconnecting with
//!   capped backoff in the background.
//! - [`BlockingConn`]: the log reader's connection of its own, with a one-pass reply
//!   reader ([`resp`]).
//! - [`Nodes`]: the node registry (heartbeats, who is alive, who died).
//! - `value`: reading script and stream replies.
//!
//! The backends built on it (the Bayeux engine in [`crate::bayeux::engine::redis`]) are
//! chosen in [`crate::backends`], the one place that decides memory or Redis.

mod blocking;
mod config;
mod link;
mod nodes;
pub(crate) mod resp;
pub(crate) mod value;

pub use blocking::BlockingConn;
pub use config::ClusterConfig;
pub use link::{LinkError, RedisLink};
pub use nodes::Nodes;

/// A Lua fragment for the scripts of one-at-a-time duties (expiry, dead nodes): takes
/// the lock `KEYS[2]` for node `ARGV[1]` for `ARGV[3]` ms, or renews it if that node holds
/// it; anyone else returns `{}` at once.
pub(crate) const LUA_HOLD: &str = "local holder = redis.call('GET', KEYS[2])\n\
    if not holder then redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])\n\
    elseif holder == ARGV[1] then redis.call('PEXPIRE', KEYS[2], ARGV[3])\n\
    else return {} end\n";

/// The prelude of every Lua script that needs the time: `now`, Redis's clock in ms, so
/// liveness never depends on the nodes' clocks.
pub(crate) const LUA_NOW: &str = "local clock = redis.call('TIME')\n\
    local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)\n";
