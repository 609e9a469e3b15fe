//! Grant tables: entries, flags, status codes, and every `grant_table_op` (hypercall 20)
//! argument struct (reference §11).
//!
//! The hypercall takes `(cmd, uop, count)`: `uop` points to `count` structs of the command's type
//! and each entry reports its own `GNTST_*` status; the hypercall returns 0 or a global errno.

use crate::types::{DomidT, GrantHandle, GrantRef, GuestHandle};

// ---------------------------------------------------------------------------------------------
// Entries (reference §11.1, §11.6)

/// `GNTTAB_NR_RESERVED_ENTRIES`: entries reserved for the toolstack.
pub const GNTTAB_NR_RESERVED_ENTRIES: GrantRef = 8;
/// `GNTTAB_RESERVED_CONSOLE`: grant of the console ring to its backend.
pub const GNTTAB_RESERVED_CONSOLE: GrantRef = 0;
/// `GNTTAB_RESERVED_XENSTORE`: grant of the XenStore ring to its backend.
pub const GNTTAB_RESERVED_XENSTORE: GrantRef = 1;
/// v1 entries per 4 KiB grant frame.
pub const GRANT_ENTRIES_V1_PER_PAGE: usize = 512;
/// v2 entries per 4 KiB grant frame.
pub const GRANT_ENTRIES_V2_PER_PAGE: usize = 256;
/// Xen's default per-domain limit on grant frames (`gnttab_max_frames`).
pub const GNTTAB_DEFAULT_MAX_FRAMES: u32 = 64;

/// `grant_entry_v1` (8 bytes; 512 per page).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantEntryV1 {
    /// `GTF_*` (type, permissions; reading/writing set by the hypervisor).
    pub flags: u16,
    /// Domain allowed to use the grant.
    pub domid: DomidT,
    /// Granted frame (MFN for PV granters), or the transferred MFN for accept_transfer.
    pub frame: u32,
}

assert_layout!(GrantEntryV1, size = 8, align = 4, {
    flags: u16 = 0,
    domid: u16 = 2,
    frame: u32 = 4,
});

impl GrantEntryV1 {
    /// The 32-bit `{flags, domid}` word the hypervisor reads and `cmpxchg`es atomically.
    #[must_use]
    pub const fn flags_domid_word(&self) -> u32 {
        (self.domid as u32) << 16 | self.flags as u32
    }

    /// The grant type (`flags & GTF_TYPE_MASK`).
    #[must_use]
    pub const fn grant_type(&self) -> GrantType {
        GrantType::from_flags(self.flags)
    }
}

/// `GTF_invalid`: entry unused.
pub const GTF_INVALID: u16 = 0;
/// `GTF_permit_access`: the grantee may map/copy the frame.
pub const GTF_PERMIT_ACCESS: u16 = 1;
/// `GTF_accept_transfer`: the grantee may transfer a frame to us.
pub const GTF_ACCEPT_TRANSFER: u16 = 2;
/// `GTF_transitive`: v2 transitive grant.
pub const GTF_TRANSITIVE: u16 = 3;
/// `GTF_type_mask`: bits 1:0 hold the type.
pub const GTF_TYPE_MASK: u16 = 3;
/// `GTF_readonly`: grantee may only read.
pub const GTF_READONLY: u16 = 1 << 2;
/// `GTF_reading`: hypervisor sets while the grantee maps/copies the frame.
pub const GTF_READING: u16 = 1 << 3;
/// `GTF_writing`: hypervisor sets while the grantee maps/copies writable.
pub const GTF_WRITING: u16 = 1 << 4;
/// `GTF_PWT`: cache attribute for the grantee's mapping.
pub const GTF_PWT: u16 = 1 << 5;
/// `GTF_PCD`: cache attribute for the grantee's mapping.
pub const GTF_PCD: u16 = 1 << 6;
/// `GTF_PAT`: cache attribute for the grantee's mapping.
pub const GTF_PAT: u16 = 1 << 7;
/// `GTF_sub_page`: v2 sub-page grant.
pub const GTF_SUB_PAGE: u16 = 1 << 8;
/// `GTF_transfer_committed`: accept_transfer in progress (same bit as `GTF_readonly`).
pub const GTF_TRANSFER_COMMITTED: u16 = 1 << 2;
/// `GTF_transfer_completed`: accept_transfer finished (same bit as `GTF_reading`).
pub const GTF_TRANSFER_COMPLETED: u16 = 1 << 3;

/// The grant type in bits 1:0 of an entry's flags (every 2-bit value names one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum GrantType {
    /// `GTF_invalid`.
    Invalid = GTF_INVALID,
    /// `GTF_permit_access`.
    PermitAccess = GTF_PERMIT_ACCESS,
    /// `GTF_accept_transfer`.
    AcceptTransfer = GTF_ACCEPT_TRANSFER,
    /// `GTF_transitive` (v2 only).
    Transitive = GTF_TRANSITIVE,
}

impl GrantType {
    /// Extracts the type from entry flags.
    #[must_use]
    pub const fn from_flags(flags: u16) -> Self {
        match flags & GTF_TYPE_MASK {
            GTF_INVALID => Self::Invalid,
            GTF_PERMIT_ACCESS => Self::PermitAccess,
            GTF_ACCEPT_TRANSFER => Self::AcceptTransfer,
            _ => Self::Transitive,
        }
    }
}

/// Common header of v2 entries (4 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantEntryHeader {
    /// `GTF_*` (without reading/writing, which live in the status array in v2).
    pub flags: u16,
    /// Domain allowed to use the grant.
    pub domid: DomidT,
}

assert_layout!(GrantEntryHeader, size = 4, align = 2, {
    flags: u16 = 0,
    domid: u16 = 2,
});

/// v2 `full_page` variant (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantEntryV2FullPage {
    /// Header.
    pub hdr: GrantEntryHeader,
    /// Padding; zero.
    pub _pad0: u32,
    /// Granted frame.
    pub frame: u64,
}

assert_layout!(GrantEntryV2FullPage, size = 16, align = 8, {
    hdr: GrantEntryHeader = 0,
    _pad0: u32 = 4,
    frame: u64 = 8,
});

/// v2 `sub_page` variant (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantEntryV2SubPage {
    /// Header.
    pub hdr: GrantEntryHeader,
    /// Offset of the granted bytes in the frame.
    pub page_off: u16,
    /// Number of granted bytes.
    pub length: u16,
    /// Granted frame.
    pub frame: u64,
}

assert_layout!(GrantEntryV2SubPage, size = 16, align = 8, {
    hdr: GrantEntryHeader = 0,
    page_off: u16 = 4,
    length: u16 = 6,
    frame: u64 = 8,
});

/// v2 `transitive` variant (12 bytes on its own; 16 inside the union). Field offsets from the
/// reference; the standalone size of 12 is derived, not measured.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantEntryV2Transitive {
    /// Header.
    pub hdr: GrantEntryHeader,
    /// Domain that owns the original grant.
    pub trans_domid: DomidT,
    /// Padding; zero.
    pub _pad0: u16,
    /// The original grant reference in `trans_domid`'s table.
    pub gref: GrantRef,
}

assert_layout!(GrantEntryV2Transitive, size = 12, align = 4, {
    hdr: GrantEntryHeader = 0,
    trans_domid: u16 = 4,
    _pad0: u16 = 6,
    gref: u32 = 8,
});

/// `grant_entry_v2` (a 16-byte union; 256 per page).
///
/// Stored as header + two raw words; convert with the `From` impls and the `full_page`,
/// `sub_page` and `transitive` accessors.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantEntryV2 {
    /// Header shared by all variants.
    pub hdr: GrantEntryHeader,
    /// Bytes 4..8 of the union.
    pub word1: u32,
    /// Bytes 8..16 of the union.
    pub word2: u64,
}

assert_layout!(GrantEntryV2, size = 16, align = 8, {
    hdr: GrantEntryHeader = 0,
    word1: u32 = 4,
    word2: u64 = 8,
});

impl GrantEntryV2 {
    /// The `full_page` view.
    #[must_use]
    pub const fn full_page(&self) -> GrantEntryV2FullPage {
        GrantEntryV2FullPage {
            hdr: self.hdr,
            _pad0: self.word1,
            frame: self.word2,
        }
    }

    /// The `sub_page` view.
    #[must_use]
    pub const fn sub_page(&self) -> GrantEntryV2SubPage {
        let b = self.word1.to_le_bytes();
        GrantEntryV2SubPage {
            hdr: self.hdr,
            page_off: u16::from_le_bytes([b[0], b[1]]),
            length: u16::from_le_bytes([b[2], b[3]]),
            frame: self.word2,
        }
    }

    /// The `transitive` view.
    #[must_use]
    pub const fn transitive(&self) -> GrantEntryV2Transitive {
        let b = self.word1.to_le_bytes();
        let g = self.word2.to_le_bytes();
        GrantEntryV2Transitive {
            hdr: self.hdr,
            trans_domid: u16::from_le_bytes([b[0], b[1]]),
            _pad0: u16::from_le_bytes([b[2], b[3]]),
            gref: u32::from_le_bytes([g[0], g[1], g[2], g[3]]),
        }
    }
}

impl From<GrantEntryV2FullPage> for GrantEntryV2 {
    fn from(v: GrantEntryV2FullPage) -> Self {
        Self {
            hdr: v.hdr,
            word1: v._pad0,
            word2: v.frame,
        }
    }
}

impl From<GrantEntryV2SubPage> for GrantEntryV2 {
    fn from(v: GrantEntryV2SubPage) -> Self {
        Self {
            hdr: v.hdr,
            word1: u32::from(v.length) << 16 | u32::from(v.page_off),
            word2: v.frame,
        }
    }
}

impl From<GrantEntryV2Transitive> for GrantEntryV2 {
    fn from(v: GrantEntryV2Transitive) -> Self {
        Self {
            hdr: v.hdr,
            word1: u32::from(v._pad0) << 16 | u32::from(v.trans_domid),
            word2: u64::from(v.gref),
        }
    }
}

/// `grant_status_t`: one v2 status word (reading/writing bits) per entry.
pub type GrantStatus = u16;

// ---------------------------------------------------------------------------------------------
// GNTMAP flags (reference §11.4)

/// `GNTMAP_device_map`: make the frame available for device DMA.
pub const GNTMAP_DEVICE_MAP: u32 = 1 << 0;
/// `GNTMAP_host_map`: map into the CPU page tables at `host_addr`.
pub const GNTMAP_HOST_MAP: u32 = 1 << 1;
/// `GNTMAP_readonly`: read-only mapping.
pub const GNTMAP_READONLY: u32 = 1 << 2;
/// `GNTMAP_application_map`: accessible from guest user mode.
pub const GNTMAP_APPLICATION_MAP: u32 = 1 << 3;
/// `GNTMAP_contains_pte`: `host_addr` is the machine address of a PTE.
pub const GNTMAP_CONTAINS_PTE: u32 = 1 << 4;
/// `_GNTMAP_guest_avail0`: first bit copied into the PTE's available bits.
pub const GNTMAP_GUEST_AVAIL0_SHIFT: u32 = 16;
/// `GNTMAP_guest_avail_mask`: bits 16–31.
pub const GNTMAP_GUEST_AVAIL_MASK: u32 = 0xFFFF_0000;

bitflags::bitflags! {
    /// `GNTMAP_*` as a typed set.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct GntmapFlags: u32 {
        /// Device mapping.
        const DEVICE_MAP = GNTMAP_DEVICE_MAP;
        /// Host mapping.
        const HOST_MAP = GNTMAP_HOST_MAP;
        /// Read-only.
        const READONLY = GNTMAP_READONLY;
        /// User accessible.
        const APPLICATION_MAP = GNTMAP_APPLICATION_MAP;
        /// `host_addr` is a PTE address.
        const CONTAINS_PTE = GNTMAP_CONTAINS_PTE;
        /// Guest-available PTE bits (a multi-bit field).
        const GUEST_AVAIL_MASK = GNTMAP_GUEST_AVAIL_MASK;
    }
}

// ---------------------------------------------------------------------------------------------
// GNTST status codes (reference §11.5)

/// `GNTST_okay`.
pub const GNTST_OKAY: i16 = 0;
/// `GNTST_general_error`.
pub const GNTST_GENERAL_ERROR: i16 = -1;
/// `GNTST_bad_domain`.
pub const GNTST_BAD_DOMAIN: i16 = -2;
/// `GNTST_bad_gntref`.
pub const GNTST_BAD_GNTREF: i16 = -3;
/// `GNTST_bad_handle`.
pub const GNTST_BAD_HANDLE: i16 = -4;
/// `GNTST_bad_virt_addr`.
pub const GNTST_BAD_VIRT_ADDR: i16 = -5;
/// `GNTST_bad_dev_addr`.
pub const GNTST_BAD_DEV_ADDR: i16 = -6;
/// `GNTST_no_device_space`.
pub const GNTST_NO_DEVICE_SPACE: i16 = -7;
/// `GNTST_permission_denied`.
pub const GNTST_PERMISSION_DENIED: i16 = -8;
/// `GNTST_bad_page`.
pub const GNTST_BAD_PAGE: i16 = -9;
/// `GNTST_bad_copy_arg`.
pub const GNTST_BAD_COPY_ARG: i16 = -10;
/// `GNTST_address_too_big`.
pub const GNTST_ADDRESS_TOO_BIG: i16 = -11;
/// `GNTST_eagain`.
pub const GNTST_EAGAIN: i16 = -12;
/// `GNTST_no_space`.
pub const GNTST_NO_SPACE: i16 = -13;

code_enum! {
    /// Per-entry grant operation status.
    pub enum GntSt: i16 ["GNTST status"] {
        /// Success.
        Okay = GNTST_OKAY => "GNTST_okay",
        /// Unspecified error.
        GeneralError = GNTST_GENERAL_ERROR => "GNTST_general_error",
        /// Unknown or unusable domain.
        BadDomain = GNTST_BAD_DOMAIN => "GNTST_bad_domain",
        /// Bad grant reference.
        BadGntref = GNTST_BAD_GNTREF => "GNTST_bad_gntref",
        /// Bad mapping handle.
        BadHandle = GNTST_BAD_HANDLE => "GNTST_bad_handle",
        /// Bad virtual address.
        BadVirtAddr = GNTST_BAD_VIRT_ADDR => "GNTST_bad_virt_addr",
        /// Bad device address.
        BadDevAddr = GNTST_BAD_DEV_ADDR => "GNTST_bad_dev_addr",
        /// Out of device-mapping space.
        NoDeviceSpace = GNTST_NO_DEVICE_SPACE => "GNTST_no_device_space",
        /// Not allowed by the grant.
        PermissionDenied = GNTST_PERMISSION_DENIED => "GNTST_permission_denied",
        /// Bad page.
        BadPage = GNTST_BAD_PAGE => "GNTST_bad_page",
        /// Copy crosses a page boundary or similar.
        BadCopyArg = GNTST_BAD_COPY_ARG => "GNTST_bad_copy_arg",
        /// Address too large.
        AddressTooBig = GNTST_ADDRESS_TOO_BIG => "GNTST_address_too_big",
        /// Retry.
        Eagain = GNTST_EAGAIN => "GNTST_eagain",
        /// Out of space.
        NoSpace = GNTST_NO_SPACE => "GNTST_no_space",
    }
    try_from: [i32, i64];
}

// ---------------------------------------------------------------------------------------------
// GNTTABOP commands and structs (reference §11.3)

/// `GNTTABOP_map_grant_ref` (`gnttab_map_grant_ref`).
pub const GNTTABOP_MAP_GRANT_REF: u32 = 0;
/// `GNTTABOP_unmap_grant_ref` (`gnttab_unmap_grant_ref`).
pub const GNTTABOP_UNMAP_GRANT_REF: u32 = 1;
/// `GNTTABOP_setup_table` (`gnttab_setup_table`).
pub const GNTTABOP_SETUP_TABLE: u32 = 2;
/// `GNTTABOP_dump_table` (`gnttab_dump_table`).
pub const GNTTABOP_DUMP_TABLE: u32 = 3;
/// `GNTTABOP_transfer` (`gnttab_transfer`).
pub const GNTTABOP_TRANSFER: u32 = 4;
/// `GNTTABOP_copy` (`gnttab_copy`).
pub const GNTTABOP_COPY: u32 = 5;
/// `GNTTABOP_query_size` (`gnttab_query_size`).
pub const GNTTABOP_QUERY_SIZE: u32 = 6;
/// `GNTTABOP_unmap_and_replace` (`gnttab_unmap_and_replace`).
pub const GNTTABOP_UNMAP_AND_REPLACE: u32 = 7;
/// `GNTTABOP_set_version` (`gnttab_set_version`).
pub const GNTTABOP_SET_VERSION: u32 = 8;
/// `GNTTABOP_get_status_frames` (`gnttab_get_status_frames`).
pub const GNTTABOP_GET_STATUS_FRAMES: u32 = 9;
/// `GNTTABOP_get_version` (`gnttab_get_version`).
pub const GNTTABOP_GET_VERSION: u32 = 10;
/// `GNTTABOP_swap_grant_ref` (`gnttab_swap_grant_ref`).
pub const GNTTABOP_SWAP_GRANT_REF: u32 = 11;
/// `GNTTABOP_cache_flush` (`gnttab_cache_flush`).
pub const GNTTABOP_CACHE_FLUSH: u32 = 12;

code_enum! {
    /// `grant_table_op` commands.
    pub enum GnttabCmd: u32 ["grant_table_op command"] {
        /// Map a grant.
        MapGrantRef = GNTTABOP_MAP_GRANT_REF => "GNTTABOP_map_grant_ref",
        /// Unmap a grant.
        UnmapGrantRef = GNTTABOP_UNMAP_GRANT_REF => "GNTTABOP_unmap_grant_ref",
        /// Grow the table and get its frames.
        SetupTable = GNTTABOP_SETUP_TABLE => "GNTTABOP_setup_table",
        /// Debug dump.
        DumpTable = GNTTABOP_DUMP_TABLE => "GNTTABOP_dump_table",
        /// Transfer a page.
        Transfer = GNTTABOP_TRANSFER => "GNTTABOP_transfer",
        /// Hypervisor copy.
        Copy = GNTTABOP_COPY => "GNTTABOP_copy",
        /// Table size.
        QuerySize = GNTTABOP_QUERY_SIZE => "GNTTABOP_query_size",
        /// Unmap and move another mapping there.
        UnmapAndReplace = GNTTABOP_UNMAP_AND_REPLACE => "GNTTABOP_unmap_and_replace",
        /// Choose v1/v2.
        SetVersion = GNTTABOP_SET_VERSION => "GNTTABOP_set_version",
        /// v2 status frames.
        GetStatusFrames = GNTTABOP_GET_STATUS_FRAMES => "GNTTABOP_get_status_frames",
        /// Current version.
        GetVersion = GNTTABOP_GET_VERSION => "GNTTABOP_get_version",
        /// Swap two entries.
        SwapGrantRef = GNTTABOP_SWAP_GRANT_REF => "GNTTABOP_swap_grant_ref",
        /// Cache maintenance.
        CacheFlush = GNTTABOP_CACHE_FLUSH => "GNTTABOP_cache_flush",
    }
    try_from: [u64];
}

/// `gnttab_map_grant_ref` (32 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabMapGrantRef {
    /// IN: virtual address to map at, or PTE machine address with `GNTMAP_contains_pte`.
    pub host_addr: u64,
    /// IN: `GNTMAP_*`.
    pub flags: u32,
    /// IN: grant reference (`ref` in Xen).
    pub ref_: GrantRef,
    /// IN: granting domain.
    pub dom: DomidT,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// OUT: handle for unmapping.
    pub handle: GrantHandle,
    /// OUT: bus address with `GNTMAP_device_map`.
    pub dev_bus_addr: u64,
}

assert_layout!(GnttabMapGrantRef, size = 32, align = 8, {
    host_addr: u64 = 0,
    flags: u32 = 8,
    ref_: u32 = 12,
    dom: u16 = 16,
    status: i16 = 18,
    handle: u32 = 20,
    dev_bus_addr: u64 = 24,
});

/// `gnttab_unmap_grant_ref` (24 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabUnmapGrantRef {
    /// IN: address the grant is mapped at.
    pub host_addr: u64,
    /// IN: device bus address to release.
    pub dev_bus_addr: u64,
    /// IN: handle from the map call.
    pub handle: GrantHandle,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Padding; zero.
    pub _pad0: u16,
}

assert_layout!(GnttabUnmapGrantRef, size = 24, align = 8, {
    host_addr: u64 = 0,
    dev_bus_addr: u64 = 8,
    handle: u32 = 16,
    status: i16 = 20,
    _pad0: u16 = 22,
});

/// `gnttab_setup_table` (24 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabSetupTable {
    /// IN: domain (`DOMID_SELF`).
    pub dom: DomidT,
    /// Padding; zero.
    pub _pad0: u16,
    /// IN: frames wanted.
    pub nr_frames: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Padding; zero.
    pub _pad1: [u8; 6],
    /// IN: guest handle of a `xen_pfn_t[]` receiving the frames (MFNs for PV).
    pub frame_list: GuestHandle,
}

assert_layout!(GnttabSetupTable, size = 24, align = 8, {
    dom: u16 = 0,
    _pad0: u16 = 2,
    nr_frames: u32 = 4,
    status: i16 = 8,
    _pad1: [u8; 6] = 10,
    frame_list: u64 = 16,
});

/// `gnttab_dump_table` (4 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabDumpTable {
    /// IN: domain.
    pub dom: DomidT,
    /// OUT: `GNTST_*`.
    pub status: i16,
}

assert_layout!(GnttabDumpTable, size = 4, align = 2, {
    dom: u16 = 0,
    status: i16 = 2,
});

/// `gnttab_transfer` (24 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabTransfer {
    /// IN: frame to give away.
    pub mfn: u64,
    /// IN: receiving domain.
    pub domid: DomidT,
    /// Padding; zero.
    pub _pad0: u16,
    /// IN: receiver's accept_transfer grant (`ref` in Xen).
    pub ref_: GrantRef,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Padding; zero.
    pub _pad1: [u8; 6],
}

assert_layout!(GnttabTransfer, size = 24, align = 8, {
    mfn: u64 = 0,
    domid: u16 = 8,
    _pad0: u16 = 10,
    ref_: u32 = 12,
    status: i16 = 16,
    _pad1: [u8; 6] = 18,
});

/// `GNTCOPY_source_gref`: the source is a grant reference.
pub const GNTCOPY_SOURCE_GREF: u16 = 1 << 0;
/// `GNTCOPY_dest_gref`: the destination is a grant reference.
pub const GNTCOPY_DEST_GREF: u16 = 1 << 1;

/// One side of a `gnttab_copy` (16 bytes). `u` is `ref` (low 32 bits) or `gmfn` (all 64).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabCopyPtr {
    /// Grant reference (low 32 bits) or frame number.
    pub u: u64,
    /// Owning domain.
    pub domid: DomidT,
    /// Byte offset in the page.
    pub offset: u16,
    /// Padding; zero.
    pub _pad0: u32,
}

assert_layout!(GnttabCopyPtr, size = 16, align = 8, {
    u: u64 = 0,
    domid: u16 = 8,
    offset: u16 = 10,
    _pad0: u32 = 12,
});

impl GnttabCopyPtr {
    /// The `u.ref` view (low 32 bits of `u`).
    #[must_use]
    pub const fn gref(&self) -> GrantRef {
        (self.u & 0xFFFF_FFFF) as u32
    }
}

/// `gnttab_copy` (40 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabCopy {
    /// Source.
    pub source: GnttabCopyPtr,
    /// Destination.
    pub dest: GnttabCopyPtr,
    /// Bytes to copy (must not cross a page boundary on either side).
    pub len: u16,
    /// `GNTCOPY_*`.
    pub flags: u16,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Padding; zero.
    pub _pad0: u16,
}

assert_layout!(GnttabCopy, size = 40, align = 8, {
    source: GnttabCopyPtr = 0,
    dest: GnttabCopyPtr = 16,
    len: u16 = 32,
    flags: u16 = 34,
    status: i16 = 36,
    _pad0: u16 = 38,
});

const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(GnttabCopy, source.domid) == 8);
    assert!(offset_of!(GnttabCopy, source.offset) == 10);
    assert!(offset_of!(GnttabCopy, dest.u) == 16);
    assert!(offset_of!(GnttabCopy, dest.domid) == 24);
    assert!(offset_of!(GnttabCopy, dest.offset) == 26);
};

/// `gnttab_query_size` (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabQuerySize {
    /// IN: domain.
    pub dom: DomidT,
    /// Padding; zero.
    pub _pad0: u16,
    /// OUT: current frames.
    pub nr_frames: u32,
    /// OUT: frame limit.
    pub max_nr_frames: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Padding; zero.
    pub _pad1: u16,
}

assert_layout!(GnttabQuerySize, size = 16, align = 4, {
    dom: u16 = 0,
    _pad0: u16 = 2,
    nr_frames: u32 = 4,
    max_nr_frames: u32 = 8,
    status: i16 = 12,
    _pad1: u16 = 14,
});

/// `gnttab_unmap_and_replace` (24 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabUnmapAndReplace {
    /// IN: address of the grant mapping to remove.
    pub host_addr: u64,
    /// IN: address whose mapping moves to `host_addr`.
    pub new_addr: u64,
    /// IN: handle from the map call.
    pub handle: GrantHandle,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Padding; zero.
    pub _pad0: u16,
}

assert_layout!(GnttabUnmapAndReplace, size = 24, align = 8, {
    host_addr: u64 = 0,
    new_addr: u64 = 8,
    handle: u32 = 16,
    status: i16 = 20,
    _pad0: u16 = 22,
});

/// `gnttab_set_version` (4 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabSetVersion {
    /// IN/OUT: 1 or 2.
    pub version: u32,
}

assert_layout!(GnttabSetVersion, size = 4, align = 4, { version: u32 = 0 });

/// `gnttab_get_status_frames` (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabGetStatusFrames {
    /// IN: frames wanted.
    pub nr_frames: u32,
    /// IN: domain.
    pub dom: DomidT,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// IN: guest handle of a `u64[]` receiving the frames.
    pub frame_list: GuestHandle,
}

assert_layout!(GnttabGetStatusFrames, size = 16, align = 8, {
    nr_frames: u32 = 0,
    dom: u16 = 4,
    status: i16 = 6,
    frame_list: u64 = 8,
});

/// `gnttab_get_version` (8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabGetVersion {
    /// IN: domain.
    pub dom: DomidT,
    /// Padding; zero.
    pub _pad0: u16,
    /// OUT: 1 or 2.
    pub version: u32,
}

assert_layout!(GnttabGetVersion, size = 8, align = 4, {
    dom: u16 = 0,
    _pad0: u16 = 2,
    version: u32 = 4,
});

/// `gnttab_swap_grant_ref` (12 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabSwapGrantRef {
    /// First entry.
    pub ref_a: GrantRef,
    /// Second entry.
    pub ref_b: GrantRef,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Padding; zero.
    pub _pad0: u16,
}

assert_layout!(GnttabSwapGrantRef, size = 12, align = 4, {
    ref_a: u32 = 0,
    ref_b: u32 = 4,
    status: i16 = 8,
    _pad0: u16 = 10,
});

/// `GNTTAB_CACHE_CLEAN`: clean the cache lines.
pub const GNTTAB_CACHE_CLEAN: u32 = 1 << 0;
/// `GNTTAB_CACHE_INVAL`: invalidate the cache lines.
pub const GNTTAB_CACHE_INVAL: u32 = 1 << 1;
/// `GNTTAB_CACHE_SOURCE_GREF`: `a` is a grant reference.
pub const GNTTAB_CACHE_SOURCE_GREF: u32 = 1 << 31;

/// `gnttab_cache_flush` (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabCacheFlush {
    /// `dev_bus_addr` (u64) or `ref` (low 32 bits).
    pub a: u64,
    /// Offset in the page.
    pub offset: u16,
    /// Length in bytes.
    pub length: u16,
    /// `GNTTAB_CACHE_*`.
    pub op: u32,
}

assert_layout!(GnttabCacheFlush, size = 16, align = 8, {
    a: u64 = 0,
    offset: u16 = 8,
    length: u16 = 10,
    op: u32 = 12,
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_word_and_type() {
        let e = GrantEntryV1 {
            flags: GTF_PERMIT_ACCESS | GTF_READONLY,
            domid: 0,
            frame: 0x1234,
        };
        assert_eq!(e.flags_domid_word(), 0x0000_0005);
        assert_eq!(e.grant_type(), GrantType::PermitAccess);
        assert_eq!(GrantType::from_flags(GTF_TRANSITIVE), GrantType::Transitive);
    }

    #[test]
    fn v2_views_round_trip() {
        let hdr = GrantEntryHeader {
            flags: GTF_PERMIT_ACCESS | GTF_SUB_PAGE,
            domid: 3,
        };
        let sub = GrantEntryV2SubPage {
            hdr,
            page_off: 0x100,
            length: 0x200,
            frame: 0xABCD,
        };
        assert_eq!(GrantEntryV2::from(sub).sub_page(), sub);
        let tr = GrantEntryV2Transitive {
            hdr,
            trans_domid: 7,
            _pad0: 0,
            gref: 99,
        };
        assert_eq!(GrantEntryV2::from(tr).transitive(), tr);
        let full = GrantEntryV2FullPage {
            hdr,
            _pad0: 0,
            frame: 42,
        };
        assert_eq!(GrantEntryV2::from(full).full_page(), full);
    }

    #[test]
    fn status_codes() {
        assert_eq!(GntSt::try_from(-13i16), Ok(GntSt::NoSpace));
        assert_eq!(GntSt::try_from(0i32), Ok(GntSt::Okay));
        assert!(GntSt::try_from(-14i16).is_err());
        assert!(GntSt::try_from(1i64).is_err());
        assert_eq!(GntSt::ALL.len(), 14);
    }

    #[test]
    fn commands() {
        assert_eq!(GnttabCmd::try_from(2u64), Ok(GnttabCmd::SetupTable));
        assert!(GnttabCmd::try_from(13u32).is_err());
        let p = GnttabCopyPtr {
            u: 0xFFFF_FFFF_0000_0009,
            ..GnttabCopyPtr::default()
        };
        assert_eq!(p.gref(), 9);
    }
}
