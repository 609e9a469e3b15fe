//! `xen_version` (hypercall 17) sub-ops and structs, and the `XENFEAT_*` feature bits
//! (reference §15.1–§15.2).

pub use crate::{XEN_INTERFACE_VERSION, XEN_VERSION_MAJOR, XEN_VERSION_MINOR};

/// `XENVER_version`: returns `major << 16 | minor` (arg NULL).
pub const XENVER_VERSION: u32 = 0;
/// `XENVER_extraversion`: `char[16]`.
pub const XENVER_EXTRAVERSION: u32 = 1;
/// `XENVER_compile_info`: `xen_compile_info`.
pub const XENVER_COMPILE_INFO: u32 = 2;
/// `XENVER_capabilities`: `char[1024]`.
pub const XENVER_CAPABILITIES: u32 = 3;
/// `XENVER_changeset`: `char[64]`.
pub const XENVER_CHANGESET: u32 = 4;
/// `XENVER_platform_parameters`: `xen_platform_parameters`.
pub const XENVER_PLATFORM_PARAMETERS: u32 = 5;
/// `XENVER_get_features`: `xen_feature_info`.
pub const XENVER_GET_FEATURES: u32 = 6;
/// `XENVER_pagesize`: returns the page size (arg NULL).
pub const XENVER_PAGESIZE: u32 = 7;
/// `XENVER_guest_handle`: `u8[16]` domain handle.
pub const XENVER_GUEST_HANDLE: u32 = 8;
/// `XENVER_commandline`: `char[1024]` (privileged).
pub const XENVER_COMMANDLINE: u32 = 9;
/// `XENVER_build_id`: `xen_build_id` (privileged).
pub const XENVER_BUILD_ID: u32 = 10;

code_enum! {
    /// `xen_version` sub-operations.
    pub enum XenVersionCmd: u32 ["xen_version sub-op"] {
        /// Version number.
        Version = XENVER_VERSION => "XENVER_version",
        /// Extra version string.
        Extraversion = XENVER_EXTRAVERSION => "XENVER_extraversion",
        /// Compiler information.
        CompileInfo = XENVER_COMPILE_INFO => "XENVER_compile_info",
        /// Capabilities string.
        Capabilities = XENVER_CAPABILITIES => "XENVER_capabilities",
        /// Changeset string.
        Changeset = XENVER_CHANGESET => "XENVER_changeset",
        /// Platform parameters.
        PlatformParameters = XENVER_PLATFORM_PARAMETERS => "XENVER_platform_parameters",
        /// Feature bitmap.
        GetFeatures = XENVER_GET_FEATURES => "XENVER_get_features",
        /// Page size.
        Pagesize = XENVER_PAGESIZE => "XENVER_pagesize",
        /// Domain handle.
        GuestHandle = XENVER_GUEST_HANDLE => "XENVER_guest_handle",
        /// Hypervisor command line.
        Commandline = XENVER_COMMANDLINE => "XENVER_commandline",
        /// Build id.
        BuildId = XENVER_BUILD_ID => "XENVER_build_id",
    }
    try_from: [u64];
}

/// The `XENVER_version` result: `major << 16 | minor`.
#[must_use]
pub const fn xen_version_value(major: u16, minor: u16) -> u32 {
    (major as u32) << 16 | minor as u32
}

/// What Oxen answers to `XENVER_version` (4.17 → `0x00040011`).
pub const XEN_VERSION_PACKED: u32 = xen_version_value(XEN_VERSION_MAJOR, XEN_VERSION_MINOR);

/// `XENPF_INTERFACE_VERSION` of Xen 4.17's `platform_op` (dom0-only, version-locked).
pub const XENPF_INTERFACE_VERSION: u32 = 0x0300_0001;
/// `XEN_SYSCTL_INTERFACE_VERSION` of Xen 4.17 (toolstack-only, version-locked).
pub const XEN_SYSCTL_INTERFACE_VERSION: u32 = 0x0000_0015;
/// `XEN_DOMCTL_INTERFACE_VERSION` of Xen 4.17 (toolstack-only, version-locked).
pub const XEN_DOMCTL_INTERFACE_VERSION: u32 = 0x0000_0015;

/// `XENVER_pagesize` result.
pub const XENVER_PAGESIZE_VALUE: u64 = crate::PAGE_SIZE as u64;

/// Capabilities string for a hypervisor that runs only 64-bit PV guests.
pub const XEN_CAPABILITIES_PV64: &[u8] = b"xen-3.0-x86_64 ";

/// What string queries return when the policy denies them.
pub const XENVER_DENIED_STRING: &[u8] = b"<denied>";

/// Length of `xen_extraversion_t`.
pub const XEN_EXTRAVERSION_LEN: usize = 16;
/// Length of `xen_capabilities_info_t`.
pub const XEN_CAPABILITIES_INFO_LEN: usize = 1024;
/// Length of `xen_changeset_info_t`.
pub const XEN_CHANGESET_INFO_LEN: usize = 64;
/// Length of `xen_domain_handle_t`.
pub const XEN_DOMAIN_HANDLE_LEN: usize = 16;
/// Length of `xen_commandline_t`.
pub const XEN_COMMANDLINE_LEN: usize = 1024;

/// `xen_extraversion_t`: argument of `XENVER_extraversion`.
pub type XenExtraversion = [u8; XEN_EXTRAVERSION_LEN];
/// `xen_capabilities_info_t`: argument of `XENVER_capabilities`.
pub type XenCapabilitiesInfo = [u8; XEN_CAPABILITIES_INFO_LEN];
/// `xen_changeset_info_t`: argument of `XENVER_changeset`.
pub type XenChangesetInfo = [u8; XEN_CHANGESET_INFO_LEN];
/// `xen_domain_handle_t`: argument of `XENVER_guest_handle`.
pub type XenDomainHandle = [u8; XEN_DOMAIN_HANDLE_LEN];
/// `xen_commandline_t`: argument of `XENVER_commandline`.
pub type XenCommandline = [u8; XEN_COMMANDLINE_LEN];

/// `xen_compile_info` (144 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenCompileInfo {
    /// Compiler.
    pub compiler: [u8; 64],
    /// Built by.
    pub compile_by: [u8; 16],
    /// Build domain.
    pub compile_domain: [u8; 32],
    /// Build date.
    pub compile_date: [u8; 32],
}

impl Default for XenCompileInfo {
    fn default() -> Self {
        Self {
            compiler: [0; 64],
            compile_by: [0; 16],
            compile_domain: [0; 32],
            compile_date: [0; 32],
        }
    }
}

assert_layout!(XenCompileInfo, size = 144, align = 1, {
    compiler: [u8; 64] = 0,
    compile_by: [u8; 16] = 64,
    compile_domain: [u8; 32] = 80,
    compile_date: [u8; 32] = 112,
});

/// `xen_platform_parameters` (8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenPlatformParameters {
    /// `HYPERVISOR_VIRT_START`.
    pub virt_start: u64,
}

assert_layout!(XenPlatformParameters, size = 8, align = 8, { virt_start: u64 = 0 });

/// `xen_feature_info` (8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenFeatureInfo {
    /// IN: which 32-bit word of features (only 0 is valid).
    pub submap_idx: u32,
    /// OUT: the feature bits.
    pub submap: u32,
}

assert_layout!(XenFeatureInfo, size = 8, align = 4, {
    submap_idx: u32 = 0,
    submap: u32 = 4,
});

/// Header of `xen_build_id`; the build-id bytes follow at offset 4.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenBuildIdHeader {
    /// IN: buffer size.
    pub len: u32,
}

assert_layout!(XenBuildIdHeader, size = 4, align = 4, { len: u32 = 0 });

/// Offset of `xen_build_id.buf`.
pub const XEN_BUILD_ID_BUF_OFFSET: usize = 4;

// ---------------------------------------------------------------------------------------------
// Feature bits (reference §15.2)

/// `XENFEAT_writable_page_tables`.
pub const XENFEAT_WRITABLE_PAGE_TABLES: u32 = 0;
/// `XENFEAT_writable_descriptor_tables`.
pub const XENFEAT_WRITABLE_DESCRIPTOR_TABLES: u32 = 1;
/// `XENFEAT_auto_translated_physmap`.
pub const XENFEAT_AUTO_TRANSLATED_PHYSMAP: u32 = 2;
/// `XENFEAT_supervisor_mode_kernel`.
pub const XENFEAT_SUPERVISOR_MODE_KERNEL: u32 = 3;
/// `XENFEAT_pae_pgdir_above_4gb`.
pub const XENFEAT_PAE_PGDIR_ABOVE_4GB: u32 = 4;
/// `XENFEAT_mmu_pt_update_preserve_ad`.
pub const XENFEAT_MMU_PT_UPDATE_PRESERVE_AD: u32 = 5;
/// `XENFEAT_highmem_assist`.
pub const XENFEAT_HIGHMEM_ASSIST: u32 = 6;
/// `XENFEAT_gnttab_map_avail_bits`.
pub const XENFEAT_GNTTAB_MAP_AVAIL_BITS: u32 = 7;
/// `XENFEAT_hvm_callback_vector`.
pub const XENFEAT_HVM_CALLBACK_VECTOR: u32 = 8;
/// `XENFEAT_hvm_safe_pvclock`.
pub const XENFEAT_HVM_SAFE_PVCLOCK: u32 = 9;
/// `XENFEAT_hvm_pirqs`.
pub const XENFEAT_HVM_PIRQS: u32 = 10;
/// `XENFEAT_dom0`.
pub const XENFEAT_DOM0: u32 = 11;
/// `XENFEAT_grant_map_identity`.
pub const XENFEAT_GRANT_MAP_IDENTITY: u32 = 12;
/// `XENFEAT_memory_op_vnode_supported`.
pub const XENFEAT_MEMORY_OP_VNODE_SUPPORTED: u32 = 13;
/// `XENFEAT_ARM_SMCCC_supported`.
pub const XENFEAT_ARM_SMCCC_SUPPORTED: u32 = 14;
/// `XENFEAT_linux_rsdp_unrestricted`.
pub const XENFEAT_LINUX_RSDP_UNRESTRICTED: u32 = 15;
/// `XENFEAT_not_direct_mapped`.
pub const XENFEAT_NOT_DIRECT_MAPPED: u32 = 16;
/// `XENFEAT_direct_mapped`.
pub const XENFEAT_DIRECT_MAPPED: u32 = 17;
/// `XENFEAT_NR_SUBMAPS`: number of 32-bit feature words.
pub const XENFEAT_NR_SUBMAPS: u32 = 1;

/// The bit of `feature` in submap 0.
#[must_use]
pub const fn xenfeat_bit(feature: u32) -> u32 {
    1 << feature
}

/// Feature word 0 Xen 4.17 reports to a 64-bit PV domU: bits 5, 6, 7, 13, 17.
pub const XENFEAT_PV64_DOMU: u32 = xenfeat_bit(XENFEAT_MMU_PT_UPDATE_PRESERVE_AD)
    | xenfeat_bit(XENFEAT_HIGHMEM_ASSIST)
    | xenfeat_bit(XENFEAT_GNTTAB_MAP_AVAIL_BITS)
    | xenfeat_bit(XENFEAT_MEMORY_OP_VNODE_SUPPORTED)
    | xenfeat_bit(XENFEAT_DIRECT_MAPPED);
/// Feature word 0 for the PV hardware domain: the domU set plus `dom0`.
pub const XENFEAT_PV64_DOM0: u32 = XENFEAT_PV64_DOMU | xenfeat_bit(XENFEAT_DOM0);

code_enum! {
    /// `XENFEAT_*` feature numbers (bit positions in submap 0). `name()` gives the spelling used
    /// in feature strings, i.e. without the `XENFEAT_` prefix.
    pub enum XenFeature: u32 ["XENFEAT"] {
        /// Direct PTE writes.
        WritablePageTables = XENFEAT_WRITABLE_PAGE_TABLES => "writable_page_tables",
        /// Direct GDT/LDT writes.
        WritableDescriptorTables = XENFEAT_WRITABLE_DESCRIPTOR_TABLES => "writable_descriptor_tables",
        /// Auto-translated physmap.
        AutoTranslatedPhysmap = XENFEAT_AUTO_TRANSLATED_PHYSMAP => "auto_translated_physmap",
        /// Ring-0 kernel (obsolete).
        SupervisorModeKernel = XENFEAT_SUPERVISOR_MODE_KERNEL => "supervisor_mode_kernel",
        /// PAE page directory above 4 GiB.
        PaePgdirAbove4gb = XENFEAT_PAE_PGDIR_ABOVE_4GB => "pae_pgdir_above_4gb",
        /// `MMU_PT_UPDATE_PRESERVE_AD` supported.
        MmuPtUpdatePreserveAd = XENFEAT_MMU_PT_UPDATE_PRESERVE_AD => "mmu_pt_update_preserve_ad",
        /// x86-32 highmem assists.
        HighmemAssist = XENFEAT_HIGHMEM_ASSIST => "highmem_assist",
        /// `GNTMAP_guest_avail*` honoured.
        GnttabMapAvailBits = XENFEAT_GNTTAB_MAP_AVAIL_BITS => "gnttab_map_avail_bits",
        /// HVM callback vector.
        HvmCallbackVector = XENFEAT_HVM_CALLBACK_VECTOR => "hvm_callback_vector",
        /// HVM-safe pvclock.
        HvmSafePvclock = XENFEAT_HVM_SAFE_PVCLOCK => "hvm_safe_pvclock",
        /// HVM PIRQs.
        HvmPirqs = XENFEAT_HVM_PIRQS => "hvm_pirqs",
        /// The guest is dom0.
        Dom0 = XENFEAT_DOM0 => "dom0",
        /// Identity grant mappings (ARM).
        GrantMapIdentity = XENFEAT_GRANT_MAP_IDENTITY => "grant_map_identity",
        /// vNUMA memory_op flag supported.
        MemoryOpVnodeSupported = XENFEAT_MEMORY_OP_VNODE_SUPPORTED => "memory_op_vnode_supported",
        /// ARM SMCCC.
        ArmSmcccSupported = XENFEAT_ARM_SMCCC_SUPPORTED => "ARM_SMCCC_supported",
        /// Unrestricted RSDP for Linux (PVH dom0).
        LinuxRsdpUnrestricted = XENFEAT_LINUX_RSDP_UNRESTRICTED => "linux_rsdp_unrestricted",
        /// Not direct mapped.
        NotDirectMapped = XENFEAT_NOT_DIRECT_MAPPED => "not_direct_mapped",
        /// Direct mapped (PV).
        DirectMapped = XENFEAT_DIRECT_MAPPED => "direct_mapped",
    }
    try_from: [u64];
}

impl XenFeature {
    /// The feature's bit in submap 0.
    #[must_use]
    pub const fn bit(self) -> u32 {
        xenfeat_bit(self.raw())
    }

    /// Looks a feature up by its name without the `XENFEAT_` prefix (as used in feature strings).
    #[must_use]
    pub fn from_name(name: &[u8]) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|f| f.name().as_bytes() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_value() {
        assert_eq!(XEN_VERSION_PACKED, 0x0004_0011);
        assert_eq!(
            XenVersionCmd::try_from(6u64),
            Ok(XenVersionCmd::GetFeatures)
        );
        assert!(XenVersionCmd::try_from(11u32).is_err());
    }

    #[test]
    fn feature_words() {
        assert_eq!(XENFEAT_PV64_DOMU, 0x0002_20E0);
        assert_eq!(XENFEAT_PV64_DOM0, 0x0002_28E0);
        assert_eq!(
            XenFeature::from_name(b"pae_pgdir_above_4gb"),
            Some(XenFeature::PaePgdirAbove4gb)
        );
        assert_eq!(XenFeature::from_name(b"XENFEAT_dom0"), None);
        assert_eq!(XenFeature::DirectMapped.bit(), 1 << 17);
    }
}
