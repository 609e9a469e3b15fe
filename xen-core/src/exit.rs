//! How the hypervisor ends a run: the codes it writes to QEMU's `isa-debug-exit` device.
//!
//! QEMU exits with status `2 * code + 1`. Zero is never used (QEMU's own status 1 would look
//! the same), so a test can tell a verdict from a QEMU that ended by itself. The table is
//! documented in `docs/architecture.md`; the test harness decodes the same values.

use hypercall_abi::sched::ShutdownReason;

/// Why the hypervisor stopped, as written to the debug-exit device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    /// dom0 shut down with `SHUTDOWN_poweroff`.
    Dom0Poweroff = 0x10,
    /// dom0 shut down with `SHUTDOWN_reboot`.
    Dom0Reboot = 0x11,
    /// dom0 shut down with `SHUTDOWN_suspend`.
    Dom0Suspend = 0x12,
    /// dom0 shut down with `SHUTDOWN_crash`, or was crashed by the hypervisor.
    Dom0Crash = 0x13,
    /// dom0's watchdog expired.
    Dom0Watchdog = 0x14,
    /// dom0 asked for a soft reset.
    Dom0SoftReset = 0x15,
    /// The hypervisor had nothing left to run and halted cleanly.
    CleanHalt = 0x20,
    /// The hypervisor stopped during boot (no dom0 module, dom0 image refused, ...).
    BootError = 0x21,
    /// The hypervisor panicked or took a fatal exception.
    Panic = 0x30,
}

impl ExitCode {
    /// The exit code for dom0 shutting down with `reason`.
    pub const fn for_dom0_shutdown(reason: ShutdownReason) -> ExitCode {
        match reason {
            ShutdownReason::Poweroff => ExitCode::Dom0Poweroff,
            ShutdownReason::Reboot => ExitCode::Dom0Reboot,
            ShutdownReason::Suspend => ExitCode::Dom0Suspend,
            ShutdownReason::Crash => ExitCode::Dom0Crash,
            ShutdownReason::Watchdog => ExitCode::Dom0Watchdog,
            ShutdownReason::SoftReset => ExitCode::Dom0SoftReset,
        }
    }

    /// The exit code for dom0 shutting down with the raw code `code`: a reason Xen does not
    /// name halts the machine the way a crash does (Xen's `hwdom_shutdown` default case).
    pub fn for_dom0_shutdown_code(code: u8) -> ExitCode {
        match ShutdownReason::try_from(u32::from(code)) {
            Ok(r) => ExitCode::for_dom0_shutdown(r),
            Err(_) => ExitCode::Dom0Crash,
        }
    }

    /// The value written to the device.
    pub const fn value(self) -> u32 {
        self as u32
    }

    /// QEMU's process exit status for this code.
    pub const fn qemu_status(self) -> u32 {
        self.value() * 2 + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_distinct_and_never_qemu_defaults() {
        let all = [
            ExitCode::Dom0Poweroff,
            ExitCode::Dom0Reboot,
            ExitCode::Dom0Suspend,
            ExitCode::Dom0Crash,
            ExitCode::Dom0Watchdog,
            ExitCode::Dom0SoftReset,
            ExitCode::CleanHalt,
            ExitCode::BootError,
            ExitCode::Panic,
        ];
        for (i, a) in all.iter().enumerate() {
            assert!(a.qemu_status() > 1);
            for b in &all[i + 1..] {
                assert_ne!(a.qemu_status(), b.qemu_status());
            }
        }
        assert_eq!(ExitCode::Dom0Poweroff.qemu_status(), 33);
        assert_eq!(
            ExitCode::for_dom0_shutdown(ShutdownReason::Crash),
            ExitCode::Dom0Crash
        );
    }

    #[test]
    fn raw_shutdown_codes() {
        assert_eq!(ExitCode::for_dom0_shutdown_code(0), ExitCode::Dom0Poweroff);
        assert_eq!(ExitCode::for_dom0_shutdown_code(3), ExitCode::Dom0Crash);
        assert_eq!(ExitCode::for_dom0_shutdown_code(5), ExitCode::Dom0SoftReset);
        // Codes Xen does not name halt like a crash.
        assert_eq!(ExitCode::for_dom0_shutdown_code(6), ExitCode::Dom0Crash);
        assert_eq!(ExitCode::for_dom0_shutdown_code(255), ExitCode::Dom0Crash);
    }
}
