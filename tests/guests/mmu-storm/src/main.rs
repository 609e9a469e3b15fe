//! Test guest `mmu-storm` (hostile): issues at least 100,000 seeded random `mmu_update`,
//! `mmuext_op` and `update_va_mapping` requests, valid and invalid mixed, one by one, in
//! batches and in `multicall`s, against a private pool of frames and a private window of the
//! address space. It checks that every call returns 0 or a negative errno from Xen's set, that
//! the requests that must fail do, and that the kernel's own mappings never change; then it
//! undoes what it can and checks that no frame of the pool is still typed as a page table.
//! See `guest/mod.rs`.
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
    eprintln!("mmu-storm is a Xen PV guest kernel: build it with `cargo xtask build`");
    std::process::exit(2);
}
