//! Boot-time input: the multiboot information the loader hands over, and the hypervisor
//! command line. Portable and host-tested; the architecture layer supplies the memory reader.

pub mod cmdline;
pub mod multiboot;
