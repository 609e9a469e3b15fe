//! `event_channel_op` (hypercall 32; reference §10): allocate, send, close.

use hypercall_abi::domid::DOMID_SELF;
use hypercall_abi::evtchn::{
    EVTCHNOP_ALLOC_UNBOUND, EVTCHNOP_CLOSE, EVTCHNOP_SEND, EvtchnAllocUnbound, EvtchnClose,
    EvtchnSend,
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

/// `EVTCHNOP_send`: notifies the other end of `port` (a no-op for an unbound port).
///
/// # Errors
/// `-EINVAL` for a closed, VIRQ or PIRQ port.
pub fn send(port: EvtchnPort) -> HypercallResult {
    let arg = EvtchnSend { port };
    // SAFETY: the hypervisor reads `arg`.
    unsafe { event_channel_op(EVTCHNOP_SEND, core::ptr::from_ref(&arg) as u64) }
}

/// `EVTCHNOP_alloc_unbound`: a new port of this domain that `remote` may bind to.
///
/// # Errors
/// The hypervisor's error (`-ENOSPC` when out of ports).
pub fn alloc_unbound(remote: DomidT) -> HypercallResult<EvtchnPort> {
    let mut arg = EvtchnAllocUnbound {
        dom: DOMID_SELF,
        remote_dom: remote,
        port: 0,
    };
    // SAFETY: the hypervisor reads and writes `arg`.
    unsafe { event_channel_op(EVTCHNOP_ALLOC_UNBOUND, core::ptr::from_mut(&mut arg) as u64) }
        .map(|_| arg.port)
}

/// `EVTCHNOP_close`.
///
/// # Errors
/// `-EINVAL` for a port that is not open.
pub fn close(port: EvtchnPort) -> HypercallResult {
    let arg = EvtchnClose { port };
    // SAFETY: the hypervisor reads `arg`.
    unsafe { event_channel_op(EVTCHNOP_CLOSE, core::ptr::from_ref(&arg) as u64) }
}
