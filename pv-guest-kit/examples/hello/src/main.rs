//! The smallest useful PV guest: prints a greeting and what `start_info` says, then powers off.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]
#![deny(unsafe_code)]

#[cfg(target_os = "none")]
mod guest {
    use pv_guest_kit::abi::sched::ShutdownReason;
    use pv_guest_kit::{StartInfo, println};

    pv_guest_kit::guest_kernel!(main);

    fn main(si: StartInfo) -> ! {
        println!("Hello from a PV guest");
        println!("magic: {}", si.magic());
        println!("nr_pages: {}", si.nr_pages);
        println!("flags: {:#x}", si.flags);
        println!("cmdline: {}", si.cmdline());
        pv_guest_kit::shutdown(ShutdownReason::Poweroff)
    }
}

/// On a host OS there is nothing to run: the guest boots under a hypervisor.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("hello is a Xen PV guest kernel: build it with `cargo xtask build`");
    std::process::exit(2);
}
