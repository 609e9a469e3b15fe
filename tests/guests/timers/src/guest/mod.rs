//! The checks, by area. Expected values are what real Xen 4.17 (Debian's 4.17.7 release build,
//! under QEMU 10 TCG) does for a PV dom0 with one vCPU. Timer checks run with the kit's
//! `VIRQ_TIMER` handler counting ticks ([`ticks`]); where a check waits for a tick it polls the
//! timer port with a timeout ([`arm_and_wait`]) so that a missing event fails the check instead
//! of hanging the guest, except where `SCHEDOP_block` itself is under test.
//!
//! Timing bounds: a lower bound (never early) is checked as it is; an upper bound is a timing
//! check ([`Checks::timed`]) retried up to [`ATTEMPTS`] times, because under TCG the guest's
//! clock runs on while the host deschedules QEMU (several guests run in parallel in the test
//! suite), which makes any single measurement late now and then.

mod clock;
mod oneshot;
mod periodic;
mod runstate;

use guest_support::{Checks, info};
use pv_guest_kit::{StartInfo, events, println, time, traps};

pv_guest_kit::guest_kernel!(main);

/// One millisecond in ns.
pub const MS: u64 = 1_000_000;

/// Attempts of a timing check.
pub const ATTEMPTS: u32 = 4;

/// The timer events counted on vCPU 0.
pub fn ticks() -> u64 {
    time::timer_ticks(0)
}

/// The current system time (0 if it cannot be read).
pub fn now() -> u64 {
    time::now_ns().unwrap_or(0)
}

/// Busy-waits `ns` of system time, events as they are; returns the ticks counted meanwhile.
pub fn spin(ns: u64) -> u64 {
    let start = now();
    let before = ticks();
    while now().saturating_sub(start) < ns {}
    ticks() - before
}

/// Arms the timer under test with `arm(now)` and waits for its tick, events masked, with
/// `SCHEDOP_poll` on the `VIRQ_TIMER` port and a 300 ms timeout as a watchdog (a blocked vCPU's
/// periodic timer does not run, so only the timer under test or the watchdog wakes it);
/// returns (the time `arm` was called at, the time the port was pending or the watchdog
/// fired). The tick's handler runs as events are enabled again.
pub fn arm_and_wait(arm: impl FnOnce(u64)) -> (u64, u64) {
    let port = time::timer_port(0).unwrap_or(0);
    let was_enabled = events::disable();
    let armed = now();
    arm(armed);
    let _ = events::poll(&[port], Some(armed + 300 * MS));
    let fired = now();
    events::restore(was_enabled);
    (armed, fired)
}

/// Arms the timer under test with `arm(now)` and blocks (`SCHEDOP_block`, no watchdog: the
/// vCPU sleeps until an event) until a tick arrives; returns (the time `arm` was called at,
/// the time the vCPU woke).
pub fn arm_and_block(arm: impl FnOnce(u64)) -> (u64, u64) {
    let before = ticks();
    let armed = now();
    arm(armed);
    let _ = time::wait_until(|| ticks() > before, None);
    (armed, now())
}

/// The median of a few measurements.
pub fn median(values: &mut [u64]) -> u64 {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

fn main(_si: StartInfo) -> ! {
    println!("timers: system time, wallclock, timers, block and runstate");
    let mut c = Checks::new();
    c.eq("set_trap_table with the kit's stubs", traps::init(), Ok(0));
    c.eq("events::init", events::init(), Ok(()));
    let port = time::init();
    c.check(
        "time::init binds VIRQ_TIMER on vCPU 0",
        port.is_ok(),
        format_args!("{port:?}"),
    );
    info(format_args!("VIRQ_TIMER port: {port:?}"));
    events::enable();

    clock::records(&mut c);
    clock::wallclock(&mut c);
    periodic::default_period(&mut c);
    oneshot::accuracy(&mut c);
    oneshot::set_timer_op(&mut c);
    oneshot::singleshot(&mut c);
    periodic::periodic(&mut c);
    periodic::limits(&mut c);
    oneshot::block(&mut c);
    runstate::runstate(&mut c);
    c.finish()
}
