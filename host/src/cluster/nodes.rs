//! The nodes of a cluster: each registers with a heartbeat; one at a time (a lock with a
//! TTL) finds the nodes not heard of within `node_timeout_ms`, so their leftovers
//! (connections in rooms) can be removed.
//!
//! Keys: `<ns>:nodes` (a sorted set: node id -> last heartbeat, Redis's clock) and
//! `<ns>:nodeinfo` (node id -> `{"connections", "startedAt"}`).

use std::sync::LazyLock;

use redis::Script;
use serde_json::{Value, json};

use super::{LUA_HOLD as HOLD, LUA_NOW as NOW, LinkError, RedisLink};

/// KEYS: nodes, nodeinfo. ARGV: node, info JSON.
static BEAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{NOW}redis.call('ZADD', KEYS[1], now, ARGV[1])\nredis.call('HSET', KEYS[2], ARGV[1], ARGV[2])\nreturn 1"
    ))
});

/// KEYS: nodes, nodeinfo. ARGV: timeout ms. `{id, info, ...}` of the live nodes.
static LIVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{NOW}
local out = {{}}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[1]), '+inf')) do
  table.insert(out, id)
  table.insert(out, redis.call('HGET', KEYS[2], id) or '{{}}')
end
return out"
    ))
});

/// KEYS: nodes, lock. ARGV: node, timeout ms, lock ms. Takes (or renews) the lock; its
/// holder gets the ids of the dead nodes, others nothing.
static DEAD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{NOW}{HOLD}
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - tonumber(ARGV[2])))"
    ))
});

/// The node registry of one namespace.
#[derive(Debug, Clone)]
pub struct Nodes {
    link: RedisLink,
    ns: String,
    node: String,
    timeout_ms: u64,
}

impl Nodes {
    /// The registry of `namespace`, as node `node`.
    pub fn new(link: RedisLink, namespace: &str, node: &str, timeout_ms: u64) -> Self {
        Self {
            link,
            ns: namespace.to_owned(),
            node: node.to_owned(),
            timeout_ms: timeout_ms.max(1),
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.ns)
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The link the registry uses.
    pub fn link(&self) -> &RedisLink {
        &self.link
    }

    /// Renews this node's registration with what it reports.
    ///
    /// # Errors
    /// Redis is unavailable.
    pub async fn beat(&self, info: &Value) -> Result<(), LinkError> {
        let mut inv = BEAT.key(self.key("nodes"));
        inv.key(self.key("nodeinfo"))
            .arg(&self.node)
            .arg(info.to_string());
        self.link.invoke::<i64>(&inv).await.map(|_| ())
    }

    /// The live nodes: `[{"id", "connections", ...}]`.
    ///
    /// # Errors
    /// Redis is unavailable.
    pub async fn live(&self) -> Result<Vec<Value>, LinkError> {
        let mut inv = LIVE.key(self.key("nodes"));
        inv.key(self.key("nodeinfo")).arg(self.timeout_ms);
        let flat: Vec<String> = self.link.invoke(&inv).await?;
        Ok(flat
            .chunks(2)
            .map(|kv| {
                let mut info: Value = kv
                    .get(1)
                    .and_then(|i| serde_json::from_str(i).ok())
                    .unwrap_or_else(|| json!({}));
                info["id"] = json!(kv[0]);
                info
            })
            .collect())
    }

    /// The nodes not heard of within the timeout, if this node is the collector now.
    ///
    /// # Errors
    /// Redis is unavailable.
    pub async fn dead(&self) -> Result<Vec<String>, LinkError> {
        let mut inv = DEAD.key(self.key("nodes"));
        inv.key(self.key("nodegc"))
            .arg(&self.node)
            .arg(self.timeout_ms)
            .arg(self.timeout_ms);
        self.link.invoke(&inv).await
    }

    /// Forgets a dead node once its leftovers are removed.
    ///
    /// # Errors
    /// Redis is unavailable.
    pub async fn forget(&self, node: &str) -> Result<(), LinkError> {
        let mut pipe = redis::pipe();
        pipe.cmd("ZREM")
            .arg(self.key("nodes"))
            .arg(node)
            .ignore()
            .cmd("HDEL")
            .arg(self.key("nodeinfo"))
            .arg(node)
            .ignore();
        self.link.pipe::<()>(&pipe).await
    }
}
