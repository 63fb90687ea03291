//! The `{{action}}` action (made by `hero new action`; describe it here).

use plugin_api::{Action, ActionDefinition, ActionResult, Context, Input, json};

/// Echoes its `message` param (replace with what `{{action}}` does).
pub struct {{type}};

impl Action for {{type}} {
    fn definition(&self) -> ActionDefinition {
        ActionDefinition::new("{{action}}")
            .description("Echoes its message")
            .input(Input::required("message"))
            .output_example(json!({ "message": "hi" }))
    }

    async fn run(&self, ctx: Context) -> ActionResult {
        Ok(json!({ "message": ctx.param("message") }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::testing::TestHost;

    #[tokio::test]
    async fn {{module}}_echoes_its_message_and_requires_one() {
        let host = TestHost::new();
        assert_eq!(
            host.run(&{{type}}, json!({ "message": "hi" })).await,
            Ok(json!({ "message": "hi" }))
        );
        assert!(host.run(&{{type}}, json!({})).await.is_err(), "message is required");
    }
}
