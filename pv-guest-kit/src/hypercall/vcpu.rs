//! `vcpu_op` (hypercall 24; reference §12.3): bringing up and querying vCPUs.

use hypercall_abi::hypercall::HYPERVISOR_VCPU_OP;
use hypercall_abi::vcpu::{
    VCPUOP_DOWN, VCPUOP_INITIALISE, VCPUOP_IS_UP, VCPUOP_UP, VcpuGuestContext,
};

use super::{HypercallResult, hypercall3, result_from_ret};

/// `vcpu_op(cmd, vcpu, arg)` with a raw argument.
///
/// # Safety
/// `arg` must be valid for `cmd`; contexts and timers it installs must be sound.
///
/// # Errors
/// The hypervisor's error.
pub unsafe fn vcpu_op(cmd: u32, vcpu: u32, arg: u64) -> HypercallResult {
    // SAFETY: forwarded to the caller.
    result_from_ret(unsafe { hypercall3(HYPERVISOR_VCPU_OP, u64::from(cmd), u64::from(vcpu), arg) })
}

/// `VCPUOP_initialise`: the first context of an offline vCPU.
///
/// # Safety
/// The context (entry point, stack, page tables, handlers) must be one the new vCPU can run in
/// without breaking memory safety, concurrently with the others.
///
/// # Errors
/// `-EEXIST` if the vCPU was initialised already, `-ENOENT` if it does not exist.
pub unsafe fn initialise(vcpu: u32, context: &VcpuGuestContext) -> HypercallResult {
    // SAFETY: the hypervisor reads `context`; the caller vouches for it.
    unsafe { vcpu_op(VCPUOP_INITIALISE, vcpu, core::ptr::from_ref(context) as u64) }
}

/// `VCPUOP_up`: starts an initialised vCPU.
///
/// # Errors
/// `-EINVAL` if it was never initialised.
pub fn up(vcpu: u32) -> HypercallResult {
    // SAFETY: no memory argument; the context was vetted by `initialise`.
    unsafe { vcpu_op(VCPUOP_UP, vcpu, 0) }
}

/// `VCPUOP_down`: stops a vCPU (its context is kept).
///
/// # Errors
/// The hypervisor's error.
pub fn down(vcpu: u32) -> HypercallResult {
    // SAFETY: no memory argument.
    unsafe { vcpu_op(VCPUOP_DOWN, vcpu, 0) }
}

/// `VCPUOP_is_up`: 1 if running, 0 if down.
///
/// # Errors
/// `-ENOENT` if the vCPU does not exist.
pub fn is_up(vcpu: u32) -> HypercallResult {
    // SAFETY: no memory argument.
    unsafe { vcpu_op(VCPUOP_IS_UP, vcpu, 0) }
}
