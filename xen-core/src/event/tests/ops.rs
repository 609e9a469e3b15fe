//! Every `EVTCHNOP_*` command: success and each error path, in Xen's order.

use super::*;
use hypercall_abi::evtchn::{
    VIRQ_ARCH_0, VIRQ_CONSOLE, VIRQ_DEBUG, VIRQ_DOM_EXC, VIRQ_TIMER, VIRQ_XENOPROF, VIRQ_XENPMU,
};

// ---------------------------------------------------------------------------------------------
// alloc_unbound

#[test]
fn alloc_unbound_self() {
    let mut w = World::new();
    assert_eq!(w.hub.alloc_unbound(D1, SELF, D2), Ok(Port(1)));
    assert_eq!(w.hub.alloc_unbound(D1, D1, SELF), Ok(Port(2)));
    assert_eq!(
        w.hub.port_state(D1, Port(1)),
        Some(PortState::Unbound { remote: D2 })
    );
    // DOMID_SELF as the remote means the caller.
    assert_eq!(
        w.hub.port_state(D1, Port(2)),
        Some(PortState::Unbound { remote: D1 })
    );
    assert_eq!(w.hub.notify_vcpu(D1, Port(1)), Some(0));
    w.check();
}

#[test]
fn alloc_unbound_remote_dom_is_not_checked() {
    let mut w = World::new();
    let p = w.hub.alloc_unbound(D1, SELF, DomId(0x1234)).unwrap();
    assert_eq!(
        w.hub.port_state(D1, p),
        Some(PortState::Unbound {
            remote: DomId(0x1234)
        })
    );
    let p = w.hub.alloc_unbound(D1, SELF, DomId(0x7FF1)).unwrap();
    assert_eq!(
        w.hub.port_state(D1, p),
        Some(PortState::Unbound {
            remote: DomId(0x7FF1)
        })
    );
}

#[test]
fn alloc_unbound_in_another_domain() {
    let mut w = World::new();
    assert_eq!(w.hub.alloc_unbound(D1, D2, SELF), Err(Errno::Eperm));
    assert_eq!(w.hub.port_state(D2, Port(1)), Some(PortState::Free));
    // The control domain may; DOMID_SELF as remote is the caller, not the target domain.
    let p = w.hub.alloc_unbound(D0, D2, SELF).unwrap();
    assert_eq!(
        w.hub.port_state(D2, p),
        Some(PortState::Unbound { remote: D0 })
    );
    let p = w.hub.alloc_unbound(D0, D2, D1).unwrap();
    assert_eq!(
        w.hub.port_state(D2, p),
        Some(PortState::Unbound { remote: D1 })
    );
    w.check();
}

#[test]
fn alloc_unbound_missing_domain() {
    let mut w = World::new();
    assert_eq!(w.hub.alloc_unbound(D1, DomId(9), SELF), Err(Errno::Esrch));
    for reserved in [0x7FF1, 0x7FF2, 0x7FF4, 0x7FFF, 0xFFFF] {
        assert_eq!(
            w.hub.alloc_unbound(D0, DomId(reserved), SELF),
            Err(Errno::Esrch)
        );
    }
    // ESRCH comes before EPERM.
    assert_eq!(w.hub.alloc_unbound(D1, DomId(9), SELF), Err(Errno::Esrch));
    // An unknown caller has no DOMID_SELF.
    assert_eq!(w.hub.alloc_unbound(DomId(9), SELF, SELF), Err(Errno::Esrch));
}

#[test]
fn alloc_unbound_full_domain_reports_enospc_before_eperm() {
    let mut w = World::new();
    let mut small = cfg(DomId(5), 1, false);
    small.max_port = 2;
    w.hub.add_domain(DomId(5), small).unwrap();
    w.hub.alloc_unbound(DomId(5), SELF, D1).unwrap();
    w.hub.alloc_unbound(DomId(5), SELF, D1).unwrap();
    assert_eq!(w.hub.alloc_unbound(DomId(5), SELF, D1), Err(Errno::Enospc));
    assert_eq!(w.hub.alloc_unbound(D1, DomId(5), SELF), Err(Errno::Enospc));
    w.hub.close(DomId(5), Port(1), &mut w.mem).unwrap();
    assert_eq!(w.hub.alloc_unbound(D1, DomId(5), SELF), Err(Errno::Eperm));
    w.check();
}

// ---------------------------------------------------------------------------------------------
// bind_interdomain

#[test]
fn bind_interdomain_connects_both_ends_and_raises_the_new_port() {
    let mut w = World::new();
    let p1 = w.hub.alloc_unbound(D1, SELF, D2).unwrap();
    let p2 = w
        .hub
        .bind_interdomain(D2, D1, p1, &mut w.mem, &mut w.sink)
        .unwrap();
    assert_eq!(p2, Port(1));
    assert_eq!(
        w.hub.port_state(D1, p1),
        Some(PortState::Interdomain {
            remote: D2,
            remote_port: p2
        })
    );
    assert_eq!(
        w.hub.port_state(D2, p2),
        Some(PortState::Interdomain {
            remote: D1,
            remote_port: p1
        })
    );
    // The binder's new port is pending and notified on vCPU 0.
    assert!(w.pending(D2, p2));
    assert!(!w.pending(D1, p1));
    assert_eq!(w.sel(v(D2, 0)), 1);
    assert_eq!(w.upcall(v(D2, 0)), 1);
    assert_eq!(w.sink.take(), (vec![v(D2, 0)], vec![(D2, p2)]));
    w.check();
}

#[test]
fn bind_interdomain_loopback() {
    let mut w = World::new();
    let a = w.hub.alloc_unbound(D1, SELF, SELF).unwrap();
    let b = w
        .hub
        .bind_interdomain(D1, SELF, a, &mut w.mem, &mut w.sink)
        .unwrap();
    assert_ne!(a, b);
    assert_eq!(
        w.hub.port_state(D1, a),
        Some(PortState::Interdomain {
            remote: D1,
            remote_port: b
        })
    );
    assert_eq!(
        w.hub.port_state(D1, b),
        Some(PortState::Interdomain {
            remote: D1,
            remote_port: a
        })
    );
    assert_eq!(w.handle(v(D1, 0)), vec![b.0]);
    // Each end raises the other.
    w.hub.send(D1, a, &mut w.mem, &mut w.sink).unwrap();
    assert_eq!(w.handle(v(D1, 0)), vec![b.0]);
    w.hub.send(D1, b, &mut w.mem, &mut w.sink).unwrap();
    assert_eq!(w.handle(v(D1, 0)), vec![a.0]);
    // The loopback also works by the domain's own id.
    let c = w.hub.alloc_unbound(D1, SELF, D1).unwrap();
    w.hub
        .bind_interdomain(D1, D1, c, &mut w.mem, &mut w.sink)
        .unwrap();
    w.check();
    // Closing one end leaves the other unbound for the domain itself.
    w.hub.close(D1, a, &mut w.mem).unwrap();
    assert_eq!(
        w.hub.port_state(D1, b),
        Some(PortState::Unbound { remote: D1 })
    );
    w.check();
}

#[test]
fn bind_interdomain_errors() {
    let mut w = World::new();
    let for_d2 = w.hub.alloc_unbound(D1, SELF, D2).unwrap();
    let ipi = w.hub.bind_ipi(D1, 0).unwrap();
    let none = |w: &mut World, dom, port| {
        w.hub
            .bind_interdomain(D0, dom, port, &mut w.mem, &mut w.sink)
    };
    assert_eq!(none(&mut w, DomId(9), for_d2), Err(Errno::Esrch));
    assert_eq!(none(&mut w, DomId(0x7FF2), for_d2), Err(Errno::Esrch));
    // Waiting for another domain, even for a privileged caller.
    assert_eq!(none(&mut w, D1, for_d2), Err(Errno::Einval));
    // Not unbound.
    assert_eq!(none(&mut w, D1, ipi), Err(Errno::Einval));
    assert_eq!(none(&mut w, D1, Port(0)), Err(Errno::Einval));
    assert_eq!(none(&mut w, D1, Port(40)), Err(Errno::Einval));
    // Invalid remote ports.
    for bad in [PORT_CHUNK, 4095, 4096, u32::MAX] {
        assert_eq!(none(&mut w, D1, Port(bad)), Err(Errno::Einval));
    }
    // Nothing was bound or raised by the failures.
    assert_eq!(w.hub.port_state(D0, Port(1)), Some(PortState::Free));
    assert_eq!(w.sink.take(), (vec![], vec![]));
    // Once bound, a port cannot be bound a second time.
    w.hub
        .bind_interdomain(D2, D1, for_d2, &mut w.mem, &mut w.sink)
        .unwrap();
    assert_eq!(
        w.hub
            .bind_interdomain(D2, D1, for_d2, &mut w.mem, &mut w.sink),
        Err(Errno::Einval)
    );
    w.check();
}

#[test]
fn bind_interdomain_full_caller_is_enospc_before_einval() {
    let mut w = World::new();
    let mut small = cfg(DomId(5), 1, false);
    small.max_port = 1;
    w.hub.add_domain(DomId(5), small).unwrap();
    w.hub.bind_ipi(DomId(5), 0).unwrap();
    assert_eq!(
        w.hub
            .bind_interdomain(DomId(5), D1, Port(33), &mut w.mem, &mut w.sink),
        Err(Errno::Enospc)
    );
    // ESRCH still comes first.
    assert_eq!(
        w.hub
            .bind_interdomain(DomId(5), DomId(9), Port(1), &mut w.mem, &mut w.sink),
        Err(Errno::Esrch)
    );
}

#[test]
fn bind_interdomain_respects_remote_notify_vcpu() {
    let mut w = World::new();
    let p1 = w.hub.alloc_unbound(D1, SELF, D0).unwrap();
    // The unbound end may be moved before the peer binds.
    w.hub.bind_vcpu(D1, p1, 1).unwrap();
    let p0 = w
        .hub
        .bind_interdomain(D0, D1, p1, &mut w.mem, &mut w.sink)
        .unwrap();
    w.sink.take();
    w.hub.send(D0, p0, &mut w.mem, &mut w.sink).unwrap();
    assert_eq!(w.sink.take(), (vec![v(D1, 1)], vec![(D1, p1)]));
    assert_eq!(w.handle(v(D1, 1)), vec![p1.0]);
}

// ---------------------------------------------------------------------------------------------
// bind_virq

#[test]
fn bind_virq_per_vcpu_and_global() {
    let mut w = World::new();
    let t0 = w.hub.bind_virq(D1, VIRQ_TIMER, 0).unwrap();
    let t1 = w.hub.bind_virq(D1, VIRQ_TIMER, 1).unwrap();
    let dbg = w.hub.bind_virq(D1, VIRQ_DEBUG, 1).unwrap();
    let con = w.hub.bind_virq(D1, VIRQ_CONSOLE, 0).unwrap();
    assert_eq!((t0, t1, dbg, con), (Port(1), Port(2), Port(3), Port(4)));
    assert_eq!(
        w.hub.port_state(D1, t1),
        Some(PortState::Virq { virq: VIRQ_TIMER })
    );
    assert_eq!(w.hub.notify_vcpu(D1, t1), Some(1));
    assert_eq!(w.hub.virq_port(v(D1, 1), VIRQ_TIMER), Some(t1));
    assert_eq!(w.hub.virq_port(v(D1, 0), VIRQ_CONSOLE), Some(con));
    assert_eq!(w.hub.virq_port(v(D1, 1), VIRQ_CONSOLE), None);
    // Per-vCPU on every vCPU; the four per-vCPU ones are exactly these.
    for virq in [VIRQ_XENOPROF, VIRQ_XENPMU] {
        w.hub.bind_virq(D1, virq, 1).unwrap();
    }
    w.check();
}

#[test]
fn bind_virq_errors() {
    let mut w = World::new();
    for bad in [NR_VIRQS, 100, u32::MAX, 0x8000_0000] {
        assert_eq!(w.hub.bind_virq(D1, bad, 0), Err(Errno::Einval));
    }
    // A global VIRQ off vCPU 0 is EINVAL, even for a vCPU that does not exist.
    assert_eq!(w.hub.bind_virq(D1, VIRQ_CONSOLE, 1), Err(Errno::Einval));
    assert_eq!(w.hub.bind_virq(D1, VIRQ_DOM_EXC, 99), Err(Errno::Einval));
    assert_eq!(
        w.hub.bind_virq(D1, VIRQ_ARCH_0, u32::MAX),
        Err(Errno::Einval)
    );
    // A per-vCPU VIRQ on a missing vCPU is ENOENT.
    assert_eq!(w.hub.bind_virq(D1, VIRQ_TIMER, 2), Err(Errno::Enoent));
    assert_eq!(
        w.hub.bind_virq(D1, VIRQ_TIMER, u32::MAX),
        Err(Errno::Enoent)
    );
    // Twice on the same vCPU is EEXIST.
    w.hub.bind_virq(D1, VIRQ_TIMER, 0).unwrap();
    assert_eq!(w.hub.bind_virq(D1, VIRQ_TIMER, 0), Err(Errno::Eexist));
    w.hub.bind_virq(D1, VIRQ_CONSOLE, 0).unwrap();
    assert_eq!(w.hub.bind_virq(D1, VIRQ_CONSOLE, 0), Err(Errno::Eexist));
    // The unnamed numbers below NR_VIRQS are global VIRQs too.
    for unnamed in [5, 14, 15, 17, 23] {
        assert!(virq_is_global(unnamed));
        assert_eq!(w.hub.bind_virq(D1, unnamed, 1), Err(Errno::Einval));
        w.hub.bind_virq(D1, unnamed, 0).unwrap();
    }
    w.check();
}

#[test]
fn bind_virq_no_space() {
    let mut w = World::new();
    let mut small = cfg(DomId(5), 1, false);
    small.max_port = 1;
    w.hub.add_domain(DomId(5), small).unwrap();
    w.hub.bind_virq(DomId(5), VIRQ_TIMER, 0).unwrap();
    assert_eq!(w.hub.bind_virq(DomId(5), VIRQ_DEBUG, 0), Err(Errno::Enospc));
    // EEXIST is checked before space.
    assert_eq!(w.hub.bind_virq(DomId(5), VIRQ_TIMER, 0), Err(Errno::Eexist));
    w.check();
}

#[test]
fn virq_classes_match_xen() {
    let per_vcpu: Vec<u32> = (0..NR_VIRQS).filter(|&q| !virq_is_global(q)).collect();
    assert_eq!(
        per_vcpu,
        vec![VIRQ_TIMER, VIRQ_DEBUG, VIRQ_XENOPROF, VIRQ_XENPMU]
    );
    for virq in hypercall_abi::evtchn::Virq::ALL {
        assert_eq!(virq.is_per_vcpu(), !virq_is_global(virq.raw()), "{virq:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// bind_ipi

#[test]
fn bind_ipi_and_send() {
    let mut w = World::new();
    let p = w.hub.bind_ipi(D1, 1).unwrap();
    assert_eq!(w.hub.port_state(D1, p), Some(PortState::Ipi));
    assert_eq!(w.hub.notify_vcpu(D1, p), Some(1));
    assert!(!w.pending(D1, p));
    w.hub.send(D1, p, &mut w.mem, &mut w.sink).unwrap();
    assert_eq!(w.sink.take(), (vec![v(D1, 1)], vec![(D1, p)]));
    assert_eq!(w.handle(v(D1, 1)), vec![p.0]);
    assert_eq!(w.handle(v(D1, 0)), Vec::<u32>::new());
    assert_eq!(w.hub.bind_ipi(D1, 2), Err(Errno::Enoent));
    assert_eq!(w.hub.bind_ipi(D1, u32::MAX), Err(Errno::Enoent));
    assert_eq!(w.hub.bind_ipi(DomId(9), 0), Err(Errno::Esrch));
    w.check();
}

// ---------------------------------------------------------------------------------------------
// bind_vcpu

#[test]
fn bind_vcpu_allowed_states() {
    let mut w = World::new();
    let unbound = w.hub.alloc_unbound(D1, SELF, D2).unwrap();
    let (inter, _) = w.connect(D1, D0);
    let global = w.hub.bind_virq(D1, VIRQ_CONSOLE, 0).unwrap();
    for p in [unbound, inter, global] {
        w.hub.bind_vcpu(D1, p, 1).unwrap();
        assert_eq!(w.hub.notify_vcpu(D1, p), Some(1));
    }
    // A moved global VIRQ stays in vCPU 0's table and is delivered to vCPU 1.
    assert_eq!(w.hub.virq_port(v(D1, 0), VIRQ_CONSOLE), Some(global));
    w.check();
    assert!(
        w.hub
            .send_global_virq(D1, VIRQ_CONSOLE, &mut w.mem, &mut w.sink)
    );
    assert_eq!(w.sink.take(), (vec![v(D1, 1)], vec![(D1, global)]));
    assert_eq!(w.handle(v(D1, 1)), vec![global.0]);
    // And back.
    w.hub.bind_vcpu(D1, global, 0).unwrap();
    w.check();
}

#[test]
fn bind_vcpu_errors() {
    let mut w = World::new();
    let timer = w.hub.bind_virq(D1, VIRQ_TIMER, 0).unwrap();
    let ipi = w.hub.bind_ipi(D1, 0).unwrap();
    assert_eq!(w.hub.bind_vcpu(D1, timer, 1), Err(Errno::Einval));
    assert_eq!(w.hub.bind_vcpu(D1, ipi, 1), Err(Errno::Einval));
    assert_eq!(w.hub.bind_vcpu(D1, Port(0), 1), Err(Errno::Einval));
    assert_eq!(w.hub.bind_vcpu(D1, Port(20), 1), Err(Errno::Einval));
    assert_eq!(w.hub.bind_vcpu(D1, Port(PORT_CHUNK), 1), Err(Errno::Einval));
    assert_eq!(w.hub.bind_vcpu(D1, Port(u32::MAX), 1), Err(Errno::Einval));
    // The vCPU is checked before the port.
    assert_eq!(w.hub.bind_vcpu(D1, Port(u32::MAX), 2), Err(Errno::Enoent));
    assert_eq!(w.hub.bind_vcpu(D1, ipi, u32::MAX), Err(Errno::Enoent));
    assert_eq!(w.hub.notify_vcpu(D1, ipi), Some(0));
    w.check();
}

// ---------------------------------------------------------------------------------------------
// close

#[test]
fn close_each_state() {
    let mut w = World::new();
    let unbound = w.hub.alloc_unbound(D1, SELF, D2).unwrap();
    let ipi = w.hub.bind_ipi(D1, 1).unwrap();
    let timer = w.hub.bind_virq(D1, VIRQ_TIMER, 1).unwrap();
    let global = w.hub.bind_virq(D1, VIRQ_DOM_EXC, 0).unwrap();
    w.hub.bind_vcpu(D1, global, 1).unwrap();
    for p in [unbound, ipi, timer, global] {
        w.guest_pending(D1, p, true);
        w.hub.close(D1, p, &mut w.mem).unwrap();
        assert_eq!(w.hub.port_state(D1, p), Some(PortState::Free));
        assert_eq!(w.hub.notify_vcpu(D1, p), Some(0));
        assert!(!w.pending(D1, p), "closing clears pending");
        w.check();
    }
    assert_eq!(w.hub.virq_port(v(D1, 1), VIRQ_TIMER), None);
    assert_eq!(w.hub.virq_port(v(D1, 0), VIRQ_DOM_EXC), None);
    // The VIRQs can be bound again.
    w.hub.bind_virq(D1, VIRQ_TIMER, 1).unwrap();
    w.hub.bind_virq(D1, VIRQ_DOM_EXC, 0).unwrap();
    w.check();
}

#[test]
fn close_errors() {
    let mut w = World::new();
    assert_eq!(w.hub.close(D1, Port(0), &mut w.mem), Err(Errno::Einval));
    assert_eq!(w.hub.close(D1, Port(5), &mut w.mem), Err(Errno::Einval));
    assert_eq!(
        w.hub.close(D1, Port(PORT_CHUNK), &mut w.mem),
        Err(Errno::Einval)
    );
    assert_eq!(
        w.hub.close(D1, Port(u32::MAX), &mut w.mem),
        Err(Errno::Einval)
    );
    let p = w.hub.bind_ipi(D1, 0).unwrap();
    w.hub.close(D1, p, &mut w.mem).unwrap();
    assert_eq!(w.hub.close(D1, p, &mut w.mem), Err(Errno::Einval));
    // The mask bit is the guest's and stays as it was.
    w.guest_mask(D1, p, true);
    let q = w.hub.bind_ipi(D1, 0).unwrap();
    assert_eq!(q, p);
    w.hub.close(D1, q, &mut w.mem).unwrap();
    assert!(w.masked(D1, q));
}

#[test]
fn close_interdomain_either_end() {
    let mut w = World::new();
    // Close the allocating end: the binder's end waits for the allocator again.
    let (p1, p2) = w.connect(D1, D2);
    w.guest_pending(D1, p1, true);
    w.guest_pending(D2, p2, true);
    w.hub.close(D1, p1, &mut w.mem).unwrap();
    assert_eq!(w.hub.port_state(D1, p1), Some(PortState::Free));
    assert!(!w.pending(D1, p1));
    assert_eq!(
        w.hub.port_state(D2, p2),
        Some(PortState::Unbound { remote: D1 })
    );
    // The other end keeps its pending bit and vCPU.
    assert!(w.pending(D2, p2));
    w.check();
    // Sending through it now does nothing.
    w.hub.send(D2, p2, &mut w.mem, &mut w.sink).unwrap();
    assert_eq!(w.sink.take(), (vec![], vec![]));
    // D1 can connect to it again.
    let again = w
        .hub
        .bind_interdomain(D1, D2, p2, &mut w.mem, &mut w.sink)
        .unwrap();
    assert_eq!(again, p1);
    w.check();

    // Close the binding end.
    let (q1, q2) = w.connect(D1, D2);
    w.hub.bind_vcpu(D1, q1, 1).unwrap();
    w.hub.close(D2, q2, &mut w.mem).unwrap();
    assert_eq!(
        w.hub.port_state(D1, q1),
        Some(PortState::Unbound { remote: D2 })
    );
    assert_eq!(w.hub.notify_vcpu(D1, q1), Some(1));
    w.check();
}

// ---------------------------------------------------------------------------------------------
// send

#[test]
fn send_each_state() {
    let mut w = World::new();
    let (p1, p2) = w.connect(D1, D2);
    w.hub.send(D1, p1, &mut w.mem, &mut w.sink).unwrap();
    assert_eq!(w.sink.take(), (vec![v(D2, 0)], vec![(D2, p2)]));
    assert!(w.pending(D2, p2));
    assert!(!w.pending(D1, p1));

    let unbound = w.hub.alloc_unbound(D1, SELF, D0).unwrap();
    w.hub.send(D1, unbound, &mut w.mem, &mut w.sink).unwrap();
    assert!(!w.pending(D1, unbound));
    assert_eq!(w.sink.take(), (vec![], vec![]));

    let timer = w.hub.bind_virq(D1, VIRQ_TIMER, 0).unwrap();
    assert_eq!(
        w.hub.send(D1, timer, &mut w.mem, &mut w.sink),
        Err(Errno::Einval)
    );
    for bad in [0, 30, PORT_CHUNK, u32::MAX] {
        assert_eq!(
            w.hub.send(D1, Port(bad), &mut w.mem, &mut w.sink),
            Err(Errno::Einval)
        );
    }
    assert_eq!(w.sink.take(), (vec![], vec![]));
    w.check();
}

// ---------------------------------------------------------------------------------------------
// status

#[test]
fn status_each_state() {
    let mut w = World::new();
    let unbound = w.hub.alloc_unbound(D1, SELF, D2).unwrap();
    let (inter, peer) = w.connect(D1, D0);
    let timer = w.hub.bind_virq(D1, VIRQ_TIMER, 1).unwrap();
    let ipi = w.hub.bind_ipi(D1, 1).unwrap();
    let st = |w: &World, p| w.hub.status(D1, SELF, p).unwrap();

    assert_eq!(
        st(&w, unbound),
        PortStatus {
            state: PortState::Unbound { remote: D2 },
            vcpu: 0
        }
    );
    assert_eq!(
        st(&w, inter),
        PortStatus {
            state: PortState::Interdomain {
                remote: D0,
                remote_port: peer
            },
            vcpu: 0
        }
    );
    assert_eq!(st(&w, timer).state, PortState::Virq { virq: VIRQ_TIMER });
    assert_eq!(st(&w, timer).vcpu, 1);
    assert_eq!(st(&w, ipi).state, PortState::Ipi);
    assert_eq!(st(&w, Port(0)).code(), EVTCHNSTAT_CLOSED);
    assert_eq!(st(&w, Port(63)).code(), EVTCHNSTAT_CLOSED);
    assert_eq!(st(&w, unbound).code(), EVTCHNSTAT_UNBOUND);
    assert_eq!(st(&w, inter).code(), EVTCHNSTAT_INTERDOMAIN);
    assert_eq!(st(&w, timer).code(), EVTCHNSTAT_VIRQ);
    assert_eq!(st(&w, ipi).code(), EVTCHNSTAT_IPI);
    // By the domain's own id too.
    assert_eq!(w.hub.status(D1, D1, ipi), w.hub.status(D1, SELF, ipi));
}

#[test]
fn status_errors_in_xen_order() {
    let w = World::new();
    assert_eq!(w.hub.status(D1, DomId(9), Port(1)), Err(Errno::Esrch));
    assert_eq!(w.hub.status(D1, SELF, Port(PORT_CHUNK)), Err(Errno::Einval));
    assert_eq!(w.hub.status(D1, SELF, Port(u32::MAX)), Err(Errno::Einval));
    // EINVAL for the port comes before EPERM for the domain.
    assert_eq!(w.hub.status(D1, D2, Port(u32::MAX)), Err(Errno::Einval));
    assert_eq!(w.hub.status(D1, D2, Port(1)), Err(Errno::Eperm));
    assert_eq!(w.hub.status(D1, D0, Port(1)), Err(Errno::Eperm));
    // The control domain may look anywhere.
    assert_eq!(
        w.hub.status(D0, D2, Port(1)).unwrap().code(),
        EVTCHNSTAT_CLOSED
    );
}

#[test]
fn status_fill_writes_only_the_reported_member() {
    let guest_in = EvtchnStatus {
        dom: 0x7FF0,
        _pad0: 0xAAAA,
        port: 7,
        status: 0xDEAD,
        vcpu: 0xBEEF,
        u: [0xFFFF_FFFF, 0xFFFF_FFFF],
    };
    let mut out = guest_in;
    PortStatus {
        state: PortState::Unbound { remote: DomId(3) },
        vcpu: 1,
    }
    .fill(&mut out);
    assert_eq!((out.status, out.vcpu), (EVTCHNSTAT_UNBOUND, 1));
    assert_eq!(out.unbound_dom(), 3);
    assert_eq!(out.u, [0xFFFF_0003, 0xFFFF_FFFF]);
    assert_eq!((out.dom, out._pad0, out.port), (0x7FF0, 0xAAAA, 7));

    let mut out = guest_in;
    PortStatus {
        state: PortState::Interdomain {
            remote: DomId(2),
            remote_port: Port(9),
        },
        vcpu: 0,
    }
    .fill(&mut out);
    assert_eq!(out.interdomain(), (2, 9));
    assert_eq!(out.u, [0xFFFF_0002, 9]);

    let mut out = guest_in;
    PortStatus {
        state: PortState::Virq { virq: 3 },
        vcpu: 0,
    }
    .fill(&mut out);
    assert_eq!((out.status, out.virq()), (EVTCHNSTAT_VIRQ, 3));
    assert_eq!(out.u, [3, 0xFFFF_FFFF]);

    for state in [PortState::Ipi, PortState::Free, PortState::Reserved] {
        let mut out = guest_in;
        PortStatus { state, vcpu: 1 }.fill(&mut out);
        assert_eq!(out.u, guest_in.u);
        assert_eq!(out.vcpu, 1);
    }
}

// ---------------------------------------------------------------------------------------------
// unmask

#[test]
fn unmask_checks_the_port() {
    let mut w = World::new();
    assert_eq!(
        w.hub.unmask(D1, Port(PORT_CHUNK), &mut w.mem, &mut w.sink),
        Err(Errno::Einval)
    );
    assert_eq!(
        w.hub.unmask(D1, Port(u32::MAX), &mut w.mem, &mut w.sink),
        Err(Errno::Einval)
    );
    // Valid ports can be unmasked whatever their state, port 0 included.
    for p in [0, 1, 63] {
        w.guest_mask(D1, Port(p), true);
        w.hub.unmask(D1, Port(p), &mut w.mem, &mut w.sink).unwrap();
        assert!(!w.masked(D1, Port(p)));
    }
    assert_eq!(
        w.hub.unmask(DomId(9), Port(1), &mut w.mem, &mut w.sink),
        Err(Errno::Esrch)
    );
}

// ---------------------------------------------------------------------------------------------
// reset

#[test]
fn reset_self_closes_everything() {
    let mut w = World::new();
    let (p1, p2) = w.connect(D1, D2);
    let (q0, q1) = w.connect(D0, D1);
    w.hub.bind_virq(D1, VIRQ_TIMER, 1).unwrap();
    w.hub.bind_virq(D1, VIRQ_CONSOLE, 0).unwrap();
    w.hub.bind_ipi(D1, 0).unwrap();
    w.hub.alloc_unbound(D1, SELF, D2).unwrap();
    w.guest_pending(D1, p1, true);
    w.hub.reset(D1, SELF, false, &mut w.mem).unwrap();
    for p in 1..PORT_CHUNK {
        assert_eq!(w.hub.port_state(D1, Port(p)), Some(PortState::Free));
    }
    assert!(!w.pending(D1, p1));
    assert_eq!(w.hub.virq_port(v(D1, 1), VIRQ_TIMER), None);
    assert_eq!(
        w.hub.port_state(D2, p2),
        Some(PortState::Unbound { remote: D1 })
    );
    assert_eq!(
        w.hub.port_state(D0, q0),
        Some(PortState::Unbound { remote: D1 })
    );
    let _ = q1;
    w.check();
    // The domain keeps working afterwards.
    assert_eq!(w.hub.bind_ipi(D1, 0), Ok(Port(1)));
    w.check();
}

#[test]
fn reset_another_domain() {
    let mut w = World::new();
    w.hub.bind_ipi(D2, 0).unwrap();
    assert_eq!(
        w.hub.reset(D1, DomId(9), true, &mut w.mem),
        Err(Errno::Esrch)
    );
    assert_eq!(w.hub.reset(D1, D2, true, &mut w.mem), Err(Errno::Eperm));
    assert_eq!(w.hub.reset(D0, D2, false, &mut w.mem), Err(Errno::Einval));
    assert_eq!(w.hub.port_state(D2, Port(1)), Some(PortState::Ipi));
    w.hub.reset(D0, D2, true, &mut w.mem).unwrap();
    assert_eq!(w.hub.port_state(D2, Port(1)), Some(PortState::Free));
    // The caller naming itself by id needs neither privilege nor a pause.
    w.hub.bind_ipi(D2, 0).unwrap();
    w.hub.reset(D2, D2, false, &mut w.mem).unwrap();
    w.check();
}

// ---------------------------------------------------------------------------------------------
// Domain removal and vcpu_info registration

#[test]
fn remove_domain_leaves_no_dangling_state() {
    let mut w = World::new();
    let (a1, a2) = w.connect(D1, D2);
    let (b0, b1) = w.connect(D0, D1);
    let (c1, c0) = w.connect(D1, D0);
    let loop_a = w.hub.alloc_unbound(D1, SELF, SELF).unwrap();
    w.hub
        .bind_interdomain(D1, SELF, loop_a, &mut w.mem, &mut w.sink)
        .unwrap();
    w.hub.bind_virq(D1, VIRQ_TIMER, 1).unwrap();
    w.hub.bind_virq(D1, VIRQ_DOM_EXC, 0).unwrap();
    let waiting = w.hub.alloc_unbound(D2, SELF, D1).unwrap();
    w.check();

    w.hub.remove_domain(D1, &mut w.mem).unwrap();
    assert!(!w.hub.contains(D1));
    w.check();
    assert_eq!(
        w.hub.port_state(D2, a2),
        Some(PortState::Unbound { remote: D1 })
    );
    assert_eq!(
        w.hub.port_state(D0, b0),
        Some(PortState::Unbound { remote: D1 })
    );
    assert_eq!(
        w.hub.port_state(D0, c0),
        Some(PortState::Unbound { remote: D1 })
    );
    // Ports merely waiting for the dead domain stay as they are.
    assert_eq!(
        w.hub.port_state(D2, waiting),
        Some(PortState::Unbound { remote: D1 })
    );
    // Its closed ports' pending bits are cleared.
    for p in [a1, b1, c1] {
        assert!(!w.pending(D1, p));
    }
    // Everything about D1 is gone.
    assert_eq!(w.hub.remove_domain(D1, &mut w.mem), Err(Errno::Esrch));
    assert_eq!(
        w.hub.send(D1, a1, &mut w.mem, &mut w.sink),
        Err(Errno::Esrch)
    );
    assert!(
        !w.hub
            .send_virq(v(D1, 1), VIRQ_TIMER, &mut w.mem, &mut w.sink)
    );
    assert_eq!(w.hub.status(D0, D1, a1), Err(Errno::Esrch));
    // Sending into the unbound remains is harmless.
    w.hub.send(D2, a2, &mut w.mem, &mut w.sink).unwrap();

    // A new domain with the same id starts clean and can reconnect.
    w.hub.add_domain(D1, cfg(D1, 1, false)).unwrap();
    let p = w
        .hub
        .bind_interdomain(D1, D2, a2, &mut w.mem, &mut w.sink)
        .unwrap();
    assert_eq!(p, Port(1));
    w.check();
}

#[test]
fn set_vcpu_info_moves_delivery() {
    let mut w = World::new();
    let new_vi = Paddr(0x90_0040);
    assert_eq!(
        w.hub
            .set_vcpu_info(v(D1, 2), new_vi, &mut w.mem, &mut w.sink),
        Err(Errno::Enoent)
    );
    assert_eq!(
        w.hub
            .set_vcpu_info(v(DomId(9), 0), new_vi, &mut w.mem, &mut w.sink),
        Err(Errno::Esrch)
    );
    assert_eq!(
        w.hub
            .set_vcpu_info(v(D1, 1), Paddr(u64::MAX - 8), &mut w.mem, &mut w.sink),
        Err(Errno::Einval)
    );
    w.hub
        .set_vcpu_info(v(D1, 1), new_vi, &mut w.mem, &mut w.sink)
        .unwrap();
    assert_eq!(w.hub.vcpu_info(v(D1, 1)), Some(new_vi));
    // Everything is marked pending at the new place and the vCPU is kicked.
    assert_eq!(w.mem.word(selector_word(new_vi).unwrap()), u64::MAX);
    assert_eq!(w.mem.read_u8(new_vi), 1);
    assert_eq!(w.sink.take(), (vec![v(D1, 1)], vec![]));
    assert_eq!(w.handle(v(D1, 1)), Vec::<u32>::new());
    // Events for vCPU 1 now go to the new vcpu_info, not the legacy slot.
    let ipi = w.hub.bind_ipi(D1, 1).unwrap();
    w.hub.send(D1, ipi, &mut w.mem, &mut w.sink).unwrap();
    assert_eq!(w.mem.word(selector_word(new_vi).unwrap()), 1);
    assert_eq!(w.mem.word(Paddr(shinfo(D1).0 + 64 + 8)), 0);
    assert_eq!(w.handle(v(D1, 1)), vec![ipi.0]);
}

#[test]
fn vcpus_without_vcpu_info_get_pending_bits_only() {
    let mut w = World::default();
    w.hub.add_domain(D1, cfg(D1, 34, false)).unwrap();
    let p = w.hub.bind_ipi(D1, 33).unwrap();
    w.hub.send(D1, p, &mut w.mem, &mut w.sink).unwrap();
    assert!(w.pending(D1, p));
    assert_eq!(w.sink.take(), (vec![], vec![(D1, p)]));
    assert!(!w.hub.upcall_deliverable(v(D1, 33), &w.mem));
    // Registering a vcpu_info makes the vCPU look at everything.
    let vi = Paddr(0x80_0000);
    w.hub
        .set_vcpu_info(v(D1, 33), vi, &mut w.mem, &mut w.sink)
        .unwrap();
    assert!(w.hub.upcall_deliverable(v(D1, 33), &w.mem));
    assert_eq!(w.handle(v(D1, 33)), vec![p.0]);
    w.check();
}
