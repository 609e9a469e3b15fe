//! The independent C guest, on real Xen 4.17 and on Oxen, with the same verdict.
//!
//! `tests/guests/indep-c` is a freestanding C kernel written from `shared/xen-pv-abi.md`
//! alone, with none of Oxen's code (`cargo xtask build` compiles it with the system gcc into
//! `target/oxen/indep-c`). It runs as dom0, prints `PASS: <name>` or `FAIL: <name>: <detail>`
//! for each check of the boot contract, the hypercall page, a few hypercall results and one
//! exception round trip, then `RESULT: PASS (n checks)` and powers off (or
//! `RESULT: FAIL (k of n failed)` and crashes). [`check_indep_c`] judges its transcript
//! whichever hypervisor ran it, so the Oxen side can use the same verdict.

use std::time::Duration;

use oxen_tests::{Boot, DebugExit, Exit, Outcome, guests, xen};

/// The image, in the image directory (`target/oxen/`).
pub fn indep_c() -> std::path::PathBuf {
    oxen_tests::paths::image_dir().join("indep-c")
}

/// The module string after the path; dom0 sees it as its command line.
pub const INDEP_C_ARGS: &str = "indep arg1 arg2";

/// How many checks the kernel makes today: fewer means a check was lost.
pub const INDEP_C_MIN_CHECKS: usize = 45;

const TIMEOUT: Duration = Duration::from_secs(60);

/// Asserts that indep-c ran to the end with every check passed, whatever hypervisor ran it:
/// it greeted, saw [`INDEP_C_ARGS`] as its command line, printed no `FAIL:` line, and ended
/// with `RESULT: PASS (n checks)` where `n` is the number of `PASS:` lines and at least
/// [`INDEP_C_MIN_CHECKS`]. Returns `n`. How the run ended is the caller's to check.
#[track_caller]
pub fn check_indep_c(out: &Outcome) -> usize {
    out.assert_contains("indep-c: hello from a freestanding C dom0")
        .assert_contains(&format!("indep-c: command line: \"{INDEP_C_ARGS}\""))
        .assert_not_contains("FAIL:")
        .assert_contains("RESULT: PASS (");
    let Some(n) = out
        .after("RESULT: PASS (")
        .and_then(|rest| rest.strip_suffix(" checks)"))
        .and_then(|n| n.parse::<usize>().ok())
    else {
        out.fail("cannot read the number of checks from the RESULT line");
    };
    guests::check_pass_count(out, "indep-c", n, INDEP_C_MIN_CHECKS);
    n
}

/// Real Xen accepts the C kernel's ELF notes as dom0 (high-half VIRT_BASE layout), and every
/// check passes: the reference describes what Xen does.
#[test]
fn indep_c_passes_on_xen() {
    if xen::skip_if_missing() {
        return;
    }
    let out = Boot::xen()
        .module(indep_c(), INDEP_C_ARGS)
        .timeout(TIMEOUT)
        .run()
        .unwrap_or_else(|err| panic!("{err}"));
    println!("xen: {} in {:.3} s", out.exit, out.elapsed.as_secs_f64());
    out.assert_contains("*** Building a PV Dom0 ***")
        .assert_contains("Loaded kernel: ffffffff80000000->");
    let checks = check_indep_c(&out);
    println!("indep-c: {checks} checks passed on Xen");
    out.assert_exit(Exit::EndMarker(xen::DOM0_HALTED.into()));
}

/// Oxen runs the same kernel to the same verdict, and the exit status says poweroff.
#[test]
fn indep_c_passes_on_oxen() {
    let out = Boot::hypervisor()
        .append("dom0_mem=32M")
        .module(indep_c(), INDEP_C_ARGS)
        .timeout(TIMEOUT)
        .run()
        .unwrap_or_else(|err| panic!("{err}"));
    println!("oxen: {} in {:.3} s", out.exit, out.elapsed.as_secs_f64());
    let checks = check_indep_c(&out);
    println!("indep-c: {checks} checks passed on Oxen");
    out.assert_exit(DebugExit::Dom0Poweroff);
}
