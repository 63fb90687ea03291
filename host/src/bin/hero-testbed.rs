//! `hero-testbed`: the `hero` host plus the test actions, for the black-box tests.
//! Never ship it: its actions panic and fail on purpose.

fn main() -> std::process::ExitCode {
    hero_plugins::link();
    hero_test_actions::link();
    hero::cli::main()
}
