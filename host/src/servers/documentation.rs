//! The documentation of every action, as `GET /api/` and the websocket `documentation`
//! verb return it, and (`GET /api/` only, under `routes`) the HTTP route table.

use serde_json::{Map, Value, json};

use crate::actions::Registry;

/// `{name: {version: {name, version, description, inputs, outputExample, ...}}}`.
pub fn documentation(registry: &Registry) -> Value {
    let mut docs: Map<String, Value> = Map::new();
    for action in registry.list() {
        let def = action.handler.definition();
        let (required, optional): (Vec<_>, Vec<_>) = def.inputs.iter().partition(|i| i.required);
        let names = |inputs: Vec<&plugin_api::Input>| -> Vec<String> {
            inputs.into_iter().map(|i| i.name.clone()).collect()
        };
        let entry = json!({
            "name": def.name,
            "version": def.version,
            "description": def.description,
            "inputs": { "required": names(required), "optional": names(optional) },
            "outputExample": def.output_example,
            "blockedConnectionTypes": def.blocked_connection_types,
            "source": action.origin.to_string(),
        });
        let versions = docs
            .entry(def.name.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(versions) = versions {
            versions.insert(def.version.to_string(), entry);
        }
    }
    Value::Object(docs)
}

/// The HTTP routes in the order they are tried: `[{method, path, action, apiVersion,
/// source}]` (`apiVersion` null: the newest; `source`: `config`, `static` or the file).
pub fn routes_documentation(registry: &Registry) -> Value {
    Value::Array(
        registry
            .routes()
            .iter()
            .map(|r| r.documentation())
            .collect(),
    )
}
