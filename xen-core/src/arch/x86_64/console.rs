//! The hypervisor console: a 16550 UART behind a lock, plus an emergency path that works
//! even when the lock is held by code that faulted.

use super::serial::{COM1_BASE, LCR_8N1, Uart};
use crate::boot::cmdline::{ConsoleDevice, Options};
use crate::console::{LINE_PREFIX, Timestamp};
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU16, Ordering};
use spin::Mutex;

/// I/O base of COM2.
const COM2_BASE: u16 = 0x2f8;

/// The console UART; `None` with `console=none`.
static CONSOLE: Mutex<Option<Uart>> = Mutex::new(Some(Uart::new(COM1_BASE)));
/// The same UART's base for the emergency path (0 = no console).
static EMERGENCY_BASE: AtomicU16 = AtomicU16::new(COM1_BASE);

struct UartWriter(Uart);

impl Write for UartWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.write_bytes(s.as_bytes());
        Ok(())
    }
}

/// Programs COM1 with the default line settings, so the earliest errors can be printed.
pub fn init_early() {
    Uart::new(COM1_BASE).init(115_200, LCR_8N1);
}

/// Applies `console=`, `com1=` and `com2=`.
pub fn configure(opts: &Options) {
    let uart = opts.console.first().map(|d| match d {
        ConsoleDevice::Com1 => (Uart::new(COM1_BASE), opts.com1),
        ConsoleDevice::Com2 => (Uart::new(COM2_BASE), opts.com2),
    });
    let chosen = uart.map(|(u, cfg)| {
        u.init(cfg.baud, cfg.line_control());
        u
    });
    x86_64::instructions::interrupts::without_interrupts(|| *CONSOLE.lock() = chosen);
    EMERGENCY_BASE.store(
        match opts.console.first() {
            Some(ConsoleDevice::Com1) => COM1_BASE,
            Some(ConsoleDevice::Com2) => COM2_BASE,
            None => 0,
        },
        Ordering::Relaxed,
    );
}

/// Writes formatted text atomically with respect to other console users.
pub fn write_fmt(args: fmt::Arguments<'_>) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        if let Some(u) = *CONSOLE.lock() {
            let _ = UartWriter(u).write_fmt(args);
        }
    });
}

/// Writes raw bytes (a guest's console output, say) atomically.
pub fn write_bytes(bytes: &[u8]) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        if let Some(u) = *CONSOLE.lock() {
            u.write_bytes(bytes);
        }
    });
}

/// A received console byte, if any.
pub fn try_read() -> Option<u8> {
    x86_64::instructions::interrupts::without_interrupts(|| {
        CONSOLE.lock().and_then(|u| u.try_get())
    })
}

/// Prints one line (`args` ends with a newline) whatever the log level and even if the
/// console lock is held: used for fatal errors. Prefixed like every console line.
pub fn emergency(args: fmt::Arguments<'_>) {
    let base = EMERGENCY_BASE.load(Ordering::Relaxed);
    if base == 0 {
        return;
    }
    let mut w = UartWriter(Uart::new(base));
    let ts = Timestamp(super::time::now_ns());
    // Take the lock if it comes free soon, so the line is not interleaved; write anyway if not.
    for _ in 0..1000 {
        if let Some(_guard) = CONSOLE.try_lock() {
            let _ = write!(w, "{LINE_PREFIX} {ts} {args}");
            return;
        }
        core::hint::spin_loop();
    }
    let _ = write!(w, "{LINE_PREFIX} {ts} {args}");
}

/// Waits until the UART has sent everything.
pub fn flush() {
    let base = EMERGENCY_BASE.load(Ordering::Relaxed);
    if base != 0 {
        Uart::new(base).flush();
    }
}
