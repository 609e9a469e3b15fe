//! `event_channel_op` (hypercall 32) and its old form `event_channel_op_compat` (16): the
//! guest side of event channels. The semantics live in [`crate::event::EventHub`]; this layer
//! copies the argument structs in and out, as Xen does (a result that cannot be copied back is
//! `-EFAULT`, the operation having happened).

use super::{Ctx, HcResult, lo32, read_guest, write_guest};
use crate::types::{DomId, Port};
use hypercall_abi::errno::Errno;
use hypercall_abi::evtchn::{
    self as e, EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindIpi, EvtchnBindVcpu,
    EvtchnBindVirq, EvtchnClose, EvtchnOpCompat, EvtchnReset, EvtchnSend, EvtchnStatus,
    EvtchnUnmask,
};

/// `event_channel_op(cmd, arg)`.
pub fn event_channel_op(cx: &mut Ctx<'_>, args: [u64; 5]) -> HcResult {
    op(cx, lo32(args[0]), args[1])
}

/// `event_channel_op_compat(op)`: the command and its argument struct in one `evtchn_op`.
pub fn event_channel_op_compat(cx: &mut Ctx<'_>, args: [u64; 5]) -> HcResult {
    let whole: EvtchnOpCompat = read_guest(cx.mem, args[0])?;
    op(cx, whole.cmd, args[0].wrapping_add(4))
}

/// Runs command `cmd` on the argument struct at guest address `arg`.
fn op(cx: &mut Ctx<'_>, cmd: u32, arg: u64) -> HcResult {
    let me = cx.dom.id;
    let now = cx.plat.now_ns();
    match cmd {
        e::EVTCHNOP_ALLOC_UNBOUND => {
            let mut a: EvtchnAllocUnbound = read_guest(cx.mem, arg)?;
            let port = cx
                .sys
                .events
                .alloc_unbound(me, DomId(a.dom), DomId(a.remote_dom))?;
            a.port = port.0;
            write_guest(cx.mem, arg, &a)?;
            Ok(0)
        }
        e::EVTCHNOP_BIND_INTERDOMAIN => {
            let mut a: EvtchnBindInterdomain = read_guest(cx.mem, arg)?;
            let (hub, mut wake) = cx.sys.split(now);
            let port = hub.bind_interdomain(
                me,
                DomId(a.remote_dom),
                Port(a.remote_port),
                cx.emem,
                &mut wake,
            )?;
            a.local_port = port.0;
            write_guest(cx.mem, arg, &a)?;
            Ok(0)
        }
        e::EVTCHNOP_BIND_VIRQ => {
            let mut a: EvtchnBindVirq = read_guest(cx.mem, arg)?;
            a.port = cx.sys.events.bind_virq(me, a.virq, a.vcpu)?.0;
            write_guest(cx.mem, arg, &a)?;
            Ok(0)
        }
        e::EVTCHNOP_BIND_IPI => {
            let mut a: EvtchnBindIpi = read_guest(cx.mem, arg)?;
            a.port = cx.sys.events.bind_ipi(me, a.vcpu)?.0;
            write_guest(cx.mem, arg, &a)?;
            Ok(0)
        }
        e::EVTCHNOP_BIND_VCPU => {
            let a: EvtchnBindVcpu = read_guest(cx.mem, arg)?;
            cx.sys.events.bind_vcpu(me, Port(a.port), a.vcpu)?;
            Ok(0)
        }
        e::EVTCHNOP_CLOSE => {
            let a: EvtchnClose = read_guest(cx.mem, arg)?;
            cx.sys.events.close(me, Port(a.port), cx.emem)?;
            Ok(0)
        }
        e::EVTCHNOP_SEND => {
            let a: EvtchnSend = read_guest(cx.mem, arg)?;
            let (hub, mut wake) = cx.sys.split(now);
            hub.send(me, Port(a.port), cx.emem, &mut wake)?;
            Ok(0)
        }
        e::EVTCHNOP_STATUS => {
            let mut a: EvtchnStatus = read_guest(cx.mem, arg)?;
            let st = cx.sys.events.status(me, DomId(a.dom), Port(a.port))?;
            st.fill(&mut a);
            write_guest(cx.mem, arg, &a)?;
            Ok(0)
        }
        e::EVTCHNOP_UNMASK => {
            let a: EvtchnUnmask = read_guest(cx.mem, arg)?;
            let (hub, mut wake) = cx.sys.split(now);
            hub.unmask(me, Port(a.port), cx.emem, &mut wake)?;
            Ok(0)
        }
        e::EVTCHNOP_RESET => {
            let a: EvtchnReset = read_guest(cx.mem, arg)?;
            // No domain is ever paused by the toolstack yet, so only the caller's own reset
            // (or the privileged domain's on itself) can pass Xen's checks.
            cx.sys.events.reset(me, DomId(a.dom), false, cx.emem)?;
            Ok(0)
        }
        // Physical IRQs arrive with device passthrough; the FIFO ABI is not offered, and its
        // commands fail as on a Xen built without it.
        e::EVTCHNOP_BIND_PIRQ
        | e::EVTCHNOP_INIT_CONTROL
        | e::EVTCHNOP_EXPAND_ARRAY
        | e::EVTCHNOP_SET_PRIORITY => Err(Errno::Enosys),
        _ => Err(Errno::Enosys),
    }
}
