//! The one action processor every transport calls.
//!
//! HTTP (`/api`) and the websocket server both hand it an [`ActionRequest`]; it finds
//! the action, runs the params pipeline (scrub, defaults, formatters, validators),
//! calls the action with a [`Context`](plugin_api::Context) on the host services,
//! isolates panics, and counts the call. Around the action it runs the action
//! middleware chain (pre-processors on the raw params, post-processors on the result),
//! and for a `web` connection, which lives for one request, the connection middleware's
//! `create` and `destroy` hooks around the whole call.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use plugin_api::{ActionError, ConnectionInfo, Context, ErrorKind, HostServices, Params, Value};
use tracing::Instrument;

use super::middleware::MiddlewareRegistry;
use super::params::requested_version;
use super::registry::Registry;
use super::stats::Stats;

/// Counts a connection's actions in flight, to enforce `simultaneousActions`.
#[derive(Debug, Default, Clone)]
pub struct PendingActions(Arc<AtomicUsize>);

impl PendingActions {
    /// Actions in flight now.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }

    /// Takes a slot if fewer than `limit` are taken; the slot frees itself on drop.
    pub fn try_acquire(&self, limit: usize) -> Option<PendingSlot> {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| PendingSlot(Arc::clone(&self.0)))
    }
}

/// One action in flight; dropping it frees the slot.
#[derive(Debug)]
pub struct PendingSlot(Arc<AtomicUsize>);

impl Drop for PendingSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One action call as a transport hands it over.
#[derive(Debug)]
pub struct ActionRequest {
    /// Everything the client sent (the action name under `action`).
    pub params: Params,
    /// The calling connection.
    pub connection: ConnectionInfo,
}

/// What came of one action call.
#[derive(Debug)]
pub struct ActionOutcome {
    /// The params after scrubbing, with the resolved `apiVersion`.
    pub params: Params,
    /// The action's result, or the error for the client.
    pub result: Result<Value, ActionError>,
    /// Time from lookup to result.
    pub duration: Duration,
}

/// Looks actions up, prepares params, runs them with panic isolation, counts them.
#[derive(Debug)]
pub struct Processor {
    registry: Arc<Registry>,
    middleware: Arc<MiddlewareRegistry>,
    services: Arc<dyn HostServices>,
    stats: Stats,
    /// Deadline of a call whose action sets none (`None`: no deadline).
    call_timeout: Option<Duration>,
}

impl Processor {
    /// A processor over `registry`, giving actions `services`, with no middleware.
    pub fn new(registry: Arc<Registry>, services: Arc<dyn HostServices>) -> Self {
        Self::with_middleware(registry, Arc::default(), services)
    }

    /// A processor over `registry` that runs the middleware of `middleware`.
    pub fn with_middleware(
        registry: Arc<Registry>,
        middleware: Arc<MiddlewareRegistry>,
        services: Arc<dyn HostServices>,
    ) -> Self {
        Self {
            registry,
            middleware,
            services,
            stats: Stats::default(),
            call_timeout: None,
        }
    }

    /// Gives every call at most `limit` unless its action sets its own (`ZERO`: no
    /// deadline for those).
    #[must_use]
    pub fn with_call_timeout(mut self, limit: Duration) -> Self {
        self.call_timeout = (!limit.is_zero()).then_some(limit);
        self
    }

    /// The middleware it runs (and the rooms and websocket server run).
    pub fn middleware(&self) -> &Arc<MiddlewareRegistry> {
        &self.middleware
    }

    /// The host services actions and middleware get.
    pub fn services(&self) -> &Arc<dyn HostServices> {
        &self.services
    }

    /// The registry it looks actions up in.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Per-action counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Runs one action call to completion. Never panics, whatever the action or its
    /// middleware does.
    pub async fn process(&self, request: ActionRequest) -> ActionOutcome {
        // A `web` connection is created and destroyed with its request (as actionhero's
        // `web` server does for each request): its connection hooks run around the call.
        let web = request.connection.kind == "web" && self.middleware.has_connection_hooks();
        if !web {
            return self.process_call(request).await;
        }
        let ActionRequest { params, connection } = request;
        let connection = self
            .middleware
            .run_connection(true, connection, &self.services)
            .await;
        let kept = connection.clone();
        let outcome = self
            .process_call(ActionRequest { params, connection })
            .await;
        self.middleware
            .run_connection(false, kept, &self.services)
            .await;
        outcome
    }

    async fn process_call(&self, request: ActionRequest) -> ActionOutcome {
        let started = Instant::now();
        let ActionRequest { params, connection } = request;
        let transport = transport_label(&connection.kind);
        let name = params
            .get("action")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();

        let Ok(version) = requested_version(&params) else {
            return self.finish(
                &name,
                transport,
                params,
                Err(ActionError::unknown_action(&name)),
                started,
            );
        };
        let Some(action) = self.registry.lookup(&name, version) else {
            return self.finish(
                &name,
                transport,
                params,
                Err(ActionError::unknown_action(&name)),
                started,
            );
        };
        let definition = action.handler.definition();
        if let Err(err) = definition.check_connection_type(&connection.kind) {
            let mut scrubbed = definition.scrub(params);
            scrubbed.insert("apiVersion".into(), Value::from(definition.version));
            return self.finish(&name, transport, scrubbed, Err(err), started);
        }

        let chain = match self.middleware.action_chain(definition) {
            Ok(chain) => chain,
            Err(missing) => {
                tracing::warn!(action = %name, "{missing}");
                let scrubbed = definition.scrub(params);
                return self.finish(
                    &name,
                    transport,
                    scrubbed,
                    Err(ActionError::internal()),
                    started,
                );
            }
        };
        // Pre-processors see every param the client sent, before scrubbing (actionhero).
        let (params, connection) = if chain.is_empty() {
            (params, connection)
        } else {
            match MiddlewareRegistry::run_pre(&chain, &name, params, connection, &self.services)
                .await
            {
                Ok(passed) => passed,
                Err((params, err)) => {
                    let mut scrubbed = definition.scrub(params);
                    scrubbed.insert("apiVersion".into(), Value::from(definition.version));
                    return self.finish(&name, transport, scrubbed, Err(err), started);
                }
            }
        };
        let mut scrubbed = definition.scrub(params);
        scrubbed.insert("apiVersion".into(), Value::from(definition.version));
        let post_connection = (!chain.is_empty()).then(|| connection.clone());

        // One span per call, at `debug` (`RUST_LOG=info,hero::actions=debug` shows them):
        // an enabled span costs ~8% of a whole HTTP request under the fmt subscriber.
        // The failure events below name the action, so they stand alone at `info`.
        let span = tracing::debug_span!("action", action = %name, version = definition.version,
            connection = %connection.id);
        let ctx = Context::new(scrubbed.clone(), connection, Arc::clone(&self.services));
        span.in_scope(|| tracing::debug!("action started"));
        let run = AssertUnwindSafe(action.handler.invoke(ctx)).catch_unwind();
        let limit = definition
            .timeout_ms
            .map(Duration::from_millis)
            .or(self.call_timeout);
        // Past the deadline the call is dropped (a dynamic one goes on, counted as
        // stuck, on its pool thread) and the client is answered.
        let bounded = async {
            match limit {
                Some(limit) => tokio::time::timeout(limit, run).await.map_err(|_| limit),
                None => Ok(run.await),
            }
        };
        let result = match bounded.instrument(span.clone()).await {
            Err(limit) => {
                span.in_scope(|| {
                    tracing::warn!(action = %name, version = definition.version,
                        limit_ms = limit.as_millis(), "action {name} timed out");
                });
                Err(ActionError::timed_out(&name, limit))
            }
            Ok(outcome) => match outcome {
                Ok(Err(err)) if err.kind == ErrorKind::Internal => {
                    // A host service error passed on with `?`, or a host failure: the client
                    // reads the message; the log says which action it was.
                    span.in_scope(|| {
                        tracing::warn!(action = %name, version = definition.version,
                        "action {name} failed: {}", err.message);
                    });
                    Err(err)
                }
                Ok(result) => result,
                Err(panic) => {
                    let reason = panic_message(panic.as_ref());
                    span.in_scope(|| {
                        tracing::error!(%reason, action = %name, version = definition.version,
                        "action panicked");
                    });
                    Err(ActionError::internal())
                }
            },
        };
        let result = match post_connection {
            Some(connection) => {
                MiddlewareRegistry::run_post(
                    &chain,
                    &name,
                    scrubbed.clone(),
                    connection,
                    result,
                    &self.services,
                )
                .instrument(span)
                .await
            }
            None => result,
        };
        self.finish(&name, transport, scrubbed, result, started)
    }

    fn finish(
        &self,
        name: &str,
        transport: &str,
        params: Params,
        result: Result<Value, ActionError>,
        started: Instant,
    ) -> ActionOutcome {
        let duration = started.elapsed();
        // Unknown names are not counted: clients choose them, so they would grow the map.
        if !matches!(&result, Err(e) if e.kind == ErrorKind::UnknownAction) {
            self.stats.record(name, result.is_ok(), duration);
            crate::metrics::action_called(name, transport, result.is_ok(), duration);
        }
        ActionOutcome {
            params,
            result,
            duration,
        }
    }
}

/// The metrics label of a connection type: the two the host makes, else `other` (the
/// type comes from the transport, but a label set must stay bounded).
fn transport_label(kind: &str) -> &'static str {
    match kind {
        "web" => "web",
        "webSocket" => "webSocket",
        _ => "other",
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

/// Merges an action's result into a response object: an object's fields are copied,
/// anything else goes under `data`.
pub fn merge_result(response: &mut serde_json::Map<String, Value>, result: Value) {
    match result {
        Value::Object(fields) => response.extend(fields),
        Value::Null => {}
        other => {
            response.insert("data".into(), other);
        }
    }
}
