//! Stopping the machine: halt, reboot, and QEMU's isa-debug-exit device.

use x86_64::instructions::port::Port;

/// I/O port of QEMU's `isa-debug-exit` device as Oxen's tests configure it
/// (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`).
const DEBUG_EXIT_PORT: u16 = 0xf4;

/// Asks QEMU to exit with status `2 * code + 1`; returns if no such device is present.
pub fn debug_exit(code: u32) {
    let mut port = Port::<u32>::new(DEBUG_EXIT_PORT);
    // SAFETY: writing the debug-exit port either ends QEMU or, on a machine without the
    // device, is an ignored write to an unused ISA port.
    unsafe { port.write(code) }
}

/// Stops this CPU for good: interrupts off, `hlt` forever.
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

/// Resets the machine: the reset-control register at 0xcf9, then the keyboard controller,
/// then a triple fault.
pub fn reboot() -> ! {
    let mut cf9 = Port::<u8>::new(0xcf9);
    let mut kbd = Port::<u8>::new(0x64);
    // SAFETY: these writes reset the machine; nothing after them relies on memory state.
    unsafe {
        cf9.write(0x02);
        cf9.write(0x06);
        kbd.write(0xfe);
    }
    super::idt::triple_fault()
}
