//! `sched_op` (hypercall 29) and its old form `sched_op_compat` (6): yield, block, shutdown.

use super::{Ctx, HcResult, read_guest};
use crate::domain::RunState;
use crate::types::{DomId, Paddr, Port};
use hypercall_abi::errno::Errno;
use hypercall_abi::sched::{self as s, SchedPoll, SchedRemoteShutdown, SchedShutdown};

/// Offset of `evtchn_upcall_pending` in `vcpu_info`.
pub const VCPU_INFO_PENDING: u64 = 0;
/// Offset of `evtchn_upcall_mask` in `vcpu_info`.
pub const VCPU_INFO_MASK: u64 = 1;

/// Reads one byte of the calling vCPU's `vcpu_info` (a vCPU without one reads as events
/// masked, nothing pending).
#[inline]
pub fn vcpu_info_byte(cx: &mut Ctx<'_>, offset: u64) -> u8 {
    let id = cx.v().id;
    let base = cx.dom.vcpu_info_addr(id);
    if base == 0 {
        return u8::from(offset == VCPU_INFO_MASK);
    }
    let mut b = [0u8];
    cx.plat.read_machine(Paddr(base + offset), &mut b);
    b[0]
}

/// Writes one byte of the calling vCPU's `vcpu_info` (nothing if it has none).
#[inline]
pub fn set_vcpu_info_byte(cx: &mut Ctx<'_>, offset: u64, value: u8) {
    let id = cx.v().id;
    let base = cx.dom.vcpu_info_addr(id);
    if base != 0 {
        cx.plat.write_machine(Paddr(base + offset), &[value]);
    }
}

/// Shuts the calling domain down with `reason` (the runtime acts on the new state). A code
/// recorded earlier with `SCHEDOP_shutdown_code` replaces the reason, as in Xen.
fn shutdown(cx: &mut Ctx<'_>, reason: u8) -> HcResult {
    if cx.dom.state == RunState::Running {
        let code = *cx.dom.shutdown_code.get_or_insert(reason);
        cx.dom.state = RunState::Shutdown(code);
    }
    Ok(0)
}

/// The 8-bit shutdown code Xen takes from a 32-bit reason argument.
fn reason_code(reason: u32) -> u8 {
    (reason & 0xff) as u8
}

/// Whether an upcall is due for the calling vCPU: something pending and events unmasked
/// (Xen's `local_events_need_delivery`).
fn events_need_delivery(cx: &mut Ctx<'_>) -> bool {
    vcpu_info_byte(cx, VCPU_INFO_PENDING) != 0 && vcpu_info_byte(cx, VCPU_INFO_MASK) == 0
}

/// `SCHEDOP_block`: events on, and wait for one unless one is already pending. The call
/// returns 0 when the vCPU runs again; the upcall follows.
fn block(cx: &mut Ctx<'_>) -> HcResult {
    set_vcpu_info_byte(cx, VCPU_INFO_MASK, 0);
    if !events_need_delivery(cx) {
        let (me, now) = (cx.me(), cx.plat.now_ns());
        let _ = cx.sys.sched.block(me, now);
    }
    Ok(0)
}

/// `SCHEDOP_yield`: let any other runnable vCPU of this CPU run first.
fn yield_now(cx: &mut Ctx<'_>) -> HcResult {
    let (me, now) = (cx.me(), cx.plat.now_ns());
    let _ = cx.sys.sched.yield_now(me, now);
    Ok(0)
}

/// `SCHEDOP_poll`: block until one of the ports is pending, an event is due, or the timeout
/// (absolute system time; 0: none) passes. Returns 0 at once if an upcall is due or a port is
/// already pending; an invalid port is `-EINVAL`. Xen's order of checks.
fn poll(cx: &mut Ctx<'_>, arg: u64) -> HcResult {
    let p: SchedPoll = read_guest(cx.mem, arg)?;
    let nr = usize::try_from(p.nr_ports).unwrap_or(usize::MAX);
    if nr > crate::system::MAX_POLL_PORTS {
        return Err(Errno::Einval);
    }
    if events_need_delivery(cx) {
        return Ok(0);
    }
    let mut ports = alloc::vec![0u8; nr * 4];
    cx.mem.read(p.ports, &mut ports)?;
    let mut list = alloc::vec::Vec::with_capacity(nr);
    for chunk in ports.chunks_exact(4) {
        let port = Port(u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]));
        if cx.sys.events.is_pending(cx.dom.id, port, cx.emem)? {
            return Ok(0);
        }
        list.push(port);
    }
    let (me, now) = (cx.me(), cx.plat.now_ns());
    cx.sys.start_poll(me, list, p.timeout, now);
    Ok(0)
}

/// `set_timer_op(timeout)`: the calling vCPU's single-shot timer (0 cancels).
pub fn set_timer_op(cx: &mut Ctx<'_>, args: [u64; 5]) -> HcResult {
    use crate::time::timers::{TimerAction, set_timer_op_action};
    let (me, now) = (cx.me(), cx.plat.now_ns());
    let key = crate::system::TimerKey::Singleshot(me);
    match set_timer_op_action(args[0], now) {
        TimerAction::Cancel => {
            cx.sys.timers.cancel(key);
        }
        TimerAction::Arm(at) => {
            cx.sys.timers.set(key, at);
        }
    }
    Ok(0)
}

/// `sched_op(cmd, arg)`.
pub fn sched_op(cx: &mut Ctx<'_>, args: [u64; 5]) -> HcResult {
    let cmd = super::lo32(args[0]);
    let arg = args[1];
    match cmd {
        s::SCHEDOP_YIELD => yield_now(cx),
        s::SCHEDOP_BLOCK => block(cx),
        s::SCHEDOP_POLL => poll(cx, arg),
        s::SCHEDOP_SHUTDOWN => {
            let a: SchedShutdown = read_guest(cx.mem, arg)?;
            shutdown(cx, reason_code(a.reason))
        }
        s::SCHEDOP_SHUTDOWN_CODE => {
            let a: SchedShutdown = read_guest(cx.mem, arg)?;
            cx.dom.shutdown_code.get_or_insert(reason_code(a.reason));
            Ok(0)
        }
        s::SCHEDOP_REMOTE_SHUTDOWN => {
            // Xen's order: the argument (-EFAULT), the domain (-ESRCH), then the right to shut
            // it down (-EPERM: only the control domain, even for the caller itself).
            let a: SchedRemoteShutdown = read_guest(cx.mem, arg)?;
            let privileged = cx.dom.privileged;
            if a.domain_id == cx.dom.id.0 {
                if !privileged {
                    return Err(Errno::Eperm);
                }
                return shutdown(cx, reason_code(a.reason));
            }
            // The runtime notices the new state and takes the domain down.
            let d = cx.others.get_mut(DomId(a.domain_id)).ok_or(Errno::Esrch)?;
            if !privileged {
                return Err(Errno::Eperm);
            }
            if d.state == RunState::Running {
                let code = *d.shutdown_code.get_or_insert(reason_code(a.reason));
                d.state = RunState::Shutdown(code);
                cx.others_stopped = true;
            }
            Ok(0)
        }
        _ => Err(Errno::Enosys),
    }
}

/// `sched_op_compat(cmd, arg)`: commands 0–2 with the value itself as the argument.
pub fn sched_op_compat(cx: &mut Ctx<'_>, args: [u64; 5]) -> HcResult {
    match super::lo32(args[0]) {
        s::SCHEDOP_YIELD => yield_now(cx),
        s::SCHEDOP_BLOCK => block(cx),
        s::SCHEDOP_SHUTDOWN => shutdown(cx, (args[1] & 0xff) as u8),
        _ => Err(Errno::Enosys),
    }
}
