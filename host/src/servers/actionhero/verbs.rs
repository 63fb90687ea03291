//! The verbs a connection sends on its channel (PROTOCOL 2.2), parsed once into
//! `Verb` (as mini-redis parses a frame into a `Command`), and the shapes of their
//! answers. The server applies a verb in `WebSocketServer::apply`.

use plugin_api::{Params, Value};
use serde_json::Map;

use crate::rooms::RoomError;

/// The reply to an unknown verb.
pub const VERB_NOT_FOUND: &str = "verb not found or not allowed";

/// One message from a connection's owner.
#[derive(Debug, PartialEq)]
pub(crate) enum Verb {
    /// Run an action with these params (merged into the sticky ones).
    Action(Params),
    /// Send a public file.
    File(String),
    /// The connection's details.
    DetailsView,
    /// The actions' documentation.
    Documentation,
    /// Join a room.
    RoomAdd(String),
    /// Leave a room.
    RoomLeave(String),
    /// A room's members (members only).
    RoomView(String),
    /// Leave every room, join this one (actionhero 8).
    RoomChange(String),
    /// Hear a room without joining it (actionhero 8).
    ListenToRoom(String),
    /// Stop hearing a room (actionhero 8).
    SilenceRoom(String),
    /// Say `message` in `room`.
    Say { room: String, message: Value },
    /// Close the connection.
    Quit,
    /// Anything else: answered `verb not found or not allowed`.
    Unknown,
}

/// A string field, or a number as text; empty if absent (the rooms answer "a room is
/// required" for an empty name).
fn text(msg: &Map<String, Value>, key: &str) -> String {
    match msg.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

impl Verb {
    /// Parses the `data` of a publish on a connection channel.
    pub(crate) fn parse(data: Value) -> Self {
        let Value::Object(mut msg) = data else {
            return Verb::Unknown;
        };
        let room = || text(&msg, "room");
        match msg.get("event").and_then(Value::as_str).unwrap_or_default() {
            "action" => Verb::Action(match msg.remove("params") {
                Some(Value::Object(p)) => p,
                _ => Params::new(),
            }),
            "file" => Verb::File(text(&msg, "file")),
            "detailsView" => Verb::DetailsView,
            "documentation" => Verb::Documentation,
            "roomAdd" => Verb::RoomAdd(room()),
            "roomLeave" => Verb::RoomLeave(room()),
            "roomView" => Verb::RoomView(room()),
            "roomChange" => Verb::RoomChange(room()),
            "listenToRoom" => Verb::ListenToRoom(room()),
            "silenceRoom" => Verb::SilenceRoom(room()),
            "say" => {
                let room = room();
                Verb::Say {
                    room,
                    message: msg.remove("message").unwrap_or(Value::Null),
                }
            }
            "quit" => Verb::Quit,
            _ => Verb::Unknown,
        }
    }
}

/// `{"status": "OK", "data": data}`.
pub(crate) fn ok_data(data: Value) -> Map<String, Value> {
    let mut r = Map::new();
    r.insert("status".into(), "OK".into());
    r.insert("data".into(), data);
    r
}

/// The answer to an unknown verb.
pub(crate) fn verb_not_found() -> Map<String, Value> {
    let mut r = Map::new();
    r.insert("status".into(), VERB_NOT_FOUND.into());
    r.insert("data".into(), Value::Null);
    r
}

/// The answer to a room verb: `OK`/`true`, or the error's text/`false`.
pub(crate) fn room_status(result: Result<(), RoomError>) -> Map<String, Value> {
    match result {
        Ok(()) => ok_data(Value::Bool(true)),
        Err(err) => {
            let mut r = Map::new();
            r.insert("status".into(), err.to_string().into());
            r.insert("data".into(), Value::Bool(false));
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_verb_parses() {
        let cases = [
            (
                json!({"event": "action", "params": {"action": "x", "n": 1}}),
                Verb::Action(
                    json!({"action": "x", "n": 1})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                ),
            ),
            (json!({"event": "action"}), Verb::Action(Params::new())),
            (
                json!({"event": "action", "params": "nope"}),
                Verb::Action(Params::new()),
            ),
            (
                json!({"event": "file", "file": "a.html"}),
                Verb::File("a.html".into()),
            ),
            (json!({"event": "detailsView"}), Verb::DetailsView),
            (json!({"event": "documentation"}), Verb::Documentation),
            (
                json!({"event": "roomAdd", "room": "r"}),
                Verb::RoomAdd("r".into()),
            ),
            (
                json!({"event": "roomAdd", "room": 7}),
                Verb::RoomAdd("7".into()),
            ),
            (json!({"event": "roomAdd"}), Verb::RoomAdd(String::new())),
            (
                json!({"event": "roomLeave", "room": "r"}),
                Verb::RoomLeave("r".into()),
            ),
            (
                json!({"event": "roomView", "room": "r"}),
                Verb::RoomView("r".into()),
            ),
            (
                json!({"event": "roomChange", "room": "r"}),
                Verb::RoomChange("r".into()),
            ),
            (
                json!({"event": "listenToRoom", "room": "r"}),
                Verb::ListenToRoom("r".into()),
            ),
            (
                json!({"event": "silenceRoom", "room": "r"}),
                Verb::SilenceRoom("r".into()),
            ),
            (
                json!({"event": "say", "room": "r", "message": {"a": 1}}),
                Verb::Say {
                    room: "r".into(),
                    message: json!({"a": 1}),
                },
            ),
            (
                json!({"event": "say", "room": "r"}),
                Verb::Say {
                    room: "r".into(),
                    message: Value::Null,
                },
            ),
            (json!({"event": "quit"}), Verb::Quit),
            (json!({"event": "dance"}), Verb::Unknown),
            (json!({"room": "r"}), Verb::Unknown),
            (json!("action"), Verb::Unknown),
            (Value::Null, Verb::Unknown),
        ];
        for (data, want) in cases {
            assert_eq!(Verb::parse(data.clone()), want, "{data}");
        }
    }

    #[test]
    fn answers() {
        assert_eq!(
            Value::Object(room_status(Err(RoomError::NotMember))),
            json!({"status": "connection not in this room", "data": false})
        );
        assert_eq!(
            Value::Object(room_status(Ok(()))),
            json!({"status": "OK", "data": true})
        );
        assert_eq!(
            Value::Object(verb_not_found()),
            json!({"status": VERB_NOT_FOUND, "data": null})
        );
    }
}
