//! The interrupt descriptor table and the 256 entry stubs.
//!
//! Every vector has a 16-byte stub at `oxen_isr_stubs + 16 * vector` that pushes a zero error
//! code (unless the CPU pushed one) and the vector number, then joins the common entry path in
//! [`super::trap`], which saves all registers into a [`super::trap::TrapFrame`].

use super::gdt::{HYPERVISOR_CS, IST_DOUBLE_FAULT, IST_MACHINE_CHECK, IST_NMI};
use core::arch::global_asm;
use core::cell::UnsafeCell;

global_asm!(
    r#"
    .section .text.oxen_isr_stubs, "ax"
    .balign 16
    .global oxen_isr_stubs
oxen_isr_stubs:
    .set vec, 0
    .rept 256
    .balign 16
    /* The CPU pushes an error code for vectors 8, 10-14, 17, 21, 29 and 30. */
    .if (vec == 8) || (vec == 10) || (vec == 11) || (vec == 12) || (vec == 13) || (vec == 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    pushq $0
    .endif
    pushq $vec
    jmp oxen_trap_common
    .set vec, vec + 1
    .endr
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    static oxen_isr_stubs: u8;
}

/// One 16-byte gate descriptor.
#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

impl Gate {
    const EMPTY: Gate = Gate {
        offset_low: 0,
        selector: 0,
        ist: 0,
        type_attr: 0,
        offset_mid: 0,
        offset_high: 0,
        reserved: 0,
    };

    /// A present 64-bit interrupt gate (IF cleared on entry) to `handler`.
    #[expect(
        clippy::cast_possible_truncation,
        reason = "a gate holds the address in three fields"
    )]
    fn interrupt(handler: u64, dpl: u8, ist: u8) -> Gate {
        Gate {
            offset_low: handler as u16,
            selector: HYPERVISOR_CS,
            ist,
            type_attr: 0x80 | (dpl << 5) | 0xe,
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

#[repr(C, align(4096))]
struct Idt(UnsafeCell<[Gate; 256]>);

// SAFETY: written once by the boot CPU in `init` before interrupts are enabled, read-only
// (by the CPU) afterwards.
unsafe impl Sync for Idt {}

static IDT: Idt = Idt(UnsafeCell::new([Gate::EMPTY; 256]));

/// Builds and loads the IDT.
pub fn init() {
    let stubs = &raw const oxen_isr_stubs as u64;
    // SAFETY: early boot, single CPU, interrupts off: nothing else reads or writes the IDT.
    let idt = unsafe { &mut *IDT.0.get() };
    for (v, gate) in idt.iter_mut().enumerate() {
        let ist = match v {
            2 => IST_NMI,
            8 => IST_DOUBLE_FAULT,
            18 => IST_MACHINE_CHECK,
            _ => 0,
        };
        // `int3` and `into` may be executed by guests (they run in ring 3) and must trap as
        // #BP/#OF; every other vector raised by `int $n` from ring 3 is a #GP.
        let dpl = if v == 3 || v == 4 { 3 } else { 0 };
        *gate = Gate::interrupt(stubs + 16 * v as u64, dpl, ist);
    }
    #[repr(C, packed)]
    struct Idtr {
        limit: u16,
        base: u64,
    }
    let idtr = Idtr {
        limit: 256 * 16 - 1,
        base: IDT.0.get() as u64,
    };
    // SAFETY: the IDT is complete and static, and every gate points at a stub of this image.
    unsafe { core::arch::asm!("lidt ({})", in(reg) &raw const idtr, options(att_syntax, nostack)) };
}

/// Resets the machine by loading an empty IDT and raising an exception.
pub fn triple_fault() -> ! {
    #[repr(C, packed)]
    struct Idtr {
        limit: u16,
        base: u64,
    }
    let idtr = Idtr { limit: 0, base: 0 };
    // SAFETY: deliberately unrecoverable: with a zero-length IDT, `int3` cannot be delivered,
    // which escalates to a triple fault and a machine reset.
    unsafe {
        core::arch::asm!("lidt ({})", "int3", in(reg) &raw const idtr, options(att_syntax, noreturn))
    }
}
