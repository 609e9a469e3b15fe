//! Starting a secondary vCPU on the kit's entry point (reference §12.3–§12.4).
//!
//! [`initialise`] gives vCPU *n* a context built by [`crate::vcpu_context`]: it starts at the
//! kit's `secondary_start` with `rdi` = *n*, on a stack of its own, in the current kernel page
//! tables, with its kernel GS base at its per-vCPU record ([`super::percpu`]), the trap table
//! the kit installed on this vCPU, the kit's upcall entry as its event callback, and the kit's
//! failsafe entry if one is registered. `secondary_start` runs [`crate::vcpus`]'s per-vCPU
//! main, which calls the entry function the kernel gave.

use hypercall_abi::traps::{TRAP_TABLE_ENTRIES, TrapInfo};

use crate::errno::{Errno, HypercallResult};
use crate::vcpu_context::SecondaryContext;

/// The first Rust code a kit-started secondary vCPU runs (its context's `rip`), with `rdi` =
/// its id and `rsp` = its stack top minus 8.
extern "C" fn secondary_start(id: u64) -> ! {
    crate::vcpus::secondary_main(u32::try_from(id).unwrap_or(u32::MAX))
}

/// `VCPUOP_initialise` for vCPU `id`, starting at the kit's secondary entry on `stack` (see the
/// module documentation). The vCPU does not run before `VCPUOP_up`.
///
/// # Errors
/// `-EINVAL` for an id the kit does not support (32 or more) or a stack under 64 bytes; the
/// hypervisor's error (`-EEXIST` if the vCPU was initialised already, `-ENOENT` if the domain
/// has no such vCPU).
pub fn initialise(id: u32, stack: &'static mut [u8]) -> HypercallResult {
    let gs_base = super::percpu::area_address(id).ok_or(Errno::Einval)?;
    if stack.len() < 64 {
        return Err(Errno::Einval);
    }
    let bottom = stack.as_mut_ptr() as u64;
    let top = (bottom + stack.len() as u64) & !15;
    let mut traps = [TrapInfo::default(); TRAP_TABLE_ENTRIES];
    let count = super::traps::installed(&mut traps);
    let (failsafe_callback, failsafe_masks_events) = match super::traps::failsafe_registration() {
        Some(mask) => (super::traps::failsafe_entry(), mask),
        None => (0, false),
    };
    let context = SecondaryContext {
        rip: (secondary_start as extern "C" fn(u64) -> !) as usize as u64,
        rsp: top - 8,
        kernel_sp: top,
        rdi: u64::from(id),
        cr3: super::cpu::read_cr3(),
        gs_base_kernel: gs_base,
        traps: traps.get(..count).unwrap_or_default(),
        event_callback: super::upcall::entry_address(),
        failsafe_callback,
        failsafe_masks_events,
        ..SecondaryContext::default()
    }
    .build();
    // SAFETY: the vCPU starts in the kit's `secondary_start`, which expects exactly `rdi` = its
    // id and an aligned stack; that stack is 'static and exclusively this vCPU's (the `&mut`
    // is consumed); it runs in the kernel's current page tables, with the kit's own trap stubs,
    // upcall and failsafe entries (which are correct on any vCPU) and its own per-vCPU record
    // as kernel GS base.
    unsafe { crate::hypercall::vcpu::initialise(id, &context) }
}
