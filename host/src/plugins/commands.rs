//! The plugin subcommands of `hero`: `plugins` (list a directory), `reload` (SIGHUP a
//! running host), `new plugin` and `new action` (templates, in [`super::scaffold`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use super::{PluginInfo, library_files, register_file};
use crate::actions::Registry;

/// Plugin subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Lists what a plugin directory holds: plugins, versions, actions, ABI, or why a
    /// file would be refused.
    Plugins {
        /// The directory (default: the configured `plugins`).
        #[arg(long, value_name = "DIR")]
        plugins: Option<PathBuf>,
    },
    /// Makes a running host reload its plugin directory now (sends it SIGHUP).
    Reload {
        /// Process id of the host.
        #[arg(long, value_name = "N")]
        pid: i32,
    },
    /// Creates things from templates.
    New {
        /// What to create.
        #[command(subcommand)]
        what: New,
    },
}

/// What `hero new` creates.
#[derive(Debug, clap::Subcommand)]
pub enum New {
    /// A plugin crate that builds both as a `.so` and as an rlib.
    Plugin {
        /// Crate name (letters, digits, `-`, `_`; not the name of one of Hero's crates).
        name: String,
        /// Parent directory of the new crate (default: the current directory).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// The `plugin-api` crate (directory) to depend on, written as a path relative to
        /// the new crate when given as one. Default: a `plugin-api/` found upward from
        /// the parent directory, the current directory, or the `hero` executable.
        #[arg(long = "plugin-api", value_name = "PATH")]
        plugin_api: Option<PathBuf>,
    },
    /// An action in a plugin crate: `src/<name>.rs` with a test, registered in
    /// `src/lib.rs`'s `export_plugin!`.
    Action {
        /// Action name as clients call it (`showUser`; `show-user` and `show_user` too).
        name: String,
        /// The plugin crate (default: the current directory).
        #[arg(long = "crate", value_name = "DIR")]
        crate_dir: Option<PathBuf>,
    },
}

/// Runs a plugin subcommand; `default_dir` is the configured plugin directory.
pub fn run(command: Command, default_dir: &Path) -> ExitCode {
    let result = match command {
        Command::Plugins { plugins } => list(plugins.as_deref().unwrap_or(default_dir)),
        Command::Reload { pid } => reload(pid),
        Command::New {
            what:
                New::Plugin {
                    name,
                    dir,
                    plugin_api,
                },
        } => super::scaffold::new_plugin(
            &name,
            dir.as_deref().unwrap_or(Path::new(".")),
            plugin_api.as_deref(),
        ),
        Command::New {
            what: New::Action { name, crate_dir },
        } => super::scaffold::new_action(&name, crate_dir.as_deref().unwrap_or(Path::new("."))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("hero: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn describe(p: &PluginInfo) -> String {
    format!(
        "{} {} (ABI {}, plugin-api {}, {}): {}",
        p.name,
        p.version,
        p.abi,
        p.api_version,
        p.rustc,
        p.actions.join(", ")
    )
}

fn list(dir: &Path) -> anyhow::Result<()> {
    for line in listing(dir)? {
        println!("{line}");
    }
    Ok(())
}

/// What `hero plugins` prints for `dir`: one line per plugin of each `*.so` file, or
/// why the file is refused. Files are registered in turn over this binary's static
/// actions, in the order a starting host loads them, so clashes (with a static action
/// or an earlier file) are reported as the host would refuse them.
///
/// # Errors
///
/// `dir` is not a directory, or this binary's static actions clash.
pub fn listing(dir: &Path) -> anyhow::Result<Vec<String>> {
    if let Some(problem) = super::dir_problem(dir) {
        anyhow::bail!("{problem}");
    }
    let registry = Registry::with_static_actions()?;
    let files = library_files(dir);
    if files.is_empty() {
        return Ok(vec![format!("{}: no *.so files", dir.display())]);
    }
    let mut lines = Vec::new();
    for file in files {
        match register_file(&registry, &file) {
            Ok(infos) => lines.extend(
                infos
                    .iter()
                    .map(|p| format!("{}: {}", file.display(), describe(p))),
            ),
            Err(reason) => lines.push(format!("{}: refused: {reason}", file.display())),
        }
    }
    Ok(lines)
}

fn reload(pid: i32) -> anyhow::Result<()> {
    let target = rustix::process::Pid::from_raw(pid).context("invalid process id")?;
    rustix::process::kill_process(target, rustix::process::Signal::HUP)
        .with_context(|| format!("cannot signal process {pid}"))?;
    println!("sent SIGHUP to {pid}");
    Ok(())
}

// The scaffold: the README's `hello` action and a test on `plugin_api::testing`.
