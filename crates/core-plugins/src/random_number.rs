use plugin_api::{Action, ActionDefinition, ActionResult, Context, json};
use rand::Rng;

/// Returns a random number in [0, 1).
#[derive(Debug, Default)]
pub struct RandomNumber;

impl Action for RandomNumber {
    fn definition(&self) -> ActionDefinition {
        ActionDefinition::new("randomNumber")
            .description("I am an API method which will generate a random number")
            .output_example(json!({ "randomNumber": 0.123 }))
    }

    async fn run(&self, _ctx: Context) -> ActionResult {
        Ok(json!({ "randomNumber": rand::rng().random::<f64>() }))
    }
}

plugin_api::register_action!(RandomNumber);
