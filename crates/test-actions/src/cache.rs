//! Test actions for the cache service, one operation each, so a test can write on one
//! node, read on another and delete on a third.
//!
//! - `cacheSetTest`: sets `key` = `value`, expiring after `ttlMs` if given.
//! - `cacheGetTest`: reads `key` (`null` if absent).
//! - `cacheDeleteTest`: deletes `key`; says whether a value was there.

use std::time::Duration;

use plugin_api::{
    Action, ActionDefinition, ActionError, ActionResult, Context, Input, Value, json,
};

fn key(ctx: &Context) -> Result<String, ActionError> {
    match ctx.param("key") {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Ok(other.to_string()),
        None => Err(ActionError::missing_param("key")),
    }
}

fn unavailable(err: plugin_api::ServiceError) -> ActionError {
    ActionError::new(err.to_string())
}

/// Sets a cache entry.
#[derive(Debug, Default)]
pub(crate) struct CacheSetTest;

impl Action for CacheSetTest {
    fn definition(&self) -> ActionDefinition {
        ActionDefinition::new("cacheSetTest")
            .description("I set a cache entry")
            .input(Input::required("key"))
            .input(Input::required("value"))
            .input(Input::optional("ttlMs"))
    }

    async fn run(&self, ctx: Context) -> ActionResult {
        let key = key(&ctx)?;
        let value = ctx.param("value").cloned().unwrap_or(Value::Null);
        let ttl = ctx
            .param("ttlMs")
            .and_then(|t| t.as_u64().or_else(|| t.as_str()?.parse().ok()))
            .map(Duration::from_millis);
        ctx.cache()
            .set(&key, value, ttl)
            .await
            .map_err(unavailable)?;
        Ok(json!({ "set": key }))
    }
}

/// Reads a cache entry.
#[derive(Debug, Default)]
pub(crate) struct CacheGetTest;

impl Action for CacheGetTest {
    fn definition(&self) -> ActionDefinition {
        ActionDefinition::new("cacheGetTest")
            .description("I read a cache entry")
            .input(Input::required("key"))
    }

    async fn run(&self, ctx: Context) -> ActionResult {
        let key = key(&ctx)?;
        let value = ctx.cache().get(&key).await.map_err(unavailable)?;
        Ok(json!({ "key": key, "value": value }))
    }
}

/// Deletes a cache entry.
#[derive(Debug, Default)]
pub(crate) struct CacheDeleteTest;

impl Action for CacheDeleteTest {
    fn definition(&self) -> ActionDefinition {
        ActionDefinition::new("cacheDeleteTest")
            .description("I delete a cache entry")
            .input(Input::required("key"))
    }

    async fn run(&self, ctx: Context) -> ActionResult {
        let key = key(&ctx)?;
        let deleted = ctx.cache().delete(&key).await.map_err(unavailable)?;
        Ok(json!({ "key": key, "deleted": deleted }))
    }
}

plugin_api::register_action!(CacheSetTest, CacheGetTest, CacheDeleteTest);

/// Keeps this module's registrations linked (see the crate's `link`).
#[inline(never)]
pub(crate) fn link() {
    std::hint::black_box(&NAMES);
}

static NAMES: [&str; 3] = ["cacheSetTest", "cacheGetTest", "cacheDeleteTest"];
