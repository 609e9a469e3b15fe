//! Test guest `exceptions`: installs a trap table of pv-guest-kit's stubs, raises every
//! exception a 64-bit PV guest can take, and checks the frame each handler receives (vector,
//! error code, RIP, CS with the saved upcall mask, RFLAGS, RSP, SS) and that execution resumes
//! after it. See `guest/mod.rs` for the list of checks.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]
#![deny(unsafe_code)]

#[cfg(target_os = "none")]
mod guest;

/// On a host OS there is nothing to run: the guest boots under a hypervisor.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("exceptions is a Xen PV guest kernel: build it with `cargo xtask build`");
    std::process::exit(2);
}
