//! The hypervisor's panic handler and the one way it stops.

use super::{console, power};
use crate::exit::ExitCode;
use core::sync::atomic::{AtomicBool, Ordering};

/// `noreboot`: halt instead of rebooting when the hypervisor stops.
static NOREBOOT: AtomicBool = AtomicBool::new(false);

/// Applies the `noreboot` option.
pub fn set_noreboot(v: bool) {
    NOREBOOT.store(v, Ordering::Relaxed);
}

/// Stops the hypervisor: reports `code` to QEMU's debug-exit device if present, then halts
/// (clean halt, power-off, `noreboot`) or reboots the machine.
pub fn stop(code: ExitCode) -> ! {
    x86_64::instructions::interrupts::disable();
    console::flush();
    power::debug_exit(code.value());
    // QEMU ends the run asynchronously: give it a moment before going on without it.
    super::time::delay_ns(100_000_000);
    let halt = NOREBOOT.load(Ordering::Relaxed)
        || matches!(code, ExitCode::CleanHalt | ExitCode::Dom0Poweroff);
    if halt {
        console::emergency(format_args!("System halted.\n"));
        console::flush();
        power::halt_forever()
    }
    console::emergency(format_args!(
        "Rebooting in 5 seconds (boot with `noreboot` to halt instead)...\n"
    ));
    console::flush();
    super::time::delay_ns(5_000_000_000);
    power::reboot()
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let depth = super::percpu::current()
        .fatal_depth
        .fetch_add(1, Ordering::SeqCst);
    if depth == 0 {
        console::emergency(format_args!(
            "FATAL: hypervisor panic: {}\n",
            info.message()
        ));
        if let Some(loc) = info.location() {
            console::emergency(format_args!(
                "  at {}:{}:{}\n",
                loc.file(),
                loc.line(),
                loc.column()
            ));
        }
        let rbp: u64;
        // SAFETY: reads the frame pointer register, nothing else.
        unsafe {
            core::arch::asm!("mov %rbp, {}", out(reg) rbp, options(att_syntax, nomem, nostack))
        };
        super::trap::print_stack_trace(None, rbp);
    }
    stop(ExitCode::Panic)
}
