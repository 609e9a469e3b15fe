//! CPU instructions a PV guest uses, with what Xen does about each (reference §8.9).

use core::arch::asm;

/// The four registers a `cpuid` leaf returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[expect(missing_docs, reason = "one field per register")]
pub struct Cpuid {
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
}

/// `rdtsc`: the time-stamp counter (not intercepted for PV guests in Xen's default TSC mode).
#[inline]
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: rdtsc only reads the TSC.
    unsafe { asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    u64::from(hi) << 32 | u64::from(lo)
}

/// `rdtscp`: the time-stamp counter after all earlier instructions completed, and `TSC_AUX`.
/// Raises #UD where the CPU (or the domain's CPUID policy) lacks it.
#[inline]
pub fn rdtscp() -> (u64, u32) {
    let (lo, hi, aux): (u32, u32, u32);
    // SAFETY: rdtscp only reads the TSC and TSC_AUX.
    unsafe {
        asm!("rdtscp", out("eax") lo, out("edx") hi, out("ecx") aux, options(nomem, nostack));
    }
    (u64::from(hi) << 32 | u64::from(lo), aux)
}

/// `lfence`: orders `rdtsc` after earlier instructions.
#[inline]
pub fn lfence() {
    // SAFETY: a fence has no other effect.
    unsafe { asm!("lfence", options(nostack, preserves_flags)) };
}

/// A [`Cpuid`] of `leaf` and `subleaf` by the instruction `$insn` (assembler text): `cpuid`
/// itself or Xen's emulated form of it.
macro_rules! cpuid_by {
    ($insn:literal, $leaf:expr, $subleaf:expr) => {{
        let (eax, ebx, ecx, edx): (u32, u32, u32, u32);
        // SAFETY: `$insn` is a cpuid, native or emulated, which only reads CPU information.
        // rbx is reserved by LLVM, so it is saved in another register around the instruction.
        unsafe {
            asm!(
                "mov {saved:r}, rbx",
                $insn,
                "xchg {saved:r}, rbx",
                saved = out(reg) ebx,
                inout("eax") $leaf => eax,
                inout("ecx") $subleaf => ecx,
                out("edx") edx,
                options(nomem, nostack, preserves_flags),
            );
        }
        Cpuid { eax, ebx, ecx, edx }
    }};
}

/// Native `cpuid`. On a PV guest this returns host values filtered only as far as the CPU's
/// CPUID faulting allows; use [`xen_cpuid`] for the domain's policy.
pub fn cpuid(leaf: u32, subleaf: u32) -> Cpuid {
    cpuid_by!("cpuid", leaf, subleaf)
}

/// `cpuid` through Xen's forced-emulation prefix (`ud2; .ascii "xen"; cpuid`): the hypervisor
/// emulates it with the domain's CPUID policy, including the Xen leaves at `0x40000000`.
/// Raises #UD on a hypervisor that does not recognise the prefix.
pub fn xen_cpuid(leaf: u32, subleaf: u32) -> Cpuid {
    // The bytes are hypercall_abi::cpuid::XEN_FORCED_CPUID (checked below).
    cpuid_by!(
        ".byte 0x0f, 0x0b, 0x78, 0x65, 0x6e, 0x0f, 0xa2",
        leaf,
        subleaf
    )
}

const _: () = assert!(matches!(
    hypercall_abi::cpuid::XEN_FORCED_CPUID,
    [0x0f, 0x0b, 0x78, 0x65, 0x6e, 0x0f, 0xa2]
));

/// `mov %cr0, reg`: emulated by Xen (the virtual CR0, TS included).
pub fn read_cr0() -> u64 {
    let value: u64;
    // SAFETY: reading a control register has no side effect (Xen emulates it).
    unsafe { asm!("mov {}, cr0", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

/// `mov %cr2, reg`: emulated by Xen (the virtual CR2: the last #PF address delivered).
pub fn read_cr2() -> u64 {
    let value: u64;
    // SAFETY: as `read_cr0`.
    unsafe { asm!("mov {}, cr2", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

/// `mov %cr3, reg`: emulated by Xen: the current L4 as a machine address (`MFN << 12`).
pub fn read_cr3() -> u64 {
    let value: u64;
    // SAFETY: as `read_cr0`.
    unsafe { asm!("mov {}, cr3", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

/// `mov %cr4, reg`: emulated by Xen (the guest's virtual CR4).
pub fn read_cr4() -> u64 {
    let value: u64;
    // SAFETY: as `read_cr0`.
    unsafe { asm!("mov {}, cr4", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

/// `rdmsr`: emulated by Xen for the MSRs its policy knows; others raise #GP.
///
/// # Safety
/// Reading some MSRs has side effects; the caller must know `msr` is harmless to read (and
/// have a #GP handler if it may be refused).
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: forwarded to the caller.
    unsafe { asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    u64::from(hi) << 32 | u64::from(lo)
}

/// `wrmsr`: emulated by Xen for the MSRs its policy lets the guest write (FS/GS bases, ...).
///
/// # Safety
/// Writing an MSR changes CPU state the caller must own (e.g. a segment base nothing else
/// uses).
pub unsafe fn wrmsr(msr: u32, value: u64) {
    let (lo, hi) = ((value & 0xffff_ffff) as u32, (value >> 32) as u32);
    // SAFETY: forwarded to the caller.
    unsafe { asm!("wrmsr", in("ecx") msr, in("eax") lo, in("edx") hi, options(nomem, nostack)) };
}

/// `inb`: emulated by Xen when the virtual IOPL allows it (else #GP).
///
/// # Safety
/// Reading a port can have device side effects.
pub unsafe fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: forwarded to the caller.
    unsafe { asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack)) };
    value
}

/// `outb`: emulated by Xen when the virtual IOPL allows it (else #GP).
///
/// # Safety
/// Writing a port drives a device.
pub unsafe fn outb(port: u16, value: u8) {
    // SAFETY: forwarded to the caller.
    unsafe { asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack)) };
}

/// The current RFLAGS.
pub fn rflags() -> u64 {
    let value: u64;
    // SAFETY: pushf/pop only read the flags, on the stack.
    unsafe { asm!("pushfq", "pop {}", out(reg) value, options(nomem, preserves_flags)) };
    value
}

/// `pause`, for spin loops.
#[inline]
pub fn pause() {
    // SAFETY: a hint with no effect on state.
    unsafe { asm!("pause", options(nomem, nostack, preserves_flags)) };
}
