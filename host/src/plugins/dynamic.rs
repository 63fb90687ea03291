//! A dynamic action: an [`Invoke`] that calls into a loaded library on the blocking pool.

use std::sync::Arc;

use plugin_api::ffi::{CallRequest, HostCall, Plugin};
use plugin_api::{ActionDefinition, ActionError, ActionResult, BoxFuture, Context};

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
            let host = HostCall::new(services, handle);
            // The plugin drives the action to completion on the calling thread: that
            // thread must be one the reactor does not need.
            let joined =
                tokio::task::spawn_blocking(move || plugin.call(&name, &request, host)).await;
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
