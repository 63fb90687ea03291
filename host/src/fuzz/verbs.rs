//! The websocket verb decoder (`servers::actionhero::verbs::Verb::parse`).
//!
//! Generated verb-shaped objects (every event, fields of every JSON type), arbitrary JSON
//! values, and JSON decoded from mutated frames. Besides not panicking, the decoded
//! verb follows the documented rules: non-objects and non-string events are `Unknown`,
//! `params` is kept only when it is an object, a room is a string or a number as text
//! (else empty), a missing `message` is `null`.

use serde_json::{Map, Value, json};

use super::{Bytes, Gen, run};
use crate::servers::actionhero::verbs::Verb;

const EVENTS: &[&str] = &[
    "action",
    "file",
    "detailsView",
    "documentation",
    "roomAdd",
    "roomLeave",
    "roomView",
    "roomChange",
    "listenToRoom",
    "silenceRoom",
    "say",
    "quit",
    "Action",
    "",
    "dance",
];

#[derive(Debug)]
enum Case {
    Value(Value),
    Frame(Bytes),
}

fn field(g: &mut Gen) -> Value {
    match g.below(4) {
        0 => Value::String(g.string()),
        1 => g.number(),
        _ => g.value(3),
    }
}

fn verb_object(g: &mut Gen) -> Value {
    let mut m = Map::new();
    if g.chance(0.95) {
        let event = if g.chance(0.9) {
            Value::String((*g.pick(EVENTS)).to_owned())
        } else {
            field(g)
        };
        m.insert("event".into(), event);
    }
    for key in ["params", "room", "message", "file"] {
        if g.chance(0.6) {
            let v = if key == "params" && g.chance(0.6) {
                let mut p = Map::new();
                for _ in 0..g.between(0, 5) {
                    p.insert(g.string(), g.value(2));
                }
                Value::Object(p)
            } else {
                field(g)
            };
            m.insert(key.into(), v);
        }
    }
    for _ in 0..g.between(0, 2) {
        m.insert(g.string(), g.value(2));
    }
    Value::Object(m)
}

fn generate(g: &mut Gen) -> Case {
    match g.below(10) {
        0..=6 => Case::Value(verb_object(g)),
        7 => Case::Value(g.value(4)),
        _ => {
            let seed = serde_json::to_vec(&verb_object(g)).unwrap();
            Case::Frame(Bytes(g.mutate(seed)))
        }
    }
}

fn room_of(msg: &Map<String, Value>) -> String {
    match msg.get("room") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn check(case: Case) -> u64 {
    let data = match case {
        Case::Value(v) => v,
        Case::Frame(Bytes(bytes)) => match serde_json::from_slice::<Value>(&bytes) {
            Ok(v) => v,
            Err(_) => return 1,
        },
    };
    let verb = Verb::parse(data.clone());
    let Value::Object(msg) = data else {
        assert_eq!(verb, Verb::Unknown);
        return 1;
    };
    let Some(event) = msg.get("event").and_then(Value::as_str) else {
        assert_eq!(verb, Verb::Unknown, "{msg:?}");
        return 1;
    };
    let room = room_of(&msg);
    match (event, &verb) {
        ("action", Verb::Action(p)) => match msg.get("params") {
            Some(Value::Object(sent)) => assert_eq!(p, sent),
            _ => assert!(p.is_empty()),
        },
        ("file", Verb::File(f)) => assert_eq!(f, &{
            let mut m = Map::new();
            if let Some(v) = msg.get("file") {
                m.insert("room".into(), v.clone());
            }
            room_of(&m)
        }),
        ("detailsView", Verb::DetailsView)
        | ("documentation", Verb::Documentation)
        | ("quit", Verb::Quit) => {}
        ("roomAdd", Verb::RoomAdd(r))
        | ("roomLeave", Verb::RoomLeave(r))
        | ("roomView", Verb::RoomView(r))
        | ("roomChange", Verb::RoomChange(r))
        | ("listenToRoom", Verb::ListenToRoom(r))
        | ("silenceRoom", Verb::SilenceRoom(r)) => assert_eq!(r, &room),
        ("say", Verb::Say { room: r, message }) => {
            assert_eq!(r, &room);
            assert_eq!(message, msg.get("message").unwrap_or(&Value::Null));
        }
        (e, Verb::Unknown) => assert!(!EVENTS[..12].contains(&e), "{e} decoded as Unknown"),
        (e, v) => panic!("event {e:?} decoded as {v:?}"),
    }
    1
}

#[test]
fn fuzz_websocket_verbs() {
    // The documented cases still decode (a sanity check of the oracle above).
    assert_eq!(
        Verb::parse(json!({"event": "roomAdd", "room": 7})),
        Verb::RoomAdd("7".into())
    );
    run("verbs", 20_000, generate, check);
}
