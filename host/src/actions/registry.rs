//! Every callable action by name and version, swapped atomically on plugin reload.
//!
//! Static actions (inventory) are registered at start; dynamic ones are added and
//! removed as plugin files come and go. Readers take a snapshot (arc-swap), so a call in
//! flight keeps the version it started with while a reload replaces it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use plugin_api::{ActionDefinition, ActionHandler, ActionResult, BoxFuture, Context};

/// An action the host can call, whether linked in or loaded from a library.
pub trait Invoke: Send + Sync + fmt::Debug {
    /// What the action declares.
    fn definition(&self) -> &ActionDefinition;
    /// Prepares the (already scrubbed) params and runs the action.
    fn invoke(&self, ctx: Context) -> BoxFuture<'static, ActionResult>;
}

impl Invoke for ActionHandler {
    fn definition(&self) -> &ActionDefinition {
        ActionHandler::definition(self)
    }

    fn invoke(&self, ctx: Context) -> BoxFuture<'static, ActionResult> {
        ActionHandler::invoke(self, ctx)
    }
}

/// Where an action came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    /// Linked into the binary, registered with `inventory`.
    Static,
    /// Loaded from a dynamic library (the path in the plugin directory).
    Dynamic(PathBuf),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Static => f.write_str("static"),
            Origin::Dynamic(path) => write!(f, "{}", path.display()),
        }
    }
}

/// One registered action.
#[derive(Debug, Clone)]
pub struct Registered {
    /// The callable.
    pub handler: Arc<dyn Invoke>,
    /// Where it came from.
    pub origin: Origin,
}

/// Two sources define the same action name and version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("action {name} v{version} from {new} clashes with the one from {existing}")]
pub struct Clash {
    /// Action name.
    pub name: String,
    /// Action version.
    pub version: u32,
    /// Origin of the action already registered.
    pub existing: Origin,
    /// Origin of the one refused.
    pub new: Origin,
}

type Versions = BTreeMap<u32, Registered>;

/// The registry: readers never block; writers replace a whole snapshot.
#[derive(Debug, Default)]
pub struct Registry {
    actions: ArcSwap<HashMap<String, Versions>>,
}

impl Registry {
    /// A registry of every statically linked action.
    ///
    /// # Errors
    ///
    /// Two static actions with the same name and version.
    pub fn with_static_actions() -> Result<Self, Clash> {
        let registry = Self::default();
        let handlers = plugin_api::registered_actions()
            .map(|h| Arc::new(h) as Arc<dyn Invoke>)
            .collect();
        registry.replace(&Origin::Static, handlers)?;
        Ok(registry)
    }

    /// The action `name` at `version`, or its newest version when `None`.
    pub fn lookup(&self, name: &str, version: Option<u32>) -> Option<Registered> {
        let actions = self.actions.load();
        let versions = actions.get(name)?;
        match version {
            Some(v) => versions.get(&v).cloned(),
            None => versions.values().next_back().cloned(),
        }
    }

    /// Every registered action, sorted by name then version.
    pub fn list(&self) -> Vec<Registered> {
        let actions = self.actions.load();
        let mut all: Vec<Registered> = actions.values().flat_map(|v| v.values().cloned()).collect();
        all.sort_by(|a, b| {
            let (a, b) = (a.handler.definition(), b.handler.definition());
            (&a.name, a.version).cmp(&(&b.name, b.version))
        });
        all
    }

    /// Replaces every action from `origin` with `handlers`, atomically: callers see
    /// the old set or the new one, never a mix. In-flight calls keep their handler.
    ///
    /// # Errors
    ///
    /// A handler clashes with an action from another origin (or with another handler
    /// of the same batch); nothing is changed then.
    pub fn replace(&self, origin: &Origin, handlers: Vec<Arc<dyn Invoke>>) -> Result<(), Clash> {
        let mut result = Ok(());
        self.actions.rcu(|current| {
            let mut next: HashMap<String, Versions> = HashMap::with_capacity(current.len());
            for (name, versions) in current.iter() {
                let kept: Versions = versions
                    .iter()
                    .filter(|(_, r)| &r.origin != origin)
                    .map(|(v, r)| (*v, r.clone()))
                    .collect();
                if !kept.is_empty() {
                    next.insert(name.clone(), kept);
                }
            }
            result = Ok(());
            for handler in &handlers {
                let def = handler.definition();
                let versions = next.entry(def.name.clone()).or_default();
                if let Some(existing) = versions.get(&def.version) {
                    result = Err(Clash {
                        name: def.name.clone(),
                        version: def.version,
                        existing: existing.origin.clone(),
                        new: origin.clone(),
                    });
                    return Arc::clone(current);
                }
                versions.insert(
                    def.version,
                    Registered {
                        handler: Arc::clone(handler),
                        origin: origin.clone(),
                    },
                );
            }
            Arc::new(next)
        });
        result
    }

    /// Removes every action from `origin`.
    pub fn remove(&self, origin: &Origin) {
        // Replacing with nothing cannot clash.
        let _ = self.replace(origin, Vec::new());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::{Action, json};

    struct Named(&'static str, u32);
    impl Action for Named {
        fn definition(&self) -> ActionDefinition {
            ActionDefinition::new(self.0).version(self.1)
        }
        async fn run(&self, _ctx: Context) -> ActionResult {
            Ok(json!({ "v": self.1 }))
        }
    }

    fn handler(name: &'static str, version: u32) -> Arc<dyn Invoke> {
        Arc::new(ActionHandler::new(Named(name, version)))
    }

    #[test]
    fn newest_version_by_default() {
        let r = Registry::default();
        r.replace(
            &Origin::Static,
            vec![handler("a", 1), handler("a", 3), handler("a", 2)],
        )
        .unwrap();
        assert_eq!(r.lookup("a", None).unwrap().handler.definition().version, 3);
        assert_eq!(
            r.lookup("a", Some(2)).unwrap().handler.definition().version,
            2
        );
        assert!(r.lookup("a", Some(4)).is_none());
        assert!(r.lookup("b", None).is_none());
    }

    #[test]
    fn clash_across_origins_changes_nothing() {
        let r = Registry::default();
        r.replace(&Origin::Static, vec![handler("a", 1)]).unwrap();
        let dynamic = Origin::Dynamic("x.so".into());
        let err = r
            .replace(&dynamic, vec![handler("b", 1), handler("a", 1)])
            .unwrap_err();
        assert_eq!(err.existing, Origin::Static);
        assert!(r.lookup("b", None).is_none());
        r.replace(&dynamic, vec![handler("b", 1), handler("a", 2)])
            .unwrap();
        assert_eq!(r.lookup("a", None).unwrap().origin, dynamic);
        r.remove(&dynamic);
        assert_eq!(r.lookup("a", None).unwrap().handler.definition().version, 1);
        assert!(r.lookup("b", None).is_none());
    }
}
