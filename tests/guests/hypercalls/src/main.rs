//! Test guest `hypercalls`: every hypercall of the first-PV-domain work with its error paths,
//! the `iret` hypercall, unknown hypercall numbers, and the instructions Xen emulates for a PV
//! guest (forced-emulation `cpuid`, control registers, MSRs, port I/O, `cli`/`sti`). Every
//! expected value is what real Xen 4.17 returns (see `guest/mod.rs`).
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]
#![deny(unsafe_code)]

#[cfg(target_os = "none")]
mod guest;

/// On a host OS there is nothing to run: the guest boots under a hypervisor.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("hypercalls is a Xen PV guest kernel: build it with `cargo xtask build`");
    std::process::exit(2);
}
