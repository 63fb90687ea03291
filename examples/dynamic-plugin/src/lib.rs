//! Template: a plugin that is loaded at run time from the host's plugin directory.
//!
//! `greet` says hello and counts, in the host's cache, how often each name was
//! greeted. Build it with `cargo build -p dynamic-plugin` and copy
//! `target/debug/libdynamic_plugin.so` into the host's `plugins/` directory.

use std::time::Duration;

use plugin_api::{Action, ActionDefinition, ActionResult, Context, Input, Value, json, tracing};

/// How long a greeting count is remembered.
const REMEMBER: Duration = Duration::from_secs(3600);

/// Greets `name` and counts the greetings through the host's cache.
#[derive(Debug, Default)]
pub struct Greet;

impl Action for Greet {
    fn definition(&self) -> ActionDefinition {
        ActionDefinition::new("greet")
            .description("Greets a name and counts how often it was greeted")
            .input(
                Input::optional("name")
                    .default("world")
                    .validator(short_name),
            )
            .output_example(json!({ "greeting": "Hello, world!", "count": 1 }))
    }

    async fn run(&self, ctx: Context) -> ActionResult {
        let name = ctx.param_str("name").unwrap_or("world").to_owned();
        let key = format!("greet:{name}");
        let cache = ctx.cache();
        let count = cache.get(&key).await?.and_then(|v| v.as_u64()).unwrap_or(0) + 1;
        cache.set(&key, count, Some(REMEMBER)).await?;
        tracing::info!(%name, count, "greeted");
        Ok(json!({ "greeting": format!("Hello, {name}!"), "count": count }))
    }
}

/// Validators run inside the plugin, whichever way it is linked.
fn short_name(value: &Value) -> Result<(), String> {
    match value.as_str() {
        Some(s) if !s.is_empty() && s.len() <= 64 => Ok(()),
        _ => Err("name must be a string of 1 to 64 characters".into()),
    }
}

// One line: registers `Greet` statically (inventory) and exports it from the .so.
plugin_api::export_plugin!(Greet);
