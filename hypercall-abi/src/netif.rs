//! The virtual network protocol (`netif`): ring entries and constants (reference §14.3).

use crate::types::GrantRef;

/// `NETTXF_csum_blank`: checksum must be computed by the backend.
pub const NETTXF_CSUM_BLANK: u16 = 1 << 0;
/// `NETTXF_data_validated`: checksum already validated.
pub const NETTXF_DATA_VALIDATED: u16 = 1 << 1;
/// `NETTXF_more_data`: more slots follow for this packet.
pub const NETTXF_MORE_DATA: u16 = 1 << 2;
/// `NETTXF_extra_info`: a `netif_extra_info` slot follows.
pub const NETTXF_EXTRA_INFO: u16 = 1 << 3;

/// `NETRXF_data_validated`.
pub const NETRXF_DATA_VALIDATED: u16 = 1 << 0;
/// `NETRXF_csum_blank`.
pub const NETRXF_CSUM_BLANK: u16 = 1 << 1;
/// `NETRXF_more_data`.
pub const NETRXF_MORE_DATA: u16 = 1 << 2;
/// `NETRXF_extra_info`.
pub const NETRXF_EXTRA_INFO: u16 = 1 << 3;
/// `NETRXF_gso_prefix`.
pub const NETRXF_GSO_PREFIX: u16 = 1 << 4;

/// `NETIF_RSP_DROPPED`.
pub const NETIF_RSP_DROPPED: i16 = -2;
/// `NETIF_RSP_ERROR`.
pub const NETIF_RSP_ERROR: i16 = -1;
/// `NETIF_RSP_OKAY`.
pub const NETIF_RSP_OKAY: i16 = 0;
/// `NETIF_RSP_NULL`: padding response (no packet).
pub const NETIF_RSP_NULL: i16 = 1;

/// `XEN_NETIF_EXTRA_TYPE_NONE`.
pub const XEN_NETIF_EXTRA_TYPE_NONE: u8 = 0;
/// `XEN_NETIF_EXTRA_TYPE_GSO`.
pub const XEN_NETIF_EXTRA_TYPE_GSO: u8 = 1;
/// `XEN_NETIF_EXTRA_TYPE_MCAST_ADD`.
pub const XEN_NETIF_EXTRA_TYPE_MCAST_ADD: u8 = 2;
/// `XEN_NETIF_EXTRA_TYPE_MCAST_DEL`.
pub const XEN_NETIF_EXTRA_TYPE_MCAST_DEL: u8 = 3;
/// `XEN_NETIF_EXTRA_TYPE_HASH`.
pub const XEN_NETIF_EXTRA_TYPE_HASH: u8 = 4;
/// `XEN_NETIF_EXTRA_FLAG_MORE`: another extra-info slot follows.
pub const XEN_NETIF_EXTRA_FLAG_MORE: u8 = 1 << 0;

/// Largest packet a TX request may describe.
pub const XEN_NETIF_MAX_TX_SIZE: u32 = 0xFFFF;
/// Minimum slots per packet a backend must accept.
pub const XEN_NETIF_NR_SLOTS_MIN: u32 = 18;

/// `netif_tx_request` (12 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifTxRequest {
    /// Grant of the data page.
    pub gref: GrantRef,
    /// Offset in the page.
    pub offset: u16,
    /// `NETTXF_*`.
    pub flags: u16,
    /// Echoed in the response.
    pub id: u16,
    /// Bytes (total packet size in the first slot).
    pub size: u16,
}

assert_layout!(NetifTxRequest, size = 12, align = 4, {
    gref: u32 = 0,
    offset: u16 = 4,
    flags: u16 = 6,
    id: u16 = 8,
    size: u16 = 10,
});

/// `netif_tx_response` (4 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifTxResponse {
    /// The request's `id`.
    pub id: u16,
    /// `NETIF_RSP_*`.
    pub status: i16,
}

assert_layout!(NetifTxResponse, size = 4, align = 2, {
    id: u16 = 0,
    status: i16 = 2,
});

/// `netif_rx_request` (8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifRxRequest {
    /// Echoed in the response.
    pub id: u16,
    /// Padding; zero.
    pub _pad0: u16,
    /// Grant of the receive page.
    pub gref: GrantRef,
}

assert_layout!(NetifRxRequest, size = 8, align = 4, {
    id: u16 = 0,
    _pad0: u16 = 2,
    gref: u32 = 4,
});

/// `netif_rx_response` (8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifRxResponse {
    /// The request's `id`.
    pub id: u16,
    /// Offset of the data in the page.
    pub offset: u16,
    /// `NETRXF_*`.
    pub flags: u16,
    /// Length (≥ 0) or `NETIF_RSP_*` (< 0).
    pub status: i16,
}

assert_layout!(NetifRxResponse, size = 8, align = 2, {
    id: u16 = 0,
    offset: u16 = 2,
    flags: u16 = 4,
    status: i16 = 6,
});

/// The `gso` member of the `netif_extra_info` union (offsets relative to the union at byte 2).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifExtraInfoGso {
    /// Maximum segment size.
    pub size: u16,
    /// GSO type (`type` in Xen).
    pub type_: u8,
    /// Padding; zero.
    pub _pad0: u8,
    /// GSO features.
    pub features: u16,
}

assert_layout!(NetifExtraInfoGso, size = 6, align = 2, {
    size: u16 = 0,
    type_: u8 = 2,
    _pad0: u8 = 3,
    features: u16 = 4,
});

/// `netif_extra_info` (8 bytes). The union at offset 2 (2-byte aligned, because of the GSO
/// member's `u16` fields) is kept as three little-endian `u16` words; use [`gso`](Self::gso) /
/// [`mcast_addr`](Self::mcast_addr). Alignment derived from the member types, not measured.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifExtraInfo {
    /// `XEN_NETIF_EXTRA_TYPE_*` (`type` in Xen).
    pub type_: u8,
    /// `XEN_NETIF_EXTRA_FLAG_*`.
    pub flags: u8,
    /// The union, as 16-bit words.
    pub u: [u16; 3],
}

assert_layout!(NetifExtraInfo, size = 8, align = 2, {
    type_: u8 = 0,
    flags: u8 = 1,
    u: [u16; 3] = 2,
});

impl NetifExtraInfo {
    /// The union's six bytes in memory order.
    #[must_use]
    pub const fn union_bytes(&self) -> [u8; 6] {
        let a = self.u[0].to_le_bytes();
        let b = self.u[1].to_le_bytes();
        let c = self.u[2].to_le_bytes();
        [a[0], a[1], b[0], b[1], c[0], c[1]]
    }

    /// The GSO view of the union.
    #[must_use]
    pub const fn gso(&self) -> NetifExtraInfoGso {
        let b = self.union_bytes();
        NetifExtraInfoGso {
            size: self.u[0],
            type_: b[2],
            _pad0: b[3],
            features: self.u[2],
        }
    }

    /// Stores the GSO view.
    pub const fn set_gso(&mut self, gso: NetifExtraInfoGso) {
        self.u = [
            gso.size,
            u16::from_le_bytes([gso.type_, gso._pad0]),
            gso.features,
        ];
    }

    /// The multicast MAC address view (`mcast.addr`).
    #[must_use]
    pub const fn mcast_addr(&self) -> [u8; 6] {
        self.union_bytes()
    }
}

/// Entries in a one-page TX ring.
pub const NETIF_TX_RING_SIZE: usize = crate::ring::ring_size_4k(
    core::mem::size_of::<NetifTxRequest>(),
    core::mem::size_of::<NetifTxResponse>(),
);
/// Entries in a one-page RX ring.
pub const NETIF_RX_RING_SIZE: usize = crate::ring::ring_size_4k(
    core::mem::size_of::<NetifRxRequest>(),
    core::mem::size_of::<NetifRxResponse>(),
);

const _: () = {
    assert!(NETIF_TX_RING_SIZE == 256);
    assert!(NETIF_RX_RING_SIZE == 256);
};

// The GSO view sits at offset 2 of `netif_extra_info` (reference §14.3: size @2, type @4,
// features @6).
const _: () = {
    assert!(2 + core::mem::offset_of!(NetifExtraInfoGso, size) == 2);
    assert!(2 + core::mem::offset_of!(NetifExtraInfoGso, type_) == 4);
    assert!(2 + core::mem::offset_of!(NetifExtraInfoGso, features) == 6);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gso_view_round_trips() {
        let mut e = NetifExtraInfo {
            type_: XEN_NETIF_EXTRA_TYPE_GSO,
            ..NetifExtraInfo::default()
        };
        let gso = NetifExtraInfoGso {
            size: 1448,
            type_: 1,
            _pad0: 0,
            features: 0,
        };
        e.set_gso(gso);
        assert_eq!(e.gso(), gso);
        assert_eq!(e.union_bytes()[..2], 1448u16.to_le_bytes());
        assert_eq!(e.union_bytes()[2], 1);
        assert_eq!((NETIF_TX_RING_SIZE, NETIF_RX_RING_SIZE), (256, 256));
    }
}
