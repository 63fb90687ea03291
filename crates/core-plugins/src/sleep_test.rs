use std::time::{Duration, Instant};

use plugin_api::{Action, ActionDefinition, ActionResult, Context, Input, Value, json};

/// Longest sleep accepted, so a client cannot park an action for ever.
const MAX_SLEEP_MS: u64 = 60_000;

/// Sleeps `sleepDuration` ms (default 1000) and reports how long it slept.
#[derive(Debug, Default)]
pub struct SleepTest;

fn to_integer(v: Value) -> Value {
    match &v {
        Value::String(s) => s.trim().parse::<u64>().map_or(v, Value::from),
        _ => v,
    }
}

fn sleep_duration(v: &Value) -> Result<(), String> {
    match v.as_u64() {
        Some(ms) if ms <= MAX_SLEEP_MS => Ok(()),
        _ => Err(format!(
            "sleepDuration must be a whole number of milliseconds up to {MAX_SLEEP_MS}"
        )),
    }
}

impl Action for SleepTest {
    fn definition(&self) -> ActionDefinition {
        ActionDefinition::new("sleepTest")
            .description("I will sleep and then return")
            .input(
                Input::optional("sleepDuration")
                    .default(1000)
                    .formatter(to_integer)
                    .validator(sleep_duration),
            )
            .output_example(json!({ "sleepStarted": 1, "sleepEnded": 1001, "sleepDelta": 1000, "sleepDuration": 1000 }))
    }

    async fn run(&self, ctx: Context) -> ActionResult {
        let ms = ctx
            .param("sleepDuration")
            .and_then(Value::as_u64)
            .unwrap_or(1000);
        let started_ms = now_ms();
        let started = Instant::now();
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(json!({
            "sleepStarted": started_ms,
            "sleepEnded": now_ms(),
            "sleepDelta": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "sleepDuration": ms,
        }))
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

plugin_api::register_action!(SleepTest);
