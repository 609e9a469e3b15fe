//! The virtual IDT and callbacks: `set_trap_table` (0), `set_callbacks` (4),
//! `fpu_taskswitch` (5), `stack_switch` (3), `callback_op` (30) (reference §7.4, §7.7, §8.1–§8.2).

use hypercall_abi::hypercall::{
    HYPERVISOR_CALLBACK_OP, HYPERVISOR_FPU_TASKSWITCH, HYPERVISOR_SET_CALLBACKS,
    HYPERVISOR_SET_TRAP_TABLE, HYPERVISOR_STACK_SWITCH,
};
use hypercall_abi::traps::{
    CALLBACKOP_REGISTER, CALLBACKOP_UNREGISTER, CallbackRegister, CallbackType, CallbackUnregister,
    TrapInfo,
};

use super::{Errno, HypercallResult, hypercall1, hypercall2, hypercall3, result_from_ret};

/// `set_trap_table(traps)`: copies each entry into the virtual IDT at its vector, stopping at the
/// first entry whose `address` is 0; vectors not mentioned keep their handler.
///
/// # Safety
/// Every entry's `address` must be an entry point that can take the bounce frame of its vector
/// (reference §8.3) without breaking memory safety; the table must end with a zero-address
/// entry (checked: `-EINVAL` from the kit otherwise).
///
/// # Errors
/// [`Errno::Einval`] if `traps` has no terminator; the hypervisor's `-EFAULT`/`-EINVAL`.
pub unsafe fn set_trap_table(traps: &[TrapInfo]) -> HypercallResult {
    if !traps.iter().any(TrapInfo::is_terminator) {
        return Err(Errno::Einval);
    }
    // The caller vouches for the handlers.
    // SAFETY: the hypervisor reads entries up to the terminator, which lies inside `traps`.
    result_from_ret(unsafe { hypercall1(HYPERVISOR_SET_TRAP_TABLE, traps.as_ptr() as u64) })
}

/// `set_trap_table(NULL)`: clears the whole virtual IDT. Afterwards any exception crashes the
/// domain.
///
/// # Errors
/// The hypervisor's error.
pub fn clear_trap_table() -> HypercallResult {
    // SAFETY: NULL clears the table; no memory is read and no handler is installed.
    result_from_ret(unsafe { hypercall1(HYPERVISOR_SET_TRAP_TABLE, 0) })
}

/// `callback_op(CALLBACKOP_register, {type, flags, address})`.
///
/// # Safety
/// `address` must be an entry point that can take the frame of this callback type (reference
/// §8.3, §8.6) without breaking memory safety.
///
/// # Errors
/// `-EINVAL` for a non-canonical address, `-ENOSYS` for an unknown type.
pub unsafe fn callback_register(kind: CallbackType, flags: u16, address: u64) -> HypercallResult {
    let arg = CallbackRegister {
        type_: kind.raw(),
        flags,
        _pad0: 0,
        address,
    };
    // SAFETY: the hypervisor reads `arg`; the caller vouches for the entry point.
    unsafe { callback_op_raw(CALLBACKOP_REGISTER, core::ptr::from_ref(&arg) as u64) }
}

/// `callback_op(CALLBACKOP_unregister, {type})`. Xen lets only `nmi` be unregistered.
///
/// # Errors
/// `-EINVAL` for a type that cannot be unregistered, `-ENOSYS` for an unknown one.
pub fn callback_unregister(kind: CallbackType) -> HypercallResult {
    let arg = CallbackUnregister {
        type_: kind.raw(),
        _unused: 0,
    };
    // SAFETY: the hypervisor reads `arg`; unregistering installs no code.
    unsafe { callback_op_raw(CALLBACKOP_UNREGISTER, core::ptr::from_ref(&arg) as u64) }
}

/// `callback_op(cmd, arg)` with a raw argument pointer, for tests of unknown types and bad
/// pointers.
///
/// # Safety
/// `arg` must be valid for the command, and a registration must name a safe entry point.
///
/// # Errors
/// The hypervisor's error.
pub unsafe fn callback_op_raw(cmd: u32, arg: u64) -> HypercallResult {
    // SAFETY: forwarded to the caller.
    result_from_ret(unsafe { hypercall2(HYPERVISOR_CALLBACK_OP, u64::from(cmd), arg) })
}

/// `set_callbacks(event, failsafe, syscall)`: the legacy form, registering the three with flags 0.
///
/// # Safety
/// As [`callback_register`], for each address.
///
/// # Errors
/// The hypervisor's error (Xen always returns 0 for canonical addresses).
pub unsafe fn set_callbacks(event: u64, failsafe: u64, syscall: u64) -> HypercallResult {
    // SAFETY: no memory argument; the caller vouches for the entry points.
    result_from_ret(unsafe { hypercall3(HYPERVISOR_SET_CALLBACKS, event, failsafe, syscall) })
}

/// `stack_switch(ss, rsp)`: the kernel stack for bounces from guest user mode.
///
/// # Safety
/// `rsp` must be the top of a stack the hypervisor may write bounce frames to whenever the
/// guest is interrupted in user mode.
///
/// # Errors
/// The hypervisor's error (Xen always returns 0).
pub unsafe fn stack_switch(ss: u16, rsp: u64) -> HypercallResult {
    // SAFETY: no memory argument; the caller vouches for the stack.
    result_from_ret(unsafe { hypercall2(HYPERVISOR_STACK_SWITCH, u64::from(ss), rsp) })
}

/// `fpu_taskswitch(set)`: sets (`true`) or clears the virtual CR0.TS. With TS set, the next
/// x87/SSE instruction raises #NM (vector 7).
///
/// # Errors
/// The hypervisor's error (Xen always returns 0).
pub fn fpu_taskswitch(set: bool) -> HypercallResult {
    // SAFETY: no memory argument; the kit's own code never uses the FPU.
    result_from_ret(unsafe { hypercall1(HYPERVISOR_FPU_TASKSWITCH, u64::from(set)) })
}
