//! The command line: parses flags, loads the configuration, serves until a signal.
//!
//! A custom binary that links its own static plugins calls [`main`] after referencing
//! them (see `examples/static-plugin`).

use std::io::IsTerminal;
use std::net::SocketAddr;

use crate::Config;
use crate::config::{Flags, LogFormat};
use crate::servers::web::Listener;
use anyhow::Context as _;
use clap::Parser;
use tokio::net::TcpListener;

/// Hero: actions over HTTP and websockets, from plugins.
#[derive(Debug, Parser)]
#[command(name = "hero", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<crate::plugins::commands::Command>,
    #[command(flatten)]
    flags: Flags,
}

/// Runs the `hero` command line; returns the process exit code.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(&cli.flags) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("hero: {err}");
            return std::process::ExitCode::from(2);
        }
    };
    if let Some(command) = cli.command {
        return crate::plugins::commands::run(command, &config.plugins);
    }
    init_logging(config.log_format);
    for warning in crate::config::env_warnings() {
        tracing::warn!("{warning}");
    }
    match start(config) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("hero: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// How long the runtime waits, once the server has stopped, for blocking-pool threads:
/// by then only plugin calls past their deadline can hold one, and those may never
/// return, so the process must not wait for them.
const STRAY_THREAD_GRACE: std::time::Duration = std::time::Duration::from_millis(250);

fn start(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(serve(config));
    runtime.shutdown_timeout(STRAY_THREAD_GRACE);
    result
}

async fn serve(config: Config) -> anyhow::Result<()> {
    // Handlers first: a signal that arrives once `listening` is logged must already
    // mean "shut down gracefully", not the default "die".
    let shutdown = shutdown_signal().context("cannot install signal handlers")?;
    // Backends before the listener: a node that cannot join its cluster never says it
    // is listening.
    let tls = crate::servers::tls::acceptor(config.tls_cert.as_deref(), config.tls_key.as_deref())?;
    let backends = crate::backends::Backends::connect(&config).await?;
    let addr = SocketAddr::new(config.bind, config.port);
    let tcp = bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    let local = tcp.local_addr().context("listener has no address")?;
    let listener = Listener::new(tcp, tls);
    tracing::info!("listening on {}://{local}", listener.scheme());
    crate::run(config, backends, listener, shutdown).await?;
    tracing::info!("stopped");
    Ok(())
}

/// A listener with address reuse (a restarted host gets its port back at once) and a
/// deep accept backlog. `TCP_NODELAY` is set by `servers::web::serve`, for every listener.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Installs SIGINT and SIGTERM handlers; the future resolves on either.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// Resolves on Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none())
            .init(),
    }
}
