//! `vm_assist(cmd, type)` (hypercall 21): optional hypervisor assists (reference §15.3).

/// `VMASST_CMD_enable`.
pub const VMASST_CMD_ENABLE: u32 = 0;
/// `VMASST_CMD_disable`.
pub const VMASST_CMD_DISABLE: u32 = 1;

code_enum! {
    /// `vm_assist` commands (others → `-ENOSYS`).
    pub enum VmAssistCmd: u32 ["vm_assist command"] {
        /// Enable an assist.
        Enable = VMASST_CMD_ENABLE => "VMASST_CMD_enable",
        /// Disable an assist.
        Disable = VMASST_CMD_DISABLE => "VMASST_CMD_disable",
    }
    try_from: [u64];
}

/// `VMASST_TYPE_4gb_segments`: 32-bit only; accepted, no effect.
pub const VMASST_TYPE_4GB_SEGMENTS: u32 = 0;
/// `VMASST_TYPE_4gb_segments_notify`: 32-bit only; accepted, no effect.
pub const VMASST_TYPE_4GB_SEGMENTS_NOTIFY: u32 = 1;
/// `VMASST_TYPE_writable_pagetables`: emulate direct writes to L1 page tables.
pub const VMASST_TYPE_WRITABLE_PAGETABLES: u32 = 2;
/// `VMASST_TYPE_pae_extended_cr3`: 32-bit PAE only.
pub const VMASST_TYPE_PAE_EXTENDED_CR3: u32 = 3;
/// `VMASST_TYPE_architectural_iopl`: architectural virtual IOPL.
pub const VMASST_TYPE_ARCHITECTURAL_IOPL: u32 = 4;
/// `VMASST_TYPE_runstate_update_flag`: set `XEN_RUNSTATE_UPDATE` during runstate updates.
pub const VMASST_TYPE_RUNSTATE_UPDATE_FLAG: u32 = 5;
/// `VMASST_TYPE_m2p_strict`: hide the M2P from user-mode page tables.
pub const VMASST_TYPE_M2P_STRICT: u32 = 32;

code_enum! {
    /// `vm_assist` types.
    pub enum VmAssistType: u32 ["vm_assist type"] {
        /// 4 GiB segments.
        FourGbSegments = VMASST_TYPE_4GB_SEGMENTS => "VMASST_TYPE_4gb_segments",
        /// 4 GiB segments with notification.
        FourGbSegmentsNotify = VMASST_TYPE_4GB_SEGMENTS_NOTIFY => "VMASST_TYPE_4gb_segments_notify",
        /// Writable page tables.
        WritablePagetables = VMASST_TYPE_WRITABLE_PAGETABLES => "VMASST_TYPE_writable_pagetables",
        /// PAE extended CR3.
        PaeExtendedCr3 = VMASST_TYPE_PAE_EXTENDED_CR3 => "VMASST_TYPE_pae_extended_cr3",
        /// Architectural IOPL.
        ArchitecturalIopl = VMASST_TYPE_ARCHITECTURAL_IOPL => "VMASST_TYPE_architectural_iopl",
        /// Runstate update flag.
        RunstateUpdateFlag = VMASST_TYPE_RUNSTATE_UPDATE_FLAG => "VMASST_TYPE_runstate_update_flag",
        /// Strict M2P.
        M2pStrict = VMASST_TYPE_M2P_STRICT => "VMASST_TYPE_m2p_strict",
    }
    try_from: [u64];
}

impl VmAssistType {
    /// The type's bit in the `vm_assist` bitmap (`vcpu_guest_context.vm_assist`).
    #[must_use]
    pub const fn bit(self) -> u64 {
        1 << self.raw()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(VmAssistType::try_from(32u64), Ok(VmAssistType::M2pStrict));
        assert!(VmAssistType::try_from(6u32).is_err());
        assert_eq!(VmAssistType::WritablePagetables.bit(), 4);
        assert_eq!(VmAssistType::M2pStrict.bit(), 1 << 32);
        assert!(VmAssistCmd::try_from(2u32).is_err());
    }
}
