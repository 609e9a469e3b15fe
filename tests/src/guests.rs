//! The test guests of `tests/guests/` and how to judge them, shared by the Xen and Oxen tests.
//!
//! Each guest is a small PV kernel built with `pv-guest-kit` (`cargo xtask build` puts it in
//! `target/oxen/`). It runs as dom0, prints `PASS: <name>` or `FAIL: <name>: <detail>` per
//! check and `INFO:` lines with values worth recording, then `RESULT: PASS (n checks)` and
//! powers off, or `RESULT: FAIL (k of n failed)` and crashes. Their expected values are what
//! real Xen does; [`check_verdict`] judges a transcript whichever hypervisor produced it.

use std::time::Duration;

use crate::{Boot, Outcome};

/// A test guest: its image in `target/oxen/`, the module string after the path (dom0's command
/// line), and how many checks it makes today (fewer means a check was lost).
#[derive(Clone, Copy, Debug)]
pub struct Guest {
    /// The image's name in `target/oxen/`.
    pub image: &'static str,
    /// Dom0's command line.
    pub args: &'static str,
    /// The least number of checks a complete run makes.
    pub min_checks: usize,
}

/// pv-guest-kit's example: prints a greeting and `start_info` facts, powers off (no checks).
pub const HELLO: Guest = Guest {
    image: "hello",
    args: "hello args",
    min_checks: 0,
};

/// Every exception a PV guest takes, with the frames Xen delivers.
pub const EXCEPTIONS: Guest = Guest {
    image: "exceptions",
    args: "exceptions",
    min_checks: 52,
};

/// [`EXCEPTIONS`] plus the failsafe callback, which needs a second dom0 vCPU: boot the
/// hypervisor with [`FAILSAFE_XEN_OPTIONS`].
pub const EXCEPTIONS_FAILSAFE: Guest = Guest {
    image: "exceptions",
    args: "exceptions failsafe",
    min_checks: 68,
};

/// The hypervisor options [`EXCEPTIONS_FAILSAFE`] needs: dom0 with two vCPUs.
pub const FAILSAFE_XEN_OPTIONS: &str = "dom0_max_vcpus=2";

/// Every hypercall of the first PV domain with its error paths, and the emulated instructions.
pub const HYPERCALLS: Guest = Guest {
    image: "hypercalls",
    args: "hypercalls",
    min_checks: 190,
};

/// TSC cycles of a null hypercall, an exception round trip and a forced-emulation cpuid.
pub const BENCH: Guest = Guest {
    image: "bench",
    args: "bench",
    min_checks: 5,
};

/// Faults with no trap table: the hypervisor crashes the domain (no checks, no verdict).
pub const CRASH_NO_TRAPS: Guest = Guest {
    image: "crash-no-traps",
    args: "crash-no-traps",
    min_checks: 0,
};

/// The line crash-no-traps prints just before its `ud2`.
pub const CRASH_NO_TRAPS_ANNOUNCE: &str = "crash-no-traps: executing ud2 with no trap table";

/// How long a guest may take (Xen boots in about 1 s under TCG; the guests in a few more).
pub const GUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Boots `boot` (Xen or Oxen, with its options) with `guest` as dom0 and returns the outcome.
///
/// # Panics
/// If the image, the hypervisor or QEMU is missing.
pub fn run_guest(boot: Boot, guest: &Guest) -> Outcome {
    let image = crate::paths::image_dir().join(guest.image);
    let out = boot
        .module(&image, guest.args)
        .timeout(GUEST_TIMEOUT)
        .run()
        .unwrap_or_else(|err| panic!("{err}"));
    println!(
        "{} {:?}: {} in {:.3} s",
        guest.image,
        guest.args,
        out.exit,
        out.elapsed.as_secs_f64()
    );
    out
}

/// The `FAIL:` lines of a transcript.
pub fn failures(out: &Outcome) -> Vec<&str> {
    out.lines_matching("FAIL: ")
        .filter(|line| line.starts_with("FAIL: "))
        .collect()
}

/// Asserts that a checking guest ran to the end with every check passed, whatever hypervisor
/// ran it: no `FAIL:` line, a `RESULT: PASS (n checks)` line whose `n` is the number of
/// `PASS:` lines, and `n >= guest.min_checks`. Returns `n`. How the run ended (Xen's end
/// marker, Oxen's exit code) is the caller's to check.
#[track_caller]
pub fn check_verdict(out: &Outcome, guest: &Guest) -> usize {
    let failed = failures(out);
    if !failed.is_empty() {
        out.fail(&format!(
            "{} failed {} check(s):\n{}",
            guest.image,
            failed.len(),
            failed.join("\n")
        ));
    }
    let Some(n) = out
        .lines_matching("RESULT: PASS (")
        .find_map(|line| line.strip_prefix("RESULT: PASS ("))
        .and_then(|rest| rest.strip_suffix(" checks)"))
        .and_then(|n| n.parse::<usize>().ok())
    else {
        out.fail(&format!(
            "{}: no `RESULT: PASS (n checks)` line",
            guest.image
        ));
    };
    let passed = out
        .transcript
        .lines()
        .filter(|line| line.starts_with("PASS: "))
        .count();
    if passed != n {
        out.fail(&format!(
            "RESULT says {n} checks but {passed} PASS lines were printed"
        ));
    }
    if n < guest.min_checks {
        out.fail(&format!(
            "{}: only {n} checks ran, expected at least {}",
            guest.image, guest.min_checks
        ));
    }
    n
}

/// The `BENCH <name> <median> (min <min>, <n> runs)` lines: `(name, median, min)`.
pub fn bench_results(out: &Outcome) -> Vec<(String, u64, u64)> {
    out.lines_matching("BENCH ")
        .filter_map(|line| {
            let mut words = line.strip_prefix("BENCH ")?.split_whitespace();
            let name = words.next()?.to_owned();
            let median = words.next()?.parse().ok()?;
            let min = words
                .next()
                .filter(|w| *w == "(min")
                .and_then(|_| words.next())
                .and_then(|w| w.trim_end_matches(',').parse().ok())?;
            Some((name, median, min))
        })
        .collect()
}
