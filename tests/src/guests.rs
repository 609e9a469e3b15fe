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

/// Every event-channel operation one domain can make, the upcall with exact counts, masking,
/// VIRQs, IPIs, `SCHEDOP_poll`, port exhaustion and the FIFO commands on a 2-level domain.
/// Boot the hypervisor with [`VCPUS_XEN_OPTIONS`] (the checks for vCPU 1 need it to exist).
pub const EVENTS: Guest = Guest {
    image: "events",
    args: "events",
    min_checks: 188,
};

/// System time and the wallclock, `set_timer_op`, the single-shot and periodic vCPU timers,
/// `SCHEDOP_block`, sleeping, and vCPU 0's runstate (one vCPU).
pub const TIMERS: Guest = Guest {
    image: "timers",
    args: "timers",
    min_checks: 75,
};

/// Secondary vCPUs brought up on the kit's entry point, 10,000 IPI round trips between vCPU 0
/// and 1, per-vCPU timers, a moved `vcpu_info`, `VCPUOP_down`/`up` and runstate. Boot the
/// hypervisor with [`VCPUS_XEN_OPTIONS`].
pub const VCPUS: Guest = Guest {
    image: "vcpus",
    args: "vcpus",
    min_checks: 70,
};

/// The hypervisor options [`EVENTS`] and [`VCPUS`] need: dom0 with two vCPUs.
pub const VCPUS_XEN_OPTIONS: &str = "dom0_max_vcpus=2";

/// TSC cycles of a null hypercall, an exception round trip and a forced-emulation cpuid.
pub const BENCH: Guest = Guest {
    image: "bench",
    args: "bench",
    min_checks: 5,
};

/// [`BENCH`] plus the memory-management and user-mode paths: `mmu-update-1`,
/// `update-va-mapping-invlpg`, `mmu-update-512`, `ptwr-write`, `user-syscall-round-trip`.
pub const BENCH_MM: Guest = Guest {
    image: "bench",
    args: "bench mm",
    min_checks: 15,
};

/// The names of the BENCH lines [`BENCH`] prints, in order.
pub const BENCH_NAMES: [&str; 4] = [
    "rdtsc",
    "null-hypercall",
    "exception-round-trip",
    "forced-cpuid",
];

/// The names of the BENCH lines [`BENCH_MM`] adds after [`BENCH_NAMES`], in order.
pub const BENCH_MM_NAMES: [&str; 5] = [
    "mmu-update-1",
    "update-va-mapping-invlpg",
    "mmu-update-512",
    "ptwr-write",
    "user-syscall-round-trip",
];

/// [`BENCH`] plus event channels and scheduling within one domain: sends on a loopback
/// interdomain port to the sending vCPU (the hypercall alone, to the upcall's entry, with the
/// upcall), and a ping-pong between vCPU 0 and vCPU 1 (events, then `SCHEDOP_yield`). Boot
/// the hypervisor with [`BENCH_EVENTS_OPTIONS`].
pub const BENCH_EVENTS: Guest = Guest {
    image: "bench",
    args: "bench events",
    min_checks: 20,
};

/// The hypervisor options [`BENCH_EVENTS`] needs: dom0 with two vCPUs.
pub const BENCH_EVENTS_OPTIONS: &str = "dom0_max_vcpus=2";

/// The names of the BENCH lines [`BENCH_EVENTS`] adds after [`BENCH_NAMES`], in order.
pub const BENCH_EVENTS_NAMES: [&str; 5] = [
    "evtchn-send",
    "evtchn-upcall-latency",
    "evtchn-send-upcall-round-trip",
    "vcpu-event-round-trip",
    "vcpu-yield-round-trip",
];

/// [`BENCH`] plus the ping-pong between dom0 and domain 1 over an interdomain channel: dom0's
/// side. Domain 1 is the same image with [`BENCH_PONG_ARGS`]; [`bench_domains`] boots both.
/// Oxen only: real Xen has no toolstack here to start a second domain.
pub const BENCH_DOMAINS: Guest = Guest {
    image: "bench",
    args: "bench ping",
    min_checks: 15,
};

/// Domain 1's command line for [`BENCH_DOMAINS`]: it serves the pings, prints two lines and
/// powers off.
pub const BENCH_PONG_ARGS: &str = "bench pong";

/// The hypervisor options [`BENCH_DOMAINS`] needs: module 2 as domain 1.
pub const BENCH_DOMAINS_OPTIONS: &str = "domU=2";

/// The names of the BENCH lines [`BENCH_DOMAINS`] adds after [`BENCH_NAMES`], in order.
pub const BENCH_DOMAINS_NAMES: [&str; 2] = ["domain-event-round-trip", "domain-yield-round-trip"];

/// `boot` with [`BENCH_DOMAINS`] as dom0 (module 1) and its peer as domain 1 (module 2), the
/// options [`BENCH_DOMAINS_OPTIONS`] and [`GUEST_TIMEOUT`]. Run it with [`Boot::run`].
pub fn bench_domains(boot: Boot) -> Boot {
    let image = crate::paths::image_dir().join(BENCH_DOMAINS.image);
    boot.append(BENCH_DOMAINS_OPTIONS)
        .module(&image, BENCH_DOMAINS.args)
        .module(&image, BENCH_PONG_ARGS)
        .timeout(GUEST_TIMEOUT)
}

/// A fresh address space built, pinned and loaded; 10,000 pages mapped and unmapped in
/// batches; Xen's refusals and errnos; writable page tables; a user-mode program making
/// system calls and taking a page fault.
pub const ADDRESS_SPACE: Guest = Guest {
    image: "address-space",
    args: "address-space",
    min_checks: 127,
};

/// Hostile: at least 100,000 seeded random `mmu_update` / `mmuext_op` / `update_va_mapping`
/// requests (valid and invalid), then a clean-up that must leave no pool frame typed.
pub const MMU_STORM: Guest = Guest {
    image: "mmu-storm",
    args: "mmu-storm",
    min_checks: 17,
};

/// [`MMU_STORM`] with another seed.
pub const MMU_STORM_OTHER_SEED: Guest = Guest {
    image: "mmu-storm",
    args: "mmu-storm seed=0x5eed0002",
    min_checks: 17,
};

/// The least number of requests a storm run must judge.
pub const STORM_MIN_REQUESTS: u64 = 100_000;

/// The `STORM <n> requests, <k> succeeded, <m> failed` line: `(n, k, m)`.
pub fn storm_counts(out: &Outcome) -> Option<(u64, u64, u64)> {
    let line = out
        .lines_matching("STORM ")
        .find_map(|line| line.strip_prefix("STORM "))?;
    let mut words = line.split_whitespace();
    let requests = words.next()?.parse().ok()?;
    let succeeded = words.nth(1).and_then(|w| w.parse().ok())?;
    let failed = words.nth(1).and_then(|w| w.parse().ok())?;
    Some((requests, succeeded, failed))
}

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
    check_pass_count(out, guest.image, n, guest.min_checks);
    n
}

/// Asserts that `n`, the count a guest's `RESULT: PASS (n checks)` line gives, is the number of
/// `PASS:` lines it printed and at least `min_checks` (`image` names the guest in the
/// message).
#[track_caller]
pub fn check_pass_count(out: &Outcome, image: &str, n: usize, min_checks: usize) {
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
    if n < min_checks {
        out.fail(&format!(
            "{image}: only {n} checks ran, expected at least {min_checks}"
        ));
    }
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

/// `events console`: dom0 takes a typed line through `VIRQ_CONSOLE` and `CONSOLEIO_read`.
/// The test types [`CONSOLE_TYPED`] after [`CONSOLE_PROMPT`] appears.
pub const EVENTS_CONSOLE: Guest = Guest {
    image: "events",
    args: "events console",
    min_checks: 5,
};

/// The prompt `events console` prints before waiting for input.
pub const CONSOLE_PROMPT: &str = "console: type a line now";

/// The line the test types for `events console` (with a newline).
pub const CONSOLE_TYPED: &str = "typed on the console\n";
