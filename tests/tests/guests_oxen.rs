//! The Rust test guests on Oxen, judged exactly as on real Xen 4.17 (`guests_xen.rs`): the same
//! checks with the same expected values, and dom0's shutdown reason as QEMU's exit status.

use oxen_tests::guests::{
    ADDRESS_SPACE, BENCH, BENCH_MM, BENCH_MM_NAMES, CONSOLE_PROMPT, CONSOLE_TYPED, CRASH_NO_TRAPS,
    CRASH_NO_TRAPS_ANNOUNCE, EVENTS, EVENTS_CONSOLE, EXCEPTIONS, EXCEPTIONS_FAILSAFE,
    FAILSAFE_XEN_OPTIONS, Guest, HELLO, HYPERCALLS, MMU_STORM, MMU_STORM_OTHER_SEED,
    STORM_MIN_REQUESTS, TIMERS, VCPUS, VCPUS_XEN_OPTIONS, bench_results, check_verdict, run_guest,
    storm_counts,
};
use oxen_tests::guests::{
    BENCH_DOMAINS, BENCH_DOMAINS_NAMES, BENCH_EVENTS, BENCH_EVENTS_NAMES, BENCH_EVENTS_OPTIONS,
    BENCH_NAMES, bench_domains,
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

/// The names of the BENCH lines of `out`, in order.
fn bench_names(out: &Outcome) -> Vec<String> {
    bench_results(out).into_iter().map(|(n, ..)| n).collect()
}

/// The event-channel and scheduling benchmarks of one domain (dom0 with two vCPUs) run and
/// report every measurement (the numbers are `cargo xtask bench`'s business).
#[test]
fn bench_events_runs_on_oxen() {
    let out = run_guest(oxen().append(BENCH_EVENTS_OPTIONS), &BENCH_EVENTS);
    check_verdict(&out, &BENCH_EVENTS);
    out.assert_exit(DebugExit::Dom0Poweroff);
    let expected: Vec<&str> = BENCH_NAMES
        .iter()
        .chain(&BENCH_EVENTS_NAMES)
        .copied()
        .collect();
    assert_eq!(bench_names(&out), expected, "{out}");
}

/// The ping-pong between dom0 and domain 1 runs: domain 1 finds dom0's port, serves every
/// ping and yield, prints its two lines and powers off before dom0 does.
#[test]
fn bench_domains_run_on_oxen() {
    let out = bench_domains(oxen())
        .run()
        .unwrap_or_else(|err| panic!("{err}"));
    check_verdict(&out, &BENCH_DOMAINS);
    out.assert_contains("(d1) bench pong: dom0's port")
        .assert_contains(" events served")
        .assert_contains("d1 shut down: SHUTDOWN_poweroff")
        .assert_exit(DebugExit::Dom0Poweroff);
    let expected: Vec<&str> = BENCH_NAMES
        .iter()
        .chain(&BENCH_DOMAINS_NAMES)
        .copied()
        .collect();
    assert_eq!(bench_names(&out), expected, "{out}");
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

/// The failsafe callback needs a second dom0 vCPU: Oxen boots dom0 with two, as Xen does with
/// `dom0_max_vcpus=2`.
#[test]
fn exceptions_with_failsafe_pass_on_oxen() {
    let out = run_guest(oxen().append(FAILSAFE_XEN_OPTIONS), &EXCEPTIONS_FAILSAFE);
    check_verdict(&out, &EXCEPTIONS_FAILSAFE);
    out.assert_exit(DebugExit::Dom0Poweroff);
}

/// A fresh address space, 10,000 mappings, Xen's refusals, writable page tables and a
/// user-mode program, on Oxen; with `mmu_audit`, nothing leaks.
#[test]
fn address_space_passes_on_oxen() {
    let out = run_guest(
        Boot::hypervisor().append("dom0_mem=32M mmu_audit"),
        &ADDRESS_SPACE,
    );
    check_verdict(&out, &ADDRESS_SPACE);
    out.assert_contains("hello from user mode")
        .assert_contains("mmu_audit (after teardown): OK, no frame leaked")
        .assert_exit(DebugExit::Dom0Poweroff);
}

/// The hostile storm on Oxen with `mmu_audit`: the frame table's invariants hold throughout
/// (audited every 4096 memory hypercalls), and tearing dom0 down leaks nothing.
fn storm_survives_on_oxen(guest: &Guest) {
    let out = run_guest(Boot::hypervisor().append("dom0_mem=32M mmu_audit"), guest);
    check_verdict(&out, guest);
    let Some((requests, succeeded, failed)) = storm_counts(&out) else {
        out.fail("no `STORM <n> requests, <k> succeeded, <m> failed` line");
    };
    println!("oxen: STORM {requests} requests, {succeeded} succeeded, {failed} failed");
    assert!(requests >= STORM_MIN_REQUESTS, "{requests} requests\n{out}");
    assert_eq!(succeeded + failed, requests, "{out}");
    assert!(succeeded > 0 && failed > 0, "{out}");
    out.assert_contains("mmu_audit (periodic): OK")
        .assert_contains("mmu_audit (after teardown): OK, no frame leaked")
        .assert_not_contains("FATAL")
        .assert_exit(DebugExit::Dom0Poweroff);
}

/// The hostile storm on Oxen with the default seed.
#[test]
fn mmu_storm_survives_on_oxen() {
    storm_survives_on_oxen(&MMU_STORM);
}

/// The hostile storm on Oxen with a second seed.
#[test]
fn mmu_storm_other_seed_survives_on_oxen() {
    storm_survives_on_oxen(&MMU_STORM_OTHER_SEED);
}

/// Every event-channel operation a single domain can exercise, with Xen's results, on Oxen.
#[test]
fn events_pass_on_oxen() {
    let out = run_guest(oxen().append(VCPUS_XEN_OPTIONS), &EVENTS);
    check_verdict(&out, &EVENTS);
    out.assert_exit(DebugExit::Dom0Poweroff);
}

/// System time, the wallclock and every timer, measured, on Oxen.
#[test]
fn timers_pass_on_oxen() {
    let out = run_guest(oxen().alone(), &TIMERS);
    check_verdict(&out, &TIMERS);
    out.assert_exit(DebugExit::Dom0Poweroff);
}

/// Secondary vCPUs, IPIs between them, their timers and runstate, on Oxen.
#[test]
fn vcpus_pass_on_oxen() {
    let out = run_guest(oxen().append(VCPUS_XEN_OPTIONS), &VCPUS);
    check_verdict(&out, &VCPUS);
    out.assert_exit(DebugExit::Dom0Poweroff);
}

/// Typed input reaches dom0: `VIRQ_CONSOLE`, then `CONSOLEIO_read` returns the line.
#[test]
fn console_input_reaches_dom0_on_oxen() {
    let out = run_guest(
        oxen().type_after(CONSOLE_PROMPT, CONSOLE_TYPED.as_bytes()),
        &EVENTS_CONSOLE,
    );
    check_verdict(&out, &EVENTS_CONSOLE);
    out.assert_exit(DebugExit::Dom0Poweroff);
}

/// Ctrl-A three times gives the console to the hypervisor's debug keys: 'q' dumps the
/// domains and sends VIRQ_DEBUG, 'h' lists the keys; three more Ctrl-As give it back.
#[test]
fn debug_keys_on_oxen() {
    let out = run_guest(
        oxen()
            .type_after(CONSOLE_PROMPT, b"\x01\x01\x01hqrem\x01\x01\x01")
            .type_after("console input now goes to dom0", CONSOLE_TYPED.as_bytes()),
        &EVENTS_CONSOLE,
    );
    out.assert_contains("console input now goes to the hypervisor")
        .assert_contains("'q' dump domains and vCPUs")
        .assert_contains("d0: Running, ")
        .assert_contains("  v0: up, kernel mode")
        .assert_contains("d0: weight 256, cap 0%")
        .assert_contains("d0: ")
        .assert_contains("frames free")
        .assert_contains("console input now goes to dom0");
    check_verdict(&out, &EVENTS_CONSOLE);
    out.assert_exit(DebugExit::Dom0Poweroff);
}

/// The MMU and user-mode benchmarks (`bench mm`) run on Oxen and print their rows in order.
#[test]
fn bench_mm_runs_on_oxen() {
    let out = passes_on_oxen(&BENCH_MM);
    let names: Vec<String> = bench_results(&out).into_iter().map(|(n, ..)| n).collect();
    let expected: Vec<&str> = BENCH_NAMES.iter().chain(&BENCH_MM_NAMES).copied().collect();
    assert_eq!(names, expected, "{out}");
}
