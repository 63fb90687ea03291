//! Who owns a connection, cluster-wide: connection id -> (owner Bayeux client, node).
//!
//! A connection's state lives on its owner node ([`super::Connections`]); the directory
//! lets every other node check ownership (channel privacy, PROTOCOL 1.6) and find the
//! node to forward a verb to. An owner never changes, so lookups are cached.

use crate::sync::lock;
use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use crate::bayeux::BoxFuture;
use crate::cluster::{LinkError, RedisLink};

/// The owner of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// The Bayeux client id that owns it.
    pub client: String,
    /// The node that holds its state.
    pub node: String,
}

/// The directory could not be reached.
#[derive(Debug, thiserror::Error)]
#[error("connection directory: {0}")]
pub struct DirectoryError(#[from] LinkError);

/// Connection id -> owner, for every node.
pub trait ConnectionDirectory: Send + Sync + fmt::Debug {
    /// Records the owner of connection `id`.
    fn register<'a>(
        &'a self,
        id: &'a str,
        owner: &'a Owner,
    ) -> BoxFuture<'a, Result<(), DirectoryError>>;
    /// The owner of connection `id`, if it exists.
    fn lookup<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Owner>, DirectoryError>>;
    /// Connection `id` is closed: it is forgotten soon, once its last replies (which
    /// other nodes still check against its owner) are delivered.
    fn retire<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), DirectoryError>>;
    /// The connections node `node` owned (to clean up after it died), with their owners.
    fn owned_by_node<'a>(
        &'a self,
        node: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(String, Owner)>, DirectoryError>>;
    /// Forgets node `node`'s list of connections.
    fn forget_node<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<(), DirectoryError>>;
}

/// The directory of a single node.
#[derive(Debug, Default)]
pub struct MemoryDirectory {
    owners: Mutex<HashMap<String, Owner>>,
}

impl ConnectionDirectory for MemoryDirectory {
    fn register<'a>(
        &'a self,
        id: &'a str,
        owner: &'a Owner,
    ) -> BoxFuture<'a, Result<(), DirectoryError>> {
        lock(&self.owners).insert(id.to_owned(), owner.clone());
        Box::pin(std::future::ready(Ok(())))
    }

    fn lookup<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Owner>, DirectoryError>> {
        let owner = lock(&self.owners).get(id).cloned();
        Box::pin(std::future::ready(Ok(owner)))
    }

    fn retire<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), DirectoryError>> {
        // One node: `Connections` keeps the owners of closed connections itself.
        lock(&self.owners).remove(id);
        Box::pin(std::future::ready(Ok(())))
    }

    fn owned_by_node<'a>(
        &'a self,
        node: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(String, Owner)>, DirectoryError>> {
        let owned = lock(&self.owners)
            .iter()
            .filter(|(_, o)| o.node == node)
            .map(|(id, o)| (id.clone(), o.clone()))
            .collect();
        Box::pin(std::future::ready(Ok(owned)))
    }

    fn forget_node<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<(), DirectoryError>> {
        lock(&self.owners).retain(|_, o| o.node != node);
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Owners cached per node before the cache is cleared (owners never change, so the
/// cache only bounds memory).
const CACHE_MAX: usize = 10_000;

/// How long a closed connection's owner is still known, in ms.
const RETIRED_MS: u64 = 60_000;

/// The directory in Redis: `<ns>:conn:<id>` = `<node> <client>`, and each node's live
/// connections in the set `<ns>:nodeconns:<node>`.
#[derive(Debug)]
pub struct RedisDirectory {
    link: RedisLink,
    prefix: String,
    node_prefix: String,
    cache: Mutex<HashMap<String, Owner>>,
}

impl RedisDirectory {
    /// A directory in `namespace` on `link`.
    pub fn new(link: RedisLink, namespace: &str) -> Self {
        Self {
            link,
            prefix: format!("{namespace}:conn:"),
            node_prefix: format!("{namespace}:nodeconns:"),
            cache: Mutex::default(),
        }
    }

    fn key(&self, id: &str) -> String {
        format!("{}{id}", self.prefix)
    }

    fn node_key(&self, node: &str) -> String {
        format!("{}{node}", self.node_prefix)
    }

    fn parse(value: &str) -> Option<Owner> {
        let (node, client) = value.split_once(' ')?;
        Some(Owner {
            client: client.to_owned(),
            node: node.to_owned(),
        })
    }
}

impl ConnectionDirectory for RedisDirectory {
    fn register<'a>(
        &'a self,
        id: &'a str,
        owner: &'a Owner,
    ) -> BoxFuture<'a, Result<(), DirectoryError>> {
        Box::pin(async move {
            let value = format!("{} {}", owner.node, owner.client);
            let mut pipe = redis::pipe();
            pipe.cmd("SET")
                .arg(self.key(id))
                .arg(value)
                .ignore()
                .cmd("SADD")
                .arg(self.node_key(&owner.node))
                .arg(id)
                .ignore();
            self.link.pipe::<()>(&pipe).await?;
            Ok(())
        })
    }

    fn lookup<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Owner>, DirectoryError>> {
        Box::pin(async move {
            if let Some(owner) = lock(&self.cache).get(id) {
                return Ok(Some(owner.clone()));
            }
            let value: Option<String> =
                self.link.query(redis::cmd("GET").arg(self.key(id))).await?;
            let owner = value.as_deref().and_then(Self::parse);
            if let Some(owner) = &owner {
                let mut cache = lock(&self.cache);
                if cache.len() >= CACHE_MAX {
                    cache.clear();
                }
                cache.insert(id.to_owned(), owner.clone());
            }
            Ok(owner)
        })
    }

    fn retire<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), DirectoryError>> {
        Box::pin(async move {
            let node = lock(&self.cache).get(id).map(|o| o.node.clone());
            let mut pipe = redis::pipe();
            pipe.cmd("PEXPIRE")
                .arg(self.key(id))
                .arg(RETIRED_MS)
                .ignore();
            if let Some(node) = node {
                pipe.cmd("SREM").arg(self.node_key(&node)).arg(id).ignore();
            }
            self.link.pipe::<()>(&pipe).await?;
            Ok(())
        })
    }

    fn owned_by_node<'a>(
        &'a self,
        node: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(String, Owner)>, DirectoryError>> {
        Box::pin(async move {
            let ids: Vec<String> = self
                .link
                .query(redis::cmd("SMEMBERS").arg(self.node_key(node)))
                .await?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let mut mget = redis::cmd("MGET");
            for id in &ids {
                mget.arg(self.key(id));
            }
            let owners: Vec<Option<String>> = self.link.query(&mget).await?;
            Ok(ids
                .into_iter()
                .zip(owners)
                .filter_map(|(id, o)| Some((id, Self::parse(o.as_deref()?)?)))
                .collect())
        })
    }

    fn forget_node<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<(), DirectoryError>> {
        Box::pin(async move {
            self.link
                .query::<()>(redis::cmd("DEL").arg(self.node_key(node)))
                .await?;
            Ok(())
        })
    }
}
