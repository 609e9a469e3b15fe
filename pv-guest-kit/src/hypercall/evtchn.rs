//! `event_channel_op` (hypercall 32; reference §10): every `EVTCHNOP_*` command as a typed call.
//!
//! These are the raw operations; [`crate::events`] builds the guest's event-channel layer
//! (handlers, masking, the upcall) on top of them.

use hypercall_abi::domid::DOMID_SELF;
use hypercall_abi::evtchn::{
    EVTCHNOP_ALLOC_UNBOUND, EVTCHNOP_BIND_INTERDOMAIN, EVTCHNOP_BIND_IPI, EVTCHNOP_BIND_VCPU,
    EVTCHNOP_BIND_VIRQ, EVTCHNOP_CLOSE, EVTCHNOP_EXPAND_ARRAY, EVTCHNOP_INIT_CONTROL,
    EVTCHNOP_RESET, EVTCHNOP_SEND, EVTCHNOP_SET_PRIORITY, EVTCHNOP_STATUS, EVTCHNOP_UNMASK,
    EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindIpi, EvtchnBindVcpu, EvtchnBindVirq,
    EvtchnClose, EvtchnExpandArray, EvtchnInitControl, EvtchnReset, EvtchnSend, EvtchnSetPriority,
    EvtchnStatus, EvtchnUnmask,
};
use hypercall_abi::hypercall::HYPERVISOR_EVENT_CHANNEL_OP;
use hypercall_abi::types::{DomidT, EvtchnPort};

use super::{HypercallResult, hypercall2, result_from_ret};

/// `event_channel_op(cmd, arg)` with a raw argument.
///
/// # Safety
/// `arg` must point to the struct `cmd` reads and writes.
///
/// # Errors
/// The hypervisor's error.
pub unsafe fn event_channel_op(cmd: u32, arg: u64) -> HypercallResult {
    // SAFETY: forwarded to the caller.
    result_from_ret(unsafe { hypercall2(HYPERVISOR_EVENT_CHANNEL_OP, u64::from(cmd), arg) })
}

/// Runs `cmd` on `arg`, a struct the hypervisor reads and may write back.
fn op<T>(cmd: u32, arg: &mut T) -> HypercallResult {
    // Every caller passes the argument struct of `cmd` (the ABI crate's layout); none of
    // these commands makes the hypervisor touch other guest memory.
    // SAFETY: the hypervisor reads `arg` and writes only its OUT fields, inside the struct.
    unsafe { event_channel_op(cmd, core::ptr::from_mut(arg) as u64) }
}

/// `EVTCHNOP_send`: notifies the other end of `port` (a no-op for an unbound port).
///
/// # Errors
/// `-EINVAL` for a closed, VIRQ or PIRQ port.
pub fn send(port: EvtchnPort) -> HypercallResult {
    op(EVTCHNOP_SEND, &mut EvtchnSend { port })
}

/// `EVTCHNOP_alloc_unbound` in this domain: a new port that `remote` may bind to.
///
/// # Errors
/// The hypervisor's error (`-ENOSPC` when out of ports).
pub fn alloc_unbound(remote: DomidT) -> HypercallResult<EvtchnPort> {
    alloc_unbound_in(DOMID_SELF, remote)
}

/// `EVTCHNOP_alloc_unbound` with both domain ids given: a new port in `dom` (`DOMID_SELF`, or
/// another domain for a privileged caller) that `remote` may bind to.
///
/// # Errors
/// The hypervisor's error: `-ESRCH` for an unknown `dom`, `-EPERM` without the privilege,
/// `-ENOSPC` when out of ports.
pub fn alloc_unbound_in(dom: DomidT, remote: DomidT) -> HypercallResult<EvtchnPort> {
    let mut arg = EvtchnAllocUnbound {
        dom,
        remote_dom: remote,
        port: 0,
    };
    op(EVTCHNOP_ALLOC_UNBOUND, &mut arg).map(|_| arg.port)
}

/// `EVTCHNOP_bind_interdomain`: a new local port connected to `remote_port` of `remote_dom`
/// (`DOMID_SELF` for a loopback pair). The new port starts pending (reference §10.1).
///
/// # Errors
/// `-ESRCH` for an unknown domain, `-EINVAL` when the remote port is not unbound or does not
/// accept this domain.
pub fn bind_interdomain(
    remote_dom: DomidT,
    remote_port: EvtchnPort,
) -> HypercallResult<EvtchnPort> {
    let mut arg = EvtchnBindInterdomain {
        remote_dom,
        _pad0: 0,
        remote_port,
        local_port: 0,
    };
    op(EVTCHNOP_BIND_INTERDOMAIN, &mut arg).map(|_| arg.local_port)
}

/// `EVTCHNOP_bind_virq`: a new port for `virq` notifying `vcpu`.
///
/// # Errors
/// `-EINVAL` for a bad VIRQ or a global VIRQ on a vCPU other than 0, `-ENOENT` for a bad
/// vCPU, `-EEXIST` if the VIRQ is bound already (per vCPU, or per domain for global ones).
pub fn bind_virq(virq: u32, vcpu: u32) -> HypercallResult<EvtchnPort> {
    let mut arg = EvtchnBindVirq {
        virq,
        vcpu,
        port: 0,
    };
    op(EVTCHNOP_BIND_VIRQ, &mut arg).map(|_| arg.port)
}

/// `EVTCHNOP_bind_ipi`: a new port whose `send` notifies `vcpu` of this domain.
///
/// # Errors
/// `-ENOENT` for a bad vCPU.
pub fn bind_ipi(vcpu: u32) -> HypercallResult<EvtchnPort> {
    let mut arg = EvtchnBindIpi { vcpu, port: 0 };
    op(EVTCHNOP_BIND_IPI, &mut arg).map(|_| arg.port)
}

/// `EVTCHNOP_bind_vcpu`: makes `port` notify `vcpu` from now on.
///
/// # Errors
/// `-EINVAL` for a per-vCPU VIRQ or an IPI port, or a closed port; `-ENOENT` for a bad vCPU.
pub fn bind_vcpu(port: EvtchnPort, vcpu: u32) -> HypercallResult {
    op(EVTCHNOP_BIND_VCPU, &mut EvtchnBindVcpu { port, vcpu })
}

/// `EVTCHNOP_unmask`: clears the mask bit of `port` and re-raises it if it is pending.
///
/// # Errors
/// `-EINVAL` for a port out of range.
pub fn unmask(port: EvtchnPort) -> HypercallResult {
    op(EVTCHNOP_UNMASK, &mut EvtchnUnmask { port })
}

/// `EVTCHNOP_close`.
///
/// # Errors
/// `-EINVAL` for a port that is not open.
pub fn close(port: EvtchnPort) -> HypercallResult {
    op(EVTCHNOP_CLOSE, &mut EvtchnClose { port })
}

/// `EVTCHNOP_status` of `port` in `dom` (`DOMID_SELF`, or another domain for a privileged
/// caller).
///
/// # Errors
/// `-ESRCH` for an unknown domain, `-EINVAL` for a port out of range.
pub fn status(dom: DomidT, port: EvtchnPort) -> HypercallResult<EvtchnStatus> {
    let mut arg = EvtchnStatus {
        dom,
        port,
        ..EvtchnStatus::default()
    };
    op(EVTCHNOP_STATUS, &mut arg).map(|_| arg)
}

/// `EVTCHNOP_reset`: closes every port of `dom` (`DOMID_SELF`, or privileged).
///
/// # Errors
/// `-ESRCH` for an unknown domain, `-EPERM` without the privilege.
pub fn reset(dom: DomidT) -> HypercallResult {
    op(EVTCHNOP_RESET, &mut EvtchnReset { dom })
}

/// `EVTCHNOP_init_control` (FIFO ABI): registers `vcpu`'s control block at `offset` in frame
/// `control_gfn` and switches the domain to the FIFO ABI. Returns the hypervisor's result and
/// the `link_bits` it wrote back.
///
/// On success the hypervisor from then on writes the control block and stops using
/// `shared_info`'s 2-level bitmaps; the kit's event layer knows only the 2-level ABI.
///
/// # Safety
/// A successful call makes the hypervisor write the frame `control_gfn` at any time: it must
/// be a frame the caller has set aside for that.
///
/// # Errors
/// The hypervisor's error.
pub unsafe fn init_control(control_gfn: u64, offset: u32, vcpu: u32) -> (HypercallResult, u8) {
    let mut arg = EvtchnInitControl {
        control_gfn,
        offset,
        vcpu,
        ..EvtchnInitControl::default()
    };
    let ret = op(EVTCHNOP_INIT_CONTROL, &mut arg);
    (ret, arg.link_bits)
}

/// `EVTCHNOP_expand_array` (FIFO ABI): adds the event-array page `array_gfn`.
///
/// # Safety
/// A successful call makes the hypervisor write the frame `array_gfn` at any time.
///
/// # Errors
/// The hypervisor's error.
pub unsafe fn expand_array(array_gfn: u64) -> HypercallResult {
    op(EVTCHNOP_EXPAND_ARRAY, &mut EvtchnExpandArray { array_gfn })
}

/// `EVTCHNOP_set_priority` (FIFO ABI): the queue `port` is linked on (0 highest, 15 lowest).
///
/// # Errors
/// The hypervisor's error (the 2-level ABI has no priorities).
pub fn set_priority(port: EvtchnPort, priority: u32) -> HypercallResult {
    op(
        EVTCHNOP_SET_PRIORITY,
        &mut EvtchnSetPriority { port, priority },
    )
}
