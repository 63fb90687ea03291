//! HTTP routes (actionhero's `routes.js`): `METHOD /path/:param(regex) -> action`.
//!
//! A route comes from the config file (`[[routes.get]]`, ...) or from an action's
//! definition ([`plugin_api::ActionDefinition::route`]). Its path is parsed once into
//! segments (literal, `:name`, `:name(regex)`); a request path is split on `/`, each
//! segment percent-decoded once, and matched segment by segment: literals ignore case,
//! a regex is searched in the decoded segment (anchor it with `^...$`), and a failed
//! regex is no match. Matched segments become params.
//!
//! **Order.** The [`RouteTable`] keeps routes in declaration order, and the first match
//! wins: config routes first (each method's own list, then the `all` list, each in file
//! order), then the routes of actions in registration order (static actions, then each
//! plugin file in the order it was first loaded; a reloaded file keeps its place), each
//! action's routes in the order it declares them.
//!
//! **Precedence** (`servers::api`), as in actionhero's web server, where routes are only
//! consulted when the params name no known action (`processRoute`): `/api/<known
//! action>` first (Hero's own path routing, kept as it was), then an `action` param
//! naming a known action, then the routes; then `/api/<path>` or `action` as given,
//! failing as an unknown action. Path params overwrite query and body params of the same
//! name; the route's `apiVersion` applies unless the request gives one.
//!
//! **Clashes.** Two routes clash when their methods overlap (equal, or either is `all`)
//! and their patterns have the same shape (literals equal ignoring case, params at the
//! same places with the same regex; param names do not count). The registry refuses a
//! clashing set at registration, naming both routes' actions and sources.

use std::fmt;

use plugin_api::Method;
// Route constraints are regular expressions (`:id(^\d+$)`), as in actionhero; the
// `regex` crate compiles each once at load and matches in linear time, so a request
// path cannot make a route match run away.
use regex::Regex;

use super::registry::Origin;

/// A route path pattern, parsed once: `/users/:userId(^\d+$)`.
#[derive(Debug, Clone)]
pub struct PathPattern {
    source: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone)]
enum Segment {
    /// Matched ignoring ASCII case; stored lower-case.
    Literal(String),
    /// Any non-empty segment, or one the regex finds a match in.
    Param { name: String, regex: Option<Regex> },
}

/// A route path that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad route path `{path}`: {reason}")]
pub struct PatternError {
    /// The path as written.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

impl PathPattern {
    /// Parses `path` (relative to `/api`; leading and trailing `/` are optional).
    ///
    /// # Errors
    ///
    /// An empty segment (`//`), a param without a name or with an unclosed `(`, a
    /// param name used twice, or an invalid regex.
    pub fn parse(path: &str) -> Result<Self, PatternError> {
        let fail = |reason: String| PatternError {
            path: path.to_owned(),
            reason,
        };
        let trimmed = path.trim_matches('/');
        let mut segments = Vec::new();
        if !trimmed.is_empty() {
            for part in trimmed.split('/') {
                segments.push(parse_segment(part).map_err(fail)?);
            }
        }
        let mut names: Vec<&str> = Vec::new();
        for segment in &segments {
            if let Segment::Param { name, .. } = segment {
                if names.contains(&name.as_str()) {
                    return Err(fail(format!("param `{name}` appears twice")));
                }
                names.push(name);
            }
        }
        Ok(Self {
            source: path.to_owned(),
            segments,
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether both patterns match exactly the same paths (param names aside).
    pub fn same_shape(&self, other: &PathPattern) -> bool {
        self.segments.len() == other.segments.len()
            && self
                .segments
                .iter()
                .zip(&other.segments)
                .all(|pair| match pair {
                    (Segment::Literal(a), Segment::Literal(b)) => a == b,
                    (Segment::Param { regex: a, .. }, Segment::Param { regex: b, .. }) => {
                        a.as_ref().map(Regex::as_str) == b.as_ref().map(Regex::as_str)
                    }
                    _ => false,
                })
    }

    /// The params of `segments` (already decoded), or `None` when they do not match.
    pub fn matches(&self, segments: &[String]) -> Option<Vec<(String, String)>> {
        if segments.len() != self.segments.len() {
            return None;
        }
        let mut params = Vec::new();
        for (pattern, value) in self.segments.iter().zip(segments) {
            match pattern {
                Segment::Literal(literal) => {
                    if !literal.eq_ignore_ascii_case(value) {
                        return None;
                    }
                }
                Segment::Param { name, regex } => {
                    if value.is_empty() || regex.as_ref().is_some_and(|r| !r.is_match(value)) {
                        return None;
                    }
                    params.push((name.clone(), value.clone()));
                }
            }
        }
        Some(params)
    }
}

fn parse_segment(part: &str) -> Result<Segment, String> {
    if part.is_empty() {
        return Err("empty segment (`//`)".into());
    }
    let Some(param) = part.strip_prefix(':') else {
        return Ok(Segment::Literal(part.to_ascii_lowercase()));
    };
    let (name, regex) = match param.split_once('(') {
        None => (param, None),
        Some((name, rest)) => {
            let Some(source) = rest.strip_suffix(')') else {
                return Err(format!(
                    "segment `{part}`: `(` without a closing `)` at its end"
                ));
            };
            let regex = Regex::new(source)
                .map_err(|e| format!("segment `{part}`: invalid regex `{source}`: {e}"))?;
            (name, Some(regex))
        }
    };
    if name.is_empty() {
        return Err(format!("segment `{part}`: a param needs a name (`:name`)"));
    }
    Ok(Segment::Param {
        name: name.to_owned(),
        regex,
    })
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl serde::Serialize for PathPattern {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

impl<'de> serde::Deserialize<'de> for PathPattern {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let path = String::deserialize(deserializer)?;
        Self::parse(&path).map_err(serde::de::Error::custom)
    }
}

/// Where a route was declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteSource {
    /// The config file's `[routes]`.
    Config,
    /// An action's definition, from this origin.
    Action(Origin),
}

impl fmt::Display for RouteSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteSource::Config => f.write_str("config"),
            RouteSource::Action(origin) => origin.fmt(f),
        }
    }
}

/// One route of the table.
#[derive(Debug, Clone)]
pub struct Route {
    /// The method it answers (`All`: every one).
    pub method: Method,
    /// Its path pattern, relative to `/api`.
    pub pattern: PathPattern,
    /// The action it calls.
    pub action: String,
    /// The action version it calls unless the request names one (`None`: the newest).
    pub api_version: Option<u32>,
    /// Where it was declared.
    pub source: RouteSource,
}

impl Route {
    /// Whether this route and `other` would answer the same requests.
    pub fn clashes_with(&self, other: &Route) -> bool {
        let methods = self.method == other.method
            || self.method == Method::All
            || other.method == Method::All;
        methods && self.pattern.same_shape(&other.pattern)
    }

    /// The route as the documentation lists it.
    pub fn documentation(&self) -> serde_json::Value {
        serde_json::json!({
            "method": self.method.as_str(),
            "path": self.pattern.as_str(),
            "action": self.action,
            "apiVersion": self.api_version,
            "source": self.source.to_string(),
        })
    }
}

/// A route refused because it clashes with one in the table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "route {method} {path} of {action} ({from}) clashes with {} of {existing_action} ({existing_from})",
    existing_route(.method, .path, .existing_method, .existing_path)
)]
pub struct RouteClash {
    /// Method of the refused route.
    pub method: Method,
    /// Path of the refused route, as written.
    pub path: String,
    /// Action of the refused route.
    pub action: String,
    /// Source of the refused route.
    pub from: RouteSource,
    /// Method of the route already in the table.
    pub existing_method: Method,
    /// Path of the route already in the table, as written.
    pub existing_path: String,
    /// Action of the route already in the table.
    pub existing_action: String,
    /// Source of the route already in the table.
    pub existing_from: RouteSource,
}

fn existing_route(method: &Method, path: &str, existing: &Method, existing_path: &str) -> String {
    if method == existing && path == existing_path {
        "the one".to_owned()
    } else {
        format!("{existing} {existing_path}")
    }
}

impl RouteClash {
    fn new(refused: &Route, existing: &Route) -> Self {
        Self {
            method: refused.method,
            path: refused.pattern.as_str().to_owned(),
            action: refused.action.clone(),
            from: refused.source.clone(),
            existing_method: existing.method,
            existing_path: existing.pattern.as_str().to_owned(),
            existing_action: existing.action.clone(),
            existing_from: existing.source.clone(),
        }
    }
}

/// An action declares a route whose path does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("action {action} v{version} ({origin}) declares route {method} {path}: {error}")]
pub struct BadRoute {
    /// The declaring action.
    pub action: String,
    /// Its version.
    pub version: u32,
    /// Where it came from.
    pub origin: Origin,
    /// The route's method.
    pub method: Method,
    /// The route's path, as written.
    pub path: String,
    /// What is wrong with the path.
    pub error: PatternError,
}

/// What a request path matched: the action, its version, the path params (decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// The action to call.
    pub action: String,
    /// The route's version, if it names one.
    pub api_version: Option<u32>,
    /// Path params in path order.
    pub params: Vec<(String, String)>,
}

/// Every route in declaration order: config routes, then each origin's.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    config: Vec<Route>,
    origins: Vec<(Origin, Vec<Route>)>,
}

impl RouteTable {
    /// Every route, in the order they are tried.
    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.config
            .iter()
            .chain(self.origins.iter().flat_map(|(_, routes)| routes))
    }

    /// Whether the table has no route.
    pub fn is_empty(&self) -> bool {
        self.config.is_empty() && self.origins.is_empty()
    }

    /// The first route answering `method` at `path` (relative to `/api`, still
    /// percent-encoded). `HEAD` is matched as `GET`; other methods match no route. A
    /// path whose segments do not decode to UTF-8 matches nothing.
    pub fn find(&self, method: &http::Method, path: &str) -> Option<RouteMatch> {
        if self.is_empty() {
            return None;
        }
        let method = route_method(method)?;
        let segments = split_path(path)?;
        self.iter()
            .filter(|r| r.method == method || r.method == Method::All)
            .find_map(|route| {
                route.pattern.matches(&segments).map(|params| RouteMatch {
                    action: route.action.clone(),
                    api_version: route.api_version,
                    params,
                })
            })
    }

    /// This table with the config routes set to `routes`.
    ///
    /// # Errors
    ///
    /// Two of `routes` clash, or one clashes with an action's route.
    pub fn with_config(&self, routes: Vec<Route>) -> Result<Self, Box<RouteClash>> {
        let others = self.origins.iter().flat_map(|(_, r)| r);
        check(&routes, others)?;
        Ok(Self {
            config: routes,
            origins: self.origins.clone(),
        })
    }

    /// This table with the routes of `origin` replaced by `routes` (an origin seen
    /// before keeps its place; a new one goes last; none removes it).
    ///
    /// # Errors
    ///
    /// Two of `routes` clash, or one clashes with a route of the config or of another
    /// origin.
    pub fn with_origin(
        &self,
        origin: &Origin,
        routes: Vec<Route>,
    ) -> Result<Self, Box<RouteClash>> {
        let others = self.config.iter().chain(
            self.origins
                .iter()
                .filter(|(o, _)| o != origin)
                .flat_map(|(_, r)| r),
        );
        check(&routes, others)?;
        let mut origins = self.origins.clone();
        match origins.iter().position(|(o, _)| o == origin) {
            Some(at) if routes.is_empty() => {
                origins.remove(at);
            }
            Some(at) => origins[at].1 = routes,
            None if routes.is_empty() => {}
            None => origins.push((origin.clone(), routes)),
        }
        Ok(Self {
            config: self.config.clone(),
            origins,
        })
    }
}

/// Refuses the first of `routes` that clashes with one of `others` or an earlier one
/// of `routes`.
fn check<'a>(
    routes: &'a [Route],
    others: impl Iterator<Item = &'a Route> + Clone,
) -> Result<(), Box<RouteClash>> {
    for (i, route) in routes.iter().enumerate() {
        if let Some(existing) = others
            .clone()
            .chain(&routes[..i])
            .find(|other| route.clashes_with(other))
        {
            return Err(Box::new(RouteClash::new(route, existing)));
        }
    }
    Ok(())
}

/// The route method of an HTTP request method (`HEAD` is `GET`, as in actionhero).
fn route_method(method: &http::Method) -> Option<Method> {
    Some(match *method {
        http::Method::GET | http::Method::HEAD => Method::Get,
        http::Method::POST => Method::Post,
        http::Method::PUT => Method::Put,
        http::Method::PATCH => Method::Patch,
        http::Method::DELETE => Method::Delete,
        _ => return None,
    })
}

/// The decoded segments of a raw path (no leading or trailing `/`; `""` has none).
fn split_path(path: &str) -> Option<Vec<String>> {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        return Some(Vec::new());
    }
    trimmed
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .ok()
                .map(|s| s.into_owned())
        })
        .collect()
}

/// The `[routes]` table of the config file: per method, a list of routes.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoutesConfig {
    /// `[[routes.get]]` (also answers `HEAD`).
    pub get: Vec<RouteSpec>,
    /// `[[routes.post]]`.
    pub post: Vec<RouteSpec>,
    /// `[[routes.put]]`.
    pub put: Vec<RouteSpec>,
    /// `[[routes.patch]]`.
    pub patch: Vec<RouteSpec>,
    /// `[[routes.delete]]`.
    pub delete: Vec<RouteSpec>,
    /// `[[routes.all]]`: every method, after each method's own routes.
    pub all: Vec<RouteSpec>,
}

/// One configured route: `{path, action, apiVersion?}`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// Path pattern relative to `/api` (checked when the config is read).
    pub path: PathPattern,
    /// The action it calls.
    pub action: String,
    /// The action version it calls (default: the newest).
    #[serde(
        rename = "apiVersion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub api_version: Option<u32>,
}

impl RoutesConfig {
    /// The configured routes in table order.
    pub fn routes(&self) -> Vec<Route> {
        let lists = [
            (Method::Get, &self.get),
            (Method::Post, &self.post),
            (Method::Put, &self.put),
            (Method::Patch, &self.patch),
            (Method::Delete, &self.delete),
            (Method::All, &self.all),
        ];
        lists
            .into_iter()
            .flat_map(|(method, specs)| {
                specs.iter().map(move |spec| Route {
                    method,
                    pattern: spec.path.clone(),
                    action: spec.action.clone(),
                    api_version: spec.api_version,
                    source: RouteSource::Config,
                })
            })
            .collect()
    }
}

/// The routes an action definition declares, parsed, from `origin`.
///
/// # Errors
///
/// A declared path does not parse.
pub fn declared_routes(
    definition: &plugin_api::ActionDefinition,
    origin: &Origin,
) -> Result<Vec<Route>, Box<BadRoute>> {
    definition
        .routes
        .iter()
        .map(|declared| {
            let pattern = PathPattern::parse(&declared.path).map_err(|error| {
                Box::new(BadRoute {
                    action: definition.name.clone(),
                    version: definition.version,
                    origin: origin.clone(),
                    method: declared.method,
                    path: declared.path.clone(),
                    error,
                })
            })?;
            Ok(Route {
                method: declared.method,
                pattern,
                action: definition.name.clone(),
                api_version: Some(definition.version),
                source: RouteSource::Action(origin.clone()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: Method, path: &str, action: &str) -> Route {
        Route {
            method,
            pattern: PathPattern::parse(path).unwrap(),
            action: action.into(),
            api_version: None,
            source: RouteSource::Config,
        }
    }

    fn table(routes: Vec<Route>) -> RouteTable {
        RouteTable::default().with_config(routes).unwrap()
    }

    fn found(
        t: &RouteTable,
        method: http::Method,
        path: &str,
    ) -> Option<(String, Vec<(String, String)>)> {
        t.find(&method, path).map(|m| (m.action, m.params))
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn plain_param_and_regex_segments() {
        let t = table(vec![
            route(Method::Get, "/users/:userId(^\\d+$)", "showUser"),
            route(Method::Get, "/users/:name", "byName"),
            route(Method::Get, "/about", "about"),
        ]);
        assert_eq!(
            found(&t, http::Method::GET, "users/42"),
            Some(("showUser".into(), pairs(&[("userId", "42")])))
        );
        assert_eq!(
            found(&t, http::Method::GET, "users/bob/"),
            Some(("byName".into(), pairs(&[("name", "bob")])))
        );
        assert_eq!(
            found(&t, http::Method::GET, "ABOUT").map(|f| f.0),
            Some("about".into())
        );
        assert_eq!(found(&t, http::Method::GET, "about/more"), None);
        assert_eq!(found(&t, http::Method::POST, "about"), None);
        assert_eq!(
            found(&t, http::Method::HEAD, "about").map(|f| f.0),
            Some("about".into())
        );
        assert_eq!(found(&t, http::Method::OPTIONS, "about"), None);
    }

    #[test]
    fn segments_are_decoded_once() {
        let t = table(vec![route(Method::Get, "/files/:name", "file")]);
        assert_eq!(
            found(&t, http::Method::GET, "files/a%2Fb%2520"),
            Some(("file".into(), pairs(&[("name", "a/b%20")])))
        );
        assert_eq!(found(&t, http::Method::GET, "files/%FF"), None);
        assert_eq!(found(&t, http::Method::GET, "files//"), None);
    }

    #[test]
    fn all_answers_every_method_after_the_method_own_routes() {
        let config = RoutesConfig {
            all: vec![RouteSpec {
                path: PathPattern::parse("/x/:id").unwrap(),
                action: "any".into(),
                api_version: None,
            }],
            delete: vec![RouteSpec {
                path: PathPattern::parse("/x/:id(^\\d+$)").unwrap(),
                action: "remove".into(),
                api_version: Some(2),
            }],
            ..RoutesConfig::default()
        };
        let t = table(config.routes());
        for m in [
            http::Method::GET,
            http::Method::POST,
            http::Method::PUT,
            http::Method::PATCH,
        ] {
            assert_eq!(found(&t, m, "x/1").map(|f| f.0), Some("any".into()));
        }
        let m = t.find(&http::Method::DELETE, "x/1").unwrap();
        assert_eq!((m.action.as_str(), m.api_version), ("remove", Some(2)));
        assert_eq!(
            found(&t, http::Method::DELETE, "x/a").map(|f| f.0),
            Some("any".into())
        );
    }

    #[test]
    fn bad_patterns_are_named() {
        for (path, reason) in [
            ("/a//b", "empty segment"),
            ("/a/:", "needs a name"),
            ("/a/:id(\\d+", "without a closing"),
            ("/a/:id([)", "invalid regex"),
            ("/a/:id/:id", "appears twice"),
        ] {
            let err = PathPattern::parse(path).unwrap_err();
            assert_eq!(err.path, path);
            assert!(err.to_string().contains(reason), "{path}: {err}");
            assert!(err.to_string().contains(path), "{err}");
        }
        assert!(PathPattern::parse("/").unwrap().matches(&[]).is_some());
    }

    #[test]
    fn clashes_need_overlapping_methods_and_the_same_shape() {
        let a = route(Method::Get, "/users/:id", "a");
        assert!(a.clashes_with(&route(Method::Get, "users/:userId/", "b")));
        assert!(a.clashes_with(&route(Method::All, "/USERS/:x", "b")));
        assert!(!a.clashes_with(&route(Method::Post, "/users/:id", "b")));
        assert!(!a.clashes_with(&route(Method::Get, "/users/:id(^\\d+$)", "b")));
        assert!(!a.clashes_with(&route(Method::Get, "/users/me", "b")));
        let err = RouteTable::default()
            .with_config(vec![a.clone(), route(Method::Get, "/users/:id", "b")])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "route GET /users/:id of b (config) clashes with the one of a (config)"
        );
    }

    #[test]
    fn origins_keep_their_place_and_are_checked_against_the_rest() {
        let file = Origin::Dynamic("libfoo.so".into());
        let mut from_file = route(Method::Get, "/users/:id", "showUser");
        from_file.source = RouteSource::Action(file.clone());
        let t = table(vec![route(Method::All, "/users/:userId", "getUser")]);
        let err = t.with_origin(&file, vec![from_file.clone()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "route GET /users/:id of showUser (libfoo.so) clashes with ALL /users/:userId \
             of getUser (config)"
        );
        let mut other = from_file.clone();
        other.pattern = PathPattern::parse("/other").unwrap();
        let mut first = from_file;
        first.pattern = PathPattern::parse("/first").unwrap();
        let t = t.with_origin(&file, vec![other.clone()]).unwrap();
        let t = t.with_origin(&Origin::Static, vec![first.clone()]).unwrap();
        let t = t.with_origin(&file, vec![other]).unwrap();
        let order: Vec<&str> = t.iter().map(|r| r.pattern.as_str()).collect();
        assert_eq!(order, ["/users/:userId", "/other", "/first"]);
        let t = t.with_origin(&file, Vec::new()).unwrap();
        assert_eq!(t.iter().count(), 2);
    }
}
