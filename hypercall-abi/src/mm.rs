//! PV memory management: `mmu_update`, `mmuext_op`, `update_va_mapping` flags, PTE bits, the
//! hypervisor hole and the M2P (reference §9.1–§9.6).

use crate::types::DomidT;

// ---------------------------------------------------------------------------------------------
// Hypervisor area and M2P (reference §9.2)

/// `HYPERVISOR_VIRT_START`: start of the hypervisor-owned L4 slots 256–271.
pub const HYPERVISOR_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
/// `HYPERVISOR_VIRT_END`: end (exclusive) of the hypervisor-owned slots.
pub const HYPERVISOR_VIRT_END: u64 = 0xFFFF_8800_0000_0000;
/// First L4 slot the hypervisor owns in every guest L4.
pub const ROOT_PAGETABLE_FIRST_XEN_SLOT: usize = 256;
/// Last L4 slot the hypervisor owns (inclusive).
pub const ROOT_PAGETABLE_LAST_XEN_SLOT: usize = 271;
/// `MACH2PHYS_VIRT_START`: the read-only M2P array guests can read.
pub const MACH2PHYS_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
/// `MACH2PHYS_VIRT_END`: end (exclusive) of the M2P array.
pub const MACH2PHYS_VIRT_END: u64 = 0xFFFF_8040_0000_0000;
/// Bytes per M2P entry.
pub const MACH2PHYS_ENTRY_SIZE: u64 = 8;
/// `MACH2PHYS_NR_ENTRIES`: MFNs the M2P can describe (2^35).
pub const MACH2PHYS_NR_ENTRIES: u64 =
    (MACH2PHYS_VIRT_END - MACH2PHYS_VIRT_START) / MACH2PHYS_ENTRY_SIZE;
/// `INVALID_M2P_ENTRY`: M2P value of free/unassigned frames.
pub const INVALID_M2P_ENTRY: u64 = !0;
/// Bytes of M2P covered by one `XENMEM_machphys_mfn_list` extent (2 MiB).
pub const MACH2PHYS_EXTENT_SIZE: u64 = 2 << 20;

/// Virtual address of the M2P entry for `mfn` (`None` past the end of the array).
#[must_use]
pub const fn m2p_entry_address(mfn: u64) -> Option<u64> {
    if mfn >= MACH2PHYS_NR_ENTRIES {
        return None;
    }
    Some(MACH2PHYS_VIRT_START + mfn * MACH2PHYS_ENTRY_SIZE)
}

/// True if `va` lies in the hypervisor-owned hole `[HYPERVISOR_VIRT_START, HYPERVISOR_VIRT_END)`.
#[must_use]
pub const fn in_hypervisor_hole(va: u64) -> bool {
    va >= HYPERVISOR_VIRT_START && va < HYPERVISOR_VIRT_END
}

// ---------------------------------------------------------------------------------------------
// Page-table entry bits (reference §9.1)

/// Present.
pub const _PAGE_PRESENT: u64 = 1 << 0;
/// Writable.
pub const _PAGE_RW: u64 = 1 << 1;
/// User accessible.
pub const _PAGE_USER: u64 = 1 << 2;
/// Write-through.
pub const _PAGE_PWT: u64 = 1 << 3;
/// Cache disable.
pub const _PAGE_PCD: u64 = 1 << 4;
/// Accessed.
pub const _PAGE_ACCESSED: u64 = 1 << 5;
/// Dirty.
pub const _PAGE_DIRTY: u64 = 1 << 6;
/// PAT (in an L1 entry) / page size (in L2/L3 entries).
pub const _PAGE_PAT: u64 = 1 << 7;
/// Page size (same bit as PAT, in L2/L3 entries).
pub const _PAGE_PSE: u64 = 1 << 7;
/// Global.
pub const _PAGE_GLOBAL: u64 = 1 << 8;
/// Software-available bits 9–11.
pub const _PAGE_AVAIL: u64 = 0x7 << 9;
/// `_PAGE_GUEST_KERNEL` (bit 52): set by Xen on L1 entries the guest made kernel-only.
pub const _PAGE_GUEST_KERNEL: u64 = 1 << 52;
/// Bit 62: Xen-internal grant-mapping marker; forbidden in guest L1 entries.
pub const _PAGE_GNTTAB: u64 = 1 << 62;
/// No-execute.
pub const _PAGE_NX: u64 = 1 << 63;
/// Software-available high bits 52–62.
pub const _PAGE_AVAIL_HIGH: u64 = 0x7FF << 52;

/// Frame-address bits 12–51 of an entry.
pub const PTE_ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;
/// Flag bits of an entry (everything but the address).
pub const PTE_FLAGS_MASK: u64 = !PTE_ADDR_MASK;

/// Flag bits Xen accepts in every present guest entry (`base_disallow_mask`'s complement):
/// P, RW, US, A, D, AVL 9–11, AVL-high 52–62 and NX.
pub const PTE_BASE_ALLOWED: u64 = _PAGE_PRESENT
    | _PAGE_RW
    | _PAGE_USER
    | _PAGE_ACCESSED
    | _PAGE_DIRTY
    | _PAGE_AVAIL
    | _PAGE_AVAIL_HIGH
    | _PAGE_NX;
/// Flag bits allowed in a present L1 entry of an ordinary domU: the base set plus G, minus
/// bit 62 (`_PAGE_GNTTAB`).
pub const L1_ALLOWED_FLAGS: u64 = (PTE_BASE_ALLOWED | _PAGE_GLOBAL) & !_PAGE_GNTTAB;
/// Extra L1 bits allowed only to domains with I/O resources (PWT, PCD, PAT).
pub const L1_CACHE_ATTR_FLAGS: u64 = _PAGE_PWT | _PAGE_PCD | _PAGE_PAT;
/// Flag bits allowed in present L2/L3/L4 entries (no PSE, G, PWT, PCD).
pub const L2_L4_ALLOWED_FLAGS: u64 = PTE_BASE_ALLOWED;

/// The value Xen programs into the host PAT MSR (WB, WT, UC-, UC, WC, WP, UC, UC).
pub const XEN_MSR_PAT: u64 = 0x0000_0501_0007_0406;

bitflags::bitflags! {
    /// x86-64 page-table entry flag bits with Xen's extra meanings.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct PteFlags: u64 {
        /// Present.
        const PRESENT = _PAGE_PRESENT;
        /// Writable.
        const RW = _PAGE_RW;
        /// User accessible.
        const USER = _PAGE_USER;
        /// Write-through.
        const PWT = _PAGE_PWT;
        /// Cache disable.
        const PCD = _PAGE_PCD;
        /// Accessed.
        const ACCESSED = _PAGE_ACCESSED;
        /// Dirty.
        const DIRTY = _PAGE_DIRTY;
        /// PAT (L1) / PSE (L2, L3).
        const PAT_OR_PSE = _PAGE_PAT;
        /// Global.
        const GLOBAL = _PAGE_GLOBAL;
        /// Software bits 9–11.
        const AVAIL = _PAGE_AVAIL;
        /// Guest-kernel page marker (bit 52).
        const GUEST_KERNEL = _PAGE_GUEST_KERNEL;
        /// Xen-internal grant marker (bit 62).
        const GNTTAB = _PAGE_GNTTAB;
        /// No-execute.
        const NX = _PAGE_NX;
    }
}

/// The MFN in a page-table entry (bits 12–51).
#[must_use]
pub const fn pte_mfn(pte: u64) -> u64 {
    (pte & PTE_ADDR_MASK) >> crate::PAGE_SHIFT
}

/// Builds an entry from an MFN and flag bits (address bits of `flags` are ignored).
#[must_use]
pub const fn make_pte(mfn: u64, flags: u64) -> u64 {
    ((mfn << crate::PAGE_SHIFT) & PTE_ADDR_MASK) | (flags & PTE_FLAGS_MASK)
}

// ---------------------------------------------------------------------------------------------
// mmu_update (reference §9.4)

/// `MMU_NORMAL_PT_UPDATE`: checked page-table write at machine address `ptr`.
pub const MMU_NORMAL_PT_UPDATE: u32 = 0;
/// `MMU_MACHPHYS_UPDATE`: `m2p[ptr >> 12] = val`.
pub const MMU_MACHPHYS_UPDATE: u32 = 1;
/// `MMU_PT_UPDATE_PRESERVE_AD`: as normal, keeping the old entry's A/D bits.
pub const MMU_PT_UPDATE_PRESERVE_AD: u32 = 2;
/// `MMU_PT_UPDATE_NO_TRANSLATE`: as normal, never translating `val` through a foreign P2M.
pub const MMU_PT_UPDATE_NO_TRANSLATE: u32 = 3;
/// Bits of `mmu_update.ptr` that hold the command.
pub const MMU_UPDATE_CMD_MASK: u64 = 3;

code_enum! {
    /// The command in the low two bits of `mmu_update.ptr`.
    pub enum MmuCmd: u32 ["mmu_update command"] {
        /// Checked page-table write.
        NormalPtUpdate = MMU_NORMAL_PT_UPDATE => "MMU_NORMAL_PT_UPDATE",
        /// M2P update.
        MachphysUpdate = MMU_MACHPHYS_UPDATE => "MMU_MACHPHYS_UPDATE",
        /// Page-table write preserving A/D.
        PtUpdatePreserveAd = MMU_PT_UPDATE_PRESERVE_AD => "MMU_PT_UPDATE_PRESERVE_AD",
        /// Page-table write without foreign translation.
        PtUpdateNoTranslate = MMU_PT_UPDATE_NO_TRANSLATE => "MMU_PT_UPDATE_NO_TRANSLATE",
    }
    try_from: [u64];
}

/// `mmu_update` request (16 bytes; reference §9.4).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmuUpdate {
    /// Machine address (bits 63:2) | command (bits 1:0).
    pub ptr: u64,
    /// New entry value (or PFN for `MMU_MACHPHYS_UPDATE`).
    pub val: u64,
}

assert_layout!(MmuUpdate, size = 16, align = 8, {
    ptr: u64 = 0,
    val: u64 = 8,
});

impl MmuUpdate {
    /// Builds a request from a command and an 8-byte aligned machine address.
    #[must_use]
    pub const fn new(cmd: MmuCmd, maddr: u64, val: u64) -> Self {
        Self {
            ptr: (maddr & !MMU_UPDATE_CMD_MASK) | cmd.raw() as u64,
            val,
        }
    }

    /// The command (every 2-bit value names one).
    #[must_use]
    pub const fn cmd(&self) -> MmuCmd {
        match self.ptr & MMU_UPDATE_CMD_MASK {
            0 => MmuCmd::NormalPtUpdate,
            1 => MmuCmd::MachphysUpdate,
            2 => MmuCmd::PtUpdatePreserveAd,
            _ => MmuCmd::PtUpdateNoTranslate,
        }
    }

    /// The machine address with the command bits cleared.
    #[must_use]
    pub const fn maddr(&self) -> u64 {
        self.ptr & !MMU_UPDATE_CMD_MASK
    }
}

/// The two domains encoded in the `foreigndom` argument of `mmu_update`/`mmuext_op`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ForeignDom {
    /// Bits 15:0: owner of data frames referenced by new L1 entries (`DOMID_SELF` = caller).
    pub fd: DomidT,
    /// Bits 31:16 minus one: owner of the page-table frames being modified; `None` = caller.
    pub pfd: Option<DomidT>,
}

impl ForeignDom {
    /// Decodes the raw `foreigndom` argument (upper 32 bits are ignored).
    #[must_use]
    pub const fn decode(foreigndom: u64) -> Self {
        let bytes = foreigndom.to_le_bytes();
        let fd = u16::from_le_bytes([bytes[0], bytes[1]]);
        let pfd_plus_one = u16::from_le_bytes([bytes[2], bytes[3]]);
        Self {
            fd,
            pfd: pfd_plus_one.checked_sub(1),
        }
    }

    /// Encodes back into the raw argument.
    #[must_use]
    pub const fn encode(self) -> u64 {
        let pfd_field = match self.pfd {
            // DOMID values are ≤ 0x7FFF, so +1 cannot overflow for real ids; wrap otherwise.
            Some(d) => d.wrapping_add(1),
            None => 0,
        };
        (pfd_field as u64) << 16 | self.fd as u64
    }
}

// ---------------------------------------------------------------------------------------------
// mmuext_op (reference §9.5)

/// `MMUEXT_PIN_L1_TABLE`: validate as L1 and pin.
pub const MMUEXT_PIN_L1_TABLE: u32 = 0;
/// `MMUEXT_PIN_L2_TABLE`: validate as L2 and pin.
pub const MMUEXT_PIN_L2_TABLE: u32 = 1;
/// `MMUEXT_PIN_L3_TABLE`: validate as L3 and pin.
pub const MMUEXT_PIN_L3_TABLE: u32 = 2;
/// `MMUEXT_PIN_L4_TABLE`: validate as L4 and pin.
pub const MMUEXT_PIN_L4_TABLE: u32 = 3;
/// `MMUEXT_UNPIN_TABLE`: release a pin.
pub const MMUEXT_UNPIN_TABLE: u32 = 4;
/// `MMUEXT_NEW_BASEPTR`: load the kernel page-table root.
pub const MMUEXT_NEW_BASEPTR: u32 = 5;
/// `MMUEXT_TLB_FLUSH_LOCAL`: flush this vCPU's TLB.
pub const MMUEXT_TLB_FLUSH_LOCAL: u32 = 6;
/// `MMUEXT_INVLPG_LOCAL`: invalidate one page locally.
pub const MMUEXT_INVLPG_LOCAL: u32 = 7;
/// `MMUEXT_TLB_FLUSH_MULTI`: flush the TLBs of the vCPUs in a mask.
pub const MMUEXT_TLB_FLUSH_MULTI: u32 = 8;
/// `MMUEXT_INVLPG_MULTI`: invalidate one page on the vCPUs in a mask.
pub const MMUEXT_INVLPG_MULTI: u32 = 9;
/// `MMUEXT_TLB_FLUSH_ALL`: flush all vCPUs of the domain.
pub const MMUEXT_TLB_FLUSH_ALL: u32 = 10;
/// `MMUEXT_INVLPG_ALL`: invalidate one page on all vCPUs.
pub const MMUEXT_INVLPG_ALL: u32 = 11;
/// `MMUEXT_FLUSH_CACHE`: `wbinvd` locally (permission required).
pub const MMUEXT_FLUSH_CACHE: u32 = 12;
/// `MMUEXT_SET_LDT`: set the LDT.
pub const MMUEXT_SET_LDT: u32 = 13;
/// `MMUEXT_NEW_USER_BASEPTR`: set the user-mode page-table root.
pub const MMUEXT_NEW_USER_BASEPTR: u32 = 15;
/// `MMUEXT_CLEAR_PAGE`: zero a frame.
pub const MMUEXT_CLEAR_PAGE: u32 = 16;
/// `MMUEXT_COPY_PAGE`: copy a frame.
pub const MMUEXT_COPY_PAGE: u32 = 17;
/// `MMUEXT_FLUSH_CACHE_GLOBAL`: `wbinvd` on all CPUs (permission required).
pub const MMUEXT_FLUSH_CACHE_GLOBAL: u32 = 18;
/// `MMUEXT_MARK_SUPER`: superpage marking (`-EOPNOTSUPP` on 4.17).
pub const MMUEXT_MARK_SUPER: u32 = 19;
/// `MMUEXT_UNMARK_SUPER`: superpage unmarking (`-EOPNOTSUPP` on 4.17).
pub const MMUEXT_UNMARK_SUPER: u32 = 20;

code_enum! {
    /// `mmuext_op.cmd` values (14 is unused).
    pub enum MmuextCmd: u32 ["mmuext_op command"] {
        /// Pin as L1.
        PinL1Table = MMUEXT_PIN_L1_TABLE => "MMUEXT_PIN_L1_TABLE",
        /// Pin as L2.
        PinL2Table = MMUEXT_PIN_L2_TABLE => "MMUEXT_PIN_L2_TABLE",
        /// Pin as L3.
        PinL3Table = MMUEXT_PIN_L3_TABLE => "MMUEXT_PIN_L3_TABLE",
        /// Pin as L4.
        PinL4Table = MMUEXT_PIN_L4_TABLE => "MMUEXT_PIN_L4_TABLE",
        /// Unpin.
        UnpinTable = MMUEXT_UNPIN_TABLE => "MMUEXT_UNPIN_TABLE",
        /// Kernel root.
        NewBaseptr = MMUEXT_NEW_BASEPTR => "MMUEXT_NEW_BASEPTR",
        /// Local flush.
        TlbFlushLocal = MMUEXT_TLB_FLUSH_LOCAL => "MMUEXT_TLB_FLUSH_LOCAL",
        /// Local invlpg.
        InvlpgLocal = MMUEXT_INVLPG_LOCAL => "MMUEXT_INVLPG_LOCAL",
        /// Flush on a vCPU mask.
        TlbFlushMulti = MMUEXT_TLB_FLUSH_MULTI => "MMUEXT_TLB_FLUSH_MULTI",
        /// invlpg on a vCPU mask.
        InvlpgMulti = MMUEXT_INVLPG_MULTI => "MMUEXT_INVLPG_MULTI",
        /// Flush on all vCPUs.
        TlbFlushAll = MMUEXT_TLB_FLUSH_ALL => "MMUEXT_TLB_FLUSH_ALL",
        /// invlpg on all vCPUs.
        InvlpgAll = MMUEXT_INVLPG_ALL => "MMUEXT_INVLPG_ALL",
        /// Local cache flush.
        FlushCache = MMUEXT_FLUSH_CACHE => "MMUEXT_FLUSH_CACHE",
        /// Set LDT.
        SetLdt = MMUEXT_SET_LDT => "MMUEXT_SET_LDT",
        /// User root.
        NewUserBaseptr = MMUEXT_NEW_USER_BASEPTR => "MMUEXT_NEW_USER_BASEPTR",
        /// Zero a frame.
        ClearPage = MMUEXT_CLEAR_PAGE => "MMUEXT_CLEAR_PAGE",
        /// Copy a frame.
        CopyPage = MMUEXT_COPY_PAGE => "MMUEXT_COPY_PAGE",
        /// Global cache flush.
        FlushCacheGlobal = MMUEXT_FLUSH_CACHE_GLOBAL => "MMUEXT_FLUSH_CACHE_GLOBAL",
        /// Mark superpage.
        MarkSuper = MMUEXT_MARK_SUPER => "MMUEXT_MARK_SUPER",
        /// Unmark superpage.
        UnmarkSuper = MMUEXT_UNMARK_SUPER => "MMUEXT_UNMARK_SUPER",
    }
    try_from: [u64];
}

/// `mmuext_op` (24 bytes; reference §9.5).
///
/// `arg1` is the union `{mfn, linear_addr}`; `arg2` is `{nr_ents (u32), vcpumask (handle),
/// src_mfn}` — `nr_ents` is the low half of `arg2`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmuextOp {
    /// `MMUEXT_*`.
    pub cmd: u32,
    /// Padding; zero.
    pub _pad0: u32,
    /// MFN (pin/unpin/baseptr/clear/copy destination) or linear address (invlpg, set_ldt).
    pub arg1: u64,
    /// `nr_ents` (set_ldt), vCPU-mask pointer (*_MULTI) or source MFN (copy_page).
    pub arg2: u64,
}

assert_layout!(MmuextOp, size = 24, align = 8, {
    cmd: u32 = 0,
    _pad0: u32 = 4,
    arg1: u64 = 8,
    arg2: u64 = 16,
});

impl MmuextOp {
    /// An operation with both arguments.
    #[must_use]
    pub const fn new(cmd: MmuextCmd, arg1: u64, arg2: u64) -> Self {
        Self {
            cmd: cmd.raw(),
            _pad0: 0,
            arg1,
            arg2,
        }
    }

    /// `arg2.nr_ents` (the low 32 bits of `arg2`).
    #[must_use]
    pub const fn nr_ents(&self) -> u32 {
        let b = self.arg2.to_le_bytes();
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
}

// ---------------------------------------------------------------------------------------------
// update_va_mapping flags (reference §9.6)

/// `UVMF_NONE`: no flush.
pub const UVMF_NONE: u64 = 0;
/// `UVMF_TLB_FLUSH`: full TLB flush.
pub const UVMF_TLB_FLUSH: u64 = 1;
/// `UVMF_INVLPG`: invalidate just the given address.
pub const UVMF_INVLPG: u64 = 2;
/// `UVMF_FLUSHTYPE_MASK`: bits 1:0 select the flush type.
pub const UVMF_FLUSHTYPE_MASK: u64 = 3;
/// `UVMF_MULTI`: scope = vCPUs in the bitmap whose pointer is ORed into the flags.
pub const UVMF_MULTI: u64 = 0;
/// `UVMF_LOCAL`: scope = this vCPU (no pointer ORed in).
pub const UVMF_LOCAL: u64 = 0;
/// `UVMF_ALL`: scope = all vCPUs of the domain.
pub const UVMF_ALL: u64 = 1 << 2;

/// Flush type of `update_va_mapping` (flags bits 1:0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UvmfFlush {
    /// No flush.
    None,
    /// Full TLB flush.
    TlbFlush,
    /// Invalidate the one address.
    Invlpg,
}

/// Flush scope of `update_va_mapping` (flags bit 2 and bits 63:3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UvmfScope {
    /// This vCPU.
    Local,
    /// The vCPUs in the bitmap at this 8-byte aligned guest address.
    Multi(u64),
    /// All vCPUs of the domain.
    All,
}

/// `update_va_mapping` flags with flush type 3, which the reference does not define.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InvalidUvmfFlags(pub u64);

impl core::fmt::Display for InvalidUvmfFlags {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "invalid update_va_mapping flags {:#x}", self.0)
    }
}

impl core::error::Error for InvalidUvmfFlags {}

/// Decodes `update_va_mapping` flags into flush type and scope.
///
/// # Errors
///
/// [`InvalidUvmfFlags`] when bits 1:0 are 3 (no flush type has that value).
pub const fn decode_uvmf(flags: u64) -> Result<(UvmfFlush, UvmfScope), InvalidUvmfFlags> {
    let flush = match flags & UVMF_FLUSHTYPE_MASK {
        UVMF_NONE => UvmfFlush::None,
        UVMF_TLB_FLUSH => UvmfFlush::TlbFlush,
        UVMF_INVLPG => UvmfFlush::Invlpg,
        _ => return Err(InvalidUvmfFlags(flags)),
    };
    let scope = if flags & UVMF_ALL != 0 {
        UvmfScope::All
    } else if flags & !7 == 0 {
        UvmfScope::Local
    } else {
        UvmfScope::Multi(flags & !7)
    };
    Ok((flush, scope))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn m2p_geometry() {
        assert_eq!(MACH2PHYS_NR_ENTRIES, 1 << 35);
        assert_eq!(m2p_entry_address(0), Some(MACH2PHYS_VIRT_START));
        assert_eq!(m2p_entry_address(2), Some(0xFFFF_8000_0000_0010));
        assert_eq!(m2p_entry_address(1 << 35), None);
        // Slots 256..=271 are exactly the hole.
        assert_eq!(
            HYPERVISOR_VIRT_START,
            0xFFFF_0000_0000_0000 | (256u64 << 39)
        );
        assert_eq!(HYPERVISOR_VIRT_END, 0xFFFF_0000_0000_0000 | (272u64 << 39));
        assert!(in_hypervisor_hole(0xFFFF_8000_0000_0000));
        assert!(!in_hypervisor_hole(0xFFFF_8800_0000_0000));
    }

    #[test]
    fn pte_bits() {
        assert_eq!(_PAGE_GUEST_KERNEL, 0x0010_0000_0000_0000);
        assert_eq!(_PAGE_NX, 0x8000_0000_0000_0000);
        assert_eq!(L1_ALLOWED_FLAGS & _PAGE_GNTTAB, 0);
        assert_ne!(L1_ALLOWED_FLAGS & _PAGE_GUEST_KERNEL, 0);
        assert_eq!(
            L2_L4_ALLOWED_FLAGS & (_PAGE_PSE | _PAGE_GLOBAL | _PAGE_PWT | _PAGE_PCD),
            0
        );
        assert_ne!(L2_L4_ALLOWED_FLAGS & _PAGE_GNTTAB, 0);
        let pte = make_pte(0x1234, _PAGE_PRESENT | _PAGE_RW | _PAGE_NX);
        assert_eq!(pte, 0x8000_0000_0123_4003);
        assert_eq!(pte_mfn(pte), 0x1234);
    }

    #[test]
    fn mmu_update_encoding() {
        let u = MmuUpdate::new(MmuCmd::MachphysUpdate, 0x5000, 7);
        assert_eq!(u.ptr, 0x5001);
        assert_eq!(u.cmd(), MmuCmd::MachphysUpdate);
        assert_eq!(u.maddr(), 0x5000);
    }

    #[test]
    fn foreigndom_fields() {
        let d = ForeignDom::decode(0x0000_0006_7FF0);
        assert_eq!(
            d,
            ForeignDom {
                fd: 0x7FF0,
                pfd: Some(5)
            }
        );
        assert_eq!(d.encode(), 0x6_7FF0);
        assert_eq!(ForeignDom::decode(0x7FF1).pfd, None);
    }

    #[test]
    fn mmuext_cmds() {
        assert!(MmuextCmd::try_from(14u32).is_err());
        assert_eq!(MmuextCmd::try_from(15u64), Ok(MmuextCmd::NewUserBaseptr));
        assert_eq!(MmuextCmd::ALL.len(), 20);
        let op = MmuextOp::new(MmuextCmd::SetLdt, 0x1000, 0xFFFF_FFFF_0000_0010);
        assert_eq!(op.nr_ents(), 16);
    }

    #[test]
    fn uvmf_decoding() {
        assert_eq!(
            decode_uvmf(UVMF_INVLPG),
            Ok((UvmfFlush::Invlpg, UvmfScope::Local))
        );
        assert_eq!(
            decode_uvmf(UVMF_TLB_FLUSH | UVMF_ALL),
            Ok((UvmfFlush::TlbFlush, UvmfScope::All))
        );
        assert_eq!(
            decode_uvmf(0xffff_8880_0000_1000 | UVMF_INVLPG),
            Ok((UvmfFlush::Invlpg, UvmfScope::Multi(0xffff_8880_0000_1000)))
        );
        assert_eq!(decode_uvmf(3), Err(InvalidUvmfFlags(3)));
    }
}
