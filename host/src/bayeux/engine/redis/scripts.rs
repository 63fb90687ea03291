//! Keys and Lua scripts of the Redis engine.
//!
//! Each multi-step change is one script, so it is atomic with respect to every other
//! node: a claim bumps the claim number, reads the position and logs itself in one step;
//! a commit advances the position only for the claim number it was given. Scripts take
//! the time from Redis (`TIME`), so liveness does not depend on the nodes' clocks.

use std::sync::LazyLock;

use redis::Script;

use crate::cluster::{LUA_HOLD as HOLD, LUA_NOW as NOW};

/// Every key of one namespace.
#[derive(Clone, Debug)]
pub(super) struct Keys {
    prefix: String,
}

impl Keys {
    pub(super) fn new(namespace: &str) -> Self {
        Self {
            prefix: format!("{namespace}:"),
        }
    }

    /// The shared log (a stream).
    pub(super) fn log(&self) -> String {
        format!("{}log", self.prefix)
    }

    /// Session `id`: a hash of `ip`, `pos` (last delivered log position), `claim` (claim
    /// number), `holder` (node serving it now) and `lazy` (whether that node saves the
    /// position only now and then, as push sockets do).
    pub(super) fn session(&self, id: &str) -> String {
        format!("{}s:{id}", self.prefix)
    }

    /// The subscriptions of session `id` (a set of patterns).
    pub(super) fn subscriptions(&self, id: &str) -> String {
        format!("{}s:{id}:subs", self.prefix)
    }

    /// Liveness: a sorted set of session ids scored by their last ping (ms).
    pub(super) fn alive(&self) -> String {
        format!("{}alive", self.prefix)
    }

    /// Live sessions by the address that handshook (a hash of counts), for the quota.
    pub(super) fn ips(&self) -> String {
        format!("{}ips", self.prefix)
    }

    /// Prefix of the per-node hashes of push-client positions (`<token>:<pos>` by id).
    pub(super) fn positions_prefix(&self) -> String {
        format!("{}pos:", self.prefix)
    }

    /// The position hash of `node`.
    pub(super) fn positions(&self, node: &str) -> String {
        format!("{}{node}", self.positions_prefix())
    }

    /// Node `node`'s heartbeat key.
    pub(super) fn node(&self, node: &str) -> String {
        format!("{}node:{node}", self.prefix)
    }

    /// The value every node reads to notice a Redis that restarted empty or was flushed.
    pub(super) fn epoch(&self) -> String {
        format!("{}epoch", self.prefix)
    }

    /// The lock of the node that collects expired sessions.
    pub(super) fn collector(&self) -> String {
        format!("{}gc", self.prefix)
    }
}

fn script(body: &str) -> Script {
    Script::new(&format!("{NOW}{body}"))
}

/// KEYS: session, alive, log, ips. ARGV: id, ip, max sessions, max per ip (0: no cap).
/// Returns `{1, position the session starts at}`, or `{0, the cap it hit}` (nothing
/// created): the check and the creation are one step, so no burst overshoots a cap.
pub(super) static CREATE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local max, per_ip = tonumber(ARGV[3]), tonumber(ARGV[4])
if max > 0 and redis.call('ZCARD', KEYS[2]) >= max then return {0, 'max_sessions'} end
if ARGV[2] ~= '' then
  if per_ip > 0 and tonumber(redis.call('HGET', KEYS[4], ARGV[2]) or '0') >= per_ip then
    return {0, 'max_sessions_per_ip'}
  end
  redis.call('HINCRBY', KEYS[4], ARGV[2], 1)
end
local last = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
local pos = '0-0'
if last[1] then pos = last[1][1] end
redis.call('HSET', KEYS[1], 'ip', ARGV[2], 'pos', pos, 'claim', 0)
redis.call('ZADD', KEYS[2], now, ARGV[1])
return {1, pos}
"#,
    )
});

/// KEYS: alive. ARGV: id. 1 if the session exists (and is now marked alive).
pub(super) static PING: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, ARGV[1])
  return 1
end
return 0
"#,
    )
});

/// KEYS: session, subscriptions, log. ARGV: id, pattern, max (0: none), log length.
/// 1 subscribed, -1 unknown client, -2 too many subscriptions.
pub(super) static SUBSCRIBE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('SISMEMBER', KEYS[2], ARGV[2]) == 1 then return 1 end
local max = tonumber(ARGV[3])
if max > 0 and redis.call('SCARD', KEYS[2]) >= max then return -2 end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'k', 's', 'i', ARGV[1], 'c', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[2])
return 1
"#,
    )
});

/// KEYS: session, subscriptions, log. ARGV: id, pattern, log length.
/// 1 done (or was not subscribed), -1 unknown client.
pub(super) static UNSUBSCRIBE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('SREM', KEYS[2], ARGV[2]) == 1 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'k', 'u', 'i', ARGV[1], 'c', ARGV[2])
end
return 1
"#,
    )
});

/// KEYS: session, subscriptions, log. ARGV: id, node, lazy (0/1), log length,
/// positions prefix. Nil for an unknown session, else `{claim, pos, claim entry id,
/// {patterns}}`. A lazy predecessor's saved position counts if it is of the claim just
/// superseded.
pub(super) static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local t = redis.call('HINCRBY', KEYS[1], 'claim', 1)
local f = redis.call('HMGET', KEYS[1], 'pos', 'holder', 'lazy')
local pos = f[1] or '0-0'
if f[2] and f[2] ~= '' and f[3] == '1' then
  local saved = redis.call('HGET', ARGV[5] .. f[2], ARGV[1])
  if saved then
    local sep = string.find(saved, ':', 1, true)
    if sep and tonumber(string.sub(saved, 1, sep - 1)) == t - 1 then
      pos = string.sub(saved, sep + 1)
    end
  end
end
redis.call('HSET', KEYS[1], 'holder', ARGV[2], 'lazy', ARGV[3])
local k = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'k', 'c', 'i', ARGV[1], 't', t)
return {t, pos, k, redis.call('SMEMBERS', KEYS[2])}
"#,
    )
});

/// KEYS: session. ARGV: claim, pos. Saves the position and ends the claim if it is
/// still the current one: 1, else 0.
pub(super) static SETTLE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
if redis.call('HGET', KEYS[1], 'claim') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'pos', ARGV[2], 'holder', '', 'lazy', '0')
  return 1
end
return 0
"#,
    )
});

/// KEYS: session, subscriptions, alive, log, ips. ARGV: id, node, why, cutoff ('' for an
/// unconditional destroy; else only if not pinged since), log length. 1 if destroyed.
pub(super) static DESTROY: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
if ARGV[4] ~= '' then
  local s = redis.call('ZSCORE', KEYS[3], ARGV[1])
  if s and tonumber(s) > tonumber(ARGV[4]) then return 0 end
end
redis.call('ZREM', KEYS[3], ARGV[1])
local ip = redis.call('HGET', KEYS[1], 'ip')
if redis.call('DEL', KEYS[1], KEYS[2]) == 0 then return 0 end
if ip and ip ~= '' and redis.call('HINCRBY', KEYS[5], ip, -1) <= 0 then
  redis.call('HDEL', KEYS[5], ip)
end
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], '*', 'k', 'd', 'i', ARGV[1], 'n', ARGV[2], 'w', ARGV[3])
return 1
"#,
    )
});

/// KEYS: alive, collector lock. ARGV: node, ttl ms, lock ms, limit. Takes (or renews)
/// the collector lock; the holder gets `{cutoff, expired ids...}`, others `{}`.
pub(super) static COLLECT: LazyLock<Script> = LazyLock::new(|| {
    script(&format!(
        r#"{HOLD}
local cutoff = now - tonumber(ARGV[2])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff, 'LIMIT', 0, tonumber(ARGV[4]))
table.insert(ids, 1, tostring(cutoff))
return ids
"#
    ))
});

/// KEYS: node key, epoch. ARGV: ttl ms, an epoch to set if there is none. Renews the
/// node's registration; returns the epoch.
pub(super) static HEARTBEAT: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
redis.call('SET', KEYS[1], now, 'PX', ARGV[1])
local e = redis.call('GET', KEYS[2])
if not e then
  redis.call('SET', KEYS[2], ARGV[2])
  e = ARGV[2]
end
return e
"#,
    )
});
