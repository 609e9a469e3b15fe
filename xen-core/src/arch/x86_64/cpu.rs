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

core::arch::global_asm!(
    r#"
    .section .text.oxen_msr_safe, "ax"
    /* u64 oxen_rdmsr_safe(u32 index, u64 *out): 0 ok, 1 if rdmsr faulted. */
    .global oxen_rdmsr_safe
oxen_rdmsr_safe:
    movl %edi, %ecx
    .global oxen_rdmsr_safe_insn
oxen_rdmsr_safe_insn:
    rdmsr
    shlq $32, %rdx
    movl %eax, %eax
    orq %rdx, %rax
    movq %rax, (%rsi)
    xorl %eax, %eax
    ret
    /* u64 oxen_wrmsr_safe(u32 index, u64 value): 0 ok, 1 if wrmsr faulted. */
    .global oxen_wrmsr_safe
oxen_wrmsr_safe:
    movl %edi, %ecx
    movl %esi, %eax
    movq %rsi, %rdx
    shrq $32, %rdx
    .global oxen_wrmsr_safe_insn
oxen_wrmsr_safe_insn:
    wrmsr
    xorl %eax, %eax
    ret
    .global oxen_msr_safe_fixup
oxen_msr_safe_fixup:
    movl $1, %eax
    ret
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    fn oxen_rdmsr_safe(index: u32, out: *mut u64) -> u64;
    fn oxen_wrmsr_safe(index: u32, value: u64) -> u64;
    static oxen_rdmsr_safe_insn: u8;
    static oxen_wrmsr_safe_insn: u8;
    static oxen_msr_safe_fixup: u8;
}

/// If `rip` is a probing MSR access that faulted, where to continue instead.
pub fn msr_fixup(rip: u64) -> Option<u64> {
    (rip == &raw const oxen_rdmsr_safe_insn as u64 || rip == &raw const oxen_wrmsr_safe_insn as u64)
        .then_some(&raw const oxen_msr_safe_fixup as u64)
}

/// Reads an MSR that may not exist: `None` if the read faults.
pub fn rdmsr_safe(index: u32) -> Option<u64> {
    let mut v = 0u64;
    // SAFETY: a faulting rdmsr is caught by the #GP handler (`msr_fixup`), which resumes at
    // the fixup returning 1; otherwise the value is stored into `v`, a live local.
    let r = unsafe { oxen_rdmsr_safe(index, &raw mut v) };
    (r == 0).then_some(v)
}

/// Writes an MSR that may not exist or may refuse the value: `false` if the write faults.
///
/// # Safety
/// If the write succeeds it takes effect: `index` and `value` must not break the hypervisor.
pub unsafe fn wrmsr_safe(index: u32, value: u64) -> bool {
    // SAFETY: as for `rdmsr_safe`; the caller vouches for the effect of a successful write.
    unsafe { oxen_wrmsr_safe(index, value) == 0 }
}

/// Turns on CPUID faulting (so a guest's native `cpuid` traps and gets the hypervisor's
/// policy), with Intel's or AMD's mechanism; returns which one, if any.
pub fn enable_cpuid_faulting() -> Option<&'static str> {
    const MSR_PLATFORM_INFO: u32 = 0xce;
    const MSR_MISC_FEATURES_ENABLES: u32 = 0x140;
    const MSR_AMD_HWCR: u32 = 0xc001_0015;
    if rdmsr_safe(MSR_PLATFORM_INFO).is_some_and(|v| v & (1 << 31) != 0) {
        let cur = rdmsr_safe(MSR_MISC_FEATURES_ENABLES).unwrap_or(0);
        // SAFETY: CPUID faulting only affects `cpuid` executed at CPL > 0 (guests).
        if unsafe { wrmsr_safe(MSR_MISC_FEATURES_ENABLES, cur | 1) } {
            return Some("Intel CPUID faulting");
        }
    }
    let e = cpuid(0x8000_0000, 0).eax;
    if e >= 0x8000_0021 && cpuid(0x8000_0021, 0).eax & (1 << 17) != 0
        && let Some(hwcr) = rdmsr_safe(MSR_AMD_HWCR)
        // SAFETY: HWCR.CpuidUserDis only makes CPL > 0 `cpuid` fault.
        && unsafe { wrmsr_safe(MSR_AMD_HWCR, hwcr | (1 << 35)) }
    {
        return Some("AMD CpuidUserDis");
    }
    None
}
