//! The action trait, its type-erased handler, and static registration.

use std::future::Future;
use std::sync::Arc;

use serde_json::Value;

use crate::{ActionDefinition, ActionError, BoxFuture, Context};

/// The result of an action: a JSON object merged into the response, or an error.
pub type ActionResult = Result<Value, ActionError>;

/// An action: a named, versioned unit of application logic.
///
/// Implement it on a (usually unit) struct and register it with
/// [`register_action!`](crate::register_action). `run` may be written as an `async fn`.
pub trait Action: Send + Sync + 'static {
    /// What the action declares: name, version, inputs, documentation.
    fn definition(&self) -> ActionDefinition;

    /// Runs the action with prepared params. The returned object's fields are merged
    /// into the response; a non-object value is returned under `data`.
    fn run(&self, ctx: Context) -> impl Future<Output = ActionResult> + Send;
}

/// Object-safe form of [`Action`], so handlers of different types share a registry.
trait ErasedAction: Send + Sync {
    fn run_boxed(self: Arc<Self>, ctx: Context) -> BoxFuture<'static, ActionResult>;
}

impl<A: Action> ErasedAction for A {
    fn run_boxed(self: Arc<Self>, ctx: Context) -> BoxFuture<'static, ActionResult> {
        Box::pin(async move { self.run(ctx).await })
    }
}

/// An action with its definition computed once: what the host (or the dynamic shim)
/// stores and calls.
#[derive(Clone)]
pub struct ActionHandler {
    definition: Arc<ActionDefinition>,
    action: Arc<dyn ErasedAction>,
}

impl std::fmt::Debug for ActionHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActionHandler")
            .field("name", &self.definition.name)
            .field("version", &self.definition.version)
            .finish()
    }
}

impl ActionHandler {
    /// Wraps an action.
    pub fn new<A: Action>(action: A) -> Self {
        Self {
            definition: Arc::new(action.definition()),
            action: Arc::new(action),
        }
    }

    /// The action's definition.
    pub fn definition(&self) -> &ActionDefinition {
        &self.definition
    }

    /// Prepares the params (defaults, formatters, validators, required check) and runs
    /// the action. The params must already be scrubbed of undeclared names.
    pub fn invoke(&self, ctx: Context) -> BoxFuture<'static, ActionResult> {
        let definition = Arc::clone(&self.definition);
        let action = Arc::clone(&self.action);
        Box::pin(async move {
            let (ctx, params) = ctx.take_params();
            let params = definition.prepare_params(params)?;
            action.run_boxed(ctx.with_params(params)).await
        })
    }
}

/// One statically registered action, collected by `inventory`.
#[derive(Debug)]
pub struct Registration {
    package: &'static str,
    make: fn() -> ActionHandler,
}

impl Registration {
    /// A registration by the package `package`; use
    /// [`register_action!`](crate::register_action) instead.
    pub const fn new(package: &'static str, make: fn() -> ActionHandler) -> Self {
        Self { package, make }
    }

    /// The Cargo package that registered the action.
    pub fn package(&self) -> &'static str {
        self.package
    }

    /// Builds the handler.
    pub fn handler(&self) -> ActionHandler {
        (self.make)()
    }
}

inventory::collect!(Registration);

/// Every action registered with [`register_action!`](crate::register_action) in the
/// crates linked into this binary (or, inside a dynamic plugin, into that library).
pub fn registered_actions() -> impl Iterator<Item = ActionHandler> {
    inventory::iter::<Registration>
        .into_iter()
        .map(Registration::handler)
}

/// The Cargo packages that registered at least one action in this binary.
///
/// A plugin crate the binary depends on but never references is dropped by the
/// linker with its registrations: a binary can name the plugins it means to link
/// and warn about those missing here.
pub fn registered_packages() -> std::collections::BTreeSet<&'static str> {
    inventory::iter::<Registration>
        .into_iter()
        .map(Registration::package)
        .collect()
}

/// Registers actions so the host finds them at start-up.
///
/// ```
/// use plugin_api::{Action, ActionDefinition, ActionResult, Context, json};
///
/// struct Ping;
///
/// impl Action for Ping {
///     fn definition(&self) -> ActionDefinition {
///         ActionDefinition::new("ping").description("Answers pong")
///     }
///     async fn run(&self, _ctx: Context) -> ActionResult {
///         Ok(json!({ "pong": true }))
///     }
/// }
///
/// plugin_api::register_action!(Ping);
/// # fn main() {
/// assert!(plugin_api::registered_actions().any(|a| a.definition().name == "ping"));
/// assert!(plugin_api::registered_packages().contains("plugin-api"));
/// # }
/// ```
#[macro_export]
macro_rules! register_action {
    ($($action:expr),* $(,)?) => {
        $(
            $crate::inventory::submit! {
                $crate::Registration::new(::core::env!("CARGO_PKG_NAME"), || {
                    $crate::ActionHandler::new($action)
                })
            }
        )+
    };
}
