//! The common interrupt/exception path: saving registers, dispatching, and reporting fatal
//! exceptions in the hypervisor with a register dump and a stack trace.

use super::{apic, console, cpu, gdt, percpu};
use core::arch::global_asm;
use core::sync::atomic::Ordering;

pub use crate::guest::frame::Frame as TrapFrame;

global_asm!(
    r#"
    .section .text.oxen_trap_common, "ax"
    .global oxen_trap_common
oxen_trap_common:
    /* Stack: vector, error code, rip, cs, rflags, rsp, ss. From ring 3, swap in our GS.
       From ring 0 the hypervisor's GS is live, except when the fault hit the iretq that
       returns to a guest (after its swapgs). */
    testb $3, 24(%rsp)
    jnz 1f
    pushq %rax
    leaq oxen_iretq_to_guest(%rip), %rax
    cmpq %rax, 24(%rsp)
    popq %rax
    jne 2f
1:  swapgs
2:
    .global oxen_trap_save
oxen_trap_save:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    cld
    movq %rsp, %rdi
    call {dispatch}
    .global oxen_trap_restore
oxen_trap_restore:
    /* A hypercall return the runtime left marked as a syscall frame goes back with sysret:
       rcx and r11 get the return rip and rflags (the runtime checked CS, SS and that rip is
       canonical). Everything else returns with iretq. */
    cmpq ${sysvec}, 120(%rsp)
    je 4f
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    testb $3, 24(%rsp)
    jz 3f
    swapgs
    addq $16, %rsp
    .global oxen_iretq_to_guest
oxen_iretq_to_guest:
    iretq
3:  addq $16, %rsp
    iretq
4:  movq 136(%rsp), %rax
    movq %rax, 96(%rsp)
    movq 152(%rsp), %rax
    movq %rax, 32(%rsp)
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    swapgs
    movq 40(%rsp), %rsp
    sysretq
    "#,
    dispatch = sym trap_dispatch,
    sysvec = const crate::guest::frame::VECTOR_SYSCALL,
    options(att_syntax)
);

unsafe extern "C" {
    static oxen_iretq_to_guest: u8;
}

/// Short name of an exception vector.
pub fn exception_name(vector: u64) -> &'static str {
    match vector {
        0 => "#DE",
        1 => "#DB",
        2 => "NMI",
        3 => "#BP",
        4 => "#OF",
        5 => "#BR",
        6 => "#UD",
        7 => "#NM",
        8 => "#DF",
        9 => "coprocessor segment overrun",
        10 => "#TS",
        11 => "#NP",
        12 => "#SS",
        13 => "#GP",
        14 => "#PF",
        16 => "#MF",
        17 => "#AC",
        18 => "#MC",
        19 => "#XM",
        20 => "#VE",
        21 => "#CP",
        28 => "#HV",
        29 => "#VC",
        30 => "#SX",
        _ if vector < 32 => "reserved",
        _ => "interrupt",
    }
}

/// Called by the common entry path with interrupts off.
extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    let from_guest = frame.from_guest();
    match frame.vector {
        v if v == u64::from(apic::TIMER_VECTOR) => {
            apic::timer_interrupt();
            if from_guest {
                // Timers fire and the scheduler may switch vCPUs on the way back.
                crate::runtime::guest_interrupt(frame);
                return;
            }
        }
        v if v == u64::from(apic::SPURIOUS_VECTOR) => {}
        v if v == u64::from(apic::ERROR_VECTOR) => apic::error_interrupt(),
        // A hardware NMI is the machine's, not the guest's (a guest's `int $2` is a #GP): the
        // hypervisor notes it and carries on.
        2 => log::warn!("NMI (reason port {:#x})", nmi_reason()),
        // Double faults and machine checks are the hypervisor's to report, wherever they hit.
        8 | 18 => fatal_exception(frame),
        0..=31 | crate::guest::frame::VECTOR_SYSCALL | crate::guest::frame::VECTOR_SYSCALL32
            if from_guest =>
        {
            crate::runtime::guest_trap(frame);
            return;
        }
        13 | 14 if frame.rip == &raw const oxen_iretq_to_guest as u64 => {
            // Returning to the guest faulted (a bad CS or SS from the iret hypercall): the
            // guest context is the iret frame the faulting iretq was using.
            crate::runtime::guest_return_faulted(frame);
            return;
        }
        13 | 14 if super::guest::copy_fixup(frame.rip).is_some() => {
            // A checked guest-memory copy faulted: continue at its fixup.
            frame.rip = super::guest::copy_fixup(frame.rip).unwrap_or(frame.rip);
            return;
        }
        10..=14 if super::context::selector_fixup(frame.rip).is_some() => {
            // Loading a guest's data selector faulted: the fixup loads null and reports it.
            frame.rip = super::context::selector_fixup(frame.rip).unwrap_or(frame.rip);
            return;
        }
        13 if super::cpu::msr_fixup(frame.rip).is_some() => {
            // A probing MSR access faulted: continue at its fixup.
            frame.rip = super::cpu::msr_fixup(frame.rip).unwrap_or(frame.rip);
            return;
        }
        0..=31 => fatal_exception(frame),
        v => {
            log::warn!("unexpected interrupt on vector {v:#x}");
            apic::eoi();
        }
    }
    if from_guest {
        crate::runtime::before_guest_return(frame);
    }
}

/// The NMI reason bits from system control port B (0x61).
fn nmi_reason() -> u8 {
    // SAFETY: reading port 0x61 has no side effects.
    unsafe { x86_64::instructions::port::Port::<u8>::new(0x61).read() }
}

/// The guest context a faulting guest-return `iretq` was returning to: the guest registers
/// are in `frame` (they had been restored when the fault hit), the iret frame at its `rsp`.
pub fn failed_iret_context(frame: &TrapFrame) -> TrapFrame {
    let mut g = *frame;
    let at = frame.rsp as *const u64;
    // SAFETY: `frame.rsp` points into this CPU's stack, at the five words the faulting iretq
    // was popping (rip, cs, rflags, rsp, ss), which our own restore path left there.
    let w = unsafe { core::ptr::read(at.cast::<[u64; 5]>()) };
    g.rip = w[0];
    g.cs = w[1];
    g.rflags = w[2];
    g.rsp = w[3];
    g.ss = w[4];
    g.vector = 0;
    g.error_code = 0;
    g
}

/// Whether `[addr, addr + 16)` lies in one of this CPU's hypervisor stacks.
fn on_a_stack(addr: u64) -> bool {
    let (lo, hi) = percpu::boot_stack();
    let in_range = |(lo, hi): (u64, u64)| addr >= lo && addr.saturating_add(16) <= hi;
    in_range((lo + 4096, hi)) || gdt::ist_stacks().into_iter().any(in_range)
}

/// Whether `addr` lies in one of the stack guard pages.
fn guard_page_hit(addr: u64) -> bool {
    let (boot_bottom, _) = percpu::boot_stack();
    core::iter::once(boot_bottom)
        .chain(gdt::ist_guard_pages())
        .any(|g| addr >= g && addr < g + 4096)
}

/// Prints the return addresses found by walking the frame-pointer chain from `rbp`.
pub fn print_stack_trace(rip: Option<u64>, mut rbp: u64) {
    console::emergency(format_args!("Stack trace (return addresses):\n"));
    if let Some(rip) = rip {
        console::emergency(format_args!("   [<{rip:016x}>] (faulting instruction)\n"));
    }
    for _ in 0..32 {
        if !rbp.is_multiple_of(8) || !on_a_stack(rbp) {
            break;
        }
        // SAFETY: `rbp` is 8-aligned and [rbp, rbp+16) lies inside a mapped hypervisor stack,
        // so both reads are of mapped memory; a garbage chain only yields garbage numbers.
        let (next, ret) = unsafe { (*(rbp as *const u64), *((rbp + 8) as *const u64)) };
        if ret == 0 {
            break;
        }
        console::emergency(format_args!("   [<{ret:016x}>]\n"));
        if next <= rbp {
            break;
        }
        rbp = next;
    }
}

/// Reports an exception taken in the hypervisor (or one no guest can own yet) and stops.
fn fatal_exception(f: &TrapFrame) -> ! {
    let depth = percpu::current().fatal_depth.fetch_add(1, Ordering::SeqCst);
    if depth > 1 {
        // A fault while reporting a fault while reporting a fault: stop quietly.
        super::power::debug_exit(crate::exit::ExitCode::Panic.value());
        super::power::halt_forever();
    }
    let cr2 = cpu::read_cr2();
    let from = if f.cs & 3 == 0 {
        "hypervisor"
    } else {
        "ring 3"
    };
    let e = |a: core::fmt::Arguments<'_>| console::emergency(a);
    e(format_args!(
        "FATAL: exception in {from}: vector {} ({}), error code {:#x}\n",
        f.vector,
        exception_name(f.vector),
        f.error_code
    ));
    e(format_args!(
        "RIP:    {:04x}:{:016x}   RFLAGS: {:016x}\n",
        f.cs, f.rip, f.rflags
    ));
    e(format_args!(
        "RSP:    {:04x}:{:016x}   CR2:    {cr2:016x}\n",
        f.ss, f.rsp
    ));
    e(format_args!(
        "CR0:    {:016x}   CR3:    {:016x}   CR4: {:016x}\n",
        cpu::read_cr0(),
        cpu::read_cr3(),
        cpu::read_cr4()
    ));
    f.dump_gprs(&mut |a| console::emergency(a));
    if f.vector == 14 {
        e(format_args!(
            "Page fault at {cr2:#x}: {} {} in {} mode{}\n",
            if f.error_code & 1 != 0 {
                "protection violation"
            } else {
                "page not present"
            },
            if f.error_code & 0x10 != 0 {
                "on instruction fetch"
            } else if f.error_code & 2 != 0 {
                "on write"
            } else {
                "on read"
            },
            if f.error_code & 4 != 0 {
                "user"
            } else {
                "supervisor"
            },
            if f.error_code & 8 != 0 {
                ", reserved bit set"
            } else {
                ""
            }
        ));
    }
    if guard_page_hit(cr2) {
        e(format_args!(
            "Hypervisor stack overflow: {cr2:#x} is in a stack guard page\n"
        ));
    }
    print_stack_trace(Some(f.rip), f.rbp);
    super::panic::stop(crate::exit::ExitCode::Panic)
}
