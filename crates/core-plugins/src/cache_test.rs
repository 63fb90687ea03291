use std::time::Duration;

use plugin_api::{Action, ActionDefinition, ActionResult, Context, Input, json};

/// How long the test entry lives.
const TTL: Duration = Duration::from_secs(5 * 60);

/// Saves, loads and deletes `key` = `value` through the cache service.
#[derive(Debug, Default)]
pub struct CacheTest;

impl Action for CacheTest {
    fn definition(&self) -> ActionDefinition {
        ActionDefinition::new("cacheTest")
            .description("I will test the internal cache functions of the API")
            .input(Input::required("key"))
            .input(Input::required("value"))
            .output_example(json!({
                "cacheTestResults": { "saveResp": true, "loadResp": { "key": "cacheTest_k", "value": "v" }, "deleteResp": true }
            }))
    }

    async fn run(&self, ctx: Context) -> ActionResult {
        let key = format!(
            "cacheTest_{}",
            ctx.param("key").map(param_text).unwrap_or_default()
        );
        let value = ctx.param("value").cloned().unwrap_or_default();
        let cache = ctx.cache();
        // Each result is what the cache answered, so a cache that loses or mangles the
        // value shows in `saveResp`/`loadResp` instead of being reported as a success.
        cache.set(&key, value.clone(), Some(TTL)).await?;
        let loaded = cache.get(&key).await?;
        let saved = loaded.as_ref() == Some(&value);
        let deleted = cache.delete(&key).await?;
        Ok(json!({
            "cacheTestResults": {
                "saveResp": saved,
                "loadResp": { "key": key, "value": loaded },
                "deleteResp": deleted,
            }
        }))
    }
}

fn param_text(v: &plugin_api::Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

plugin_api::register_action!(CacheTest);
