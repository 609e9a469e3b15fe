#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

// The bare-metal parts (entry, hypercalls, traps, CPU instructions, memory) exist only when the
// kit is built for the guest target; everything else is plain Rust, unit-tested on the host.
#[cfg(target_os = "none")]
#[allow(
    unsafe_code,
    reason = "the architecture layer is where the kit's assembly and unsafe code live"
)]
pub mod arch;
#[cfg(target_os = "none")]
pub mod console;
#[cfg(target_os = "none")]
#[allow(
    unsafe_code,
    reason = "hypercalls pass guest memory to the hypervisor and run assembly"
)]
pub mod hypercall;
#[cfg(target_os = "none")]
pub mod logger;
#[cfg(target_os = "none")]
mod panic;
#[cfg(target_os = "none")]
pub mod traps;
// The event-channel, time and secondary-vCPU layers (bare metal; no unsafe of their own).
#[cfg(target_os = "none")]
pub mod events;
#[cfg(target_os = "none")]
pub mod time;
#[cfg(target_os = "none")]
pub mod vcpus;

pub mod boot;
pub mod errno;
pub mod evtchn_2l;
pub mod frame;
pub mod layout;
pub mod mm;
pub mod pvclock;
pub mod text;
pub mod user;
pub mod vcpu_context;

pub use boot::StartInfo;
pub use errno::{Errno, HypercallResult};
/// The ABI crate the kit is built on, re-exported so guests use the same numbers and layouts.
pub use hypercall_abi as abi;

#[cfg(target_os = "none")]
pub use arch::shutdown;

/// The version of the kit, as `GUEST_VERSION`-style text.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
