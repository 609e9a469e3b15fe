//! A [`log`] backend on the console: `log::info!("...")` prints `[INFO] ...`.
//!
//! The kit installs it at entry with the level `Info`; change it with
//! [`log::set_max_level`].

use log::{LevelFilter, Log, Metadata, Record};

struct ConsoleLogger;

impl Log for ConsoleLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            crate::console::_println(format_args!("[{}] {}", record.level(), record.args()));
        }
    }

    fn flush(&self) {}
}

static LOGGER: ConsoleLogger = ConsoleLogger;

/// Installs the console logger (once; later calls only change the level).
pub fn init(level: LevelFilter) {
    // A second call finds the logger already set, which is fine.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
