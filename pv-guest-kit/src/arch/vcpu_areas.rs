//! Guest memory the hypervisor keeps writing for a vCPU: a moved `vcpu_info`
//! (`VCPUOP_register_vcpu_info`) and a runstate area (`VCPUOP_register_runstate_memory_area`),
//! reference §12.3.
//!
//! Both are handed over as `&'static` values of types whose contents only the hypervisor
//! writes and the kit reads with volatile (or atomic) accesses.

use core::cell::UnsafeCell;
use core::sync::atomic::{Ordering, fence};

use hypercall_abi::vcpu::{VcpuRunstateInfo, XEN_RUNSTATE_UPDATE};

use crate::errno::{Errno, HypercallResult};
use crate::layout::PAGE_SIZE_U64;

/// 64 bytes, 64-byte aligned, to become a vCPU's `vcpu_info` (so it never crosses a page).
#[repr(C, align(64))]
#[derive(Debug)]
pub struct VcpuInfoArea {
    bytes: UnsafeCell<[u8; 64]>,
}

// SAFETY: once registered the area is accessed only by the hypervisor and, through the kit's
// `VcpuInfo` handle, with volatile and atomic accesses; before that nothing reads it.
unsafe impl Sync for VcpuInfoArea {}

impl VcpuInfoArea {
    /// A zeroed area.
    pub const fn new() -> VcpuInfoArea {
        VcpuInfoArea {
            bytes: UnsafeCell::new([0; 64]),
        }
    }
}

impl Default for VcpuInfoArea {
    fn default() -> Self {
        VcpuInfoArea::new()
    }
}

/// Moves vCPU `vcpu`'s `vcpu_info` into `area` (`VCPUOP_register_vcpu_info` with the area's
/// machine frame and offset) and makes the kit use it from then on ([`super::shared::vcpu_info`]).
///
/// Call it on `vcpu` itself, or for a vCPU that is down (Xen refuses a running other vCPU).
/// Run it with events masked on the calling vCPU: Xen marks every selector bit and
/// `upcall_pending` in the new copy, and an upcall delivered before the kit records the new
/// address would find nothing to clear.
///
/// # Errors
/// `-EINVAL` for a vCPU id the kit does not support (32 or more), if the area is not in the
/// initial mapping (no machine frame known) or Xen refuses (already moved, a running other
/// vCPU); `-ENOENT` for a vCPU the domain does not have.
pub fn register_vcpu_info(vcpu: u32, area: &'static mut VcpuInfoArea) -> HypercallResult {
    if usize::try_from(vcpu).map_or(true, |id| id >= super::percpu::MAX_VCPUS) {
        return Err(Errno::Einval);
    }
    let address = area.bytes.get() as u64;
    let mfn = super::mm::virt_to_mfn(address).ok_or(Errno::Einval)?;
    let offset = u32::try_from(address % PAGE_SIZE_U64).map_err(|_| Errno::Einval)?;
    // SAFETY: the area is 'static and exclusively borrowed for good (the `&mut` is consumed), so
    // nothing else uses its 64 bytes; it is 64-byte aligned, so it does not cross the page end.
    let ret = unsafe { crate::hypercall::vcpu::register_vcpu_info(vcpu, mfn, offset)? };
    // SAFETY: the hypervisor now uses exactly these 64 bytes as the vCPU's vcpu_info; they stay
    // mapped ('static) and are used by nothing else.
    unsafe { super::shared::set_vcpu_info_address(vcpu, address)? };
    Ok(ret)
}

/// A `vcpu_runstate_info` the hypervisor keeps up to date.
#[repr(C, align(64))]
#[derive(Debug)]
pub struct RunstateArea {
    info: UnsafeCell<VcpuRunstateInfo>,
}

// SAFETY: the hypervisor writes the area; the kit only reads it, with volatile reads.
unsafe impl Sync for RunstateArea {}

impl RunstateArea {
    /// An area in state 0 with zero times (what it holds until the hypervisor first writes it).
    pub const fn new() -> RunstateArea {
        RunstateArea {
            info: UnsafeCell::new(VcpuRunstateInfo {
                state: 0,
                _pad0: 0,
                state_entry_time: 0,
                time: [0; 4],
            }),
        }
    }

    /// The guest virtual address of the area.
    pub fn address(&self) -> u64 {
        self.info.get() as u64
    }

    /// A consistent copy: read until `state_entry_time` is the same before and after and has
    /// no `XEN_RUNSTATE_UPDATE` bit (which Xen sets during an update when the guest enabled
    /// `VMASST_TYPE_runstate_update_flag`).
    pub fn read(&self) -> VcpuRunstateInfo {
        let p = self.info.get();
        loop {
            // SAFETY: the area is 'static memory of this type that only the hypervisor
            // writes; every field is read volatile.
            let (before, copy, after) = unsafe {
                let before = core::ptr::addr_of!((*p).state_entry_time).read_volatile();
                fence(Ordering::Acquire);
                let copy = VcpuRunstateInfo {
                    state: core::ptr::addr_of!((*p).state).read_volatile(),
                    _pad0: 0,
                    state_entry_time: before,
                    time: core::ptr::addr_of!((*p).time).read_volatile(),
                };
                fence(Ordering::Acquire);
                let after = core::ptr::addr_of!((*p).state_entry_time).read_volatile();
                (before, copy, after)
            };
            if before == after && before & XEN_RUNSTATE_UPDATE == 0 {
                return copy;
            }
            super::cpu::pause();
        }
    }
}

impl Default for RunstateArea {
    fn default() -> Self {
        RunstateArea::new()
    }
}

/// Makes the hypervisor keep vCPU `vcpu`'s runstate in `area`
/// (`VCPUOP_register_runstate_memory_area`; Xen writes it at once when `vcpu` is the caller,
/// and on every state change).
///
/// # Errors
/// `-ENOENT` for a bad vCPU, `-EFAULT` if Xen cannot use the address.
pub fn register_runstate_area(vcpu: u32, area: &'static RunstateArea) -> HypercallResult {
    // SAFETY: the area is 'static, of the right type and size, and Rust only reads it with
    // volatile reads (`RunstateArea::read`); it lies in the kernel mapping every vCPU uses.
    unsafe { crate::hypercall::vcpu::register_runstate_memory_area(vcpu, area.address()) }
}
