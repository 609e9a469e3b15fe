//! domU role `timers`: sleeping in a domU, with another domain busy or not, and waking on an
//! event from dom0.
//!
//! 1. Five `set_timer_op(now + 10 ms)` + `SCHEDOP_block` while dom0 is blocked: woken after
//!    10 +- 1 ms by system time and by wallclock (medians), never early.
//! 2. The same while dom0 spins (event 1 starts it, event 2 stops it, dom0 acknowledges each):
//!    the timer must wake the domU on time although dom0 is CPU-bound, which needs the
//!    scheduler to let a waking vCPU preempt a running one (Xen's credit scheduler boosts it).
//! 3. With only a 1 s watchdog timer armed, the domU asks dom0 to wake it (event 3, 4, ...:
//!    dom0 sleeps 20 ms, then answers) and blocks: it wakes on dom0's event and nothing else,
//!    no earlier than 20 ms and soon after, and its runstate counted the time as blocked.
//!
//! Each message waits for dom0's answer before the next, so none coalesce.
//!
//! Timing upper bounds are [`Checks::timed`] checks (retried: under TCG the host's load shows
//! up in the guest's clock); lower bounds and what woke the domain are checked every time.

use guest_support::{Checks, info};
use pv_guest_kit::hypercall::sched;
use pv_guest_kit::{events, println, time, vcpus};

use super::{MS, SECOND, channel, now, setup};

/// Sleeps per measurement.
const RUNS: usize = 5;

/// Attempts of a timing check. With dom0 idle the machine halts while the domU sleeps, and
/// under TCG a halted QEMU waits for the host to run it again when the timer expires: on a
/// loaded host (the tests run in parallel) that adds a millisecond now and then, which a few
/// attempts ride out.
const ATTEMPTS: u32 = 8;

/// How long dom0 waits before answering a wake request (as in `dom0`).
const WAKE_DELAY: u64 = 20 * MS;

/// The timer armed while waiting for dom0's wake-up, in case it never comes.
const WATCHDOG: u64 = SECOND;

/// The timer events counted on vCPU 0.
fn ticks() -> u64 {
    time::timer_ticks(0)
}

fn median(values: &mut [u64]) -> u64 {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

/// [`RUNS`] times `set_timer_op(now + 10 ms)` + block until the tick: the times slept by
/// system time and by wallclock.
fn sleeps() -> ([u64; RUNS], [u64; RUNS]) {
    let mut by_system = [0u64; RUNS];
    let mut by_wall = [0u64; RUNS];
    for (sys, wall) in by_system.iter_mut().zip(by_wall.iter_mut()) {
        let before = ticks();
        let w0 = time::wallclock().unwrap_or_default();
        let t0 = now();
        let _ = time::set_timer(t0 + 10 * MS);
        let _ = time::wait_until(|| ticks() > before, None);
        let t1 = now();
        let w1 = time::wallclock().unwrap_or_default();
        *sys = t1.saturating_sub(t0);
        *wall = w1.ns_since(w0);
    }
    (by_system, by_wall)
}

/// Measures [`sleeps`] as a timing check named `what`; counts early wake-ups into `early`.
fn accuracy(c: &mut Checks, what: &str, early: &mut usize) -> (u64, u64) {
    c.timed(what, ATTEMPTS, || {
        let (mut sys, mut wall) = sleeps();
        info(format_args!("10 ms sleeps by system time (ns): {sys:?}"));
        info(format_args!("the same by wallclock (ns): {wall:?}"));
        *early += sys.iter().filter(|&&t| t < 10 * MS).count();
        let (s, w) = (median(&mut sys), median(&mut wall));
        let ok = (9 * MS..=11 * MS).contains(&s) && (9 * MS..=11 * MS).contains(&w);
        (ok, (s, w))
    })
}

pub fn run() -> ! {
    println!("domains: timers in a domU, dom0 idle then busy, and a wake-up from dom0");
    let mut c = Checks::new();
    setup(&mut c);
    if channel::connect(&mut c).is_none() {
        c.finish()
    }
    c.eq(
        "VCPUOP_stop_periodic_timer: only the timers under test tick",
        time::stop_periodic(0),
        Ok(()),
    );
    let mut early = 0;
    let idle = accuracy(
        &mut c,
        "set_timer_op(now + 10 ms) + block while dom0 is blocked: 10 +- 1 ms by system time and \
         by wallclock (medians of 5)",
        &mut early,
    );
    info(format_args!("dom0 idle: medians {idle:?} ns"));

    c.eq("asked dom0 to spin", channel::send(), Ok(()));
    c.check(
        "dom0 acknowledged (it spins from now on)",
        channel::wait_received(1, 5 * SECOND),
        format_args!("no answer within 5 s"),
    );
    let busy = accuracy(
        &mut c,
        "the same while dom0 spins: the timer's wake-up preempts the CPU-bound dom0",
        &mut early,
    );
    info(format_args!("dom0 spinning: medians {busy:?} ns"));
    c.eq("asked dom0 to stop spinning", channel::send(), Ok(()));
    c.check(
        "dom0 acknowledged (it stopped spinning)",
        channel::wait_received(2, 5 * SECOND),
        format_args!("no answer within 5 s"),
    );
    c.eq("the timer never fired before its deadline", early, 0);

    woken_by_dom0(&mut c);
    c.finish()
}

/// What one wake request showed.
#[derive(Clone, Copy, Debug, Default)]
struct Wake {
    /// Events from dom0 while blocked.
    events: u64,
    /// Timer events meanwhile.
    ticks: u64,
    /// Time from the request to the wake-up (ns).
    slept: u64,
    /// Blocked time the runstate counted meanwhile (ns).
    blocked: u64,
}

/// Sends a wake request and blocks with only a watchdog timer armed, events enabled by
/// `SCHEDOP_block` itself (masked before, so nothing runs in between).
fn wake_request() -> Wake {
    let before = channel::received();
    let ticks0 = ticks();
    let was_enabled = events::disable();
    let r0 = vcpus::runstate(0).unwrap_or_default();
    let t0 = now();
    let _ = time::set_timer(t0 + WATCHDOG);
    let _ = channel::send();
    // Enables events and sleeps until one is pending; its upcall runs on the way out.
    let _ = sched::block();
    let t1 = now();
    let r1 = vcpus::runstate(0).unwrap_or_default();
    let _ = time::set_timer(0);
    events::restore(was_enabled);
    Wake {
        events: channel::received() - before,
        ticks: ticks() - ticks0,
        slept: t1.saturating_sub(t0),
        blocked: r1.time[2].saturating_sub(r0.time[2]),
    }
}

fn woken_by_dom0(c: &mut Checks) {
    let mut wakes = [Wake::default(); ATTEMPTS as usize];
    let mut n = 0;
    let last = c.timed(
        "a vCPU blocked with no timer wakes on dom0's event, within 3 ms of it (dom0 waits 20 ms)",
        ATTEMPTS,
        || {
            let wake = wake_request();
            info(format_args!("woken by dom0: {wake:?}"));
            if let Some(slot) = wakes.get_mut(n) {
                *slot = wake;
            }
            n += 1;
            let ok = wake.events == 1
                && wake.ticks == 0
                && (WAKE_DELAY..WAKE_DELAY + 3 * MS).contains(&wake.slept);
            (ok, wake)
        },
    );
    let tried = wakes.get(..n).unwrap_or_default();
    c.check(
        "each time, exactly one event from dom0 woke it, and not the watchdog timer",
        tried.iter().all(|w| w.events == 1 && w.ticks == 0),
        format_args!("{tried:?}"),
    );
    c.check(
        "each time, it slept at least the 20 ms dom0 waited",
        tried.iter().all(|w| w.slept >= WAKE_DELAY),
        format_args!("{tried:?}"),
    );
    c.check(
        "its runstate counted the sleep as blocked (within 1 ms)",
        last.blocked + MS >= last.slept && last.blocked <= last.slept,
        format_args!("{last:?}"),
    );
}
