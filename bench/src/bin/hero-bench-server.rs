//! `hero` with the benchmark's test plugin linked statically (the static HTTP case),
//! with `hero`'s allocator, so the two builds differ only in how the plugin is linked.

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    // Reference the plugin crate so the linker keeps its registrations.
    std::hint::black_box(hero_test_plugin::Ping);
    hero::cli::main()
}
