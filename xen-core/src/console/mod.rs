//! The hypervisor console's log format (portable): every line carries the time since boot and,
//! for anything but plain information, its level.
//!
//! ```text
//! (XEN) [    0.012345] Oxen 0.1.0 booting
//! (XEN) [    0.013000] WARNING: unknown option 'frobnicate' ignored
//! ```
//!
//! Lines start with `(XEN)` like Xen's own console, so tools and people who read Xen logs
//! read Oxen's the same way.

pub mod guest;
pub mod input;

use core::fmt;

/// Prefix of every hypervisor console line.
pub const LINE_PREFIX: &str = "(XEN)";

/// Where log lines go and where time comes from; supplied by the architecture layer.
#[derive(Debug)]
pub struct LogSink {
    /// Writes one complete, formatted line atomically (under the console lock).
    pub write_line: fn(fmt::Arguments<'_>),
    /// Nanoseconds since boot.
    pub now_ns: fn() -> u64,
}

/// A `log` backend writing Oxen's console format to a [`LogSink`].
#[derive(Debug)]
pub struct Logger {
    sink: LogSink,
}

impl Logger {
    /// A logger over `sink`.
    pub const fn new(sink: LogSink) -> Self {
        Self { sink }
    }
}

/// Seconds and microseconds since boot, formatted like `[    1.234567]`.
#[derive(Clone, Copy, Debug)]
pub struct Timestamp(pub u64);

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0 / 1_000_000_000;
        let micros = (self.0 % 1_000_000_000) / 1_000;
        write!(f, "[{secs:5}.{micros:06}]")
    }
}

/// The label shown for a level (empty for `Info`).
pub fn level_label(level: log::Level) -> &'static str {
    match level {
        log::Level::Error => "ERROR: ",
        log::Level::Warn => "WARNING: ",
        log::Level::Info => "",
        log::Level::Debug => "debug: ",
        log::Level::Trace => "trace: ",
    }
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let ts = Timestamp((self.sink.now_ns)());
        (self.sink.write_line)(format_args!(
            "{LINE_PREFIX} {ts} {}{}\n",
            level_label(record.level()),
            record.args()
        ));
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(Timestamp(0).to_string(), "[    0.000000]");
        assert_eq!(Timestamp(1_234_567_890).to_string(), "[    1.234567]");
        assert_eq!(
            Timestamp(123_456_000_000_000).to_string(),
            "[123456.000000]"
        );
    }

    #[test]
    fn labels() {
        assert_eq!(level_label(log::Level::Warn), "WARNING: ");
        assert_eq!(level_label(log::Level::Info), "");
    }
}
