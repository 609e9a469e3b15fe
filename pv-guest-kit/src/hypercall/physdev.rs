//! `physdev_op` (hypercall 33; reference §15.4): the virtual IOPL.

use hypercall_abi::hypercall::HYPERVISOR_PHYSDEV_OP;
use hypercall_abi::physdev::{PHYSDEVOP_SET_IOPL, PhysdevSetIopl};

use super::{HypercallResult, hypercall2, result_from_ret};

/// `PHYSDEVOP_set_iopl`: the vCPU's virtual IOPL (0–3), which governs whether the hypervisor
/// emulates the guest's port I/O and `cli`/`sti`.
///
/// # Errors
/// `-EINVAL` for a level above 3.
pub fn set_iopl(iopl: u32) -> HypercallResult {
    let arg = PhysdevSetIopl { iopl };
    // SAFETY: the hypervisor reads `arg`.
    result_from_ret(unsafe {
        hypercall2(
            HYPERVISOR_PHYSDEV_OP,
            u64::from(PHYSDEVOP_SET_IOPL),
            core::ptr::from_ref(&arg) as u64,
        )
    })
}
