//! Host tests of the event-channel core, against a fake guest memory that records bits by
//! machine address and a sink that records kicks and raised ports.

mod delivery;
mod ops;
mod stress;

use super::*;
use std::collections::HashMap;
use std::vec::Vec;

/// Bytes per bitmap word.
const WORD: u64 = 8;

/// Machine memory as sparse little-endian words; anything never written reads as zero.
#[derive(Debug, Default)]
pub(super) struct FakeMem {
    words: HashMap<u64, u64>,
}

impl FakeMem {
    /// The word at `at` (8-byte aligned).
    pub fn word(&self, at: Paddr) -> u64 {
        assert_eq!(at.0 % WORD, 0, "unaligned word {at:?}");
        self.words.get(&at.0).copied().unwrap_or(0)
    }

    /// Writes the word at `at`.
    pub fn set_word(&mut self, at: Paddr, v: u64) {
        assert_eq!(at.0 % WORD, 0, "unaligned word {at:?}");
        self.words.insert(at.0, v);
    }

    /// Swaps the word at `at` with `v` (the guest's `xchg`).
    pub fn xchg(&mut self, at: Paddr, v: u64) -> u64 {
        let old = self.word(at);
        self.set_word(at, v);
        old
    }

    /// Writes one byte (a plain guest store).
    pub fn write_u8(&mut self, at: Paddr, v: u8) {
        let base = Paddr(at.0 & !(WORD - 1));
        let shift = (at.0 % WORD) * 8;
        let w = (self.word(base) & !(0xFF << shift)) | (u64::from(v) << shift);
        self.set_word(base, w);
    }

    /// Sets or clears one bit (a guest atomic).
    pub fn put_bit(&mut self, (word, bit): (Paddr, u32), on: bool) {
        let w = self.word(word);
        let m = 1u64 << bit;
        self.set_word(word, if on { w | m } else { w & !m });
    }

    /// Reads one bit.
    pub fn get_bit(&self, (word, bit): (Paddr, u32)) -> bool {
        self.word(word) & (1u64 << bit) != 0
    }
}

impl EventMemory for FakeMem {
    fn test_and_set_bit(&mut self, word: Paddr, bit: u32) -> bool {
        assert!(bit < 64);
        let old = self.get_bit((word, bit));
        self.put_bit((word, bit), true);
        old
    }
    fn test_and_clear_bit(&mut self, word: Paddr, bit: u32) -> bool {
        assert!(bit < 64);
        let old = self.get_bit((word, bit));
        self.put_bit((word, bit), false);
        old
    }
    fn test_bit(&self, word: Paddr, bit: u32) -> bool {
        assert!(bit < 64);
        self.get_bit((word, bit))
    }
    fn read_u8(&self, at: Paddr) -> u8 {
        let base = Paddr(at.0 & !(WORD - 1));
        (self.word(base) >> ((at.0 % WORD) * 8)) as u8
    }
}

/// Records what the core asked of the scheduler.
#[derive(Debug, Default)]
pub(super) struct RecSink {
    pub kicks: Vec<VcpuRef>,
    pub raised: Vec<(DomId, Port)>,
}

impl EventSink for RecSink {
    fn kick(&mut self, v: VcpuRef) {
        self.kicks.push(v);
    }
    fn port_raised(&mut self, dom: DomId, port: Port) {
        self.raised.push((dom, port));
    }
}

impl RecSink {
    /// Takes the recorded kicks and raised ports.
    pub fn take(&mut self) -> (Vec<VcpuRef>, Vec<(DomId, Port)>) {
        (
            core::mem::take(&mut self.kicks),
            core::mem::take(&mut self.raised),
        )
    }
}

pub(super) const D0: DomId = DomId(0);
pub(super) const D1: DomId = DomId(1);
pub(super) const D2: DomId = DomId(2);
pub(super) const SELF: DomId = DomId(hypercall_abi::domid::DOMID_SELF);

/// vCPU `vcpu` of `dom`.
pub(super) const fn v(dom: DomId, vcpu: u32) -> VcpuRef {
    VcpuRef { dom, vcpu }
}

/// The shared_info frame of test domain `dom`.
pub(super) fn shinfo(dom: DomId) -> Paddr {
    Paddr(0x10_0000 * (u64::from(dom.0) + 1))
}

/// A configuration with every 2-level port available.
pub(super) fn cfg(dom: DomId, nr_vcpus: u32, privileged: bool) -> EventDomainConfig {
    EventDomainConfig {
        nr_vcpus,
        max_port: MAX_PORT_2L,
        shared_info: shinfo(dom),
        privileged,
    }
}

/// A hub with its memory and sink: d0 (privileged, 2 vCPUs), d1 (2 vCPUs), d2 (1 vCPU).
#[derive(Debug, Default)]
pub(super) struct World {
    pub hub: EventHub,
    pub mem: FakeMem,
    pub sink: RecSink,
}

impl World {
    pub fn new() -> Self {
        let mut w = World::default();
        w.hub.add_domain(D0, cfg(D0, 2, true)).unwrap();
        w.hub.add_domain(D1, cfg(D1, 2, false)).unwrap();
        w.hub.add_domain(D2, cfg(D2, 1, false)).unwrap();
        w.check();
        w
    }

    /// Asserts the hub's invariants.
    #[track_caller]
    pub fn check(&self) {
        if let Err(e) = self.hub.check_invariants() {
            panic!("invariant broken: {e}");
        }
    }

    /// Whether `port` of `dom` is pending in guest memory.
    pub fn pending(&self, dom: DomId, port: Port) -> bool {
        self.mem.get_bit(pending_bit(shinfo(dom), port).unwrap())
    }

    /// Whether `port` of `dom` is masked in guest memory.
    pub fn masked(&self, dom: DomId, port: Port) -> bool {
        self.mem.get_bit(mask_bit(shinfo(dom), port).unwrap())
    }

    /// The guest masks or unmasks `port` itself.
    pub fn guest_mask(&mut self, dom: DomId, port: Port, on: bool) {
        self.mem.put_bit(mask_bit(shinfo(dom), port).unwrap(), on);
    }

    /// The guest sets or clears `port`'s pending bit itself.
    pub fn guest_pending(&mut self, dom: DomId, port: Port, on: bool) {
        self.mem
            .put_bit(pending_bit(shinfo(dom), port).unwrap(), on);
    }

    /// `vcpu_info` of `v`.
    pub fn vi(&self, v: VcpuRef) -> Paddr {
        self.hub.vcpu_info(v).unwrap()
    }

    /// `evtchn_pending_sel` of `v`.
    pub fn sel(&self, v: VcpuRef) -> u64 {
        self.mem.word(selector_word(self.vi(v)).unwrap())
    }

    /// `evtchn_upcall_pending` of `v`.
    pub fn upcall(&self, v: VcpuRef) -> u8 {
        self.mem.read_u8(self.vi(v))
    }

    /// The guest's event handler on `v`: clear `evtchn_upcall_pending`, take the selector
    /// with `xchg`, and for every set word collect and clear the pending unmasked ports;
    /// again while `evtchn_upcall_pending` is set. Returns the ports handled, in order.
    pub fn handle(&mut self, v: VcpuRef) -> Vec<u32> {
        let vi = self.vi(v);
        let si = shinfo(v.dom);
        let mut got = Vec::new();
        while self.mem.read_u8(vi) != 0 {
            self.mem.write_u8(vi, 0);
            let mut sel = self.mem.xchg(selector_word(vi).unwrap(), 0);
            while sel != 0 {
                let w = sel.trailing_zeros();
                sel &= sel - 1;
                let (pw, _) = pending_bit(si, Port(w * 64)).unwrap();
                let (mw, _) = mask_bit(si, Port(w * 64)).unwrap();
                let mut bits = self.mem.word(pw) & !self.mem.word(mw);
                while bits != 0 {
                    let b = bits.trailing_zeros();
                    bits &= bits - 1;
                    assert!(self.mem.test_and_clear_bit(pw, b));
                    got.push(w * 64 + b);
                }
            }
        }
        got
    }

    /// An interdomain channel: `a` allocates a port for `b`, `b` binds to it. Returns
    /// (`a`'s port, `b`'s port) with the binding's initial event on `b` consumed.
    pub fn connect(&mut self, a: DomId, b: DomId) -> (Port, Port) {
        let pa = self.hub.alloc_unbound(a, SELF, b).unwrap();
        let pb = self
            .hub
            .bind_interdomain(b, a, pa, &mut self.mem, &mut self.sink)
            .unwrap();
        self.guest_pending(b, pb, false);
        self.mem
            .set_word(selector_word(self.vi(v(b, 0))).unwrap(), 0);
        self.mem.write_u8(self.vi(v(b, 0)), 0);
        self.sink.take();
        self.check();
        (pa, pb)
    }
}

#[test]
fn add_domain_checks() {
    let mut w = World::new();
    assert_eq!(w.hub.add_domain(D1, cfg(D1, 1, false)), Err(Errno::Eexist));
    assert_eq!(
        w.hub.add_domain(SELF, cfg(DomId(9), 1, false)),
        Err(Errno::Einval)
    );
    assert_eq!(
        w.hub.add_domain(DomId(0x7FF1), cfg(DomId(9), 1, false)),
        Err(Errno::Einval)
    );
    let mut bad = cfg(DomId(9), 1, false);
    bad.shared_info = Paddr(0x1234);
    assert_eq!(w.hub.add_domain(DomId(9), bad), Err(Errno::Einval));
    bad.shared_info = Paddr(!0xFFF);
    assert_eq!(w.hub.add_domain(DomId(9), bad), Err(Errno::Einval));
    assert!(!w.hub.contains(DomId(9)));
    w.hub.add_domain(DomId(9), cfg(DomId(9), 1, false)).unwrap();
    assert!(w.hub.contains(DomId(9)));
    w.check();
}

#[test]
fn new_domain_layout() {
    let w = World::new();
    assert_eq!(w.hub.valid_ports(D1), Some(PORT_CHUNK));
    assert_eq!(w.hub.port_state(D1, Port(0)), Some(PortState::Reserved));
    assert_eq!(w.hub.port_state(D1, Port(1)), Some(PortState::Free));
    assert_eq!(w.hub.port_state(D1, Port(PORT_CHUNK)), None);
    // Default vcpu_info: the legacy slots of shared_info.
    assert_eq!(w.hub.vcpu_info(v(D1, 0)), Some(shinfo(D1)));
    assert_eq!(w.hub.vcpu_info(v(D1, 1)), Some(Paddr(shinfo(D1).0 + 64)));
    assert_eq!(w.hub.vcpu_info(v(D1, 2)), None);
    assert_eq!(w.hub.vcpu_info(v(DomId(7), 0)), None);
}

#[test]
fn legacy_slots_end_at_32_vcpus() {
    let mut w = World::default();
    w.hub.add_domain(D1, cfg(D1, 40, false)).unwrap();
    assert_eq!(
        w.hub.vcpu_info(v(D1, 31)),
        Some(Paddr(shinfo(D1).0 + 31 * 64))
    );
    assert_eq!(w.hub.vcpu_info(v(D1, 32)), None);
    assert_eq!(w.hub.vcpu_info(v(D1, 39)), None);
}
