//! `sched_op` (hypercall 29) commands, argument structs and shutdown reasons (reference §12.1).
//!
//! The old `sched_op_compat` (hypercall 6) takes the same commands 0–2 with the value itself
//! (e.g. the shutdown reason) as the argument instead of a pointer.

use crate::types::{DomidT, GuestHandle};

/// `SCHEDOP_yield`: give up the CPU.
pub const SCHEDOP_YIELD: u32 = 0;
/// `SCHEDOP_block`: enable events and block until one is pending.
pub const SCHEDOP_BLOCK: u32 = 1;
/// `SCHEDOP_shutdown`: shut the domain down (`sched_shutdown`).
pub const SCHEDOP_SHUTDOWN: u32 = 2;
/// `SCHEDOP_poll`: block until a listed port is pending or timeout (`sched_poll`).
pub const SCHEDOP_POLL: u32 = 3;
/// `SCHEDOP_remote_shutdown`: privileged shutdown of another domain (`sched_remote_shutdown`).
pub const SCHEDOP_REMOTE_SHUTDOWN: u32 = 4;
/// `SCHEDOP_shutdown_code`: record the reason for a later shutdown (`sched_shutdown`).
pub const SCHEDOP_SHUTDOWN_CODE: u32 = 5;
/// `SCHEDOP_watchdog`: create, pet or destroy a watchdog (`sched_watchdog`).
pub const SCHEDOP_WATCHDOG: u32 = 6;
/// `SCHEDOP_pin_override`: privileged pinning override (`sched_pin_override`).
pub const SCHEDOP_PIN_OVERRIDE: u32 = 7;

code_enum! {
    /// `sched_op` commands.
    pub enum SchedCmd: u32 ["sched_op command"] {
        /// Yield.
        Yield = SCHEDOP_YIELD => "SCHEDOP_yield",
        /// Block.
        Block = SCHEDOP_BLOCK => "SCHEDOP_block",
        /// Shutdown.
        Shutdown = SCHEDOP_SHUTDOWN => "SCHEDOP_shutdown",
        /// Poll ports.
        Poll = SCHEDOP_POLL => "SCHEDOP_poll",
        /// Remote shutdown.
        RemoteShutdown = SCHEDOP_REMOTE_SHUTDOWN => "SCHEDOP_remote_shutdown",
        /// Record shutdown code.
        ShutdownCode = SCHEDOP_SHUTDOWN_CODE => "SCHEDOP_shutdown_code",
        /// Watchdog.
        Watchdog = SCHEDOP_WATCHDOG => "SCHEDOP_watchdog",
        /// Pin override.
        PinOverride = SCHEDOP_PIN_OVERRIDE => "SCHEDOP_pin_override",
    }
    try_from: [u64];
}

/// `SHUTDOWN_poweroff`: halt and destroy.
pub const SHUTDOWN_POWEROFF: u32 = 0;
/// `SHUTDOWN_reboot`: restart.
pub const SHUTDOWN_REBOOT: u32 = 1;
/// `SHUTDOWN_suspend`: save state (returns on resume).
pub const SHUTDOWN_SUSPEND: u32 = 2;
/// `SHUTDOWN_crash`: the guest crashed.
pub const SHUTDOWN_CRASH: u32 = 3;
/// `SHUTDOWN_watchdog`: a watchdog expired.
pub const SHUTDOWN_WATCHDOG: u32 = 4;
/// `SHUTDOWN_soft_reset`: soft reset.
pub const SHUTDOWN_SOFT_RESET: u32 = 5;
/// `SHUTDOWN_MAX`: largest valid reason.
pub const SHUTDOWN_MAX: u32 = 5;

code_enum! {
    /// Shutdown reasons.
    pub enum ShutdownReason: u32 ["shutdown reason"] {
        /// Power off.
        Poweroff = SHUTDOWN_POWEROFF => "SHUTDOWN_poweroff",
        /// Reboot.
        Reboot = SHUTDOWN_REBOOT => "SHUTDOWN_reboot",
        /// Suspend.
        Suspend = SHUTDOWN_SUSPEND => "SHUTDOWN_suspend",
        /// Crash.
        Crash = SHUTDOWN_CRASH => "SHUTDOWN_crash",
        /// Watchdog.
        Watchdog = SHUTDOWN_WATCHDOG => "SHUTDOWN_watchdog",
        /// Soft reset.
        SoftReset = SHUTDOWN_SOFT_RESET => "SHUTDOWN_soft_reset",
    }
    try_from: [u64];
}

/// `sched_shutdown` (4 bytes): argument of `SCHEDOP_shutdown` / `SCHEDOP_shutdown_code`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedShutdown {
    /// `SHUTDOWN_*`.
    pub reason: u32,
}

assert_layout!(SchedShutdown, size = 4, align = 4, { reason: u32 = 0 });

/// Largest `nr_ports` accepted by `SCHEDOP_poll` (more → `-EINVAL`).
pub const SCHEDOP_POLL_MAX_PORTS: u32 = 128;

/// `sched_poll` (24 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedPoll {
    /// Guest handle of an `evtchn_port_t[]`.
    pub ports: GuestHandle,
    /// Number of ports (≤ 128).
    pub nr_ports: u32,
    /// Padding; zero.
    pub _pad0: u32,
    /// Absolute system-time timeout in ns; 0 = none.
    pub timeout: u64,
}

assert_layout!(SchedPoll, size = 24, align = 8, {
    ports: u64 = 0,
    nr_ports: u32 = 8,
    _pad0: u32 = 12,
    timeout: u64 = 16,
});

/// `sched_remote_shutdown` (8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedRemoteShutdown {
    /// Domain to shut down.
    pub domain_id: DomidT,
    /// Padding; zero.
    pub _pad0: u16,
    /// `SHUTDOWN_*`.
    pub reason: u32,
}

assert_layout!(SchedRemoteShutdown, size = 8, align = 4, {
    domain_id: u16 = 0,
    _pad0: u16 = 2,
    reason: u32 = 4,
});

/// `sched_watchdog` (8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedWatchdog {
    /// 0 creates a watchdog (returns its id); otherwise the watchdog to pet or destroy.
    pub id: u32,
    /// Seconds; 0 destroys.
    pub timeout: u32,
}

assert_layout!(SchedWatchdog, size = 8, align = 4, {
    id: u32 = 0,
    timeout: u32 = 4,
});

/// `sched_pin_override` (4 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedPinOverride {
    /// Physical CPU, or negative to end the override.
    pub pcpu: i32,
}

assert_layout!(SchedPinOverride, size = 4, align = 4, { pcpu: i32 = 0 });

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(SchedCmd::try_from(1u64), Ok(SchedCmd::Block));
        assert!(SchedCmd::try_from(8u32).is_err());
        assert_eq!(ShutdownReason::try_from(3u32), Ok(ShutdownReason::Crash));
        assert!(ShutdownReason::try_from(SHUTDOWN_MAX + 1).is_err());
        assert_eq!(
            ShutdownReason::ALL.last().map(|r| r.raw()),
            Some(SHUTDOWN_MAX)
        );
    }
}
