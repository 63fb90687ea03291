//! Template: a plugin linked statically into a custom `hero` binary (see `main.rs`).
//!
//! `remember` stores a note in the host's cache and returns the note stored before.

use plugin_api::{Action, ActionDefinition, ActionResult, Context, Input, json};

/// Stores `note` in the cache and returns the previous one.
#[derive(Debug, Default)]
pub struct Remember;

impl Action for Remember {
    fn definition(&self) -> ActionDefinition {
        ActionDefinition::new("remember")
            .description("Stores a note and returns the previous one")
            .input(Input::required("note"))
            .output_example(json!({ "previous": null, "stored": "milk" }))
    }

    async fn run(&self, ctx: Context) -> ActionResult {
        let note = ctx.param("note").cloned().unwrap_or_default();
        let previous = ctx.cache().get("remember:note").await?;
        ctx.cache().set("remember:note", note.clone(), None).await?;
        Ok(json!({ "previous": previous, "stored": note }))
    }
}

plugin_api::export_plugin!(Remember);

/// The packages of `expected` that registered no action in this binary: plugin crates
/// it depends on but never references, which the linker dropped.
pub fn unregistered<'a>(expected: &[&'a str]) -> Vec<&'a str> {
    let registered = plugin_api::registered_packages();
    expected
        .iter()
        .copied()
        .filter(|package| !registered.contains(package))
        .collect()
}

/// Keeps this crate in a binary that names no other item of it: without a reference
/// the linker drops the crate, and its `inventory` registrations with it.
#[inline(never)]
pub fn link() {
    std::hint::black_box(Remember);
}

#[cfg(test)]
mod tests {
    #[test]
    fn packages_that_registered_nothing_are_named() {
        assert_eq!(
            super::unregistered(&["static-plugin", "not-linked"]),
            ["not-linked"]
        );
    }
}
