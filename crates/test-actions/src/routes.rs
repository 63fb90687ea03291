//! HTTP routes test source shared by two builds: linked into `hero-testbed` through this
//! crate, and compiled into the dynamic fixture `tests/fixtures/test-plugin` with
//! `#[path]`, so `tests/routes.rs` proves that the routes an action declares behave
//! alike statically and dynamically. Everything registers with `register_action!`,
//! which `export_plugin!` exports from a `cdylib` as well.
//!
//! Every action is named `rt*` and answers `{"routed": <its name>, "version": <its
//! version>, "params": <the declared params it received>}`:
//!
//! - `rtUser`: `GET /users/:userId(^\d+$)` then `GET /users/:userName` (declaration
//!   order, and a failed regex falling through to the next route);
//! - `rtItem`: only `GET /items/:id(^\d+$)` (a failed regex matches nothing);
//! - `rtList` `GET /things`, `rtCreate` `POST /things`, `rtReplace` `PUT /things/:id`,
//!   `rtUpdate` `PATCH /things/:id`, `rtDelete` `DELETE /things/:id`: one per method;
//! - `rtAny`: `ALL /anything/:x`;
//! - `rtPlain` (no route) and `rtVersioned` v1 and v2 (no route): targets of the config
//!   routes of the tests.

use plugin_api::{
    Action, ActionDefinition, ActionResult, Context, Input, Map, Method, Value, json,
};

/// The params the routed actions declare (path params must be declared to survive).
const INPUTS: [&str; 5] = ["id", "x", "userId", "userName", "name"];

/// An action answering its name and params, with the routes it declares.
#[derive(Debug)]
pub struct RouteEcho {
    /// Action name.
    pub name: &'static str,
    /// Action version.
    pub version: u32,
    /// Declared routes, in order.
    pub routes: &'static [(Method, &'static str)],
}

impl Action for RouteEcho {
    fn definition(&self) -> ActionDefinition {
        let mut def = ActionDefinition::new(self.name)
            .description("I answer my name and params, to test HTTP routes")
            .version(self.version);
        for name in INPUTS {
            def = def.input(Input::optional(name));
        }
        for (method, path) in self.routes {
            def = def.route(*method, *path);
        }
        def
    }

    async fn run(&self, ctx: Context) -> ActionResult {
        // The declared params only: not the reserved ones (`action`, `apiVersion`, ...).
        let params: Map<String, Value> = ctx
            .params()
            .iter()
            .filter(|(name, _)| INPUTS.contains(&name.as_str()))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        Ok(json!({ "routed": self.name, "version": self.version, "params": params }))
    }
}

const fn echo(name: &'static str, routes: &'static [(Method, &'static str)]) -> RouteEcho {
    RouteEcho {
        name,
        version: 1,
        routes,
    }
}

plugin_api::register_action!(
    echo(
        "rtUser",
        &[
            (Method::Get, "/users/:userId(^\\d+$)"),
            (Method::Get, "/users/:userName"),
        ]
    ),
    echo("rtItem", &[(Method::Get, "/items/:id(^\\d+$)")]),
    echo("rtList", &[(Method::Get, "/things")]),
    echo("rtCreate", &[(Method::Post, "/things")]),
    echo("rtReplace", &[(Method::Put, "/things/:id")]),
    echo("rtUpdate", &[(Method::Patch, "/things/:id")]),
    echo("rtDelete", &[(Method::Delete, "/things/:id")]),
    echo("rtAny", &[(Method::All, "/anything/:x")]),
    echo("rtPlain", &[]),
    RouteEcho {
        name: "rtVersioned",
        version: 1,
        routes: &[]
    },
    RouteEcho {
        name: "rtVersioned",
        version: 2,
        routes: &[]
    },
);

/// Keeps these registrations in a binary that names nothing else of this file.
#[allow(dead_code)] // unused where the file is compiled into the dynamic fixture
#[inline(never)]
pub(crate) fn link() {
    std::hint::black_box(echo("rtPlain", &[]));
}
