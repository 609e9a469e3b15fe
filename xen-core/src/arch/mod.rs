//! The architecture layer: everything that touches the CPU, memory-management hardware and
//! devices directly. It is the only part of the hypervisor with `unsafe` code and assembly;
//! the rest calls the safe interface it exports.

mod x86_64;

pub use self::x86_64::*;
