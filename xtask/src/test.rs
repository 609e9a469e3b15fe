//! `cargo xtask test`: the project's one test command.
//!
//! Fails fast, cheapest check first: `cargo fmt --check`, clippy on the host (every target)
//! and on the bare-metal target, the bare-metal builds and the boot images (as
//! `cargo xtask build`), then `cargo test --workspace`: the doc tests, then the host unit
//! tests, the harness's own tests and the QEMU integration tests that boot the images just
//! built. Its output ends with cargo's own test summaries.

use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::images::{self, BARE_METAL_CRATES, BARE_METAL_TARGET, Profile};
use crate::{cargo, describe, run_checked};

/// Runs every check, then the tests with `cargo_test_args` passed to `cargo test`.
///
/// # Errors
/// A check fails (its output is on the terminal).
pub fn test(cargo_test_args: &[String]) -> Result<ExitCode> {
    step("cargo fmt --check");
    run_checked(
        cargo().args(["fmt", "--all", "--", "--check"]),
        "formatting check",
    )?;

    step("clippy (host)");
    run_checked(
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
        "clippy on the host",
    )?;

    step("clippy (bare metal)");
    let mut clippy = cargo();
    clippy.args(["clippy", "--target", BARE_METAL_TARGET]);
    for krate in BARE_METAL_CRATES {
        clippy.args(["--package", krate]);
    }
    clippy.args(["--", "-D", "warnings"]);
    run_checked(&mut clippy, "clippy on the bare-metal target")?;

    step("bare-metal builds");
    let mut build = cargo();
    build.args(["build", "--release", "--target", BARE_METAL_TARGET]);
    for krate in BARE_METAL_CRATES {
        build.args(["--package", krate]);
    }
    run_checked(&mut build, "the bare-metal build")?;

    step("images (cargo xtask build)");
    images::build(Profile::Release)?;

    // Doc tests first, so that the output ends with the summaries of the unit and QEMU
    // tests rather than with a row of empty doc-test summaries.
    step("cargo test --workspace --doc");
    let mut doc = cargo();
    doc.args(["test", "--workspace", "--no-fail-fast", "--doc"]);
    doc.args(cargo_test_args);
    run_checked(&mut doc, "the doc tests")?;

    step("cargo test --workspace (unit tests, harness tests, QEMU integration tests)");
    let mut test = cargo();
    test.args([
        "test",
        "--workspace",
        "--no-fail-fast",
        "--lib",
        "--bins",
        "--tests",
    ]);
    test.args(cargo_test_args);
    let status = test.status()?;
    if !status.success() {
        bail!("`{}` failed ({status})", describe(&test));
    }
    Ok(ExitCode::SUCCESS)
}

/// Announces a step on stderr.
fn step(name: &str) {
    eprintln!("xtask test: {name}");
}
