//! XenStore: the shared ring page, the message header `xsd_sockmsg`, message types, error names
//! and xenbus states (reference §13.3).

use crate::errno::Errno;
use crate::ring::{ring_free, ring_slot, ring_used};

/// `XENSTORE_RING_SIZE`: bytes in each direction of the ring.
pub const XENSTORE_RING_SIZE: u32 = 1024;
/// `XENSTORE_PAYLOAD_MAX`: largest message payload.
pub const XENSTORE_PAYLOAD_MAX: u32 = 4096;
/// `XENSTORE_ABS_PATH_MAX`: longest absolute path.
pub const XENSTORE_ABS_PATH_MAX: usize = 3072;
/// `XENSTORE_REL_PATH_MAX`: longest relative path.
pub const XENSTORE_REL_PATH_MAX: usize = 2048;

/// `XENSTORE_SERVER_FEATURE_RECONNECTION`.
pub const XENSTORE_SERVER_FEATURE_RECONNECTION: u32 = 1 << 0;
/// `XENSTORE_SERVER_FEATURE_ERROR`.
pub const XENSTORE_SERVER_FEATURE_ERROR: u32 = 1 << 1;
/// `XENSTORE_CONNECTED`: `connection` value in normal operation.
pub const XENSTORE_CONNECTED: u32 = 0;
/// `XENSTORE_RECONNECT`: `connection` value while reconnecting.
pub const XENSTORE_RECONNECT: u32 = 1;
/// `XENSTORE_ERROR_NONE`.
pub const XENSTORE_ERROR_NONE: u32 = 0;
/// `XENSTORE_ERROR_COMM`: communication problem.
pub const XENSTORE_ERROR_COMM: u32 = 1;
/// `XENSTORE_ERROR_RINGIDX`: invalid ring index.
pub const XENSTORE_ERROR_RINGIDX: u32 = 2;
/// `XENSTORE_ERROR_PROTO`: protocol violation.
pub const XENSTORE_ERROR_PROTO: u32 = 3;

/// `xenstore_domain_interface` (offsets from reference §13.3; the total size of 2076 bytes is
/// derived, not measured: the reference lists the fields but no size).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenstoreDomainInterface {
    /// Requests, guest → xenstored.
    pub req: [u8; XENSTORE_RING_SIZE as usize],
    /// Replies and watch events, xenstored → guest.
    pub rsp: [u8; XENSTORE_RING_SIZE as usize],
    /// Request consumer (xenstored advances).
    pub req_cons: u32,
    /// Request producer (guest advances).
    pub req_prod: u32,
    /// Response consumer (guest advances).
    pub rsp_cons: u32,
    /// Response producer (xenstored advances).
    pub rsp_prod: u32,
    /// `XENSTORE_SERVER_FEATURE_*`.
    pub server_features: u32,
    /// `XENSTORE_CONNECTED` / `XENSTORE_RECONNECT`.
    pub connection: u32,
    /// `XENSTORE_ERROR_*`.
    pub error: u32,
}

impl Default for XenstoreDomainInterface {
    fn default() -> Self {
        Self {
            req: [0; XENSTORE_RING_SIZE as usize],
            rsp: [0; XENSTORE_RING_SIZE as usize],
            req_cons: 0,
            req_prod: 0,
            rsp_cons: 0,
            rsp_prod: 0,
            server_features: 0,
            connection: 0,
            error: 0,
        }
    }
}

assert_layout!(XenstoreDomainInterface, size = 2076, align = 4, {
    req: [u8; 1024] = 0,
    rsp: [u8; 1024] = 1024,
    req_cons: u32 = 2048,
    req_prod: u32 = 2052,
    rsp_cons: u32 = 2056,
    rsp_prod: u32 = 2060,
    server_features: u32 = 2064,
    connection: u32 = 2068,
    error: u32 = 2072,
});

/// `MASK_XENSTORE_IDX(idx)`: the ring slot of a free-running index.
#[must_use]
pub const fn xenstore_slot(idx: u32) -> u32 {
    ring_slot(idx, XENSTORE_RING_SIZE)
}

impl XenstoreDomainInterface {
    /// Request bytes not yet consumed by xenstored.
    #[must_use]
    pub const fn req_used(&self) -> u32 {
        ring_used(self.req_prod, self.req_cons)
    }

    /// Request space left for the guest (`None` if the indices are inconsistent).
    #[must_use]
    pub const fn req_free(&self) -> Option<u32> {
        ring_free(self.req_prod, self.req_cons, XENSTORE_RING_SIZE)
    }

    /// Response bytes not yet consumed by the guest.
    #[must_use]
    pub const fn rsp_used(&self) -> u32 {
        ring_used(self.rsp_prod, self.rsp_cons)
    }

    /// Response space left for xenstored (`None` if the indices are inconsistent).
    #[must_use]
    pub const fn rsp_free(&self) -> Option<u32> {
        ring_free(self.rsp_prod, self.rsp_cons, XENSTORE_RING_SIZE)
    }
}

/// Size of [`XsdSockmsg`] on the wire.
pub const XSD_SOCKMSG_SIZE: usize = 16;

/// `xsd_sockmsg` (16 bytes): the header in front of every XenStore message payload.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XsdSockmsg {
    /// `XS_*` message type (`type` in Xen).
    pub type_: u32,
    /// Request id, echoed in the reply (0 for watch events).
    pub req_id: u32,
    /// Transaction id (0 = none).
    pub tx_id: u32,
    /// Payload length in bytes (≤ `XENSTORE_PAYLOAD_MAX`).
    pub len: u32,
}

assert_layout!(XsdSockmsg, size = 16, align = 4, {
    type_: u32 = 0,
    req_id: u32 = 4,
    tx_id: u32 = 8,
    len: u32 = 12,
});

impl XsdSockmsg {
    /// The header as the 16 little-endian bytes that go into the ring.
    #[must_use]
    pub const fn to_bytes(&self) -> [u8; XSD_SOCKMSG_SIZE] {
        let t = self.type_.to_le_bytes();
        let r = self.req_id.to_le_bytes();
        let x = self.tx_id.to_le_bytes();
        let l = self.len.to_le_bytes();
        [
            t[0], t[1], t[2], t[3], r[0], r[1], r[2], r[3], x[0], x[1], x[2], x[3], l[0], l[1],
            l[2], l[3],
        ]
    }

    /// Parses a header from 16 bytes read out of the ring.
    #[must_use]
    pub const fn from_bytes(b: &[u8; XSD_SOCKMSG_SIZE]) -> Self {
        Self {
            type_: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            req_id: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            tx_id: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            len: u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
        }
    }

    /// True if `len` is within `XENSTORE_PAYLOAD_MAX`.
    #[must_use]
    pub const fn len_valid(&self) -> bool {
        self.len <= XENSTORE_PAYLOAD_MAX
    }
}

/// `XS_CONTROL` (also `XS_DEBUG`).
pub const XS_CONTROL: u32 = 0;
/// `XS_DEBUG`: old name of `XS_CONTROL`.
pub const XS_DEBUG: u32 = XS_CONTROL;
/// `XS_DIRECTORY`.
pub const XS_DIRECTORY: u32 = 1;
/// `XS_READ`.
pub const XS_READ: u32 = 2;
/// `XS_GET_PERMS`.
pub const XS_GET_PERMS: u32 = 3;
/// `XS_WATCH`.
pub const XS_WATCH: u32 = 4;
/// `XS_UNWATCH`.
pub const XS_UNWATCH: u32 = 5;
/// `XS_TRANSACTION_START`.
pub const XS_TRANSACTION_START: u32 = 6;
/// `XS_TRANSACTION_END`.
pub const XS_TRANSACTION_END: u32 = 7;
/// `XS_INTRODUCE`.
pub const XS_INTRODUCE: u32 = 8;
/// `XS_RELEASE`.
pub const XS_RELEASE: u32 = 9;
/// `XS_GET_DOMAIN_PATH`.
pub const XS_GET_DOMAIN_PATH: u32 = 10;
/// `XS_WRITE`.
pub const XS_WRITE: u32 = 11;
/// `XS_MKDIR`.
pub const XS_MKDIR: u32 = 12;
/// `XS_RM`.
pub const XS_RM: u32 = 13;
/// `XS_SET_PERMS`.
pub const XS_SET_PERMS: u32 = 14;
/// `XS_WATCH_EVENT`.
pub const XS_WATCH_EVENT: u32 = 15;
/// `XS_ERROR`.
pub const XS_ERROR: u32 = 16;
/// `XS_IS_DOMAIN_INTRODUCED`.
pub const XS_IS_DOMAIN_INTRODUCED: u32 = 17;
/// `XS_RESUME`.
pub const XS_RESUME: u32 = 18;
/// `XS_SET_TARGET`.
pub const XS_SET_TARGET: u32 = 19;
/// `XS_RESET_WATCHES` (20 was the removed `XS_RESTRICT`).
pub const XS_RESET_WATCHES: u32 = 21;
/// `XS_DIRECTORY_PART`.
pub const XS_DIRECTORY_PART: u32 = 22;
/// `XS_INVALID`: never a valid type.
pub const XS_INVALID: u32 = 0xffff;

code_enum! {
    /// XenStore message types (20 removed; `XS_INVALID` deliberately not decodable).
    pub enum XsType: u32 ["XenStore message type"] {
        /// Control / debug commands.
        Control = XS_CONTROL => "XS_CONTROL",
        /// List children.
        Directory = XS_DIRECTORY => "XS_DIRECTORY",
        /// Read a value.
        Read = XS_READ => "XS_READ",
        /// Read permissions.
        GetPerms = XS_GET_PERMS => "XS_GET_PERMS",
        /// Set a watch.
        Watch = XS_WATCH => "XS_WATCH",
        /// Remove a watch.
        Unwatch = XS_UNWATCH => "XS_UNWATCH",
        /// Start a transaction.
        TransactionStart = XS_TRANSACTION_START => "XS_TRANSACTION_START",
        /// End a transaction.
        TransactionEnd = XS_TRANSACTION_END => "XS_TRANSACTION_END",
        /// Introduce a domain.
        Introduce = XS_INTRODUCE => "XS_INTRODUCE",
        /// Release a domain.
        Release = XS_RELEASE => "XS_RELEASE",
        /// Domain home path.
        GetDomainPath = XS_GET_DOMAIN_PATH => "XS_GET_DOMAIN_PATH",
        /// Write a value.
        Write = XS_WRITE => "XS_WRITE",
        /// Make a directory.
        Mkdir = XS_MKDIR => "XS_MKDIR",
        /// Remove a node.
        Rm = XS_RM => "XS_RM",
        /// Set permissions.
        SetPerms = XS_SET_PERMS => "XS_SET_PERMS",
        /// Watch fired (unsolicited).
        WatchEvent = XS_WATCH_EVENT => "XS_WATCH_EVENT",
        /// Error reply.
        Error = XS_ERROR => "XS_ERROR",
        /// Is a domain introduced.
        IsDomainIntroduced = XS_IS_DOMAIN_INTRODUCED => "XS_IS_DOMAIN_INTRODUCED",
        /// Resume a domain.
        Resume = XS_RESUME => "XS_RESUME",
        /// Set a target domain.
        SetTarget = XS_SET_TARGET => "XS_SET_TARGET",
        /// Reset all watches.
        ResetWatches = XS_RESET_WATCHES => "XS_RESET_WATCHES",
        /// Partial directory listing.
        DirectoryPart = XS_DIRECTORY_PART => "XS_DIRECTORY_PART",
    }
    try_from: [u64];
}

/// The errnos that may appear (by name) as `XS_ERROR` payloads.
pub const XS_ERRORS: [Errno; 16] = [
    Errno::Einval,
    Errno::Eacces,
    Errno::Eexist,
    Errno::Eisdir,
    Errno::Enoent,
    Errno::Enomem,
    Errno::Enospc,
    Errno::Eio,
    Errno::Enotempty,
    Errno::Enosys,
    Errno::Erofs,
    Errno::Ebusy,
    Errno::Eagain,
    Errno::Eisconn,
    Errno::E2big,
    Errno::Eperm,
];

/// Parses an `XS_ERROR` payload (the name, optionally NUL-terminated) into an errno.
#[must_use]
pub fn xs_error_from_payload(payload: &[u8]) -> Option<Errno> {
    let end = payload
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(payload.len());
    let name = payload.get(..end)?;
    XS_ERRORS
        .iter()
        .copied()
        .find(|e| e.name().as_bytes() == name)
}

/// Successful-write reply payload.
pub const XS_OK: &[u8] = b"OK";

/// `XenbusStateUnknown`.
pub const XENBUS_STATE_UNKNOWN: u32 = 0;
/// `XenbusStateInitialising`.
pub const XENBUS_STATE_INITIALISING: u32 = 1;
/// `XenbusStateInitWait`: backend ready, waiting for frontend details.
pub const XENBUS_STATE_INIT_WAIT: u32 = 2;
/// `XenbusStateInitialised`: frontend published its details.
pub const XENBUS_STATE_INITIALISED: u32 = 3;
/// `XenbusStateConnected`.
pub const XENBUS_STATE_CONNECTED: u32 = 4;
/// `XenbusStateClosing`.
pub const XENBUS_STATE_CLOSING: u32 = 5;
/// `XenbusStateClosed`.
pub const XENBUS_STATE_CLOSED: u32 = 6;
/// `XenbusStateReconfiguring`.
pub const XENBUS_STATE_RECONFIGURING: u32 = 7;
/// `XenbusStateReconfigured`.
pub const XENBUS_STATE_RECONFIGURED: u32 = 8;

code_enum! {
    /// Split-driver device states (written as decimal strings to `.../state`).
    pub enum XenbusState: u32 ["xenbus state"] {
        /// Unknown.
        Unknown = XENBUS_STATE_UNKNOWN => "XenbusStateUnknown",
        /// Initialising.
        Initialising = XENBUS_STATE_INITIALISING => "XenbusStateInitialising",
        /// Backend waiting for the frontend.
        InitWait = XENBUS_STATE_INIT_WAIT => "XenbusStateInitWait",
        /// Frontend initialised.
        Initialised = XENBUS_STATE_INITIALISED => "XenbusStateInitialised",
        /// Connected.
        Connected = XENBUS_STATE_CONNECTED => "XenbusStateConnected",
        /// Closing.
        Closing = XENBUS_STATE_CLOSING => "XenbusStateClosing",
        /// Closed.
        Closed = XENBUS_STATE_CLOSED => "XenbusStateClosed",
        /// Reconfiguring.
        Reconfiguring = XENBUS_STATE_RECONFIGURING => "XenbusStateReconfiguring",
        /// Reconfigured.
        Reconfigured = XENBUS_STATE_RECONFIGURED => "XenbusStateReconfigured",
    }
    try_from: [u64];
}

impl XenbusState {
    /// Parses the decimal string stored in XenStore (e.g. `b"4"`), ignoring one trailing NUL.
    #[must_use]
    pub fn from_decimal(text: &[u8]) -> Option<Self> {
        let text = text.strip_suffix(b"\0").unwrap_or(text);
        if text.is_empty() || text.len() > 2 {
            return None;
        }
        let mut value = 0u32;
        for &b in text {
            let digit = b.checked_sub(b'0').filter(|d| *d <= 9)?;
            value = value * 10 + u32::from(digit);
        }
        Self::from_raw(value)
    }

    /// The single ASCII digit written to XenStore for this state.
    #[must_use]
    pub const fn decimal_digit(self) -> u8 {
        // Every state is 0..=8, a single digit.
        b'0' + (self.raw() & 0xF) as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bytes_round_trip() {
        let h = XsdSockmsg {
            type_: XS_WRITE,
            req_id: 0x0102_0304,
            tx_id: 0,
            len: 17,
        };
        let bytes = h.to_bytes();
        assert_eq!(&bytes[..4], &[11, 0, 0, 0]);
        assert_eq!(&bytes[4..8], &[4, 3, 2, 1]);
        assert_eq!(XsdSockmsg::from_bytes(&bytes), h);
        assert!(h.len_valid());
        assert!(!XsdSockmsg { len: 4097, ..h }.len_valid());
    }

    #[test]
    fn types_and_states() {
        assert_eq!(XsType::try_from(15u32), Ok(XsType::WatchEvent));
        assert!(XsType::try_from(20u32).is_err());
        assert!(XsType::try_from(u64::from(XS_INVALID)).is_err());
        assert_eq!(
            XenbusState::from_decimal(b"4"),
            Some(XenbusState::Connected)
        );
        assert_eq!(XenbusState::from_decimal(b"6\0"), Some(XenbusState::Closed));
        assert_eq!(XenbusState::from_decimal(b"9"), None);
        assert_eq!(XenbusState::from_decimal(b"x"), None);
        assert_eq!(XenbusState::from_decimal(b""), None);
        assert_eq!(XenbusState::InitWait.decimal_digit(), b'2');
    }

    #[test]
    fn error_payloads() {
        assert_eq!(xs_error_from_payload(b"ENOENT\0"), Some(Errno::Enoent));
        assert_eq!(xs_error_from_payload(b"EAGAIN"), Some(Errno::Eagain));
        assert_eq!(xs_error_from_payload(b"ETIME\0"), None);
    }

    #[test]
    fn ring_helpers() {
        assert_eq!(xenstore_slot(1025), 1);
        assert_eq!(xenstore_slot(u32::MAX), 1023);
        let ring = XenstoreDomainInterface {
            req_prod: 3,
            req_cons: u32::MAX,
            ..XenstoreDomainInterface::default()
        };
        assert_eq!(ring.req_used(), 4);
        assert_eq!(ring.req_free(), Some(1020));
    }
}
