//! The hypercalls of the checks, with arguments that only touch the guest's own test frames,
//! tables and lower-half window (or that the hypervisor must refuse).

use pv_guest_kit::abi::mm::{MmuCmd, MmuUpdate, MmuextOp};
use pv_guest_kit::abi::multicall::MulticallEntry;
use pv_guest_kit::hypercall::mm::{self, BatchOutcome};
use pv_guest_kit::hypercall::{self, HypercallResult};

/// `DOMID_SELF` as `foreigndom`.
const SELF: u32 = pv_guest_kit::abi::domid::DOMID_SELF as u32;

/// `mmu_update` of one entry at machine address `ptr`.
pub fn mmu1(ptr: u64, val: u64) -> HypercallResult {
    mmu(&[MmuUpdate::new(MmuCmd::NormalPtUpdate, ptr, val)]).result
}

/// `mmu_update` of several requests, reporting how many completed.
pub fn mmu(reqs: &[MmuUpdate]) -> BatchOutcome {
    // SAFETY: the checks write entries of tables they built for the lower-half window, of
    // fresh tables not in use, or entries the hypervisor must refuse (Xen's slots, bad values).
    unsafe { mm::mmu_update_foreign(reqs, SELF) }
}

/// `mmuext_op` of one operation.
pub fn ext1(op: MmuextOp) -> HypercallResult {
    // SAFETY: pins, unpins, flushes, and root loads the hypervisor must refuse (tables that are
    // not L4s, frames with writable mappings); loads of valid roots go through the kit's
    // `new_baseptr` instead.
    unsafe { mm::mmuext_op_foreign(&[op], SELF).result }
}

/// `update_va_mapping(va, pte, flags)`.
pub fn uvm(va: u64, pte: u64, flags: u64) -> HypercallResult {
    // SAFETY: `va` is a lower-half window page, or an address the hypervisor must refuse
    // (non-canonical, hypervisor area, no L1).
    unsafe { mm::update_va_mapping(va, pte, flags) }
}

/// `multicall` of `entries`.
pub fn multicall(entries: &mut [MulticallEntry]) -> HypercallResult {
    // SAFETY: each entry is an `update_va_mapping` of a window page, a refused one, a TLB
    // invalidation, or a nested `multicall` the hypervisor must refuse.
    unsafe { hypercall::multicall::multicall(entries) }
}

/// Loads `space` as the kernel root.
pub fn switch_to(space: pv_guest_kit::mm::AddressSpace) -> HypercallResult<()> {
    // SAFETY: `space` is the boot tables or a `clone_kernel` copy of them, which map the whole
    // kernel (image, stacks, heap, direct map) at the same addresses.
    unsafe { pv_guest_kit::mm::new_baseptr(space) }
}
