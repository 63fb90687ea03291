//! The composition root: the one place that picks each backend, memory or Redis, from
//! the configuration. Everything else talks to the traits ([`Engine`], [`RoomStore`]).
//!
//! Without `redis` every backend is in memory and nothing touches the network. With it,
//! the node connects once ([`RedisLink`]) and the clustered backends share that link.

use std::sync::Arc;
use std::time::Duration;

use crate::bayeux::engine::{MemoryEngineConfig, RedisEngineConfig};
use crate::bayeux::{Engine, MemoryEngine, RedisEngine};
use crate::cache::{Cache, MemoryCache, RedisCache};
use crate::cluster::{LinkError, Nodes, RedisLink};
use crate::config::Config;
use crate::connections::{ConnectionDirectory, MemoryDirectory, RedisDirectory};
use crate::rooms::{MemoryRoomStore, RedisRoomStore, RoomStore};

/// The backends of one node.
#[derive(Debug)]
pub struct Backends {
    /// Where Bayeux state lives.
    pub engine: Arc<dyn Engine>,
    /// Chat rooms and their members.
    pub rooms: Arc<dyn RoomStore>,
    /// The `cache` service.
    pub cache: Arc<dyn Cache>,
    /// Who owns which connection.
    pub directory: Arc<dyn ConnectionDirectory>,
    /// This node's id (`local` for a single node).
    pub node_id: String,
    /// The Redis link, when clustered.
    pub redis: Option<RedisLink>,
    /// The node registry, when clustered.
    pub nodes: Option<Nodes>,
}

/// The backends could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Redis is unreachable or the URL is malformed.
    #[error(transparent)]
    Redis(#[from] LinkError),
    /// The clustered engine could not start.
    #[error("cannot start the cluster engine: {0}")]
    Engine(#[from] crate::bayeux::engine::EngineError),
}

impl Backends {
    /// Every backend in memory (a single node; `redis` is ignored).
    pub fn memory(config: &Config) -> Self {
        let b = &config.bayeux;
        Self {
            engine: Arc::new(MemoryEngine::new(MemoryEngineConfig::new(
                b.session_ttl(),
                b.max_queue,
            ))),
            rooms: Arc::new(MemoryRoomStore::default()),
            cache: Arc::new(MemoryCache::default()),
            directory: Arc::new(MemoryDirectory::default()),
            node_id: "local".to_owned(),
            redis: None,
            nodes: None,
        }
    }

    /// The backends the configuration asks for: memory, or Redis when `redis` is set
    /// (waiting for it up to `cluster.connect_wait_ms`).
    ///
    /// # Errors
    /// Redis is unreachable (after the wait) or answers nonsense.
    pub async fn connect(config: &Config) -> Result<Self, BackendError> {
        let Some(url) = config.redis.as_deref() else {
            return Ok(Self::memory(config));
        };
        let c = &config.cluster;
        let link = RedisLink::connect(
            url,
            c.call_timeout(),
            Duration::from_millis(c.reconnect_max_ms),
            Duration::from_millis(c.connect_wait_ms),
        )
        .await?;
        let engine = RedisEngine::start_on(
            link.clone(),
            RedisEngineConfig::new(
                config.bayeux.session_ttl(),
                config.bayeux.max_queue,
                c.clone(),
            ),
        )
        .await?;
        tracing::info!(redis = %link.url(), namespace = %c.namespace, node = engine.node_id(), "joined the cluster");
        let nodes = Nodes::new(
            link.clone(),
            &c.namespace,
            engine.node_id(),
            c.node_timeout_ms,
        );
        Ok(Self {
            node_id: engine.node_id().to_owned(),
            engine: Arc::new(engine),
            rooms: Arc::new(RedisRoomStore::new(link.clone(), &c.namespace)),
            cache: Arc::new(RedisCache::new(link.clone(), &c.namespace)),
            directory: Arc::new(RedisDirectory::new(link.clone(), &c.namespace)),
            nodes: Some(nodes),
            redis: Some(link),
        })
    }
}
