//! `memory_op` (hypercall 12; reference §9.8): the read-only queries.

use hypercall_abi::domid::DOMID_SELF;
use hypercall_abi::hypercall::HYPERVISOR_MEMORY_OP;
use hypercall_abi::memory::{
    E820Entry, XENMEM_CURRENT_RESERVATION, XENMEM_MACHPHYS_MAPPING, XENMEM_MAXIMUM_RAM_PAGE,
    XENMEM_MAXIMUM_RESERVATION, XENMEM_MEMORY_MAP, XenMachphysMapping, XenMemoryMap,
};
use hypercall_abi::types::DomidT;

use super::{HypercallResult, hypercall2, result_from_ret};

/// `memory_op(cmd, arg)` with a raw argument.
///
/// # Safety
/// `arg` must be valid for `cmd` (reservation changes also change which frames the guest owns).
///
/// # Errors
/// The hypervisor's error.
pub unsafe fn memory_op(cmd: u64, arg: u64) -> HypercallResult {
    // SAFETY: forwarded to the caller.
    result_from_ret(unsafe { hypercall2(HYPERVISOR_MEMORY_OP, cmd, arg) })
}

fn domid_query(cmd: u32, domid: DomidT) -> HypercallResult {
    let dom = domid;
    // SAFETY: the hypervisor reads one `domid_t`.
    unsafe { memory_op(u64::from(cmd), core::ptr::from_ref(&dom) as u64) }
}

/// `XENMEM_current_reservation` for this domain: its page count.
///
/// # Errors
/// The hypervisor's error.
pub fn current_reservation() -> HypercallResult {
    domid_query(XENMEM_CURRENT_RESERVATION, DOMID_SELF)
}

/// `XENMEM_maximum_reservation` for this domain: its page limit.
///
/// # Errors
/// The hypervisor's error.
pub fn maximum_reservation() -> HypercallResult {
    domid_query(XENMEM_MAXIMUM_RESERVATION, DOMID_SELF)
}

/// `XENMEM_maximum_ram_page`: the highest MFN of host RAM.
///
/// # Errors
/// The hypervisor's error.
pub fn maximum_ram_page() -> HypercallResult {
    // SAFETY: no memory argument.
    unsafe { memory_op(u64::from(XENMEM_MAXIMUM_RAM_PAGE), 0) }
}

/// `XENMEM_memory_map`: the domain's E820 map into `entries`. Returns how many were written.
///
/// # Errors
/// `-ENOSYS` when no map was set for the domain.
pub fn memory_map(entries: &mut [E820Entry]) -> HypercallResult<u32> {
    let mut map = XenMemoryMap {
        nr_entries: u32::try_from(entries.len()).unwrap_or(u32::MAX),
        _pad0: 0,
        buffer: entries.as_mut_ptr() as u64,
    };
    // SAFETY: the hypervisor writes at most `nr_entries` entries into `entries`, and `map`.
    unsafe {
        memory_op(
            u64::from(XENMEM_MEMORY_MAP),
            core::ptr::from_mut(&mut map) as u64,
        )
    }
    .map(|_| map.nr_entries)
}

/// `XENMEM_machphys_mapping`: where the read-only M2P is and the largest MFN it covers.
///
/// # Errors
/// The hypervisor's error.
pub fn machphys_mapping() -> HypercallResult<XenMachphysMapping> {
    let mut mapping = XenMachphysMapping::default();
    // SAFETY: the hypervisor writes one `xen_machphys_mapping`.
    unsafe {
        memory_op(
            u64::from(XENMEM_MACHPHYS_MAPPING),
            core::ptr::from_mut(&mut mapping) as u64,
        )
    }
    .map(|_| mapping)
}
