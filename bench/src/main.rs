//! In-process benchmark: the same trivial action (`ping` of the test plugin) called
//! through the host's `Invoke`, linked statically and loaded from its cdylib build.
//!
//! `hero-bench LIB.so [N]` prints ns/call for: static `Invoke`, dynamic `Invoke`
//! (blocking-pool hop + boundary), and the bare boundary (`Plugin::call` on the calling
//! thread: JSON both ways, the C call, the plugin's runtime). The HTTP half of
//! `bench/run.sh` uses `hero-bench-server`, a `hero` with the test plugin linked in.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use hero::actions::Invoke;
use plugin_api::{ConnectionInfo, Context, HostServices, Params};

fn main() -> anyhow::Result<()> {
    std::hint::black_box(hero_test_plugin::Ping);
    let mut args = std::env::args().skip(1);
    let lib = PathBuf::from(args.next().context("usage: hero-bench LIB.so [N]")?);
    let n: u32 = args.next().map_or(Ok(200_000), |s| s.parse())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(calls(lib, n))
}

async fn calls(lib: PathBuf, n: u32) -> anyhow::Result<()> {
    let app = hero::App::new(hero::Config::default())?;
    let services: Arc<dyn HostServices> =
        Arc::new(hero::services::Services::new(Arc::downgrade(&app)));
    let ctx = Context::new(
        Params::new(),
        ConnectionInfo::default(),
        Arc::clone(&services),
    );

    let static_ping: Arc<dyn Invoke> = Arc::new(
        plugin_api::registered_actions()
            .find(|h| h.definition().name == "ping")
            .context("static ping not linked")?,
    );
    let handlers = hero::plugins::describe_file(&lib)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .handlers;
    let dynamic_ping = handlers
        .into_iter()
        .find(|h| h.definition().name == "ping")
        .context("no ping in the library")?;

    for (label, handler) in [
        ("static Invoke", &static_ping),
        ("dynamic Invoke", &dynamic_ping),
    ] {
        let per_call = time(n, || handler.invoke(ctx.clone())).await?;
        println!("{label:<16} {per_call:>8.0} ns/call  ({n} calls)");
    }

    let plugin = hero::plugins::library::open(&lib, &std::fs::read(&lib)?)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .plugins
        .into_iter()
        .next()
        .context("no plugin entry")?;
    let request = plugin_api::ffi::CallRequest {
        version: 1,
        params: Params::new(),
        connection: ConnectionInfo::default(),
    };
    let handle = tokio::runtime::Handle::current();
    // The boundary behind `block_in_place` on the calling task, as the host calls it,
    // without the host's Invoke wrapping (JSON of the context, error mapping).
    let in_place = {
        let started = Instant::now();
        for _ in 0..n {
            let host = plugin_api::ffi::HostCall::new(Arc::clone(&services), handle.clone());
            let reply = tokio::task::block_in_place(|| plugin.call("ping", &request, host));
            std::hint::black_box(reply.ok());
        }
        started.elapsed().as_nanos() as f64 / f64::from(n)
    };
    println!(
        "{:<16} {in_place:>8.0} ns/call  ({n} calls, block_in_place)",
        "in-place boundary"
    );
    let boundary = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        for _ in 0..n {
            let host = plugin_api::ffi::HostCall::new(Arc::clone(&services), handle.clone());
            std::hint::black_box(plugin.call("ping", &request, host).ok());
        }
        started.elapsed().as_nanos() as f64 / f64::from(n)
    })
    .await?;
    println!(
        "{:<16} {boundary:>8.0} ns/call  ({n} calls on one blocking thread)",
        "bare boundary"
    );
    Ok(())
}

/// Mean ns per awaited call, after a warm-up of n/10 calls.
async fn time(
    n: u32,
    call: impl Fn() -> plugin_api::BoxFuture<'static, plugin_api::ActionResult>,
) -> anyhow::Result<f64> {
    for _ in 0..n / 10 {
        call().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let started = Instant::now();
    for _ in 0..n {
        std::hint::black_box(call().await.map_err(|e| anyhow::anyhow!("{e}"))?);
    }
    Ok(started.elapsed().as_nanos() as f64 / f64::from(n))
}
