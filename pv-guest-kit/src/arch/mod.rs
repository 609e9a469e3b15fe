//! The kit's architecture layer: the only place (with [`crate::hypercall`]) that holds
//! assembly and `unsafe` code. Everything here exists only for the guest target
//! (`target_os = "none"`).
//!
//! - [`entry`]: the `_start` entry point, the boot stack, the hypercall page, the Xen ELF notes
//!   and the [`guest_kernel!`](crate::guest_kernel) macro's support;
//! - [`cpu`]: instructions (TSC, CPUID through Xen's forced-emulation prefix, control
//!   registers, MSRs, port I/O);
//! - [`shared`]: the `shared_info` page, `vcpu_info` (atomic access to the event bitmaps and
//!   the selector) and the pvclock;
//! - [`percpu`]: which vCPU is running (per-vCPU records through the kernel GS base);
//! - [`upcall`]: the event-upcall entry;
//! - [`smp`]: the first context of a kit-started secondary vCPU;
//! - [`vcpu_areas`]: a moved `vcpu_info` and the runstate area the hypervisor keeps writing;
//! - [`heap`]: the global allocator over the free part of the initial mapping;
//! - [`mm`]: P2M and M2P lookups and a walk of the current page tables;
//! - [`frames`]: the guest frame allocator and the kernel's direct map;
//! - [`paging`]: walking and editing page tables, pinning, loading roots;
//! - [`traps`]: the exception stubs and the failsafe callback entry;
//! - [`user`]: entering user mode, the system-call entry, user address spaces;
//! - `frame_asm`: the register save, handler call and restore that those entries share.

pub mod cpu;
pub mod entry;
mod frame_asm;
pub mod frames;
pub mod heap;
pub mod mm;
pub mod paging;
pub mod percpu;
pub mod shared;
pub mod smp;
pub mod traps;
pub mod upcall;
pub mod user;
pub mod vcpu_areas;

pub use entry::{boot_info, virt_base};

/// Shuts the domain down with `reason` and never returns: if the hypervisor refuses or returns
/// (a `suspend` that resumed), the kit asks again for `SHUTDOWN_crash`, then spins yielding the
/// CPU.
pub fn shutdown(reason: hypercall_abi::sched::ShutdownReason) -> ! {
    use crate::hypercall::sched::{shutdown_request, yield_now};
    use hypercall_abi::sched::ShutdownReason;
    // A refused shutdown leaves nothing better to do than to try to crash.
    let _ = shutdown_request(reason);
    let _ = shutdown_request(ShutdownReason::Crash);
    loop {
        let _ = yield_now();
    }
}
