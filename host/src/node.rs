//! This node's duties in a cluster, every heartbeat: register itself (with its number
//! of connections, for `status`), make sure the starting rooms exist (a Redis that came
//! back empty lost them; creating them is idempotent), and, while it holds the
//! collector lock, remove from the rooms the members of nodes that died (announced as
//! normal leaves), then forget those nodes.
//!
//! Collection pauses for one node timeout after this node's link to Redis was rebuilt:
//! after an outage (this node's or Redis's), every other node's heartbeat is as stale as
//! its own, and they must get the time to beat again before anyone looks dead.

use std::sync::{Arc, Weak};
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use crate::app::App;
use crate::cluster::Nodes;
use crate::rooms::RoomError;

/// Why cleaning up after a dead node failed (it is retried on the next heartbeat).
#[derive(Debug, thiserror::Error)]
enum BuryError {
    #[error(transparent)]
    Rooms(#[from] RoomError),
    #[error(transparent)]
    Directory(#[from] crate::connections::directory::DirectoryError),
    #[error(transparent)]
    Link(#[from] crate::cluster::LinkError),
}

/// Cleans up after dead node `node`: its connections leave their rooms (announced),
/// the Bayeux sessions that owned them end (their clients handshake again on a live
/// node and open new connections), and the node is forgotten.
async fn bury(app: &App, nodes: &Nodes, node: &str) -> Result<(), BuryError> {
    let members = app.rooms.remove_node_members(node).await?;
    let owned = app.directory.owned_by_node(node).await?;
    let mut clients: Vec<&str> = owned.iter().map(|(_, o)| o.client.as_str()).collect();
    clients.sort_unstable();
    clients.dedup();
    for client in &clients {
        app.bayeux.disconnect_client(client).await;
    }
    tracing::warn!(
        node,
        members,
        connections = owned.len(),
        "node is gone: its connections left their rooms and their clients start over"
    );
    app.directory.forget_node(node).await?;
    nodes.forget(node).await?;
    Ok(())
}

/// Starts the duties when the app is clustered.
pub fn start(app: &Arc<App>) {
    if let Some(nodes) = app.nodes.clone() {
        app.bayeux.spawn(run(Arc::downgrade(app), nodes));
    }
}

async fn run(app: Weak<App>, nodes: Nodes) {
    let Some((beat, timeout, shutdown)) = app.upgrade().map(|a| {
        (
            Duration::from_millis(a.config.cluster.heartbeat_ms.max(10)),
            Duration::from_millis(a.config.cluster.node_timeout_ms.max(1)),
            a.bayeux.shutdown_token().clone(),
        )
    }) else {
        return;
    };
    let mut tick = tokio::time::interval(beat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut generation = nodes.link().generation();
    let mut paused_until = Instant::now();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(app) = app.upgrade() else {
            return;
        };
        let info = json!({
            "connections": app.connections.len(),
            "startedAt": app.started_at_ms(),
        });
        if let Err(err) = nodes.beat(&info).await {
            tracing::debug!(%err, "node heartbeat failed");
            continue;
        }
        if nodes.link().generation() != generation {
            generation = nodes.link().generation();
            paused_until = Instant::now() + timeout;
        }
        for (room, auth) in &app.config.starting_chat_rooms {
            if matches!(app.rooms.auth(room).await, Err(RoomError::NoSuchRoom)) {
                tracing::info!(
                    room,
                    "starting room missing from the cluster (redis restarted?): created again"
                );
                if let Err(err) = app.rooms.create(room, auth.clone()).await {
                    tracing::warn!(%err, room, "cannot create a starting room");
                }
            }
        }
        if Instant::now() < paused_until {
            continue;
        }
        let dead = match nodes.dead().await {
            Ok(dead) => dead,
            Err(err) => {
                tracing::debug!(%err, "cannot look for dead nodes");
                continue;
            }
        };
        for node in dead.iter().filter(|n| n.as_str() != nodes.node()) {
            if let Err(err) = bury(&app, &nodes, node).await {
                tracing::warn!(%err, node, "cannot clean up after a dead node; trying again");
            }
        }
    }
}
