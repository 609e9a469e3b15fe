//! The architecture layer: everything that touches the CPU, memory-management hardware and
//! devices directly. It is the only part of the hypervisor with `unsafe` code and assembly;
//! the rest calls the safe interface it exports.
//!
//! [`pod`] (byte views of ABI structures) is compiled everywhere, so portable code that uses
//! it is still host-testable; the hardware layer exists only on bare metal.
#![allow(
    unsafe_code,
    reason = "the architecture layer is where Oxen's unsafe code lives"
)]

pub mod pod;

#[cfg(target_os = "none")]
mod x86_64;

#[cfg(target_os = "none")]
pub use self::x86_64::*;
