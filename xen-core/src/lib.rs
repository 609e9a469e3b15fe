//! Oxen's hypervisor core.
//!
//! The crate is two things at once:
//! - on bare metal (`target_os = "none"`), the hypervisor: the architecture layer in
//!   [`arch`] (the only module allowed to touch hardware, raw memory and assembly; its `pod`
//!   part is compiled everywhere)
//!   and the boot sequence in `setup`;
//! - everywhere, the portable logic the hypervisor is made of (boot-information parsing, the
//!   command line, memory maps, the frame allocator, ...), which is plain Rust and is
//!   unit-tested on the host with `cargo test -p xen-core --lib`.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    test,
    allow(
        clippy::cast_possible_truncation,
        reason = "test fixtures build small values"
    )
)]

extern crate alloc;

pub mod boot;
pub mod console;
pub mod cpuinfo;
pub mod domain;
pub mod event;
pub mod exit;
pub mod guest;
pub mod hypercall;
pub mod layout;
pub mod mm;
pub mod sched;
pub mod system;
pub mod time;
pub mod types;

pub mod arch;

#[cfg(target_os = "none")]
mod runtime;
#[cfg(target_os = "none")]
mod setup;

/// Oxen's version string, shown in the banner.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
