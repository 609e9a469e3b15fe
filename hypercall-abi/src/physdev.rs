//! `physdev_op` (hypercall 33): command numbers and the PV-relevant argument structs
//! (reference §15.4).

/// `PHYSDEVOP_IRQ_UNMASK_NOTIFY`: obsolete form of EOI.
pub const PHYSDEVOP_IRQ_UNMASK_NOTIFY: u32 = 4;
/// `PHYSDEVOP_irq_status_query` (`physdev_irq_status_query`).
pub const PHYSDEVOP_IRQ_STATUS_QUERY: u32 = 5;
/// `PHYSDEVOP_set_iopl` (`physdev_set_iopl`).
pub const PHYSDEVOP_SET_IOPL: u32 = 6;
/// `PHYSDEVOP_set_iobitmap` (`physdev_set_iobitmap`).
pub const PHYSDEVOP_SET_IOBITMAP: u32 = 7;
/// `PHYSDEVOP_apic_read` (dom0).
pub const PHYSDEVOP_APIC_READ: u32 = 8;
/// `PHYSDEVOP_apic_write` (dom0).
pub const PHYSDEVOP_APIC_WRITE: u32 = 9;
/// `PHYSDEVOP_alloc_irq_vector` (dom0).
pub const PHYSDEVOP_ALLOC_IRQ_VECTOR: u32 = 10;
/// `PHYSDEVOP_free_irq_vector` (dom0).
pub const PHYSDEVOP_FREE_IRQ_VECTOR: u32 = 11;
/// `PHYSDEVOP_eoi` (`physdev_eoi`).
pub const PHYSDEVOP_EOI: u32 = 12;
/// `PHYSDEVOP_map_pirq` (dom0 / passthrough).
pub const PHYSDEVOP_MAP_PIRQ: u32 = 13;
/// `PHYSDEVOP_unmap_pirq` (dom0 / passthrough).
pub const PHYSDEVOP_UNMAP_PIRQ: u32 = 14;
/// `PHYSDEVOP_manage_pci_add` (dom0).
pub const PHYSDEVOP_MANAGE_PCI_ADD: u32 = 15;
/// `PHYSDEVOP_manage_pci_remove` (dom0).
pub const PHYSDEVOP_MANAGE_PCI_REMOVE: u32 = 16;
/// `PHYSDEVOP_pirq_eoi_gmfn_v1` (`physdev_pirq_eoi_gmfn`).
pub const PHYSDEVOP_PIRQ_EOI_GMFN_V1: u32 = 17;
/// `PHYSDEVOP_restore_msi` (dom0).
pub const PHYSDEVOP_RESTORE_MSI: u32 = 19;
/// `PHYSDEVOP_manage_pci_add_ext` (dom0).
pub const PHYSDEVOP_MANAGE_PCI_ADD_EXT: u32 = 20;
/// `PHYSDEVOP_setup_gsi` (dom0).
pub const PHYSDEVOP_SETUP_GSI: u32 = 21;
/// `PHYSDEVOP_get_free_pirq` (dom0).
pub const PHYSDEVOP_GET_FREE_PIRQ: u32 = 23;
/// `PHYSDEVOP_pci_mmcfg_reserved` (dom0).
pub const PHYSDEVOP_PCI_MMCFG_RESERVED: u32 = 24;
/// `PHYSDEVOP_pci_device_add` (dom0).
pub const PHYSDEVOP_PCI_DEVICE_ADD: u32 = 25;
/// `PHYSDEVOP_pci_device_remove` (dom0).
pub const PHYSDEVOP_PCI_DEVICE_REMOVE: u32 = 26;
/// `PHYSDEVOP_restore_msi_ext` (dom0).
pub const PHYSDEVOP_RESTORE_MSI_EXT: u32 = 27;
/// `PHYSDEVOP_pirq_eoi_gmfn_v2` (`physdev_pirq_eoi_gmfn`).
pub const PHYSDEVOP_PIRQ_EOI_GMFN_V2: u32 = 28;
/// `PHYSDEVOP_dbgp_op` (dom0).
pub const PHYSDEVOP_DBGP_OP: u32 = 29;
/// `PHYSDEVOP_prepare_msix` (dom0).
pub const PHYSDEVOP_PREPARE_MSIX: u32 = 30;
/// `PHYSDEVOP_release_msix` (dom0).
pub const PHYSDEVOP_RELEASE_MSIX: u32 = 31;

code_enum! {
    /// `physdev_op` commands named by the reference (18 and 22 are not allocated in 4.17).
    pub enum PhysdevCmd: u32 ["physdev_op command"] {
        /// Obsolete EOI.
        IrqUnmaskNotify = PHYSDEVOP_IRQ_UNMASK_NOTIFY => "PHYSDEVOP_IRQ_UNMASK_NOTIFY",
        /// IRQ status.
        IrqStatusQuery = PHYSDEVOP_IRQ_STATUS_QUERY => "PHYSDEVOP_irq_status_query",
        /// Virtual IOPL.
        SetIopl = PHYSDEVOP_SET_IOPL => "PHYSDEVOP_set_iopl",
        /// I/O bitmap.
        SetIobitmap = PHYSDEVOP_SET_IOBITMAP => "PHYSDEVOP_set_iobitmap",
        /// APIC read.
        ApicRead = PHYSDEVOP_APIC_READ => "PHYSDEVOP_apic_read",
        /// APIC write.
        ApicWrite = PHYSDEVOP_APIC_WRITE => "PHYSDEVOP_apic_write",
        /// Allocate IRQ vector.
        AllocIrqVector = PHYSDEVOP_ALLOC_IRQ_VECTOR => "PHYSDEVOP_alloc_irq_vector",
        /// Free IRQ vector.
        FreeIrqVector = PHYSDEVOP_FREE_IRQ_VECTOR => "PHYSDEVOP_free_irq_vector",
        /// EOI.
        Eoi = PHYSDEVOP_EOI => "PHYSDEVOP_eoi",
        /// Map PIRQ.
        MapPirq = PHYSDEVOP_MAP_PIRQ => "PHYSDEVOP_map_pirq",
        /// Unmap PIRQ.
        UnmapPirq = PHYSDEVOP_UNMAP_PIRQ => "PHYSDEVOP_unmap_pirq",
        /// Add PCI device.
        ManagePciAdd = PHYSDEVOP_MANAGE_PCI_ADD => "PHYSDEVOP_manage_pci_add",
        /// Remove PCI device.
        ManagePciRemove = PHYSDEVOP_MANAGE_PCI_REMOVE => "PHYSDEVOP_manage_pci_remove",
        /// PIRQ EOI bitmap v1.
        PirqEoiGmfnV1 = PHYSDEVOP_PIRQ_EOI_GMFN_V1 => "PHYSDEVOP_pirq_eoi_gmfn_v1",
        /// Restore MSI.
        RestoreMsi = PHYSDEVOP_RESTORE_MSI => "PHYSDEVOP_restore_msi",
        /// Add PCI device (extended).
        ManagePciAddExt = PHYSDEVOP_MANAGE_PCI_ADD_EXT => "PHYSDEVOP_manage_pci_add_ext",
        /// Set up a GSI.
        SetupGsi = PHYSDEVOP_SETUP_GSI => "PHYSDEVOP_setup_gsi",
        /// Free PIRQ.
        GetFreePirq = PHYSDEVOP_GET_FREE_PIRQ => "PHYSDEVOP_get_free_pirq",
        /// MMCONFIG reserved.
        PciMmcfgReserved = PHYSDEVOP_PCI_MMCFG_RESERVED => "PHYSDEVOP_pci_mmcfg_reserved",
        /// PCI device add.
        PciDeviceAdd = PHYSDEVOP_PCI_DEVICE_ADD => "PHYSDEVOP_pci_device_add",
        /// PCI device remove.
        PciDeviceRemove = PHYSDEVOP_PCI_DEVICE_REMOVE => "PHYSDEVOP_pci_device_remove",
        /// Restore MSI (extended).
        RestoreMsiExt = PHYSDEVOP_RESTORE_MSI_EXT => "PHYSDEVOP_restore_msi_ext",
        /// PIRQ EOI bitmap v2.
        PirqEoiGmfnV2 = PHYSDEVOP_PIRQ_EOI_GMFN_V2 => "PHYSDEVOP_pirq_eoi_gmfn_v2",
        /// Debug port.
        DbgpOp = PHYSDEVOP_DBGP_OP => "PHYSDEVOP_dbgp_op",
        /// Prepare MSI-X.
        PrepareMsix = PHYSDEVOP_PREPARE_MSIX => "PHYSDEVOP_prepare_msix",
        /// Release MSI-X.
        ReleaseMsix = PHYSDEVOP_RELEASE_MSIX => "PHYSDEVOP_release_msix",
    }
    try_from: [u64];
}

/// `physdev_eoi` (4 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysdevEoi {
    /// PIRQ.
    pub irq: u32,
}

assert_layout!(PhysdevEoi, size = 4, align = 4, { irq: u32 = 0 });

/// `XENIRQSTAT_needs_eoi`: the IRQ needs an explicit EOI.
pub const XENIRQSTAT_NEEDS_EOI: u32 = 1 << 0;
/// `XENIRQSTAT_shared`: the IRQ is shared.
pub const XENIRQSTAT_SHARED: u32 = 1 << 1;

/// `physdev_irq_status_query` (8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysdevIrqStatusQuery {
    /// IN: PIRQ.
    pub irq: u32,
    /// OUT: `XENIRQSTAT_*`.
    pub flags: u32,
}

assert_layout!(PhysdevIrqStatusQuery, size = 8, align = 4, {
    irq: u32 = 0,
    flags: u32 = 4,
});

/// Largest IOPL `PHYSDEVOP_set_iopl` accepts.
pub const PHYSDEV_MAX_IOPL: u32 = 3;

/// `physdev_set_iopl` (4 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysdevSetIopl {
    /// Virtual IOPL 0–3.
    pub iopl: u32,
}

assert_layout!(PhysdevSetIopl, size = 4, align = 4, { iopl: u32 = 0 });

/// Largest `nr_ports` of `PHYSDEVOP_set_iobitmap`.
pub const PHYSDEV_MAX_IOBITMAP_PORTS: u32 = 65536;

/// `physdev_set_iobitmap` (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysdevSetIobitmap {
    /// Guest virtual address of a TSS-style bitmap (bit set = port denied).
    pub bitmap: u64,
    /// Ports covered (≤ 65536).
    pub nr_ports: u32,
    /// Padding; zero.
    pub _pad0: u32,
}

assert_layout!(PhysdevSetIobitmap, size = 16, align = 8, {
    bitmap: u64 = 0,
    nr_ports: u32 = 8,
    _pad0: u32 = 12,
});

/// `physdev_pirq_eoi_gmfn` (8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysdevPirqEoiGmfn {
    /// Frame of the shared PIRQ-EOI bitmap.
    pub gmfn: u64,
}

assert_layout!(PhysdevPirqEoiGmfn, size = 8, align = 8, { gmfn: u64 = 0 });

/// `physdev_op` (24 bytes): argument of the old `physdev_op_compat` (hypercall 19).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysdevOpCompat {
    /// `PHYSDEVOP_*`.
    pub cmd: u32,
    /// Padding; zero.
    pub _pad0: u32,
    /// The argument struct's bytes (union at offset 8).
    pub u: [u64; 2],
}

assert_layout!(PhysdevOpCompat, size = 24, align = 8, {
    cmd: u32 = 0,
    _pad0: u32 = 4,
    u: [u64; 2] = 8,
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(PhysdevCmd::try_from(6u64), Ok(PhysdevCmd::SetIopl));
        for gap in [0u32, 3, 18, 22, 32] {
            assert!(PhysdevCmd::try_from(gap).is_err(), "{gap}");
        }
    }
}
