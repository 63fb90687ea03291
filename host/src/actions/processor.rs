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
use plugin_api::{
    ActionError, ActionResult, ConnectionInfo, Context, ErrorKind, HostServices, Params, Value,
};
use tracing::Instrument;

use super::middleware::{DynActionMiddleware, MiddlewareRegistry};
use super::params::requested_version;
use super::registry::{Registered, Registry};
use super::stats::{ActionMeter, Stats, Transport};

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
        self.registry.stats()
    }

    /// Runs one action call to completion. Never panics, whatever the action or its
    /// middleware does. A web request's connection lives for this one call, so the
    /// connection middleware's `create` and `destroy` hooks run around it.
    pub async fn process(&self, request: ActionRequest) -> ActionOutcome {
        let started = Instant::now();
        let ActionRequest { params, connection } = request;
        let transport = Transport::of(&connection.kind);
        let name = params
            .get("action")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let hooks = if connection.kind == "web" {
            self.middleware.connection_chain()
        } else {
            Vec::new()
        };
        let resolved = self.resolve(&name, &params, &connection.kind);

        // Everything in one call where the action and its middleware live together (one
        // loaded library); the action's deadline then bounds them all.
        if let Ok((action, chain)) = &resolved
            && (!chain.is_empty() || !hooks.is_empty())
            && let Some(run) =
                action
                    .handler
                    .invoke_chained(chain, &hooks, &params, &connection, &self.services)
        {
            let definition = action.handler.definition();
            let span = action_span(&name, definition.version, &connection.id);
            span.in_scope(|| tracing::debug!("action started with its middleware"));
            let (params, result) = match within(self.limit(definition), run)
                .instrument(span.clone())
                .await
            {
                Ok(Ok((params, result))) => (params, result),
                Ok(Err(err)) => (definition.prepare(params), Err(err)),
                Err(limit) => (
                    definition.prepare(params),
                    Err(timed_out(&span, &name, definition.version, limit)),
                ),
            };
            let result = logged(&span, &name, definition.version, result);
            return finish(Some(&*action.meter), transport, params, result, started);
        }

        let (connection, kept) = if hooks.is_empty() {
            (connection, None)
        } else {
            let connection =
                MiddlewareRegistry::run_connection_hooks(&hooks, true, connection, &self.services)
                    .await;
            let kept = connection.clone();
            (connection, Some(kept))
        };
        let (meter, params, result) = match resolved {
            Ok((action, chain)) => {
                let (params, result) = self.run(&name, &action, &chain, params, connection).await;
                (Some(action.meter), params, result)
            }
            // Unknown names are not counted: clients choose them, so they would grow the map.
            Err(Unresolved::Unknown) => (None, params, Err(ActionError::unknown_action(&name))),
            Err(Unresolved::Refused(action, err)) => {
                let params = action.handler.definition().prepare(params);
                (Some(action.meter), params, Err(err))
            }
        };
        if let Some(kept) = kept {
            MiddlewareRegistry::run_connection_hooks(&hooks, false, kept, &self.services).await;
        }
        finish(meter.as_deref(), transport, params, result, started)
    }

    /// The action a call names and its middleware chain, or why it cannot run.
    fn resolve(
        &self,
        name: &str,
        params: &Params,
        connection_kind: &str,
    ) -> Result<(Registered, Vec<Arc<dyn DynActionMiddleware>>), Unresolved> {
        let version = requested_version(params).map_err(|_| Unresolved::Unknown)?;
        let action = self
            .registry
            .lookup(name, version)
            .ok_or(Unresolved::Unknown)?;
        let definition = action.handler.definition();
        if let Err(err) = definition.check_connection_type(connection_kind) {
            return Err(Unresolved::Refused(action, err));
        }
        match self.middleware.action_chain(definition) {
            Ok(chain) => Ok((action, chain)),
            Err(missing) => {
                tracing::warn!(action = %name, "{missing}");
                Err(Unresolved::Refused(action, ActionError::internal()))
            }
        }
    }

    /// The deadline of one call of `definition`: its own, else the host's.
    fn limit(&self, definition: &plugin_api::ActionDefinition) -> Option<Duration> {
        definition
            .timeout_ms
            .map(Duration::from_millis)
            .or(self.call_timeout)
    }

    /// Runs a resolved action hook by hook: its pre-processors, the action within its
    /// deadline, its post-processors. Yields the params of the reply and the result.
    async fn run(
        &self,
        name: &str,
        action: &Registered,
        chain: &[Arc<dyn DynActionMiddleware>],
        params: Params,
        connection: ConnectionInfo,
    ) -> (Params, ActionResult) {
        let definition = action.handler.definition();
        let (params, connection) = if chain.is_empty() {
            (params, connection)
        } else {
            match MiddlewareRegistry::run_pre(chain, name, params, connection, &self.services).await
            {
                Ok(passed) => passed,
                Err((params, err)) => return (definition.prepare(params), Err(err)),
            }
        };
        let prepared = definition.prepare(params);
        let post_connection = (!chain.is_empty()).then(|| connection.clone());

        let span = action_span(name, definition.version, &connection.id);
        let ctx = Context::new(prepared.clone(), connection, Arc::clone(&self.services));
        span.in_scope(|| tracing::debug!("action started"));
        let run = AssertUnwindSafe(action.handler.invoke(ctx)).catch_unwind();
        let result = match within(self.limit(definition), run)
            .instrument(span.clone())
            .await
        {
            Err(limit) => Err(timed_out(&span, name, definition.version, limit)),
            Ok(Ok(result)) => logged(&span, name, definition.version, result),
            Ok(Err(panic)) => {
                let reason = panic_message(panic.as_ref());
                span.in_scope(|| {
                    tracing::error!(%reason, action = %name, version = definition.version,
                        "action panicked");
                });
                Err(ActionError::internal())
            }
        };
        let result = match post_connection {
            Some(connection) => {
                MiddlewareRegistry::run_post(
                    chain,
                    name,
                    prepared.clone(),
                    connection,
                    result,
                    &self.services,
                )
                .instrument(span)
                .await
            }
            None => result,
        };
        (prepared, result)
    }
}

/// The outcome of a call, counted on `meter` (none: an unknown action).
fn finish(
    meter: Option<&ActionMeter>,
    transport: Transport,
    params: Params,
    result: Result<Value, ActionError>,
    started: Instant,
) -> ActionOutcome {
    let duration = started.elapsed();
    if let Some(meter) = meter {
        meter.record(transport, result.is_ok(), duration);
    }
    ActionOutcome {
        params,
        result,
        duration,
    }
}

/// Why a call cannot run.
enum Unresolved {
    /// No such action (or version).
    Unknown,
    /// The action refuses it (the connection type, a missing middleware).
    Refused(Registered, ActionError),
}

/// The span of one action call.
fn action_span(name: &str, version: u32, connection: &str) -> tracing::Span {
    tracing::debug_span!("action", action = %name, version, connection = %connection)
}

/// `run` within `limit` (none: unbounded), or the limit it passed.
async fn within<T>(limit: Option<Duration>, run: impl Future<Output = T>) -> Result<T, Duration> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, run).await.map_err(|_| limit),
        None => Ok(run.await),
    }
}

/// The error of a call past its deadline, logged.
fn timed_out(span: &tracing::Span, name: &str, version: u32, limit: Duration) -> ActionError {
    span.in_scope(|| {
        tracing::warn!(action = %name, version, limit_ms = limit.as_millis(),
            "action {name} timed out");
    });
    ActionError::timed_out(name, limit)
}

/// `result`, with an internal error logged (the client sees only "internal error").
fn logged(span: &tracing::Span, name: &str, version: u32, result: ActionResult) -> ActionResult {
    if let Err(err) = &result
        && err.kind == ErrorKind::Internal
    {
        span.in_scope(|| {
            tracing::warn!(action = %name, version, "action {name} failed: {}", err.message);
        });
    }
    result
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
