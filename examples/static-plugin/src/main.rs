//! A custom `hero` binary: the host plus statically linked plugins.

/// The plugin packages this binary links, by name. Each must also be referenced in
/// `main`; one that is not registers nothing, and start-up warns about it.
const PLUGINS: [&str; 3] = ["static-plugin", "hero-plugins", "dynamic-plugin"];

fn main() -> std::process::ExitCode {
    // Reference every plugin crate, or the linker drops it with its registrations.
    static_plugin::link();
    hero_plugins::link();
    std::hint::black_box(dynamic_plugin::Greet);
    for package in static_plugin::unregistered(&PLUGINS) {
        eprintln!(
            "warning: plugin crate {package} registered no action: reference an item of it \
             from main (e.g. `std::hint::black_box(...)`), or the linker drops it"
        );
    }
    hero::cli::main()
}
