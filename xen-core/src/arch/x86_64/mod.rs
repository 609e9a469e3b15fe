//! x86-64: boot, descriptor tables, traps, paging, the local APIC, the TSC, the serial console.

pub mod apic;
mod boot;
pub mod console;
pub mod context;
pub mod cpu;
mod gdt;
pub mod guest;
mod idt;
pub mod mm;
pub mod panic;
pub mod percpu;
pub mod power;
pub mod rtc;
mod serial;
pub mod testfault;
pub mod time;
mod trap;

pub use trap::{TrapFrame, failed_iret_context};

/// Shows a vCPU's GDT frames in this CPU's GDT.
pub fn gdt_load_guest_frames(frames: &[crate::types::Mfn]) -> Result<(), mm::MapError> {
    gdt::load_guest_frames(frames)
}

pub use gdt::{ldt_area, load_ldt, map_ldt_page};

/// Moves this CPU's GDT to its remappable area (after memory setup).
pub fn gdt_init_area() -> Result<(), mm::MapError> {
    gdt::init_area()
}

/// Waits for an interrupt with interrupts enabled, then disables them again.
pub fn idle_wait() {
    x86_64::instructions::interrupts::enable_and_hlt();
    x86_64::instructions::interrupts::disable();
}

/// What the boot assembly hands to Rust.
#[derive(Debug, Clone, Copy)]
pub struct Handoff {
    /// `eax` at entry: the loader's magic value.
    pub magic: u32,
    /// `ebx` at entry: physical address of the loader's information.
    pub info: u32,
    /// TSC value at the first instruction.
    pub entry_tsc: u64,
}

/// Called by the boot assembly on the boot stack, paging on, interrupts off.
extern "C" fn oxen_entry(magic: u32, info: u32, entry_tsc: u64) -> ! {
    crate::setup::start(Handoff {
        magic,
        info,
        entry_tsc,
    })
}

/// First CPU setup, before anything else: per-CPU data through GS, the GDT with Xen's
/// reserved selectors, the TSS with IST stacks, the IDT.
pub fn early_init() {
    percpu::init_boot_cpu();
    gdt::init_boot_cpu();
    idt::init();
}
