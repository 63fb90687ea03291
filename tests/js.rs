//! Runs the JavaScript compatibility tests (`tests/js/*.test.mjs`: the real npm `faye`
//! client and server, our browser clients, headless Chromium) against the `hero` binary
//! built by this cargo invocation, so `cargo test` is the one test command.

mod support;

use std::process::Command;

#[test]
fn javascript_suite_passes() {
    let dir = support::js_dir();
    let mut cmd = Command::new("node");
    cmd.args(["--test", "--test-concurrency=2", "--test-reporter=spec"])
        .current_dir(&dir)
        .env("HERO_BIN", support::HERO_BIN);
    if let Some(testbed) = option_env!("CARGO_BIN_EXE_hero-testbed") {
        cmd.env("HERO_TESTBED_BIN", testbed);
    }
    let output = cmd.output().expect("node is installed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(output.status.success(), "JavaScript tests failed");
    let passed = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("ℹ pass "))
        .and_then(|n| n.trim().parse::<u32>().ok())
        .unwrap_or(0);
    assert!(passed > 0, "the JavaScript suite ran no test");
}
