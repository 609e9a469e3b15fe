//! Test guest `domains`: one kernel for every domain of a multi-domain test. Its command line
//! chooses the role: `dom0 d1=<role> d2=<role> ...` makes it the orchestrator (dom0), which
//! offers each domU an event channel, serves it, waits until every domU is gone and judges;
//! `pingpong`, `timers`, `spin`, `hostile` and `crash` are the domU roles (see `guest/mod.rs`).
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]
#![deny(unsafe_code)]

#[cfg(target_os = "none")]
mod guest;

/// On a host OS there is nothing to run: the guest boots under a hypervisor.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("domains is a Xen PV guest kernel: build it with `cargo xtask build`");
    std::process::exit(2);
}
