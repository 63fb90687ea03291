//! The running host's shared state: configuration, actions, services.
//!
//! [`App`] is assembled once from the [`Backends`] the composition root chose, and
//! shared behind an `Arc` by every request handler, the websocket server and the
//! node's background duties. It owns no policy of its own beyond `status`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::actions::{Clash, MiddlewareClash, MiddlewareRegistry, Processor, Registry};
use crate::backends::Backends;
use crate::bayeux::Bayeux;
use crate::cache::Cache;
use crate::clock::now_ms;
use crate::cluster::RedisLink;
use crate::config::Config;
use crate::connections::Connections;
use crate::rooms::Rooms;
use crate::services::Services;

/// Everything a request handler needs, shared behind one `Arc`.
#[derive(Debug)]
pub struct App {
    /// The configuration it was started with.
    pub config: Config,
    /// The action processor (and through it, the registry).
    pub processor: Processor,
    /// The cache behind the `cache` service.
    pub cache: Arc<dyn Cache>,
    /// Live websocket connections.
    pub connections: Arc<Connections>,
    /// Chat rooms.
    pub rooms: Rooms,
    /// The Bayeux server at `/faye`.
    pub bayeux: Bayeux,
    /// Dynamic plugins (loaded by [`crate::plugins::start`]).
    pub plugins: crate::plugins::Plugins,
    /// The Redis link, when clustered.
    pub redis: Option<RedisLink>,
    /// Who owns which connection, cluster-wide.
    pub directory: Arc<dyn crate::connections::ConnectionDirectory>,
    /// This node's id in the cluster (`local` for a single node).
    pub node_id: String,
    /// The node registry, when clustered.
    pub nodes: Option<crate::cluster::Nodes>,
    started: Instant,
    started_at_ms: u64,
}

/// The app could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Two statically linked actions share a name and version, or a route (static or
    /// from the config) is malformed or clashes with another.
    #[error(transparent)]
    Clash(#[from] Clash),
    /// Two statically linked middleware of one kind share a name.
    #[error(transparent)]
    MiddlewareClash(#[from] MiddlewareClash),
    /// The starting chat rooms could not be created.
    #[error("cannot create the starting chat rooms: {0}")]
    Rooms(#[from] crate::rooms::RoomError),
}

impl App {
    /// Assembles a single-node app (every backend in memory) with every statically
    /// linked action.
    ///
    /// # Errors
    ///
    /// Two static actions clash.
    pub fn new(config: Config) -> Result<Arc<Self>, AppError> {
        let backends = Backends::memory(&config);
        Self::with_backends(config, backends)
    }

    /// Assembles the app on the given backends.
    ///
    /// # Errors
    ///
    /// Two static actions (or middleware) clash.
    pub fn with_backends(config: Config, backends: Backends) -> Result<Arc<Self>, AppError> {
        let registry = Arc::new(Registry::with_static_actions()?);
        registry.set_config_routes(config.routes.routes())?;
        let middleware = Arc::new(MiddlewareRegistry::with_static_middleware()?);
        let connections = Arc::new(Connections::default());
        let rooms = Rooms::new(backends.rooms, Arc::clone(&connections), &backends.node_id);
        let mut bayeux_config = config.bayeux.clone();
        bayeux_config.trust_forwarded_for = config.trust_proxy;
        bayeux_config.allowed_origins = config.allowed_origins.clone();
        let bayeux = Bayeux::with_engine(bayeux_config, backends.engine);
        let call_timeout = Duration::from_millis(config.plugin_call_timeout_ms);
        crate::plugins::set_call_limits(crate::plugins::CallLimits {
            timeout: if call_timeout.is_zero() {
                Duration::MAX
            } else {
                call_timeout
            },
            max_concurrent: config.plugin_max_concurrent_calls,
        });
        Ok(Arc::new_cyclic(|weak| {
            let services: Arc<dyn plugin_api::HostServices> = Arc::new(Services::new(weak.clone()));
            rooms.set_middleware(Arc::clone(&middleware), Arc::clone(&services));
            App {
                bayeux,
                plugins: crate::plugins::Plugins::new(
                    config.plugins.clone(),
                    config.max_plugin_generations,
                ),
                config,
                processor: Processor::with_middleware(registry, middleware, services)
                    .with_call_timeout(call_timeout),
                cache: backends.cache,
                redis: backends.redis,
                directory: backends.directory,
                node_id: backends.node_id,
                nodes: backends.nodes,
                connections,
                rooms,
                started: Instant::now(),
                started_at_ms: now_ms(),
            }
        }))
    }

    /// The middleware registry.
    pub fn middleware(&self) -> &Arc<MiddlewareRegistry> {
        self.processor.middleware()
    }

    /// The action registry.
    pub fn registry(&self) -> &Arc<Registry> {
        self.processor.registry()
    }

    /// Creates the configured starting chat rooms.
    ///
    /// # Errors
    ///
    /// The room store fails.
    pub async fn create_starting_rooms(&self) -> Result<(), crate::rooms::RoomError> {
        for (room, auth) in &self.config.starting_chat_rooms {
            self.rooms.create(room, auth.clone()).await?;
        }
        Ok(())
    }

    /// Uptime, counts and per-action counters, as the `status` action returns them.
    pub async fn status(&self) -> Value {
        json!({
            "id": self.config.server_name,
            "uptime": u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "startedAt": self.started_at_ms,
            "actions": self.registry().list().len(),
            "cacheEntries": self.cache.count().await.ok(),
            "connections": self.connections.status(),
            "chatRooms": self.rooms.status().await,
            "stats": { "actions": self.processor.stats().snapshot() },
            "plugins": self.plugins.status(),
            "nodes": self.nodes_status().await,
        })
    }

    /// The live nodes with their connection counts (this node alone when not clustered,
    /// or when Redis cannot say).
    async fn nodes_status(&self) -> Value {
        let here = || json!([{"id": self.node_id, "connections": self.connections.len(), "startedAt": self.started_at_ms}]);
        match &self.nodes {
            None => here(),
            Some(nodes) => match nodes.live().await {
                Ok(live) => Value::Array(live),
                Err(err) => {
                    tracing::debug!(%err, "cannot list the nodes");
                    here()
                }
            },
        }
    }

    /// When this node started, in ms since the epoch.
    pub fn started_at_ms(&self) -> u64 {
        self.started_at_ms
    }
}
