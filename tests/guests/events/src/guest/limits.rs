//! The FIFO commands on a domain that uses the 2-level ABI, `EVTCHNOP_reset`, and running out
//! of ports.

use core::sync::atomic::{AtomicU64, Ordering};

use guest_support::{Checks, info};
use pv_guest_kit::abi::domid::DOMID_SELF;
use pv_guest_kit::abi::errno::Errno;
use pv_guest_kit::events::{self, Binding, Port};
use pv_guest_kit::hypercall::evtchn as raw;

/// A frame number no domain has.
const NO_FRAME: u64 = u64::MAX;

/// `event_channel_op(cmd, arg)` with a raw argument pointer.
pub fn raw_op(cmd: u32, arg: u64) -> Result<u64, Errno> {
    // SAFETY: used only with unknown commands (Xen reads nothing) or with an unmapped
    // argument address (Xen's copy fails); no guest memory is handed over.
    unsafe { raw::event_channel_op(cmd, arg) }
}

static DELIVERED: AtomicU64 = AtomicU64::new(0);

fn on_delivered(_: Port) {
    DELIVERED.fetch_add(1, Ordering::SeqCst);
}

/// Whether a fresh loopback pair still delivers through the 2-level upcall.
fn two_level_works() -> bool {
    let Some((u, l)) = super::delivery::loopback_pair(on_delivered, on_delivered) else {
        return false;
    };
    let was_enabled = events::disable();
    events::enable();
    let before = DELIVERED.load(Ordering::SeqCst);
    let sent = raw::send(u).is_ok();
    let after = DELIVERED.load(Ordering::SeqCst);
    events::restore(was_enabled);
    let _ = events::close(u);
    let _ = events::close(l);
    sent && after == before + 1
}

pub fn fifo(c: &mut Checks) {
    // The FIFO ABI is never switched on here: every call names a frame no domain has, or a
    // vCPU or port that does not accept it. Xen's answers are recorded; a hypervisor without
    // the FIFO ABI fails them all (-ENOSYS), which the checks accept.
    // SAFETY: NO_FRAME is no frame of this domain, so no memory of ours is handed over.
    let (init, link_bits) = unsafe { raw::init_control(NO_FRAME, 0, 0) };
    info(format_args!(
        "EVTCHNOP_init_control(gfn ~0, offset 0, vCPU 0): {init:?}, link_bits {link_bits}"
    ));
    c.check(
        "EVTCHNOP_init_control with a frame the domain does not have: an error",
        init.is_err(),
        format_args!("{init:?}"),
    );
    // SAFETY: as above.
    let (init_vcpu, _) = unsafe { raw::init_control(NO_FRAME, 0, 9999) };
    info(format_args!(
        "EVTCHNOP_init_control(gfn ~0, vCPU 9999): {init_vcpu:?}"
    ));
    c.check(
        "EVTCHNOP_init_control for vCPU 9999: an error",
        init_vcpu.is_err(),
        format_args!("{init_vcpu:?}"),
    );
    // SAFETY: as above.
    let (init_offset, _) = unsafe { raw::init_control(NO_FRAME, 4095, 0) };
    info(format_args!(
        "EVTCHNOP_init_control(gfn ~0, offset 4095): {init_offset:?}"
    ));
    c.check(
        "EVTCHNOP_init_control at a misaligned offset: an error",
        init_offset.is_err(),
        format_args!("{init_offset:?}"),
    );
    // SAFETY: as above.
    let expand = unsafe { raw::expand_array(NO_FRAME) };
    info(format_args!(
        "EVTCHNOP_expand_array(gfn ~0) before init_control: {expand:?}"
    ));
    c.check(
        "EVTCHNOP_expand_array on a 2-level domain: an error",
        expand.is_err(),
        format_args!("{expand:?}"),
    );
    let port = raw::alloc_unbound(DOMID_SELF).unwrap_or(1);
    let priority = raw::set_priority(port, 7);
    info(format_args!(
        "EVTCHNOP_set_priority(an unbound port, 7) on a 2-level domain: {priority:?}"
    ));
    c.check(
        "EVTCHNOP_set_priority on a 2-level domain: an error",
        priority.is_err(),
        format_args!("{priority:?}"),
    );
    let _ = raw::close(port);
    c.check(
        "after the FIFO calls the 2-level ABI still delivers",
        two_level_works(),
        format_args!("no delivery"),
    );
}

pub fn reset(c: &mut Checks) {
    let mut ports = [0u32; 4];
    ports[0] = raw::alloc_unbound(DOMID_SELF).unwrap_or(0);
    ports[1] = raw::bind_interdomain(DOMID_SELF, ports[0]).unwrap_or(0);
    ports[2] = raw::bind_ipi(0).unwrap_or(0);
    ports[3] = raw::bind_virq(pv_guest_kit::abi::evtchn::VIRQ_TIMER, 0).unwrap_or(0);
    c.check(
        "four ports open before the reset",
        ports.iter().all(|&p| p != 0),
        format_args!("{ports:?}"),
    );
    c.eq("EVTCHNOP_reset(DOMID_SELF): 0", events::reset(), Ok(()));
    c.check(
        "after EVTCHNOP_reset every port is closed",
        ports
            .iter()
            .all(|&p| events::status(p).map(|s| s.binding) == Ok(Binding::Closed)),
        format_args!("{ports:?}"),
    );
    c.check(
        "... and nothing is pending",
        ports.iter().all(|&p| !events::is_pending(p)),
        format_args!("{ports:?}"),
    );
    c.eq("EVTCHNOP_reset(dom 0, by id): 0", raw::reset(0), Ok(0));
    let timer = raw::bind_virq(pv_guest_kit::abi::evtchn::VIRQ_TIMER, 0);
    c.eq(
        "a VIRQ can be bound again after the reset: the lowest port",
        timer,
        Ok(1),
    );
    let _ = raw::close(timer.unwrap_or(0));
    c.check(
        "the upcall still works after the reset",
        two_level_works(),
        format_args!("no delivery"),
    );
}

pub fn exhaust(c: &mut Checks) {
    let mut count = 0u32;
    let mut last = 0u32;
    let end: Result<(), Errno> = loop {
        match raw::alloc_unbound(DOMID_SELF) {
            Ok(port) => {
                if port != last + 1 {
                    break Err(Errno::Eio);
                }
                last = port;
                count += 1;
            }
            Err(err) => break Err(err),
        }
    };
    info(format_args!(
        "alloc_unbound until it failed: {count} ports (1..={last}), then {end:?}"
    ));
    c.eq(
        "alloc_unbound hands out consecutive ports until -ENOSPC",
        end,
        Err(Errno::Enospc),
    );
    c.eq(
        "a 2-level dom0 gets 4095 ports (1..=4095)",
        (count, last),
        (4095, 4095),
    );
    c.eq(
        "status(port 4000) once allocated: unbound",
        events::status(4000).map(|s| s.binding),
        Ok(Binding::Unbound { remote: 0 }),
    );
    let mut failed = 0u32;
    for port in 1..=last {
        if raw::close(port).is_err() {
            failed += 1;
        }
    }
    c.eq("closing every one of them: all 0", failed, 0);
    c.eq(
        "status(port 4000) after closing: closed (no longer -EINVAL)",
        events::status(4000).map(|s| s.binding),
        Ok(Binding::Closed),
    );
    let again = raw::alloc_unbound(DOMID_SELF);
    c.eq("alloc_unbound afterwards: port 1 again", again, Ok(1));
    let _ = raw::close(again.unwrap_or(0));
}
