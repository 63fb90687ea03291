//! Chat rooms in Redis, shared by every node of a namespace.
//!
//! Keys: `<ns>:rooms` (a set of names), `<ns>:room:<name>` (a hash with the `auth`
//! pattern as JSON), `<ns>:room:<name>:members` (connection id -> `{"joinedAt", "node"}`)
//! and `<ns>:room:<name>:listeners` (a set). Each method is one Lua script, so it is
//! atomic on its own as [`RoomStore`] requires; a missing room hash is `NoSuchRoom`.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use plugin_api::BoxFuture;
use redis::{Script, Value};
use serde_json::json;

use super::{Audience, AuthPattern, Member, RoomError, RoomStore};
use crate::cluster::value::{int as code, list, text};
use crate::cluster::{LinkError, RedisLink};

/// Rooms of one namespace in Redis.
#[derive(Debug)]
pub struct RedisRoomStore {
    link: RedisLink,
    ns: String,
}

fn backend(e: LinkError) -> RoomError {
    RoomError::Backend(e.to_string())
}

/// Reply codes shared by the scripts.
const NO_ROOM: i64 = -1;
const ALREADY: i64 = -2;

/// KEYS: room, rooms. ARGV: name, auth. The old pattern, or nil for a new room.
static UPSERT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local old = redis.call('HGET', KEYS[1], 'auth')
redis.call('HSET', KEYS[1], 'auth', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
return old
",
    )
});

/// KEYS: room, members, listeners, rooms. ARGV: name. -1, or {members, listeners}.
static DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local ids = {redis.call('HKEYS', KEYS[2]), redis.call('SMEMBERS', KEYS[3])}
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('SREM', KEYS[4], ARGV[1])
return ids
",
    )
});

/// KEYS: room, members. ARGV: id, member JSON. 1, -1 no room, -2 already a member.
static JOIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return -2 end
return 1
",
    )
});

/// KEYS: room, members. ARGV: id. 1, -1 no room, 0 not a member.
static LEAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
return redis.call('HDEL', KEYS[2], ARGV[1])
",
    )
});

/// KEYS: room, listeners. ARGV: id, on (1/0). 1 changed, 0 not, -1 no room.
static LISTEN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if ARGV[2] == '1' then return redis.call('SADD', KEYS[2], ARGV[1]) end
return redis.call('SREM', KEYS[2], ARGV[1])
",
    )
});

/// KEYS: room, members, listeners. -1, or {flat member hash, listeners}.
static MEMBERS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
return {redis.call('HGETALL', KEYS[2]), redis.call('SMEMBERS', KEYS[3])}
",
    )
});

/// KEYS: rooms. ARGV: key prefix. {name, count, name, count, ...}.
static COUNTS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local out = {}
for _, name in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  table.insert(out, name)
  table.insert(out, redis.call('HLEN', ARGV[1] .. name .. ':members'))
end
return out
",
    )
});

impl RedisRoomStore {
    /// Rooms in `namespace` on `link`.
    pub fn new(link: RedisLink, namespace: &str) -> Self {
        Self {
            link,
            ns: namespace.to_owned(),
        }
    }

    fn rooms(&self) -> String {
        format!("{}:rooms", self.ns)
    }

    fn prefix(&self) -> String {
        format!("{}:room:", self.ns)
    }

    fn room(&self, room: &str) -> String {
        format!("{}{room}", self.prefix())
    }

    fn members_key(&self, room: &str) -> String {
        format!("{}{room}:members", self.prefix())
    }

    fn listeners_key(&self, room: &str) -> String {
        format!("{}{room}:listeners", self.prefix())
    }

    /// Members (in join order) and listeners of `room`.
    async fn roster(&self, room: &str) -> Result<(Vec<Member>, Vec<String>), RoomError> {
        let mut inv = MEMBERS.key(self.room(room));
        inv.key(self.members_key(room))
            .key(self.listeners_key(room));
        let reply: Value = self.link.invoke(&inv).await.map_err(backend)?;
        if code(&reply) == Some(NO_ROOM) {
            return Err(RoomError::NoSuchRoom);
        }
        let parts = list(&reply);
        let flat = parts.first().map(list).unwrap_or_default();
        let mut members: Vec<Member> = flat
            .chunks(2)
            .filter_map(|kv| {
                let id = text(kv.first()?)?;
                let info: serde_json::Value = serde_json::from_str(&text(kv.get(1)?)?).ok()?;
                Some(Member {
                    id,
                    joined_at: info["joinedAt"].as_u64().unwrap_or(0),
                    node: info["node"].as_str().unwrap_or_default().to_owned(),
                })
            })
            .collect();
        members.sort_by(|a, b| a.joined_at.cmp(&b.joined_at).then_with(|| a.id.cmp(&b.id)));
        let listeners = parts
            .get(1)
            .map(list)
            .unwrap_or_default()
            .iter()
            .filter_map(text)
            .collect();
        Ok((members, listeners))
    }
}

impl RoomStore for RedisRoomStore {
    fn upsert<'a>(
        &'a self,
        room: &'a str,
        auth: AuthPattern,
    ) -> BoxFuture<'a, Result<Option<AuthPattern>, RoomError>> {
        Box::pin(async move {
            let mut inv = UPSERT.key(self.room(room));
            inv.key(self.rooms())
                .arg(room)
                .arg(serde_json::Value::Object(auth).to_string());
            let old: Option<String> = self.link.invoke(&inv).await.map_err(backend)?;
            Ok(old.map(|o| {
                serde_json::from_str::<serde_json::Value>(&o)
                    .ok()
                    .and_then(|v| v.as_object().cloned())
                    .unwrap_or_default()
            }))
        })
    }

    fn delete<'a>(&'a self, room: &'a str) -> BoxFuture<'a, Result<Vec<String>, RoomError>> {
        Box::pin(async move {
            let mut inv = DELETE.key(self.room(room));
            inv.key(self.members_key(room))
                .key(self.listeners_key(room))
                .key(self.rooms())
                .arg(room);
            let reply: Value = self.link.invoke(&inv).await.map_err(backend)?;
            if code(&reply) == Some(NO_ROOM) {
                return Err(RoomError::NoSuchRoom);
            }
            let mut ids: Vec<String> = Vec::new();
            for part in list(&reply) {
                for id in list(part).iter().filter_map(text) {
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
            }
            Ok(ids)
        })
    }

    fn auth<'a>(&'a self, room: &'a str) -> BoxFuture<'a, Result<AuthPattern, RoomError>> {
        Box::pin(async move {
            let auth: Option<String> = self
                .link
                .query(redis::cmd("HGET").arg(self.room(room)).arg("auth"))
                .await
                .map_err(backend)?;
            let auth = auth.ok_or(RoomError::NoSuchRoom)?;
            Ok(serde_json::from_str::<serde_json::Value>(&auth)
                .ok()
                .and_then(|v| v.as_object().cloned())
                .unwrap_or_default())
        })
    }

    fn join<'a>(&'a self, room: &'a str, member: Member) -> BoxFuture<'a, Result<(), RoomError>> {
        Box::pin(async move {
            let info = json!({"joinedAt": member.joined_at, "node": member.node}).to_string();
            let mut inv = JOIN.key(self.room(room));
            inv.key(self.members_key(room)).arg(&member.id).arg(info);
            match self.link.invoke::<i64>(&inv).await.map_err(backend)? {
                NO_ROOM => Err(RoomError::NoSuchRoom),
                ALREADY => Err(RoomError::AlreadyMember),
                _ => Ok(()),
            }
        })
    }

    fn leave<'a>(&'a self, room: &'a str, id: &'a str) -> BoxFuture<'a, Result<(), RoomError>> {
        Box::pin(async move {
            let mut inv = LEAVE.key(self.room(room));
            inv.key(self.members_key(room)).arg(id);
            match self.link.invoke::<i64>(&inv).await.map_err(backend)? {
                NO_ROOM => Err(RoomError::NoSuchRoom),
                0 => Err(RoomError::NotMember),
                _ => Ok(()),
            }
        })
    }

    fn listen<'a>(
        &'a self,
        room: &'a str,
        id: &'a str,
        on: bool,
    ) -> BoxFuture<'a, Result<bool, RoomError>> {
        Box::pin(async move {
            let mut inv = LISTEN.key(self.room(room));
            inv.key(self.listeners_key(room))
                .arg(id)
                .arg(if on { "1" } else { "0" });
            match self.link.invoke::<i64>(&inv).await.map_err(backend)? {
                NO_ROOM => Err(RoomError::NoSuchRoom),
                n => Ok(n == 1),
            }
        })
    }

    fn members<'a>(&'a self, room: &'a str) -> BoxFuture<'a, Result<Vec<Member>, RoomError>> {
        Box::pin(async move { Ok(self.roster(room).await?.0) })
    }

    fn audience<'a>(&'a self, room: &'a str) -> BoxFuture<'a, Result<Audience, RoomError>> {
        Box::pin(async move {
            let (members, listeners) = self.roster(room).await?;
            Ok(Audience { members, listeners })
        })
    }

    fn counts(&self) -> BoxFuture<'_, Result<BTreeMap<String, usize>, RoomError>> {
        Box::pin(async move {
            let mut inv = COUNTS.key(self.rooms());
            inv.arg(self.prefix());
            let reply: Value = self.link.invoke(&inv).await.map_err(backend)?;
            Ok(list(&reply)
                .chunks(2)
                .filter_map(|kv| {
                    let name = text(kv.first()?)?;
                    let n = usize::try_from(code(kv.get(1)?)?).ok()?;
                    Some((name, n))
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::RedisServer;

    #[tokio::test]
    async fn conformance() {
        let redis = RedisServer::start();
        let link = redis.link().await;
        super::super::conformance::run_all(&RedisRoomStore::new(link, "roomtest")).await;
    }
}
