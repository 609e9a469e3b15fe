//! `vcpu_op` (hypercall 24; reference §12.3): bringing up and querying vCPUs, their timers,
//! runstate and `vcpu_info` placement.
//!
//! [`crate::vcpus`] and [`crate::time`] build the kit's secondary-vCPU and timer layers on
//! these.

use hypercall_abi::hypercall::HYPERVISOR_VCPU_OP;
use hypercall_abi::vcpu::{
    VCPUOP_DOWN, VCPUOP_GET_RUNSTATE_INFO, VCPUOP_INITIALISE, VCPUOP_IS_UP,
    VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA, VCPUOP_REGISTER_VCPU_INFO,
    VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA, VCPUOP_SEND_NMI, VCPUOP_SET_PERIODIC_TIMER,
    VCPUOP_SET_SINGLESHOT_TIMER, VCPUOP_STOP_PERIODIC_TIMER, VCPUOP_STOP_SINGLESHOT_TIMER,
    VCPUOP_UP, VcpuGuestContext, VcpuRegisterRunstateMemoryArea, VcpuRegisterTimeMemoryArea,
    VcpuRegisterVcpuInfo, VcpuRunstateInfo, VcpuSetPeriodicTimer, VcpuSetSingleshotTimer,
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

/// `VCPUOP_get_runstate_info`: a copy of `vcpu`'s runstate (state, time of the last change,
/// cumulative time per state).
///
/// # Errors
/// `-ENOENT` if the vCPU does not exist.
pub fn get_runstate_info(vcpu: u32) -> HypercallResult<VcpuRunstateInfo> {
    let mut info = VcpuRunstateInfo::default();
    // SAFETY: the hypervisor writes one `vcpu_runstate_info` into `info`.
    unsafe {
        vcpu_op(
            VCPUOP_GET_RUNSTATE_INFO,
            vcpu,
            core::ptr::from_mut(&mut info) as u64,
        )
    }
    .map(|_| info)
}

/// `VCPUOP_register_runstate_memory_area`: from now on the hypervisor keeps a copy of `vcpu`'s
/// runstate at guest virtual address `area` (and writes it at once if `vcpu` is the caller).
/// Address 0 stops the updates.
///
/// # Safety
/// `area` must be a 48-byte `vcpu_runstate_info` the hypervisor may write at any time from now
/// on (while the domain lives or until another registration), mapped in every address space
/// the vCPU runs in, and that Rust code reads only with volatile reads.
///
/// # Errors
/// `-ENOENT` for a bad vCPU, `-EFAULT` for an address that is not guest memory.
pub unsafe fn register_runstate_memory_area(vcpu: u32, area: u64) -> HypercallResult {
    let arg = VcpuRegisterRunstateMemoryArea { addr: area };
    // SAFETY: the hypervisor reads `arg`; the caller vouches for the area.
    unsafe {
        vcpu_op(
            VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA,
            vcpu,
            core::ptr::from_ref(&arg) as u64,
        )
    }
}

/// `VCPUOP_set_periodic_timer`: `VIRQ_TIMER` on `vcpu` every `period_ns` (a PV vCPU starts with
/// a 10 ms period).
///
/// # Errors
/// `-EINVAL` for a period below 1 ms (or absurdly long), `-ENOENT` for a bad vCPU.
pub fn set_periodic_timer(vcpu: u32, period_ns: u64) -> HypercallResult {
    let arg = VcpuSetPeriodicTimer { period_ns };
    // SAFETY: the hypervisor reads `arg`.
    unsafe {
        vcpu_op(
            VCPUOP_SET_PERIODIC_TIMER,
            vcpu,
            core::ptr::from_ref(&arg) as u64,
        )
    }
}

/// `VCPUOP_stop_periodic_timer`.
///
/// # Errors
/// `-ENOENT` for a bad vCPU.
pub fn stop_periodic_timer(vcpu: u32) -> HypercallResult {
    // SAFETY: no memory argument.
    unsafe { vcpu_op(VCPUOP_STOP_PERIODIC_TIMER, vcpu, 0) }
}

/// `VCPUOP_set_singleshot_timer`: arms `vcpu`'s single-shot timer (the one
/// [`super::sched::set_timer_op`] arms) for `deadline_ns`. With `flags` =
/// `VCPU_SSHOTTMR_future`, a deadline already past is refused with `-ETIME`.
///
/// # Errors
/// `-EINVAL` when `vcpu` is not the calling vCPU, `-ETIME` as above.
pub fn set_singleshot_timer(vcpu: u32, deadline_ns: u64, flags: u32) -> HypercallResult {
    let arg = VcpuSetSingleshotTimer {
        timeout_abs_ns: deadline_ns,
        flags,
        _pad0: 0,
    };
    // SAFETY: the hypervisor reads `arg`.
    unsafe {
        vcpu_op(
            VCPUOP_SET_SINGLESHOT_TIMER,
            vcpu,
            core::ptr::from_ref(&arg) as u64,
        )
    }
}

/// `VCPUOP_stop_singleshot_timer`.
///
/// # Errors
/// `-EINVAL` when `vcpu` is not the calling vCPU.
pub fn stop_singleshot_timer(vcpu: u32) -> HypercallResult {
    // SAFETY: no memory argument.
    unsafe { vcpu_op(VCPUOP_STOP_SINGLESHOT_TIMER, vcpu, 0) }
}

/// `VCPUOP_register_vcpu_info`: moves `vcpu`'s `vcpu_info` to byte `offset` of machine frame
/// `mfn`. The hypervisor copies the current contents there, marks every selector bit and
/// `upcall_pending` (a spurious upcall follows) and from then on uses only the new copy.
///
/// # Safety
/// The 64 bytes at `mfn`/`offset` become shared with the hypervisor for the domain's lifetime:
/// nothing else may use them, and Rust code may access them only as the kit's `VcpuInfo` does
/// (volatile and atomic accesses).
///
/// # Errors
/// `-EINVAL` if the area crosses the page end, if `vcpu` already moved its `vcpu_info`, or if
/// `vcpu` is another vCPU that is not down; `-ENOENT` for a bad vCPU.
pub unsafe fn register_vcpu_info(vcpu: u32, mfn: u64, offset: u32) -> HypercallResult {
    let arg = VcpuRegisterVcpuInfo {
        mfn,
        offset,
        rsvd: 0,
    };
    // SAFETY: the hypervisor reads `arg`; the caller vouches for the area.
    unsafe {
        vcpu_op(
            VCPUOP_REGISTER_VCPU_INFO,
            vcpu,
            core::ptr::from_ref(&arg) as u64,
        )
    }
}

/// `VCPUOP_register_vcpu_time_memory_area`: the hypervisor also writes `vcpu`'s
/// `vcpu_time_info` at guest virtual address `area` (0 stops it).
///
/// # Safety
/// As [`register_runstate_memory_area`], for a 32-byte `vcpu_time_info`.
///
/// # Errors
/// `-ENOENT` for a bad vCPU, `-EFAULT` for an address that is not guest memory.
pub unsafe fn register_vcpu_time_memory_area(vcpu: u32, area: u64) -> HypercallResult {
    let arg = VcpuRegisterTimeMemoryArea { addr: area };
    // SAFETY: the hypervisor reads `arg`; the caller vouches for the area.
    unsafe {
        vcpu_op(
            VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA,
            vcpu,
            core::ptr::from_ref(&arg) as u64,
        )
    }
}

/// `VCPUOP_send_nmi`: a virtual NMI to `vcpu` (delivered through its NMI callback).
///
/// # Errors
/// `-ENOENT` for a bad vCPU.
pub fn send_nmi(vcpu: u32) -> HypercallResult {
    // SAFETY: no memory argument; what the NMI runs is the guest's registered callback.
    unsafe { vcpu_op(VCPUOP_SEND_NMI, vcpu, 0) }
}
