//! The hypervisor's virtual address-space layout (docs/architecture.md has the table).
//!
//! L4 slots 256–271 belong to the hypervisor in every address space, the guests' included;
//! slots 0–255 and 272–511 belong to the guest.

/// First hypervisor-reserved address (L4 slot 256); Xen's `HYPERVISOR_VIRT_START`.
pub const HYPERVISOR_VIRT_START: u64 = 0xffff_8000_0000_0000;
/// One past the last hypervisor-reserved address (L4 slot 272); `HYPERVISOR_VIRT_END`.
pub const HYPERVISOR_VIRT_END: u64 = 0xffff_8800_0000_0000;
/// First L4 slot the hypervisor owns.
pub const FIRST_RESERVED_L4_SLOT: usize = 256;
/// One past the last L4 slot the hypervisor owns.
pub const END_RESERVED_L4_SLOT: usize = 272;

/// Read-only machine-to-phys table, readable by guest kernels (slot 256, the ABI's place).
pub const RO_MPT_VIRT_START: u64 = 0xffff_8000_0000_0000;
/// End of the read-only machine-to-phys table.
pub const RO_MPT_VIRT_END: u64 = 0xffff_8040_0000_0000;
/// Per-domain mappings: guest GDT/LDT shadows (slot 260).
pub const PERDOMAIN_VIRT_START: u64 = 0xffff_8200_0000_0000;
/// Writable machine-to-phys table, hypervisor only (slot 261).
pub const RDWR_MPT_VIRT_START: u64 = 0xffff_8280_0000_0000;
/// Device (MMIO) mappings: local APIC, ... (slot 261).
pub const IOREMAP_VIRT_START: u64 = 0xffff_82c0_0000_0000;
/// End of the device-mapping area.
pub const IOREMAP_VIRT_END: u64 = 0xffff_82d0_0000_0000;
/// The image is linked at `physical address + IMAGE_VIRT_OFFSET` (slot 261).
pub const IMAGE_VIRT_OFFSET: u64 = 0xffff_82d0_4000_0000;
/// Frame table (per-frame owner, type and counts), slot 261.
pub const FRAMETABLE_VIRT_START: u64 = 0xffff_82e0_0000_0000;
/// Direct map of all machine memory: `virt = DIRECTMAP_VIRT_START + machine address`
/// (slots 262–271).
pub const DIRECTMAP_VIRT_START: u64 = 0xffff_8300_0000_0000;
/// End of the direct map (5 TiB of machine address space).
pub const DIRECTMAP_VIRT_END: u64 = 0xffff_8800_0000_0000;
/// How much of the direct map the boot page tables cover before the final tables exist.
pub const BOOT_DIRECTMAP_SIZE: u64 = 4 << 30;

/// The L4 slot of a virtual address.
pub const fn l4_slot(va: u64) -> usize {
    ((va >> 39) & 511) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn areas_sit_in_the_slots_the_design_gives_them() {
        assert_eq!(l4_slot(HYPERVISOR_VIRT_START), FIRST_RESERVED_L4_SLOT);
        assert_eq!(l4_slot(HYPERVISOR_VIRT_END), END_RESERVED_L4_SLOT);
        assert_eq!(l4_slot(RO_MPT_VIRT_START), 256);
        assert_eq!(l4_slot(PERDOMAIN_VIRT_START), 260);
        for a in [
            RDWR_MPT_VIRT_START,
            IOREMAP_VIRT_START,
            IMAGE_VIRT_OFFSET,
            FRAMETABLE_VIRT_START,
        ] {
            assert_eq!(l4_slot(a), 261);
        }
        assert_eq!(l4_slot(DIRECTMAP_VIRT_START), 262);
        assert_eq!(l4_slot(DIRECTMAP_VIRT_END - 1), 271);
    }
}
