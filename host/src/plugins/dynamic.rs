//! A dynamic action: an [`Invoke`] that calls into a loaded library off the reactor.
//!
//! The request is encoded as JSON, passed through the library's `call` entry point
//! with `block_in_place` (or the blocking pool on a current-thread runtime), and the
//! reply decoded; the library stays loaded while any action of it is registered.

use std::sync::Arc;

use plugin_api::ffi::{CallRequest, HostCall, Plugin};
use plugin_api::{ActionDefinition, ActionError, ActionResult, BoxFuture, Context};
use tokio::runtime::RuntimeFlavor;

use crate::actions::Invoke;

/// One action of a loaded library.
#[derive(Debug)]
pub struct DynamicAction {
    plugin: Plugin,
    definition: ActionDefinition,
}

impl DynamicAction {
    /// The action `definition` served by `plugin`.
    pub fn new(plugin: Plugin, definition: ActionDefinition) -> Arc<Self> {
        Arc::new(Self { plugin, definition })
    }
}

impl Invoke for DynamicAction {
    fn definition(&self) -> &ActionDefinition {
        &self.definition
    }

    fn invoke(&self, ctx: Context) -> BoxFuture<'static, ActionResult> {
        let plugin = self.plugin;
        let name = self.definition.name.clone();
        let request = CallRequest {
            version: self.definition.version,
            params: ctx.params().clone(),
            connection: ctx.connection().clone(),
        };
        let services = Arc::clone(ctx.services());
        Box::pin(async move {
            let handle = tokio::runtime::Handle::current();
            let multi_thread = handle.runtime_flavor() == RuntimeFlavor::MultiThread;
            let host = HostCall::new(services, handle);
            // The plugin drives the action to completion on the calling thread: that
            // thread must be one the reactor does not need. On the multi-threaded runtime
            // `block_in_place` hands this worker's other tasks to another thread and runs
            // the call right here; a hop to the blocking pool would cost two thread
            // wake-ups per call (20+ µs when the cores are idle, against ~1 µs here).
            let started = std::time::Instant::now();
            let joined = if multi_thread {
                Ok(tokio::task::block_in_place(|| {
                    plugin.call(&name, &request, host)
                }))
            } else {
                tokio::task::spawn_blocking(move || plugin.call(&name, &request, host)).await
            };
            crate::metrics::PLUGIN_CALL_SECONDS
                .with_label_values(&[&plugin.name()])
                .observe(started.elapsed().as_secs_f64());
            match joined {
                Ok(Ok(reply)) => reply.into(),
                Ok(Err(err)) => {
                    tracing::error!(plugin = %plugin.name(), error = %err, "dynamic action failed");
                    Err(ActionError::internal())
                }
                Err(err) => {
                    tracing::error!(plugin = %plugin.name(), error = %err, "dynamic action task failed");
                    Err(ActionError::internal())
                }
            }
        })
    }
}
