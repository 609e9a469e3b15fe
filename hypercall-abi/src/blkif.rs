//! The virtual block-device protocol (`blkif`): ring entries and constants (reference §14.2).

use crate::types::GrantRef;

/// `BLKIF_OP_READ`.
pub const BLKIF_OP_READ: u8 = 0;
/// `BLKIF_OP_WRITE`.
pub const BLKIF_OP_WRITE: u8 = 1;
/// `BLKIF_OP_WRITE_BARRIER`.
pub const BLKIF_OP_WRITE_BARRIER: u8 = 2;
/// `BLKIF_OP_FLUSH_DISKCACHE`.
pub const BLKIF_OP_FLUSH_DISKCACHE: u8 = 3;
/// `BLKIF_OP_RESERVED_1`.
pub const BLKIF_OP_RESERVED_1: u8 = 4;
/// `BLKIF_OP_DISCARD` (`blkif_request_discard`).
pub const BLKIF_OP_DISCARD: u8 = 5;
/// `BLKIF_OP_INDIRECT` (`blkif_request_indirect`).
pub const BLKIF_OP_INDIRECT: u8 = 6;

code_enum! {
    /// `blkif_request.operation` values.
    pub enum BlkifOp: u8 ["blkif operation"] {
        /// Read.
        Read = BLKIF_OP_READ => "BLKIF_OP_READ",
        /// Write.
        Write = BLKIF_OP_WRITE => "BLKIF_OP_WRITE",
        /// Write with barrier.
        WriteBarrier = BLKIF_OP_WRITE_BARRIER => "BLKIF_OP_WRITE_BARRIER",
        /// Flush the disk cache.
        FlushDiskcache = BLKIF_OP_FLUSH_DISKCACHE => "BLKIF_OP_FLUSH_DISKCACHE",
        /// Reserved.
        Reserved1 = BLKIF_OP_RESERVED_1 => "BLKIF_OP_RESERVED_1",
        /// Discard.
        Discard = BLKIF_OP_DISCARD => "BLKIF_OP_DISCARD",
        /// Indirect segments.
        Indirect = BLKIF_OP_INDIRECT => "BLKIF_OP_INDIRECT",
    }
    try_from: [u32, u64];
}

/// `BLKIF_MAX_SEGMENTS_PER_REQUEST`.
pub const BLKIF_MAX_SEGMENTS_PER_REQUEST: usize = 11;
/// Indirect grant pages per indirect request.
pub const BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST: usize = 8;
/// Sector size of `sector_number` / `first_sect` / `last_sect`.
pub const BLKIF_SECTOR_SIZE: u64 = 512;
/// `BLKIF_DISCARD_SECURE`: `flag` bit of a discard request.
pub const BLKIF_DISCARD_SECURE: u8 = 1 << 0;

/// `BLKIF_RSP_OKAY`.
pub const BLKIF_RSP_OKAY: i16 = 0;
/// `BLKIF_RSP_ERROR`.
pub const BLKIF_RSP_ERROR: i16 = -1;
/// `BLKIF_RSP_EOPNOTSUPP`.
pub const BLKIF_RSP_EOPNOTSUPP: i16 = -2;

/// `VDISK_CDROM` (`info` key bit).
pub const VDISK_CDROM: u32 = 1;
/// `VDISK_REMOVABLE` (`info` key bit).
pub const VDISK_REMOVABLE: u32 = 2;
/// `VDISK_READONLY` (`info` key bit).
pub const VDISK_READONLY: u32 = 4;

/// `blkif_request_segment` (8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkifRequestSegment {
    /// Grant of the data page.
    pub gref: GrantRef,
    /// First 512-byte sector in the page (0–7).
    pub first_sect: u8,
    /// Last sector in the page (inclusive, 0–7).
    pub last_sect: u8,
    /// Padding; zero.
    pub _pad0: u16,
}

assert_layout!(BlkifRequestSegment, size = 8, align = 4, {
    gref: u32 = 0,
    first_sect: u8 = 4,
    last_sect: u8 = 5,
    _pad0: u16 = 6,
});

/// `blkif_request` (112 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkifRequest {
    /// `BLKIF_OP_*`.
    pub operation: u8,
    /// Segments used (≤ 11).
    pub nr_segments: u8,
    /// Virtual device handle.
    pub handle: u16,
    /// Padding; zero.
    pub _pad0: u32,
    /// Echoed in the response.
    pub id: u64,
    /// Start sector (512-byte units).
    pub sector_number: u64,
    /// Data segments.
    pub seg: [BlkifRequestSegment; BLKIF_MAX_SEGMENTS_PER_REQUEST],
}

assert_layout!(BlkifRequest, size = 112, align = 8, {
    operation: u8 = 0,
    nr_segments: u8 = 1,
    handle: u16 = 2,
    _pad0: u32 = 4,
    id: u64 = 8,
    sector_number: u64 = 16,
    seg: [BlkifRequestSegment; 11] = 24,
});

/// `blkif_response` (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkifResponse {
    /// The request's `id`.
    pub id: u64,
    /// The request's operation.
    pub operation: u8,
    /// Padding; zero.
    pub _pad0: u8,
    /// `BLKIF_RSP_*`.
    pub status: i16,
    /// Padding; zero.
    pub _pad1: u32,
}

assert_layout!(BlkifResponse, size = 16, align = 8, {
    id: u64 = 0,
    operation: u8 = 8,
    _pad0: u8 = 9,
    status: i16 = 10,
    _pad1: u32 = 12,
});

/// `blkif_request_discard`, viewed from the start of the ring slot (offsets from reference
/// §14.2; the 32-byte size is derived, not measured — it occupies a 112-byte slot).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkifRequestDiscard {
    /// `BLKIF_OP_DISCARD`.
    pub operation: u8,
    /// `BLKIF_DISCARD_SECURE`.
    pub flag: u8,
    /// Virtual device handle.
    pub handle: u16,
    /// Padding; zero.
    pub _pad0: u32,
    /// Echoed in the response.
    pub id: u64,
    /// Start sector.
    pub sector_number: u64,
    /// Sectors to discard.
    pub nr_sectors: u64,
}

assert_layout!(BlkifRequestDiscard, size = 32, align = 8, {
    operation: u8 = 0,
    flag: u8 = 1,
    handle: u16 = 2,
    _pad0: u32 = 4, // derived, not measured
    id: u64 = 8,
    sector_number: u64 = 16,
    nr_sectors: u64 = 24,
});

/// `blkif_request_indirect` (64 bytes; reference §14.2).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkifRequestIndirect {
    /// `BLKIF_OP_INDIRECT`.
    pub operation: u8,
    /// The real operation (`BLKIF_OP_READ`/`WRITE`).
    pub indirect_op: u8,
    /// Segments described by the indirect pages.
    pub nr_segments: u16,
    /// Padding; zero.
    pub _pad0: u32,
    /// Echoed in the response.
    pub id: u64,
    /// Start sector.
    pub sector_number: u64,
    /// Virtual device handle.
    pub handle: u16,
    /// Padding; zero.
    pub _pad1: u16,
    /// Grants of the pages holding `blkif_request_segment` arrays.
    pub indirect_grefs: [GrantRef; BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST],
    /// Padding to the 8-byte alignment; zero.
    pub _pad2: u32,
}

assert_layout!(BlkifRequestIndirect, size = 64, align = 8, {
    operation: u8 = 0,
    indirect_op: u8 = 1,
    nr_segments: u16 = 2,
    _pad0: u32 = 4,   // derived, not measured
    id: u64 = 8,
    sector_number: u64 = 16,
    handle: u16 = 24,
    _pad1: u16 = 26,  // derived, not measured
    indirect_grefs: [u32; 8] = 28,
    _pad2: u32 = 60,  // derived, not measured
});

/// Size of one blkif ring slot (the larger of request and response).
pub const BLKIF_RING_ENTRY_SIZE: usize = core::mem::size_of::<BlkifRequest>();
/// Entries in a one-page blkif ring.
pub const BLKIF_RING_SIZE: usize =
    crate::ring::ring_size_4k(BLKIF_RING_ENTRY_SIZE, core::mem::size_of::<BlkifResponse>());

const _: () = assert!(BLKIF_RING_SIZE == 32);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops() {
        assert_eq!(BlkifOp::try_from(6u8), Ok(BlkifOp::Indirect));
        assert!(BlkifOp::try_from(7u32).is_err());
        assert_eq!(BLKIF_RING_SIZE, 32);
    }
}
