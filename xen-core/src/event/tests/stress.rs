//! Port exhaustion, table growth, a random operation storm and a long ping-pong.

use super::*;
use hypercall_abi::evtchn::{VIRQ_CONSOLE, VIRQ_TIMER};

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn u32_below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n)) as u32
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[test]
fn exhaust_every_port_then_reuse() {
    let mut w = World::new();
    for expected in 1..=MAX_PORT_2L {
        assert_eq!(w.hub.bind_ipi(D1, 0), Ok(Port(expected)));
    }
    assert_eq!(w.hub.valid_ports(D1), Some(EVTCHN_2L_NR_CHANNELS));
    assert_eq!(w.hub.bind_ipi(D1, 0), Err(Errno::Enospc));
    assert_eq!(w.hub.alloc_unbound(D1, SELF, D2), Err(Errno::Enospc));
    assert_eq!(w.hub.bind_virq(D1, VIRQ_TIMER, 0), Err(Errno::Enospc));
    let remote = w.hub.alloc_unbound(D2, SELF, D1).unwrap();
    assert_eq!(
        w.hub
            .bind_interdomain(D1, D2, remote, &mut w.mem, &mut w.sink),
        Err(Errno::Enospc)
    );
    w.check();
    // The lowest freed port comes back first.
    for p in [3000, 77, 4095] {
        w.hub.close(D1, Port(p), &mut w.mem).unwrap();
    }
    assert_eq!(w.hub.bind_ipi(D1, 0), Ok(Port(77)));
    assert_eq!(w.hub.bind_ipi(D1, 0), Ok(Port(3000)));
    assert_eq!(w.hub.bind_ipi(D1, 0), Ok(Port(4095)));
    assert_eq!(w.hub.bind_ipi(D1, 0), Err(Errno::Enospc));
    // The highest port works like any other.
    w.hub.send(D1, Port(4095), &mut w.mem, &mut w.sink).unwrap();
    assert_eq!(w.handle(v(D1, 0)), vec![4095]);
    w.check();
}

#[test]
fn max_port_limits_allocation() {
    let mut w = World::default();
    let mut c = cfg(D1, 1, false);
    c.max_port = 100;
    w.hub.add_domain(D1, c).unwrap();
    for expected in 1..=100 {
        assert_eq!(w.hub.bind_ipi(D1, 0), Ok(Port(expected)));
    }
    assert_eq!(w.hub.bind_ipi(D1, 0), Err(Errno::Enospc));
    // The table covers whole chunks: ports 101..127 are valid but never allocated.
    assert_eq!(w.hub.valid_ports(D1), Some(128));
    assert_eq!(
        w.hub.status(D1, SELF, Port(127)).unwrap().code(),
        EVTCHNSTAT_CLOSED
    );
    assert_eq!(w.hub.status(D1, SELF, Port(128)), Err(Errno::Einval));
    w.check();

    // Above the 2-level limit, the limit wins.
    let mut c = cfg(D2, 1, false);
    c.max_port = u32::MAX;
    w.hub.add_domain(D2, c).unwrap();
    for _ in 1..=MAX_PORT_2L {
        w.hub.bind_ipi(D2, 0).unwrap();
    }
    assert_eq!(w.hub.bind_ipi(D2, 0), Err(Errno::Enospc));

    // max_port 0: no ports at all.
    let mut c = cfg(D0, 1, true);
    c.max_port = 0;
    w.hub.add_domain(D0, c).unwrap();
    assert_eq!(w.hub.bind_ipi(D0, 0), Err(Errno::Enospc));
    assert_eq!(w.hub.alloc_unbound(D0, SELF, D1), Err(Errno::Enospc));
    w.check();
}

#[test]
fn table_grows_one_chunk_at_a_time() {
    let mut w = World::new();
    for _ in 1..PORT_CHUNK {
        w.hub.bind_ipi(D1, 0).unwrap();
    }
    assert_eq!(w.hub.valid_ports(D1), Some(PORT_CHUNK));
    assert_eq!(
        w.hub.close(D1, Port(PORT_CHUNK), &mut w.mem),
        Err(Errno::Einval)
    );
    assert_eq!(w.hub.bind_ipi(D1, 0), Ok(Port(PORT_CHUNK)));
    assert_eq!(w.hub.valid_ports(D1), Some(2 * PORT_CHUNK));
    // Freeing does not shrink the table.
    w.hub.reset(D1, SELF, false, &mut w.mem).unwrap();
    assert_eq!(w.hub.valid_ports(D1), Some(2 * PORT_CHUNK));
    assert_eq!(
        w.hub
            .status(D1, SELF, Port(2 * PORT_CHUNK - 1))
            .unwrap()
            .code(),
        EVTCHNSTAT_CLOSED
    );
    // Other domains did not grow.
    assert_eq!(w.hub.valid_ports(D2), Some(PORT_CHUNK));
    w.check();
}

/// Extra checks for the storm, where no guest touches the bitmaps: free ports are never
/// pending (closing clears the bit and only bound ports are raised).
fn check_free_ports_clear(w: &World, doms: &[DomId]) {
    for &dom in doms {
        let Some(n) = w.hub.valid_ports(dom) else {
            continue;
        };
        for p in 1..n {
            if w.hub.port_state(dom, Port(p)) == Some(PortState::Free) {
                assert!(!w.pending(dom, Port(p)), "{dom} port {p} free but pending");
            }
        }
    }
}

/// A port number a guest might pass: usually plausible, sometimes hostile.
fn any_port(rng: &mut Rng) -> Port {
    match rng.below(10) {
        0 => Port(u32::MAX - rng.u32_below(4)),
        1 => Port(4096 + rng.u32_below(100)),
        2 => Port(0),
        _ => Port(rng.u32_below(140)),
    }
}

/// A domain id a guest might pass.
fn any_dom(rng: &mut Rng, doms: &[DomId]) -> DomId {
    match rng.below(10) {
        0 => SELF,
        1 => DomId(rng.next() as u16),
        _ => doms[rng.below(doms.len() as u64) as usize],
    }
}

/// A vCPU number a guest might pass.
fn any_vcpu(rng: &mut Rng) -> u32 {
    match rng.below(8) {
        0 => u32::MAX,
        1 => 2 + rng.u32_below(3),
        _ => rng.u32_below(2),
    }
}

/// A VIRQ number a guest might pass.
fn any_virq(rng: &mut Rng) -> u32 {
    if rng.chance(10) {
        NR_VIRQS + rng.u32_below(1000)
    } else {
        rng.u32_below(NR_VIRQS)
    }
}

#[test]
fn random_operation_storm() {
    let doms = [D0, D1, D2];
    let configs = [cfg(D0, 2, true), cfg(D1, 2, false), {
        let mut c = cfg(D2, 1, false);
        c.max_port = 90;
        c
    }];
    let mut w = World::default();
    for (dom, c) in doms.iter().zip(configs) {
        w.hub.add_domain(*dom, c).unwrap();
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut ok = [0usize; 16];
    for step in 0..60_000 {
        let caller = doms[rng.below(3) as usize];
        if !w.hub.contains(caller) {
            let idx = doms.iter().position(|d| *d == caller).unwrap();
            w.hub.add_domain(caller, configs[idx]).unwrap();
            continue;
        }
        let op = rng.below(16);
        let done = match op {
            0 => w
                .hub
                .alloc_unbound(caller, any_dom(&mut rng, &doms), any_dom(&mut rng, &doms))
                .is_ok(),
            1 | 2 => {
                // Prefer a port that is actually waiting for the caller.
                let remote = any_dom(&mut rng, &doms);
                let port = if rng.chance(70) {
                    let rid = if remote == SELF { caller } else { remote };
                    (1..w.hub.valid_ports(rid).unwrap_or(1))
                        .map(Port)
                        .find(|&p| {
                            w.hub.port_state(rid, p) == Some(PortState::Unbound { remote: caller })
                        })
                        .unwrap_or_else(|| any_port(&mut rng))
                } else {
                    any_port(&mut rng)
                };
                w.hub
                    .bind_interdomain(caller, remote, port, &mut w.mem, &mut w.sink)
                    .is_ok()
            }
            3 => w
                .hub
                .bind_virq(caller, any_virq(&mut rng), any_vcpu(&mut rng))
                .is_ok(),
            4 => w.hub.bind_ipi(caller, any_vcpu(&mut rng)).is_ok(),
            5 => w
                .hub
                .bind_vcpu(caller, any_port(&mut rng), any_vcpu(&mut rng))
                .is_ok(),
            6 | 7 => w.hub.close(caller, any_port(&mut rng), &mut w.mem).is_ok(),
            8 | 9 => w
                .hub
                .send(caller, any_port(&mut rng), &mut w.mem, &mut w.sink)
                .is_ok(),
            10 => w
                .hub
                .status(caller, any_dom(&mut rng, &doms), any_port(&mut rng))
                .is_ok(),
            11 => {
                let port = any_port(&mut rng);
                if let Some(bit) = mask_bit(shinfo(caller), port) {
                    let on = rng.chance(50);
                    w.mem.put_bit(bit, on);
                }
                w.hub
                    .unmask(caller, any_port(&mut rng), &mut w.mem, &mut w.sink)
                    .is_ok()
            }
            12 => {
                // Rare: resets and domain deaths.
                if rng.chance(5) {
                    let target = any_dom(&mut rng, &doms);
                    w.hub
                        .reset(caller, target, rng.chance(50), &mut w.mem)
                        .is_ok()
                } else if rng.chance(3) {
                    w.hub.remove_domain(caller, &mut w.mem).is_ok()
                } else {
                    false
                }
            }
            13 => w.hub.send_virq(
                v(caller, any_vcpu(&mut rng)),
                any_virq(&mut rng),
                &mut w.mem,
                &mut w.sink,
            ),
            14 => w
                .hub
                .send_global_virq(caller, any_virq(&mut rng), &mut w.mem, &mut w.sink),
            _ => {
                // The guest handles its events on a random vCPU (only if it has one there).
                let vcpu = rng.u32_below(2);
                if w.hub.vcpu_info(v(caller, vcpu)).is_some() {
                    w.handle(v(caller, vcpu));
                    true
                } else {
                    false
                }
            }
        };
        if done {
            ok[op as usize] += 1;
        }
        if let Err(e) = w.hub.check_invariants() {
            panic!("step {step} op {op}: {e}");
        }
        if step % 64 == 0 {
            check_free_ports_clear(&w, &doms);
        }
        w.sink.take();
    }
    // Every kind of operation succeeded some of the time.
    for (op, n) in ok.iter().enumerate() {
        assert!(*n > 0, "operation {op} never succeeded");
    }
}

#[test]
fn ping_pong_loses_and_duplicates_nothing() {
    let mut w = World::new();
    let (a, b) = w.connect(D1, D2);
    // Each side's handler only ever sees its own port.
    w.hub.bind_vcpu(D1, a, 1).unwrap();
    let (va, vb) = (v(D1, 1), v(D2, 0));
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    let (mut sent, mut got_a, mut got_b) = (0u64, 0u64, 0u64);
    for round in 0..100_000u32 {
        let to_b = round % 2 == 0;
        let (sender, sport, receiver, rv, rport) = if to_b {
            (D1, a, D2, vb, b)
        } else {
            (D2, b, D1, va, a)
        };
        let masked = rng.chance(10);
        if masked {
            w.guest_mask(receiver, rport, true);
        }
        // Several sends before the receiver runs coalesce into one event.
        let times = 1 + rng.below(3);
        for _ in 0..times {
            w.hub.send(sender, sport, &mut w.mem, &mut w.sink).unwrap();
            sent += 1;
        }
        let (kicks, raised) = w.sink.take();
        assert_eq!(raised, vec![(receiver, rport)], "round {round}");
        if masked {
            assert!(kicks.is_empty(), "round {round}: masked port kicked");
            assert!(!w.hub.upcall_deliverable(rv, &w.mem));
            assert!(w.handle(rv).is_empty());
            w.hub
                .unmask(receiver, rport, &mut w.mem, &mut w.sink)
                .unwrap();
            assert_eq!(w.sink.take(), (vec![rv], vec![]), "round {round}");
        } else {
            assert_eq!(kicks, vec![rv], "round {round}");
        }
        assert!(w.hub.upcall_deliverable(rv, &w.mem));
        let handled = w.handle(rv);
        assert_eq!(handled, vec![rport.0], "round {round}");
        if to_b {
            got_b += 1;
        } else {
            got_a += 1;
        }
        // Nothing is left behind on either side.
        assert!(!w.pending(D1, a) && !w.pending(D2, b));
        assert_eq!((w.sel(va), w.upcall(va)), (0, 0));
        assert_eq!((w.sel(vb), w.upcall(vb)), (0, 0));
    }
    assert_eq!(got_a + got_b, 100_000);
    assert_eq!((got_a, got_b), (50_000, 50_000));
    assert!(sent >= 100_000);
    w.check();
}

#[test]
fn ping_pong_with_interleaved_handling() {
    // The receiver's handler runs between the sender's sends; every send after a handled
    // one is a new event, and nothing is delivered twice.
    let mut w = World::new();
    let (a, b) = w.connect(D1, D2);
    let con = w.hub.bind_virq(D2, VIRQ_CONSOLE, 0).unwrap();
    let mut rng = Rng(77);
    let mut expected = 0u64;
    let mut handled = 0u64;
    for _ in 0..20_000 {
        let mut want = Vec::new();
        if rng.chance(60) {
            w.hub.send(D1, a, &mut w.mem, &mut w.sink).unwrap();
            want.push(b.0);
        }
        if rng.chance(30) {
            assert!(
                w.hub
                    .send_global_virq(D2, VIRQ_CONSOLE, &mut w.mem, &mut w.sink)
            );
            want.push(con.0);
        }
        expected += want.len() as u64;
        let mut got = w.handle(v(D2, 0));
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want);
        handled += got.len() as u64;
    }
    assert_eq!(handled, expected);
    w.check();
}
