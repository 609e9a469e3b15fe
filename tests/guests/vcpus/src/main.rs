//! Test guest `vcpus`: secondary vCPUs brought up with `VCPUOP_initialise`/`VCPUOP_up` on the
//! kit's per-vCPU entry point, 10,000 IPI round trips between vCPU 0 and vCPU 1, a shared
//! counter, per-vCPU timers, a moved `vcpu_info`, `VCPUOP_down` and the runstate of a down
//! vCPU. Needs dom0 with at least two vCPUs (`dom0_max_vcpus=2`). Every expected value is what
//! real Xen 4.17 does (see `guest/mod.rs`).
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]
#![deny(unsafe_code)]

#[cfg(target_os = "none")]
mod guest;

/// On a host OS there is nothing to run: the guest boots under a hypervisor.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("vcpus is a Xen PV guest kernel: build it with `cargo xtask build`");
    std::process::exit(2);
}
