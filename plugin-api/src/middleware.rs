//! Middleware: code a plugin runs around actions, connections and chat (actionhero's
//! action, connection and chat middleware).
//!
//! Three traits in the style of [`Action`](crate::Action), each with a
//! [`MiddlewareDefinition`] (name, priority, `global`) and async hooks with no-op
//! defaults, so an author writes only the hooks it needs. Each is boxed into a
//! type-erased handler ([`MiddlewareHandler`]) that takes its context by value and gives
//! it back, so the host (or the dynamic shim) can keep using it after a hook ran. A
//! hook's context carries the same host services as an action's [`Context`](crate::Context),
//! so the same source runs linked in or loaded from a library.
//!
//! Registration: [`register_middleware!`](crate::register_middleware) (static, through
//! `inventory`), or the `middleware: [...]` list of [`export_plugin!`](crate::export_plugin),
//! which registers statically and exports from a `cdylib` alike.
//!
//! # Semantics (what the host guarantees)
//!
//! - **Action middleware** runs in the one processor every transport uses. The chain of
//!   an action is every `global` middleware plus those its definition names
//!   ([`ActionDefinition::middleware`](crate::ActionDefinition::middleware)), each once,
//!   sorted by priority (lower first), then by name. Pre-processors run after the
//!   action is found and its connection type checked, before the params are scrubbed
//!   (as in actionhero, they see every param the client sent); the first that fails
//!   answers the call: the action and the later pre-processors do not run, nor do the
//!   post-processors (actionhero completes the action at once). Post-processors run in
//!   the same order after the action, with its result **or its error** (unlike
//!   actionhero, which skips them when the action throws), and may rewrite it; one that
//!   fails ends the chain with its error. A panic in any hook is an internal error for
//!   the client, logged with the middleware's name. An action naming a middleware that
//!   is not registered fails closed with an internal error.
//! - **Connection middleware** (`create`/`destroy`; actionhero's
//!   `connections.createCallbacks`/`destroyCallbacks`) runs once per connection, on the
//!   node that owns it, in priority order: for a websocket connection when it is set up
//!   (before the client learns its id, so attributes set in `create` are there for its
//!   first verb) and when it goes away (after it left its rooms); for an HTTP request
//!   (a `web` connection lives for one request, as in actionhero) around that request's
//!   action call. A failing or panicking hook is logged; the others still run.
//! - **Chat middleware** (actionhero's `chatRoom.addMiddleware`): `join` and `leave` run
//!   before the room store changes and may refuse with the error the client reads;
//!   `say` is actionhero's `onSayReceive`: once per message, before it fans out, and it
//!   may rewrite the message or refuse it. actionhero's per-recipient `say` has no
//!   counterpart: a message fans out as one publish whatever the number of members. A
//!   connection leaving because it goes away, or because a room changed, runs `leave`
//!   too, but cannot be kept in.

use std::future::Future;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::context::{Cache, Rooms};
use crate::{
    ActionError, ActionResult, BoxFuture, ConnectionInfo, HostServices, Params, ServiceError,
    ServiceResult,
};

/// The priority a middleware gets unless it sets one (actionhero's
/// `defaultMiddlewarePriority`).
pub const DEFAULT_PRIORITY: i32 = 100;

fn default_priority() -> i32 {
    DEFAULT_PRIORITY
}

/// What a middleware declares: its unique name, its priority (lower runs first), and
/// whether it applies to every action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MiddlewareDefinition {
    /// Unique name among middleware of its kind; actions name action middleware by it.
    pub name: String,
    /// Order among middleware of its kind: lower first, ties by name.
    #[serde(default = "default_priority")]
    pub priority: i32,
    /// Action middleware only: runs for every action, not just those naming it.
    /// (Connection and chat middleware always apply to everything.)
    #[serde(default)]
    pub global: bool,
}

impl MiddlewareDefinition {
    /// A middleware of [`DEFAULT_PRIORITY`], not global.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            priority: DEFAULT_PRIORITY,
            global: false,
        }
    }

    /// Sets the priority (lower runs first).
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Makes an action middleware apply to every action.
    pub fn global(mut self, global: bool) -> Self {
        self.global = global;
        self
    }
}

/// The three kinds of middleware.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MiddlewareKind {
    /// [`ActionMiddleware`].
    Action,
    /// [`ConnectionMiddleware`].
    Connection,
    /// [`ChatMiddleware`].
    Chat,
}

impl std::fmt::Display for MiddlewareKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MiddlewareKind::Action => "action",
            MiddlewareKind::Connection => "connection",
            MiddlewareKind::Chat => "chat",
        })
    }
}

/// Sets `key` on the connection through the host and in `connection`. A `web`
/// connection lives for one request: the host keeps nothing of it, so the attribute
/// lives in this request's view alone.
async fn set_attribute(
    services: &dyn HostServices,
    connection: &mut ConnectionInfo,
    key: &str,
    value: Value,
) -> ServiceResult<()> {
    // A `web` connection lives for one request: its attributes are this view alone, and
    // asking the host (which may have to ask Redis) would only be told so.
    if connection.kind != "web" {
        match services
            .set_attribute(&connection.id, key, value.clone())
            .await
        {
            Ok(()) => {}
            Err(ServiceError::NoSuchConnection) if connection.kind == "web" => {}
            Err(err) => return Err(err),
        }
    }
    connection.attributes.insert(key.to_owned(), value);
    Ok(())
}

/// What an action pre-processor sees and may change: the action's name, the params
/// (before scrubbing), and the connection.
pub struct PreContext {
    action: String,
    params: Params,
    connection: ConnectionInfo,
    services: Arc<dyn HostServices>,
}

impl std::fmt::Debug for PreContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreContext")
            .field("action", &self.action)
            .field("params", &self.params)
            .field("connection", &self.connection)
            .finish_non_exhaustive()
    }
}

impl PreContext {
    /// Builds a context; the host (or the dynamic shim) calls this, not middleware.
    pub fn new(
        action: impl Into<String>,
        params: Params,
        connection: ConnectionInfo,
        services: Arc<dyn HostServices>,
    ) -> Self {
        Self {
            action: action.into(),
            params,
            connection,
            services,
        }
    }

    /// The action about to run.
    pub fn action(&self) -> &str {
        &self.action
    }

    /// Every param the client sent (not yet scrubbed of undeclared ones).
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The params, to change: the action sees what is left (after scrubbing).
    pub fn params_mut(&mut self) -> &mut Params {
        &mut self.params
    }

    /// One param.
    pub fn param(&self, name: &str) -> Option<&Value> {
        self.params.get(name)
    }

    /// The calling connection (with the attributes set so far).
    pub fn connection(&self) -> &ConnectionInfo {
        &self.connection
    }

    /// Sets an attribute on the calling connection; the action sees it in
    /// [`ConnectionInfo::attributes`].
    ///
    /// # Errors
    ///
    /// When the connection is gone or the host cannot store it.
    pub async fn set(&mut self, key: &str, value: impl Into<Value>) -> ServiceResult<()> {
        set_attribute(
            self.services.as_ref(),
            &mut self.connection,
            key,
            value.into(),
        )
        .await
    }

    /// The shared key/value cache.
    pub fn cache(&self) -> Cache<'_> {
        Cache(self.services.as_ref())
    }

    /// Chat rooms.
    pub fn rooms(&self) -> Rooms<'_> {
        Rooms(self.services.as_ref())
    }

    /// The raw host services.
    pub fn services(&self) -> &Arc<dyn HostServices> {
        &self.services
    }

    /// The params and connection, once the chain ran (for the host).
    pub fn into_parts(self) -> (Params, ConnectionInfo) {
        (self.params, self.connection)
    }
}

/// What an action post-processor sees and may change: the action's result or error.
pub struct PostContext {
    action: String,
    params: Params,
    connection: ConnectionInfo,
    result: ActionResult,
    services: Arc<dyn HostServices>,
}

impl std::fmt::Debug for PostContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostContext")
            .field("action", &self.action)
            .field("result", &self.result)
            .finish_non_exhaustive()
    }
}

impl PostContext {
    /// Builds a context; the host (or the dynamic shim) calls this, not middleware.
    pub fn new(
        action: impl Into<String>,
        params: Params,
        connection: ConnectionInfo,
        result: ActionResult,
        services: Arc<dyn HostServices>,
    ) -> Self {
        Self {
            action: action.into(),
            params,
            connection,
            result,
            services,
        }
    }

    /// The action that ran.
    pub fn action(&self) -> &str {
        &self.action
    }

    /// The params the action was given (scrubbed, before defaults and formatters).
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The calling connection.
    pub fn connection(&self) -> &ConnectionInfo {
        &self.connection
    }

    /// The action's result (or error), as rewritten by earlier post-processors.
    pub fn result(&self) -> &ActionResult {
        &self.result
    }

    /// The result, to change in place.
    pub fn result_mut(&mut self) -> &mut ActionResult {
        &mut self.result
    }

    /// Replaces the result.
    pub fn set_result(&mut self, result: ActionResult) {
        self.result = result;
    }

    /// The shared key/value cache.
    pub fn cache(&self) -> Cache<'_> {
        Cache(self.services.as_ref())
    }

    /// Chat rooms.
    pub fn rooms(&self) -> Rooms<'_> {
        Rooms(self.services.as_ref())
    }

    /// The raw host services.
    pub fn services(&self) -> &Arc<dyn HostServices> {
        &self.services
    }

    /// The result, once the chain ran (for the host).
    pub fn into_result(self) -> ActionResult {
        self.result
    }
}

/// What a connection hook sees: the connection, and host services to act on it.
pub struct ConnectionContext {
    connection: ConnectionInfo,
    services: Arc<dyn HostServices>,
}

impl std::fmt::Debug for ConnectionContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionContext")
            .field("connection", &self.connection)
            .finish_non_exhaustive()
    }
}

impl ConnectionContext {
    /// Builds a context; the host (or the dynamic shim) calls this, not middleware.
    pub fn new(connection: ConnectionInfo, services: Arc<dyn HostServices>) -> Self {
        Self {
            connection,
            services,
        }
    }

    /// The connection being created or destroyed.
    pub fn connection(&self) -> &ConnectionInfo {
        &self.connection
    }

    /// Sets an attribute on the connection (in `create`: seen by its first action).
    ///
    /// # Errors
    ///
    /// When the connection is gone or the host cannot store it.
    pub async fn set(&mut self, key: &str, value: impl Into<Value>) -> ServiceResult<()> {
        set_attribute(
            self.services.as_ref(),
            &mut self.connection,
            key,
            value.into(),
        )
        .await
    }

    /// The shared key/value cache.
    pub fn cache(&self) -> Cache<'_> {
        Cache(self.services.as_ref())
    }

    /// Chat rooms.
    pub fn rooms(&self) -> Rooms<'_> {
        Rooms(self.services.as_ref())
    }

    /// The raw host services.
    pub fn services(&self) -> &Arc<dyn HostServices> {
        &self.services
    }

    /// The connection as the hooks left it (for the host).
    pub fn into_connection(self) -> ConnectionInfo {
        self.connection
    }
}

/// What a chat hook sees: the room, the connection, and for `say` the message.
pub struct ChatContext {
    room: String,
    connection: ConnectionInfo,
    message: Option<Value>,
    services: Arc<dyn HostServices>,
}

impl std::fmt::Debug for ChatContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatContext")
            .field("room", &self.room)
            .field("connection", &self.connection.id)
            .field("message", &self.message)
            .finish_non_exhaustive()
    }
}

impl ChatContext {
    /// Builds a context; the host (or the dynamic shim) calls this, not middleware.
    pub fn new(
        room: impl Into<String>,
        connection: ConnectionInfo,
        message: Option<Value>,
        services: Arc<dyn HostServices>,
    ) -> Self {
        Self {
            room: room.into(),
            connection,
            message,
            services,
        }
    }

    /// The room joined, left or spoken in.
    pub fn room(&self) -> &str {
        &self.room
    }

    /// The connection joining, leaving or speaking.
    pub fn connection(&self) -> &ConnectionInfo {
        &self.connection
    }

    /// The message (`say` only).
    pub fn message(&self) -> Option<&Value> {
        self.message.as_ref()
    }

    /// Replaces the message (`say` only: the room's members receive this one).
    pub fn set_message(&mut self, message: impl Into<Value>) {
        self.message = Some(message.into());
    }

    /// The shared key/value cache.
    pub fn cache(&self) -> Cache<'_> {
        Cache(self.services.as_ref())
    }

    /// Chat rooms (calling `add` or `remove` from a `join` or `leave` hook runs the hooks
    /// again).
    pub fn rooms(&self) -> Rooms<'_> {
        Rooms(self.services.as_ref())
    }

    /// The raw host services.
    pub fn services(&self) -> &Arc<dyn HostServices> {
        &self.services
    }

    /// The message as the hooks left it (for the host).
    pub fn into_message(self) -> Option<Value> {
        self.message
    }
}

/// Action middleware: actionhero's pre- and post-processors.
///
/// ```
/// use plugin_api::middleware::{ActionMiddleware, MiddlewareDefinition, PreContext};
/// use plugin_api::ActionError;
///
/// /// Every action needs an `apiKey`.
/// struct RequireKey;
///
/// impl ActionMiddleware for RequireKey {
///     fn definition(&self) -> MiddlewareDefinition {
///         MiddlewareDefinition::new("requireKey").global(true).priority(10)
///     }
///     async fn pre(&self, ctx: &mut PreContext) -> Result<(), ActionError> {
///         match ctx.param("apiKey") {
///             Some(_) => Ok(()),
///             None => Err(ActionError::new("an apiKey is required")),
///         }
///     }
/// }
///
/// plugin_api::register_middleware!(action(RequireKey));
/// # fn main() {}
/// ```
pub trait ActionMiddleware: Send + Sync + 'static {
    /// Name, priority, `global`.
    fn definition(&self) -> MiddlewareDefinition;

    /// Runs before the action; may change the params, set connection attributes, or
    /// refuse the call with an error (then the action does not run).
    fn pre(&self, ctx: &mut PreContext) -> impl Future<Output = Result<(), ActionError>> + Send {
        let _ = ctx;
        std::future::ready(Ok(()))
    }

    /// Runs after the action; may rewrite its result or error. An error replaces the
    /// result and ends the chain.
    fn post(&self, ctx: &mut PostContext) -> impl Future<Output = Result<(), ActionError>> + Send {
        let _ = ctx;
        std::future::ready(Ok(()))
    }
}

/// Connection middleware: hooks when a connection is created and destroyed.
pub trait ConnectionMiddleware: Send + Sync + 'static {
    /// Name and priority (`global` is ignored: every connection runs it).
    fn definition(&self) -> MiddlewareDefinition;

    /// A connection was created (before its first action). An error is logged.
    fn create(
        &self,
        ctx: &mut ConnectionContext,
    ) -> impl Future<Output = Result<(), ActionError>> + Send {
        let _ = ctx;
        std::future::ready(Ok(()))
    }

    /// A connection is going away (it already left its rooms). An error is logged.
    fn destroy(
        &self,
        ctx: &mut ConnectionContext,
    ) -> impl Future<Output = Result<(), ActionError>> + Send {
        let _ = ctx;
        std::future::ready(Ok(()))
    }
}

/// Chat middleware: hooks on joining, leaving and speaking in rooms.
pub trait ChatMiddleware: Send + Sync + 'static {
    /// Name and priority (`global` is ignored: every room runs it).
    fn definition(&self) -> MiddlewareDefinition;

    /// A connection asks to join a room (it exists and the connection passed its
    /// authorization pattern); an error refuses it with that message.
    fn join(&self, ctx: &mut ChatContext) -> impl Future<Output = Result<(), ActionError>> + Send {
        let _ = ctx;
        std::future::ready(Ok(()))
    }

    /// A connection leaves a room; an error refuses it (unless the connection goes away).
    fn leave(&self, ctx: &mut ChatContext) -> impl Future<Output = Result<(), ActionError>> + Send {
        let _ = ctx;
        std::future::ready(Ok(()))
    }

    /// A member says something (actionhero's `onSayReceive`): may rewrite the message
    /// ([`ChatContext::set_message`]) or refuse it.
    fn say(&self, ctx: &mut ChatContext) -> impl Future<Output = Result<(), ActionError>> + Send {
        let _ = ctx;
        std::future::ready(Ok(()))
    }
}

/// The result of one hook: the context back, and whether it passed.
pub type HookResult<C> = (C, Result<(), ActionError>);

trait ErasedAction: Send + Sync {
    fn pre(self: Arc<Self>, ctx: PreContext) -> BoxFuture<'static, HookResult<PreContext>>;
    fn post(self: Arc<Self>, ctx: PostContext) -> BoxFuture<'static, HookResult<PostContext>>;
}

impl<M: ActionMiddleware> ErasedAction for M {
    fn pre(self: Arc<Self>, mut ctx: PreContext) -> BoxFuture<'static, HookResult<PreContext>> {
        Box::pin(async move {
            let r = ActionMiddleware::pre(&*self, &mut ctx).await;
            (ctx, r)
        })
    }
    fn post(self: Arc<Self>, mut ctx: PostContext) -> BoxFuture<'static, HookResult<PostContext>> {
        Box::pin(async move {
            let r = ActionMiddleware::post(&*self, &mut ctx).await;
            (ctx, r)
        })
    }
}

trait ErasedConnection: Send + Sync {
    fn create(
        self: Arc<Self>,
        ctx: ConnectionContext,
    ) -> BoxFuture<'static, HookResult<ConnectionContext>>;
    fn destroy(
        self: Arc<Self>,
        ctx: ConnectionContext,
    ) -> BoxFuture<'static, HookResult<ConnectionContext>>;
}

impl<M: ConnectionMiddleware> ErasedConnection for M {
    fn create(
        self: Arc<Self>,
        mut ctx: ConnectionContext,
    ) -> BoxFuture<'static, HookResult<ConnectionContext>> {
        Box::pin(async move {
            let r = ConnectionMiddleware::create(&*self, &mut ctx).await;
            (ctx, r)
        })
    }
    fn destroy(
        self: Arc<Self>,
        mut ctx: ConnectionContext,
    ) -> BoxFuture<'static, HookResult<ConnectionContext>> {
        Box::pin(async move {
            let r = ConnectionMiddleware::destroy(&*self, &mut ctx).await;
            (ctx, r)
        })
    }
}

/// Which chat hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatHook {
    /// [`ChatMiddleware::join`].
    Join,
    /// [`ChatMiddleware::leave`].
    Leave,
    /// [`ChatMiddleware::say`].
    Say,
}

trait ErasedChat: Send + Sync {
    fn run(
        self: Arc<Self>,
        hook: ChatHook,
        ctx: ChatContext,
    ) -> BoxFuture<'static, HookResult<ChatContext>>;
}

impl<M: ChatMiddleware> ErasedChat for M {
    fn run(
        self: Arc<Self>,
        hook: ChatHook,
        mut ctx: ChatContext,
    ) -> BoxFuture<'static, HookResult<ChatContext>> {
        Box::pin(async move {
            let r = match hook {
                ChatHook::Join => ChatMiddleware::join(&*self, &mut ctx).await,
                ChatHook::Leave => ChatMiddleware::leave(&*self, &mut ctx).await,
                ChatHook::Say => ChatMiddleware::say(&*self, &mut ctx).await,
            };
            (ctx, r)
        })
    }
}

/// An action middleware with its definition computed once.
#[derive(Clone)]
pub struct ActionMiddlewareHandler {
    definition: Arc<MiddlewareDefinition>,
    inner: Arc<dyn ErasedAction>,
}

impl ActionMiddlewareHandler {
    /// The middleware's definition.
    pub fn definition(&self) -> &MiddlewareDefinition {
        &self.definition
    }

    /// Runs the pre-processor.
    pub fn pre(&self, ctx: PreContext) -> BoxFuture<'static, HookResult<PreContext>> {
        Arc::clone(&self.inner).pre(ctx)
    }

    /// Runs the post-processor.
    pub fn post(&self, ctx: PostContext) -> BoxFuture<'static, HookResult<PostContext>> {
        Arc::clone(&self.inner).post(ctx)
    }
}

/// A connection middleware with its definition computed once.
#[derive(Clone)]
pub struct ConnectionMiddlewareHandler {
    definition: Arc<MiddlewareDefinition>,
    inner: Arc<dyn ErasedConnection>,
}

impl ConnectionMiddlewareHandler {
    /// The middleware's definition.
    pub fn definition(&self) -> &MiddlewareDefinition {
        &self.definition
    }

    /// Runs the `create` hook.
    pub fn create(
        &self,
        ctx: ConnectionContext,
    ) -> BoxFuture<'static, HookResult<ConnectionContext>> {
        Arc::clone(&self.inner).create(ctx)
    }

    /// Runs the `destroy` hook.
    pub fn destroy(
        &self,
        ctx: ConnectionContext,
    ) -> BoxFuture<'static, HookResult<ConnectionContext>> {
        Arc::clone(&self.inner).destroy(ctx)
    }
}

/// A chat middleware with its definition computed once.
#[derive(Clone)]
pub struct ChatMiddlewareHandler {
    definition: Arc<MiddlewareDefinition>,
    inner: Arc<dyn ErasedChat>,
}

impl ChatMiddlewareHandler {
    /// The middleware's definition.
    pub fn definition(&self) -> &MiddlewareDefinition {
        &self.definition
    }

    /// Runs one hook.
    pub fn run(
        &self,
        hook: ChatHook,
        ctx: ChatContext,
    ) -> BoxFuture<'static, HookResult<ChatContext>> {
        Arc::clone(&self.inner).run(hook, ctx)
    }
}

macro_rules! debug_by_definition {
    ($($handler:ty),+) => {
        $(
            impl std::fmt::Debug for $handler {
                fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.debug_struct(stringify!($handler))
                        .field("definition", &self.definition)
                        .finish_non_exhaustive()
                }
            }
        )+
    };
}

debug_by_definition!(
    ActionMiddlewareHandler,
    ConnectionMiddlewareHandler,
    ChatMiddlewareHandler
);

/// One middleware of any kind, type-erased: what registration stores.
#[derive(Clone)]
pub enum MiddlewareHandler {
    /// An [`ActionMiddleware`].
    Action(ActionMiddlewareHandler),
    /// A [`ConnectionMiddleware`].
    Connection(ConnectionMiddlewareHandler),
    /// A [`ChatMiddleware`].
    Chat(ChatMiddlewareHandler),
}

impl std::fmt::Debug for MiddlewareHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiddlewareHandler")
            .field("kind", &self.kind())
            .field("definition", self.definition())
            .finish()
    }
}

impl MiddlewareHandler {
    /// Its kind.
    pub fn kind(&self) -> MiddlewareKind {
        match self {
            MiddlewareHandler::Action(_) => MiddlewareKind::Action,
            MiddlewareHandler::Connection(_) => MiddlewareKind::Connection,
            MiddlewareHandler::Chat(_) => MiddlewareKind::Chat,
        }
    }

    /// Its definition.
    pub fn definition(&self) -> &MiddlewareDefinition {
        match self {
            MiddlewareHandler::Action(h) => h.definition(),
            MiddlewareHandler::Connection(h) => h.definition(),
            MiddlewareHandler::Chat(h) => h.definition(),
        }
    }
}

/// Wraps an action middleware (`action(M)` in [`register_middleware!`](crate::register_middleware)).
pub fn action<M: ActionMiddleware>(middleware: M) -> MiddlewareHandler {
    MiddlewareHandler::Action(ActionMiddlewareHandler {
        definition: Arc::new(middleware.definition()),
        inner: Arc::new(middleware),
    })
}

/// Wraps a connection middleware (`connection(M)` in the macros).
pub fn connection<M: ConnectionMiddleware>(middleware: M) -> MiddlewareHandler {
    MiddlewareHandler::Connection(ConnectionMiddlewareHandler {
        definition: Arc::new(middleware.definition()),
        inner: Arc::new(middleware),
    })
}

/// Wraps a chat middleware (`chat(M)` in the macros).
pub fn chat<M: ChatMiddleware>(middleware: M) -> MiddlewareHandler {
    MiddlewareHandler::Chat(ChatMiddlewareHandler {
        definition: Arc::new(middleware.definition()),
        inner: Arc::new(middleware),
    })
}

/// One statically registered middleware, collected by `inventory`.
#[derive(Debug)]
pub struct MiddlewareRegistration {
    package: &'static str,
    make: fn() -> MiddlewareHandler,
}

impl MiddlewareRegistration {
    /// A registration by the package `package`; use
    /// [`register_middleware!`](crate::register_middleware) instead.
    pub const fn new(package: &'static str, make: fn() -> MiddlewareHandler) -> Self {
        Self { package, make }
    }

    /// The Cargo package that registered it.
    pub fn package(&self) -> &'static str {
        self.package
    }

    /// Builds the handler.
    pub fn handler(&self) -> MiddlewareHandler {
        (self.make)()
    }
}

inventory::collect!(MiddlewareRegistration);

/// Every middleware registered in the crates linked into this binary (or, inside a
/// dynamic plugin, into that library).
pub fn registered_middleware() -> impl Iterator<Item = &'static MiddlewareRegistration> {
    inventory::iter::<MiddlewareRegistration>.into_iter()
}

/// Registers middleware so the host finds it at start-up, each as `kind(value)` with
/// `kind` one of `action`, `connection`, `chat`. Inside a crate that also calls
/// [`export_plugin!`](crate::export_plugin), it is exported from the `cdylib` too.
///
/// ```
/// use plugin_api::middleware::{ChatContext, ChatMiddleware, MiddlewareDefinition};
/// use plugin_api::ActionError;
///
/// struct Polite;
///
/// impl ChatMiddleware for Polite {
///     fn definition(&self) -> MiddlewareDefinition {
///         MiddlewareDefinition::new("polite")
///     }
///     async fn say(&self, ctx: &mut ChatContext) -> Result<(), ActionError> {
///         if let Some(text) = ctx.message().and_then(|m| m.as_str()) {
///             let clean = text.replace("darn", "****");
///             ctx.set_message(clean);
///         }
///         Ok(())
///     }
/// }
///
/// plugin_api::register_middleware!(chat(Polite));
/// # fn main() {
/// assert!(plugin_api::middleware::registered_middleware()
///     .any(|r| r.handler().definition().name == "polite"));
/// # }
/// ```
#[macro_export]
macro_rules! register_middleware {
    ($($kind:ident($middleware:expr)),* $(,)?) => {
        $(
            $crate::inventory::submit! {
                $crate::middleware::MiddlewareRegistration::new(::core::env!("CARGO_PKG_NAME"), || {
                    $crate::middleware::$kind($middleware)
                })
            }
        )*
    };
}
