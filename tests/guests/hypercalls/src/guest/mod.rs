//! The checks, by area. Expected values are what real Xen 4.17 (Debian's 4.17.x release build,
//! under QEMU 10 TCG) returns to a PV dom0; where Xen returns something this guest cannot
//! predict (strings, sizes), it checks the value's shape and prints it as `INFO:`.

#![allow(
    unsafe_code,
    reason = "raw.rs runs the hypercalls and instructions under test"
)]

mod emulation;
mod memory;
mod raw;
mod segments;
mod simple;

use guest_support::Checks;
use pv_guest_kit::{StartInfo, println, traps};

pv_guest_kit::guest_kernel!(main);

fn main(si: StartInfo) -> ! {
    println!("hypercalls: every hypercall of the first PV domain, with its error paths");
    let mut c = Checks::new();
    c.eq("set_trap_table with the kit's stubs", traps::init(), Ok(0));
    guest_support::catch::install(&[0, 6, 11, 13, 14]);

    simple::console(&mut c);
    simple::version(&mut c);
    simple::sched(&mut c);
    simple::trap_table(&mut c);
    simple::callbacks(&mut c);
    simple::misc(&mut c);
    simple::long_multicall(&mut c);
    simple::unknown_numbers(&mut c);
    simple::iret(&mut c);
    segments::segment_base(&mut c);
    segments::gdt(&mut c);
    segments::ldt(&mut c);
    memory::mappings(&mut c, &si);
    memory::memory_op(&mut c, &si);
    emulation::cpuid(&mut c);
    emulation::control_registers(&mut c, &si);
    emulation::msrs(&mut c);
    emulation::port_io(&mut c);
    simple::shutdown_code(&mut c);
    c.finish()
}
