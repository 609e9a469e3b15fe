//! The parts of a vCPU's state that live in the CPU and change hands on a context switch:
//! the x87/SSE state (FXSAVE image) and the data segment selectors.
//!
//! Loading a guest's selector can fault (a descriptor that changed under it, an LDT page that
//! cannot be mapped): each load instruction has a fixup that loads the null selector instead
//! and reports the failure, so the runtime can deliver the guest's failsafe callback, as Xen
//! does.

use crate::domain::vcpu::FxArea;
use core::arch::global_asm;

global_asm!(
    r#"
    .section .text.oxen_context, "ax"

    /* Each takes the selector in %edi and returns 0, or 1 if loading it faulted (the
       #GP/#NP/#PF handler then resumes at the matching fixup, which loads null). */
    .global oxen_load_ds
oxen_load_ds:
    .global oxen_load_ds_insn
oxen_load_ds_insn:
    movw %di, %ds
    xorl %eax, %eax
    ret
    .global oxen_load_ds_fixup
oxen_load_ds_fixup:
    xorl %eax, %eax
    movw %ax, %ds
    movl $1, %eax
    ret

    .global oxen_load_es
oxen_load_es:
    .global oxen_load_es_insn
oxen_load_es_insn:
    movw %di, %es
    xorl %eax, %eax
    ret
    .global oxen_load_es_fixup
oxen_load_es_fixup:
    xorl %eax, %eax
    movw %ax, %es
    movl $1, %eax
    ret

    .global oxen_load_fs
oxen_load_fs:
    .global oxen_load_fs_insn
oxen_load_fs_insn:
    movw %di, %fs
    xorl %eax, %eax
    ret
    .global oxen_load_fs_fixup
oxen_load_fs_fixup:
    xorl %eax, %eax
    movw %ax, %fs
    movl $1, %eax
    ret

    .global oxen_load_gs
oxen_load_gs:
    .global oxen_load_gs_insn
oxen_load_gs_insn:
    movw %di, %gs
    xorl %eax, %eax
    ret
    .global oxen_load_gs_fixup
oxen_load_gs_fixup:
    xorl %eax, %eax
    movw %ax, %gs
    movl $1, %eax
    ret
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    fn oxen_load_ds(sel: u32) -> u32;
    fn oxen_load_es(sel: u32) -> u32;
    fn oxen_load_fs(sel: u32) -> u32;
    fn oxen_load_gs(sel: u32) -> u32;
    static oxen_load_ds_insn: u8;
    static oxen_load_es_insn: u8;
    static oxen_load_fs_insn: u8;
    static oxen_load_gs_insn: u8;
    static oxen_load_ds_fixup: u8;
    static oxen_load_es_fixup: u8;
    static oxen_load_fs_fixup: u8;
    static oxen_load_gs_fixup: u8;
}

/// If `rip` is a selector load that faulted, where to continue instead.
pub fn selector_fixup(rip: u64) -> Option<u64> {
    let table = [
        (&raw const oxen_load_ds_insn, &raw const oxen_load_ds_fixup),
        (&raw const oxen_load_es_insn, &raw const oxen_load_es_fixup),
        (&raw const oxen_load_fs_insn, &raw const oxen_load_fs_fixup),
        (&raw const oxen_load_gs_insn, &raw const oxen_load_gs_fixup),
    ];
    table
        .iter()
        .find(|(insn, _)| *insn as u64 == rip)
        .map(|(_, fixup)| *fixup as u64)
}

/// The data segment selectors the CPU holds: `[ds, es, fs, gs]`.
pub fn data_selectors() -> [u16; 4] {
    let (ds, es, fs, gs): (u16, u16, u16, u16);
    // SAFETY: reading segment registers has no side effects.
    unsafe {
        core::arch::asm!(
            "movw %ds, {0:x}",
            "movw %es, {1:x}",
            "movw %fs, {2:x}",
            "movw %gs, {3:x}",
            out(reg) ds, out(reg) es, out(reg) fs, out(reg) gs,
            options(att_syntax, nomem, nostack, preserves_flags)
        );
    }
    [ds, es, fs, gs]
}

/// Loads a guest's data selectors `[ds, es, fs, gs]`; returns which ones faulted (those are
/// null now). Loading FS and GS resets their bases: the caller sets the guest's bases after.
/// The hypervisor's own GS base (its per-CPU pointer) is put back.
pub fn load_data_selectors(sels: [u16; 4]) -> [bool; 4] {
    // SAFETY: GS_BASE exists on every x86-64 CPU.
    let percpu = unsafe { super::cpu::rdmsr(super::cpu::msr::IA32_GS_BASE) };
    // SAFETY: the hypervisor does not use DS, ES or FS (64-bit mode ignores their bases for
    // its own accesses), and GS's base is restored right after the load, with interrupts
    // off; a faulting load continues at its fixup (`selector_fixup`), which loads null.
    let failed = unsafe {
        [
            oxen_load_ds(u32::from(sels[0])) != 0,
            oxen_load_es(u32::from(sels[1])) != 0,
            oxen_load_fs(u32::from(sels[2])) != 0,
            oxen_load_gs(u32::from(sels[3])) != 0,
        ]
    };
    // SAFETY: restores the per-CPU pointer read above.
    unsafe { super::cpu::wrmsr(super::cpu::msr::IA32_GS_BASE, percpu) };
    failed
}

/// Saves the x87/SSE state into `area` (CR0.TS is cleared for it; the caller sets the next
/// vCPU's TS).
pub fn save_fpu(area: &mut FxArea) {
    // SAFETY: `area` is a 16-byte aligned, 512-byte buffer, exactly what fxsave64 writes;
    // clearing TS only stops fxsave from raising #NM.
    unsafe {
        core::arch::asm!("clts", options(nomem, nostack, preserves_flags));
        core::arch::asm!("fxsave64 [{}]", in(reg) area.0.as_mut_ptr(), options(nostack, preserves_flags));
    }
}

/// Loads the x87/SSE state from `area`, whose MXCSR the caller has sanitised with
/// [`mxcsr_mask`] (a reserved bit would make fxrstor fault).
pub fn restore_fpu(area: &FxArea) {
    // SAFETY: a 16-byte aligned 512-byte FXSAVE image with a valid MXCSR (sanitised by the
    // portable code); clearing TS only stops fxrstor from raising #NM.
    unsafe {
        core::arch::asm!("clts", options(nomem, nostack, preserves_flags));
        core::arch::asm!("fxrstor64 [{}]", in(reg) area.0.as_ptr(), options(nostack, preserves_flags));
    }
}

/// The MXCSR bits this CPU supports (FXSAVE's MXCSR_MASK, 0xffbf if it reports none).
pub fn mxcsr_mask() -> u32 {
    let mut area = FxArea::zeroed();
    save_fpu(&mut area);
    match area.mxcsr_mask() {
        0 => 0xffbf,
        m => m,
    }
}
