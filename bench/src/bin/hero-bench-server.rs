//! `hero` with the benchmark's test plugin linked statically (the static HTTP case).

fn main() -> std::process::ExitCode {
    // Reference the plugin crate so the linker keeps its registrations.
    std::hint::black_box(hero_test_plugin::Ping);
    hero::cli::main()
}
