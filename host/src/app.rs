//! The running host's shared state: configuration, actions, services.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::actions::{Clash, Processor, Registry};
use crate::cache::MemoryCache;
use crate::config::Config;
use crate::services::Services;

/// Everything a request handler needs, shared behind one `Arc`.
#[derive(Debug)]
pub struct App {
    /// The configuration it was started with.
    pub config: Config,
    /// The action processor (and through it, the registry).
    pub processor: Processor,
    /// The cache behind the `cache` service.
    pub cache: MemoryCache,
    /// The Bayeux server.
    pub bayeux: crate::bayeux::Bayeux,
    /// Dynamic plugins (loaded by [`crate::plugins::start`]).
    pub plugins: crate::plugins::Plugins,
    started: Instant,
    started_at_ms: u64,
}

/// The app could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Two statically linked actions share a name and version.
    #[error(transparent)]
    Clash(#[from] Clash),
}

impl App {
    /// Assembles the app with every statically linked action.
    ///
    /// # Errors
    ///
    /// Two static actions clash.
    pub fn new(config: Config) -> Result<Arc<Self>, AppError> {
        let registry = Arc::new(Registry::with_static_actions()?);
        let mut bayeux_config = config.bayeux.clone();
        bayeux_config.trust_forwarded_for |= config.trust_proxy;
        let bayeux = crate::bayeux::Bayeux::new(bayeux_config);
        Ok(Arc::new_cyclic(|weak| App {
            bayeux,
            plugins: crate::plugins::Plugins::new(config.plugins.clone()),
            config,
            processor: Processor::new(registry, Arc::new(Services::new(weak.clone()))),
            cache: MemoryCache::default(),
            started: Instant::now(),
            started_at_ms: now_ms(),
        }))
    }

    /// The action registry.
    pub fn registry(&self) -> &Arc<Registry> {
        self.processor.registry()
    }

    /// Uptime, counts and per-action counters, as the `status` action returns them.
    pub fn status(&self) -> Value {
        json!({
            "id": self.config.server_name,
            "uptime": u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "startedAt": self.started_at_ms,
            "actions": self.registry().list().len(),
            "cacheEntries": self.cache.len(),
            "stats": { "actions": self.processor.stats().snapshot() },
            "plugins": self.plugins.status(),
        })
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
