//! Types that say what a number is: machine addresses and frames, guest frames, domain ids.
//!
//! There are deliberately no arithmetic operators between these types; conversions and
//! offsets are explicit and checked.

use core::fmt;

/// Size of a page and of a machine frame.
pub const PAGE_SIZE: u64 = 4096;
/// [`PAGE_SIZE`] as a `usize`, for indexing.
pub const PAGE_BYTES: usize = 4096;
/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;

/// A machine (host-physical) address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct Paddr(pub u64);

/// A machine frame number: a machine address divided by [`PAGE_SIZE`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct Mfn(pub u64);

/// A guest pseudo-physical frame number.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct Pfn(pub u64);

/// A domain id (Xen's `domid_t`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct DomId(pub u16);

/// An event-channel port of a domain (Xen's `evtchn_port_t`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
#[repr(transparent)]
pub struct Port(pub u32);

/// A vCPU of a domain: the domain and the vCPU's number in it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct VcpuRef {
    /// The domain.
    pub dom: DomId,
    /// The vCPU number (0-based) within the domain.
    pub vcpu: u32,
}

impl fmt::Display for VcpuRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}v{}", self.dom, self.vcpu)
    }
}

impl Paddr {
    /// The frame containing this address.
    pub const fn frame(self) -> Mfn {
        Mfn(self.0 >> PAGE_SHIFT)
    }
    /// Offset within its page.
    pub const fn page_offset(self) -> u64 {
        self.0 & (PAGE_SIZE - 1)
    }
    /// `self + bytes`, or `None` on overflow.
    pub const fn checked_add(self, bytes: u64) -> Option<Paddr> {
        match self.0.checked_add(bytes) {
            Some(v) => Some(Paddr(v)),
            None => None,
        }
    }
    /// Rounded down to a page boundary.
    pub const fn page_down(self) -> Paddr {
        Paddr(self.0 & !(PAGE_SIZE - 1))
    }
    /// Rounded up to a page boundary, or `None` on overflow.
    pub const fn page_up(self) -> Option<Paddr> {
        match self.0.checked_add(PAGE_SIZE - 1) {
            Some(v) => Some(Paddr(v & !(PAGE_SIZE - 1))),
            None => None,
        }
    }
}

impl Mfn {
    /// The machine address of the frame's first byte, or `None` if it does not fit.
    pub const fn checked_paddr(self) -> Option<Paddr> {
        if self.0 >> (64 - PAGE_SHIFT) != 0 {
            None
        } else {
            Some(Paddr(self.0 << PAGE_SHIFT))
        }
    }
    /// The machine address of the frame's first byte (frames come from the allocator and the
    /// memory map, which never exceed 52-bit addresses).
    pub const fn paddr(self) -> Paddr {
        Paddr(self.0 << PAGE_SHIFT)
    }
    /// `self + n` frames, or `None` on overflow.
    pub const fn checked_add(self, n: u64) -> Option<Mfn> {
        match self.0.checked_add(n) {
            Some(v) => Some(Mfn(v)),
            None => None,
        }
    }
}

impl DomId {
    /// The first domain, which builds and controls the others.
    pub const DOM0: DomId = DomId(0);
}

macro_rules! hex_debug {
    ($($t:ident => $name:literal),*) => {$(
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($name, "({:#x})"), self.0)
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }
    )*};
}
hex_debug!(Paddr => "Paddr", Mfn => "Mfn", Pfn => "Pfn");

impl fmt::Debug for DomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "d{}", self.0)
    }
}

impl fmt::Display for DomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "d{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paddr_rounding_and_frames() {
        assert_eq!(Paddr(0x1234).frame(), Mfn(1));
        assert_eq!(Paddr(0x1234).page_offset(), 0x234);
        assert_eq!(Paddr(0x1234).page_down(), Paddr(0x1000));
        assert_eq!(Paddr(0x1234).page_up(), Some(Paddr(0x2000)));
        assert_eq!(Paddr(0x2000).page_up(), Some(Paddr(0x2000)));
        assert_eq!(Paddr(u64::MAX).page_up(), None);
        assert_eq!(Paddr(u64::MAX).checked_add(1), None);
    }

    #[test]
    fn mfn_conversions() {
        assert_eq!(Mfn(3).paddr(), Paddr(0x3000));
        assert_eq!(Mfn(u64::MAX).checked_paddr(), None);
        assert_eq!(Mfn(u64::MAX).checked_add(1), None);
        assert_eq!(format!("{:?}", Mfn(0x10)), "Mfn(0x10)");
    }
}
