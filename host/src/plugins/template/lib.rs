//! {{name}}: a Hero plugin with one action, `hello` (the example of Hero's README, with
//! an HTTP route), an action middleware (`middleware.rs`), and a test that runs the
//! action on `plugin_api::testing`, an in-memory host.
//!
//! `cargo test` runs the test; `cargo build --release` builds
//! `target/release/lib{{crate_name}}.so` for the host's plugin directory.

use plugin_api::{Action, ActionDefinition, ActionResult, Context, Input, Method, json};

/// Greets someone.
pub struct Hello;

impl Action for Hello {
    fn definition(&self) -> ActionDefinition {
        ActionDefinition::new("hello")
            .description("Says hello")
            .input(Input::optional("name").default("world"))
            .output_example(json!({ "greeting": "Hello, world!" }))
            // Also at /api/hello/you: the path segment becomes the `name` param.
            .route(Method::Get, "/hello/:name")
    }

    async fn run(&self, ctx: Context) -> ActionResult {
        let name = ctx.param_str("name").unwrap_or("world");
        Ok(json!({ "greeting": format!("Hello, {name}!") }))
    }
}

plugin_api::export_plugin!(Hello);

/// An action middleware that logs every call (see `src/middleware.rs`).
mod middleware;

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::testing::TestHost;

    #[tokio::test]
    async fn hello_greets_by_name_or_the_world() {
        let host = TestHost::new();
        assert_eq!(
            host.run(&Hello, json!({ "name": "you" })).await,
            Ok(json!({ "greeting": "Hello, you!" }))
        );
        // The host's params pipeline runs first: the default fills in a missing name.
        assert_eq!(
            host.run(&Hello, json!({})).await,
            Ok(json!({ "greeting": "Hello, world!" }))
        );
    }
}
