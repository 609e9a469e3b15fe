//! The Rust test guests on Oxen, judged exactly as on real Xen 4.17 (`guests_xen.rs`): the same
//! checks with the same expected values, and dom0's shutdown reason as QEMU's exit status.

use oxen_tests::guests::{
    BENCH, CRASH_NO_TRAPS, CRASH_NO_TRAPS_ANNOUNCE, EXCEPTIONS, Guest, HELLO, HYPERCALLS,
    bench_results, check_verdict, run_guest,
};
use oxen_tests::{Boot, DebugExit, Outcome};

/// dom0's memory for the guests: small, so building it is quick.
const OPTIONS: &str = "dom0_mem=32M";

fn oxen() -> Boot {
    Boot::hypervisor().append(OPTIONS)
}

/// A checking guest on Oxen: every check passes and dom0 powers off.
fn passes_on_oxen(guest: &Guest) -> Outcome {
    let out = run_guest(oxen(), guest);
    let checks = check_verdict(&out, guest);
    println!("{}: {checks} checks passed on Oxen", guest.image);
    out.assert_exit(DebugExit::Dom0Poweroff);
    out
}

#[test]
fn hello_runs_on_oxen() {
    let out = run_guest(oxen(), &HELLO);
    out.assert_contains("Hello from a PV guest")
        .assert_contains("magic: xen-3.0-x86_64")
        .assert_contains("cmdline: hello args")
        .assert_exit(DebugExit::Dom0Poweroff);
    let flags = out.after("flags: ").unwrap_or_default();
    let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16).unwrap_or(0);
    assert_eq!(flags & 3, 3, "dom0's start_info flags: {flags:#x}\n{out}");
}

#[test]
fn exceptions_pass_on_oxen() {
    passes_on_oxen(&EXCEPTIONS);
}

#[test]
fn hypercalls_pass_on_oxen() {
    passes_on_oxen(&HYPERCALLS);
}

#[test]
fn bench_runs_on_oxen() {
    let out = passes_on_oxen(&BENCH);
    let names: Vec<String> = bench_results(&out).into_iter().map(|(n, ..)| n).collect();
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

/// A guest that faults before installing a trap table: Oxen crashes the domain, says why with
/// a register dump, and ends with dom0's crash code; the hypervisor itself does not fault.
#[test]
fn crash_without_trap_table_on_oxen() {
    let out = run_guest(oxen(), &CRASH_NO_TRAPS);
    out.assert_contains(CRASH_NO_TRAPS_ANNOUNCE)
        .assert_contains(
            "Domain 0 crashed: an exception or event arrived with no guest handler registered",
        )
        .assert_contains("RIP: e033:")
        .assert_contains("vector 6")
        .assert_not_contains("FATAL")
        .assert_not_contains("RESULT:")
        .assert_exit(DebugExit::Dom0Crash);
}

/// With `mmu_audit`, the frame table's invariants hold when the hypercalls guest (GDTs,
/// mappings, batches, pins) shuts down, and tearing dom0 down gives back every frame it had.
#[test]
fn hypercalls_leave_no_frame_behind() {
    let out = run_guest(
        Boot::hypervisor().append("dom0_mem=32M mmu_audit"),
        &HYPERCALLS,
    );
    out.assert_contains("mmu_audit (at shutdown): OK")
        .assert_contains("0 leaked")
        .assert_contains("mmu_audit (after teardown): OK, no frame leaked")
        .assert_not_contains("FATAL");
}
