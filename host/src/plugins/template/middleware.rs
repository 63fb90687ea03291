//! An action middleware: runs around every action of the host (`global`), in priority
//! order with the others. A pre-processor may change params or refuse the call (the
//! action does not run); a post-processor may rewrite the result.

use plugin_api::{ActionError, ActionMiddleware, MiddlewareDefinition, PostContext, PreContext};

/// Logs each action call and its outcome.
pub struct CallLog;

impl ActionMiddleware for CallLog {
    fn definition(&self) -> MiddlewareDefinition {
        MiddlewareDefinition::new("{{crate_name}}CallLog").global(true)
    }

    async fn pre(&self, ctx: &mut PreContext) -> Result<(), ActionError> {
        plugin_api::tracing::info!(action = ctx.action(), "action called");
        Ok(())
    }

    async fn post(&self, ctx: &mut PostContext) -> Result<(), ActionError> {
        plugin_api::tracing::info!(action = ctx.action(), ok = ctx.result().is_ok(), "action done");
        Ok(())
    }
}

plugin_api::register_middleware!(action(CallLog));
