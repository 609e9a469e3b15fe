//! The guest side of the 2-level event-channel ABI, over an abstract state (reference §6.3,
//! §10.3), so that the logic runs (and is tested) on the host.
//!
//! [`TwoLevel`] is one vCPU's view of the bits: its `vcpu_info` (`evtchn_upcall_pending`,
//! `evtchn_upcall_mask`, `evtchn_pending_sel`) and the domain's `evtchn_pending` and
//! `evtchn_mask` bitmaps. The kit's upcall implements it over `shared_info`
//! ([`crate::events`]); the tests here implement it over plain atomics and play the
//! hypervisor's part themselves.
//!
//! - [`dispatch`] is the upcall's loop: clear `upcall_pending`, exchange the selector with 0,
//!   for each selected word take `pending & !mask & local`, clear each of those pending bits
//!   atomically and call the handler for the ports whose bit this call cleared; loop while
//!   `upcall_pending` was set again meanwhile. A port whose pending bit someone else cleared
//!   first (a nested upcall, another vCPU) is not dispatched twice.
//! - [`unmask`] is the guest's fast path for unmasking a port bound to the current vCPU: clear
//!   the mask bit and, if the port is pending, raise it as the hypervisor would (selector bit,
//!   `upcall_pending`), telling the caller whether it must now get the upcall delivered.
//! - [`PortSet`] is a bitmap of ports in the same layout, which the kit keeps per vCPU (the
//!   ports whose handler runs on that vCPU: the `local` argument of [`dispatch`]).

use core::sync::atomic::{AtomicU64, Ordering};

use hypercall_abi::evtchn::{EVTCHN_2L_BITS_PER_WORD, EVTCHN_2L_NR_CHANNELS};
use hypercall_abi::shared_info::EVTCHN_2L_WORDS;
use hypercall_abi::types::EvtchnPort;

/// Word index and bit mask of `port` in the 2-level bitmaps, `None` past the 4096 ports.
pub fn position(port: EvtchnPort) -> Option<(usize, u64)> {
    hypercall_abi::evtchn::evtchn_2l_position(port)
}

/// The port at bit `bit` of word `word`.
fn port_at(word: usize, bit: u32) -> EvtchnPort {
    // word < 64 and bit < 64, so the port is below 4096.
    u32::try_from(word).unwrap_or(0) * EVTCHN_2L_BITS_PER_WORD + bit
}

/// One vCPU's view of the 2-level event state. Every method is one access of the shared
/// memory; the read-modify-writes must be atomic (the hypervisor and other vCPUs change the
/// same words concurrently).
pub trait TwoLevel {
    /// Reads this vCPU's `evtchn_upcall_pending`.
    fn upcall_pending(&self) -> bool;
    /// Writes this vCPU's `evtchn_upcall_pending` (a plain store: only this vCPU clears it).
    fn set_upcall_pending(&self, pending: bool);
    /// Reads this vCPU's `evtchn_upcall_mask`.
    fn upcall_masked(&self) -> bool;
    /// Atomically exchanges this vCPU's `evtchn_pending_sel` with 0, returning the old value.
    fn take_selector(&self) -> u64;
    /// Atomically sets bit `word` of this vCPU's `evtchn_pending_sel`; returns whether it was
    /// set already.
    fn test_and_set_selector(&self, word: usize) -> bool;
    /// Reads word `word` of `evtchn_pending`.
    fn pending_word(&self, word: usize) -> u64;
    /// Reads word `word` of `evtchn_mask`.
    fn mask_word(&self, word: usize) -> u64;
    /// Atomically clears `bit` in word `word` of `evtchn_pending`; returns whether it was set.
    fn test_and_clear_pending(&self, word: usize, bit: u64) -> bool;
    /// Atomically clears `bit` in word `word` of `evtchn_mask`; returns whether it was set.
    fn test_and_clear_mask(&self, word: usize, bit: u64) -> bool;
}

/// What one [`dispatch`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dispatched {
    /// Passes of the outer loop (1 unless events arrived during the dispatch).
    pub rounds: u32,
    /// Handler calls.
    pub ports: u32,
}

/// The upcall's dispatch loop (reference §10.3, guest side): see the module documentation.
///
/// `local(word)` is the bitmap word of ports this vCPU handles (others, and ports nobody
/// handles, are left pending); `handle` is called once per port whose pending bit this call
/// cleared.
pub fn dispatch<S: TwoLevel + ?Sized>(
    state: &S,
    local: impl Fn(usize) -> u64,
    mut handle: impl FnMut(EvtchnPort),
) -> Dispatched {
    let mut done = Dispatched::default();
    loop {
        done.rounds = done.rounds.saturating_add(1);
        state.set_upcall_pending(false);
        let mut selector = state.take_selector();
        while selector != 0 {
            let word_index = selector.trailing_zeros();
            selector &= selector - 1;
            let word = usize::try_from(word_index).unwrap_or(usize::MAX);
            if word >= EVTCHN_2L_WORDS {
                continue;
            }
            let mut ready = state.pending_word(word) & !state.mask_word(word) & local(word);
            while ready != 0 {
                let bit = ready.trailing_zeros();
                ready &= ready - 1;
                if state.test_and_clear_pending(word, 1 << bit) {
                    done.ports = done.ports.saturating_add(1);
                    handle(port_at(word, bit));
                }
            }
        }
        if !state.upcall_pending() {
            return done;
        }
    }
}

/// What [`unmask`] left to the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unmasked {
    /// Nothing to deliver: the port was not pending, or its event was already signalled.
    Quiet,
    /// The port was pending and is now signalled (`upcall_pending` set) but events are masked
    /// on this vCPU: the upcall follows when they are enabled.
    Deferred,
    /// The port was pending and events are enabled: the caller must get the upcall delivered
    /// now (a harmless hypercall, after which the hypervisor delivers it).
    DeliverNow,
}

/// The guest's unmask fast path for a port bound to the *current* vCPU (reference §10.3):
/// clear the mask bit; if the port is pending, set its selector bit and, if that was clear,
/// `upcall_pending`. For a port bound to another vCPU use `EVTCHNOP_unmask` instead.
///
/// Returns `None` for a port out of range.
pub fn unmask<S: TwoLevel + ?Sized>(state: &S, port: EvtchnPort) -> Option<Unmasked> {
    let (word, bit) = position(port)?;
    state.test_and_clear_mask(word, bit);
    if state.pending_word(word) & bit == 0 {
        return Some(Unmasked::Quiet);
    }
    if state.test_and_set_selector(word) {
        // The word is selected already: an upcall is pending or running and will find it.
        return Some(Unmasked::Quiet);
    }
    state.set_upcall_pending(true);
    Some(if state.upcall_masked() {
        Unmasked::Deferred
    } else {
        Unmasked::DeliverNow
    })
}

/// A set of ports in the 2-level layout (64 words of 64 bits), updated atomically.
#[derive(Debug)]
pub struct PortSet {
    words: [AtomicU64; EVTCHN_2L_WORDS],
}

impl PortSet {
    /// The empty set.
    pub const fn new() -> PortSet {
        PortSet {
            words: [const { AtomicU64::new(0) }; EVTCHN_2L_WORDS],
        }
    }

    /// Adds `port`; returns whether it was in the set already. Ports past 4095 are ignored.
    pub fn insert(&self, port: EvtchnPort) -> bool {
        self.update(port, |word, bit| word.fetch_or(bit, Ordering::AcqRel))
    }

    /// Removes `port`; returns whether it was in the set.
    pub fn remove(&self, port: EvtchnPort) -> bool {
        self.update(port, |word, bit| word.fetch_and(!bit, Ordering::AcqRel))
    }

    fn update(&self, port: EvtchnPort, op: impl Fn(&AtomicU64, u64) -> u64) -> bool {
        position(port)
            .and_then(|(word, bit)| Some(op(self.words.get(word)?, bit) & bit != 0))
            .unwrap_or(false)
    }

    /// Whether `port` is in the set.
    pub fn contains(&self, port: EvtchnPort) -> bool {
        position(port).is_some_and(|(word, bit)| self.word(word) & bit != 0)
    }

    /// Word `word` of the bitmap (0 past the end).
    pub fn word(&self, word: usize) -> u64 {
        self.words
            .get(word)
            .map_or(0, |w| w.load(Ordering::Acquire))
    }

    /// Empties the set.
    pub fn clear(&self) {
        for word in &self.words {
            word.store(0, Ordering::Release);
        }
    }

    /// The number of ports in the set.
    pub fn len(&self) -> u32 {
        self.words
            .iter()
            .map(|w| w.load(Ordering::Acquire).count_ones())
            .sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for PortSet {
    fn default() -> Self {
        PortSet::new()
    }
}

/// The number of 2-level ports (4096 on x86-64).
pub const NR_PORTS: u32 = EVTCHN_2L_NR_CHANNELS;

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use core::cell::{Cell, RefCell};
    use core::sync::atomic::AtomicBool;
    use std::vec::Vec;

    /// One vCPU's `vcpu_info` and the shared bitmaps, with the hypervisor's half of the
    /// protocol (`raise`, reference §10.3 steps 1–2) for the tests to play.
    #[derive(Default)]
    struct Fake {
        upcall_pending: AtomicBool,
        upcall_mask: AtomicBool,
        selector: AtomicU64,
        pending: PortSet,
        mask: PortSet,
        /// Upcalls the hypervisor would deliver now (pending went 0 → 1 with mask clear).
        kicks: Cell<u32>,
    }

    impl Fake {
        /// What Xen does to raise `port` on this vCPU.
        fn raise(&self, port: EvtchnPort) {
            let (word, bit) = position(port).expect("port in range");
            if self.pending.insert(port) {
                return;
            }
            if self.mask.contains(port) {
                return;
            }
            if self.selector.fetch_or(1 << word, Ordering::AcqRel) & (1 << word) != 0 {
                return;
            }
            let _ = bit;
            if !self.upcall_pending.swap(true, Ordering::AcqRel) {
                self.kicks.set(self.kicks.get() + 1);
            }
        }
    }

    impl TwoLevel for Fake {
        fn upcall_pending(&self) -> bool {
            self.upcall_pending.load(Ordering::Acquire)
        }
        fn set_upcall_pending(&self, pending: bool) {
            self.upcall_pending.store(pending, Ordering::Release);
        }
        fn upcall_masked(&self) -> bool {
            self.upcall_mask.load(Ordering::Acquire)
        }
        fn take_selector(&self) -> u64 {
            self.selector.swap(0, Ordering::AcqRel)
        }
        fn test_and_set_selector(&self, word: usize) -> bool {
            self.selector.fetch_or(1 << word, Ordering::AcqRel) & (1 << word) != 0
        }
        fn pending_word(&self, word: usize) -> u64 {
            self.pending.word(word)
        }
        fn mask_word(&self, word: usize) -> u64 {
            self.mask.word(word)
        }
        fn test_and_clear_pending(&self, word: usize, bit: u64) -> bool {
            self.pending.words[word].fetch_and(!bit, Ordering::AcqRel) & bit != 0
        }
        fn test_and_clear_mask(&self, word: usize, bit: u64) -> bool {
            self.mask.words[word].fetch_and(!bit, Ordering::AcqRel) & bit != 0
        }
    }

    fn all(_: usize) -> u64 {
        u64::MAX
    }

    #[test]
    fn one_port_is_dispatched_once_and_cleared() {
        let s = Fake::default();
        s.raise(5);
        assert!(s.upcall_pending() && s.selector.load(Ordering::Relaxed) == 1);
        let mut seen = Vec::new();
        let done = dispatch(&s, all, |p| seen.push(p));
        assert_eq!(seen, [5]);
        assert_eq!(
            done,
            Dispatched {
                rounds: 1,
                ports: 1
            }
        );
        assert!(!s.pending.contains(5) && !s.upcall_pending());
        assert_eq!(s.selector.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn ports_in_several_words_in_order() {
        let s = Fake::default();
        for port in [4095, 64, 1, 130, 63] {
            s.raise(port);
        }
        let mut seen = Vec::new();
        dispatch(&s, all, |p| seen.push(p));
        assert_eq!(seen, [1, 63, 64, 130, 4095]);
        assert!(s.pending.is_empty());
        assert_eq!(s.kicks.get(), 1, "one upcall for the whole burst");
    }

    #[test]
    fn masked_port_stays_pending_and_raises_nothing() {
        let s = Fake::default();
        s.mask.insert(9);
        s.raise(9);
        assert!(s.pending.contains(9));
        assert!(!s.upcall_pending() && s.selector.load(Ordering::Relaxed) == 0);
        // Even if the word is selected for another port, the masked one is skipped.
        s.raise(10);
        let mut seen = Vec::new();
        dispatch(&s, all, |p| seen.push(p));
        assert_eq!(seen, [10]);
        assert!(s.pending.contains(9));
    }

    #[test]
    fn ports_of_other_vcpus_and_unhandled_ports_stay_pending() {
        let s = Fake::default();
        let local = PortSet::new();
        local.insert(3);
        s.raise(3);
        s.raise(4); // pending in the same word, but handled elsewhere (or by no one)
        let mut seen = Vec::new();
        dispatch(&s, |w| local.word(w), |p| seen.push(p));
        assert_eq!(seen, [3]);
        assert!(s.pending.contains(4) && !s.pending.contains(3));
    }

    #[test]
    fn events_raised_by_a_handler_are_dispatched_in_a_later_round() {
        let s = Fake::default();
        s.raise(1);
        let mut seen = Vec::new();
        let done = dispatch(&s, all, |p| {
            seen.push(p);
            match p {
                // The handler of 1 sends to 200 and to itself again.
                1 if seen.len() == 1 => {
                    s.raise(200);
                    s.raise(1);
                }
                _ => {}
            }
        });
        assert_eq!(seen, [1, 1, 200]);
        assert_eq!(
            done,
            Dispatched {
                rounds: 2,
                ports: 3
            }
        );
        assert!(s.pending.is_empty() && !s.upcall_pending());
    }

    #[test]
    fn a_nested_dispatch_takes_each_event_exactly_once() {
        // The handler of port 1 re-enables events and an upcall nests inside it: the nested
        // dispatch handles 2 and 3 (raised before the outer loop reached them); the outer loop
        // must not handle them again.
        let s = Fake::default();
        for port in [1, 2, 3] {
            s.raise(port);
        }
        let seen = RefCell::new(Vec::new());
        let depth = Cell::new(0);
        fn handler(s: &Fake, seen: &RefCell<Vec<(u32, u32)>>, depth: &Cell<u32>, p: u32) {
            seen.borrow_mut().push((p, depth.get()));
            if p == 1 {
                // The events were already selected (the outer loop took the selector): raise
                // a new one so that the nested upcall has a selector bit, as Xen would.
                s.raise(70);
                depth.set(depth.get() + 1);
                dispatch(s, all, |q| handler(s, seen, depth, q));
                depth.set(depth.get() - 1);
            }
        }
        dispatch(&s, all, |p| handler(&s, &seen, &depth, p));
        let seen = seen.into_inner();
        let mut ports: Vec<u32> = seen.iter().map(|(p, _)| *p).collect();
        ports.sort_unstable();
        assert_eq!(ports, [1, 2, 3, 70], "each event exactly once: {seen:?}");
        // The nested loop (depth 1) saw only the event raised for it; 2 and 3 were in the
        // outer loop's word, which the outer loop still handles after the nested one returns.
        assert!(seen.contains(&(70, 1)));
        assert!(s.pending.is_empty());
    }

    #[test]
    fn a_nested_dispatch_that_steals_pending_bits_prevents_duplicates() {
        // The nested loop runs with the same selector word set (Xen set it again for a new
        // event in word 0) and finds 2 and 3 still pending: it takes them; the outer loop's
        // stale `ready` mask still lists them, but its test-and-clear fails.
        let s = Fake::default();
        for port in [1, 2, 3] {
            s.raise(port);
        }
        let mut outer = Vec::new();
        let mut inner = Vec::new();
        dispatch(&s, all, |p| {
            outer.push(p);
            if p == 1 {
                s.raise(4); // same word: selector bit 0 set again
                dispatch(&s, all, |q| inner.push(q));
            }
        });
        assert_eq!(outer, [1]);
        assert_eq!(inner, [2, 3, 4]);
        assert!(s.pending.is_empty());
    }

    #[test]
    fn many_events_none_lost_none_duplicated() {
        // 10,000 sends over 7 ports in turn; an upcall is delivered after two sends in three
        // (the third finds events masked, say). A port is raised again only 7 sends later,
        // after at least one upcall, so no two of its events coalesce: every send is handled
        // exactly once.
        let s = Fake::default();
        let mut counts = [0u32; 8];
        let mut sent = [0u32; 8];
        for i in 0..10_000u32 {
            let port = 1 + i % 7;
            s.raise(port);
            sent[port as usize] += 1;
            if s.upcall_pending() && i % 3 != 0 {
                dispatch(&s, all, |p| counts[p as usize] += 1);
            }
        }
        dispatch(&s, all, |p| counts[p as usize] += 1);
        assert_eq!(counts, sent);
        assert!(s.pending.is_empty() && !s.upcall_pending());
        // Two sends to one port with no upcall in between are one event (edge semantics).
        let s = Fake::default();
        let mut count = 0u32;
        for _ in 0..10 {
            s.raise(11);
            s.raise(11);
            dispatch(&s, all, |_| count += 1);
        }
        assert_eq!(count, 10);
    }

    #[test]
    fn unmask_fast_path() {
        let s = Fake::default();
        // Not pending: just unmasked.
        s.mask.insert(7);
        assert_eq!(unmask(&s, 7), Some(Unmasked::Quiet));
        assert!(!s.mask.contains(7));
        // Pending while masked: raised now; events enabled -> deliver now.
        s.mask.insert(7);
        s.raise(7);
        assert!(!s.upcall_pending());
        assert_eq!(unmask(&s, 7), Some(Unmasked::DeliverNow));
        assert!(s.upcall_pending() && s.selector.load(Ordering::Relaxed) == 1);
        let mut seen = Vec::new();
        dispatch(&s, all, |p| seen.push(p));
        assert_eq!(seen, [7]);
        // With events masked on the vCPU: deferred.
        s.upcall_mask.store(true, Ordering::Relaxed);
        s.mask.insert(8);
        s.raise(8);
        assert_eq!(unmask(&s, 8), Some(Unmasked::Deferred));
        // The word already selected: nothing more to do.
        s.mask.insert(9);
        s.raise(9);
        assert_eq!(unmask(&s, 9), Some(Unmasked::Quiet));
        assert_eq!(unmask(&s, 4096), None);
    }

    #[test]
    fn port_sets() {
        let set = PortSet::new();
        assert!(set.is_empty());
        assert!(!set.insert(65));
        assert!(set.insert(65));
        assert!(set.contains(65) && !set.contains(64));
        assert_eq!(set.word(1), 2);
        assert!(!set.insert(4096) && !set.contains(4096));
        set.insert(4095);
        assert_eq!(set.len(), 2);
        assert!(set.remove(65) && !set.remove(65));
        set.clear();
        assert!(set.is_empty());
        assert_eq!(set.word(64), 0);
        assert_eq!(position(4095), Some((63, 1 << 63)));
        assert_eq!(NR_PORTS, 4096);
    }
}
