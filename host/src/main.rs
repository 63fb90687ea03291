//! The `hero` binary: the host with the first-party plugins linked in.

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    // Static plugins register through inventory; naming the crate keeps the linker
    // from dropping it.
    hero_plugins::link();
    hero::cli::main()
}
