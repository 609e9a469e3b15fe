//! The Rust test guests on real Xen 4.17: the differential reference for Oxen.
//!
//! The guests and their judge live in `oxen_tests::guests`; `guests_oxen.rs` runs the same
//! guests on Oxen with the same verdict.

use oxen_tests::guests::{
    ADDRESS_SPACE, BENCH, BENCH_MM, BENCH_MM_NAMES, BENCH_NAMES, CRASH_NO_TRAPS,
    CRASH_NO_TRAPS_ANNOUNCE, EXCEPTIONS, EXCEPTIONS_FAILSAFE, FAILSAFE_XEN_OPTIONS, Guest, HELLO,
    HYPERCALLS, MMU_STORM, MMU_STORM_OTHER_SEED, STORM_MIN_REQUESTS, bench_results, check_verdict,
    failures, run_guest, storm_counts,
};
use oxen_tests::guests::{BENCH_EVENTS, BENCH_EVENTS_NAMES, BENCH_EVENTS_OPTIONS};
use oxen_tests::guests::{
    CONSOLE_PROMPT, CONSOLE_TYPED, EVENTS, EVENTS_CONSOLE, TIMERS, VCPUS, VCPUS_XEN_OPTIONS,
};
use std::time::Duration;

use oxen_tests::{Boot, Exit, Outcome, xen};

/// A checking guest on Xen: every check passes and dom0 powers off.
fn passes_on_xen(guest: &Guest, options: &str) -> Option<Outcome> {
    passes_on_xen_boot(guest, Boot::xen().append(options))
}

/// [`passes_on_xen`] with `boot` as it is (say, [`Boot::alone`] for a guest that measures time).
fn passes_on_xen_boot(guest: &Guest, boot: Boot) -> Option<Outcome> {
    if xen::skip_if_missing() {
        return None;
    }
    let out = run_guest(boot, guest);
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

/// The event-channel guest on Xen, dom0 with two vCPUs (vCPU 1 is never started: ports may
/// notify it all the same).
#[test]
fn events_pass_on_xen() {
    if let Some(out) = passes_on_xen(&EVENTS, VCPUS_XEN_OPTIONS) {
        out.assert_contains("Dom0 has maximum 2 VCPUs")
            .assert_contains("INFO: dom0 has 2 vCPU(s)")
            .assert_contains("INFO: alloc_unbound until it failed: 4095 ports");
    }
}

/// The time and timer guest on Xen (one vCPU).
#[test]
fn timers_pass_on_xen() {
    // It measures time: no other boot of this process at the same time.
    passes_on_xen_boot(&TIMERS, Boot::xen().alone());
}

/// The secondary-vCPU guest on Xen, dom0 with two vCPUs.
#[test]
fn vcpus_pass_on_xen() {
    if let Some(out) = passes_on_xen(&VCPUS, VCPUS_XEN_OPTIONS) {
        out.assert_contains("Dom0 has maximum 2 VCPUs")
            .assert_contains("PASS: 10,000 IPI round trips between vCPU 0 and vCPU 1 complete");
    }
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
    assert_eq!(names, BENCH_NAMES, "{out}");
}

/// The benchmark with the memory-management and user-mode paths: nine measurements.
#[test]
fn bench_mm_runs_on_xen() {
    let Some(out) = passes_on_xen(&BENCH_MM, "") else {
        return;
    };
    let results = bench_results(&out);
    for (name, median, min) in &results {
        println!("xen: BENCH {name}: median {median} cycles, min {min}");
    }
    let names: Vec<&str> = results.iter().map(|(name, ..)| name.as_str()).collect();
    let expected: Vec<&str> = BENCH_NAMES.iter().chain(&BENCH_MM_NAMES).copied().collect();
    assert_eq!(names, expected, "{out}");
}

/// The event-channel and scheduling benchmarks of one domain, on dom0 with two vCPUs.
#[test]
fn bench_events_runs_on_xen() {
    let Some(out) = passes_on_xen(&BENCH_EVENTS, BENCH_EVENTS_OPTIONS) else {
        return;
    };
    let results = bench_results(&out);
    for (name, median, min) in &results {
        println!("xen: BENCH {name}: median {median} cycles, min {min}");
    }
    let names: Vec<&str> = results.iter().map(|(name, ..)| name.as_str()).collect();
    let expected: Vec<&str> = BENCH_NAMES
        .iter()
        .chain(&BENCH_EVENTS_NAMES)
        .copied()
        .collect();
    assert_eq!(names, expected, "{out}");
}

/// A fresh address space, 10,000 mappings, Xen's refusals, writable page tables and a
/// user-mode program, on Xen.
#[test]
fn address_space_passes_on_xen() {
    if let Some(out) = passes_on_xen(&ADDRESS_SPACE, "") {
        out.assert_contains("hello from user mode")
            .assert_contains("PASS: every page reads back its frame's contents through the window")
            .assert_contains("PASS: user #PF: error code U|W (6), the U bit set")
            .assert_contains("PASS: syscall frame: CS 0xe033 (RPL 3: from user mode)");
    }
}

/// The storm's verdict and its `STORM` line: enough requests, both outcomes.
fn storm_passes_on_xen(guest: &Guest) {
    let Some(out) = passes_on_xen(guest, "") else {
        return;
    };
    let Some((requests, succeeded, failed)) = storm_counts(&out) else {
        out.fail("no `STORM <n> requests, <k> succeeded, <m> failed` line");
    };
    println!("xen: STORM {requests} requests, {succeeded} succeeded, {failed} failed");
    assert!(requests >= STORM_MIN_REQUESTS, "{requests} requests\n{out}");
    assert_eq!(succeeded + failed, requests, "{out}");
    assert!(succeeded > 0 && failed > 0, "{out}");
    // Xen logs some refusals (`d0v0 Error mfn ...` for foreign owners); dom0 survives them.
    out.assert_not_contains("Domain 0 (vcpu#0) crashed");
}

/// The hostile storm on Xen with the default seed.
#[test]
fn mmu_storm_survives_on_xen() {
    storm_passes_on_xen(&MMU_STORM);
}

/// The hostile storm on Xen with a second seed.
#[test]
fn mmu_storm_other_seed_survives_on_xen() {
    storm_passes_on_xen(&MMU_STORM_OTHER_SEED);
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
    let storm = made_up("INFO: x\nSTORM 100021 requests, 64196 succeeded, 35825 failed\n");
    assert_eq!(storm_counts(&storm), Some((100_021, 64_196, 35_825)));
    assert_eq!(storm_counts(&made_up("STORM broken\n")), None);
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

/// Typed input reaches dom0 on Xen too (Xen gives serial input to dom0 by default).
#[test]
fn console_input_reaches_dom0_on_xen() {
    if xen::skip_if_missing() {
        return;
    }
    let out = run_guest(
        Boot::xen().type_after(CONSOLE_PROMPT, CONSOLE_TYPED.as_bytes()),
        &EVENTS_CONSOLE,
    );
    check_verdict(&out, &EVENTS_CONSOLE);
}
