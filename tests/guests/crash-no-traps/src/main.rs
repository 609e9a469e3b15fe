//! Test guest `crash-no-traps`: executes `ud2` before installing any trap table. A PV guest
//! with no handler for an exception is crashed by the hypervisor (reference §4.6, §8.1): on
//! Xen 4.17 the domain dies and, being dom0, Xen prints `Hardware Dom0 crashed`.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]
#![deny(unsafe_code)]

#[cfg(target_os = "none")]
mod guest {
    use pv_guest_kit::{StartInfo, println};

    pv_guest_kit::guest_kernel!(main);

    /// The line printed just before the fault.
    const ANNOUNCE: &str = "crash-no-traps: executing ud2 with no trap table";

    fn main(_si: StartInfo) -> ! {
        println!("{ANNOUNCE}");
        #[allow(unsafe_code, reason = "the fault under test")]
        // SAFETY: ud2 raises #UD; with no trap table the hypervisor crashes the domain, so
        // nothing after it runs.
        unsafe {
            core::arch::asm!("ud2", options(noreturn, nomem, nostack));
        }
    }
}

/// On a host OS there is nothing to run: the guest boots under a hypervisor.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("crash-no-traps is a Xen PV guest kernel: build it with `cargo xtask build`");
    std::process::exit(2);
}
