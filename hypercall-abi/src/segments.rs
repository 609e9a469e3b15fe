//! Flat selectors, the hypervisor-reserved GDT area, and `set_segment_base` (reference §7).
//!
//! A 64-bit PV guest kernel and its user space both run at CPL 3, so the kernel and user flat
//! selectors are the same values.

/// `FLAT_RING3_CS32`: 32-bit code, DPL 3 (compat-mode user code).
pub const FLAT_RING3_CS32: u16 = 0xe023;
/// `FLAT_RING3_CS64`: 64-bit code, DPL 3.
pub const FLAT_RING3_CS64: u16 = 0xe033;
/// `FLAT_RING3_DS32`: flat data, DPL 3.
pub const FLAT_RING3_DS32: u16 = 0xe02b;
/// `FLAT_RING3_DS64`: the null selector (data segments are unused in 64-bit mode).
pub const FLAT_RING3_DS64: u16 = 0x0000;
/// `FLAT_RING3_SS32`: stack segment, same descriptor as `DS32`.
pub const FLAT_RING3_SS32: u16 = 0xe02b;
/// `FLAT_RING3_SS64`: stack segment for 64-bit code.
pub const FLAT_RING3_SS64: u16 = 0xe02b;

/// `FLAT_KERNEL_CS64`.
pub const FLAT_KERNEL_CS64: u16 = FLAT_RING3_CS64;
/// `FLAT_KERNEL_CS32`.
pub const FLAT_KERNEL_CS32: u16 = FLAT_RING3_CS32;
/// `FLAT_KERNEL_DS64`.
pub const FLAT_KERNEL_DS64: u16 = FLAT_RING3_DS64;
/// `FLAT_KERNEL_DS32`.
pub const FLAT_KERNEL_DS32: u16 = FLAT_RING3_DS32;
/// `FLAT_KERNEL_SS64`.
pub const FLAT_KERNEL_SS64: u16 = FLAT_RING3_SS64;
/// `FLAT_KERNEL_SS32`.
pub const FLAT_KERNEL_SS32: u16 = FLAT_RING3_SS32;
/// `FLAT_KERNEL_CS`: the guest kernel's code selector at entry (0xe033).
pub const FLAT_KERNEL_CS: u16 = FLAT_KERNEL_CS64;
/// `FLAT_KERNEL_DS`: the guest kernel's data selectors at entry (null).
pub const FLAT_KERNEL_DS: u16 = FLAT_KERNEL_DS64;
/// `FLAT_KERNEL_SS`: the guest kernel's stack selector at entry (0xe02b).
pub const FLAT_KERNEL_SS: u16 = FLAT_KERNEL_SS64;

/// `FLAT_USER_CS64`.
pub const FLAT_USER_CS64: u16 = FLAT_RING3_CS64;
/// `FLAT_USER_CS32`.
pub const FLAT_USER_CS32: u16 = FLAT_RING3_CS32;
/// `FLAT_USER_DS64`.
pub const FLAT_USER_DS64: u16 = FLAT_RING3_DS64;
/// `FLAT_USER_DS32`.
pub const FLAT_USER_DS32: u16 = FLAT_RING3_DS32;
/// `FLAT_USER_SS64`.
pub const FLAT_USER_SS64: u16 = FLAT_RING3_SS64;
/// `FLAT_USER_SS32`.
pub const FLAT_USER_SS32: u16 = FLAT_RING3_SS32;
/// `FLAT_USER_CS`.
pub const FLAT_USER_CS: u16 = FLAT_USER_CS64;
/// `FLAT_USER_DS`.
pub const FLAT_USER_DS: u16 = FLAT_USER_DS64;
/// `FLAT_USER_SS`.
pub const FLAT_USER_SS: u16 = FLAT_USER_SS64;

/// Raw descriptor behind `FLAT_RING3_CS64` (64-bit code, DPL 3).
pub const FLAT_RING3_CS64_DESCRIPTOR: u64 = 0x00af_fb00_0000_ffff;
/// Raw descriptor behind `FLAT_RING3_CS32` (32-bit code, DPL 3).
pub const FLAT_RING3_CS32_DESCRIPTOR: u64 = 0x00cf_fb00_0000_ffff;
/// Raw descriptor behind `FLAT_RING3_DS32` / the flat stack selector (data, DPL 3).
pub const FLAT_RING3_DS32_DESCRIPTOR: u64 = 0x00cf_f300_0000_ffff;

/// `FIRST_RESERVED_GDT_PAGE`: first GDT page owned by the hypervisor.
pub const FIRST_RESERVED_GDT_PAGE: usize = 14;
/// Descriptors per GDT page.
pub const GDT_ENTRIES_PER_PAGE: usize = 512;
/// `FIRST_RESERVED_GDT_BYTE`: byte offset of the hypervisor area in the GDT.
pub const FIRST_RESERVED_GDT_BYTE: usize = FIRST_RESERVED_GDT_PAGE * crate::PAGE_SIZE;
/// `FIRST_RESERVED_GDT_ENTRY`: first descriptor index owned by the hypervisor.
pub const FIRST_RESERVED_GDT_ENTRY: usize = FIRST_RESERVED_GDT_PAGE * GDT_ENTRIES_PER_PAGE;
/// Largest `entries` accepted by `set_gdt` (14 pages × 512).
pub const MAX_GUEST_GDT_ENTRIES: usize = FIRST_RESERVED_GDT_ENTRY;
/// Pages in the per-vCPU hardware GDT (14 guest + 2 hypervisor).
pub const GDT_TOTAL_PAGES: usize = 16;
/// Largest LDT accepted by `MMUEXT_SET_LDT`.
pub const MAX_LDT_ENTRIES: usize = 8192;

/// Selectors of Xen's reserved GDT page on 64-bit (reference §7.2). Names are Oxen's; the
/// reference lists only the contents.
pub mod xen_gdt {
    /// Hypervisor 64-bit code (ring 0).
    pub const HYPERVISOR_CS: u16 = 0xe008;
    /// Hypervisor data (ring 0).
    pub const HYPERVISOR_DS: u16 = 0xe010;
    /// Reserved slot.
    pub const RESERVED_0: u16 = 0xe018;
    /// Ring-3 32-bit code (`FLAT_RING3_CS32` without RPL).
    pub const RING3_CS32: u16 = 0xe020;
    /// Ring-3 data (`FLAT_RING3_DS32` without RPL).
    pub const RING3_DS: u16 = 0xe028;
    /// Ring-3 64-bit code (`FLAT_RING3_CS64` without RPL).
    pub const RING3_CS64: u16 = 0xe030;
    /// Reserved slot.
    pub const RESERVED_1: u16 = 0xe038;
    /// TSS (16-byte descriptor).
    pub const TSS: u16 = 0xe040;
    /// LDT (16-byte descriptor).
    pub const LDT: u16 = 0xe050;
    /// Per-CPU marker (limit = CPU number).
    pub const PER_CPU: u16 = 0xe060;
}

/// The index of a selector in the descriptor table (`selector >> 3`).
#[must_use]
pub const fn selector_index(selector: u16) -> u16 {
    selector >> 3
}

/// The requested privilege level of a selector (its low two bits).
#[must_use]
pub const fn selector_rpl(selector: u16) -> u16 {
    selector & 3
}

/// `SEGBASE_FS`: set the FS base.
pub const SEGBASE_FS: u32 = 0;
/// `SEGBASE_GS_USER`: set the user-mode GS base.
pub const SEGBASE_GS_USER: u32 = 1;
/// `SEGBASE_GS_KERNEL`: set the kernel-mode GS base.
pub const SEGBASE_GS_KERNEL: u32 = 2;
/// `SEGBASE_GS_USER_SEL`: load the user `%gs` selector (`base & 0xffff`).
pub const SEGBASE_GS_USER_SEL: u32 = 3;

code_enum! {
    /// The `which` argument of `set_segment_base` (hypercall 25).
    pub enum SegBase: u32 ["segbase"] {
        /// FS base.
        Fs = SEGBASE_FS => "SEGBASE_FS",
        /// User GS base.
        GsUser = SEGBASE_GS_USER => "SEGBASE_GS_USER",
        /// Kernel GS base.
        GsKernel = SEGBASE_GS_KERNEL => "SEGBASE_GS_KERNEL",
        /// User GS selector.
        GsUserSel = SEGBASE_GS_USER_SEL => "SEGBASE_GS_USER_SEL",
    }
    try_from: [u64];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_selectors_and_indices() {
        assert_eq!(FLAT_KERNEL_CS, 0xe033);
        assert_eq!(FLAT_KERNEL_SS, 0xe02b);
        assert_eq!(FLAT_KERNEL_DS, 0);
        assert_eq!(FLAT_USER_CS32, 0xe023);
        assert_eq!(selector_index(FLAT_RING3_CS64), 7174);
        assert_eq!(selector_index(FLAT_RING3_DS32), 7173);
        assert_eq!(selector_index(FLAT_RING3_CS32), 7172);
        assert_eq!(selector_rpl(FLAT_KERNEL_CS), 3);
        assert_eq!(FIRST_RESERVED_GDT_BYTE, 0xE000);
        assert_eq!(FIRST_RESERVED_GDT_ENTRY, 7168);
        assert_eq!(xen_gdt::RING3_CS64 | 3, FLAT_RING3_CS64);
    }

    #[test]
    fn segbase_decode() {
        assert_eq!(SegBase::try_from(2u64), Ok(SegBase::GsKernel));
        assert!(SegBase::try_from(4u32).is_err());
    }
}
