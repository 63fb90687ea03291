//! Every callable action by name and version, swapped atomically on plugin reload.
//!
//! Static actions (inventory) are registered at start; dynamic ones are added and
//! removed as plugin files come and go. Readers take a snapshot (arc-swap), so a call in
//! flight keeps the version it started with while a reload replaces it.
//!
//! The HTTP route table ([`super::routes`]) lives in the same snapshot: the routes an
//! action declares come and go with it, and a set of actions whose route clashes with
//! one registered already (from the config or another origin) is refused whole, as an
//! action clash is.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use plugin_api::{
    ActionDefinition, ActionError, ActionHandler, ActionResult, BoxFuture, ConnectionInfo, Context,
    HostServices, Params,
};

use super::middleware::{DynActionMiddleware, DynConnectionMiddleware};
use super::routes::{BadRoute, Route, RouteClash, RouteTable, declared_routes};
use super::stats::{ActionMeter, Stats};

/// An action the host can call, whether linked in or loaded from a library.
pub trait Invoke: Send + Sync + fmt::Debug {
    /// What the action declares.
    fn definition(&self) -> &ActionDefinition;
    /// Prepares the (already scrubbed) params and runs the action.
    fn invoke(&self, ctx: Context) -> BoxFuture<'static, ActionResult>;
    /// Runs the action inside its middleware `chain`, and inside `connection_hooks` (a
    /// web request's connection middleware: `create` before, `destroy` after), in one
    /// step, when the action and every one of them live where one call can run them
    /// all (one loaded library: one boundary crossing instead of one per hook and one
    /// for the action). `None` otherwise: the host then runs them hook by hook. The
    /// future yields the params of the reply (prepared) and the result, or the error of
    /// a call that could not run.
    fn invoke_chained(
        &self,
        _chain: &[Arc<dyn DynActionMiddleware>],
        _connection_hooks: &[Arc<dyn DynConnectionMiddleware>],
        _params: &Params,
        _connection: &ConnectionInfo,
        _services: &Arc<dyn HostServices>,
    ) -> Option<BoxFuture<'static, Result<(Params, ActionResult), ActionError>>> {
        None
    }
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
    /// Its name's counters (shared by every version, kept across reloads).
    pub meter: Arc<ActionMeter>,
}

/// Why a set of actions (or the config routes) cannot be registered: nothing changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Clash {
    /// Two sources define the same action name and version.
    #[error("action {name} v{version} from {new} clashes with the one from {existing}")]
    Action {
        /// Action name.
        name: String,
        /// Action version.
        version: u32,
        /// Origin of the action already registered.
        existing: Origin,
        /// Origin of the one refused.
        new: Origin,
    },
    /// A route clashes with one registered already (or with another of the same set).
    #[error(transparent)]
    Route(#[from] Box<RouteClash>),
    /// An action declares a route whose path does not parse.
    #[error(transparent)]
    BadRoute(#[from] Box<BadRoute>),
}

type Versions = BTreeMap<u32, Registered>;

/// One consistent state: the actions and the routes to them.
#[derive(Debug, Default)]
struct Snapshot {
    actions: HashMap<String, Versions>,
    routes: Arc<RouteTable>,
}

/// The registry: readers never block; writers replace a whole snapshot.
#[derive(Debug, Default)]
pub struct Registry {
    state: ArcSwap<Snapshot>,
    stats: Stats,
}

impl Registry {
    /// A registry of every statically linked action.
    ///
    /// # Errors
    ///
    /// Two static actions with the same name and version, or a static route that is
    /// malformed or clashes with another.
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
        let state = self.state.load();
        let versions = state.actions.get(name)?;
        match version {
            Some(v) => versions.get(&v).cloned(),
            None => versions.values().next_back().cloned(),
        }
    }

    /// Every registered action, sorted by name then version.
    pub fn list(&self) -> Vec<Registered> {
        let state = self.state.load();
        let mut all: Vec<Registered> = state
            .actions
            .values()
            .flat_map(|v| v.values().cloned())
            .collect();
        all.sort_by(|a, b| {
            let (a, b) = (a.handler.definition(), b.handler.definition());
            (&a.name, a.version).cmp(&(&b.name, b.version))
        });
        all
    }

    /// Counters of every action name registered so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Whether some version of `name` is registered.
    pub fn knows(&self, name: &str) -> bool {
        self.state.load().actions.contains_key(name)
    }

    /// The route table (config routes, then those of the registered actions).
    pub fn routes(&self) -> Arc<RouteTable> {
        Arc::clone(&self.state.load().routes)
    }

    /// Sets the config routes (tried before every action's routes).
    ///
    /// # Errors
    ///
    /// Two of them clash, or one clashes with a route of a registered action.
    pub fn set_config_routes(&self, routes: Vec<Route>) -> Result<(), Clash> {
        let mut result = Ok(());
        self.state
            .rcu(|current| match current.routes.with_config(routes.clone()) {
                Ok(table) => {
                    result = Ok(());
                    Arc::new(Snapshot {
                        actions: current.actions.clone(),
                        routes: Arc::new(table),
                    })
                }
                Err(clash) => {
                    result = Err(Clash::Route(clash));
                    Arc::clone(current)
                }
            });
        result
    }

    /// Replaces every action from `origin` with `handlers`, and their routes with the
    /// routes they declare, atomically: callers see the old set or the new one, never a
    /// mix. In-flight calls keep their handler.
    ///
    /// # Errors
    ///
    /// A handler clashes with an action from another origin (or with another handler
    /// of the same batch), declares a route that does not parse, or a route clashing
    /// with one of the config or of another origin; nothing is changed then.
    pub fn replace(&self, origin: &Origin, handlers: Vec<Arc<dyn Invoke>>) -> Result<(), Clash> {
        let mut result = Ok(());
        self.state.rcu(
            |current| match Self::next(current, origin, &handlers, &self.stats) {
                Ok(next) => {
                    result = Ok(());
                    Arc::new(next)
                }
                Err(clash) => {
                    result = Err(clash);
                    Arc::clone(current)
                }
            },
        );
        result
    }

    /// `current` with the actions and routes of `origin` replaced by `handlers`'.
    fn next(
        current: &Snapshot,
        origin: &Origin,
        handlers: &[Arc<dyn Invoke>],
        stats: &Stats,
    ) -> Result<Snapshot, Clash> {
        let mut next: HashMap<String, Versions> = HashMap::with_capacity(current.actions.len());
        for (name, versions) in current.actions.iter() {
            let kept: Versions = versions
                .iter()
                .filter(|(_, r)| &r.origin != origin)
                .map(|(v, r)| (*v, r.clone()))
                .collect();
            if !kept.is_empty() {
                next.insert(name.clone(), kept);
            }
        }
        // Action clashes first (they were the only kind before routes), then routes.
        let mut routes = Vec::new();
        for handler in handlers {
            let def = handler.definition();
            let versions = next.entry(def.name.clone()).or_default();
            if let Some(existing) = versions.get(&def.version) {
                return Err(Clash::Action {
                    name: def.name.clone(),
                    version: def.version,
                    existing: existing.origin.clone(),
                    new: origin.clone(),
                });
            }
            versions.insert(
                def.version,
                Registered {
                    handler: Arc::clone(handler),
                    origin: origin.clone(),
                    meter: stats.meter(&def.name),
                },
            );
        }
        for handler in handlers {
            routes.extend(declared_routes(handler.definition(), origin)?);
        }
        let routes = current.routes.with_origin(origin, routes)?;
        Ok(Snapshot {
            actions: next,
            routes: Arc::new(routes),
        })
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

    /// An action declaring one route.
    struct Routed(&'static str, plugin_api::Method, &'static str);
    impl Action for Routed {
        fn definition(&self) -> ActionDefinition {
            ActionDefinition::new(self.0).route(self.1, self.2)
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
        assert!(matches!(
            err,
            Clash::Action {
                existing: Origin::Static,
                ..
            }
        ));
        assert!(r.lookup("b", None).is_none());
        r.replace(&dynamic, vec![handler("b", 1), handler("a", 2)])
            .unwrap();
        assert_eq!(r.lookup("a", None).unwrap().origin, dynamic);
        r.remove(&dynamic);
        assert_eq!(r.lookup("a", None).unwrap().handler.definition().version, 1);
        assert!(r.lookup("b", None).is_none());
    }

    fn routed(
        name: &'static str,
        method: plugin_api::Method,
        path: &'static str,
    ) -> Arc<dyn Invoke> {
        Arc::new(ActionHandler::new(Routed(name, method, path)))
    }

    fn config_route(path: &str, action: &str) -> Route {
        Route {
            method: plugin_api::Method::Get,
            pattern: crate::actions::routes::PathPattern::parse(path).unwrap(),
            action: action.into(),
            api_version: None,
            source: crate::actions::routes::RouteSource::Config,
        }
    }

    #[test]
    fn routes_follow_their_actions_and_clashes_name_both() {
        use plugin_api::Method;
        let r = Registry::default();
        r.set_config_routes(vec![config_route("/users/:userId", "getUser")])
            .unwrap();
        let file = Origin::Dynamic("libfoo.so".into());
        let err = r
            .replace(&file, vec![routed("showUser", Method::Get, "/users/:id")])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "route GET /users/:id of showUser (libfoo.so) clashes with GET /users/:userId \
             of getUser (config)"
        );
        assert!(r.lookup("showUser", None).is_none());
        r.replace(&file, vec![routed("showUser", Method::Post, "/users/:id")])
            .unwrap();
        let other = Origin::Dynamic("libbar.so".into());
        let err = r
            .replace(&other, vec![routed("addUser", Method::All, "/users/:x")])
            .unwrap_err();
        assert!(err.to_string().contains("of addUser (libbar.so)"), "{err}");
        assert!(err.to_string().contains("of getUser (config)"), "{err}");
        let found = r.routes().find(&http::Method::POST, "users/7").unwrap();
        assert_eq!(
            (found.action.as_str(), found.api_version),
            ("showUser", Some(1))
        );
        r.remove(&file);
        assert!(r.routes().find(&http::Method::POST, "users/7").is_none());
        // Config routes are checked against the actions' routes too.
        r.replace(&file, vec![routed("showUser", Method::Post, "/users/:id")])
            .unwrap();
        let err = r
            .set_config_routes(vec![Route {
                method: Method::All,
                ..config_route("/users/:id", "any")
            }])
            .unwrap_err();
        assert!(err.to_string().contains("of showUser (libfoo.so)"), "{err}");
    }

    #[test]
    fn a_bad_route_refuses_the_set_naming_it() {
        let r = Registry::default();
        let err = r
            .replace(
                &Origin::Static,
                vec![
                    handler("a", 1),
                    routed("b", plugin_api::Method::Get, "/x/:id("),
                ],
            )
            .unwrap_err();
        assert!(matches!(err, Clash::BadRoute(_)));
        assert!(
            err.to_string()
                .starts_with("action b v1 (static) declares route GET /x/:id(: bad route path"),
            "{err}"
        );
        assert!(r.lookup("a", None).is_none());
    }
}
