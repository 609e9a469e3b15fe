//! The Rust test guests on real Xen 4.17: the differential reference for Oxen.
//!
//! The guests and their judge live in `oxen_tests::guests`; `guests_oxen.rs` runs the same
//! guests on Oxen with the same verdict.

use oxen_tests::guests::{
    BENCH, CRASH_NO_TRAPS, CRASH_NO_TRAPS_ANNOUNCE, EXCEPTIONS, EXCEPTIONS_FAILSAFE,
    FAILSAFE_XEN_OPTIONS, Guest, HELLO, HYPERCALLS, bench_results, check_verdict, failures,
    run_guest,
};
use std::time::Duration;

use oxen_tests::{Boot, Exit, Outcome, xen};

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
