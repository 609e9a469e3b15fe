//! The operations themselves: `alloc_unbound`, loopback `bind_interdomain`, `status`, `close`,
//! and hostile arguments. No handlers here: ports stay pending for the checks to see.

use guest_support::{Checks, Name, info};
use pv_guest_kit::abi::domid::{DOMID_SELF, DOMID_XEN};
use pv_guest_kit::abi::errno::Errno;
use pv_guest_kit::abi::evtchn::{EVTCHNOP_SEND, EvtchnStatus};
use pv_guest_kit::events::{self, Binding, Status};
use pv_guest_kit::hypercall::evtchn as raw;

use super::NO_DOMAIN;

fn status(port: u32) -> Result<Status, Errno> {
    events::status(port)
}

fn unbound(remote: u16) -> Result<Status, Errno> {
    Ok(Status {
        binding: Binding::Unbound { remote },
        vcpu: 0,
    })
}

fn interdomain(port: u32) -> Result<Status, Errno> {
    Ok(Status {
        binding: Binding::Interdomain { dom: 0, port },
        vcpu: 0,
    })
}

fn closed() -> Result<Status, Errno> {
    Ok(Status {
        binding: Binding::Closed,
        vcpu: 0,
    })
}

pub fn alloc_unbound(c: &mut Checks) {
    let p1 = raw::alloc_unbound_in(DOMID_SELF, 0);
    let Ok(p1) = p1 else {
        c.fail(
            "alloc_unbound(dom DOMID_SELF, remote 0)",
            format_args!("{p1:?}"),
        );
        return;
    };
    info(format_args!("first port alloc_unbound handed out: {p1}"));
    c.eq(
        "alloc_unbound: the first port is 1 (port 0 is reserved)",
        p1,
        1,
    );
    c.eq(
        "status of an unbound port: unbound, remote dom 0, vCPU 0",
        status(p1),
        unbound(0),
    );
    let p2 = raw::alloc_unbound_in(DOMID_SELF, DOMID_SELF);
    c.eq(
        "alloc_unbound(remote DOMID_SELF): the next port",
        p2,
        Ok(p1 + 1),
    );
    c.eq(
        "status: remote DOMID_SELF is recorded as the domain's own id (0)",
        status(p1 + 1),
        unbound(0),
    );
    c.eq(
        "alloc_unbound(dom 0, the caller's own id): the next port",
        raw::alloc_unbound_in(0, 0),
        Ok(p1 + 2),
    );
    c.eq(
        "alloc_unbound(remote 1, no such domain): allowed",
        raw::alloc_unbound_in(DOMID_SELF, NO_DOMAIN),
        Ok(p1 + 3),
    );
    c.eq(
        "status: remote dom 1 as given",
        status(p1 + 3),
        unbound(NO_DOMAIN),
    );
    c.eq(
        "bind_interdomain to a port reserved for dom 1: -EINVAL",
        raw::bind_interdomain(DOMID_SELF, p1 + 3),
        Err(Errno::Einval),
    );
    c.eq("close(first port): 0", raw::close(p1), Ok(0));
    c.eq(
        "alloc_unbound after a close: the lowest free port again",
        raw::alloc_unbound(0),
        Ok(p1),
    );
    c.eq(
        "send on an unbound port: 0 (nothing happens)",
        raw::send(p1),
        Ok(0),
    );
    c.check(
        "send on an unbound port: nothing pending",
        !events::is_pending(p1),
        format_args!("pending"),
    );
    for port in p1..p1 + 4 {
        c.eq(
            Name::of(format_args!("close({port})")).as_str(),
            raw::close(port),
            Ok(0),
        );
    }
}

pub fn loopback(c: &mut Checks) {
    let u = raw::alloc_unbound(DOMID_SELF);
    let Ok(u) = u else {
        c.fail("loopback: alloc_unbound", format_args!("{u:?}"));
        return;
    };
    let l = raw::bind_interdomain(DOMID_SELF, u);
    let Ok(l) = l else {
        c.fail(
            "bind_interdomain(DOMID_SELF, unbound port)",
            format_args!("{l:?}"),
        );
        return;
    };
    info(format_args!(
        "loopback pair: unbound end {u}, bound end {l}"
    ));
    c.eq("bind_interdomain: a new local port", l, u + 1);
    c.check(
        "bind_interdomain: the new local port is pending at once",
        events::is_pending(l),
        format_args!("not pending"),
    );
    c.check(
        "bind_interdomain: the remote end is not made pending",
        !events::is_pending(u),
        format_args!("pending"),
    );
    c.eq(
        "status(bound end): interdomain, dom 0, port = the other end",
        status(l),
        interdomain(u),
    );
    c.eq(
        "status(other end): interdomain, dom 0, port = the bound end",
        status(u),
        interdomain(l),
    );
    c.eq(
        "bind_interdomain to a port that is no longer unbound: -EINVAL",
        raw::bind_interdomain(DOMID_SELF, u),
        Err(Errno::Einval),
    );
    c.eq(
        "bind_interdomain(remote dom 0 = self by id): to a bound port -EINVAL",
        raw::bind_interdomain(0, l),
        Err(Errno::Einval),
    );
    events::clear_pending(l);
    c.eq("send(bound end): 0", raw::send(l), Ok(0));
    c.check(
        "send(bound end) makes the other end pending, not itself",
        events::is_pending(u) && !events::is_pending(l),
        format_args!("u {} l {}", events::is_pending(u), events::is_pending(l)),
    );
    c.eq("send(other end): 0", raw::send(u), Ok(0));
    c.check(
        "send(other end) makes the bound end pending",
        events::is_pending(l),
        format_args!("not pending"),
    );
    c.eq("close(one end of a loopback pair): 0", raw::close(u), Ok(0));
    c.eq(
        "close: the other end becomes unbound, waiting for dom 0",
        status(l),
        unbound(0),
    );
    c.check(
        "close clears the closed port's pending bit",
        !events::is_pending(u),
        format_args!("still pending"),
    );
    c.eq("send on the now unbound end: 0", raw::send(l), Ok(0));
    let l2 = raw::bind_interdomain(DOMID_SELF, l);
    c.eq(
        "bind_interdomain to the end left unbound: a new pair (lowest free port)",
        l2,
        Ok(u),
    );
    c.eq("status of the re-bound end", status(l), interdomain(u));
    c.eq("close(bound end): 0", raw::close(l), Ok(0));
    c.eq(
        "status(other end) after closing the re-bound end: unbound",
        status(u),
        unbound(0),
    );
    c.check(
        "close cleared the pending bit (the bound end was pending)",
        !events::is_pending(l),
        format_args!("still pending"),
    );
    c.eq("close(remaining end): 0", raw::close(u), Ok(0));
}

pub fn close_and_status(c: &mut Checks) {
    let p = raw::alloc_unbound(DOMID_SELF).unwrap_or(0);
    c.eq("close(unbound port): 0", raw::close(p), Ok(0));
    c.eq(
        "close(it again): -EINVAL",
        raw::close(p),
        Err(Errno::Einval),
    );
    c.eq("status of a closed port: closed", status(p), closed());
    c.eq(
        "status(dom 0 by id): as DOMID_SELF",
        raw::status(0, p).map(Status::from),
        closed(),
    );
    c.eq("status(port 0): closed (reserved)", status(0), closed());
    let high = raw::status(DOMID_SELF, 4000);
    info(format_args!(
        "status(port 4000) before any port beyond 63 was allocated: {high:?}"
    ));
    c.eq(
        "status(port 4000, never allocated, beyond the allocated buckets): -EINVAL",
        high.map(|s| s.status),
        Err(Errno::Einval),
    );
}

pub fn hostile(c: &mut Checks) {
    for port in [0u32, 4096, 1 << 31, u32::MAX] {
        c.eq(
            Name::of(format_args!("send(port {port:#x}): -EINVAL")).as_str(),
            raw::send(port),
            Err(Errno::Einval),
        );
    }
    for port in [0u32, 4096, 1 << 31] {
        c.eq(
            Name::of(format_args!("close(port {port:#x}): -EINVAL")).as_str(),
            raw::close(port),
            Err(Errno::Einval),
        );
    }
    for port in [4096u32, 1 << 31] {
        c.eq(
            Name::of(format_args!("status(port {port:#x}): -EINVAL")).as_str(),
            raw::status(DOMID_SELF, port).map(|s| s.status),
            Err(Errno::Einval),
        );
        c.eq(
            Name::of(format_args!("unmask(port {port:#x}): -EINVAL")).as_str(),
            raw::unmask(port),
            Err(Errno::Einval),
        );
        c.eq(
            Name::of(format_args!("bind_vcpu(port {port:#x}, 0): -EINVAL")).as_str(),
            raw::bind_vcpu(port, 0),
            Err(Errno::Einval),
        );
    }
    c.eq("unmask(port 0): 0", raw::unmask(0), Ok(0));
    c.eq(
        "bind_vcpu(port 0, 0): -EINVAL",
        raw::bind_vcpu(0, 0),
        Err(Errno::Einval),
    );
    for port in [0u32, 4096, 1 << 31] {
        c.eq(
            Name::of(format_args!(
                "bind_interdomain(DOMID_SELF, port {port:#x}): -EINVAL"
            ))
            .as_str(),
            raw::bind_interdomain(DOMID_SELF, port),
            Err(Errno::Einval),
        );
    }
    for dom in [NO_DOMAIN, 0x7ff5, DOMID_XEN, 0xffff] {
        c.eq(
            Name::of(format_args!("status(dom {dom:#x}, port 1): -ESRCH")).as_str(),
            raw::status(dom, 1).map(|s: EvtchnStatus| s.status),
            Err(Errno::Esrch),
        );
        c.eq(
            Name::of(format_args!(
                "bind_interdomain(dom {dom:#x}, port 1): -ESRCH"
            ))
            .as_str(),
            raw::bind_interdomain(dom, 1),
            Err(Errno::Esrch),
        );
        c.eq(
            Name::of(format_args!("alloc_unbound(dom {dom:#x}): -ESRCH")).as_str(),
            raw::alloc_unbound_in(dom, 0),
            Err(Errno::Esrch),
        );
        c.eq(
            Name::of(format_args!("reset(dom {dom:#x}): -ESRCH")).as_str(),
            raw::reset(dom),
            Err(Errno::Esrch),
        );
    }
    let odd = raw::alloc_unbound_in(DOMID_SELF, 0xffff);
    info(format_args!("alloc_unbound(remote 0xffff): {odd:?}"));
    match odd {
        Ok(port) => {
            c.eq(
                "alloc_unbound(remote 0xffff): allowed, recorded as given",
                status(port),
                unbound(0xffff),
            );
            c.eq("close it: 0", raw::close(port), Ok(0));
        }
        Err(err) => c.fail(
            "alloc_unbound(remote 0xffff): allowed",
            format_args!("{err:?}"),
        ),
    }
    for cmd in [15u32, 127, 0x8000_0000] {
        let ret = unknown_cmd(cmd);
        c.eq(
            Name::of(format_args!(
                "event_channel_op(unknown command {cmd:#x}): -ENOSYS"
            ))
            .as_str(),
            ret,
            Err(Errno::Enosys),
        );
    }
    c.eq(
        "event_channel_op(send) with an unmapped argument: -EFAULT",
        unmapped_send(),
        Err(Errno::Efault),
    );
}

/// `event_channel_op(cmd, NULL)` for a command Xen does not have.
fn unknown_cmd(cmd: u32) -> Result<u64, Errno> {
    super::limits::raw_op(cmd, 0)
}

/// `EVTCHNOP_send` with its argument at an unmapped address.
fn unmapped_send() -> Result<u64, Errno> {
    super::limits::raw_op(EVTCHNOP_SEND, 0x0000_1234_5678_0000)
}
