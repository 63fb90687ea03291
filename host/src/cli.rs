//! The command line: parses flags, loads the configuration, serves until a signal.
//!
//! A custom binary that links its own static plugins calls [`main`] after referencing
//! them (see `examples/static-plugin`).

use std::io::IsTerminal;
use std::net::SocketAddr;

use crate::Config;
use crate::config::{Flags, LogFormat};
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
    match start(config) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("hero: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn start(config: Config) -> anyhow::Result<()> {
    let addr = SocketAddr::new(config.bind, config.port);
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr().context("listener has no address")?;
    tracing::info!("listening on http://{local}");
    crate::run(config, listener, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
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
