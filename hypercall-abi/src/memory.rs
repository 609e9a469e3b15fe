//! `memory_op` (hypercall 12): sub-operations and argument structs (reference §9.8).
//!
//! `cmd` bits 5:0 are the sub-op; bits 63:6 carry a continuation start extent (guests pass 0).

use crate::types::{DomidT, GuestHandle, XenPfn, XenUlong};

/// `MEMOP_CMD_MASK`: sub-op bits of the `memory_op` command.
pub const MEMOP_CMD_MASK: u64 = 0x3f;
/// `MEMOP_EXTENT_SHIFT`: shift of the continuation start extent.
pub const MEMOP_EXTENT_SHIFT: u32 = 6;

/// `XENMEM_increase_reservation`: allocate extents (`xen_memory_reservation`).
pub const XENMEM_INCREASE_RESERVATION: u32 = 0;
/// `XENMEM_decrease_reservation`: free extents (`xen_memory_reservation`).
pub const XENMEM_DECREASE_RESERVATION: u32 = 1;
/// `XENMEM_maximum_ram_page`: highest MFN of host RAM (arg NULL).
pub const XENMEM_MAXIMUM_RAM_PAGE: u32 = 2;
/// `XENMEM_current_reservation`: current page count of a domain (`domid_t *`).
pub const XENMEM_CURRENT_RESERVATION: u32 = 3;
/// `XENMEM_maximum_reservation`: maximum page count of a domain (`domid_t *`).
pub const XENMEM_MAXIMUM_RESERVATION: u32 = 4;
/// `XENMEM_machphys_mfn_list`: MFNs of the M2P's 2 MiB chunks (`xen_machphys_mfn_list`).
pub const XENMEM_MACHPHYS_MFN_LIST: u32 = 5;
/// `XENMEM_populate_physmap`: populate PFNs with memory (`xen_memory_reservation`).
pub const XENMEM_POPULATE_PHYSMAP: u32 = 6;
/// `XENMEM_add_to_physmap`: translated guests only; PV gets `-EACCES` (`xen_add_to_physmap`).
pub const XENMEM_ADD_TO_PHYSMAP: u32 = 7;
/// `XENMEM_translate_gpfn_list`: removed.
pub const XENMEM_TRANSLATE_GPFN_LIST: u32 = 8;
/// `XENMEM_memory_map`: the domain's E820 (`xen_memory_map`).
pub const XENMEM_MEMORY_MAP: u32 = 9;
/// `XENMEM_machine_memory_map`: the host E820, privileged (`xen_memory_map`).
pub const XENMEM_MACHINE_MEMORY_MAP: u32 = 10;
/// `XENMEM_exchange`: swap extents (`xen_memory_exchange`).
pub const XENMEM_EXCHANGE: u32 = 11;
/// `XENMEM_machphys_mapping`: where the M2P is (`xen_machphys_mapping`).
pub const XENMEM_MACHPHYS_MAPPING: u32 = 12;
/// `XENMEM_set_memory_map`: toolstack sets a domain's E820 (`xen_foreign_memory_map`).
pub const XENMEM_SET_MEMORY_MAP: u32 = 13;
/// `XENMEM_maximum_gpfn`: highest PFN in use (`domid_t *`).
pub const XENMEM_MAXIMUM_GPFN: u32 = 14;
/// `XENMEM_remove_from_physmap`: translated guests only (`xen_remove_from_physmap`).
pub const XENMEM_REMOVE_FROM_PHYSMAP: u32 = 15;
/// `XENMEM_set_pod_target`: populate-on-demand target (toolstack).
///
/// 16–22 are not numbered individually by the reference ("PoD, paging, access, sharing");
/// cross-checked against Xen's public `memory.h`.
pub const XENMEM_SET_POD_TARGET: u32 = 16;
/// `XENMEM_get_pod_target`: populate-on-demand status (toolstack).
pub const XENMEM_GET_POD_TARGET: u32 = 17;
/// `XENMEM_get_sharing_freed_pages`: memory-sharing statistics.
pub const XENMEM_GET_SHARING_FREED_PAGES: u32 = 18;
/// `XENMEM_get_sharing_shared_pages`: memory-sharing statistics.
pub const XENMEM_GET_SHARING_SHARED_PAGES: u32 = 19;
/// `XENMEM_paging_op`: memory paging (toolstack).
pub const XENMEM_PAGING_OP: u32 = 20;
/// `XENMEM_access_op`: memory access permissions (toolstack).
pub const XENMEM_ACCESS_OP: u32 = 21;
/// `XENMEM_sharing_op`: memory sharing (toolstack).
pub const XENMEM_SHARING_OP: u32 = 22;
/// `XENMEM_add_to_physmap_batch`: batched add_to_physmap.
pub const XENMEM_ADD_TO_PHYSMAP_BATCH: u32 = 23;
/// `XENMEM_claim_pages`: stake a claim on free memory (privileged).
pub const XENMEM_CLAIM_PAGES: u32 = 24;
/// `XENMEM_machphys_compat_mfn_list`: MFNs of the compat M2P.
pub const XENMEM_MACHPHYS_COMPAT_MFN_LIST: u32 = 25;
/// `XENMEM_get_vnumainfo`: vNUMA topology.
pub const XENMEM_GET_VNUMAINFO: u32 = 26;
/// `XENMEM_reserved_device_memory_map`: reserved device memory regions.
pub const XENMEM_RESERVED_DEVICE_MEMORY_MAP: u32 = 27;
/// `XENMEM_acquire_resource`: map hypervisor resources (toolstack / device model).
pub const XENMEM_ACQUIRE_RESOURCE: u32 = 28;

code_enum! {
    /// `memory_op` sub-operations (after masking with [`MEMOP_CMD_MASK`]). 8 is removed.
    pub enum MemoryCmd: u32 ["memory_op sub-op"] {
        /// Allocate extents.
        IncreaseReservation = XENMEM_INCREASE_RESERVATION => "XENMEM_increase_reservation",
        /// Free extents.
        DecreaseReservation = XENMEM_DECREASE_RESERVATION => "XENMEM_decrease_reservation",
        /// Highest host RAM MFN.
        MaximumRamPage = XENMEM_MAXIMUM_RAM_PAGE => "XENMEM_maximum_ram_page",
        /// Current page count.
        CurrentReservation = XENMEM_CURRENT_RESERVATION => "XENMEM_current_reservation",
        /// Maximum page count.
        MaximumReservation = XENMEM_MAXIMUM_RESERVATION => "XENMEM_maximum_reservation",
        /// M2P chunk MFNs.
        MachphysMfnList = XENMEM_MACHPHYS_MFN_LIST => "XENMEM_machphys_mfn_list",
        /// Populate PFNs.
        PopulatePhysmap = XENMEM_POPULATE_PHYSMAP => "XENMEM_populate_physmap",
        /// Add to physmap (translated only).
        AddToPhysmap = XENMEM_ADD_TO_PHYSMAP => "XENMEM_add_to_physmap",
        /// Domain E820.
        MemoryMap = XENMEM_MEMORY_MAP => "XENMEM_memory_map",
        /// Host E820.
        MachineMemoryMap = XENMEM_MACHINE_MEMORY_MAP => "XENMEM_machine_memory_map",
        /// Exchange extents.
        Exchange = XENMEM_EXCHANGE => "XENMEM_exchange",
        /// M2P location.
        MachphysMapping = XENMEM_MACHPHYS_MAPPING => "XENMEM_machphys_mapping",
        /// Set a domain's E820.
        SetMemoryMap = XENMEM_SET_MEMORY_MAP => "XENMEM_set_memory_map",
        /// Highest PFN.
        MaximumGpfn = XENMEM_MAXIMUM_GPFN => "XENMEM_maximum_gpfn",
        /// Remove from physmap (translated only).
        RemoveFromPhysmap = XENMEM_REMOVE_FROM_PHYSMAP => "XENMEM_remove_from_physmap",
        /// PoD target.
        SetPodTarget = XENMEM_SET_POD_TARGET => "XENMEM_set_pod_target",
        /// PoD status.
        GetPodTarget = XENMEM_GET_POD_TARGET => "XENMEM_get_pod_target",
        /// Sharing statistics.
        GetSharingFreedPages = XENMEM_GET_SHARING_FREED_PAGES => "XENMEM_get_sharing_freed_pages",
        /// Sharing statistics.
        GetSharingSharedPages = XENMEM_GET_SHARING_SHARED_PAGES => "XENMEM_get_sharing_shared_pages",
        /// Paging.
        PagingOp = XENMEM_PAGING_OP => "XENMEM_paging_op",
        /// Access.
        AccessOp = XENMEM_ACCESS_OP => "XENMEM_access_op",
        /// Sharing.
        SharingOp = XENMEM_SHARING_OP => "XENMEM_sharing_op",
        /// Batched add_to_physmap.
        AddToPhysmapBatch = XENMEM_ADD_TO_PHYSMAP_BATCH => "XENMEM_add_to_physmap_batch",
        /// Claim pages.
        ClaimPages = XENMEM_CLAIM_PAGES => "XENMEM_claim_pages",
        /// Compat M2P MFNs.
        MachphysCompatMfnList = XENMEM_MACHPHYS_COMPAT_MFN_LIST => "XENMEM_machphys_compat_mfn_list",
        /// vNUMA topology.
        GetVnumainfo = XENMEM_GET_VNUMAINFO => "XENMEM_get_vnumainfo",
        /// Reserved device memory.
        ReservedDeviceMemoryMap = XENMEM_RESERVED_DEVICE_MEMORY_MAP => "XENMEM_reserved_device_memory_map",
        /// Acquire resource.
        AcquireResource = XENMEM_ACQUIRE_RESOURCE => "XENMEM_acquire_resource",
    }
    try_from: [u64];
}

/// A `memory_op` command split into sub-op and continuation start extent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MemopCmd {
    /// Bits 5:0: the raw sub-op (decode with [`MemoryCmd::try_from`]).
    pub op: u32,
    /// Bits 63:6: the extent to start from (non-zero only in continuations).
    pub start_extent: u64,
}

impl MemopCmd {
    /// Splits the raw `cmd` argument.
    #[must_use]
    pub const fn decode(cmd: u64) -> Self {
        Self {
            op: (cmd & MEMOP_CMD_MASK) as u32,
            start_extent: cmd >> MEMOP_EXTENT_SHIFT,
        }
    }

    /// Joins sub-op and start extent into the raw `cmd` argument (extent bits beyond 58 lost).
    #[must_use]
    pub const fn encode(self) -> u64 {
        (self.start_extent << MEMOP_EXTENT_SHIFT) | (self.op as u64 & MEMOP_CMD_MASK)
    }
}

/// `XENMEMF_populate_on_demand`: allocate populate-on-demand entries.
pub const XENMEMF_POPULATE_ON_DEMAND: u32 = 1 << 16;
/// `XENMEMF_exact_node_request`: the NUMA node is a requirement, not a hint.
pub const XENMEMF_EXACT_NODE_REQUEST: u32 = 1 << 17;
/// `XENMEMF_vnode`: the node is a virtual NUMA node.
pub const XENMEMF_VNODE: u32 = 1 << 18;

/// `XENMEMF_address_bits(x)`: the address-width field (bits 7:0; 0 = no limit).
#[must_use]
pub const fn xenmemf_address_bits(bits: u8) -> u32 {
    bits as u32
}

/// `XENMEMF_node(n)`: the NUMA-node field (bits 15:8 hold node + 1).
#[must_use]
pub const fn xenmemf_node(node: u8) -> u32 {
    ((node as u32 + 1) & 0xff) << 8
}

/// Decodes the address-width limit from `mem_flags` (0 = no limit).
#[must_use]
pub const fn xenmemf_get_address_bits(mem_flags: u32) -> u8 {
    (mem_flags & 0xff) as u8
}

/// Decodes the NUMA node from `mem_flags` (`None` when unset).
#[must_use]
pub const fn xenmemf_get_node(mem_flags: u32) -> Option<u8> {
    let field = ((mem_flags >> 8) & 0xff) as u8;
    field.checked_sub(1)
}

/// `xen_memory_reservation` (32 bytes; reference §9.8).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMemoryReservation {
    /// Guest handle of a `xen_pfn_t[]` (MFNs/PFNs per sub-op).
    pub extent_start: GuestHandle,
    /// Number of extents.
    pub nr_extents: XenUlong,
    /// Each extent is 2^order pages.
    pub extent_order: u32,
    /// `XENMEMF_*` (address bits, node, flags); `address_bits` in old interface versions.
    pub mem_flags: u32,
    /// Target domain (`DOMID_SELF` for unprivileged callers).
    pub domid: DomidT,
    /// Padding; zero.
    pub _pad0: [u8; 6],
}

assert_layout!(XenMemoryReservation, size = 32, align = 8, {
    extent_start: u64 = 0,
    nr_extents: u64 = 8,
    extent_order: u32 = 16,
    mem_flags: u32 = 20,
    domid: u16 = 24,
    _pad0: [u8; 6] = 26,
});

/// `xen_memory_exchange` (72 bytes; reference §9.8).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMemoryExchange {
    /// Extents to give up (`in` in Xen).
    pub in_: XenMemoryReservation,
    /// Extents to receive.
    pub out: XenMemoryReservation,
    /// Output: input extents exchanged so far (caller must zero it).
    pub nr_exchanged: XenUlong,
}

assert_layout!(XenMemoryExchange, size = 72, align = 8, {
    in_: XenMemoryReservation = 0,
    out: XenMemoryReservation = 32,
    nr_exchanged: u64 = 64,
});

/// `xen_machphys_mfn_list` (24 bytes; reference §9.8).
///
/// The reference lists `max_extents` @0 and `extent_start` @8 and gives the size as 24. The
/// third field, `nr_extents` @16 (output: extents written), is derived, not measured — it is
/// what fills the remaining bytes in Xen's public `memory.h`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMachphysMfnList {
    /// Capacity of `extent_start`.
    pub max_extents: u32,
    /// Padding; zero.
    pub _pad0: u32,
    /// Guest handle of a `xen_pfn_t[]` to fill.
    pub extent_start: GuestHandle,
    /// Output: number of extents written (derived, not measured).
    pub nr_extents: u32,
    /// Padding; zero.
    pub _pad1: u32,
}

assert_layout!(XenMachphysMfnList, size = 24, align = 8, {
    max_extents: u32 = 0,
    _pad0: u32 = 4,
    extent_start: u64 = 8,
    nr_extents: u32 = 16, // derived, not measured
    _pad1: u32 = 20,
});

/// `xen_machphys_mapping` (24 bytes; reference §9.8).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMachphysMapping {
    /// Start of the M2P virtual range.
    pub v_start: XenUlong,
    /// End of the M2P virtual range.
    pub v_end: XenUlong,
    /// Largest MFN that can be looked up.
    pub max_mfn: XenUlong,
}

assert_layout!(XenMachphysMapping, size = 24, align = 8, {
    v_start: u64 = 0,
    v_end: u64 = 8,
    max_mfn: u64 = 16,
});

/// `max_mfn` Xen 4.17 reports in `XENMEM_machphys_mapping` for domUs (`2^35 - 1`).
pub const MACHPHYS_MAPPING_MAX_MFN: u64 = crate::mm::MACH2PHYS_NR_ENTRIES - 1;

impl XenMachphysMapping {
    /// The answer a 64-bit PV domU gets (reference §9.8).
    #[must_use]
    pub const fn pv64() -> Self {
        Self {
            v_start: crate::mm::MACH2PHYS_VIRT_START,
            v_end: crate::mm::MACH2PHYS_VIRT_END,
            max_mfn: MACHPHYS_MAPPING_MAX_MFN,
        }
    }
}

/// `XENMAPSPACE_shared_info`: the shared_info page.
pub const XENMAPSPACE_SHARED_INFO: u32 = 0;
/// `XENMAPSPACE_grant_table`: a grant-table frame (`idx` bit 31 selects status frames).
pub const XENMAPSPACE_GRANT_TABLE: u32 = 1;
/// `XENMAPSPACE_gmfn`: a guest frame.
pub const XENMAPSPACE_GMFN: u32 = 2;
/// `XENMAPSPACE_gmfn_range`: a range of guest frames (`size` pages).
pub const XENMAPSPACE_GMFN_RANGE: u32 = 3;
/// `XENMAPSPACE_gmfn_foreign`: a frame of another domain (batch only).
pub const XENMAPSPACE_GMFN_FOREIGN: u32 = 4;
/// `XENMAPSPACE_dev_mmio`: device MMIO.
pub const XENMAPSPACE_DEV_MMIO: u32 = 5;
/// `XENMAPIDX_grant_table_status`: `idx` bit selecting grant status frames.
pub const XENMAPIDX_GRANT_TABLE_STATUS: u64 = 1 << 31;

code_enum! {
    /// `xen_add_to_physmap.space` values.
    pub enum XenMapSpace: u32 ["map space"] {
        /// shared_info.
        SharedInfo = XENMAPSPACE_SHARED_INFO => "XENMAPSPACE_shared_info",
        /// Grant table.
        GrantTable = XENMAPSPACE_GRANT_TABLE => "XENMAPSPACE_grant_table",
        /// Guest frame.
        Gmfn = XENMAPSPACE_GMFN => "XENMAPSPACE_gmfn",
        /// Guest frame range.
        GmfnRange = XENMAPSPACE_GMFN_RANGE => "XENMAPSPACE_gmfn_range",
        /// Foreign frame.
        GmfnForeign = XENMAPSPACE_GMFN_FOREIGN => "XENMAPSPACE_gmfn_foreign",
        /// Device MMIO.
        DevMmio = XENMAPSPACE_DEV_MMIO => "XENMAPSPACE_dev_mmio",
    }
    try_from: [u64];
}

/// `xen_add_to_physmap` (24 bytes; reference §9.8).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenAddToPhysmap {
    /// Domain whose physmap changes.
    pub domid: DomidT,
    /// Pages for `XENMAPSPACE_gmfn_range`.
    pub size: u16,
    /// `XENMAPSPACE_*`.
    pub space: u32,
    /// Index into the space.
    pub idx: XenUlong,
    /// Where the page should appear.
    pub gpfn: XenPfn,
}

assert_layout!(XenAddToPhysmap, size = 24, align = 8, {
    domid: u16 = 0,
    size: u16 = 2,
    space: u32 = 4,
    idx: u64 = 8,
    gpfn: u64 = 16,
});

/// `xen_remove_from_physmap` (16 bytes; reference §9.8).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenRemoveFromPhysmap {
    /// Domain whose physmap changes.
    pub domid: DomidT,
    /// Padding; zero.
    pub _pad0: [u8; 6],
    /// Frame to remove.
    pub gpfn: XenPfn,
}

assert_layout!(XenRemoveFromPhysmap, size = 16, align = 8, {
    domid: u16 = 0,
    _pad0: [u8; 6] = 2,
    gpfn: u64 = 8,
});

/// `xen_memory_map` (16 bytes; reference §9.8).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMemoryMap {
    /// In: capacity of `buffer` in entries; out: entries written.
    pub nr_entries: u32,
    /// Padding; zero.
    pub _pad0: u32,
    /// Guest handle of an [`E820Entry`] array.
    pub buffer: GuestHandle,
}

assert_layout!(XenMemoryMap, size = 16, align = 8, {
    nr_entries: u32 = 0,
    _pad0: u32 = 4,
    buffer: u64 = 8,
});

/// `xen_foreign_memory_map` (argument of `XENMEM_set_memory_map`).
///
/// The reference names it without a layout; `{domid_t domid; xen_memory_map map;}` gives
/// `domid` @0, `map` @8, size 24 — derived, not measured.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenForeignMemoryMap {
    /// Domain whose E820 is set.
    pub domid: DomidT,
    /// Padding; zero.
    pub _pad0: [u8; 6],
    /// The map.
    pub map: XenMemoryMap,
}

assert_layout!(XenForeignMemoryMap, size = 24, align = 8, {
    domid: u16 = 0,       // derived, not measured
    _pad0: [u8; 6] = 2,   // derived, not measured
    map: XenMemoryMap = 8, // derived, not measured
});

/// E820 type: usable RAM (BIOS/ACPI standard value, not defined by Xen).
pub const E820_RAM: u32 = 1;
/// E820 type: reserved.
pub const E820_RESERVED: u32 = 2;
/// E820 type: ACPI reclaimable.
pub const E820_ACPI: u32 = 3;
/// E820 type: ACPI NVS.
pub const E820_NVS: u32 = 4;
/// E820 type: unusable.
pub const E820_UNUSABLE: u32 = 5;

/// One E820 entry as written by `XENMEM_memory_map` (20 bytes, packed; reference §9.8).
/// Offsets derived from the field list (`u64 addr; u64 size; u32 type`), not measured.
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct E820Entry {
    /// Start address.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// `E820_*` type (`type` in the BIOS ABI).
    pub type_: u32,
}

assert_layout!(E820Entry, size = 20, align = 1, {
    addr: u64 = 0,  // derived, not measured
    size: u64 = 8,  // derived, not measured
    type_: u32 = 16, // derived, not measured
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memop_cmd_split() {
        let c = MemopCmd::decode((5 << MEMOP_EXTENT_SHIFT) | u64::from(XENMEM_POPULATE_PHYSMAP));
        assert_eq!(c.op, 6);
        assert_eq!(c.start_extent, 5);
        assert_eq!(c.encode(), (5 << 6) | 6);
        assert_eq!(MemoryCmd::try_from(c.op), Ok(MemoryCmd::PopulatePhysmap));
        assert!(MemoryCmd::try_from(8u32).is_err());
        assert!(MemoryCmd::try_from(29u64).is_err());
    }

    #[test]
    fn mem_flags() {
        let f = xenmemf_address_bits(32) | xenmemf_node(0) | XENMEMF_EXACT_NODE_REQUEST;
        assert_eq!(xenmemf_get_address_bits(f), 32);
        assert_eq!(xenmemf_get_node(f), Some(0));
        assert_eq!(xenmemf_get_node(0), None);
    }

    #[test]
    fn machphys_mapping_answer() {
        let m = XenMachphysMapping::pv64();
        assert_eq!(m.v_start, 0xFFFF_8000_0000_0000);
        assert_eq!(m.v_end, 0xFFFF_8040_0000_0000);
        assert_eq!(m.max_mfn, (1 << 35) - 1);
    }
}
