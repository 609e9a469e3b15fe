//! The raw hypercalls of the storm. They return `rax` unchanged, so that a value outside
//! Xen's errno set is seen as it is (the kit's typed wrappers would fold it into `-EIO`).
//!
//! What keeps them memory-safe is the storm's discipline (see `requests.rs`): every `ptr` of an
//! `mmu_update` names a frame of the private pool or a machine address beyond RAM; every
//! non-leaf value names a pool frame or junk; leaf values map pool frames, kernel data frames
//! (never the kernel's page tables) or junk; `update_va_mapping` targets the private window,
//! or addresses that have no tables or are refused; roots are loaded only from frames that
//! cannot be L4s (or the current root); frames are cleared or copied into only within the
//! pool. So no request can change a mapping the kernel uses.

use pv_guest_kit::abi::hypercall::{
    HYPERVISOR_MMU_UPDATE, HYPERVISOR_MMUEXT_OP, HYPERVISOR_MULTICALL, HYPERVISOR_UPDATE_VA_MAPPING,
};
use pv_guest_kit::abi::mm::{MmuUpdate, MmuextOp};
use pv_guest_kit::abi::multicall::MulticallEntry;
use pv_guest_kit::hypercall::{hypercall2, hypercall3, hypercall4};

/// `mmu_update(reqs, n, done, foreigndom)`; `reqs` may be a junk address.
pub fn mmu_update(reqs: u64, count: u64, done: u64, foreigndom: u64) -> i64 {
    // SAFETY: see the module documentation; junk pointers are refused by the hypervisor.
    unsafe { hypercall4(HYPERVISOR_MMU_UPDATE, reqs, count, done, foreigndom) }
}

/// `mmu_update` of a slice with a `done` counter.
pub fn mmu_update_slice(reqs: &[MmuUpdate], done: &mut u32, foreigndom: u64) -> i64 {
    mmu_update(
        reqs.as_ptr() as u64,
        reqs.len() as u64,
        core::ptr::from_mut(done) as u64,
        foreigndom,
    )
}

/// `mmuext_op(ops, n, done, foreigndom)`; `ops` may be a junk address.
pub fn mmuext_op(ops: u64, count: u64, done: u64, foreigndom: u64) -> i64 {
    // SAFETY: see the module documentation.
    unsafe { hypercall4(HYPERVISOR_MMUEXT_OP, ops, count, done, foreigndom) }
}

/// `mmuext_op` of a slice with a `done` counter.
pub fn mmuext_op_slice(ops: &[MmuextOp], done: &mut u32, foreigndom: u64) -> i64 {
    mmuext_op(
        ops.as_ptr() as u64,
        ops.len() as u64,
        core::ptr::from_mut(done) as u64,
        foreigndom,
    )
}

/// `update_va_mapping(va, val, flags)`.
pub fn update_va_mapping(va: u64, val: u64, flags: u64) -> i64 {
    // SAFETY: see the module documentation.
    unsafe { hypercall3(HYPERVISOR_UPDATE_VA_MAPPING, va, val, flags) }
}

/// `multicall(entries, n)`; the entries follow the same discipline and their pointers stay
/// valid for the call.
pub fn multicall(entries: &mut [MulticallEntry]) -> i64 {
    multicall_raw(entries.as_mut_ptr() as u64, entries.len() as u64)
}

/// `multicall(ptr, n)` with any pointer.
pub fn multicall_raw(entries: u64, count: u64) -> i64 {
    // SAFETY: see the module documentation.
    unsafe { hypercall2(HYPERVISOR_MULTICALL, entries, count) }
}
