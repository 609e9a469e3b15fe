//! `sched_op` (hypercall 29) and its old form `sched_op_compat` (6): yield, block, shutdown.

use super::{Ctx, HcResult, read_guest};
use crate::domain::RunState;
use crate::types::Paddr;
use hypercall_abi::errno::Errno;
use hypercall_abi::sched::{self as s, SchedRemoteShutdown, SchedShutdown};

/// Offset of `evtchn_upcall_pending` in `vcpu_info`.
pub const VCPU_INFO_PENDING: u64 = 0;
/// Offset of `evtchn_upcall_mask` in `vcpu_info`.
pub const VCPU_INFO_MASK: u64 = 1;

/// Reads one byte of the calling vCPU's `vcpu_info`.
pub fn vcpu_info_byte(cx: &mut Ctx<'_>, offset: u64) -> u8 {
    let id = cx.v().id;
    let pa = Paddr(cx.dom.vcpu_info_addr(id) + offset);
    let mut b = [0u8];
    cx.plat.read_machine(pa, &mut b);
    b[0]
}

/// Writes one byte of the calling vCPU's `vcpu_info`.
pub fn set_vcpu_info_byte(cx: &mut Ctx<'_>, offset: u64, value: u8) {
    let id = cx.v().id;
    let pa = Paddr(cx.dom.vcpu_info_addr(id) + offset);
    cx.plat.write_machine(pa, &[value]);
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

/// `SCHEDOP_block`: events on, and wait for one unless it is already pending.
fn block(cx: &mut Ctx<'_>) -> HcResult {
    set_vcpu_info_byte(cx, VCPU_INFO_MASK, 0);
    if vcpu_info_byte(cx, VCPU_INFO_PENDING) == 0 {
        cx.block = true;
    }
    Ok(0)
}

/// `sched_op(cmd, arg)`.
pub fn sched_op(cx: &mut Ctx<'_>, args: [u64; 5]) -> HcResult {
    let cmd = super::lo32(args[0]);
    let arg = args[1];
    match cmd {
        s::SCHEDOP_YIELD => Ok(0),
        s::SCHEDOP_BLOCK => block(cx),
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
            if !cx.dom.privileged {
                return Err(Errno::Eperm);
            }
            let a: SchedRemoteShutdown = read_guest(cx.mem, arg)?;
            if a.domain_id == cx.dom.id.0 {
                shutdown(cx, reason_code(a.reason))
            } else {
                // The only domain is the caller until the toolstack creates others.
                Err(Errno::Esrch)
            }
        }
        _ => Err(Errno::Enosys),
    }
}

/// `sched_op_compat(cmd, arg)`: commands 0–2 with the value itself as the argument.
pub fn sched_op_compat(cx: &mut Ctx<'_>, args: [u64; 5]) -> HcResult {
    match super::lo32(args[0]) {
        s::SCHEDOP_YIELD => Ok(0),
        s::SCHEDOP_BLOCK => block(cx),
        s::SCHEDOP_SHUTDOWN => shutdown(cx, (args[1] & 0xff) as u8),
        _ => Err(Errno::Enosys),
    }
}
