//! Test guest `events`: every `EVTCHNOP_*` a single domain (dom0) can exercise, the upcall and
//! its dispatch (counted exactly), masking, VIRQs, IPIs, `bind_vcpu`, `SCHEDOP_poll`, port
//! exhaustion and the FIFO commands on a 2-level domain. Every expected value is what real Xen
//! 4.17 does (see `guest/mod.rs`).
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]
#![deny(unsafe_code)]

#[cfg(target_os = "none")]
mod guest;

/// On a host OS there is nothing to run: the guest boots under a hypervisor.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("events is a Xen PV guest kernel: build it with `cargo xtask build`");
    std::process::exit(2);
}
