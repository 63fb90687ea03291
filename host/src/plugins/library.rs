//! Opening one plugin file: find its entry symbols, load a private copy, check headers.
//!
//! The only `unsafe` of the host: `dlopen` runs the library's initialisers, and the
//! entry symbol is trusted to have the type the ABI names.

#![allow(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use object::{Object, ObjectSymbol};
use plugin_api::ffi::{
    API_VERSION, CallError, ENTRY_PREFIX, EntryFn, HeaderError, Plugin, TARGET,
    declared_api_version,
};

/// Why a plugin file was refused. The message is what the log line says.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Read(#[source] std::io::Error),
    /// Not a shared library this host can parse.
    #[error("not a shared library: {0}")]
    NotLibrary(String),
    /// No `hero_plugin_*` symbol.
    #[error(
        "missing entry symbol {ENTRY_PREFIX}<crate_name> (was it built with plugin_api::export_plugin!?)"
    )]
    MissingSymbol,
    /// The private copy could not be written.
    #[error("cannot copy the library to {0}: {1}")]
    Copy(PathBuf, #[source] std::io::Error),
    /// `dlopen` failed.
    #[error("cannot load the library: {0}")]
    Load(String),
    /// The header is unacceptable.
    #[error("symbol {symbol}: {reason}{}", header_hint(.reason, .api_version.as_deref()))]
    Header {
        /// The entry symbol.
        symbol: String,
        /// Why.
        reason: HeaderError,
        /// The plugin-api version the header declares, if it is readable.
        api_version: Option<String>,
    },
    /// An action of the file clashes with one already registered (a static action, or
    /// one of another file).
    #[error("action clash: {0}")]
    Clash(#[source] crate::actions::Clash),
    /// A middleware of the file clashes with one already registered.
    #[error("middleware clash: {0}")]
    MiddlewareClash(#[source] crate::actions::MiddlewareClash),
    /// `init` or `describe` failed.
    #[error("plugin {plugin}: {reason}{}", plugin_hint(.api_version))]
    Plugin {
        /// The plugin's name.
        plugin: String,
        /// Why.
        reason: CallError,
        /// The plugin-api version it was built against.
        api_version: String,
    },
}

/// How to fix a plugin built against another plugin-api: what follows a refusal.
fn rebuild(theirs: Option<&str>) -> String {
    let theirs = theirs.map_or_else(
        || "an unknown plugin-api version".to_owned(),
        |v| format!("plugin-api {v}"),
    );
    format!(
        "; the plugin was built against {theirs}, this host has plugin-api {API_VERSION}: \
         rebuild it against plugin-api {API_VERSION} (`cargo build --release` in the plugin \
         crate, its plugin-api dependency at version {API_VERSION})"
    )
}

fn header_hint(reason: &HeaderError, api_version: Option<&str>) -> String {
    match reason {
        HeaderError::AbiVersion { .. } | HeaderError::TooSmall { .. } => rebuild(api_version),
        HeaderError::Target { .. } => format!(
            "; rebuild it for {TARGET} (`cargo build --release` in the plugin crate, on or \
             for that target)"
        ),
        _ => String::new(),
    }
}

/// A plugin of another plugin-api version whose `init` or `describe` fails most likely
/// fails for that reason: say so.
fn plugin_hint(api_version: &str) -> String {
    if api_version == API_VERSION {
        String::new()
    } else {
        rebuild(Some(api_version))
    }
}

/// Every plugin entry in one file, loaded and initialised.
#[derive(Debug)]
pub struct Opened {
    /// One per entry symbol (usually one).
    pub plugins: Vec<Plugin>,
}

/// The entry symbols a library exports, by name; reads the file once.
///
/// # Errors
///
/// The file is unreadable, not a library, or has no entry symbol.
pub fn entry_symbols(bytes: &[u8]) -> Result<Vec<String>, Refusal> {
    let file = object::File::parse(bytes).map_err(|e| Refusal::NotLibrary(e.to_string()))?;
    let mut names: Vec<String> = file
        .dynamic_symbols()
        .filter(|s| s.is_definition())
        .filter_map(|s| s.name().ok().map(str::to_owned))
        .filter(|n| n.starts_with(ENTRY_PREFIX))
        .collect();
    names.sort();
    names.dedup();
    if names.is_empty() {
        return Err(Refusal::MissingSymbol);
    }
    Ok(names)
}

/// A fresh path for the private copy of a library: the loader caches by path, so a
/// reloaded file must be opened under a name never used before.
fn copy_path(original: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let stem = original
        .file_stem()
        .map_or_else(|| "plugin".into(), |s| s.to_string_lossy().into_owned());
    std::env::temp_dir()
        .join(format!("hero-plugins-{}", std::process::id()))
        .join(format!("{stem}-{n}.so"))
}

/// Loads `bytes` (the content of `original`) under a private copy and initialises
/// each entry. The library is never unloaded.
///
/// # Errors
///
/// Why the file is refused; nothing stays registered then (the mapping does).
pub fn open(original: &Path, bytes: &[u8]) -> Result<Opened, Refusal> {
    let symbols = entry_symbols(bytes)?;
    let copy = copy_path(original);
    if let Some(dir) = copy.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Refusal::Copy(copy.clone(), e))?;
    }
    std::fs::write(&copy, bytes).map_err(|e| Refusal::Copy(copy.clone(), e))?;
    // SAFETY: loading runs the library's initialisers; a plugin library is trusted code
    // (the operator put it in the plugin directory) that passed the symbol check.
    let loaded = unsafe { libloading::Library::new(&copy) };
    // The mapping survives the unlink; the copy is not needed on disk any more.
    let _ = std::fs::remove_file(&copy);
    if let Some(dir) = copy.parent() {
        let _ = std::fs::remove_dir(dir); // only if empty: another load may be using it
    }
    // Never unloaded, even when refused below: `dlclose` is unsound with thread-locals,
    // and in-flight calls may still be running the code of a replaced version.
    let library: &'static libloading::Library =
        Box::leak(Box::new(loaded.map_err(|e| Refusal::Load(e.to_string()))?));
    let mut plugins = Vec::with_capacity(symbols.len());
    for symbol in symbols {
        // SAFETY: symbols with the entry prefix have the `EntryFn` type by the ABI.
        let entry = unsafe { library.get::<EntryFn>(symbol.as_bytes()) }
            .map_err(|e| Refusal::Load(e.to_string()))?;
        // SAFETY: the entry takes no arguments and returns a pointer to a static.
        let header = unsafe { entry() };
        // SAFETY: the library is leaked above and so never unloaded.
        let plugin = unsafe { Plugin::from_raw(header) }.map_err(|reason| Refusal::Header {
            symbol: symbol.clone(),
            reason,
            // SAFETY: as for `from_raw`.
            api_version: unsafe { declared_api_version(header) },
        })?;
        let failed = |reason| Refusal::Plugin {
            plugin: plugin.name(),
            reason,
            api_version: plugin.api_version(),
        };
        plugin.init().map_err(failed)?;
        plugins.push(plugin);
    }
    Ok(Opened { plugins })
}
