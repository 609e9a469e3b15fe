//! Memory management: the machine memory map and the frame allocator (portable, host-tested).

pub mod frame_alloc;
pub mod memmap;
