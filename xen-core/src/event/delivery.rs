//! The 2-level ABI's guest-visible bits and the delivery algorithm (reference §6.3, §10.3).
//!
//! Everything a guest sees of its event channels lives in its own memory: the
//! `evtchn_pending` and `evtchn_mask` bitmaps of the shared_info frame, and the
//! `evtchn_upcall_pending` byte and `evtchn_pending_sel` selector of each vCPU's `vcpu_info`.
//! The guest changes them while the hypervisor does, so they are only ever touched through
//! [`EventMemory`], whose bit operations are atomic read-modify-writes on the real machine.
//! Nothing here keeps a copy of a guest bit or trusts one read to still hold at the next.

use crate::types::{DomId, PAGE_SIZE, Paddr, Port, VcpuRef};
use core::mem::{offset_of, size_of};
use hypercall_abi::evtchn::{EVTCHN_2L_BITS_PER_WORD, EVTCHN_2L_NR_CHANNELS};
use hypercall_abi::shared_info::{SharedInfo, VcpuInfo, XEN_LEGACY_MAX_VCPUS};

/// Access to the guest-shared event words, by machine address.
///
/// Every `word` passed in is the address of a little-endian `u64` inside a shared_info frame
/// or a `vcpu_info`: one of the 64 words of `evtchn_pending` or `evtchn_mask`, a vCPU's
/// `evtchn_pending_sel`, or the first word of a `vcpu_info` (whose bit 0 is bit 0 of
/// `evtchn_upcall_pending`). shared_info words are 8-byte aligned; `vcpu_info` words are as
/// aligned as the guest placed its `vcpu_info`. `bit` is always below 64.
///
/// On hardware the bit operations must be single locked instructions (`lock bts`, `lock btr`),
/// because the guest clears the same bits concurrently with its own atomic operations.
pub trait EventMemory {
    /// Atomically sets bit `bit` of the word at `word`; returns whether it was already set.
    fn test_and_set_bit(&mut self, word: Paddr, bit: u32) -> bool;
    /// Atomically clears bit `bit` of the word at `word`; returns whether it was set.
    fn test_and_clear_bit(&mut self, word: Paddr, bit: u32) -> bool;
    /// Reads bit `bit` of the word at `word`.
    fn test_bit(&self, word: Paddr, bit: u32) -> bool;
    /// Reads the byte at `at` (a `vcpu_info`'s `evtchn_upcall_pending` or `evtchn_upcall_mask`).
    fn read_u8(&self, at: Paddr) -> u8;
}

/// Where event notifications leave the event-channel core: to the scheduler, which wakes
/// blocked vCPUs and interrupts running ones.
pub trait EventSink {
    /// `v` has just had `evtchn_upcall_pending` set: wake it if it is blocked or polling, and
    /// if it runs on another CPU, make it re-check for an upcall before it next enters the
    /// guest.
    fn kick(&mut self, v: VcpuRef);
    /// `port` of `dom` has just become pending: wake the vCPUs of `dom` polling on it
    /// (`SCHEDOP_poll`).
    fn port_raised(&mut self, dom: DomId, port: Port);
}

/// Byte offset of `evtchn_pending` in shared_info.
const PENDING_OFFSET: u64 = offset_of!(SharedInfo, evtchn_pending) as u64;
/// Byte offset of `evtchn_mask` in shared_info.
const MASK_OFFSET: u64 = offset_of!(SharedInfo, evtchn_mask) as u64;
/// Byte offset of the legacy `vcpu_info` array in shared_info.
const VCPU_INFO_OFFSET: u64 = offset_of!(SharedInfo, vcpu_info) as u64;
/// Size of one `vcpu_info`.
pub(super) const VCPU_INFO_SIZE: u64 = size_of::<VcpuInfo>() as u64;
/// Byte offset of `evtchn_upcall_pending` in `vcpu_info` (bit 0 of the word there).
const UPCALL_PENDING_OFFSET: u64 = offset_of!(VcpuInfo, evtchn_upcall_pending) as u64;
/// Byte offset of `evtchn_upcall_mask` in `vcpu_info`.
const UPCALL_MASK_OFFSET: u64 = offset_of!(VcpuInfo, evtchn_upcall_mask) as u64;
/// Byte offset of `evtchn_pending_sel` in `vcpu_info`.
const PENDING_SEL_OFFSET: u64 = offset_of!(VcpuInfo, evtchn_pending_sel) as u64;
/// Bytes per bitmap word.
const WORD_BYTES: u64 = size_of::<u64>() as u64;

// The word arithmetic below relies on these; the ABI crate checks the offsets themselves.
const _: () = {
    assert!(EVTCHN_2L_BITS_PER_WORD as u64 == WORD_BYTES * 8);
    assert!(UPCALL_PENDING_OFFSET == 0);
    assert!(PENDING_SEL_OFFSET.is_multiple_of(WORD_BYTES));
    assert!(size_of::<SharedInfo>() as u64 <= PAGE_SIZE);
};

/// The bitmap word index and bit of a port, or `None` past the 2-level ABI's ports.
pub(super) const fn split(port: u32) -> Option<(u32, u32)> {
    if port >= EVTCHN_2L_NR_CHANNELS {
        return None;
    }
    Some((
        port / EVTCHN_2L_BITS_PER_WORD,
        port % EVTCHN_2L_BITS_PER_WORD,
    ))
}

/// Address of word `word` of the bitmap at `field` of the shared_info frame at `shared_info`.
fn bitmap_word(shared_info: Paddr, field: u64, word: u32) -> Option<Paddr> {
    shared_info
        .checked_add(field)?
        .checked_add(u64::from(word).checked_mul(WORD_BYTES)?)
}

/// The default `vcpu_info` of vCPU `vcpu`: its slot in shared_info, for the first
/// `XEN_LEGACY_MAX_VCPUS` vCPUs; later ones have none until they register one.
pub(super) fn default_vcpu_info(shared_info: Paddr, vcpu: u32) -> Option<Paddr> {
    let legacy = u32::try_from(XEN_LEGACY_MAX_VCPUS).ok()?;
    if vcpu >= legacy {
        return None;
    }
    shared_info
        .checked_add(VCPU_INFO_OFFSET)?
        .checked_add(u64::from(vcpu).checked_mul(VCPU_INFO_SIZE)?)
}

/// Where an event for one port goes: the owning domain's shared_info and the notified vCPU.
#[derive(Clone, Copy, Debug)]
pub(super) struct Target {
    /// The notified vCPU.
    pub v: VcpuRef,
    /// Its `vcpu_info`, if it has one.
    pub vcpu_info: Option<Paddr>,
    /// The domain's shared_info frame.
    pub shared_info: Paddr,
}

/// Sets `evtchn_upcall_pending` on a vCPU and kicks it if that bit was clear.
fn mark_events_pending(mem: &mut dyn EventMemory, sink: &mut dyn EventSink, t: &Target) {
    let Some(vcpu_info) = t.vcpu_info else { return };
    let Some(word) = vcpu_info.checked_add(UPCALL_PENDING_OFFSET) else {
        return;
    };
    if !mem.test_and_set_bit(word, 0) {
        sink.kick(t.v);
    }
}

/// Sets the selector bit `word` of the target vCPU; true if it was clear (and the vCPU has a
/// `vcpu_info` at all).
fn set_selector(mem: &mut dyn EventMemory, t: &Target, word: u32) -> bool {
    let Some(sel) = t.vcpu_info.and_then(selector_word) else {
        return false;
    };
    !mem.test_and_set_bit(sel, word)
}

/// Raises `port` (reference §10.3): marks it pending and, if that is new and the port is
/// unmasked, notifies the target vCPU through its selector and `evtchn_upcall_pending`;
/// pollers are told whenever the pending bit was newly set.
pub(super) fn set_pending(
    mem: &mut dyn EventMemory,
    sink: &mut dyn EventSink,
    t: &Target,
    port: Port,
) {
    let Some((word, bit)) = split(port.0) else {
        return;
    };
    let (Some(pending), Some(mask)) = (
        bitmap_word(t.shared_info, PENDING_OFFSET, word),
        bitmap_word(t.shared_info, MASK_OFFSET, word),
    ) else {
        return;
    };
    if mem.test_and_set_bit(pending, bit) {
        return;
    }
    if !mem.test_bit(mask, bit) && set_selector(mem, t, word) {
        mark_events_pending(mem, sink, t);
    }
    sink.port_raised(t.v.dom, port);
}

/// Clears `port`'s pending bit (closing a port does this; the selector is left alone).
pub(super) fn clear_pending(mem: &mut dyn EventMemory, shared_info: Paddr, port: Port) {
    let Some((word, bit)) = split(port.0) else {
        return;
    };
    if let Some(pending) = bitmap_word(shared_info, PENDING_OFFSET, word) {
        mem.test_and_clear_bit(pending, bit);
    }
}

/// Unmasks `port` on the guest's behalf (`EVTCHNOP_unmask`): if it was masked and is
/// pending, the notification the mask held back is delivered now.
pub(super) fn unmask(mem: &mut dyn EventMemory, sink: &mut dyn EventSink, t: &Target, port: Port) {
    let Some((word, bit)) = split(port.0) else {
        return;
    };
    let (Some(pending), Some(mask)) = (
        bitmap_word(t.shared_info, PENDING_OFFSET, word),
        bitmap_word(t.shared_info, MASK_OFFSET, word),
    ) else {
        return;
    };
    if mem.test_and_clear_bit(mask, bit) && mem.test_bit(pending, bit) && set_selector(mem, t, word)
    {
        mark_events_pending(mem, sink, t);
    }
}

/// Whether `port`'s pending bit is set.
pub(super) fn is_pending(mem: &dyn EventMemory, shared_info: Paddr, port: Port) -> bool {
    let Some((word, bit)) = split(port.0) else {
        return false;
    };
    bitmap_word(shared_info, PENDING_OFFSET, word).is_some_and(|w| mem.test_bit(w, bit))
}

/// Sets every selector bit and `evtchn_upcall_pending` of a vCPU, kicking it: after the
/// vCPU's `vcpu_info` moved, so that nothing pending is lost (the guest sees a spurious scan).
pub(super) fn mark_all_pending(mem: &mut dyn EventMemory, sink: &mut dyn EventSink, t: &Target) {
    for word in 0..EVTCHN_2L_BITS_PER_WORD {
        set_selector(mem, t, word);
    }
    mark_events_pending(mem, sink, t);
}

/// Whether an upcall is due on the vCPU whose `vcpu_info` is at `vcpu_info` (reference §8.4):
/// `evtchn_upcall_pending` non-zero and `evtchn_upcall_mask` zero.
pub(super) fn upcall_deliverable(mem: &dyn EventMemory, vcpu_info: Paddr) -> bool {
    let (Some(pending), Some(mask)) = (
        vcpu_info.checked_add(UPCALL_PENDING_OFFSET),
        upcall_mask_byte(vcpu_info),
    ) else {
        return false;
    };
    hypercall_abi::shared_info::upcall_deliverable(mem.read_u8(pending), mem.read_u8(mask))
}

/// The `evtchn_pending` word holding `port` and the port's bit in it, for the shared_info
/// frame at `shared_info` (`None` past the 2-level ABI's ports).
pub fn pending_bit(shared_info: Paddr, port: Port) -> Option<(Paddr, u32)> {
    let (word, bit) = split(port.0)?;
    Some((bitmap_word(shared_info, PENDING_OFFSET, word)?, bit))
}

/// The `evtchn_mask` word holding `port` and the port's bit in it, for the shared_info frame
/// at `shared_info` (`None` past the 2-level ABI's ports).
pub fn mask_bit(shared_info: Paddr, port: Port) -> Option<(Paddr, u32)> {
    let (word, bit) = split(port.0)?;
    Some((bitmap_word(shared_info, MASK_OFFSET, word)?, bit))
}

/// Machine address of the `evtchn_pending_sel` of the `vcpu_info` at `vcpu_info`.
pub fn selector_word(vcpu_info: Paddr) -> Option<Paddr> {
    vcpu_info.checked_add(PENDING_SEL_OFFSET)
}

/// Machine address of the `evtchn_upcall_mask` byte of the `vcpu_info` at `vcpu_info`.
pub fn upcall_mask_byte(vcpu_info: Paddr) -> Option<Paddr> {
    vcpu_info.checked_add(UPCALL_MASK_OFFSET)
}
