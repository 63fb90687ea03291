use plugin_api::{Action, ActionDefinition, ActionResult, Context, json};

/// Reports the host's uptime, connection counts and per-action counters.
#[derive(Debug, Default)]
pub struct Status;

impl Action for Status {
    fn definition(&self) -> ActionDefinition {
        ActionDefinition::new("status")
            .description("I will return some basic information about the API")
            .output_example(json!({ "status": "OK", "uptime": 12345, "stats": {} }))
    }

    async fn run(&self, ctx: Context) -> ActionResult {
        let mut status = ctx.services().host_status().await?;
        if let Some(fields) = status.as_object_mut() {
            fields.insert("status".into(), json!("OK"));
        }
        Ok(status)
    }
}

plugin_api::register_action!(Status);
