//! The Rust test guests on real Xen 4.17: the differential reference for Oxen.
//!
//! `tests/guests/` holds small PV kernels built with `pv-guest-kit` (`cargo xtask build` puts
//! them in `target/oxen/`). Each runs as dom0, prints `PASS: <name>` or `FAIL: <name>: <detail>`
//! per check and `INFO:` lines with values worth recording, then `RESULT: PASS (n checks)` and
//! powers off, or `RESULT: FAIL (k of n failed)` and crashes. Their expected values are what
//! real Xen does, so these tests pin that down; an Oxen test of the same guest runs it with
//! [`run_guest`] on `Boot::hypervisor()` and judges it with the same [`check_verdict`], then
//! expects `DebugExit::Dom0Poweroff` where Xen prints [`xen::DOM0_HALTED`].

use std::time::Duration;

use oxen_tests::{Boot, Exit, Outcome, xen};

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
    let image = oxen_tests::paths::image_dir().join(guest.image);
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

/// A checking guest on Xen: every check passes and dom0 powers off.
fn passes_on_xen(guest: &Guest, options: &str) -> Option<Outcome> {
    if xen::skip_if_missing() {
        return None;
    }
    let out = run_guest(Boot::xen().append(options), guest);
    let checks = check_verdict(&out, guest);
    println!("{}: {checks} checks passed on Xen", guest.image);
    out.assert_exit(Exit::EndMarker(xen::DOM0_HALTED.into()));
    Some(out)
}

/// Xen's dom0 builder accepts the kit's ELF notes and layout (VIRT_BASE 0xffffffff80000000,
/// p_paddr from 0), and the example prints what start_info says.
#[test]
fn hello_runs_on_xen() {
    if xen::skip_if_missing() {
        return;
    }
    let out = run_guest(Boot::xen(), &HELLO);
    out.assert_contains("*** Building a PV Dom0 ***")
        .assert_contains("Loaded kernel: ffffffff80000000->")
        .assert_contains("ENTRY ADDRESS: ffffffff80000000")
        .assert_contains("Hello from a PV guest")
        .assert_contains("magic: xen-3.0-x86_64")
        .assert_contains("cmdline: hello args")
        .assert_exit(Exit::EndMarker(xen::DOM0_HALTED.into()));
    // Dom0's flags: SIF_PRIVILEGED | SIF_INITDOMAIN, and Xen's power-management bits.
    let flags = out.after("flags: ").unwrap_or_default();
    let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16).unwrap_or(0);
    assert_eq!(flags & 3, 3, "dom0's start_info flags: {flags:#x}\n{out}");
}

/// The exceptions guest's checks on Xen (one vCPU, no failsafe test).
#[test]
fn exceptions_pass_on_xen() {
    passes_on_xen(&EXCEPTIONS, "");
}

/// The exceptions guest with a second vCPU, so that the failsafe callback can be provoked.
#[test]
fn exceptions_with_failsafe_pass_on_xen() {
    if let Some(out) = passes_on_xen(&EXCEPTIONS_FAILSAFE, FAILSAFE_XEN_OPTIONS) {
        out.assert_contains("Dom0 has maximum 2 VCPUs")
            .assert_contains("PASS: failsafe: the frame's FS is the selector Xen could not load");
    }
}

/// The hypercalls guest's checks on Xen.
#[test]
fn hypercalls_pass_on_xen() {
    passes_on_xen(&HYPERCALLS, "");
}

/// The benchmark on Xen: its sanity checks pass and it reports the four measurements.
#[test]
fn bench_runs_on_xen() {
    let Some(out) = passes_on_xen(&BENCH, "") else {
        return;
    };
    let results = bench_results(&out);
    for (name, median, min) in &results {
        println!("xen: BENCH {name}: median {median} cycles, min {min}");
    }
    let names: Vec<&str> = results.iter().map(|(name, ..)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "rdtsc",
            "null-hypercall",
            "exception-round-trip",
            "forced-cpuid"
        ],
        "{out}"
    );
}

/// A guest that faults before installing a trap table is crashed by Xen.
#[test]
fn crash_without_trap_table_on_xen() {
    if xen::skip_if_missing() {
        return;
    }
    let out = run_guest(Boot::xen(), &CRASH_NO_TRAPS);
    out.assert_contains(CRASH_NO_TRAPS_ANNOUNCE)
        .assert_contains("d0v0 Unhandled: vec 6, #UD[ffffffff]")
        .assert_contains("Domain 0 (vcpu#0) crashed on cpu#0:")
        .assert_not_contains("RESULT:")
        .assert_exit(Exit::EndMarker(xen::DOM0_CRASHED.into()));
}

fn made_up(transcript: &str) -> Outcome {
    Outcome {
        transcript: transcript.to_owned(),
        exit: Exit::EndMarker(xen::DOM0_HALTED.into()),
        elapsed: Duration::ZERO,
        line_times: Vec::new(),
        qemu_stderr: String::new(),
        qemu_pid: 0,
        command_line: String::new(),
    }
}

const MADE_UP: Guest = Guest {
    image: "made-up",
    args: "",
    min_checks: 2,
};

/// The verdict helpers themselves, on made-up transcripts.
#[test]
fn verdict_parsing() {
    let good = made_up("(XEN) x\nPASS: a\nINFO: b\nPASS: c\nRESULT: PASS (2 checks)\n");
    assert_eq!(check_verdict(&good, &MADE_UP), 2);
    let bad = made_up("PASS: a\nFAIL: b: got 1, expected 2\nRESULT: FAIL (1 of 2 failed)\n");
    assert_eq!(failures(&bad), ["FAIL: b: got 1, expected 2"]);
    let bench = made_up("BENCH rdtsc 62 (min 60, 2000 runs)\nBENCH x 1\n");
    assert_eq!(bench_results(&bench), [("rdtsc".to_owned(), 62, 60)]);
}

/// A failed check fails the verdict, naming it.
#[test]
#[should_panic(expected = "made-up failed 1 check(s):\nFAIL: b: got 1")]
fn verdict_reports_failures() {
    check_verdict(
        &made_up("PASS: a\nFAIL: b: got 1, expected 2\nRESULT: FAIL (1 of 2 failed)\n"),
        &MADE_UP,
    );
}

/// Fewer checks than expected fails the verdict.
#[test]
#[should_panic(expected = "only 1 checks ran, expected at least 2")]
fn verdict_counts_checks() {
    check_verdict(&made_up("PASS: a\nRESULT: PASS (1 checks)\n"), &MADE_UP);
}
