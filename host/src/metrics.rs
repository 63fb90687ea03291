//! Prometheus metrics, served at `/metrics` in the text exposition format.
//!
//! Two kinds of figures. Events (an action call, a plugin load, a slow consumer evicted)
//! are counted where they happen, in process-wide families of one registry: the
//! conventional Prometheus shape, and nothing to thread through every constructor.
//! Levels (sessions, queued deliveries, connections, rooms, nodes) and counters that
//! their owners already keep (Redis errors) are read from the [`App`] at scrape time,
//! so the hot paths pay nothing for them. Process figures (CPU, RSS, open fds) come from
//! the `prometheus` crate's process collector.

use std::sync::{LazyLock, Mutex, OnceLock};
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::app::App;

/// Latency buckets for action and plugin calls, in seconds: 50 µs to 10 s.
const BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// The one registry every family below lives in.
static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let registry = Registry::new();
    #[cfg(target_os = "linux")]
    if let Err(err) = registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    )) {
        tracing::debug!(%err, "no process metrics");
    }
    registry
});

/// Registers a family. Names and labels are constants checked by the tests, so a
/// failure here is a programming error no input can cause.
fn register<M: prometheus::core::Collector + Clone + 'static>(metric: prometheus::Result<M>) -> M {
    let metric = metric.expect("metric names and labels are valid");
    REGISTRY
        .register(Box::new(metric.clone()))
        .expect("each metric family is registered once");
    metric
}

fn counters(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(IntCounterVec::new(Opts::new(name, help), labels))
}

fn histogram(name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    register(HistogramVec::new(
        HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()),
        labels,
    ))
}

fn gauge(name: &str, help: &str) -> IntGauge {
    register(IntGauge::new(name, help))
}

fn gauges(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(IntGaugeVec::new(Opts::new(name, help), labels))
}

/// Action calls by action, transport (`web`, `webSocket`) and outcome (`ok`, `error`).
pub static ACTIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counters(
        "hero_action_calls_total",
        "Action calls, by action, transport and outcome",
        &["action", "transport", "outcome"],
    )
});

/// Action call latency by action and transport.
pub static ACTION_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram(
        "hero_action_duration_seconds",
        "Action call latency, lookup to result",
        &["action", "transport"],
    )
});

/// Time spent inside a dynamic plugin's calls, by plugin and call (`action`, `chain`:
/// an action inside its middleware chain, `hook`: one middleware hook).
pub static PLUGIN_CALL_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram(
        "hero_plugin_call_duration_seconds",
        "Time inside a dynamic plugin call, by plugin and call (action, chain, hook)",
        &["plugin", "call"],
    )
});

/// Plugin file events: `loaded`, `reloaded`, `refused`, `removed`.
pub static PLUGIN_EVENTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counters(
        "hero_plugin_events_total",
        "Dynamic plugin files loaded, reloaded, refused or removed",
        &["event"],
    )
});

/// Bayeux sessions destroyed because their mailbox was full.
pub static SLOW_CONSUMER_EVICTIONS: LazyLock<IntCounter> = LazyLock::new(|| {
    register(IntCounter::new(
        "hero_bayeux_slow_consumer_evictions_total",
        "Bayeux sessions disconnected because their mailbox was full",
    ))
});

/// Deliveries handed back to their sessions because the reply or frame carrying them
/// could not be written.
pub static BAYEUX_DELIVERIES_RESTORED: LazyLock<IntCounter> = LazyLock::new(|| {
    register(IntCounter::new(
        "hero_bayeux_deliveries_restored_total",
        "Bayeux deliveries handed back to their session after a failed write",
    ))
});

/// Figures read from the app at scrape time.
struct Levels {
    sessions: IntGauge,
    queued: IntGauge,
    connections: IntGaugeVec,
    rooms: IntGauge,
    nodes: IntGauge,
    redis_errors: IntCounter,
    actions: IntGauge,
    plugins: IntGaugeVec,
}

static LEVELS: LazyLock<Levels> = LazyLock::new(|| Levels {
    sessions: gauge("hero_bayeux_sessions", "Bayeux sessions held by this node"),
    queued: gauge(
        "hero_bayeux_queued_deliveries",
        "Deliveries waiting in this node's Bayeux mailboxes",
    ),
    connections: gauges(
        "hero_connections",
        "Open actionhero connections on this node, by type",
        &["type"],
    ),
    rooms: gauge("hero_chat_rooms", "Chat rooms"),
    nodes: gauge(
        "hero_cluster_nodes",
        "Live nodes in the cluster (1 when not clustered)",
    ),
    redis_errors: register(IntCounter::new(
        "hero_redis_errors_total",
        "Redis calls that failed or timed out",
    )),
    actions: gauge("hero_actions", "Registered actions"),
    plugins: gauges(
        "hero_plugin_files",
        "Dynamic plugin files, by state",
        &["state"],
    ),
});

/// Scrapes are serialised: the counters synced from their owners move by differences.
static SCRAPE: Mutex<()> = Mutex::new(());

/// The series of one action on one transport, looked up once: a call then costs two
/// atomic updates, not two label lookups (hashing and a read lock each). The outcome
/// counters appear on their first use, as they would with a lookup per call.
#[derive(Debug)]
pub struct ActionSeries {
    action: String,
    transport: &'static str,
    ok: OnceLock<IntCounter>,
    error: OnceLock<IntCounter>,
    seconds: prometheus::Histogram,
}

impl ActionSeries {
    /// The series of `action` called over `transport`.
    pub fn new(action: &str, transport: &'static str) -> Self {
        Self {
            action: action.to_owned(),
            transport,
            ok: OnceLock::new(),
            error: OnceLock::new(),
            seconds: ACTION_SECONDS.with_label_values(&[action, transport]),
        }
    }

    /// Records one call.
    pub fn record(&self, ok: bool, elapsed: Duration) {
        let (counter, outcome) = if ok {
            (&self.ok, "ok")
        } else {
            (&self.error, "error")
        };
        counter
            .get_or_init(|| ACTIONS.with_label_values(&[&self.action, self.transport, outcome]))
            .inc();
        self.seconds.observe(elapsed.as_secs_f64());
    }
}

/// Sockets refused at accept, by the cap they hit.
pub static CONNECTIONS_REFUSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counters(
        "hero_connections_refused_total",
        "Sockets refused at accept, by the cap they hit",
        &["cap"],
    )
});

/// Bayeux requests refused by a quota, by the setting.
pub static BAYEUX_REFUSALS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counters(
        "hero_bayeux_refusals_total",
        "Bayeux handshakes refused by a quota, by the setting that refused them",
        &["limit"],
    )
});

/// Records one Bayeux handshake refused by `limit`.
pub fn bayeux_refusal(limit: &str) {
    BAYEUX_REFUSALS.with_label_values(&[limit]).inc();
}

/// Records `n` deliveries handed back after a failed write.
pub fn bayeux_deliveries_restored(n: usize) {
    BAYEUX_DELIVERIES_RESTORED.inc_by(n as u64);
}

/// Plugin calls past their deadline still running, per plugin.
static PLUGIN_CALLS_STUCK: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauges(
        "hero_plugin_calls_stuck",
        "Plugin calls past their deadline that have not returned yet",
        &["plugin"],
    )
});

/// Records a plugin call that passed its deadline while still running.
pub fn plugin_call_stuck(plugin: &str) {
    PLUGIN_CALLS_STUCK.with_label_values(&[plugin]).inc();
}

/// Records a stuck plugin call that returned at last.
pub fn plugin_call_unstuck(plugin: &str) {
    PLUGIN_CALLS_STUCK.with_label_values(&[plugin]).dec();
}

/// Records one socket refused at accept (`cap`: the setting it hit).
pub fn connection_refused(cap: &str) {
    CONNECTIONS_REFUSED.with_label_values(&[cap]).inc();
}

/// Records one plugin file event (`loaded`, `reloaded`, `refused`, `removed`).
pub fn plugin_event(event: &str) {
    PLUGIN_EVENTS.with_label_values(&[event]).inc();
}

/// Every family, in the Prometheus text format, with the levels read from `app` now.
pub async fn render(app: &App) -> String {
    let load = app.bayeux.engine().local_load();
    // Both may wait on Redis (each bounded by the call deadline): in parallel.
    let live_nodes = async {
        match &app.nodes {
            None => Some(1),
            Some(nodes) => nodes.live().await.ok().map(|live| live.len()),
        }
    };
    let (rooms, nodes) = tokio::join!(app.rooms.count(), live_nodes);
    let (loaded, refused) = app.plugins.counts();
    let redis_errors = app.redis.as_ref().map_or(0, |link| link.errors());
    let _serial = crate::sync::lock(&SCRAPE);
    let levels = &*LEVELS;
    levels.sessions.set(as_i64(load.sessions));
    levels.queued.set(as_i64(load.queued));
    levels
        .connections
        .with_label_values(&["webSocket"])
        .set(as_i64(app.connections.len()));
    if let Some(rooms) = rooms {
        levels.rooms.set(as_i64(rooms));
    }
    if let Some(nodes) = nodes {
        levels.nodes.set(as_i64(nodes));
    }
    levels.actions.set(as_i64(app.registry().list().len()));
    levels
        .plugins
        .with_label_values(&["loaded"])
        .set(as_i64(loaded));
    levels
        .plugins
        .with_label_values(&["refused"])
        .set(as_i64(refused));
    let seen = levels.redis_errors.get();
    levels
        .redis_errors
        .inc_by(redis_errors.saturating_sub(seen));
    // Touch the event families so that each is listed from the first scrape on.
    LazyLock::force(&ACTIONS);
    LazyLock::force(&ACTION_SECONDS);
    LazyLock::force(&PLUGIN_CALL_SECONDS);
    LazyLock::force(&PLUGIN_EVENTS);
    LazyLock::force(&PLUGIN_CALLS_STUCK);
    LazyLock::force(&SLOW_CONSUMER_EVICTIONS);
    LazyLock::force(&BAYEUX_DELIVERIES_RESTORED);
    let mut out = Vec::new();
    if let Err(err) = TextEncoder::new().encode(&REGISTRY.gather(), &mut out) {
        tracing::warn!(%err, "metrics encoding failed");
    }
    String::from_utf8(out).unwrap_or_default()
}

fn as_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
