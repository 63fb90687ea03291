//! `hero new plugin` and `hero new action`: a plugin crate from the template
//! (`template/`), and one more action file in such a crate.
//!
//! The plugin template is the README's first action plus a harness test; `new action`
//! writes `src/<name>.rs` from `template/action.rs` and registers it by editing the
//! crate's `export_plugin!` list, refusing (with the reason) anything it cannot edit
//! safely rather than guessing.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

const TEMPLATE_LIB: &str = include_str!("template/lib.rs");
const TEMPLATE_MIDDLEWARE: &str = include_str!("template/middleware.rs");
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

/// Creates the plugin crate `parent/name` from the template.
///
/// # Errors
///
/// A bad or taken name, an existing directory, no `plugin-api` to depend on, or a
/// write that fails.
pub fn new_plugin(name: &str, parent: &Path, plugin_api: Option<&Path>) -> anyhow::Result<()> {
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
    std::fs::write(
        root.join("src/middleware.rs"),
        fill(TEMPLATE_MIDDLEWARE, &api_path),
    )?;
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

const TEMPLATE_ACTION: &str = include_str!("template/action.rs");

/// The names `hero new action NAME` derives: the action (`showUser`), its type
/// (`ShowUser`) and module (`show_user`).
#[derive(Debug, PartialEq, Eq)]
struct ActionNames {
    action: String,
    type_name: String,
    module: String,
}

impl ActionNames {
    /// Names for an action called `name` (letters and digits, starting with a letter;
    /// `-` and `_` split words: `show-user`, `show_user` and `showUser` are the same).
    fn new(name: &str) -> anyhow::Result<Self> {
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            anyhow::bail!(
                "action name {name:?}: use letters, digits, '-' and '_', starting with a letter"
            );
        }
        // Words: split at '-', '_' and before an upper-case letter.
        let mut words: Vec<String> = Vec::new();
        for part in name.split(['-', '_']).filter(|p| !p.is_empty()) {
            let mut word = String::new();
            for c in part.chars() {
                if c.is_ascii_uppercase() && !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.push(c.to_ascii_lowercase());
            }
            words.push(word);
        }
        let capitalised = |w: &String| {
            let mut chars = w.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        };
        let type_name: String = words.iter().map(capitalised).collect();
        let action = words
            .iter()
            .enumerate()
            .map(|(i, w)| if i == 0 { w.clone() } else { capitalised(w) })
            .collect();
        Ok(Self {
            action,
            type_name,
            module: words.join("_"),
        })
    }
}

/// Adds the action `name` to the plugin crate at `crate_dir`: writes
/// `src/<module>.rs` and registers the type in `src/lib.rs`.
///
/// # Errors
///
/// A bad name, a crate without a `src/lib.rs` holding one `export_plugin!(...)`, an
/// action or file of that name already there, or a write that fails.
pub fn new_action(name: &str, crate_dir: &Path) -> anyhow::Result<()> {
    let names = ActionNames::new(name)?;
    let lib_path = crate_dir.join("src/lib.rs");
    let lib = std::fs::read_to_string(&lib_path).with_context(|| {
        format!(
            "{} is not a plugin crate (no src/lib.rs); run `hero new action` in one, or pass --crate DIR",
            crate_dir.display()
        )
    })?;
    let file = crate_dir.join("src").join(format!("{}.rs", names.module));
    if file.exists() {
        anyhow::bail!("{} already exists", file.display());
    }
    let declared = format!("ActionDefinition::new(\"{}\")", names.action);
    let sources = std::fs::read_dir(crate_dir.join("src"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "rs"));
    for source in sources {
        if std::fs::read_to_string(source.path()).is_ok_and(|s| s.contains(&declared)) {
            anyhow::bail!(
                "the crate already declares the action {:?} (in {})",
                names.action,
                source.path().display()
            );
        }
    }
    let registered = register(&lib, &names).with_context(|| {
        format!(
            "cannot register {} in {}; add `mod {}; pub use {}::{};` and list {} in its \
             export_plugin!(...) by hand",
            names.type_name,
            lib_path.display(),
            names.module,
            names.module,
            names.type_name,
            names.type_name
        )
    })?;
    let action = TEMPLATE_ACTION
        .replace("{{action}}", &names.action)
        .replace("{{type}}", &names.type_name)
        .replace("{{module}}", &names.module);
    std::fs::write(&file, action).with_context(|| format!("cannot write {}", file.display()))?;
    std::fs::write(&lib_path, registered)
        .with_context(|| format!("cannot write {}", lib_path.display()))?;
    println!(
        "created action {} ({}, registered in {}); `cargo test` runs its test",
        names.action,
        file.display(),
        lib_path.display()
    );
    Ok(())
}

/// Why `src/lib.rs` cannot be edited.
#[derive(Debug, thiserror::Error)]
enum RegisterError {
    #[error("no `plugin_api::export_plugin!(...)` found")]
    NoExport,
    #[error("more than one `export_plugin!` found")]
    SeveralExports,
    #[error("its `export_plugin!(` is not closed")]
    Unclosed,
}

/// `lib` with `mod <module>; pub use <module>::<Type>;` before its `export_plugin!` and
/// the type appended to that macro's list of actions.
fn register(lib: &str, names: &ActionNames) -> Result<String, RegisterError> {
    const EXPORT: &str = "export_plugin!(";
    let start = lib.find(EXPORT).ok_or(RegisterError::NoExport)?;
    if lib[start + EXPORT.len()..].contains(EXPORT) {
        return Err(RegisterError::SeveralExports);
    }
    let args = start + EXPORT.len();
    // The action list ends at the macro's closing parenthesis or at a `;` that starts
    // a further section of it, whichever comes first at depth 0.
    let mut depth = 0usize;
    let mut end = None;
    for (i, c) in lib[args..].char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' if depth > 0 => depth -= 1,
            ')' | ';' if depth == 0 => {
                end = Some(args + i);
                break;
            }
            _ => {}
        }
    }
    let end = end.ok_or(RegisterError::Unclosed)?;
    let list = lib[args..end].trim_end();
    let list_end = args + list.len();
    let separator = if list.trim().is_empty() {
        ""
    } else if list.ends_with(',') {
        " "
    } else {
        ", "
    };
    // The line holding the macro: the module lines go just above it.
    let line_start = lib[..start].rfind('\n').map_or(0, |i| i + 1);
    let mut out = String::with_capacity(lib.len() + 64);
    out.push_str(&lib[..line_start]);
    out.push_str(&format!(
        "mod {m};\npub use {m}::{t};\n\n",
        m = names.module,
        t = names.type_name
    ));
    out.push_str(&lib[line_start..list_end]);
    out.push_str(separator);
    out.push_str(&names.type_name);
    out.push_str(&lib[list_end..]);
    Ok(out)
}

#[cfg(test)]
mod action_tests {
    use super::*;

    #[test]
    fn action_names_follow_actionhero_and_rust_conventions() {
        for given in ["showUser", "show-user", "show_user", "ShowUser"] {
            assert_eq!(
                ActionNames::new(given).unwrap(),
                ActionNames {
                    action: "showUser".into(),
                    type_name: "ShowUser".into(),
                    module: "show_user".into(),
                },
                "{given}"
            );
        }
        assert!(ActionNames::new("1abc").is_err());
        assert!(ActionNames::new("a b").is_err());
    }

    #[test]
    fn registration_edits_the_export_list_and_adds_the_module() {
        let names = ActionNames::new("showUser").unwrap();
        let lib = "//! Doc.\n\nuse x;\n\nplugin_api::export_plugin!(Hello);\n";
        let edited = register(lib, &names).unwrap();
        assert_eq!(
            edited,
            "//! Doc.\n\nuse x;\n\nmod show_user;\npub use show_user::ShowUser;\n\n\
             plugin_api::export_plugin!(Hello, ShowUser);\n"
        );
        // A trailing comma, a multi-line list, and a further `;` section are kept.
        let lib = "export_plugin!(\n    A,\n    B,\n);\n";
        assert!(
            register(lib, &names)
                .unwrap()
                .contains("    B, ShowUser\n);")
        );
        let lib = "export_plugin!(A; middleware: [M]);\n";
        assert!(
            register(lib, &names)
                .unwrap()
                .contains("export_plugin!(A, ShowUser; middleware: [M]);")
        );
        assert!(matches!(
            register("fn main() {}", &names),
            Err(RegisterError::NoExport)
        ));
        assert!(matches!(
            register("export_plugin!(A", &names),
            Err(RegisterError::Unclosed)
        ));
    }
}
