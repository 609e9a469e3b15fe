//! CPU identification, model-specific registers and control registers.

use crate::cpuinfo::{CpuInfo, CpuidResult};

/// Model-specific register numbers used by the hypervisor.
pub mod msr {
    /// Local APIC base and enable.
    pub const IA32_APIC_BASE: u32 = 0x1b;
    /// Extended features (LME, NXE, SCE).
    pub const IA32_EFER: u32 = 0xc000_0080;
    /// FS base.
    pub const IA32_FS_BASE: u32 = 0xc000_0100;
    /// GS base (active).
    pub const IA32_GS_BASE: u32 = 0xc000_0101;
    /// GS base swapped in by `swapgs`.
    pub const IA32_KERNEL_GS_BASE: u32 = 0xc000_0102;
    /// Page attribute table.
    pub const IA32_PAT: u32 = 0x277;
}

/// Executes `cpuid`.
pub fn cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    CpuidResult {
        eax: r.eax,
        ebx: r.ebx,
        ecx: r.ecx,
        edx: r.edx,
    }
}

/// Identifies the CPU we run on.
pub fn identify() -> CpuInfo {
    CpuInfo::decode(cpuid)
}

/// Reads an MSR.
///
/// # Safety
/// `index` must name an MSR this CPU implements (reading others faults).
pub unsafe fn rdmsr(index: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the caller guarantees the MSR exists; rdmsr has no memory effects.
    unsafe {
        core::arch::asm!("rdmsr", in("ecx") index, out("eax") lo, out("edx") hi,
            options(nomem, nostack, preserves_flags));
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Writes an MSR.
///
/// # Safety
/// `index` must name a writable MSR, and `value` must not break the hypervisor's invariants
/// (paging, segmentation, interrupts).
#[expect(
    clippy::cast_possible_truncation,
    reason = "wrmsr takes the value as two halves"
)]
pub unsafe fn wrmsr(index: u32, value: u64) {
    // SAFETY: the caller guarantees the MSR and value are valid and harmless.
    unsafe {
        core::arch::asm!("wrmsr", in("ecx") index, in("eax") value as u32,
            in("edx") (value >> 32) as u32, options(nostack, preserves_flags));
    }
}

/// Reads the time-stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc only reads the counter (CR4.TSD is clear in ring 0 anyway).
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Reads CR2, the address of the last page fault.
pub fn read_cr2() -> u64 {
    x86_64::registers::control::Cr2::read_raw()
}

/// Reads CR3.
pub fn read_cr3() -> u64 {
    let (frame, flags) = x86_64::registers::control::Cr3::read_raw();
    frame.start_address().as_u64() | u64::from(flags)
}

/// Reads CR0.
pub fn read_cr0() -> u64 {
    x86_64::registers::control::Cr0::read_raw()
}

/// Reads CR4.
pub fn read_cr4() -> u64 {
    x86_64::registers::control::Cr4::read_raw()
}

/// Spins for `cycles` TSC ticks.
pub fn spin_tsc(cycles: u64) {
    let start = rdtsc();
    while rdtsc().wrapping_sub(start) < cycles {
        core::hint::spin_loop();
    }
}
