//! Memory management: the machine memory map and the frame allocator (portable, host-tested).

pub mod audit;
pub mod frame_alloc;
pub mod frame_table;
pub mod memmap;
pub mod pagetable;
