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
//!
//! Reloads converge on what the directory holds. A file is looked at again when its
//! stamp (inode, size, mtime, ctime) moves, so an in-place rewrite of the same size
//! under a restored mtime is seen (ctime cannot be set back); it is loaded again only
//! if its content hash differs from the version loaded (nor is an unchanged file on
//! SIGHUP), since every load maps a library for good: their number is capped by
//! `max_plugin_generations` and reported by `status`. A file refused for a clash keeps
//! its described library and is registered, without loading it again, in the pass
//! the clash goes away: passes retry such files until none gets in, so an action moved
//! from one file to another in one step ends up registered whatever the files' order.
//!
//! Loading runs plugin code (library initialisers, `init`, `describe`). It runs under
//! the loader's own lock, which only passes take; `status` and the metrics read a
//! snapshot published after each change and never wait for a load. A pass's log lines
//! about a file are written once the snapshot shows what they say.
pub mod commands;
mod dynamic;
pub mod library;
pub mod scaffold;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use plugin_api::ffi::Plugin;
use serde::Serialize;
use serde_json::Value;
use sha2::Digest as _;

use crate::actions::{Hook, Invoke, MiddlewareRegistry, Origin, Registry};
use crate::app::App;
pub use dynamic::{
    CallGate, CallLimits, DynamicAction, DynamicMiddleware, set_call_limits, stuck_calls,
};
pub use library::Refusal;

/// What identifies a version of a file without reading it. `ctime` is in it because
/// nobody can set it back: a rewrite of the same size that restores the mtime moves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    meta.is_file().then(|| Stamp {
        dev: meta.dev(),
        ino: meta.ino(),
        len: meta.size(),
        mtime: (meta.mtime(), meta.mtime_nsec()),
        ctime: (meta.ctime(), meta.ctime_nsec()),
    })
}

/// A file's content hash (SHA-256).
type Digest = [u8; 32];

fn digest(bytes: &[u8]) -> Digest {
    sha2::Sha256::digest(bytes).into()
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

/// The version of a file whose actions are registered.
#[derive(Debug)]
struct Loaded {
    hash: Digest,
    /// Which of the file's libraries it is (1: the first loaded).
    generation: u32,
    infos: Vec<PluginInfo>,
}

/// Why the current content of a file is not the version registered.
#[derive(Debug)]
struct Refused {
    /// The content's hash, if it was read: that content is not loaded again (but on
    /// SIGHUP, if the refusal was `transient`).
    hash: Option<Digest>,
    reason: String,
    /// See [`Refusal::is_transient`].
    transient: bool,
    /// Loaded and described, but clashing: registered once the clash is gone.
    waiting: Option<Waiting>,
}

/// A described library waiting for a clash to go away.
#[derive(Debug)]
struct Waiting {
    hash: Digest,
    described: Described,
    generation: u32,
}

/// What became of one file. A refused replacement leaves the version loaded before
/// serving: then both are set.
#[derive(Debug)]
struct FileState {
    stamp: Stamp,
    /// Libraries loaded from this file so far.
    generations: u32,
    loaded: Option<Loaded>,
    refused: Option<Refused>,
}

/// The loader's state, owned by the pass that holds its lock.
#[derive(Debug, Default)]
struct Loader {
    files: BTreeMap<PathBuf, FileState>,
    /// Stamps seen at the previous poll: a file is loaded once its stamp held still for
    /// one interval, so a half-copied file is not read.
    seen: BTreeMap<PathBuf, Stamp>,
}

/// What readers see of the loader: rebuilt after each change.
#[derive(Debug)]
struct View {
    loaded: Vec<Value>,
    refused: Vec<Value>,
    loaded_files: usize,
}

/// One pass: whether it is forced, and what it did, for its summary line.
#[derive(Debug, Default)]
struct Pass {
    /// SIGHUP: unchanged files are looked at too.
    force: bool,
    loaded: usize,
    reloaded: usize,
    unchanged: usize,
    /// Refusals logged (a file may get in later in the same pass).
    refused: usize,
    removed: usize,
    /// Log lines not written yet: each is written once `status` shows what it says,
    /// so whoever reads the line and then asks `status` sees the same.
    lines: Vec<Line>,
}

/// One log line of a pass, about one file.
#[derive(Debug)]
struct Line {
    warn: bool,
    file: PathBuf,
    text: String,
}

impl Pass {
    fn info(&mut self, file: &Path, text: String) {
        self.lines.push(Line {
            warn: false,
            file: file.to_path_buf(),
            text,
        });
    }

    fn warn(&mut self, file: &Path, text: String) {
        self.lines.push(Line {
            warn: true,
            file: file.to_path_buf(),
            text,
        });
    }

    /// Writes the lines held (call after publishing).
    fn flush(&mut self) {
        for Line { warn, file, text } in self.lines.drain(..) {
            if warn {
                tracing::warn!(file = %file.display(), "{text}");
            } else {
                tracing::info!(file = %file.display(), "{text}");
            }
        }
    }
}

/// The dynamic plugins of a running host.
#[derive(Debug)]
pub struct Plugins {
    dir: PathBuf,
    /// Libraries loaded at most over the host's life (0: no cap).
    max_generations: usize,
    /// Held for a whole pass, plugin code included; nothing else takes it.
    loader: Mutex<Loader>,
    /// Held only to swap or clone the snapshot.
    view: Mutex<Arc<View>>,
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
    let bytes = library::read_checked(path)?;
    describe_bytes(path, &bytes)
}

/// Loads `bytes`, the content of `path`, and describes it.
fn describe_bytes(path: &Path, bytes: &[u8]) -> Result<Described, Refusal> {
    let opened = library::open(path, bytes)?;
    let mut infos = Vec::new();
    let mut handlers: Vec<Arc<dyn Invoke>> = Vec::new();
    let mut middleware: Vec<Hook> = Vec::new();
    for plugin in opened.plugins {
        let failed = |reason| Refusal::Plugin {
            plugin: plugin.name(),
            reason,
            api_version: plugin.api_version(),
        };
        let definitions = plugin.describe().map_err(failed)?;
        let list = plugin.describe_middleware().map_err(failed)?;
        let gate = CallGate::new(&plugin, list.chain);
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
/// replacing what the file registered before: what `hero plugins` does with each file
/// (over the static actions) to report clashes as a host would.
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

/// Registers the actions and middleware of `described` as those of `path`, replacing
/// what the file registered before: both change, or (on a clash of either) neither.
/// Runs no plugin code, so a clash can be retried at any time.
fn register_described(
    registry: &Registry,
    middleware: &MiddlewareRegistry,
    path: &Path,
    described: &Described,
) -> Result<(), Refusal> {
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
        .replace(&origin, described.handlers.clone())
        .map_err(Refusal::Clash)?;
    if let Err(clash) = checked {
        // The previous set was registered under this origin: it cannot clash now.
        let _ = registry.replace(&origin, previous);
        return Err(Refusal::MiddlewareClash(clash));
    }
    // Checked above, under the loader's lock (passes are the only writers of dynamic
    // origins); static middleware never changes.
    middleware
        .replace(&origin, described.middleware.clone())
        .map_err(Refusal::MiddlewareClash)
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

impl View {
    fn of(files: &BTreeMap<PathBuf, FileState>) -> Self {
        let mut loaded = Vec::new();
        let mut refused = Vec::new();
        for (path, state) in files {
            let file = path.display().to_string();
            if let Some(l) = &state.loaded {
                for p in &l.infos {
                    loaded.push(serde_json::json!({
                        "file": file, "name": p.name, "version": p.version,
                        "abi": p.abi, "actions": p.actions, "generation": l.generation,
                    }));
                }
            }
            if let Some(r) = &state.refused {
                refused.push(serde_json::json!({ "file": file, "reason": r.reason }));
            }
        }
        Self {
            loaded,
            refused,
            loaded_files: files.values().filter(|s| s.loaded.is_some()).count(),
        }
    }
}

impl Plugins {
    /// Dynamic plugins from `dir`, loading at most `max_generations` libraries over the
    /// host's life (0: no cap); nothing is loaded until [`Plugins::sync`].
    pub fn new(dir: PathBuf, max_generations: usize) -> Self {
        Self {
            dir,
            max_generations,
            loader: Mutex::default(),
            view: Mutex::new(Arc::new(View::of(&BTreeMap::new()))),
        }
    }

    /// The plugin directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn view(&self) -> Arc<View> {
        Arc::clone(&crate::sync::lock(&self.view))
    }

    fn publish(&self, files: &BTreeMap<PathBuf, FileState>) {
        let view = Arc::new(View::of(files));
        *crate::sync::lock(&self.view) = view;
    }

    /// How many files are loaded and how many refused (a refused replacement of a loaded
    /// file counts in both).
    pub fn counts(&self) -> (usize, usize) {
        let view = self.view();
        (view.loaded_files, view.refused.len())
    }

    /// Loaded and refused files, and the libraries loaded against their cap, for
    /// `status`.
    pub fn status(&self) -> Value {
        let view = self.view();
        serde_json::json!({
            "dir": self.dir.display().to_string(),
            "loaded": view.loaded,
            "refused": view.refused,
            "generations": {
                "live": library::libraries_loaded(),
                "max": self.max_generations,
            },
            "stuckCalls": stuck_calls(),
        })
    }

    /// Brings the registry in line with the directory: loads new and changed files,
    /// removes the actions of deleted ones, registers files whose clash went away.
    /// `settle`: only look at files whose stamp held still since the previous call
    /// (polling); otherwise at every change now. `force` looks at unchanged files too
    /// (SIGHUP); a file whose content is the version loaded is not loaded again.
    pub fn sync(
        &self,
        registry: &Registry,
        middleware: &MiddlewareRegistry,
        settle: bool,
        force: bool,
    ) {
        let mut loader = crate::sync::lock(&self.loader);
        let loader = &mut *loader;
        let present: BTreeMap<PathBuf, Stamp> = library_files(&self.dir)
            .into_iter()
            .filter_map(|p| stamp(&p).map(|s| (p, s)))
            .collect();
        let previous = std::mem::replace(&mut loader.seen, present.clone());
        let mut pass = Pass {
            force,
            ..Pass::default()
        };

        // Removals first: what a removed file registered is free for the files below.
        let gone: Vec<PathBuf> = loader
            .files
            .keys()
            .filter(|p| !present.contains_key(*p))
            .cloned()
            .collect();
        for path in gone {
            let state = loader.files.remove(&path);
            if state.is_some_and(|s| s.loaded.is_some()) {
                registry.remove(&Origin::Dynamic(path.clone()));
                middleware.remove(&Origin::Dynamic(path.clone()));
                crate::metrics::plugin_event("removed");
                pass.removed += 1;
                pass.info(&path, "plugin file removed; its actions are gone".into());
            }
        }
        if pass.removed > 0 {
            self.publish(&loader.files);
            pass.flush();
        }

        for (path, now) in present {
            let changed = loader.files.get(&path).is_none_or(|s| s.stamp != now);
            if !(changed || force) {
                continue;
            }
            if settle && previous.get(&path) != Some(&now) {
                continue; // still being written, or just appeared: look again next time
            }
            let state = loader.files.remove(&path).unwrap_or(FileState {
                stamp: now,
                generations: 0,
                loaded: None,
                refused: None,
            });
            let state = self.examine(registry, middleware, &path, now, state, &mut pass);
            loader.files.insert(path, state);
            self.publish(&loader.files);
            pass.flush();
        }

        if self.retry_waiting(registry, middleware, &mut loader.files, &mut pass) {
            self.publish(&loader.files);
            pass.flush();
        }
        let Pass {
            force,
            loaded,
            reloaded,
            unchanged,
            refused,
            removed,
            lines: _,
        } = pass;
        if force || loaded + reloaded + refused + removed > 0 {
            let refused_now = loader
                .files
                .values()
                .filter(|s| s.refused.is_some())
                .count();
            tracing::info!(
                "plugin directory synced: {loaded} loaded, {reloaded} reloaded, {unchanged} \
                 unchanged, {removed} removed; {refused_now} refused now; {} plugin \
                 libraries live (max_plugin_generations {})",
                library::libraries_loaded(),
                self.max_generations,
            );
        }
    }

    /// Looks at one new or changed file: reads it, and loads and registers it unless
    /// its content is the version loaded or one refused already.
    fn examine(
        &self,
        registry: &Registry,
        middleware: &MiddlewareRegistry,
        path: &Path,
        now: Stamp,
        mut state: FileState,
        pass: &mut Pass,
    ) -> FileState {
        state.stamp = now;
        let bytes = match library::read_checked(path) {
            Ok(bytes) => bytes,
            Err(refusal) => {
                Self::refuse(&mut state, path, None, &refusal, None, pass);
                return state;
            }
        };
        let hash = digest(&bytes);
        if state.loaded.as_ref().is_some_and(|l| l.hash == hash) {
            // The version registered (SIGHUP, a touch, the same build copied again); a
            // refusal of other content in between is over.
            state.refused = None;
            pass.unchanged += 1;
            tracing::debug!(file = %path.display(), "plugin file unchanged; not loaded again");
            return state;
        }
        if state
            .refused
            .as_ref()
            .is_some_and(|r| r.hash == Some(hash) && !(pass.force && r.transient))
        {
            // Refused as it is already: loading it again would be refused again, but for
            // a clash, which the retry below looks at every pass, or a cause outside the
            // file (SIGHUP tries those again).
            pass.unchanged += 1;
            return state;
        }
        if self.max_generations != 0 && library::libraries_loaded() >= self.max_generations {
            let refusal = Refusal::Generations {
                max: self.max_generations,
            };
            Self::refuse(&mut state, path, Some(hash), &refusal, None, pass);
            return state;
        }
        let described = match describe_bytes(path, &bytes) {
            Ok(described) => described,
            Err(refusal) => {
                Self::refuse(&mut state, path, Some(hash), &refusal, None, pass);
                return state;
            }
        };
        state.generations += 1;
        let generation = state.generations;
        match register_described(registry, middleware, path, &described) {
            Ok(()) => Self::registered(&mut state, path, hash, generation, described, pass),
            Err(refusal) => {
                let waiting = Waiting {
                    hash,
                    described,
                    generation,
                };
                Self::refuse(&mut state, path, Some(hash), &refusal, Some(waiting), pass);
            }
        }
        state
    }

    /// Registers the files waiting for a clash to go away, round after round while any
    /// gets in: one that gets in replaces its previous version, which may release a name
    /// another file waits for (an action moved from it). True if any did.
    fn retry_waiting(
        &self,
        registry: &Registry,
        middleware: &MiddlewareRegistry,
        files: &mut BTreeMap<PathBuf, FileState>,
        pass: &mut Pass,
    ) -> bool {
        let mut any = false;
        loop {
            let mut progress = false;
            for (path, state) in files.iter_mut() {
                let in_now = match &state.refused {
                    Some(Refused {
                        waiting: Some(w), ..
                    }) => register_described(registry, middleware, path, &w.described).is_ok(),
                    _ => false,
                };
                if !in_now {
                    continue;
                }
                if let Some(Refused {
                    waiting: Some(w), ..
                }) = state.refused.take()
                {
                    pass.info(
                        path,
                        format!("the clash of plugin file {} is gone", path.display()),
                    );
                    Self::registered(state, path, w.hash, w.generation, w.described, pass);
                }
                progress = true;
            }
            if !progress {
                return any;
            }
            any = true;
        }
    }

    /// Records a version of `path` as registered, and says so.
    fn registered(
        state: &mut FileState,
        path: &Path,
        hash: Digest,
        generation: u32,
        described: Described,
        pass: &mut Pass,
    ) {
        let before = state.loaded.take();
        let replacing = before.is_some();
        crate::metrics::plugin_event(if replacing { "reloaded" } else { "loaded" });
        if replacing {
            pass.reloaded += 1;
        } else {
            pass.loaded += 1;
        }
        let infos = described.infos;
        for p in &infos {
            pass.info(
                path,
                format!(
                    "{} plugin {} {} from {} (ABI {}, plugin-api {}, {}, generation \
                     {generation}): {}",
                    if replacing { "reloaded" } else { "loaded" },
                    p.name,
                    p.version,
                    path.display(),
                    p.abi,
                    p.api_version,
                    p.rustc,
                    p.actions.join(", "),
                ),
            );
        }
        if let Some(before) = before {
            let actions = |infos: &[PluginInfo]| -> std::collections::BTreeSet<String> {
                infos
                    .iter()
                    .flat_map(|p| p.actions.iter().cloned())
                    .collect()
            };
            let (old, new) = (actions(&before.infos), actions(&infos));
            let added: Vec<&String> = new.difference(&old).collect();
            let removed: Vec<&String> = old.difference(&new).collect();
            if !added.is_empty() || !removed.is_empty() {
                pass.info(
                    path,
                    format!("plugin actions changed: added {added:?}, removed {removed:?}"),
                );
            }
        }
        state.refused = None;
        state.loaded = Some(Loaded {
            hash,
            generation,
            infos,
        });
    }

    /// Records and logs why the current content of `path` is refused.
    fn refuse(
        state: &mut FileState,
        path: &Path,
        hash: Option<Digest>,
        refusal: &Refusal,
        waiting: Option<Waiting>,
        pass: &mut Pass,
    ) {
        let keep = if state.loaded.is_some() {
            "; the version loaded before keeps serving"
        } else {
            ""
        };
        let retry = if waiting.is_some() {
            "; it is loaded once the clash is gone"
        } else {
            ""
        };
        crate::metrics::plugin_event("refused");
        pass.refused += 1;
        pass.warn(
            path,
            format!("refused plugin {}: {refusal}{keep}{retry}", path.display()),
        );
        state.refused = Some(Refused {
            hash,
            reason: refusal.to_string(),
            transient: refusal.is_transient(),
            waiting,
        });
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
