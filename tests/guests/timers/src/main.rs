//! Test guest `timers`: Xen system time and the wallclock, `set_timer_op`, the single-shot and
//! periodic vCPU timers, `SCHEDOP_block`, the kit's sleeping functions and vCPU 0's runstate.
//! Every expected value is what real Xen 4.17 does (see `guest/mod.rs`); measured times are
//! printed as `INFO:` lines.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]
#![deny(unsafe_code)]

#[cfg(target_os = "none")]
mod guest;

/// On a host OS there is nothing to run: the guest boots under a hypervisor.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("timers is a Xen PV guest kernel: build it with `cargo xtask build`");
    std::process::exit(2);
}
