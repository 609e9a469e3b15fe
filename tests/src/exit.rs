//! How a boot ended: the hypervisor's `isa-debug-exit` codes and QEMU's process status.
//!
//! QEMU's `isa-debug-exit` device (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`) makes QEMU
//! exit with status `2 * v + 1` when the guest writes `v` to port 0xf4. So an odd status of 3 or
//! more carries a verdict from the hypervisor, while QEMU's own statuses 0 and 1 (a QEMU that
//! ended by itself, or a write of 0, which Oxen never does) carry none and never count as
//! success. The values are the hypervisor's own table, `xen-core/src/exit.rs`, used here as
//! [`DebugExit`]; this module is the one place in the harness and in `cargo xtask` that decodes
//! them.

use std::fmt;
use std::process::ExitStatus;

/// The values Oxen writes to the `isa-debug-exit` device: the hypervisor's
/// [`xen_core::exit::ExitCode`] itself, so the harness cannot disagree with it.
pub use xen_core::exit::ExitCode as DebugExit;

/// Lists every code once, with its meaning: [`ALL`] and [`meaning`] are made from the same
/// list, and the match in `meaning` is exhaustive, so a code added to the hypervisor's table
/// does not compile here until it is listed.
macro_rules! codes {
    ($($code:ident => $meaning:literal,)*) => {
        /// Every code, in table order.
        pub const ALL: [DebugExit; [$(DebugExit::$code),*].len()] = [$(DebugExit::$code),*];

        /// What `code` means, as a short phrase ("dom0 powered off").
        pub const fn meaning(code: DebugExit) -> &'static str {
            match code {
                $(DebugExit::$code => $meaning,)*
            }
        }
    };
}

codes! {
    Dom0Poweroff => "dom0 powered off",
    Dom0Reboot => "dom0 asked for a reboot",
    Dom0Suspend => "dom0 suspended",
    Dom0Crash => "dom0 crashed",
    Dom0Watchdog => "dom0's watchdog expired",
    Dom0SoftReset => "dom0 asked for a soft reset",
    CleanHalt => "hypervisor halted: nothing left to run",
    BootError => "hypervisor stopped on a boot error",
    Panic => "hypervisor panic",
}

/// The code with value `v`, if Oxen defines one.
pub fn from_value(v: u32) -> Option<DebugExit> {
    ALL.into_iter().find(|code| code.value() == v)
}

/// How one QEMU run ended.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Exit {
    /// The hypervisor wrote `v` to the `isa-debug-exit` device (QEMU exited with `2v + 1`).
    /// Compare with [`DebugExit::value`], or use [`Exit::debug`].
    Code(u32),
    /// QEMU exited by itself with this status, without a debug-exit write (0 or 1, or an even
    /// status): never a success.
    QemuStatus(i32),
    /// The harness killed QEMU after the boot's timeout.
    Timeout,
    /// QEMU was killed by this signal, not by the harness.
    Signal(i32),
    /// The harness saw this end-marker text on the serial console and stopped QEMU itself.
    /// Real Xen halts without ending QEMU: see [`crate::xen`] for its markers.
    EndMarker(String),
}

impl Exit {
    /// The exit for the debug-exit code `code`.
    pub const fn debug(code: DebugExit) -> Exit {
        Exit::Code(code.value())
    }

    /// Decodes QEMU's exit status (`None` = killed by a signal, as `ExitStatus::code` reports).
    pub fn from_status(status: Option<i32>, signal: Option<i32>) -> Exit {
        match (status, signal) {
            (Some(code), _) => Exit::from_code(code),
            (None, Some(signal)) => Exit::Signal(signal),
            // Neither a status nor a signal: report it as QEMU's own (impossible on Unix).
            (None, None) => Exit::QemuStatus(-1),
        }
    }

    /// Decodes a process exit code: odd codes of 3 and above are debug-exit writes.
    pub fn from_code(code: i32) -> Exit {
        if code >= 3 && code % 2 == 1 {
            // `code` is odd and positive: `v = (code - 1) / 2 = code / 2`.
            Exit::Code(code.unsigned_abs() / 2)
        } else {
            Exit::QemuStatus(code)
        }
    }

    /// Decodes a [`std::process::ExitStatus`].
    pub fn from_exit_status(status: ExitStatus) -> Exit {
        #[cfg(unix)]
        let signal = std::os::unix::process::ExitStatusExt::signal(&status);
        #[cfg(not(unix))]
        let signal = None;
        Exit::from_status(status.code(), signal)
    }

    /// The named debug-exit code, if the hypervisor wrote one Oxen defines.
    pub fn debug_exit(&self) -> Option<DebugExit> {
        match self {
            Exit::Code(v) => from_value(*v),
            _ => None,
        }
    }

    /// Whether this is a clean end of a run: dom0 powered off, or the hypervisor halted with
    /// nothing left to run. Everything else (including QEMU's own 0) is a failure.
    pub fn is_clean(&self) -> bool {
        matches!(
            self.debug_exit(),
            Some(DebugExit::Dom0Poweroff | DebugExit::CleanHalt)
        )
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(v) => match from_value(*v) {
                Some(code) => write!(f, "{} (exit code {v:#x})", meaning(code)),
                None => write!(f, "unknown exit code {v:#x}"),
            },
            Exit::QemuStatus(status) => write!(
                f,
                "QEMU ended by itself with status {status} (no exit code from the hypervisor)"
            ),
            Exit::Timeout => write!(f, "timed out: QEMU was killed"),
            Exit::Signal(signal) => write!(f, "QEMU was killed by signal {signal}"),
            Exit::EndMarker(marker) => write!(f, "stopped at the end marker {marker:?}"),
        }
    }
}

impl From<DebugExit> for Exit {
    fn from(code: DebugExit) -> Exit {
        Exit::debug(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_exit_statuses_decode_to_their_code() {
        for code in ALL {
            let status = i32::try_from(code.qemu_status()).expect("statuses are below 0x100");
            assert_eq!(Exit::from_code(status), Exit::debug(code));
            assert_eq!(Exit::from_code(status).debug_exit(), Some(code));
        }
        assert_eq!(DebugExit::Dom0Poweroff.qemu_status(), 33);
        assert_eq!(DebugExit::Panic.qemu_status(), 97);
    }

    #[test]
    fn qemu_own_statuses_are_not_verdicts() {
        assert_eq!(Exit::from_code(0), Exit::QemuStatus(0));
        // A write of 0 would also give 1: indistinguishable from QEMU's own failure.
        assert_eq!(Exit::from_code(1), Exit::QemuStatus(1));
        assert_eq!(Exit::from_code(2), Exit::QemuStatus(2));
        assert_eq!(Exit::from_code(3), Exit::Code(1));
        assert!(!Exit::from_code(0).is_clean());
        assert!(!Exit::from_code(1).is_clean());
    }

    #[test]
    fn signals_and_unknown_codes() {
        assert_eq!(Exit::from_status(None, Some(9)), Exit::Signal(9));
        assert_eq!(Exit::from_status(Some(0x2b), None), Exit::Code(0x15));
        assert_eq!(Exit::Code(0x7f).debug_exit(), None);
        assert_eq!(from_value(0x21), Some(DebugExit::BootError));
        assert_eq!(from_value(0x22), None);
    }

    #[test]
    fn clean_ends() {
        assert!(Exit::debug(DebugExit::Dom0Poweroff).is_clean());
        assert!(Exit::debug(DebugExit::CleanHalt).is_clean());
        assert!(!Exit::debug(DebugExit::BootError).is_clean());
        assert!(!Exit::Timeout.is_clean());
        assert!(!Exit::EndMarker("x".into()).is_clean());
    }

    #[test]
    fn messages() {
        assert_eq!(
            Exit::debug(DebugExit::Dom0Poweroff).to_string(),
            "dom0 powered off (exit code 0x10)"
        );
        assert_eq!(Exit::Code(0x7f).to_string(), "unknown exit code 0x7f");
    }

    #[cfg(unix)]
    #[test]
    fn decodes_real_exit_statuses() {
        use std::os::unix::process::ExitStatusExt;
        // Wait statuses: exit code in bits 8..16, signal number in the low bits.
        assert_eq!(
            Exit::from_exit_status(ExitStatus::from_raw(33 << 8)),
            Exit::Code(0x10)
        );
        assert_eq!(
            Exit::from_exit_status(ExitStatus::from_raw(9)),
            Exit::Signal(9)
        );
    }
}
