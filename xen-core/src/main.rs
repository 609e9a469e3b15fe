//! The Oxen hypervisor binary. Everything lives in the `xen_core` library; on bare metal this
//! file only pulls it in (its multiboot entry point is named by the linker script).
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(target_os = "none")]
use xen_core as _;

/// On a host OS there is nothing to run: the hypervisor boots on bare metal.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "xen-core is a bare-metal hypervisor: build it with `cargo xtask build` and boot it with `cargo xtask run`"
    );
    std::process::exit(2);
}
