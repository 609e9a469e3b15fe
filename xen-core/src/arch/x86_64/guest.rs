//! Guest context on x86-64: the `syscall` entry, entering and returning to ring 3, checked
//! copies to and from guest virtual memory, and the hardware side of a vCPU's state (CR3,
//! segment bases, CR0.TS, the GDT frames).
//!
//! While a guest runs, `IA32_GS_BASE` holds the guest's active GS base and
//! `IA32_KERNEL_GS_BASE` the hypervisor's per-CPU pointer; every entry from ring 3 executes
//! `swapgs` and every return executes it again, so the guest's active GS base survives in the
//! hardware untouched (including bases the guest set by loading a selector). The other mode's
//! GS base lives in the vCPU's software state and is swapped in on a kernel/user toggle.

use super::cpu::{self, msr};
use super::percpu;
use crate::guest::frame::{FRAME_CS, FRAME_SIZE, Frame, VECTOR_SYSCALL, VECTOR_SYSCALL32};
use core::arch::global_asm;

/// Lowest guest-accessible address of the upper half.
const GUEST_UPPER_START: u64 = 0xffff_8800_0000_0000;
/// One past the lower canonical half.
const GUEST_LOWER_END: u64 = 0x0000_8000_0000_0000;

global_asm!(
    r#"
    .section .text.oxen_guest_entry, "ax"

    /* syscall from 64-bit ring 3: rcx = return rip, r11 = rflags. Build the same frame as an
       interrupt from ring 3 would, on this CPU's stack, then join the common path. */
    .global oxen_syscall_entry
oxen_syscall_entry:
    swapgs
    movq %rsp, %gs:{scratch}
    movq %gs:{stack_top}, %rsp
    pushq ${ss}
    pushq %gs:{scratch}
    pushq %r11
    pushq ${cs64}
    pushq %rcx
    pushq $0
    pushq ${vec64}
    jmp oxen_trap_save

    /* syscall from compatibility mode. */
    .global oxen_syscall32_entry
oxen_syscall32_entry:
    swapgs
    movq %rsp, %gs:{scratch}
    movq %gs:{stack_top}, %rsp
    pushq ${ss}
    pushq %gs:{scratch}
    pushq %r11
    pushq ${cs32}
    pushq %rcx
    pushq $0
    pushq ${vec32}
    jmp oxen_trap_save

    /* Copies rdx bytes from rsi to rdi; returns 0, or 1 if a fault was taken (the #PF/#GP
       handler moves rip to the fixup). One variant brackets the copy with stac/clac for CPUs
       with SMAP. */
    /* Quadwords first, then the remaining bytes: frames and argument structures are
       mostly whole quadwords, and a string move per byte is slow under emulation. */
    .global oxen_copy_guest
oxen_copy_guest:
    movq %rdx, %rcx
    shrq $3, %rcx
    .global oxen_copy_guest_insn
oxen_copy_guest_insn:
    rep movsq
    movq %rdx, %rcx
    andq $7, %rcx
    .global oxen_copy_guest_insn2
oxen_copy_guest_insn2:
    rep movsb
    xorl %eax, %eax
    ret
    .global oxen_copy_guest_smap
oxen_copy_guest_smap:
    movq %rdx, %rcx
    shrq $3, %rcx
    stac
    .global oxen_copy_guest_smap_insn
oxen_copy_guest_smap_insn:
    rep movsq
    movq %rdx, %rcx
    andq $7, %rcx
    .global oxen_copy_guest_smap_insn2
oxen_copy_guest_smap_insn2:
    rep movsb
    clac
    xorl %eax, %eax
    ret
    .global oxen_copy_guest_fixup
oxen_copy_guest_fixup:
    .byte 0x0f, 0x01, 0xca /* clac, only reached through the SMAP variant's fault */
    movl $1, %eax
    ret
    .global oxen_copy_guest_fixup_nosmap
oxen_copy_guest_fixup_nosmap:
    movl $1, %eax
    ret
    "#,
    scratch = const percpu::PERCPU_SCRATCH_RSP,
    stack_top = const percpu::PERCPU_STACK_TOP,
    ss = const super::gdt::RING3_DS,
    cs64 = const super::gdt::RING3_CS64,
    cs32 = const super::gdt::RING3_CS32,
    vec64 = const VECTOR_SYSCALL,
    vec32 = const VECTOR_SYSCALL32,
    options(att_syntax)
);

unsafe extern "C" {
    fn oxen_syscall_entry();
    fn oxen_syscall32_entry();
    fn oxen_copy_guest(dst: *mut u8, src: *const u8, len: usize) -> u64;
    fn oxen_copy_guest_smap(dst: *mut u8, src: *const u8, len: usize) -> u64;
    static oxen_copy_guest_insn: u8;
    static oxen_copy_guest_insn2: u8;
    static oxen_copy_guest_smap_insn: u8;
    static oxen_copy_guest_smap_insn2: u8;
    static oxen_copy_guest_fixup: u8;
    static oxen_copy_guest_fixup_nosmap: u8;
}

static SMAP: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// If `rip` is a guest-copy instruction that faulted, where to continue instead.
pub fn copy_fixup(rip: u64) -> Option<u64> {
    if rip == &raw const oxen_copy_guest_insn as u64
        || rip == &raw const oxen_copy_guest_insn2 as u64
    {
        Some(&raw const oxen_copy_guest_fixup_nosmap as u64)
    } else if rip == &raw const oxen_copy_guest_smap_insn as u64
        || rip == &raw const oxen_copy_guest_smap_insn2 as u64
    {
        Some(&raw const oxen_copy_guest_fixup as u64)
    } else {
        None
    }
}

/// Sets up `syscall` (EFER.SCE, STAR, LSTAR, CSTAR, FMASK), SMAP and the x87/SSE control bits
/// guests rely on.
pub fn init_cpu(smap: bool) {
    const EFER_SCE: u64 = 1;
    const MSR_STAR: u32 = 0xc000_0081;
    const MSR_LSTAR: u32 = 0xc000_0082;
    const MSR_CSTAR: u32 = 0xc000_0083;
    const MSR_FMASK: u32 = 0xc000_0084;
    // Entry masks IF (the hypervisor runs with interrupts off), TF, DF, NT, AC and IOPL.
    const FMASK: u64 = (1 << 8) | (1 << 9) | (1 << 10) | (3 << 12) | (1 << 14) | (1 << 18);
    let star = (u64::from(super::gdt::RING3_CS32 & !3) << 48)
        | (u64::from(super::gdt::HYPERVISOR_CS) << 32);
    // SAFETY: these MSRs exist on every x86-64 CPU; the entry points are this module's
    // assembly, and the selectors match the GDT (STAR's sysret base gives 0xe023/0xe02b/
    // 0xe033, exactly Xen's flat ring-3 selectors).
    unsafe {
        cpu::wrmsr(msr::IA32_EFER, cpu::rdmsr(msr::IA32_EFER) | EFER_SCE);
        cpu::wrmsr(MSR_STAR, star);
        cpu::wrmsr(MSR_LSTAR, oxen_syscall_entry as *const () as u64);
        cpu::wrmsr(MSR_CSTAR, oxen_syscall32_entry as *const () as u64);
        cpu::wrmsr(MSR_FMASK, FMASK);
        // Xen's PAT, so guests' cache-attribute bits mean what the ABI says.
        cpu::wrmsr(msr::IA32_PAT, hypercall_abi::mm::XEN_MSR_PAT);
    }
    // CR0: MP and NE (native #MF), WP stays; CR4: OSFXSR and OSXMMEXCPT so guests can use SSE.
    // SAFETY: these bits only select how the FPU reports and saves state.
    unsafe {
        x86_64::registers::control::Cr0::update(|f| {
            f.insert(x86_64::registers::control::Cr0Flags::MONITOR_COPROCESSOR);
            f.insert(x86_64::registers::control::Cr0Flags::NUMERIC_ERROR);
            f.remove(x86_64::registers::control::Cr0Flags::EMULATE_COPROCESSOR);
        });
        x86_64::registers::control::Cr4::update(|f| {
            f.insert(x86_64::registers::control::Cr4Flags::OSFXSR);
            f.insert(x86_64::registers::control::Cr4Flags::OSXMMEXCPT_ENABLE);
            if smap {
                f.insert(x86_64::registers::control::Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION);
            }
        });
    }
    SMAP.store(smap, core::sync::atomic::Ordering::Relaxed);
    // A clean FPU state for the first guest.
    // SAFETY: fninit resets the x87 unit; no memory is touched.
    unsafe { core::arch::asm!("fninit", options(nomem, nostack)) };
}

/// Whether `[va, va + len)` lies wholly in guest-accessible virtual memory (the lower
/// canonical half, or the upper half above the hypervisor's slots).
pub fn guest_range_ok(va: u64, len: u64) -> bool {
    let Some(end) = va.checked_add(len) else {
        return false;
    };
    (end <= GUEST_LOWER_END) || (va >= GUEST_UPPER_START)
}

/// A copy between hypervisor memory and guest virtual memory faulted, or the range was not
/// guest memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault;

fn copy(dst: *mut u8, src: *const u8, len: usize) -> Result<(), Fault> {
    if len == 0 {
        return Ok(());
    }
    let smap = SMAP.load(core::sync::atomic::Ordering::Relaxed);
    // SAFETY: the callers checked that the guest side lies in guest-accessible virtual memory
    // and the hypervisor side is a live buffer of `len` bytes. A fault on the guest side is
    // caught by the exception handler (`copy_fixup`) and reported as an error; it cannot touch
    // hypervisor memory because the guest range excludes the hypervisor's slots.
    let r = unsafe {
        if smap {
            oxen_copy_guest_smap(dst, src, len)
        } else {
            oxen_copy_guest(dst, src, len)
        }
    };
    if r == 0 { Ok(()) } else { Err(Fault) }
}

/// Copies guest memory at `va` (in the current address space) into `buf`.
pub fn copy_from_guest(va: u64, buf: &mut [u8]) -> Result<(), Fault> {
    if !guest_range_ok(va, buf.len() as u64) {
        return Err(Fault);
    }
    copy(buf.as_mut_ptr(), va as *const u8, buf.len())
}

/// Copies `buf` to guest memory at `va` (in the current address space); read-only guest
/// mappings fault, since CR0.WP is set.
pub fn copy_to_guest(va: u64, buf: &[u8]) -> Result<(), Fault> {
    if !guest_range_ok(va, buf.len() as u64) {
        return Err(Fault);
    }
    copy(va as *mut u8, buf.as_ptr(), buf.len())
}

unsafe extern "C" {
    /// The common return path: pops a [`Frame`] at `rsp` and returns to it.
    static oxen_trap_restore: u8;
}

/// Starts running guest code: puts `frame` at the top of this CPU's stack (abandoning whatever
/// the hypervisor was doing on it) and returns to it.
pub fn enter(frame: &Frame) -> ! {
    let top = percpu::current()
        .stack_top
        .load(core::sync::atomic::Ordering::Relaxed);
    let dst = top - FRAME_SIZE as u64;
    debug_assert_eq!(FRAME_CS, 144);
    // SAFETY: `[dst, top)` is the top of this CPU's own stack, which nothing uses once we jump
    // (this function never returns and the frames below are abandoned); the frame is a valid
    // ring-3 context built by the hypervisor, and the restore path swaps GS and irets to it.
    unsafe {
        core::ptr::write(dst as *mut Frame, *frame);
        core::arch::asm!(
            "movq {dst}, %rsp",
            "jmp {restore}",
            dst = in(reg) dst,
            restore = sym oxen_trap_restore,
            options(att_syntax, noreturn)
        );
    }
}

/// Loads page-table root `cr3` (a machine address), optionally flushing global entries too.
pub fn load_cr3(cr3: u64, flush_global: bool) {
    // SAFETY: the caller passes a validated L4 (typed and referenced by the vCPU) whose slots
    // 256–271 are the hypervisor's, so the hypervisor stays mapped across the switch.
    unsafe {
        core::arch::asm!("mov {}, %cr3", in(reg) cr3, options(att_syntax, nostack));
        if flush_global {
            let cr4 = cpu::read_cr4();
            if cr4 & (1 << 7) != 0 {
                core::arch::asm!("mov {}, %cr4", "mov {}, %cr4",
                    in(reg) cr4 & !(1 << 7), in(reg) cr4, options(att_syntax, nostack));
            }
        }
    }
}

/// Flushes one page from this CPU's TLB.
pub fn invlpg(va: u64) {
    x86_64::instructions::tlb::flush(x86_64::VirtAddr::new_truncate(va));
}

/// Flushes this CPU's non-global TLB entries.
pub fn flush_tlb() {
    x86_64::instructions::tlb::flush_all();
}

/// The guest's active GS base (held in `IA32_KERNEL_GS_BASE` while the hypervisor runs).
pub fn guest_active_gs_base() -> u64 {
    // SAFETY: the MSR exists on every x86-64 CPU.
    unsafe { cpu::rdmsr(msr::IA32_KERNEL_GS_BASE) }
}

/// Sets the guest's active GS base.
pub fn set_guest_active_gs_base(v: u64) {
    // SAFETY: the value is canonical (checked by the caller); it becomes GS_BASE only after
    // the `swapgs` on the way back to ring 3.
    unsafe { cpu::wrmsr(msr::IA32_KERNEL_GS_BASE, v) }
}

/// The guest's FS base.
pub fn guest_fs_base() -> u64 {
    // SAFETY: the MSR exists on every x86-64 CPU.
    unsafe { cpu::rdmsr(msr::IA32_FS_BASE) }
}

/// Sets the guest's FS base (the hypervisor does not use FS).
pub fn set_guest_fs_base(v: u64) {
    // SAFETY: the value is canonical (checked by the caller).
    unsafe { cpu::wrmsr(msr::IA32_FS_BASE, v) }
}

/// Sets or clears CR0.TS.
pub fn set_ts(on: bool) {
    // SAFETY: CR0.TS only makes FPU/SSE instructions raise #NM.
    unsafe {
        x86_64::registers::control::Cr0::update(|f| {
            f.set(x86_64::registers::control::Cr0Flags::TASK_SWITCHED, on);
        });
    }
}

/// Reads an MSR for guest emulation, `None` if it faults on this CPU.
pub fn host_msr(index: u32) -> Option<u64> {
    // Only MSRs the caller lists explicitly are read; all exist on x86-64 CPUs.
    match index {
        msr::IA32_EFER | msr::IA32_PAT | msr::IA32_APIC_BASE => {
            // SAFETY: architectural MSRs present on every x86-64 CPU with an APIC.
            Some(unsafe { cpu::rdmsr(index) })
        }
        _ => None,
    }
}

/// Port input for an emulated guest `in`.
pub fn port_in(port: u16, size: u8) -> u32 {
    // SAFETY: the caller checked the domain may access this port; reading a port only
    // affects the device behind it, which belongs to that domain.
    unsafe {
        match size {
            1 => u32::from(x86_64::instructions::port::Port::<u8>::new(port).read()),
            2 => u32::from(x86_64::instructions::port::Port::<u16>::new(port).read()),
            _ => x86_64::instructions::port::Port::<u32>::new(port).read(),
        }
    }
}

/// Port output for an emulated guest `out`.
#[expect(
    clippy::cast_possible_truncation,
    reason = "8- and 16-bit ports take the low bits"
)]
pub fn port_out(port: u16, size: u8, value: u32) {
    // SAFETY: as for `port_in`.
    unsafe {
        match size {
            1 => x86_64::instructions::port::Port::<u8>::new(port).write(value as u8),
            2 => x86_64::instructions::port::Port::<u16>::new(port).write(value as u16),
            _ => x86_64::instructions::port::Port::<u32>::new(port).write(value),
        }
    }
}

/// Checks that the syscall entry frame layout matches the portable frame.
const _: () = assert!(FRAME_SIZE == 176);
