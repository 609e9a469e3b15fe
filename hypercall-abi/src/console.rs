//! Console: `console_io` (hypercall 18) and the PV console ring `xencons_interface`
//! (reference §13.1–§13.2).

use crate::ring::{ring_free, ring_slot, ring_used};

/// `CONSOLEIO_write`: write `count` bytes from `buf` to the hypervisor console.
pub const CONSOLEIO_WRITE: u32 = 0;
/// `CONSOLEIO_read`: read up to `count` bytes of console input (privileged).
pub const CONSOLEIO_READ: u32 = 1;

code_enum! {
    /// `console_io` commands (others → `-ENOSYS`).
    pub enum ConsoleIoCmd: u32 ["console_io command"] {
        /// Write.
        Write = CONSOLEIO_WRITE => "CONSOLEIO_write",
        /// Read.
        Read = CONSOLEIO_READ => "CONSOLEIO_read",
    }
    try_from: [u64];
}

/// Size of the input ring `in[]` (backend → guest).
pub const XENCONS_IN_SIZE: u32 = 1024;
/// Size of the output ring `out[]` (guest → backend).
pub const XENCONS_OUT_SIZE: u32 = 2048;

/// `xencons_interface` (offsets from reference §13.2; the total size of 3088 bytes is derived,
/// not measured: the reference lists the fields but no size).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenconsInterface {
    /// Input bytes, backend → guest (`in` in Xen).
    pub in_: [u8; XENCONS_IN_SIZE as usize],
    /// Output bytes, guest → backend.
    pub out: [u8; XENCONS_OUT_SIZE as usize],
    /// Input consumer (guest advances).
    pub in_cons: u32,
    /// Input producer (backend advances).
    pub in_prod: u32,
    /// Output consumer (backend advances).
    pub out_cons: u32,
    /// Output producer (guest advances).
    pub out_prod: u32,
}

impl Default for XenconsInterface {
    fn default() -> Self {
        Self {
            in_: [0; XENCONS_IN_SIZE as usize],
            out: [0; XENCONS_OUT_SIZE as usize],
            in_cons: 0,
            in_prod: 0,
            out_cons: 0,
            out_prod: 0,
        }
    }
}

assert_layout!(XenconsInterface, size = 3088, align = 4, {
    in_: [u8; 1024] = 0,
    out: [u8; 2048] = 1024,
    in_cons: u32 = 3072,
    in_prod: u32 = 3076,
    out_cons: u32 = 3080,
    out_prod: u32 = 3084,
});

/// `MASK_XENCONS_IDX(idx, in)`: slot of input index `idx`.
#[must_use]
pub const fn xencons_in_slot(idx: u32) -> u32 {
    ring_slot(idx, XENCONS_IN_SIZE)
}

/// `MASK_XENCONS_IDX(idx, out)`: slot of output index `idx`.
#[must_use]
pub const fn xencons_out_slot(idx: u32) -> u32 {
    ring_slot(idx, XENCONS_OUT_SIZE)
}

impl XenconsInterface {
    /// Output bytes the backend has not consumed yet.
    #[must_use]
    pub const fn out_used(&self) -> u32 {
        ring_used(self.out_prod, self.out_cons)
    }

    /// Output space left for the guest (`None` if the indices are inconsistent).
    #[must_use]
    pub const fn out_free(&self) -> Option<u32> {
        ring_free(self.out_prod, self.out_cons, XENCONS_OUT_SIZE)
    }

    /// Input bytes the guest has not consumed yet.
    #[must_use]
    pub const fn in_used(&self) -> u32 {
        ring_used(self.in_prod, self.in_cons)
    }

    /// Input space left for the backend (`None` if the indices are inconsistent).
    #[must_use]
    pub const fn in_free(&self) -> Option<u32> {
        ring_free(self.in_prod, self.in_cons, XENCONS_IN_SIZE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_ring_indices() {
        assert_eq!(xencons_out_slot(2048), 0);
        assert_eq!(xencons_out_slot(u32::MAX), 2047);
        assert_eq!(xencons_in_slot(u32::MAX), 1023);
        let ring = XenconsInterface {
            out_prod: 5,
            out_cons: u32::MAX - 4,
            ..XenconsInterface::default()
        };
        assert_eq!(ring.out_used(), 10);
        assert_eq!(ring.out_free(), Some(2038));
        let bad = XenconsInterface {
            in_prod: 4096,
            ..XenconsInterface::default()
        };
        assert_eq!(bad.in_free(), None);
        assert_eq!(ConsoleIoCmd::try_from(0u64), Ok(ConsoleIoCmd::Write));
        assert!(ConsoleIoCmd::try_from(2u32).is_err());
    }
}
