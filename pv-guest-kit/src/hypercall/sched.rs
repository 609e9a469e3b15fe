//! `sched_op` (hypercall 29; reference §12.1): yield, block, poll, shutdown; and
//! `set_timer_op` (hypercall 15; reference §12.2), the single-shot timer those sleep on.

use hypercall_abi::hypercall::{HYPERVISOR_SCHED_OP, HYPERVISOR_SET_TIMER_OP};
use hypercall_abi::sched::{
    SCHEDOP_BLOCK, SCHEDOP_POLL, SCHEDOP_SHUTDOWN, SCHEDOP_SHUTDOWN_CODE, SCHEDOP_YIELD, SchedPoll,
    SchedShutdown, ShutdownReason,
};

use super::{HypercallResult, hypercall1, hypercall2, result_from_ret};

/// `SCHEDOP_yield`: gives up the CPU.
///
/// # Errors
/// Not expected.
pub fn yield_now() -> HypercallResult {
    // SAFETY: no memory argument.
    result_from_ret(unsafe { hypercall2(HYPERVISOR_SCHED_OP, u64::from(SCHEDOP_YIELD), 0) })
}

/// `SCHEDOP_block`: clears `evtchn_upcall_mask` (events on) and sleeps until an event is
/// pending. The pending event is delivered to the event callback on return.
///
/// # Errors
/// Not expected.
pub fn block() -> HypercallResult {
    // SAFETY: no memory argument.
    result_from_ret(unsafe { hypercall2(HYPERVISOR_SCHED_OP, u64::from(SCHEDOP_BLOCK), 0) })
}

/// `SCHEDOP_poll`: sleeps until one of `ports` is pending or system time reaches `timeout`
/// (ns, 0 = no timeout); returns at once if one is pending already. Xen 4.17 does not look at
/// `evtchn_upcall_mask` (Xen 3.x required it set); a poll with events enabled sleeps the same,
/// and the upcall for a port that woke it runs as the hypercall returns.
///
/// # Errors
/// `-EINVAL` for more than 128 ports or a port past the domain's last, `-EFAULT` for an
/// unreadable list.
pub fn poll(ports: &[u32], timeout: u64) -> HypercallResult {
    let arg = SchedPoll {
        ports: ports.as_ptr() as u64,
        nr_ports: u32::try_from(ports.len()).unwrap_or(u32::MAX),
        _pad0: 0,
        timeout,
    };
    // SAFETY: the hypervisor reads `arg` and `nr_ports` ports from `ports`.
    result_from_ret(unsafe {
        hypercall2(
            HYPERVISOR_SCHED_OP,
            u64::from(SCHEDOP_POLL),
            core::ptr::from_ref(&arg) as u64,
        )
    })
}

/// `SCHEDOP_shutdown` with `reason`. Returns only for `suspend` (or if the hypervisor refuses).
///
/// # Errors
/// The hypervisor's error.
pub fn shutdown_request(reason: ShutdownReason) -> HypercallResult {
    let arg = SchedShutdown {
        reason: reason.raw(),
    };
    // SAFETY: the hypervisor reads `arg`.
    result_from_ret(unsafe {
        hypercall2(
            HYPERVISOR_SCHED_OP,
            u64::from(SCHEDOP_SHUTDOWN),
            core::ptr::from_ref(&arg) as u64,
        )
    })
}

/// `SCHEDOP_shutdown_code`: records the reason to report if the domain later dies without one.
///
/// # Errors
/// The hypervisor's error.
pub fn shutdown_code(reason: ShutdownReason) -> HypercallResult {
    let arg = SchedShutdown {
        reason: reason.raw(),
    };
    // SAFETY: the hypervisor reads `arg`.
    result_from_ret(unsafe {
        hypercall2(
            HYPERVISOR_SCHED_OP,
            u64::from(SCHEDOP_SHUTDOWN_CODE),
            core::ptr::from_ref(&arg) as u64,
        )
    })
}

/// `set_timer_op(deadline)`: arms this vCPU's single-shot timer for the absolute system time
/// `deadline_ns` (the time base of `vcpu_time_info`); `VIRQ_TIMER` fires on this vCPU then.
/// 0 cancels the timer; a deadline in the past fires at once. Xen treats a value more than
/// about 13 days ahead (or negative as an `s64`) as a bug and fires 100 ms from now instead.
///
/// # Errors
/// Not expected (Xen always returns 0).
pub fn set_timer_op(deadline_ns: u64) -> HypercallResult {
    // SAFETY: no memory argument.
    result_from_ret(unsafe { hypercall1(HYPERVISOR_SET_TIMER_OP, deadline_ns) })
}
