//! The early console: text through `console_io(CONSOLEIO_write)` (reference §13.1), with the
//! [`print!`](crate::print) and [`println!`](crate::println) macros.
//!
//! Xen prints the hardware domain's writes on its console as they are; other domains' output
//! gets a `(dN)` prefix and, in a release Xen, is refused (`-EPERM`). Output is formatted into a
//! 256-byte buffer on the stack and written a line (or a full buffer) at a time, so the macros
//! need no lock and work in trap handlers and the panic handler.

use core::fmt::{self, Write};

use crate::text::LineBuffer;

/// Writes `bytes` to the console, ignoring errors (there is nowhere to report them).
pub fn write(bytes: &[u8]) {
    let _ = crate::hypercall::console::write(bytes);
}

/// Writes formatted text (what [`print!`](crate::print) expands to).
#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>) {
    let mut line = LineBuffer::<_, 256>::new(write);
    let _ = line.write_fmt(args);
}

/// Writes formatted text and a newline in one console write (what
/// [`println!`](crate::println) expands to).
#[doc(hidden)]
pub fn _println(args: fmt::Arguments<'_>) {
    let mut line = LineBuffer::<_, 256>::new(write);
    let _ = line.write_fmt(args);
    line.push(b"\n");
}

/// Prints to the hypervisor console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::_print(::core::format_args!($($arg)*)) };
}

/// Prints to the hypervisor console, with a newline.
#[macro_export]
macro_rules! println {
    () => { $crate::console::write(b"\n") };
    ($($arg:tt)*) => { $crate::console::_println(::core::format_args!($($arg)*)) };
}
