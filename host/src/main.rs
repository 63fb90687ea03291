//! The `hero` binary: the host with the first-party plugins linked in.
//!
//! Everything is in the library (`hero::cli::main`); this file only names the plugin
//! crates so the linker keeps their registrations.

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    // Static plugins register through inventory; naming the crate keeps the linker
    // from dropping it.
    hero_plugins::link();
    hero::cli::main()
}
