//! Hero: a plugin-hosting application server after the design of actionhero.
//!
//! # Layout
//!
//! - [`cli`]: the `hero` command line (start, plugin commands) and logging.
//! - [`config`]: one typed configuration (defaults < file < env < flags).
//! - [`backends`]: the composition root: memory or Redis backends, chosen once.
//! - [`app`]: the shared state of a running host, assembled from the backends.
//! - [`servers`]: HTTP (`/api`, static files, assets) and the actionhero websocket
//!   server protocol over Bayeux.
//! - [`bayeux`]: the Bayeux server (protocol, engines, transports).
//! - [`actions`]: the registry, the params pipeline and the one processor.
//! - [`plugins`]: static plugins and the dynamic loader.
//! - [`services`]: the host services actions call (cache, rooms, attributes).
//! - [`edge`]: request facts decided once for every server (allowed origins).
//! - [`connections`]: websocket connections and who owns them cluster-wide.
//! - [`rooms`]: chat rooms (memory or Redis).
//! - [`cache`]: the key/value cache (memory or Redis).
//! - [`cluster`]: the Redis link, the node registry and the `[cluster]` settings.
//! - [`node`]: this node's duties in a cluster (heartbeat, starting rooms, dead peers).
//! - [`metrics`]: Prometheus families, served at `/metrics`.
//! - [`ids`], [`clock`]: unguessable ids; wall-clock milliseconds.
//! - `sync`: the one lock policy (a poisoned lock is recovered, never skipped).
//!
//! The flow of a websocket action: transport frame -> Bayeux message -> engine publish
//! on the connection channel -> the websocket server on the connection's owner node ->
//! the processor -> the plugin -> the reply published on the same channel. Over HTTP:
//! warp route -> params -> the processor -> the plugin -> JSON.
//!
//! [`run`] starts everything on a pre-bound listener, so tests can bind port 0.

pub mod actions;
pub mod app;
pub mod backends;
pub mod bayeux;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod connections;
pub mod edge;
pub mod ids;
pub mod metrics;
pub mod node;
pub mod plugins;
pub mod rooms;
pub mod servers;
pub mod services;
mod sync;

#[cfg(test)]
mod testing;

#[cfg(test)]
mod fuzz;

use std::future::Future;

pub use app::App;
pub use config::Config;

/// Runs the host on `listener` (a bound `TcpListener`, or a [`servers::web::Listener`]
/// with TLS) with the given backends until `shutdown` resolves.
///
/// # Errors
///
/// When the app cannot be assembled (clashing static actions).
pub async fn run(
    config: Config,
    backends: backends::Backends,
    listener: impl Into<servers::web::Listener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), app::AppError> {
    let app = App::with_backends(config, backends)?;
    app.create_starting_rooms().await?;
    let websocket = servers::actionhero::WebSocketServer::attach(&app, &app.bayeux);
    let bayeux = app.bayeux.clone();
    // Each step of closing the websocket side gets at most this, within the grace.
    let grace = std::time::Duration::from_millis(app.config.shutdown_timeout_ms)
        .min(std::time::Duration::from_secs(1));
    let shutdown = async move {
        shutdown.await;
        // Clients are told and given a moment to leave before the transports close;
        // then the transports write what they hold and end, and the engine's tasks.
        websocket
            .destroy_all("the server is shutting down", grace)
            .await;
        bayeux.shutdown(grace).await;
    };
    let redis = app.redis.clone();
    plugins::start(&app);
    node::start(&app);
    servers::web::serve(app, listener.into(), shutdown).await;
    if let Some(link) = redis {
        link.close();
    }
    Ok(())
}
