//! A custom `hero` binary: the host plus statically linked plugins.

fn main() -> std::process::ExitCode {
    // Reference every plugin crate, or the linker drops it with its registrations.
    static_plugin::link();
    hero_plugins::link();
    std::hint::black_box(dynamic_plugin::Greet);
    hero::cli::main()
}
