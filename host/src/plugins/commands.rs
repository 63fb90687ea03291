//! The plugin subcommands of `hero`: `plugins` (list a directory), `reload` (SIGHUP a
//! running host), `new plugin` (scaffold a crate from the template).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use super::{PluginInfo, describe_file, library_files};

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
        /// Crate name (letters, digits, `-`, `_`).
        name: String,
        /// Parent directory of the new crate (default: the current directory).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// Runs a plugin subcommand; `default_dir` is the configured plugin directory.
pub fn run(command: Command, default_dir: &Path) -> ExitCode {
    let result = match command {
        Command::Plugins { plugins } => list(plugins.as_deref().unwrap_or(default_dir)),
        Command::Reload { pid } => reload(pid),
        Command::New {
            what: New::Plugin { name, dir },
        } => new_plugin(&name, dir.as_deref().unwrap_or(Path::new("."))),
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
    if !dir.is_dir() {
        anyhow::bail!("{} is not a directory", dir.display());
    }
    let files = library_files(dir);
    if files.is_empty() {
        println!("{}: no *.so files", dir.display());
    }
    for file in files {
        match describe_file(&file) {
            Ok(described) => {
                for p in described.infos {
                    println!("{}: {}", file.display(), describe(&p));
                }
            }
            Err(reason) => println!("{}: refused: {reason}", file.display()),
        }
    }
    Ok(())
}

fn reload(pid: i32) -> anyhow::Result<()> {
    let target = rustix::process::Pid::from_raw(pid).context("invalid process id")?;
    rustix::process::kill_process(target, rustix::process::Signal::HUP)
        .with_context(|| format!("cannot signal process {pid}"))?;
    println!("sent SIGHUP to {pid}");
    Ok(())
}

const TEMPLATE_LIB: &str = include_str!("../../../examples/dynamic-plugin/src/lib.rs");

fn new_plugin(name: &str, parent: &Path) -> anyhow::Result<()> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    if !valid {
        anyhow::bail!(
            "plugin name {name:?}: use letters, digits, '-' and '_', starting with a letter"
        );
    }
    let root = parent.join(name);
    if root.exists() {
        anyhow::bail!("{} already exists", root.display());
    }
    let api = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-api");
    let api = api.canonicalize().unwrap_or(api);
    let crate_name = name.replace('-', "_");
    let manifest = format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

[lib]
# cdylib: drop target/debug/lib{crate_name}.so into the host's plugin directory.
# rlib: link the same crate into a custom hero binary.
crate-type = ["cdylib", "rlib"]

[dependencies]
plugin-api = {{ path = "{api}" }}

# A crate of its own, even when created inside another workspace.
[workspace]
"#,
        api = api.display()
    );
    let lib = TEMPLATE_LIB
        .replace("dynamic_plugin", &crate_name)
        .replace("dynamic-plugin", name);
    let readme = format!(
        "# {name}\n\nA Hero plugin. Build it and drop the library into the host's plugin directory:\n\n    cargo build\n    cp target/debug/lib{crate_name}.so /path/to/hero/plugins/\n\nThe host loads it (or reloads it when the file changes) and logs `loaded plugin {name}`.\nTo link it statically instead, depend on this crate from a binary that calls\n`hero::cli::main()` and reference an item of it from `main` (see examples/static-plugin).\n"
    );
    std::fs::create_dir_all(root.join("src"))
        .with_context(|| format!("cannot create {}", root.display()))?;
    std::fs::write(root.join("Cargo.toml"), manifest)?;
    std::fs::write(root.join("src/lib.rs"), lib)?;
    std::fs::write(root.join("README.md"), readme)?;
    std::fs::write(root.join(".gitignore"), "/target\n")?;
    println!(
        "created plugin crate {} (build it with `cargo build` there)",
        root.display()
    );
    Ok(())
}
