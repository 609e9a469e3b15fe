//! Time, timers and sleeping (reference §6.4–§6.5, §12.1–§12.3).
//!
//! - [`now_ns`]: Xen system time (ns since boot) from the running vCPU's `vcpu_time_info`
//!   and the TSC, read under the version protocol ([`crate::pvclock`]).
//! - [`wallclock`]: the current wall-clock time (`shared_info`'s base + system time).
//! - Timers: the per-vCPU single-shot timer ([`set_timer`], [`set_singleshot`],
//!   [`stop_singleshot`]) and periodic timer ([`set_periodic`], [`stop_periodic`]); both raise
//!   `VIRQ_TIMER` on their vCPU. A PV vCPU starts with a 10 ms periodic timer.
//! - Sleeping: [`wait_until`] blocks the vCPU (`SCHEDOP_block`) until a condition holds or a
//!   deadline passes; [`sleep_until`] and [`sleep_ns`] are built on it.
//!
//! # The lost-wakeup race
//!
//! A sleeper checks its condition, then blocks. If the event that makes the condition true
//! arrives between the two, its upcall runs before the block and nothing wakes the vCPU
//! again. [`wait_until`] therefore checks with events *masked*: an event arriving then only
//! sets `upcall_pending`. `SCHEDOP_block` enables events and blocks in one step and returns at
//! once when `upcall_pending` is set; the upcall then runs as the hypercall returns, and the
//! loop checks again (masked again).
//!
//! Sleeping needs `VIRQ_TIMER` bound on the vCPU: [`init`] (called by the sleeping functions
//! when needed) binds it with the kit's handler, which counts ticks ([`timer_ticks`]) and
//! calls the hook set by [`set_timer_hook`]. The event layer must be set up
//! ([`crate::events::init`]).

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use hypercall_abi::evtchn::VIRQ_TIMER;

use crate::arch::percpu::{self, MAX_VCPUS};
use crate::arch::shared;
use crate::errno::{Errno, HypercallResult};
use crate::events::{self, Port};
use crate::hypercall::{sched, vcpu};
pub use crate::pvclock::Wallclock;

/// The running vCPU's system time in nanoseconds.
///
/// # Errors
/// If `shared_info` cannot be mapped.
pub fn now_ns() -> HypercallResult<u64> {
    Ok(shared::vcpu_info(percpu::current())?.system_time_ns())
}

/// The current wall-clock time: `shared_info`'s wallclock base (the time at system time 0)
/// plus [`now_ns`].
///
/// # Errors
/// If `shared_info` cannot be mapped.
pub fn wallclock() -> HypercallResult<Wallclock> {
    let base = shared::shared_info()?.wallclock_base();
    Ok(base.add_ns(now_ns()?))
}

/// The wall-clock time at system time 0, as `shared_info` holds it.
///
/// # Errors
/// If `shared_info` cannot be mapped.
pub fn wallclock_base() -> HypercallResult<Wallclock> {
    Ok(shared::shared_info()?.wallclock_base())
}

/// Arms the running vCPU's single-shot timer for system time `deadline_ns` (`set_timer_op`);
/// 0 cancels it.
///
/// # Errors
/// Not expected.
pub fn set_timer(deadline_ns: u64) -> HypercallResult<()> {
    sched::set_timer_op(deadline_ns).map(|_| ())
}

/// Arms the running vCPU's single-shot timer with `VCPUOP_set_singleshot_timer`; with
/// `future_only`, a deadline already past is refused with `-ETIME` instead of firing at once.
///
/// # Errors
/// `-ETIME` as above.
pub fn set_singleshot(deadline_ns: u64, future_only: bool) -> HypercallResult<()> {
    let flags = if future_only {
        hypercall_abi::vcpu::VCPU_SSHOTTMR_FUTURE
    } else {
        0
    };
    vcpu::set_singleshot_timer(percpu::current(), deadline_ns, flags).map(|_| ())
}

/// Cancels the running vCPU's single-shot timer (`VCPUOP_stop_singleshot_timer`).
///
/// # Errors
/// Not expected.
pub fn stop_singleshot() -> HypercallResult<()> {
    vcpu::stop_singleshot_timer(percpu::current()).map(|_| ())
}

/// Makes `vcpu`'s periodic timer fire every `period_ns` (`VCPUOP_set_periodic_timer`).
///
/// # Errors
/// `-EINVAL` for a period under 1 ms.
pub fn set_periodic(vcpu: u32, period_ns: u64) -> HypercallResult<()> {
    vcpu::set_periodic_timer(vcpu, period_ns).map(|_| ())
}

/// Stops `vcpu`'s periodic timer (`VCPUOP_stop_periodic_timer`).
///
/// # Errors
/// `-ENOENT` for a bad vCPU.
pub fn stop_periodic(vcpu: u32) -> HypercallResult<()> {
    vcpu::stop_periodic_timer(vcpu).map(|_| ())
}

/// Per vCPU: the `VIRQ_TIMER` port the kit bound (0: none) and the ticks it counted.
static TIMER_PORT: [AtomicU32; MAX_VCPUS] = [const { AtomicU32::new(0) }; MAX_VCPUS];
static TICKS: [AtomicU64; MAX_VCPUS] = [const { AtomicU64::new(0) }; MAX_VCPUS];
static HOOK: spin::Mutex<Option<fn(u32)>> = spin::Mutex::new(None);

fn on_timer(_port: Port) {
    let id = percpu::current();
    if let Some(ticks) = TICKS.get(usize::try_from(id).unwrap_or(usize::MAX)) {
        ticks.fetch_add(1, Ordering::Relaxed);
    }
    let hook = HOOK.try_lock().and_then(|hook| *hook);
    if let Some(hook) = hook {
        hook(id);
    }
}

/// Binds `VIRQ_TIMER` on the running vCPU to the kit's timer handler, unless it is bound
/// already (by this function); returns the port.
///
/// # Errors
/// As [`events::bind_virq`] (`-EEXIST` if the VIRQ was bound outside the kit's time layer).
pub fn init() -> HypercallResult<Port> {
    let id = percpu::current();
    let slot = TIMER_PORT
        .get(usize::try_from(id).map_err(|_| Errno::Einval)?)
        .ok_or(Errno::Einval)?;
    let port = slot.load(Ordering::Acquire);
    // The port may have been closed since (events::close detaches it; events::reset makes
    // the kit forget it).
    if port != 0 && events::is_attached(port) {
        return Ok(port);
    }
    let port = events::bind_virq(VIRQ_TIMER, id, on_timer)?;
    slot.store(port, Ordering::Release);
    Ok(port)
}

/// Forgets every `VIRQ_TIMER` port [`init`] bound (their ports were closed, as by
/// [`events::reset`]): the next [`init`] binds again rather than trusting a port number that
/// may now belong to something else.
pub fn forget_timer_ports() {
    for slot in &TIMER_PORT {
        slot.store(0, Ordering::Release);
    }
}

/// The `VIRQ_TIMER` port [`init`] bound on `vcpu` (`None` if not yet).
pub fn timer_port(vcpu: u32) -> Option<Port> {
    let port = TIMER_PORT
        .get(usize::try_from(vcpu).ok()?)?
        .load(Ordering::Acquire);
    (port != 0).then_some(port)
}

/// The timer events the kit's handler counted on `vcpu` (single-shot and periodic alike).
pub fn timer_ticks(vcpu: u32) -> u64 {
    TICKS
        .get(usize::try_from(vcpu).unwrap_or(usize::MAX))
        .map_or(0, |t| t.load(Ordering::Relaxed))
}

/// Sets the function the kit's timer handler calls (in the upcall, with the vCPU id) after
/// counting a tick; `None` removes it.
pub fn set_timer_hook(hook: Option<fn(u32)>) {
    *HOOK.lock() = hook;
}

/// Blocks the running vCPU until `condition()` holds (checked with events masked, see the
/// module documentation) or system time reaches `deadline_ns`; returns whether the condition
/// held. With a deadline this arms the vCPU's single-shot timer (replacing one the caller
/// armed); without one, only an event wakes the vCPU. Events are enabled while blocked and the
/// event mask is restored on return.
///
/// # Errors
/// As [`init`] (for a deadline), or the `sched_op` error.
pub fn wait_until(
    mut condition: impl FnMut() -> bool,
    deadline_ns: Option<u64>,
) -> HypercallResult<bool> {
    if deadline_ns.is_some() {
        init()?;
    }
    let was_enabled = events::disable();
    let result = loop {
        if condition() {
            break Ok(true);
        }
        if let Some(deadline) = deadline_ns {
            match now_ns() {
                Ok(now) if now >= deadline => break Ok(false),
                Ok(_) => {}
                Err(err) => break Err(err),
            }
            if let Err(err) = set_timer(deadline) {
                break Err(err);
            }
        }
        // Enables events and sleeps in one step; returns at once if an upcall is pending.
        if let Err(err) = sched::block() {
            break Err(err);
        }
        // The upcalls have run on the way out of the hypercall; mask for the next check.
        events::disable();
    };
    events::restore(was_enabled);
    result
}

/// Sleeps until system time reaches `deadline_ns` (see [`wait_until`]).
///
/// # Errors
/// As [`wait_until`].
pub fn sleep_until(deadline_ns: u64) -> HypercallResult<()> {
    wait_until(|| false, Some(deadline_ns)).map(|_| ())
}

/// Sleeps for `ns` nanoseconds of system time.
///
/// # Errors
/// As [`wait_until`].
pub fn sleep_ns(ns: u64) -> HypercallResult<()> {
    sleep_until(now_ns()?.saturating_add(ns))
}
