#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

// Every shared structure here is laid out for x86-64, which is little-endian. Several accessors
// (unions split into halves, ring headers) rely on that, so refuse to build anywhere else.
#[cfg(not(target_endian = "little"))]
compile_error!("hypercall-abi describes the little-endian x86-64 Xen ABI only");
#[cfg(not(target_pointer_width = "64"))]
compile_error!("hypercall-abi describes the 64-bit Xen PV ABI only");

#[cfg(test)]
extern crate std;

#[macro_use]
mod macros;

#[cfg(test)]
mod docs_sync;

pub mod blkif;
pub mod console;
pub mod cpuid;
pub mod domid;
pub mod elfnote;
pub mod errno;
pub mod evtchn;
pub mod grant;
pub mod hypercall;
pub mod memory;
pub mod mm;
pub mod multicall;
pub mod netif;
pub mod physdev;
pub mod ring;
pub mod sched;
pub mod segments;
pub mod shared_info;
pub mod start_info;
pub mod traps;
pub mod vcpu;
pub mod version;
pub mod vm_assist;
pub mod xenstore;

use core::fmt;

/// The Xen public-interface version this crate mirrors (`__XEN_INTERFACE_VERSION__`).
///
/// This is the value the reference layouts were measured with (Xen 4.17's latest interface
/// version). It is the ABI version of this crate, independent of the crate's semver.
pub const XEN_INTERFACE_VERSION: u32 = 0x0004_0e00;

/// Major Xen version the hypervisor reports to guests (`XENVER_version`, CPUID `0x40000001`).
pub const XEN_VERSION_MAJOR: u16 = 4;

/// Minor Xen version the hypervisor reports to guests.
pub const XEN_VERSION_MINOR: u16 = 17;

/// log2 of the x86 base page size.
pub const PAGE_SHIFT: u32 = 12;

/// The x86 base page size in bytes (every shared page in this ABI is one of these).
pub const PAGE_SIZE: usize = 1 << PAGE_SHIFT;

/// Plain-integer aliases for the C types the Xen headers use, so field types read like the ABI.
pub mod types {
    /// `domid_t`: a domain id (see [`crate::domid`] for the reserved values).
    pub type DomidT = u16;
    /// `evtchn_port_t`: an event-channel port number.
    pub type EvtchnPort = u32;
    /// `grant_ref_t`: an index into a grant table.
    pub type GrantRef = u32;
    /// `grant_handle_t`: the handle returned by a grant mapping.
    pub type GrantHandle = u32;
    /// `xen_pfn_t`: a frame number (an MFN for PV guests), 8 bytes on x86-64.
    pub type XenPfn = u64;
    /// `xen_ulong_t`: an unsigned long, 8 bytes on x86-64.
    pub type XenUlong = u64;
    /// `XEN_GUEST_HANDLE(...)`: a guest virtual address, never dereferenced by this crate.
    pub type GuestHandle = u64;
}

/// A raw number did not match any value of a code enum (for example an unknown hypercall number
/// or sub-operation). The hypervisor usually answers this with `-ENOSYS` or `-EINVAL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UnknownCode {
    /// Which kind of code was being decoded (for example `"hypercall"`).
    pub what: &'static str,
    /// The rejected raw value, widened so that signed and unsigned sources both fit.
    pub value: i128,
}

impl fmt::Display for UnknownCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {} code {:#x}", self.what, self.value)
    }
}

impl core::error::Error for UnknownCode {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_version_matches_reference() {
        assert_eq!(XEN_INTERFACE_VERSION, 0x0004_0e00);
        assert_eq!((XEN_VERSION_MAJOR, XEN_VERSION_MINOR), (4, 17));
        assert_eq!(PAGE_SIZE, 4096);
    }

    #[test]
    fn unknown_code_displays_kind_and_value() {
        use std::string::ToString;
        let e = UnknownCode {
            what: "hypercall",
            value: 0x99,
        };
        assert_eq!(e.to_string(), "unknown hypercall code 0x99");
    }
}
