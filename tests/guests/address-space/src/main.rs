//! Test guest `address-space`: builds page tables the way a PV kernel does and checks every
//! step on the hypervisor. See `guest/mod.rs` for the list of checks.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]
#![deny(unsafe_code)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod guest;

/// On a host OS there is nothing to run: the guest boots under a hypervisor.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("address-space is a Xen PV guest kernel: build it with `cargo xtask build`");
    std::process::exit(2);
}
