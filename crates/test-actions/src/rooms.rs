//! Test actions for chat rooms and connection attributes (the websocket tests use them).
//!
//! - `attributeTest`: sets `key` = `value` on the calling connection.
//! - `roomCreateTest`: creates `room` (or changes its pattern) with `auth`, a JSON object.
//! - `roomDeleteTest`: deletes `room`.
//! - `roomMembersTest`: lists the connection ids in `room`.
//! - `roomBroadcastTest`: says `message` in `room` as `from` (default `server`).
//! - `serviceErrorTest`: says something in `room`, passing a host service error (a
//!   missing room) on with `?`, as an action that does not handle it would.

use plugin_api::{
    Action, ActionDefinition, ActionError, ActionResult, Context, Input, Params, Value, json,
};

fn required_text(ctx: &Context, name: &str) -> Result<String, ActionError> {
    match ctx.param(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Ok(other.to_string()),
        None => Err(ActionError::missing_param(name)),
    }
}

fn refused(err: plugin_api::ServiceError) -> ActionError {
    ActionError::new(err.to_string())
}

/// Sets an attribute on the calling connection.
#[derive(Debug, Default)]
pub(crate) struct AttributeTest;

impl Action for AttributeTest {
    fn definition(&self) -> ActionDefinition {
        ActionDefinition::new("attributeTest")
            .description("I set an attribute on my connection")
            .input(Input::required("key"))
            .input(Input::required("value"))
    }

    async fn run(&self, ctx: Context) -> ActionResult {
        let key = required_text(&ctx, "key")?;
        let value = ctx.param("value").cloned().unwrap_or(Value::Null);
        ctx.set(&key, value.clone()).await.map_err(refused)?;
        Ok(json!({ "attributeSet": { key: value } }))
    }
}

/// Creates a room, or changes its authorization pattern.
#[derive(Debug, Default)]
pub(crate) struct RoomCreateTest;

impl Action for RoomCreateTest {
    fn definition(&self) -> ActionDefinition {
        ActionDefinition::new("roomCreateTest")
            .description("I create a chat room with an authorization pattern")
            .input(Input::required("room"))
            .input(Input::optional("auth"))
    }

    async fn run(&self, ctx: Context) -> ActionResult {
        let room = required_text(&ctx, "room")?;
        let auth: Params = match ctx.param("auth") {
            None | Some(Value::Null) => Params::new(),
            Some(Value::Object(map)) => map.clone(),
            Some(Value::String(s)) => serde_json_object(s)?,
            Some(_) => return Err(ActionError::new("auth must be a JSON object")),
        };
        ctx.rooms().create(&room, auth).await.map_err(refused)?;
        Ok(json!({ "created": room }))
    }
}

fn serde_json_object(text: &str) -> Result<Params, ActionError> {
    if text.trim().is_empty() {
        return Ok(Params::new());
    }
    match text.parse::<Value>() {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ActionError::new("auth must be a JSON object")),
    }
}

/// Deletes a room.
#[derive(Debug, Default)]
pub(crate) struct RoomDeleteTest;

impl Action for RoomDeleteTest {
    fn definition(&self) -> ActionDefinition {
        ActionDefinition::new("roomDeleteTest")
            .description("I delete a chat room")
            .input(Input::required("room"))
    }

    async fn run(&self, ctx: Context) -> ActionResult {
        let room = required_text(&ctx, "room")?;
        ctx.rooms().delete(&room).await.map_err(refused)?;
        Ok(json!({ "deleted": room }))
    }
}

/// Lists a room's members.
#[derive(Debug, Default)]
pub(crate) struct RoomMembersTest;

impl Action for RoomMembersTest {
    fn definition(&self) -> ActionDefinition {
        ActionDefinition::new("roomMembersTest")
            .description("I list the members of a chat room")
            .input(Input::required("room"))
    }

    async fn run(&self, ctx: Context) -> ActionResult {
        let room = required_text(&ctx, "room")?;
        let members = ctx.rooms().members(&room).await.map_err(refused)?;
        Ok(json!({ "members": members }))
    }
}

/// Says something in a room from the server side.
#[derive(Debug, Default)]
pub(crate) struct RoomBroadcastTest;

impl Action for RoomBroadcastTest {
    fn definition(&self) -> ActionDefinition {
        ActionDefinition::new("roomBroadcastTest")
            .description("I say a message in a chat room")
            .input(Input::required("room"))
            .input(Input::required("message"))
            .input(Input::optional("from").default("server"))
    }

    async fn run(&self, ctx: Context) -> ActionResult {
        let room = required_text(&ctx, "room")?;
        let from = required_text(&ctx, "from")?;
        let message = ctx.param("message").cloned().unwrap_or(Value::Null);
        ctx.rooms()
            .broadcast(&room, &from, message)
            .await
            .map_err(refused)?;
        Ok(json!({ "broadcast": true }))
    }
}

/// Says something in a room without handling the service's error: `?` passes it on.
#[derive(Debug, Default)]
pub(crate) struct ServiceErrorTest;

impl Action for ServiceErrorTest {
    fn definition(&self) -> ActionDefinition {
        ActionDefinition::new("serviceErrorTest")
            .description("I say something in a room and pass a service error on with ?")
            .input(Input::required("room"))
    }

    async fn run(&self, ctx: Context) -> ActionResult {
        let room = required_text(&ctx, "room")?;
        ctx.rooms().broadcast(&room, "server", json!("hi")).await?;
        Ok(json!({ "broadcast": true }))
    }
}

plugin_api::register_action!(
    AttributeTest,
    RoomCreateTest,
    RoomDeleteTest,
    RoomMembersTest,
    RoomBroadcastTest,
    ServiceErrorTest,
);

/// Keeps this module's registrations linked (see the crate's `link`).
#[inline(never)]
pub(crate) fn link() {
    std::hint::black_box(&NAMES);
}

static NAMES: [&str; 6] = [
    "attributeTest",
    "roomCreateTest",
    "roomDeleteTest",
    "roomMembersTest",
    "roomBroadcastTest",
    "serviceErrorTest",
];
