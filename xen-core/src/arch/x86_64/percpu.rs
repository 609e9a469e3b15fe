//! Per-CPU data, reachable through the GS base from the first Rust instruction on.
//!
//! While the hypervisor runs, `IA32_GS_BASE` points at this CPU's [`PerCpu`]; its first word
//! points at itself, so `mov %gs:0, reg` yields the structure's address. Entry code will
//! `swapgs` to reach it from guest context.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Offset of [`PerCpu::scratch_rsp`], used by assembly entry paths.
pub const PERCPU_SCRATCH_RSP: usize = 16;
/// Offset of [`PerCpu::stack_top`], used by assembly entry paths.
pub const PERCPU_STACK_TOP: usize = 24;

/// One CPU's private data.
#[repr(C, align(64))]
#[derive(Debug)]
pub struct PerCpu {
    /// The structure's own address (`%gs:0`).
    self_ptr: AtomicU64,
    /// Logical CPU number.
    pub cpu_id: AtomicU32,
    /// Local APIC id.
    pub apic_id: AtomicU32,
    /// Scratch slot for a stack pointer during entry (`%gs:16`).
    pub scratch_rsp: AtomicU64,
    /// Top of this CPU's hypervisor stack (`%gs:24`).
    pub stack_top: AtomicU64,
    /// Local APIC timer interrupts taken.
    pub timer_ticks: AtomicU64,
    /// Nesting depth of fatal-error handling, to stop recursion.
    pub fatal_depth: AtomicU32,
}

const _: () = {
    assert!(core::mem::offset_of!(PerCpu, scratch_rsp) == PERCPU_SCRATCH_RSP);
    assert!(core::mem::offset_of!(PerCpu, stack_top) == PERCPU_STACK_TOP);
};

static BOOT_CPU: PerCpu = PerCpu {
    self_ptr: AtomicU64::new(0),
    cpu_id: AtomicU32::new(0),
    apic_id: AtomicU32::new(0),
    scratch_rsp: AtomicU64::new(0),
    stack_top: AtomicU64::new(0),
    timer_ticks: AtomicU64::new(0),
    fatal_depth: AtomicU32::new(0),
};

unsafe extern "C" {
    /// Top of the boot CPU's stack (defined by the boot assembly).
    static oxen_boot_stack_top: u8;
    /// Bottom of the boot CPU's stack; its first page is the guard page.
    static oxen_boot_stack_bottom: u8;
}

/// The boot stack's bounds `[bottom, top)`.
pub fn boot_stack() -> (u64, u64) {
    (
        &raw const oxen_boot_stack_bottom as u64,
        &raw const oxen_boot_stack_top as u64,
    )
}

/// Points GS at the boot CPU's data.
pub fn init_boot_cpu() {
    let addr = &raw const BOOT_CPU as u64;
    BOOT_CPU.self_ptr.store(addr, Ordering::Relaxed);
    BOOT_CPU.stack_top.store(boot_stack().1, Ordering::Relaxed);
    // SAFETY: GS_BASE exists on every x86-64 CPU, and pointing it at a static that lives for
    // the whole run is what every `current()` relies on.
    unsafe { super::cpu::wrmsr(super::cpu::msr::IA32_GS_BASE, addr) };
}

/// This CPU's data. Valid once [`init_boot_cpu`] has run, which is the first thing Rust does.
pub fn current() -> &'static PerCpu {
    let p: u64;
    // SAFETY: reads `%gs:0`, which `init_boot_cpu` (run first at boot) made the address of a
    // static `PerCpu`; the read has no side effects.
    unsafe {
        core::arch::asm!("mov %gs:0, {}", out(reg) p, options(att_syntax, nostack, readonly, preserves_flags));
    }
    // SAFETY: `%gs:0` is the address of a `'static PerCpu` (see above).
    unsafe { &*(p as *const PerCpu) }
}
