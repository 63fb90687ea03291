//! Opening one plugin file: read it safely, find its entry symbols, load a private copy,
//! check headers.
//!
//! The file is read through one descriptor whose owner and mode are checked first: a
//! file another user could change would let that user run code in the host. The bytes
//! read are what is loaded, from a private copy (the dynamic loader caches libraries by
//! path, so a reloaded file must be opened under a name never used before): an
//! anonymous, sealed in-memory file (`memfd_create`, opened as `/proc/self/fd/N`), so no
//! path exists that another local user could pre-create, redirect with a symlink or fill;
//! where that is unavailable (no `/proc`, a kernel without memfds, `vm.memfd_noexec=2`),
//! a fresh `0700` directory made exclusively under the temporary directory, removed as
//! soon as the copy is mapped.
//!
//! The only `unsafe` of the host: `dlopen` runs the library's initialisers, and the
//! entry symbol is trusted to have the type the ABI names.

#![allow(unsafe_code)]

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

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
    /// Not a regular file (a directory or a device named `*.so`).
    #[error("not a regular file")]
    NotFile,
    /// Owned by a user other than the host's (and not by root).
    #[error(
        "the file is owned by uid {owner}, not by the host's user (uid {user}) or root: its \
         owner could change the code the host runs; chown it to uid {user}"
    )]
    NotOwned {
        /// The file's owner.
        owner: u32,
        /// The host's effective user.
        user: u32,
    },
    /// Writable by its group or by other users.
    #[error(
        "the file is writable by {} (mode {mode:04o}): they could change the code the host \
         runs; chmod go-w it",
        writers(*.mode)
    )]
    Writable {
        /// The file's permission bits.
        mode: u32,
    },
    /// Not a shared library this host can parse.
    #[error("not a shared library: {0}")]
    NotLibrary(String),
    /// No `hero_plugin_*` symbol.
    #[error(
        "missing entry symbol {ENTRY_PREFIX}<crate_name> (was it built with plugin_api::export_plugin!?)"
    )]
    MissingSymbol,
    /// The private copy could not be made.
    #[error("cannot make a private copy of the library: {0}")]
    Copy(#[source] std::io::Error),
    /// The host has loaded as many libraries as `max_plugin_generations` allows.
    #[error(
        "{max} plugin libraries are loaded already (max_plugin_generations), and a loaded \
         library is never unloaded: restart the host to load this one, or raise \
         max_plugin_generations"
    )]
    Generations {
        /// The cap.
        max: usize,
    },
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

impl Refusal {
    /// Whether the cause may lie outside the file's content (reading it, copying it, a
    /// library it needs): worth trying the same content again on SIGHUP. Nothing stays
    /// loaded after such a refusal, so a retry costs no generation.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Read(_) | Self::Copy(_) | Self::Load(_))
    }
}

/// Who besides the owner may write a file of `mode`.
fn writers(mode: u32) -> &'static str {
    match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (true, true) => "its group and other users",
        (true, false) => "its group",
        _ => "other users",
    }
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

/// Libraries this process has loaded (each stays loaded: see [`open`]).
static LIBRARIES: AtomicUsize = AtomicUsize::new(0);

/// How many plugin libraries this process has loaded so far; none is ever unloaded, so
/// every one is live.
pub fn libraries_loaded() -> usize {
    LIBRARIES.load(Ordering::Relaxed)
}

/// Reads the plugin file at `path`, refusing one that someone other than the host's
/// user (or root) could have changed. Owner and mode are those of the descriptor the
/// bytes are read from, so a file swapped in between is not read unchecked.
///
/// # Errors
///
/// The file cannot be read, is not a regular file, or is not safely owned.
pub fn read_checked(path: &Path) -> Result<Vec<u8>, Refusal> {
    // Non-blocking: a FIFO swapped in for the file must not hang the loader on open.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits().cast_signed())
        .open(path)
        .map_err(Refusal::Read)?;
    let meta = file.metadata().map_err(Refusal::Read)?;
    if !meta.is_file() {
        return Err(Refusal::NotFile);
    }
    let user = rustix::process::geteuid().as_raw();
    // Root may own plugin files too (installed by a package): root can change the host
    // process anyway, so trusting its files adds no one.
    if meta.uid() != user && meta.uid() != 0 {
        return Err(Refusal::NotOwned {
            owner: meta.uid(),
            user,
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(Refusal::Writable { mode });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.read_to_end(&mut bytes).map_err(Refusal::Read)?;
    Ok(bytes)
}

/// Where a library's private copy lives while it is loaded.
#[derive(Debug)]
enum Copy {
    /// An anonymous file, named `/proc/self/fd/N` to the loader.
    Memory(File),
    /// A file in a private directory (removed with it when dropped).
    Directory(tempfile::TempDir),
}

/// The name the private copy gets, for `/proc/self/maps` and debuggers.
fn copy_name(original: &Path) -> String {
    let stem = original
        .file_stem()
        .map_or_else(|| "plugin".into(), |s| s.to_string_lossy().into_owned());
    format!("hero-plugin-{stem}")
}

/// `bytes` in a sealed anonymous file: nothing on any file system, nothing another user
/// can reach, and (sealed) not even the host can change the code under the mapping.
fn in_memory(name: &str, bytes: &[u8]) -> std::io::Result<(PathBuf, Copy)> {
    use rustix::fs::{MemfdFlags, SealFlags, fcntl_add_seals, memfd_create};
    if !Path::new("/proc/self/fd").is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "/proc is not mounted",
        ));
    }
    let flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
    // MFD_EXEC keeps the file executable where `vm.memfd_noexec=1` would make it noexec;
    // kernels before 6.3 do not know the flag and answer EINVAL.
    let fd = match memfd_create(name, flags | MemfdFlags::EXEC) {
        Err(rustix::io::Errno::INVAL) => memfd_create(name, flags)?,
        other => other?,
    };
    let mut file = File::from(fd);
    file.write_all(bytes)?;
    fcntl_add_seals(
        &file,
        SealFlags::WRITE | SealFlags::GROW | SealFlags::SHRINK | SealFlags::SEAL,
    )?;
    let path = PathBuf::from(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&file)
    ));
    Ok((path, Copy::Memory(file)))
}

/// `bytes` in a new directory only this user can enter, made exclusively (a name
/// nobody could have pre-created or linked), under a file name made unique by a
/// counter (the random directory name alone could come back after its removal).
fn in_private_dir(name: &str, bytes: &[u8]) -> std::io::Result<(PathBuf, Copy)> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = tempfile::Builder::new()
        .prefix("hero-plugins-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()?;
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = dir.path().join(format!("{name}-{n}.so"));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o700)
        .open(&path)?
        .write_all(bytes)?;
    Ok((path, Copy::Directory(dir)))
}

/// The private copy of `bytes`: in memory where possible, else in a private directory.
fn private_copy(original: &Path, bytes: &[u8]) -> Result<(PathBuf, Copy), Refusal> {
    let name = copy_name(original);
    in_memory(&name, bytes).or_else(|err| {
        static WARNED: Once = Once::new();
        WARNED.call_once(|| {
            tracing::warn!(
                "cannot load plugin libraries from memory ({err}); loading them from \
                 private directories under {} instead",
                std::env::temp_dir().display()
            );
        });
        in_private_dir(&name, bytes).map_err(Refusal::Copy)
    })
}

/// Loads `bytes` (the content of `original`) under a private copy and initialises
/// each entry. The library is never unloaded.
///
/// # Errors
///
/// Why the file is refused; nothing stays registered then (the mapping does).
pub fn open(original: &Path, bytes: &[u8]) -> Result<Opened, Refusal> {
    let symbols = entry_symbols(bytes)?;
    let (path, copy) = private_copy(original, bytes)?;
    // SAFETY: loading runs the library's initialisers; a plugin library is trusted code
    // (the operator put it in the plugin directory) that passed the symbol check.
    let loaded = unsafe { libloading::Library::new(&path) };
    let loaded = loaded.map_err(|e| Refusal::Load(e.to_string()))?;
    LIBRARIES.fetch_add(1, Ordering::Relaxed);
    match copy {
        // The loader knows the library by the name `/proc/self/fd/N` and would hand the
        // old library out again for a new copy opened under a reused descriptor
        // number: the descriptor stays open as long as the library, that is forever.
        Copy::Memory(file) => std::mem::forget(file),
        // The mapping survives the unlink: the copy leaves the disk now.
        Copy::Directory(dir) => drop(dir),
    }
    // Never unloaded, even when refused below: `dlclose` is unsound with thread-locals,
    // and in-flight calls may still be running the code of a replaced version.
    let library: &'static libloading::Library = Box::leak(Box::new(loaded));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn private_directories_are_fresh_0700_and_removed_with_the_copy() {
        let (first, copy) = in_private_dir("hero-plugin-x", b"one").unwrap();
        let (second, other) = in_private_dir("hero-plugin-x", b"two").unwrap();
        let dir = first.parent().unwrap().to_path_buf();
        assert_ne!(dir, second.parent().unwrap());
        assert!(dir.starts_with(std::env::temp_dir()), "{dir:?}");
        assert_eq!(mode_of(&dir), 0o700);
        assert_eq!(mode_of(&first), 0o700);
        assert_eq!(std::fs::read(&first).unwrap(), b"one");
        assert_eq!(std::fs::read(&second).unwrap(), b"two");
        drop(copy);
        assert!(!dir.exists());
        drop(other);
        assert!(!second.exists());
    }

    #[test]
    fn in_memory_copies_are_sealed() {
        let (path, copy) = in_memory("hero-plugin-x", b"code").unwrap();
        assert!(path.starts_with("/proc/self/fd"), "{path:?}");
        assert_eq!(std::fs::read(&path).unwrap(), b"code");
        // Nobody, the host included, can change the code under a mapping of it.
        assert!(std::fs::write(&path, b"evil").is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"code");
        drop(copy);
    }

    #[test]
    fn files_writable_by_others_are_refused_naming_who_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("libx.so");
        std::fs::write(&file, b"bytes").unwrap();
        for (mode, who) in [
            (0o664, "its group"),
            (0o606, "other users"),
            (0o666, "its group and other users"),
        ] {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
            let refusal = read_checked(&file).unwrap_err().to_string();
            assert_eq!(
                refusal,
                format!(
                    "the file is writable by {who} (mode {mode:04o}): they could change the \
                     code the host runs; chmod go-w it"
                )
            );
        }
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(read_checked(&file).unwrap(), b"bytes");
        assert!(matches!(read_checked(dir.path()), Err(Refusal::NotFile)));
    }
}
