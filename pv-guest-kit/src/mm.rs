//! Page tables, frames and address spaces for PV guests (reference §9).
//!
//! A PV guest owns real 4-level page tables whose entries hold **machine** frame numbers. It
//! may read its tables (the hypervisor maps them read-only) but changes them only through
//! hypercalls — `mmu_update` by machine address, `update_va_mapping` for the current tables,
//! `mmuext_op` to pin tables and load roots — or, with `vm_assist(writable_pagetables)`, by
//! writing an L1 entry through a read-only mapping and letting the hypervisor emulate it (§9.7).
//!
//! This module holds the portable part (levels, index arithmetic, entry flags, [`Frame`],
//! [`MapError`]); on the guest target it also re-exports the parts that run hypercalls:
//!
//! - [`frames`]: the guest frame allocator over the domain's pages beyond the initial mapping,
//!   which it maps on demand into the kernel's 1:1 *direct map* (`VIRT_BASE + pfn * 4096`, the
//!   same layout as the initial mapping), and the helpers that make a frame read-only before it
//!   becomes a page table (and writable again afterwards);
//! - [`AddressSpace`]: a walker and editor of the page tables under one L4 (the current one or
//!   any other): [`map`](AddressSpace::map), [`unmap`](AddressSpace::unmap),
//!   [`protect`](AddressSpace::protect), creating missing L3/L2/L1 tables from the allocator;
//!   [`Mapper`] batches L1 writes into `mmu_update` calls; [`AddressSpace::clone_kernel`]
//!   builds a fresh copy of the kernel's mappings; `pin`/`unpin`, `new_baseptr` and
//!   `new_user_baseptr`;
//! - the batching builders [`MmuBatch`] and [`MulticallBatch`] from [`crate::hypercall`].
//!
//! # What is safe
//!
//! The kit's Rust code lives only in the upper half of the address space (the image, its stack,
//! heap and direct map, all from `VIRT_BASE` up). Changing a **lower-half** mapping (below
//! `0x0000_8000_0000_0000`) therefore cannot invalidate memory Rust code relies on, and the
//! editing functions are safe for lower-half addresses; the guest reads and writes such
//! mappings only through raw (volatile) accesses of its own. Upper-half edits are `unsafe`
//! (`*_unchecked`). Everything the hypervisor refuses comes back as [`MapError::Hypercall`].

use hypercall_abi::errno::Errno;
use hypercall_abi::mm::{
    _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_NX, _PAGE_PRESENT, _PAGE_RW, _PAGE_USER,
    HYPERVISOR_VIRT_END, HYPERVISOR_VIRT_START, MMUEXT_PIN_L1_TABLE, MMUEXT_PIN_L2_TABLE,
    MMUEXT_PIN_L3_TABLE, MMUEXT_PIN_L4_TABLE, ROOT_PAGETABLE_FIRST_XEN_SLOT,
    ROOT_PAGETABLE_LAST_XEN_SLOT,
};

use crate::layout::PAGE_SIZE_U64;

#[cfg(target_os = "none")]
pub use crate::arch::frames;
#[cfg(target_os = "none")]
pub use crate::arch::paging::{
    AddressSpace, Mapper, Walk, WalkStep, new_baseptr, new_user_baseptr, pin, read_entry, unpin,
};
#[cfg(target_os = "none")]
pub use crate::hypercall::mm::{BatchOutcome, MmuBatch};
#[cfg(target_os = "none")]
pub use crate::hypercall::multicall::MulticallBatch;

/// Entries per page table.
pub const ENTRIES: usize = 512;

/// The end (exclusive) of the lower, "user" half of the address space.
pub const LOWER_HALF_END: u64 = 0x0000_8000_0000_0000;

/// Entry flags for common mappings. Xen adds its own bits to what it stores (reference §9.1):
/// `US` and bit 52 on kernel L1 entries, `G` on user L1 entries, `US` (and `A` in an L4) on
/// table entries.
pub mod flags {
    use super::{_PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_NX, _PAGE_PRESENT, _PAGE_RW, _PAGE_USER};

    /// A kernel data page: present, writable, accessed, dirty.
    pub const KERNEL_RW: u64 = _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY;
    /// A kernel read-only page (also how page-table frames must be mapped).
    pub const KERNEL_RO: u64 = _PAGE_PRESENT | _PAGE_ACCESSED;
    /// A user data page: present, writable, user, accessed, dirty, not executable.
    pub const USER_RW: u64 =
        _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED | _PAGE_DIRTY | _PAGE_NX;
    /// A user code page: present, user, accessed, read-only and executable.
    pub const USER_RX: u64 = _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED;
    /// An entry of an L4, L3 or L2 pointing at the next table: present, writable, accessed,
    /// dirty, user (the leaf entries decide what is really allowed).
    pub const TABLE: u64 = _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED | _PAGE_DIRTY;
}

/// A page-table level. `L4` is the root; `L1` entries map 4 KiB pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Leaf tables (4 KiB pages).
    L1,
    /// Page directories.
    L2,
    /// Page-directory-pointer tables.
    L3,
    /// The root.
    L4,
}

impl Level {
    /// Every level, root first.
    pub const TOP_DOWN: [Level; 4] = [Level::L4, Level::L3, Level::L2, Level::L1];

    /// The shift of the virtual-address bits that index a table of this level.
    pub const fn shift(self) -> u32 {
        match self {
            Level::L1 => 12,
            Level::L2 => 21,
            Level::L3 => 30,
            Level::L4 => 39,
        }
    }

    /// The index into a table of this level for `va`.
    pub const fn index(self, va: u64) -> usize {
        ((va >> self.shift()) & 511) as usize
    }

    /// The bytes one entry of this level covers.
    pub const fn entry_span(self) -> u64 {
        1 << self.shift()
    }

    /// The next level down (`None` for `L1`).
    pub const fn lower(self) -> Option<Level> {
        match self {
            Level::L4 => Some(Level::L3),
            Level::L3 => Some(Level::L2),
            Level::L2 => Some(Level::L1),
            Level::L1 => None,
        }
    }

    /// The `MMUEXT_PIN_Lx_TABLE` command for this level.
    pub const fn pin_cmd(self) -> u32 {
        match self {
            Level::L1 => MMUEXT_PIN_L1_TABLE,
            Level::L2 => MMUEXT_PIN_L2_TABLE,
            Level::L3 => MMUEXT_PIN_L3_TABLE,
            Level::L4 => MMUEXT_PIN_L4_TABLE,
        }
    }

    /// 1 for `L1` … 4 for `L4`.
    pub const fn number(self) -> u8 {
        match self {
            Level::L1 => 1,
            Level::L2 => 2,
            Level::L3 => 3,
            Level::L4 => 4,
        }
    }
}

/// Whether `va` is canonical (bits 63–47 all equal).
pub const fn is_canonical(va: u64) -> bool {
    let top = va >> 47;
    top == 0 || top == 0x1_ffff
}

/// Whether `va` lies in the hypervisor's L4 slots 256–271 (reference §9.2).
pub const fn in_hypervisor_area(va: u64) -> bool {
    va >= HYPERVISOR_VIRT_START && va < HYPERVISOR_VIRT_END
}

/// Whether L4 slot `slot` belongs to the guest (every slot but 256–271).
pub const fn is_guest_l4_slot(slot: usize) -> bool {
    slot < ROOT_PAGETABLE_FIRST_XEN_SLOT || slot > ROOT_PAGETABLE_LAST_XEN_SLOT
}

/// Whether `va` lies in the lower half, where the kit keeps nothing.
pub const fn in_lower_half(va: u64) -> bool {
    va < LOWER_HALF_END
}

/// The canonical address of L4 slot `slot` (0–511), index 0 below it.
pub const fn l4_slot_base(slot: usize) -> u64 {
    let va = (slot as u64 & 511) << 39;
    if va & (1 << 47) != 0 {
        va | 0xffff_0000_0000_0000
    } else {
        va
    }
}

/// A machine frame of the domain together with its pseudo-physical number.
///
/// The kit's allocator hands these out; [`Frame::new`] pairs any PFN with its MFN from the P2M
/// list (the guest keeps the pair consistent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Frame {
    /// Pseudo-physical frame number (index into the P2M list).
    pub pfn: u64,
    /// Machine frame number (what page-table entries and `mmuext_op` name).
    pub mfn: u64,
}

impl Frame {
    /// Pairs a PFN with its MFN.
    pub const fn new(pfn: u64, mfn: u64) -> Frame {
        Frame { pfn, mfn }
    }

    /// The machine address of the frame's first byte.
    pub const fn maddr(&self) -> u64 {
        self.mfn * PAGE_SIZE_U64
    }

    /// The machine address of entry `index` when the frame is a page table.
    pub const fn entry_maddr(&self, index: usize) -> u64 {
        self.maddr() + (index as u64 & 511) * 8
    }

    /// A page-table entry naming this frame with `flags` (address bits of `flags` ignored).
    pub const fn pte(&self, flags: u64) -> u64 {
        hypercall_abi::mm::make_pte(self.mfn, flags)
    }
}

/// Why a page-table operation did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The address is not canonical.
    NonCanonical,
    /// The address lies in the hypervisor's slots 256–271.
    HypervisorArea,
    /// The safe interface edits lower-half mappings only; use the `*_unchecked` functions.
    KernelHalf,
    /// A table on the way to the entry (at this level) is not present.
    NotPresent(Level),
    /// A table's frame is not in the kit's direct map, so it cannot be read.
    Unreadable,
    /// The frame allocator has no frame left.
    OutOfFrames,
    /// The hypervisor refused.
    Hypercall(Errno),
}

impl From<Errno> for MapError {
    fn from(errno: Errno) -> MapError {
        MapError::Hypercall(errno)
    }
}

impl core::fmt::Display for MapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MapError::NonCanonical => f.write_str("non-canonical address"),
            MapError::HypervisorArea => f.write_str("address in the hypervisor's slots"),
            MapError::KernelHalf => f.write_str("upper-half address (use the unchecked API)"),
            MapError::NotPresent(level) => write!(f, "no L{} table", level.number()),
            MapError::Unreadable => f.write_str("page table outside the direct map"),
            MapError::OutOfFrames => f.write_str("no free frame"),
            MapError::Hypercall(errno) => write!(f, "hypervisor refused: {errno:?}"),
        }
    }
}

impl core::error::Error for MapError {}

/// Checks that `va` may carry a guest mapping at all (canonical, outside the hypervisor area).
///
/// # Errors
/// [`MapError::NonCanonical`] or [`MapError::HypervisorArea`].
pub const fn check_guest_va(va: u64) -> Result<(), MapError> {
    if !is_canonical(va) {
        Err(MapError::NonCanonical)
    } else if in_hypervisor_area(va) {
        Err(MapError::HypervisorArea)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices() {
        let va = 0xffff_ffff_8012_3456;
        assert_eq!(Level::L4.index(va), 511);
        assert_eq!(Level::L3.index(va), 510);
        assert_eq!(Level::L2.index(va), 0);
        assert_eq!(Level::L1.index(va), 0x123);
        assert_eq!(Level::L2.entry_span(), 2 << 20);
        assert_eq!(Level::L4.lower(), Some(Level::L3));
        assert_eq!(Level::L1.lower(), None);
        assert_eq!(Level::L3.pin_cmd(), MMUEXT_PIN_L3_TABLE);
    }

    #[test]
    fn address_classes() {
        assert!(is_canonical(0x0000_7fff_ffff_f000));
        assert!(is_canonical(0xffff_8000_0000_0000));
        assert!(!is_canonical(0x0000_8000_0000_0000));
        assert!(in_hypervisor_area(0xffff_8000_0000_0000));
        assert!(!in_hypervisor_area(0xffff_8800_0000_0000));
        assert!(is_guest_l4_slot(255) && !is_guest_l4_slot(256) && !is_guest_l4_slot(271));
        assert!(is_guest_l4_slot(272));
        assert_eq!(l4_slot_base(1), 0x0000_0080_0000_0000);
        assert_eq!(l4_slot_base(256), 0xffff_8000_0000_0000);
        assert_eq!(l4_slot_base(511), 0xffff_ff80_0000_0000);
        assert_eq!(
            check_guest_va(0x8000_0000_0000_0000),
            Err(MapError::NonCanonical)
        );
        assert_eq!(
            check_guest_va(0xffff_8100_0000_0000),
            Err(MapError::HypervisorArea)
        );
        assert_eq!(check_guest_va(0x1000), Ok(()));
    }

    #[test]
    fn frames() {
        let f = Frame::new(3, 0x1234);
        assert_eq!(f.maddr(), 0x123_4000);
        assert_eq!(f.entry_maddr(2), 0x123_4010);
        assert_eq!(f.pte(flags::KERNEL_RO), 0x123_4021);
        assert_eq!(flags::USER_RX & _PAGE_RW, 0);
    }
}
