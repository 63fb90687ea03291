//! What an action declares about itself: name, version, inputs, output example, and
//! the HTTP routes that lead to it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{ActionError, Params, RESERVED_PARAMS};

/// Checks one input value; `Err` carries the message the client sees.
pub type Validator = fn(&Value) -> Result<(), String>;

/// Rewrites one input value before validation (e.g. parse a string into a number).
pub type Formatter = fn(Value) -> Value;

/// Everything an action declares, as data. Crosses the dynamic boundary as JSON
/// (validators and formatters stay on the plugin's side and run there).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionDefinition {
    /// Unique name, e.g. `randomNumber`.
    pub name: String,
    /// One sentence for the documentation.
    #[serde(default)]
    pub description: String,
    /// Integer version; clients pick one with `apiVersion` (default: the newest).
    #[serde(default = "default_version")]
    pub version: u32,
    /// Declared inputs; anything else a client sends is dropped.
    #[serde(default)]
    pub inputs: Vec<Input>,
    /// An example of what the action returns, for the documentation.
    #[serde(default)]
    pub output_example: Value,
    /// Connection types (`web`, `webSocket`) that may not call this action.
    #[serde(default)]
    pub blocked_connection_types: Vec<String>,
    /// Names of the action middleware that run for this action besides the global ones
    /// (see [`crate::middleware`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub middleware: Vec<String>,
    /// HTTP routes to this action at this version, in declaration order (absent from
    /// the JSON of plugins built before routes existed, hence the default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// How long one call may take before the host answers a timeout (milliseconds);
    /// `None`: the host's `plugin_call_timeout_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// The HTTP method a route answers; `All` is every one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// `GET` (and `HEAD`).
    Get,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `PATCH`.
    Patch,
    /// `DELETE`.
    Delete,
    /// Every method above.
    All,
}

impl Method {
    /// The lower-case name, as in the configuration file (`get`, ..., `all`).
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Post => "post",
            Method::Put => "put",
            Method::Patch => "patch",
            Method::Delete => "delete",
            Method::All => "all",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_str().to_ascii_uppercase())
    }
}

/// One HTTP route an action declares: `method` and a path relative to `/api`, with
/// `:name` and `:name(regex)` segments (the host parses and checks it at load).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// The method it answers.
    pub method: Method,
    /// The path pattern, e.g. `/users/:userId(^\d+$)`.
    pub path: String,
}

fn default_version() -> u32 {
    1
}

impl ActionDefinition {
    /// A version-1 action with no inputs.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: String::new(),
            version: 1,
            inputs: Vec::new(),
            output_example: Value::Null,
            blocked_connection_types: Vec::new(),
            middleware: Vec::new(),
            routes: Vec::new(),
            timeout_ms: None,
        }
    }

    /// Sets the description.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = text.into();
        self
    }

    /// Sets the version.
    pub fn version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// Adds an input.
    pub fn input(mut self, input: Input) -> Self {
        self.inputs.push(input);
        self
    }

    /// Sets the output example.
    pub fn output_example(mut self, example: Value) -> Self {
        self.output_example = example;
        self
    }

    /// Runs the action middleware named `name` for this action (besides the global ones).
    pub fn middleware(mut self, name: impl Into<String>) -> Self {
        self.middleware.push(name.into());
        self
    }

    /// Adds an HTTP route to this action (at this version): `path` is relative to `/api`
    /// and may hold `:name` and `:name(regex)` segments, whose values become params.
    pub fn route(mut self, method: Method, path: impl Into<String>) -> Self {
        self.routes.push(Route {
            method,
            path: path.into(),
        });
        self
    }

    /// Gives each call at most `limit` (instead of the host's default) before the
    /// client gets a timeout error.
    pub fn timeout(mut self, limit: std::time::Duration) -> Self {
        self.timeout_ms = Some(u64::try_from(limit.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// Refuses calls from a connection type (`web` or `webSocket`).
    pub fn block_connection_type(mut self, kind: impl Into<String>) -> Self {
        self.blocked_connection_types.push(kind.into());
        self
    }

    /// Whether `name` is a declared input.
    pub fn declares(&self, name: &str) -> bool {
        self.inputs.iter().any(|i| i.name == name)
    }

    /// Drops every param this action does not declare, except the
    /// [reserved ones](crate::RESERVED_PARAMS): the first step of the host's pipeline.
    ///
    /// In place: no new map, no copied keys or values (this runs on every call).
    pub fn scrub(&self, mut params: Params) -> Params {
        params.retain(|name, _| RESERVED_PARAMS.contains(&name.as_str()) || self.declares(name));
        params
    }

    /// The params a call of this action carries: `params` [scrubbed](Self::scrub), with
    /// `apiVersion` set to this version (what the action, its post-processors and the
    /// reply's `receivedParams` see).
    pub fn prepare(&self, params: Params) -> Params {
        let mut params = self.scrub(params);
        params.insert("apiVersion".into(), serde_json::Value::from(self.version));
        params
    }

    /// Refuses a connection type the action blocks, with the error the host answers.
    ///
    /// # Errors
    ///
    /// A `Forbidden` error when `kind` is in `blocked_connection_types`.
    pub fn check_connection_type(&self, kind: &str) -> Result<(), ActionError> {
        if self.blocked_connection_types.iter().any(|t| t == kind) {
            return Err(ActionError::with_kind(
                crate::ErrorKind::Forbidden,
                format!("this action cannot be called by a {kind} connection"),
            ));
        }
        Ok(())
    }

    /// Applies defaults, formatters, validators and the required check, in that order
    /// per input, in declaration order. The first failure wins.
    ///
    /// # Errors
    ///
    /// [`ActionError::missing_param`] for the first missing required input, or an
    /// `InvalidParam` error carrying the validator's message.
    pub fn prepare_params(&self, mut params: Params) -> Result<Params, ActionError> {
        for input in &self.inputs {
            let present = params.get(&input.name).is_some_and(is_given);
            if !present {
                match &input.default {
                    Some(default) => {
                        params.insert(input.name.clone(), default.clone());
                    }
                    None if input.required => return Err(ActionError::missing_param(&input.name)),
                    None => continue,
                }
            }
            if let Some(format) = input.formatter
                && let Some(value) = params.remove(&input.name)
            {
                params.insert(input.name.clone(), format(value));
            }
            if let Some(validate) = input.validator
                && let Some(value) = params.get(&input.name)
            {
                validate(value).map_err(|message| {
                    ActionError::with_kind(crate::ErrorKind::InvalidParam, message)
                })?;
            }
        }
        Ok(params)
    }
}

/// Whether a param counts as given: actionhero treats an empty string as absent.
fn is_given(value: &Value) -> bool {
    !matches!(value, Value::Null) && value.as_str() != Some("")
}

/// One declared input of an action.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Input {
    /// Param name.
    pub name: String,
    /// Whether a call without it fails with `<name> is a required parameter for this action`.
    #[serde(default)]
    pub required: bool,
    /// Value used when the client sends none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// Check run after formatting; plugin-side only.
    #[serde(skip)]
    pub validator: Option<Validator>,
    /// Rewrite run before validation; plugin-side only.
    #[serde(skip)]
    pub formatter: Option<Formatter>,
}

impl Input {
    /// A required input.
    pub fn required(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            required: true,
            default: None,
            validator: None,
            formatter: None,
        }
    }

    /// An optional input.
    pub fn optional(name: impl Into<String>) -> Self {
        Self {
            required: false,
            ..Self::required(name)
        }
    }

    /// Sets the default value.
    pub fn default(mut self, value: impl Into<Value>) -> Self {
        self.default = Some(value.into());
        self
    }

    /// Sets the validator.
    pub fn validator(mut self, validator: Validator) -> Self {
        self.validator = Some(validator);
        self
    }

    /// Sets the formatter.
    pub fn formatter(mut self, formatter: Formatter) -> Self {
        self.formatter = Some(formatter);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(v: Value) -> Params {
        match v {
            Value::Object(m) => m,
            _ => Params::new(),
        }
    }

    #[test]
    fn first_missing_required_input_is_named() {
        let def = ActionDefinition::new("cacheTest")
            .input(Input::required("key"))
            .input(Input::required("value"));
        let err = def.prepare_params(Params::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Error: key is a required parameter for this action"
        );
        let err = def.prepare_params(params(json!({"key": "k"}))).unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::MissingParam);
        assert_eq!(
            err.to_string(),
            "Error: value is a required parameter for this action"
        );
    }

    #[test]
    fn empty_string_counts_as_missing_and_default_fills_it() {
        let def = ActionDefinition::new("a").input(Input::required("n").default(3));
        let out = def.prepare_params(params(json!({"n": ""}))).unwrap();
        assert_eq!(out["n"], json!(3));
    }

    #[test]
    fn formatter_runs_before_validator() {
        fn to_number(v: Value) -> Value {
            v.as_str()
                .and_then(|s| s.parse::<i64>().ok())
                .map_or(v, Value::from)
        }
        fn positive(v: &Value) -> Result<(), String> {
            match v.as_i64() {
                Some(n) if n > 0 => Ok(()),
                _ => Err("n must be a positive number".into()),
            }
        }
        let def = ActionDefinition::new("a").input(
            Input::required("n")
                .formatter(to_number)
                .validator(positive),
        );
        assert_eq!(
            def.prepare_params(params(json!({"n": "7"}))).unwrap()["n"],
            json!(7)
        );
        let err = def.prepare_params(params(json!({"n": "-1"}))).unwrap_err();
        assert_eq!(err.to_string(), "Error: n must be a positive number");
    }

    #[test]
    fn undeclared_params_are_dropped_reserved_kept() {
        let def = ActionDefinition::new("a").input(Input::required("key"));
        let sent = params(
            json!({"key": 1, "evil": 2, "action": "a", "apiVersion": "1",
            "callback": "cb", "file": "f"}),
        );
        let kept = def.scrub(sent);
        assert!(kept.contains_key("key") && !kept.contains_key("evil"));
        for name in RESERVED_PARAMS {
            assert!(kept.contains_key(name), "{name}");
        }
    }

    #[test]
    fn blocked_connection_types_are_forbidden() {
        let def = ActionDefinition::new("a").block_connection_type("web");
        assert!(def.check_connection_type("webSocket").is_ok());
        let err = def.check_connection_type("web").unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Forbidden);
        assert_eq!(
            err.to_string(),
            "Error: this action cannot be called by a web connection"
        );
    }

    #[test]
    fn definition_round_trips_as_json_without_functions() {
        let def = ActionDefinition::new("a")
            .version(2)
            .input(Input::optional("x").default("y").validator(|_| Ok(())));
        let back: ActionDefinition =
            serde_json::from_value(serde_json::to_value(&def).unwrap()).unwrap();
        assert_eq!(back.version, 2);
        assert_eq!(back.inputs[0].default, Some(json!("y")));
        assert!(back.inputs[0].validator.is_none());
    }

    #[test]
    fn routes_cross_as_json_and_old_json_has_none() {
        let def = ActionDefinition::new("showUser")
            .route(Method::Get, "/users/:userId(^\\d+$)")
            .route(Method::All, "/me");
        let wire = serde_json::to_value(&def).unwrap();
        assert_eq!(
            wire["routes"],
            json!([{"method": "get", "path": "/users/:userId(^\\d+$)"},
                   {"method": "all", "path": "/me"}])
        );
        let back: ActionDefinition = serde_json::from_value(wire).unwrap();
        assert_eq!(back.routes, def.routes);
        // A plugin built before routes sends no `routes` key; none is sent for none.
        let old: ActionDefinition = serde_json::from_value(json!({"name": "a"})).unwrap();
        assert!(old.routes.is_empty());
        let plain = serde_json::to_value(ActionDefinition::new("a")).unwrap();
        assert!(plain.get("routes").is_none());
        assert_eq!(Method::Delete.to_string(), "DELETE");
    }
}
