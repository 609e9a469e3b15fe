//! Domain ids and the reserved special ids (reference §9.4 and the list).
//!
//! `domid_t` is a `u16`. Ids from [`DOMID_FIRST_RESERVED`] upwards never name a real domain;
//! several of them have a meaning when passed as a hypercall argument.

use crate::types::DomidT;

/// The first id that cannot name a real domain.
pub const DOMID_FIRST_RESERVED: DomidT = 0x7FF0;
/// "The calling domain" when passed as an argument.
pub const DOMID_SELF: DomidT = 0x7FF0;
/// I/O (MMIO) frames: `mmu_update` with this foreign domain maps only I/O frames.
pub const DOMID_IO: DomidT = 0x7FF1;
/// Frames owned by the hypervisor heap (privileged callers only).
pub const DOMID_XEN: DomidT = 0x7FF2;
/// Copy-on-write shared frames (memory sharing).
pub const DOMID_COW: DomidT = 0x7FF3;
/// An invalid / absent domain.
pub const DOMID_INVALID: DomidT = 0x7FF4;
/// The idle domain (hypervisor-internal).
pub const DOMID_IDLE: DomidT = 0x7FFF;

/// The initial (control) domain's id.
pub const DOMID_DOM0: DomidT = 0;

code_enum! {
    /// The reserved domain ids that have a meaning as an argument.
    pub enum SpecialDomid: u16 ["special domid"] {
        /// The caller.
        DomidSelf = DOMID_SELF => "DOMID_SELF",
        /// I/O frames.
        Io = DOMID_IO => "DOMID_IO",
        /// Hypervisor frames.
        Xen = DOMID_XEN => "DOMID_XEN",
        /// Copy-on-write frames.
        Cow = DOMID_COW => "DOMID_COW",
        /// Invalid domain.
        Invalid = DOMID_INVALID => "DOMID_INVALID",
        /// Idle domain.
        Idle = DOMID_IDLE => "DOMID_IDLE",
    }
    try_from: [u32, u64];
}

/// True if `domid` is in the reserved range and therefore cannot name a real domain.
#[must_use]
pub const fn is_reserved(domid: DomidT) -> bool {
    domid >= DOMID_FIRST_RESERVED
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_ids() {
        assert_eq!(DOMID_SELF, DOMID_FIRST_RESERVED);
        assert!(is_reserved(DOMID_SELF) && is_reserved(DOMID_IDLE));
        assert!(!is_reserved(0) && !is_reserved(0x7FEF));
        assert_eq!(SpecialDomid::try_from(0x7FF1u16), Ok(SpecialDomid::Io));
        assert_eq!(SpecialDomid::try_from(0x7FF4u32), Ok(SpecialDomid::Invalid));
        // 0x7FF5..0x7FFE are reserved but unnamed.
        assert!(SpecialDomid::try_from(0x7FF5u16).is_err());
        assert!(SpecialDomid::try_from(0x1_7FF0u32).is_err());
    }
}
