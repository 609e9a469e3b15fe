//! domU role `spin [ms=<n>]`: CPU-bound, measuring its share of the CPU.
//!
//! It tells dom0 it is ready (event 1) and blocks until dom0's go. Then it spins: after a
//! 100 ms warm-up (long enough for every other spinner to have its go and be runnable, however
//! the scheduler ordered the wake-ups) it measures a window of `n` ms (default 2000) of system
//! time, reading its own runstate (`VCPUOP_get_runstate_info`) at both ends; tells dom0
//! (event 2); and keeps spinning until dom0's stop, which comes once every spinner has
//! measured, so that each window saw the others compete throughout. Prints
//! `SHARE running_ns=<r> runnable_ns=<q> blocked_ns=<b> offline_ns=<o> elapsed_ns=<e>
//! gaps_ns=<g> longest_gap_ns=<l> unseen_ns=<u>`: the host compares the shares of the domains
//! (weights) or one domain's share with its cap. The gaps are the time the spin loop did not
//! run (clock reads more than 20 us apart); `unseen` is the part of them the runstate counts
//! as running: the hypervisor's work, and the host not running QEMU, which under TCG the
//! guest's clock cannot tell from running.

use guest_support::{Checks, info};
use pv_guest_kit::abi::vcpu::VcpuRunstateInfo;
use pv_guest_kit::{println, vcpus};

use super::{Args, MS, SECOND, channel, now, setup, spin_until};

/// Spinning before the window.
const WARM_UP: u64 = 100 * MS;

/// How long the spinner waits for go, and for stop.
const WAIT: u64 = 30 * SECOND;

/// The runstate with the system time it was read at: the read is retried until no other
/// vCPU ran in between (the clock reads around it are less than 50 us apart).
fn sample() -> (u64, VcpuRunstateInfo) {
    loop {
        let before = now();
        let runstate = vcpus::runstate(0).unwrap_or_default();
        let after = now();
        if after.saturating_sub(before) < 50_000 {
            return (before + (after - before) / 2, runstate);
        }
    }
}

/// Gaps between two consecutive clock reads of the spin loop longer than this count as time
/// the loop did not run (another vCPU ran, the hypervisor handled an interrupt, or the host
/// did not run QEMU).
const GAP: u64 = 20_000;

/// What the spin loop saw of the time it did not run.
#[derive(Clone, Copy, Debug, Default)]
struct Gaps {
    /// Their total.
    total: u64,
    /// The longest.
    longest: u64,
}

/// Spins until `window` ns after `start`, adding up the gaps between clock reads.
fn spin_counting_gaps(start: u64, window: u64) -> Gaps {
    let mut gaps = Gaps::default();
    let mut last = now();
    while last.saturating_sub(start) < window {
        let t = now();
        let gap = t.saturating_sub(last);
        if gap > GAP {
            gaps.total += gap;
            gaps.longest = gaps.longest.max(gap);
        }
        last = t;
    }
    gaps
}

pub fn run(args: Args) -> ! {
    let window = args.number("ms", 2000) * MS;
    println!(
        "domains: spin, measuring its CPU share over {} ms",
        window / MS
    );
    let mut c = Checks::new();
    setup(&mut c);
    if channel::connect(&mut c).is_none() {
        c.finish()
    }
    c.eq("ready sent to dom0", channel::send(), Ok(()));
    let go = channel::wait_received(1, WAIT);
    c.check("dom0's go arrived", go, format_args!("not within 30 s"));
    spin_until(WARM_UP, || false);
    let (t0, r0) = sample();
    let gaps = spin_counting_gaps(t0, window);
    let (t1, r1) = sample();
    c.eq("measured sent to dom0", channel::send(), Ok(()));
    let stop = spin_until(WAIT, || channel::received() >= 2);
    c.check(
        "dom0's stop arrived while spinning",
        stop,
        format_args!("not within 30 s"),
    );
    let d = |i: usize| {
        let (a, b) = (r0.time.get(i), r1.time.get(i));
        b.copied()
            .unwrap_or(0)
            .saturating_sub(a.copied().unwrap_or(0))
    };
    let (running, runnable, blocked, offline) = (d(0), d(1), d(2), d(3));
    let elapsed = t1.saturating_sub(t0);
    // Time "running" that the loop did not see run: the hypervisor's own work on its behalf,
    // and the host not running QEMU (under TCG the guest's clock runs on meanwhile).
    let unseen = gaps.total.saturating_sub(runnable + offline + blocked);
    println!(
        "SHARE running_ns={running} runnable_ns={runnable} blocked_ns={blocked} \
         offline_ns={offline} elapsed_ns={elapsed} gaps_ns={} longest_gap_ns={} \
         unseen_ns={unseen}",
        gaps.total, gaps.longest
    );
    info(format_args!(
        "share of the CPU: {}.{}%",
        running * 100 / elapsed.max(1),
        running * 1000 / elapsed.max(1) % 10
    ));
    c.check(
        "the window lasted as long as asked",
        elapsed >= window && elapsed < window + 300 * MS,
        format_args!("{elapsed} ns"),
    );
    let sum = running + runnable + blocked + offline;
    c.check(
        "the runstate times over the window add up to the system time that passed (+-1 ms)",
        sum.abs_diff(elapsed) < MS,
        format_args!("{sum} ns in states, {elapsed} ns passed"),
    );
    c.check(
        "a spinning vCPU is never blocked",
        blocked == 0,
        format_args!("{blocked} ns blocked"),
    );
    c.check(
        "it ran during the window",
        running > 0,
        format_args!("{running} ns"),
    );
    c.finish()
}
