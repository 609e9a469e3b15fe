//! Running guests: the register frame, exception delivery (bounce frames), instruction
//! emulation, the CPUID policy and guest-memory access.

pub mod bounce;
pub mod cpuid;
pub mod deliver;
pub mod emulate;
pub mod frame;
pub mod ldt;
pub mod ptwr;
