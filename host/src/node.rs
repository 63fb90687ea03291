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

/// Starts the duties when the app is clustered.
pub fn start(app: &Arc<App>) {
    if let Some(nodes) = app.nodes.clone() {
        tokio::spawn(run(Arc::downgrade(app), nodes));
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
            match app.rooms.remove_node_members(node).await {
                Ok(members) => {
                    tracing::warn!(
                        node,
                        members,
                        "node is gone: its connections left their rooms"
                    );
                    if let Err(err) = nodes.forget(node).await {
                        tracing::debug!(%err, node, "cannot forget a dead node");
                    }
                }
                Err(err) => tracing::warn!(%err, node, "cannot remove a dead node's members"),
            }
        }
    }
}
