//! The checks, by area. Expected values are what real Xen 4.17 (Debian's 4.17.x release build,
//! under QEMU 10 TCG) returns to a PV dom0 booted with `dom0_max_vcpus=2`; the checks that need
//! a second vCPU adapt to how many the domain has (vCPU 1 is never brought up here: ports
//! may notify it all the same). Measured numbers are printed as `INFO:` lines.
//!
//! Events stay masked except where a check enables them; the kit's upcall runs the handlers of
//! ports attached with `events::attach`, and leaves every other port pending, which is how the
//! checks observe pending bits.

mod console;
mod delivery;
#[allow(
    unsafe_code,
    reason = "the FIFO commands hand the hypervisor frame numbers"
)]
mod limits;
mod ops;
mod poll;
mod virq;

use guest_support::{Checks, info};
use pv_guest_kit::abi::errno::Errno;
use pv_guest_kit::{StartInfo, events, println, time, traps, vcpus};

pv_guest_kit::guest_kernel!(main);

/// A domain id that names no domain (dom0 is alone).
pub const NO_DOMAIN: u16 = 1;

/// The vCPUs the domain has: `VCPUOP_is_up` answers for each, `-ENOENT` past the last.
fn count_vcpus() -> u32 {
    (0..32u32)
        .take_while(|&id| vcpus::is_up(id) != Err(Errno::Enoent))
        .count()
        .try_into()
        .unwrap_or(0)
}

/// Busy-waits (events as they are) until `done()` or `ns` of system time passed; returns
/// whether `done()` held.
pub fn spin_until(ns: u64, mut done: impl FnMut() -> bool) -> bool {
    let start = time::now_ns().unwrap_or(0);
    loop {
        if done() {
            return true;
        }
        if time::now_ns().unwrap_or(u64::MAX).saturating_sub(start) >= ns {
            return done();
        }
    }
}

fn main(si: StartInfo) -> ! {
    if si.cmdline().split_whitespace().any(|w| w == "console") {
        println!("events console: console input through VIRQ_CONSOLE");
        let mut c = Checks::new();
        c.eq("set_trap_table with the kit's stubs", traps::init(), Ok(0));
        c.eq("events::init", events::init(), Ok(()));
        console::input(&mut c);
        c.finish()
    }
    println!("events: event channels of one domain on the 2-level ABI");
    let mut c = Checks::new();
    c.eq("set_trap_table with the kit's stubs", traps::init(), Ok(0));
    c.eq(
        "events::init: shared_info, per-vCPU record, upcall entry registered",
        events::init(),
        Ok(()),
    );
    c.check(
        "events masked after init",
        !events::are_enabled(),
        format_args!("enabled"),
    );
    let vcpus = count_vcpus();
    info(format_args!("dom0 has {vcpus} vCPU(s)"));

    ops::alloc_unbound(&mut c);
    ops::loopback(&mut c);
    ops::close_and_status(&mut c);
    ops::hostile(&mut c);
    delivery::counted(&mut c);
    delivery::masking(&mut c);
    delivery::nested(&mut c);
    virq::virqs(&mut c, vcpus);
    virq::ipis(&mut c, vcpus);
    virq::bind_vcpu(&mut c, vcpus);
    poll::poll(&mut c);
    limits::fifo(&mut c);
    limits::reset(&mut c);
    limits::exhaust(&mut c);
    c.finish()
}
