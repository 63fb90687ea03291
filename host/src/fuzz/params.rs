//! The params pipeline: `actions::scrub` (`ActionDefinition::scrub`), then
//! `ActionDefinition::prepare_params`, and `requested_version`.
//!
//! Generated definitions (0-6 inputs from a small pool of names, reserved and duplicate
//! ones included; required or optional; defaults of every JSON type, `null` and `""`
//! too; validators and formatters from a fixed set) and generated params. Invariants:
//!
//! - scrub keeps exactly the declared and reserved params, values untouched;
//! - a success holds every required input and every input with a default, adds no key
//!   but declared inputs, and leaves undeclared (reserved) params as they were;
//! - a `MissingParam` error names a required input without a default that was not
//!   given; an `InvalidParam` error carries one of the validators' messages; no other
//!   error kind;
//! - with no required input lacking a default and no validator, it succeeds;
//! - `requested_version` returns only what `apiVersion` spells.

use plugin_api::{ActionDefinition, ErrorKind, Input, Params};
use serde_json::Value;

use super::{Gen, run};
use crate::actions::{RESERVED_PARAMS, requested_version, scrub};

const NAMES: &[&str] = &[
    "key",
    "value",
    "n",
    "name",
    "room",
    "action",
    "file",
    "callback",
    "apiVersion",
    "x",
    "",
    "é",
    "a b",
];

fn v_ok(_: &Value) -> Result<(), String> {
    Ok(())
}
fn v_number(v: &Value) -> Result<(), String> {
    if v.is_number() {
        Ok(())
    } else {
        Err("fuzz: not a number".into())
    }
}
fn v_short(v: &Value) -> Result<(), String> {
    match v {
        Value::String(s) if s.chars().count() > 8 => Err("fuzz: too long".into()),
        _ => Ok(()),
    }
}
fn v_not_null(v: &Value) -> Result<(), String> {
    if v.is_null() {
        Err("fuzz: null".into())
    } else {
        Ok(())
    }
}
fn f_identity(v: Value) -> Value {
    v
}
fn f_number(v: Value) -> Value {
    v.as_str()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .and_then(serde_json::Number::from_f64)
        .map_or(v, Value::Number)
}
fn f_string(v: Value) -> Value {
    Value::String(v.to_string())
}
fn f_null(_: Value) -> Value {
    Value::Null
}
fn f_wrap(v: Value) -> Value {
    Value::Array(vec![v])
}

/// A validator as `Input::validator` takes it.
type Check = fn(&Value) -> Result<(), String>;

const VALIDATORS: &[Check] = &[v_ok, v_number, v_short, v_not_null];
const FORMATTERS: &[fn(Value) -> Value] = &[f_identity, f_number, f_string, f_null, f_wrap];

#[derive(Debug)]
struct Case {
    definition: ActionDefinition,
    params: Params,
}

fn param_value(g: &mut Gen) -> Value {
    match g.below(6) {
        0 => Value::Null,
        1 => Value::String(String::new()),
        2 => Value::String(
            g.pick(&["7", " 12 ", "-3", "1e3", "abc", "123456789"])
                .to_string(),
        ),
        _ => g.value(2),
    }
}

fn generate(g: &mut Gen) -> Case {
    let mut definition = ActionDefinition::new("fuzz");
    for _ in 0..g.between(0, 6) {
        let name = (*g.pick(NAMES)).to_owned();
        let mut input = if g.chance(0.5) {
            Input::required(name)
        } else {
            Input::optional(name)
        };
        if g.chance(0.35) {
            input = input.default(param_value(g));
        }
        if g.chance(0.4) {
            input = input.validator(*g.pick(VALIDATORS));
        }
        if g.chance(0.4) {
            input = input.formatter(*g.pick(FORMATTERS));
        }
        definition = definition.input(input);
    }
    let mut params = Params::new();
    for _ in 0..g.between(0, 8) {
        let key = if g.chance(0.8) {
            (*g.pick(NAMES)).to_owned()
        } else {
            g.string()
        };
        params.insert(key, param_value(g));
    }
    Case { definition, params }
}

fn given(v: Option<&Value>) -> bool {
    v.is_some_and(|v| !v.is_null() && v.as_str() != Some(""))
}

fn check(case: Case) -> u64 {
    let Case { definition, params } = case;
    let declared = |k: &str| definition.inputs.iter().any(|i| i.name == k);
    let reserved = |k: &str| RESERVED_PARAMS.contains(&k);

    let scrubbed = scrub(&definition, params.clone());
    for (k, v) in &params {
        if declared(k) || reserved(k) {
            assert_eq!(scrubbed.get(k), Some(v), "scrub changed or dropped {k:?}");
        }
    }
    assert!(
        scrubbed.keys().all(|k| declared(k) || reserved(k)),
        "scrub kept an undeclared param: {scrubbed:?}"
    );
    assert!(scrubbed.len() <= params.len());

    if let Ok(Some(v)) = requested_version(&scrubbed) {
        let spelled = match scrubbed.get("apiVersion") {
            Some(Value::String(s)) => s.trim().parse::<u32>().ok(),
            Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
            _ => None,
        };
        assert_eq!(spelled, Some(v));
    }

    let result = definition.prepare_params(scrubbed.clone());
    match &result {
        Ok(out) => {
            for input in &definition.inputs {
                if input.required || input.default.is_some() {
                    assert!(
                        out.contains_key(&input.name),
                        "{} missing from {out:?}",
                        input.name
                    );
                }
            }
            for (k, v) in out {
                assert!(
                    declared(k) || scrubbed.contains_key(k),
                    "prepare added {k:?}"
                );
                if !declared(k) {
                    assert_eq!(scrubbed.get(k), Some(v), "prepare changed undeclared {k:?}");
                }
            }
        }
        Err(e) => match e.kind {
            ErrorKind::MissingParam => {
                let name = e
                    .message
                    .strip_suffix(" is a required parameter for this action")
                    .unwrap_or_else(|| panic!("bad missing-param message {:?}", e.message));
                let culprit = definition
                    .inputs
                    .iter()
                    .find(|i| i.name == name && i.required && i.default.is_none());
                assert!(
                    culprit.is_some(),
                    "{name:?} is not a required input without default"
                );
                // Missing from what was sent, or blanked by an earlier input's formatter.
                let blanked = definition
                    .inputs
                    .iter()
                    .any(|i| i.name == name && i.formatter.is_some());
                assert!(!given(scrubbed.get(name)) || blanked, "{name:?} was given");
            }
            ErrorKind::InvalidParam => {
                assert!(e.message.starts_with("fuzz: "), "{:?}", e.message);
                assert!(definition.inputs.iter().any(|i| i.validator.is_some()));
            }
            other => panic!("unexpected error kind {other:?}: {e}"),
        },
    }
    let always_ok = definition
        .inputs
        .iter()
        .all(|i| i.validator.is_none() && (!i.required || i.default.is_some()));
    if always_ok {
        assert!(result.is_ok(), "{result:?}");
    }
    1
}

#[test]
fn fuzz_params_pipeline() {
    run("params", 20_000, generate, check);
}
