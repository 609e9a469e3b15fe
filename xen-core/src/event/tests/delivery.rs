//! The 2-level delivery algorithm's edges (reference §10.3): which bit changes when, who is
//! kicked and which ports pollers hear about.

use super::*;
use hypercall_abi::evtchn::{VIRQ_CONSOLE, VIRQ_DEBUG, VIRQ_TIMER};

#[test]
fn bit_addresses_follow_the_abi_layout() {
    let si = Paddr(0x4000);
    assert_eq!(pending_bit(si, Port(0)), Some((Paddr(0x4000 + 2048), 0)));
    assert_eq!(
        pending_bit(si, Port(65)),
        Some((Paddr(0x4000 + 2048 + 8), 1))
    );
    assert_eq!(
        mask_bit(si, Port(4095)),
        Some((Paddr(0x4000 + 2560 + 63 * 8), 63))
    );
    assert_eq!(pending_bit(si, Port(4096)), None);
    assert_eq!(mask_bit(si, Port(u32::MAX)), None);
    assert_eq!(selector_word(Paddr(0x4040)), Some(Paddr(0x4048)));
    assert_eq!(upcall_mask_byte(Paddr(0x4040)), Some(Paddr(0x4041)));
    assert_eq!(selector_word(Paddr(u64::MAX)), None);
}

#[test]
fn first_raise_sets_pending_selector_upcall_and_kicks() {
    let mut w = World::new();
    let p = w.hub.bind_ipi(D1, 0).unwrap();
    w.hub.raise(D1, p, &mut w.mem, &mut w.sink).unwrap();
    assert!(w.pending(D1, p));
    assert_eq!(w.sel(v(D1, 0)), 1 << (p.0 / 64));
    assert_eq!(w.upcall(v(D1, 0)), 1);
    assert_eq!(w.sink.take(), (vec![v(D1, 0)], vec![(D1, p)]));
    assert!(w.hub.upcall_deliverable(v(D1, 0), &w.mem));
}

#[test]
fn second_raise_of_a_pending_port_does_nothing() {
    let mut w = World::new();
    let p = w.hub.bind_ipi(D1, 0).unwrap();
    w.hub.raise(D1, p, &mut w.mem, &mut w.sink).unwrap();
    w.sink.take();
    // Even after the guest took the selector and upcall flag, a still-pending port is not
    // re-announced: the edge is already recorded.
    w.mem.write_u8(w.vi(v(D1, 0)), 0);
    w.mem.set_word(selector_word(w.vi(v(D1, 0))).unwrap(), 0);
    w.hub.raise(D1, p, &mut w.mem, &mut w.sink).unwrap();
    w.hub.send(D1, p, &mut w.mem, &mut w.sink).unwrap();
    assert_eq!(w.sel(v(D1, 0)), 0);
    assert_eq!(w.upcall(v(D1, 0)), 0);
    assert_eq!(w.sink.take(), (vec![], vec![]));
}

#[test]
fn masked_port_gets_only_its_pending_bit() {
    let mut w = World::new();
    let p = w.hub.bind_ipi(D1, 1).unwrap();
    w.guest_mask(D1, p, true);
    w.hub.send(D1, p, &mut w.mem, &mut w.sink).unwrap();
    assert!(w.pending(D1, p));
    assert_eq!(w.sel(v(D1, 1)), 0);
    assert_eq!(w.upcall(v(D1, 1)), 0);
    // Pollers still hear about it; nobody is kicked.
    assert_eq!(w.sink.take(), (vec![], vec![(D1, p)]));
    assert!(!w.hub.upcall_deliverable(v(D1, 1), &w.mem));
    assert_eq!(w.handle(v(D1, 1)), Vec::<u32>::new());
    assert!(w.pending(D1, p), "the handler skips masked ports");
}

#[test]
fn unmask_redelivers_a_masked_pending_port() {
    let mut w = World::new();
    let p = w.hub.bind_ipi(D1, 1).unwrap();
    w.guest_mask(D1, p, true);
    w.hub.send(D1, p, &mut w.mem, &mut w.sink).unwrap();
    w.sink.take();
    w.hub.unmask(D1, p, &mut w.mem, &mut w.sink).unwrap();
    assert!(!w.masked(D1, p));
    assert_eq!(w.sel(v(D1, 1)), 1 << (p.0 / 64));
    assert_eq!(w.upcall(v(D1, 1)), 1);
    // A kick, but no new "raised": the pending bit was already set.
    assert_eq!(w.sink.take(), (vec![v(D1, 1)], vec![]));
    assert_eq!(w.handle(v(D1, 1)), vec![p.0]);
}

#[test]
fn unmask_does_nothing_more_unless_masked_and_pending() {
    let mut w = World::new();
    let p = w.hub.bind_ipi(D1, 0).unwrap();
    // Masked but not pending: only the mask bit changes.
    w.guest_mask(D1, p, true);
    w.hub.unmask(D1, p, &mut w.mem, &mut w.sink).unwrap();
    assert!(!w.masked(D1, p));
    assert_eq!((w.sel(v(D1, 0)), w.upcall(v(D1, 0))), (0, 0));
    // Pending but not masked (the guest set the bit itself): Xen only re-raises when the mask
    // bit was actually cleared.
    w.guest_pending(D1, p, true);
    w.hub.unmask(D1, p, &mut w.mem, &mut w.sink).unwrap();
    assert_eq!((w.sel(v(D1, 0)), w.upcall(v(D1, 0))), (0, 0));
    assert_eq!(w.sink.take(), (vec![], vec![]));
}

#[test]
fn unmask_with_selector_already_set_does_not_kick() {
    let mut w = World::new();
    let a = w.hub.bind_ipi(D1, 0).unwrap();
    let b = w.hub.bind_ipi(D1, 0).unwrap();
    w.guest_mask(D1, b, true);
    w.hub.send(D1, b, &mut w.mem, &mut w.sink).unwrap();
    w.hub.send(D1, a, &mut w.mem, &mut w.sink).unwrap();
    w.sink.take();
    // Same word, selector already set by `a`.
    w.hub.unmask(D1, b, &mut w.mem, &mut w.sink).unwrap();
    assert_eq!(w.sink.take(), (vec![], vec![]));
    let mut got = w.handle(v(D1, 0));
    got.sort_unstable();
    assert_eq!(got, vec![a.0, b.0]);
}

#[test]
fn selector_already_set_means_no_new_upcall() {
    let mut w = World::new();
    let a = w.hub.bind_ipi(D1, 0).unwrap();
    let b = w.hub.bind_ipi(D1, 0).unwrap();
    w.hub.send(D1, a, &mut w.mem, &mut w.sink).unwrap();
    w.sink.take();
    // The guest already cleared upcall_pending but has not taken the selector yet.
    w.mem.write_u8(w.vi(v(D1, 0)), 0);
    w.hub.send(D1, b, &mut w.mem, &mut w.sink).unwrap();
    assert!(w.pending(D1, b));
    assert_eq!(w.upcall(v(D1, 0)), 0, "selector bit was already set");
    assert_eq!(w.sink.take(), (vec![], vec![(D1, b)]));
}

#[test]
fn upcall_already_pending_means_no_second_kick() {
    let mut w = World::new();
    // Two ports in different selector words, both on vCPU 0.
    let first = w.hub.bind_ipi(D1, 0).unwrap();
    let mut far = first;
    while far.0 < 64 {
        far = w.hub.bind_ipi(D1, 0).unwrap();
    }
    w.hub.send(D1, first, &mut w.mem, &mut w.sink).unwrap();
    w.hub.send(D1, far, &mut w.mem, &mut w.sink).unwrap();
    assert_eq!(w.sel(v(D1, 0)), 0b11);
    assert_eq!(
        w.sink.take(),
        (vec![v(D1, 0)], vec![(D1, first), (D1, far)])
    );
    let mut got = w.handle(v(D1, 0));
    got.sort_unstable();
    assert_eq!(got, vec![first.0, far.0]);
}

#[test]
fn guest_sets_upcall_pending_bit_one_only() {
    // Xen treats bit 0 of the upcall_pending byte as the flag: a value with bit 0 clear
    // still gets the bit set and a kick.
    let mut w = World::new();
    let p = w.hub.bind_ipi(D1, 0).unwrap();
    w.mem.write_u8(w.vi(v(D1, 0)), 2);
    w.hub.send(D1, p, &mut w.mem, &mut w.sink).unwrap();
    assert_eq!(w.upcall(v(D1, 0)), 3);
    assert_eq!(w.sink.take().0, vec![v(D1, 0)]);
}

#[test]
fn upcall_deliverable_reads_pending_and_mask_bytes() {
    let mut w = World::new();
    let vi = w.vi(v(D1, 1));
    let mask = upcall_mask_byte(vi).unwrap();
    for (pending, masked, due) in [
        (0u8, 0u8, false),
        (1, 0, true),
        (0xFF, 0, true),
        (1, 1, false),
        (0, 1, false),
        (1, 0x80, false),
    ] {
        w.mem.write_u8(vi, pending);
        w.mem.write_u8(mask, masked);
        assert_eq!(w.hub.upcall_deliverable(v(D1, 1), &w.mem), due);
    }
    assert!(!w.hub.upcall_deliverable(v(D1, 7), &w.mem));
    assert!(!w.hub.upcall_deliverable(v(DomId(9), 0), &w.mem));
}

#[test]
fn send_virq_targets_the_right_vcpu() {
    let mut w = World::new();
    let t0 = w.hub.bind_virq(D1, VIRQ_TIMER, 0).unwrap();
    let t1 = w.hub.bind_virq(D1, VIRQ_TIMER, 1).unwrap();
    assert!(
        w.hub
            .send_virq(v(D1, 1), VIRQ_TIMER, &mut w.mem, &mut w.sink)
    );
    assert_eq!(w.sink.take(), (vec![v(D1, 1)], vec![(D1, t1)]));
    assert!(!w.pending(D1, t0));
    assert_eq!(w.handle(v(D1, 1)), vec![t1.0]);
    // Not bound, not per-vCPU, out of range, missing vCPU or domain: ignored.
    assert!(
        !w.hub
            .send_virq(v(D1, 0), VIRQ_DEBUG, &mut w.mem, &mut w.sink)
    );
    assert!(
        !w.hub
            .send_virq(v(D1, 0), VIRQ_CONSOLE, &mut w.mem, &mut w.sink)
    );
    assert!(!w.hub.send_virq(v(D1, 0), NR_VIRQS, &mut w.mem, &mut w.sink));
    assert!(!w.hub.send_virq(v(D1, 0), u32::MAX, &mut w.mem, &mut w.sink));
    assert!(
        !w.hub
            .send_virq(v(D1, 9), VIRQ_TIMER, &mut w.mem, &mut w.sink)
    );
    assert!(
        !w.hub
            .send_virq(v(DomId(9), 0), VIRQ_TIMER, &mut w.mem, &mut w.sink)
    );
    assert_eq!(w.sink.take(), (vec![], vec![]));
}

#[test]
fn send_global_virq_checks_its_class() {
    let mut w = World::new();
    let con = w.hub.bind_virq(D0, VIRQ_CONSOLE, 0).unwrap();
    w.hub.bind_virq(D0, VIRQ_TIMER, 0).unwrap();
    assert!(
        !w.hub
            .send_global_virq(D0, VIRQ_TIMER, &mut w.mem, &mut w.sink)
    );
    assert!(
        !w.hub
            .send_global_virq(D0, NR_VIRQS, &mut w.mem, &mut w.sink)
    );
    assert!(
        !w.hub
            .send_global_virq(D1, VIRQ_CONSOLE, &mut w.mem, &mut w.sink)
    );
    assert!(
        !w.hub
            .send_global_virq(DomId(9), VIRQ_CONSOLE, &mut w.mem, &mut w.sink)
    );
    assert_eq!(w.sink.take(), (vec![], vec![]));
    assert!(
        w.hub
            .send_global_virq(D0, VIRQ_CONSOLE, &mut w.mem, &mut w.sink)
    );
    assert_eq!(w.handle(v(D0, 0)), vec![con.0]);
}

#[test]
fn global_virq_on_a_domain_without_vcpus() {
    let mut w = World::default();
    w.hub.add_domain(D1, cfg(D1, 0, false)).unwrap();
    assert_eq!(w.hub.bind_virq(D1, VIRQ_CONSOLE, 0), Err(Errno::Enoent));
    assert!(
        !w.hub
            .send_global_virq(D1, VIRQ_CONSOLE, &mut w.mem, &mut w.sink)
    );
    // Unbound ports still work; events only set pending bits.
    let p = w.hub.alloc_unbound(D1, SELF, SELF).unwrap();
    let q = w
        .hub
        .bind_interdomain(D1, SELF, p, &mut w.mem, &mut w.sink)
        .unwrap();
    assert!(w.pending(D1, q));
    w.hub.unmask(D1, q, &mut w.mem, &mut w.sink).unwrap();
    w.check();
}

#[test]
fn raise_checks_port() {
    let mut w = World::new();
    assert_eq!(
        w.hub.raise(D1, Port(1), &mut w.mem, &mut w.sink),
        Err(Errno::Einval)
    );
    assert_eq!(
        w.hub.raise(D1, Port(0), &mut w.mem, &mut w.sink),
        Err(Errno::Einval)
    );
    assert_eq!(
        w.hub.raise(D1, Port(4096), &mut w.mem, &mut w.sink),
        Err(Errno::Einval)
    );
    assert_eq!(
        w.hub.raise(DomId(9), Port(1), &mut w.mem, &mut w.sink),
        Err(Errno::Esrch)
    );
    // Any bound port may be raised, a VIRQ included.
    let p = w.hub.bind_virq(D1, VIRQ_DEBUG, 1).unwrap();
    w.hub.raise(D1, p, &mut w.mem, &mut w.sink).unwrap();
    assert_eq!(w.handle(v(D1, 1)), vec![p.0]);
}

#[test]
fn poll_helpers() {
    let mut w = World::new();
    let a = w.hub.bind_ipi(D1, 0).unwrap();
    let b = w.hub.bind_ipi(D1, 0).unwrap();
    assert_eq!(w.hub.is_pending(D1, a, &w.mem), Ok(false));
    assert_eq!(w.hub.any_pending(D1, &[a, b], &w.mem), Ok(false));
    assert_eq!(w.hub.any_pending(D1, &[], &w.mem), Ok(false));
    w.hub.send(D1, b, &mut w.mem, &mut w.sink).unwrap();
    assert_eq!(w.hub.is_pending(D1, b, &w.mem), Ok(true));
    assert_eq!(w.hub.any_pending(D1, &[a, b], &w.mem), Ok(true));
    // Ports are looked at in order: a pending port before an invalid one wins, an invalid
    // one before any pending one is EINVAL.
    assert_eq!(w.hub.any_pending(D1, &[b, Port(9999)], &w.mem), Ok(true));
    assert_eq!(
        w.hub.any_pending(D1, &[a, Port(u32::MAX), b], &w.mem),
        Err(Errno::Einval)
    );
    // Valid but unbound ports are fine to poll (the guest may set their bits itself).
    assert_eq!(w.hub.is_pending(D1, Port(40), &w.mem), Ok(false));
    w.guest_pending(D1, Port(40), true);
    assert_eq!(w.hub.is_pending(D1, Port(40), &w.mem), Ok(true));
    assert_eq!(
        w.hub.is_pending(D1, Port(PORT_CHUNK), &w.mem),
        Err(Errno::Einval)
    );
    assert_eq!(w.hub.is_pending(DomId(9), a, &w.mem), Err(Errno::Esrch));
}
