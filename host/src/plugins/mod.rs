//! Plugins: the dynamic loader (libloading, ABI checks) and hot reload.
//!
//! Static plugins need nothing here: they register through `inventory` and the
//! [`Registry`] collects them at start-up. Dynamic plugins are the `*.so` files of the
//! plugin directory (config key `plugins`). Each file is loaded from a private copy
//! (see [`library`]), its actions and middleware registered under [`Origin::Dynamic`]
//! with the file's path, and swapped atomically when the file changes (a middleware
//! name another origin has refuses the file, as an action clash does). A file that cannot be loaded
//! is refused with one log line naming it and the reason; the host keeps serving.
//!
//! Changes are picked up by polling the directory every `plugin_reload_ms` (0: never),
//! on `SIGHUP`, and with `hero reload --pid N` (which sends `SIGHUP`).

pub mod commands;
mod dynamic;
pub mod library;
pub mod scaffold;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use plugin_api::ffi::Plugin;
use serde::Serialize;
use serde_json::Value;

use crate::actions::{Hook, Invoke, MiddlewareRegistry, Origin, Registry};
use crate::app::App;
pub use dynamic::{
    CallGate, CallLimits, DynamicAction, DynamicMiddleware, set_call_limits, stuck_calls,
};
pub use library::Refusal;

/// What identifies a version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    meta.is_file().then(|| Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
    })
}

/// One plugin entry of a loaded file, as `status` and `hero plugins` report it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginInfo {
    /// Package name.
    pub name: String,
    /// Package version.
    pub version: String,
    /// ABI version.
    pub abi: u32,
    /// plugin-api version it was built against.
    pub api_version: String,
    /// Compiler of the build.
    pub rustc: String,
    /// Actions, as `name@version`.
    pub actions: Vec<String>,
}

/// What became of one file. A refused replacement leaves the version loaded before
/// serving: then both are set.
#[derive(Debug)]
struct FileState {
    stamp: Stamp,
    /// The version whose actions are registered, if any.
    loaded: Option<Vec<PluginInfo>>,
    /// Why the current content of the file was refused, if it was.
    refused: Option<String>,
}

/// The dynamic plugins of a running host.
#[derive(Debug)]
pub struct Plugins {
    dir: PathBuf,
    files: Mutex<BTreeMap<PathBuf, FileState>>,
    /// Stamps seen at the previous poll: a file is loaded once its stamp held still for
    /// one interval, so a half-copied file is not read.
    seen: Mutex<BTreeMap<PathBuf, Stamp>>,
}

/// A plugin file's actions, described and wrapped, ready to register.
#[derive(Debug)]
pub struct Described {
    /// One per plugin entry of the file.
    pub infos: Vec<PluginInfo>,
    /// Every action of the file.
    pub handlers: Vec<Arc<dyn Invoke>>,
    /// Every middleware of the file.
    pub middleware: Vec<Hook>,
}

/// Loads and describes `path` (not registering anything).
///
/// # Errors
///
/// Why the file is refused.
pub fn describe_file(path: &Path) -> Result<Described, Refusal> {
    let bytes = std::fs::read(path).map_err(Refusal::Read)?;
    let opened = library::open(path, &bytes)?;
    let mut infos = Vec::new();
    let mut handlers: Vec<Arc<dyn Invoke>> = Vec::new();
    let mut middleware: Vec<Hook> = Vec::new();
    for plugin in opened.plugins {
        let gate = CallGate::new();
        let failed = |reason| Refusal::Plugin {
            plugin: plugin.name(),
            reason,
            api_version: plugin.api_version(),
        };
        let definitions = plugin.describe().map_err(failed)?;
        let list = plugin.describe_middleware().map_err(failed)?;
        for (kind, defs) in [
            (plugin_api::middleware::MiddlewareKind::Action, list.action),
            (
                plugin_api::middleware::MiddlewareKind::Connection,
                list.connection,
            ),
            (plugin_api::middleware::MiddlewareKind::Chat, list.chat),
        ] {
            middleware.extend(
                defs.into_iter()
                    .map(|d| DynamicMiddleware::hook(plugin, Arc::clone(&gate), kind, d)),
            );
        }
        infos.push(info(&plugin, &definitions));
        handlers.extend(
            definitions
                .into_iter()
                .map(|d| DynamicAction::new(plugin, Arc::clone(&gate), d) as Arc<dyn Invoke>),
        );
    }
    Ok(Described {
        infos,
        handlers,
        middleware,
    })
}

/// Loads `path` and registers its actions in `registry` under the file's origin,
/// replacing what the file registered before: what the running host does with each file,
/// and what `hero plugins` repeats (over the static actions) to report clashes alike.
///
/// # Errors
///
/// Why the file is refused: it cannot be loaded, or an action of it clashes with one
/// registered already (nothing changes then).
pub fn register_file(registry: &Registry, path: &Path) -> Result<Vec<PluginInfo>, Refusal> {
    let described = describe_file(path)?;
    registry
        .replace(&Origin::Dynamic(path.to_path_buf()), described.handlers)
        .map_err(Refusal::Clash)?;
    Ok(described.infos)
}

/// [`register_file`], with the file's middleware registered in `middleware` too: both
/// change, or (on a clash of either) neither.
///
/// # Errors
///
/// As [`register_file`], or a middleware of the file clashes with one registered.
pub fn register_file_with(
    registry: &Registry,
    middleware: &MiddlewareRegistry,
    path: &Path,
) -> Result<Vec<PluginInfo>, Refusal> {
    let described = describe_file(path)?;
    let origin = Origin::Dynamic(path.to_path_buf());
    let checked = middleware.check(&origin, &described.middleware);
    // Action clashes are reported first (as before middleware existed); a middleware
    // clash then puts the file's previous actions back.
    let previous: Vec<Arc<dyn Invoke>> = registry
        .list()
        .into_iter()
        .filter(|r| r.origin == origin)
        .map(|r| r.handler)
        .collect();
    registry
        .replace(&origin, described.handlers)
        .map_err(Refusal::Clash)?;
    if let Err(clash) = checked {
        // The previous set was registered under this origin: it cannot clash now.
        let _ = registry.replace(&origin, previous);
        return Err(Refusal::MiddlewareClash(clash));
    }
    // Checked above, under the lock of `Plugins::sync` (the only writer of dynamic
    // origins); static middleware never changes.
    middleware
        .replace(&origin, described.middleware)
        .map_err(Refusal::MiddlewareClash)?;
    Ok(described.infos)
}

fn info(plugin: &Plugin, definitions: &[plugin_api::ActionDefinition]) -> PluginInfo {
    PluginInfo {
        name: plugin.name(),
        version: plugin.version(),
        abi: plugin.abi_version(),
        api_version: plugin.api_version(),
        rustc: plugin.rustc_version(),
        actions: definitions
            .iter()
            .map(|d| format!("{}@{}", d.name, d.version))
            .collect(),
    }
}

/// The `*.so` files of `dir`, sorted (none if the directory is missing).
pub fn library_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "so") && p.is_file())
        .collect();
    files.sort();
    files
}

impl Plugins {
    /// Dynamic plugins from `dir` (nothing is loaded until [`Plugins::sync`]).
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            files: Mutex::default(),
            seen: Mutex::default(),
        }
    }

    /// The plugin directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How many files are loaded and how many refused (a refused replacement of a loaded
    /// file counts in both).
    pub fn counts(&self) -> (usize, usize) {
        let files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        let loaded = files.values().filter(|s| s.loaded.is_some()).count();
        let refused = files.values().filter(|s| s.refused.is_some()).count();
        (loaded, refused)
    }

    /// Loaded and refused files, for `status`.
    pub fn status(&self) -> Value {
        let files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        let mut loaded = Vec::new();
        let mut refused = Vec::new();
        for (path, state) in files.iter() {
            let file = path.display().to_string();
            for p in state.loaded.iter().flatten() {
                loaded.push(serde_json::json!({
                    "file": file, "name": p.name, "version": p.version,
                    "abi": p.abi, "actions": p.actions,
                }));
            }
            if let Some(reason) = &state.refused {
                refused.push(serde_json::json!({ "file": file, "reason": reason }));
            }
        }
        serde_json::json!({
            "dir": self.dir.display().to_string(), "loaded": loaded, "refused": refused,
            "stuckCalls": stuck_calls(),
        })
    }

    /// Brings the registry in line with the directory: loads new and changed files,
    /// removes the actions of deleted ones. `settle`: only load files whose stamp held
    /// still since the previous call (polling); otherwise load every change now.
    /// `force` reloads unchanged files too (SIGHUP).
    pub fn sync(
        &self,
        registry: &Registry,
        middleware: &MiddlewareRegistry,
        settle: bool,
        force: bool,
    ) {
        let present: BTreeMap<PathBuf, Stamp> = library_files(&self.dir)
            .into_iter()
            .filter_map(|p| stamp(&p).map(|s| (p, s)))
            .collect();
        let previous = {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            std::mem::replace(&mut *seen, present.clone())
        };
        let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner);

        let gone: Vec<PathBuf> = files
            .keys()
            .filter(|p| !present.contains_key(*p))
            .cloned()
            .collect();
        for path in gone {
            let state = files.remove(&path);
            if state.is_some_and(|s| s.loaded.is_some()) {
                registry.remove(&Origin::Dynamic(path.clone()));
                middleware.remove(&Origin::Dynamic(path.clone()));
                crate::metrics::plugin_event("removed");
                tracing::info!(file = %path.display(), "plugin file removed; its actions are gone");
            }
        }

        for (path, now) in present {
            let changed = files.get(&path).is_none_or(|s| s.stamp != now);
            if !(changed || force) {
                continue;
            }
            if settle && previous.get(&path) != Some(&now) {
                continue; // still being written, or just appeared: look again next time
            }
            let before = files.remove(&path).and_then(|s| s.loaded);
            let state = match self.load(registry, middleware, &path, before.as_deref()) {
                Ok(infos) => FileState {
                    stamp: now,
                    loaded: Some(infos),
                    refused: None,
                },
                Err(reason) => FileState {
                    stamp: now,
                    loaded: before,
                    refused: Some(reason),
                },
            };
            files.insert(path, state);
        }
    }

    /// Loads `path` and swaps its actions in; `Err` is the refusal reason (logged).
    fn load(
        &self,
        registry: &Registry,
        middleware: &MiddlewareRegistry,
        path: &Path,
        before: Option<&[PluginInfo]>,
    ) -> Result<Vec<PluginInfo>, String> {
        let replacing = before.is_some();
        let keep = if replacing {
            "; the version loaded before keeps serving"
        } else {
            ""
        };
        let infos = match register_file_with(registry, middleware, path) {
            Ok(infos) => infos,
            Err(reason) => {
                crate::metrics::plugin_event("refused");
                tracing::warn!(file = %path.display(), "refused plugin {}: {reason}{keep}", path.display());
                return Err(reason.to_string());
            }
        };
        crate::metrics::plugin_event(if replacing { "reloaded" } else { "loaded" });
        for p in &infos {
            tracing::info!(
                file = %path.display(),
                "{} plugin {} {} from {} (ABI {}, plugin-api {}, {}): {}",
                if replacing { "reloaded" } else { "loaded" },
                p.name, p.version, path.display(), p.abi, p.api_version, p.rustc,
                p.actions.join(", "),
            );
        }
        if let Some(before) = before {
            let actions = |infos: &[PluginInfo]| -> std::collections::BTreeSet<String> {
                infos
                    .iter()
                    .flat_map(|p| p.actions.iter().cloned())
                    .collect()
            };
            let (old, new) = (actions(before), actions(&infos));
            let added: Vec<&String> = new.difference(&old).collect();
            let removed: Vec<&String> = old.difference(&new).collect();
            if !added.is_empty() || !removed.is_empty() {
                tracing::info!(file = %path.display(), ?added, ?removed, "plugin actions changed");
            }
        }
        Ok(infos)
    }
}

/// What is wrong with `dir` as the plugin directory, if anything: it is missing or not
/// a directory. The text names the path (and where it resolves, if relative) and how to
/// set another.
pub fn dir_problem(dir: &Path) -> Option<String> {
    let what = if dir.is_dir() {
        return None;
    } else if dir.exists() {
        "is not a directory"
    } else {
        "does not exist"
    };
    let shown = match std::path::absolute(dir) {
        Ok(abs) if abs != dir => format!("{} ({})", dir.display(), abs.display()),
        _ => dir.display().to_string(),
    };
    Some(format!(
        "plugin directory {shown} {what}: no dynamic plugins are loaded from it; create it, \
         or set the directory with --plugins DIR, HERO_PLUGINS=DIR or `plugins = \"DIR\"` in \
         the config file"
    ))
}

/// Loads the plugin directory now, then watches it (polling and `SIGHUP`) for as long
/// as the app lives. Call from inside the runtime.
pub fn start(app: &Arc<App>) {
    let plugins = &app.plugins;
    tracing::info!(dir = %plugins.dir().display(), "loading dynamic plugins");
    if let Some(problem) = dir_problem(plugins.dir()) {
        tracing::warn!(dir = %plugins.dir().display(), "{problem}");
    }
    plugins.sync(app.registry(), app.middleware(), false, false);
    let weak = Arc::downgrade(app);
    let stop = app.bayeux.shutdown_token().clone();
    app.bayeux.spawn(watch(
        weak,
        Duration::from_millis(app.config.plugin_reload_ms),
        stop,
    ));
}

async fn watch(app: Weak<App>, every: Duration, stop: tokio_util::sync::CancellationToken) {
    let mut hangup = hangup_signal();
    let mut ticks = (!every.is_zero()).then(|| {
        let mut t = tokio::time::interval(every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    loop {
        let forced = tokio::select! {
            () = stop.cancelled() => return,
            () = tick(&mut ticks) => false,
            () = next_hangup(&mut hangup) => true,
        };
        let Some(app) = app.upgrade() else { return };
        if forced {
            tracing::info!("SIGHUP: reloading dynamic plugins");
        }
        let _ = tokio::task::spawn_blocking(move || {
            app.plugins
                .sync(app.registry(), app.middleware(), !forced, forced);
        })
        .await;
    }
}

async fn tick(ticks: &mut Option<tokio::time::Interval>) {
    match ticks {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

fn hangup_signal() -> Hangup {
    #[cfg(unix)]
    {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
    }
    #[cfg(not(unix))]
    None
}

async fn next_hangup(hangup: &mut Hangup) {
    #[cfg(unix)]
    if let Some(s) = hangup
        && s.recv().await.is_some()
    {
        return;
    }
    let _ = hangup;
    std::future::pending().await
}
