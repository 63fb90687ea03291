//! Settings of the Bayeux server (`[bayeux]` in the main configuration).
//!
//! Protocol timing (timeout, interval, expiry), limits on every input, and the channel
//! rules (internal prefix, exact-only prefixes). Engines get what they need from it.

use serde::{Deserialize, Serialize};

/// Settings of the Bayeux server; every field has a default (see [`Default`]).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BayeuxConfig {
    /// URL path the server is mounted at (`/faye`); no trailing slash.
    pub mount_path: String,
    /// How long a `/meta/connect` is held at most, in ms (advice `timeout`).
    pub timeout_ms: u64,
    /// Advice `interval`: how long a client waits between connects, in ms.
    pub interval_ms: u64,
    /// EventSource comment-ping period, in ms.
    pub ping_ms: u64,
    /// A session that has not sent a connect for this many timeouts is destroyed
    /// (faye uses 1.6).
    pub session_expiry_factor: f64,
    /// Largest websocket message (text frame after reassembly), in bytes.
    pub max_frame_bytes: usize,
    /// Largest HTTP request body (long-polling, form or JSONP query), in bytes.
    pub max_body_bytes: usize,
    /// Most channels in one `/meta/subscribe` or `/meta/unsubscribe`.
    pub max_channels_per_subscribe: usize,
    /// Network sessions at most (cluster-wide with Redis; 0: no cap).
    pub max_sessions: usize,
    /// Network sessions handshaken from one address at most (0: no cap).
    pub max_sessions_per_ip: usize,
    /// Handshakes in one request at most (0: no cap).
    pub max_handshakes_per_request: usize,
    /// Longest channel name or pattern, in bytes: matching a publish against wildcard
    /// subscriptions costs the name's length times its depth.
    pub max_channel_bytes: usize,
    /// Most segments in a channel name or pattern (`/a/b/c` has 3).
    pub max_channel_segments: usize,
    /// Most subscriptions a single client may hold.
    pub max_subscriptions_per_client: usize,
    /// Most messages queued for one client; past it the client is disconnected
    /// (slow consumer) rather than buffered without bound.
    pub max_queue: usize,
    /// Most deliveries sent in one reply or websocket frame.
    pub max_batch: usize,
    /// Per-socket websocket read buffer, in bytes. tungstenite allocates it up front and
    /// zero-fills it on every read; larger frames grow it as needed, so a small one costs
    /// little but saves memory per idle socket.
    pub ws_read_buffer_bytes: usize,
    /// Per-socket websocket write buffer threshold, in bytes: replies written while more
    /// frames are ready to read collect up to this much before they go to the socket.
    pub ws_write_buffer_bytes: usize,
    /// Not used any more (a websocket socket has one task, and no queue between a
    /// reader and a writer); still accepted so that configurations naming it load.
    pub ws_send_queue: usize,
    /// Channel prefix reserved for in-process traffic; network clients can neither
    /// subscribe nor publish under it, and `/**` subscribers never see it.
    pub internal_prefix: String,
    /// Channel prefixes network clients may only subscribe to by exact name: wildcard
    /// subscriptions under them are refused (`403`) and broader wildcards (`/**`) do not
    /// receive their messages. Protects the websocket server's per-connection channels.
    pub exact_only_prefixes: Vec<String>,
    /// Take the client address from `X-Forwarded-For`: the host's `trust_proxy`, copied in
    /// by the app (one setting decides it for every server).
    #[serde(skip)]
    pub trust_forwarded_for: bool,
    /// Browser origins allowed (the host's `allowed_origins`, copied in by the app).
    #[serde(skip)]
    pub allowed_origins: crate::edge::origin::AllowedOrigins,
}

impl Default for BayeuxConfig {
    fn default() -> Self {
        Self {
            mount_path: "/faye".to_owned(),
            timeout_ms: 45_000,
            interval_ms: 0,
            ping_ms: 10_000,
            session_expiry_factor: 1.6,
            max_frame_bytes: 1 << 20,
            max_body_bytes: 1 << 20,
            max_channels_per_subscribe: 100,
            max_sessions: 100_000,
            max_sessions_per_ip: 0,
            max_handshakes_per_request: 1,
            max_channel_bytes: 1024,
            max_channel_segments: 32,
            max_subscriptions_per_client: 1_000,
            max_queue: 1_000,
            max_batch: 100,
            ws_read_buffer_bytes: 512,
            ws_write_buffer_bytes: 8192,
            ws_send_queue: 64,
            internal_prefix: "/hero".to_owned(),
            exact_only_prefixes: vec!["/client/websocket".to_owned()],
            trust_forwarded_for: false,
            allowed_origins: crate::edge::origin::AllowedOrigins::default(),
        }
    }
}

impl BayeuxConfig {
    /// The largest websocket frame the writer can hold (its buffer cap); frames are
    /// built up to `max_frame_bytes`, a single larger delivery gets a frame of its own.
    pub fn max_write_bytes(&self) -> usize {
        self.ws_write_buffer_bytes + self.max_frame_bytes.max(1 << 16) * 4
    }

    /// The largest delivery a publish may make: one that fits a frame of its own.
    pub fn max_delivery_bytes(&self) -> usize {
        self.max_write_bytes()
            .saturating_sub(self.ws_write_buffer_bytes + 2)
    }

    /// The mount path without a trailing slash (`/` becomes the empty string).
    pub(crate) fn mount(&self) -> &str {
        self.mount_path.trim_end_matches('/')
    }

    /// How long a session lives without a connect.
    pub(crate) fn session_ttl(&self) -> std::time::Duration {
        let factor = if self.session_expiry_factor.is_finite() && self.session_expiry_factor >= 1.0
        {
            self.session_expiry_factor
        } else {
            1.6
        };
        std::time::Duration::from_millis((self.timeout_ms as f64 * factor) as u64)
            .max(std::time::Duration::from_millis(100))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_unknown_fields() {
        let c: BayeuxConfig = serde_json::from_str(r#"{"timeout_ms": 1000}"#).unwrap();
        assert_eq!(c.timeout_ms, 1000);
        assert_eq!(c.mount_path, "/faye");
        assert!(serde_json::from_str::<BayeuxConfig>(r#"{"nope": 1}"#).is_err());
    }
}
