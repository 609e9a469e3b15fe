//! Segments: `set_segment_base` (25), `set_gdt` (2), `update_descriptor` (10)
//! (reference §7.3, §7.6).

use hypercall_abi::hypercall::{
    HYPERVISOR_SET_GDT, HYPERVISOR_SET_SEGMENT_BASE, HYPERVISOR_UPDATE_DESCRIPTOR,
};
use hypercall_abi::segments::SegBase;

use super::{HypercallResult, hypercall2, result_from_ret};

/// `set_segment_base(which, base)`: the FS base, the kernel or user GS base, or the user GS
/// selector (`base & 0xffff`). The kit's own code uses neither FS nor GS.
///
/// # Errors
/// `-EINVAL` for a non-canonical base.
pub fn set_segment_base(which: SegBase, base: u64) -> HypercallResult {
    // SAFETY: no memory argument; nothing in the kit depends on the FS/GS bases.
    result_from_ret(unsafe {
        hypercall2(HYPERVISOR_SET_SEGMENT_BASE, u64::from(which.raw()), base)
    })
}

/// `set_gdt(frames, entries)`: installs a GDT of `entries` descriptors held in the machine
/// frames `frames` (which the guest must have mapped read-only only). Segment registers are
/// not reloaded.
///
/// # Errors
/// `-EINVAL` for more than 7168 entries, a frame still mapped writable or holding a bad
/// descriptor, `-EFAULT` for an unreadable list. The kit refuses (`-EINVAL`) a `frames` list
/// shorter than `entries` needs.
pub fn set_gdt(frames: &[u64], entries: u32) -> HypercallResult {
    let needed = usize::try_from(entries)
        .unwrap_or(usize::MAX)
        .div_ceil(hypercall_abi::segments::GDT_ENTRIES_PER_PAGE);
    if frames.len() < needed {
        return Err(super::Errno::Einval);
    }
    // The hypervisor validates every descriptor itself.
    // SAFETY: it reads `ceil(entries / 512)` frame numbers, all inside `frames`.
    result_from_ret(unsafe {
        hypercall2(
            HYPERVISOR_SET_GDT,
            frames.as_ptr() as u64,
            u64::from(entries),
        )
    })
}

/// `update_descriptor(maddr, desc)`: writes one validated descriptor at machine address `maddr`
/// (8-byte aligned) of a descriptor-table page or an ordinary writable page.
///
/// # Safety
/// `maddr` may name any writable page of the guest: the caller must make sure the 8 bytes
/// written there are not memory Rust code relies on.
///
/// # Errors
/// `-EINVAL` for a misaligned address or a descriptor Xen refuses.
pub unsafe fn update_descriptor(maddr: u64, desc: u64) -> HypercallResult {
    // SAFETY: forwarded to the caller.
    result_from_ret(unsafe { hypercall2(HYPERVISOR_UPDATE_DESCRIPTOR, maddr, desc) })
}
