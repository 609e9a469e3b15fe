//! Page tables: `update_va_mapping` (14), `mmu_update` (1), `mmuext_op` (26), and `vm_assist`
//! (21) (reference §9.4–§9.7, §15.3).

use hypercall_abi::domid::DOMID_SELF;
use hypercall_abi::hypercall::{
    HYPERVISOR_MMU_UPDATE, HYPERVISOR_MMUEXT_OP, HYPERVISOR_UPDATE_VA_MAPPING, HYPERVISOR_VM_ASSIST,
};
use hypercall_abi::mm::{MmuUpdate, MmuextOp};
use hypercall_abi::vm_assist::{VmAssistCmd, VmAssistType};

use super::{HypercallResult, hypercall2, hypercall3, hypercall4, result_from_ret};

/// `update_va_mapping(va, pte, flags)`: sets the L1 entry mapping `va` in the current page
/// tables to `pte` (a machine PTE, validated by the hypervisor), then flushes per `flags`
/// (`UVMF_*`).
///
/// # Safety
/// Remapping or unmapping `va` must not invalidate memory that Rust code still uses (the
/// kit's image, stacks, heap, or live references).
///
/// # Errors
/// `-EINVAL` for an entry Xen refuses or a `va` without an L1 table.
pub unsafe fn update_va_mapping(va: u64, pte: u64, flags: u64) -> HypercallResult {
    // SAFETY: forwarded to the caller.
    result_from_ret(unsafe { hypercall3(HYPERVISOR_UPDATE_VA_MAPPING, va, pte, flags) })
}

/// `mmu_update(reqs, count, &done, DOMID_SELF)`. Returns the number of requests done.
///
/// # Safety
/// Each request writes a page-table entry or an M2P entry by machine address: the caller must
/// make sure the resulting mappings do not invalidate memory Rust code uses.
///
/// # Errors
/// The first failing request's error (processing stops there).
pub unsafe fn mmu_update(reqs: &[MmuUpdate]) -> HypercallResult<u32> {
    let mut done: u32 = 0;
    // SAFETY: the hypervisor reads `reqs.len()` requests and writes `done`; the caller vouches
    // for the requests' effects.
    result_from_ret(unsafe {
        hypercall4(
            HYPERVISOR_MMU_UPDATE,
            reqs.as_ptr() as u64,
            reqs.len() as u64,
            core::ptr::from_mut(&mut done) as u64,
            u64::from(DOMID_SELF),
        )
    })
    .map(|_| done)
}

/// `mmuext_op(ops, count, &done, DOMID_SELF)`. Returns the number of operations done.
///
/// # Safety
/// Operations change page-table roots, pins, LDTs or frames' contents: the caller must make
/// sure memory Rust code uses stays mapped and unchanged.
///
/// # Errors
/// The first failing operation's error.
pub unsafe fn mmuext_op(ops: &[MmuextOp]) -> HypercallResult<u32> {
    let mut done: u32 = 0;
    // SAFETY: the hypervisor reads `ops.len()` operations and writes `done`; the caller vouches
    // for their effects.
    result_from_ret(unsafe {
        hypercall4(
            HYPERVISOR_MMUEXT_OP,
            ops.as_ptr() as u64,
            ops.len() as u64,
            core::ptr::from_mut(&mut done) as u64,
            u64::from(DOMID_SELF),
        )
    })
    .map(|_| done)
}

/// `vm_assist(cmd, type)`: enables or disables an assist.
///
/// # Errors
/// `-EINVAL` for a type the domain may not use.
pub fn vm_assist(cmd: VmAssistCmd, kind: VmAssistType) -> HypercallResult {
    // SAFETY: no memory argument; assists change how the hypervisor treats later guest actions,
    // none of which the kit performs.
    result_from_ret(unsafe {
        hypercall2(
            HYPERVISOR_VM_ASSIST,
            u64::from(cmd.raw()),
            u64::from(kind.raw()),
        )
    })
}
