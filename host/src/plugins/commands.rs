//! The plugin subcommands of `hero`: `plugins` (list a directory), `reload` (SIGHUP a
//! running host), `new plugin` (scaffold a crate from the template).

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
        } => new_plugin(
            &name,
            dir.as_deref().unwrap_or(Path::new(".")),
            plugin_api.as_deref(),
        ),
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
const TEMPLATE_LIB: &str = include_str!("template/lib.rs");
const TEMPLATE_MANIFEST: &str = include_str!("template/Cargo.toml.in");
const TEMPLATE_README: &str = include_str!("template/README.md");

/// Package names of Hero's own crates (every workspace member, and the spellings
/// authors reach for): a plugin by one of these names would clash with them.
const HERO_CRATES: [&str; 11] = [
    "plugin-api",
    "hero",
    "hero-plugins",
    "hero-test-actions",
    "hero-test-plugin",
    "test-plugin",
    "dynamic-plugin",
    "static-plugin",
    "hero-bench",
    "bare-warp",
    "bayeux-floor",
];

/// Whether `name` is (up to `-`/`_` and case) the name of one of Hero's crates.
fn clashes_with_hero(name: &str) -> bool {
    let name = name.to_ascii_lowercase().replace('_', "-");
    HERO_CRATES.contains(&name.as_str())
}

/// Whether `dir` holds the `plugin-api` package.
fn is_plugin_api(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("Cargo.toml")).is_ok_and(|manifest| {
        manifest
            .lines()
            .any(|l| l.trim() == r#"name = "plugin-api""#)
    })
}

/// The first `plugin-api` crate found in (or beside, as `plugin-api/`) a directory on
/// the way up from each of `starts`.
fn find_plugin_api(starts: &[PathBuf]) -> Option<PathBuf> {
    starts.iter().find_map(|start| {
        start.ancestors().find_map(|dir| {
            [dir.to_path_buf(), dir.join("plugin-api")]
                .into_iter()
                .find(|candidate| is_plugin_api(candidate))
        })
    })
}

/// When the `plugin-api` path is written relative to the new crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relative {
    /// Given as relative: kept relative.
    Always,
    /// Found: relative when the two share a directory below the root.
    WhenNear,
    /// Given as absolute: kept absolute.
    Never,
}

/// Where the scaffold's `plugin-api` dependency points, and how it was chosen.
#[derive(Debug)]
struct ApiDependency {
    /// The crate directory, absolute.
    dir: PathBuf,
    /// Whether to write it relative to the new crate.
    relative: Relative,
    /// For the manifest's comment.
    origin: String,
}

/// The `--plugin-api` given, checked, or else the crate found from `starts`.
fn locate_plugin_api(given: Option<&Path>, starts: &[PathBuf]) -> anyhow::Result<ApiDependency> {
    if let Some(given) = given {
        let dir = if given.file_name().is_some_and(|f| f == "Cargo.toml") {
            given.parent().unwrap_or(Path::new("."))
        } else {
            given
        };
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if !is_plugin_api(dir) {
            anyhow::bail!(
                "--plugin-api {}: no plugin-api crate there (expected a Cargo.toml with \
                 name = \"plugin-api\")",
                given.display()
            );
        }
        return Ok(ApiDependency {
            dir: dir
                .canonicalize()
                .with_context(|| format!("cannot resolve {}", dir.display()))?,
            relative: if given.is_relative() {
                Relative::Always
            } else {
                Relative::Never
            },
            origin: format!("given with `--plugin-api {}`", given.display()),
        });
    }
    let dir = find_plugin_api(starts).ok_or_else(|| {
        let looked: Vec<String> = starts.iter().map(|s| s.display().to_string()).collect();
        anyhow::anyhow!(
            "cannot find Hero's plugin-api crate (looked for plugin-api/Cargo.toml upward \
             from {}); pass its directory with --plugin-api PATH",
            looked.join(", ")
        )
    })?;
    let dir = dir.canonicalize().unwrap_or(dir);
    let origin = format!("found by `hero new plugin` at {}", dir.display());
    Ok(ApiDependency {
        dir,
        relative: Relative::WhenNear,
        origin,
    })
}

/// `to` relative to `from` (both absolute and canonical).
fn relative_path(to: &Path, from: &Path) -> PathBuf {
    let to: Vec<_> = to.components().collect();
    let from: Vec<_> = from.components().collect();
    let common = to.iter().zip(&from).take_while(|(a, b)| a == b).count();
    let mut path: PathBuf = from[common..].iter().map(|_| "..").collect();
    path.extend(&to[common..]);
    if path.as_os_str().is_empty() {
        path.push(".");
    }
    path
}

/// Whether two absolute paths share more than the root (else a relative path between
/// them climbs to `/` and helps no one).
fn share_a_directory(a: &Path, b: &Path) -> bool {
    a.components()
        .zip(b.components())
        .take_while(|(x, y)| x == y)
        .count()
        >= 2
}

/// A TOML basic string's contents.
fn toml_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

fn new_plugin(name: &str, parent: &Path, plugin_api: Option<&Path>) -> anyhow::Result<()> {
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
    if clashes_with_hero(name) {
        anyhow::bail!(
            "plugin name {name:?} is taken by one of Hero's own crates ({}); choose another name",
            HERO_CRATES.join(", ")
        );
    }
    let root = parent.join(name);
    if root.exists() {
        anyhow::bail!("{} already exists", root.display());
    }
    // Where to look: the new crate's parent, the current directory, the executable's.
    let mut starts = Vec::new();
    starts.extend(parent.canonicalize().ok());
    starts.extend(std::env::current_dir().ok());
    starts.extend(
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf)),
    );
    let api = locate_plugin_api(plugin_api, &starts)?;
    std::fs::create_dir_all(root.join("src"))
        .with_context(|| format!("cannot create {}", root.display()))?;
    let root_abs = root.canonicalize().unwrap_or_else(|_| root.clone());
    // A path given as relative stays relative; a found one is when it is near.
    let api_path = match api.relative {
        Relative::Always => relative_path(&api.dir, &root_abs),
        Relative::WhenNear if share_a_directory(&api.dir, &root_abs) => {
            relative_path(&api.dir, &root_abs)
        }
        _ => api.dir.clone(),
    };
    let crate_name = name.replace('-', "_");
    let fill = |template: &str, api_path: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{crate_name}}", &crate_name)
            .replace("{{origin}}", &api.origin)
            .replace("{{plugin_api}}", api_path)
    };
    let api_path = api_path.display().to_string();
    std::fs::write(
        root.join("Cargo.toml"),
        fill(TEMPLATE_MANIFEST, &toml_escape(&api_path)),
    )?;
    std::fs::write(root.join("src/lib.rs"), fill(TEMPLATE_LIB, &api_path))?;
    std::fs::write(root.join("README.md"), fill(TEMPLATE_README, &api_path))?;
    std::fs::write(root.join(".gitignore"), "/target\n")?;
    if let Err(why) = write_lock_file(&root, &api.dir) {
        eprintln!("hero: warning: {why}");
    }
    println!(
        "created plugin crate {} (plugin-api at {api_path}): `cargo test` runs its test, \
         `cargo build --release` builds target/release/lib{crate_name}.so",
        root.display()
    );
    Ok(())
}

/// Writes `root/Cargo.lock`. Seeded with the lock file of the workspace holding
/// `api_dir` when there is one (the versions the host was built with, which are then
/// already downloaded), and brought in line by cargo when cargo is on the PATH.
fn write_lock_file(root: &Path, api_dir: &Path) -> Result<(), String> {
    let lock = root.join("Cargo.lock");
    let seed = api_dir.parent().map(|ws| ws.join("Cargo.lock"));
    let seeded = seed.is_some_and(|seed| std::fs::copy(seed, &lock).is_ok());
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let args: &[&str] = if seeded {
        &["update", "--workspace", "--quiet"]
    } else {
        &["generate-lockfile", "--quiet"]
    };
    let fix = format!("run `cargo {}` in {}", args[0], root.display());
    let out = std::process::Command::new(&cargo)
        .args(args)
        .current_dir(root)
        .output()
        .map_err(|err| {
            format!(
                "no lock file written: cannot run {} ({err}); {fix}",
                Path::new(&cargo).display()
            )
        })?;
    if !out.status.success() {
        return Err(format!(
            "`cargo {}` failed ({}); {fix}:\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_holds_the_readme_action() {
        let readme = include_str!("../../../README.md");
        let section = &readme[readme.find("## Writing a first action").unwrap()..];
        let start = section.find("```rust\n").unwrap() + "```rust\n".len();
        let action = &section[start..start + section[start..].find("```").unwrap()];
        assert!(TEMPLATE_LIB.contains(action), "{action}");
        assert!(TEMPLATE_LIB.contains("plugin_api::testing::TestHost"));
    }

    #[test]
    fn hero_crate_names_are_refused() {
        for name in [
            "plugin-api",
            "plugin_api",
            "hero",
            "Hero_Plugins",
            "test_plugin",
        ] {
            assert!(clashes_with_hero(name), "{name}");
        }
        assert!(!clashes_with_hero("hello"));
        // Every package of the workspace is listed.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        let members = &manifest[manifest.find("members = [").unwrap()..];
        let members = &members[..members.find(']').unwrap()];
        for member in members.split('"').skip(1).step_by(2) {
            let member = std::fs::read_to_string(root.join(member).join("Cargo.toml")).unwrap();
            let name = member
                .lines()
                .find_map(|l| l.strip_prefix("name = \""))
                .and_then(|l| l.strip_suffix('"'))
                .unwrap();
            assert!(clashes_with_hero(name), "{name} is not in HERO_CRATES");
        }
    }

    #[test]
    fn plugin_api_is_found_upward_and_written_relative() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        let api = base.join("hero/plugin-api");
        std::fs::create_dir_all(&api).unwrap();
        std::fs::write(api.join("Cargo.toml"), "[package]\nname = \"plugin-api\"\n").unwrap();
        let deep = base.join("hero/plugins/mine");
        std::fs::create_dir_all(&deep).unwrap();
        assert_eq!(
            find_plugin_api(std::slice::from_ref(&deep)),
            Some(api.clone())
        );
        assert_eq!(find_plugin_api(&[api.join("src")]), Some(api.clone()));
        assert_eq!(find_plugin_api(&[base.join("elsewhere")]), None);
        assert_eq!(
            relative_path(&api, &deep.join("hello")),
            PathBuf::from("../../../plugin-api")
        );
        assert_eq!(
            relative_path(Path::new("/a/b"), Path::new("/c/d")),
            PathBuf::from("../../a/b")
        );
        assert!(share_a_directory(&api, &deep));
        assert!(!share_a_directory(Path::new("/a/b"), Path::new("/c")));

        let starts = [deep.clone()];
        let given = locate_plugin_api(Some(&api.join("Cargo.toml")), &starts).unwrap();
        assert_eq!((given.dir, given.relative), (api.clone(), Relative::Never));
        let found = locate_plugin_api(None, &starts).unwrap();
        assert_eq!(
            (found.dir, found.relative),
            (api.clone(), Relative::WhenNear)
        );
        let err = locate_plugin_api(Some(&deep), &starts).unwrap_err();
        assert!(err.to_string().contains("--plugin-api"), "{err}");
        let err = locate_plugin_api(None, &[base.join("elsewhere")]).unwrap_err();
        assert!(
            err.to_string()
                .contains("pass its directory with --plugin-api PATH"),
            "{err}"
        );
    }
}
