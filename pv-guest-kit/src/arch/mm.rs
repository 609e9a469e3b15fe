//! Machine addresses: the P2M list from `start_info`, the read-only M2P the hypervisor maps at
//! `0xffff800000000000`, and a walk of the current page tables (reference §9.1–§9.2).
//!
//! A PV guest's page tables hold machine frame numbers. The guest finds the MFN of one of its
//! pages in its P2M list (`mfn_list[pfn]`, given by the builder), and the PFN of a machine frame
//! in the M2P (`m2p[mfn]`); with `VIRT_BASE` that gives the virtual address of any page of the
//! initial mapping, page-table frames included (mapped read-only there).

use hypercall_abi::mm::{_PAGE_PRESENT, MACH2PHYS_NR_ENTRIES, MACH2PHYS_VIRT_START, PTE_ADDR_MASK};

use crate::layout::PAGE_SIZE_U64;

/// The MFN of pseudo-physical frame `pfn` (`mfn_list[pfn]`), if `pfn < nr_pages`.
pub fn pfn_to_mfn(pfn: u64) -> Option<u64> {
    let boot = super::boot_info()?;
    if pfn >= boot.nr_pages {
        return None;
    }
    let entry = (boot.mfn_list as *const u64).wrapping_add(usize::try_from(pfn).ok()?);
    // SAFETY: the builder maps `nr_pages` P2M entries at `mfn_list` for the domain's lifetime
    // (reference §4.4); `pfn` is below that. Volatile: the list is guest memory the guest may
    // change through other paths.
    Some(unsafe { entry.read_volatile() })
}

/// The PFN the read-only M2P records for machine frame `mfn`.
///
/// Only MFNs the domain owns are meaningful. The M2P is mapped as far as host memory goes;
/// reading beyond it faults, so `mfn` must be a frame of this domain.
pub fn mfn_to_pfn(mfn: u64) -> Option<u64> {
    if mfn >= MACH2PHYS_NR_ENTRIES {
        return None;
    }
    let entry = (MACH2PHYS_VIRT_START + mfn * 8) as *const u64;
    // SAFETY: the hypervisor maps the M2P read-only in every guest kernel's address space
    // (reference §9.2) and the entry of a frame the domain owns lies inside it.
    Some(unsafe { entry.read_volatile() })
}

/// The virtual address of pseudo-physical frame `pfn` in the initial mapping.
pub fn pfn_to_virt(pfn: u64) -> Option<u64> {
    let boot = super::boot_info()?;
    boot.initial_mapping(super::virt_base())?.pfn_to_virt(pfn)
}

/// The MFN behind virtual address `va` of the initial mapping (by the 1:1 PFN layout).
pub fn virt_to_mfn(va: u64) -> Option<u64> {
    let boot = super::boot_info()?;
    let pfn = boot.initial_mapping(super::virt_base())?.virt_to_pfn(va)?;
    pfn_to_mfn(pfn)
}

/// The machine address of virtual address `va` of the initial mapping.
pub fn virt_to_machine(va: u64) -> Option<u64> {
    Some(virt_to_mfn(va)? * PAGE_SIZE_U64 + va % PAGE_SIZE_U64)
}

/// Reads one page-table entry through its (read-only) mapping in the initial mapping.
fn read_entry(table_mfn: u64, index: u64) -> Option<u64> {
    let table_va = pfn_to_virt(mfn_to_pfn(table_mfn)?)?;
    let entry = (table_va + index * 8) as *const u64;
    // SAFETY: page-table frames of the initial mapping are mapped (read-only) inside it, and
    // `index < 512` keeps the read inside the frame.
    Some(unsafe { entry.read_volatile() })
}

/// The machine address of the L1 entry that maps `va` in the current page tables (`cr3`), if
/// every level down to L1 is present and its tables lie in the initial mapping. This is the
/// `ptr` an `MMU_NORMAL_PT_UPDATE` request for `va` needs.
pub fn l1_entry_maddr(va: u64) -> Option<u64> {
    let mut table = super::cpu::read_cr3() >> 12;
    for shift in [39u32, 30, 21] {
        let entry = read_entry(table, (va >> shift) & 511)?;
        if entry & _PAGE_PRESENT == 0 {
            return None;
        }
        table = (entry & PTE_ADDR_MASK) >> 12;
    }
    Some(table * PAGE_SIZE_U64 + ((va >> 12) & 511) * 8)
}

/// The current L1 entry (PTE) mapping `va`, read through the walk of [`l1_entry_maddr`].
pub fn pte_of(va: u64) -> Option<u64> {
    let maddr = l1_entry_maddr(va)?;
    read_entry(maddr >> 12, (maddr % PAGE_SIZE_U64) / 8)
}
