//! The exception entry stubs, the failsafe entry, and the trap-table installer.
//!
//! Stub *v* (16 bytes apart from `pv_guest_kit_trap_stubs`) is what the virtual IDT names for
//! vector *v*. Xen enters it with RCX, R11, [error code,] RIP, CS, RFLAGS, RSP, SS on the stack
//! (reference §8.3). The stub pops RCX and R11 back into place, pushes a zero error code for
//! vectors without one and the vector, and jumps to the common path, which saves every general
//! register, calls [`crate::traps`]'s dispatcher with a pointer to the [`TrapFrame`], restores
//! the registers and returns with the `iret` hypercall: it turns the frame into
//! `[flags = 0, rip, cs, rflags, rsp, ss]` and jumps to `hypercall_page + 23 * 32`
//! (reference §8.5). Because the frame's RFLAGS.IF is `!saved upcall mask`, the return also
//! restores the event mask as it was before delivery.
//!
//! The failsafe entry runs the failsafe handler, loads null DS/ES/FS/GS, puts the kernel GS
//! base back (a null `%gs` clears it where the CPU follows AMD's rule, as QEMU's TCG does; the
//! kit keeps its per-vCPU record there, [`super::percpu`]) and returns the same way.
//!
//! [`install`] also records the entries it installed, so that secondary vCPUs started by the
//! kit get the same virtual IDT ([`installed`]).

use core::arch::global_asm;

use hypercall_abi::hypercall::{HYPERCALL_STUB_SIZE, HYPERVISOR_IRET};
use hypercall_abi::segments::FLAT_KERNEL_CS;
use hypercall_abi::traps::{TI_DPL_MASK, TI_IF, TrapInfo};

use super::frame_asm::{call_with_frame, pop_registers, push_registers};
use crate::errno::HypercallResult;
use crate::frame::{FailsafeFrame, TrapFrame};

/// Distance between two vectors' stubs.
pub const TRAP_STUB_SIZE: u64 = 16;

global_asm!(
    ".pushsection .text.pv_guest_kit.traps, \"ax\", @progbits",
    ".balign 16",
    ".globl pv_guest_kit_trap_stubs",
    "pv_guest_kit_trap_stubs:",
    ".set pvk_vector, 0",
    ".rept 256",
    ".balign 16",
    "    pop %rcx",
    "    pop %r11",
    // Vectors whose bounce frame has an error code (hypercall_abi::traps::vector_has_error_code).
    "    .if (pvk_vector == 8) || (pvk_vector == 10) || (pvk_vector == 11) || (pvk_vector == 12) || (pvk_vector == 13) || (pvk_vector == 14) || (pvk_vector == 17) || (pvk_vector == 21) || (pvk_vector == 29) || (pvk_vector == 30)",
    "    .else",
    "    push $0",
    "    .endif",
    "    push $pvk_vector",
    // jmp rel32, spelled out so that every stub has a known size (at most 15 bytes).
    "    .byte 0xe9",
    "    .long pv_guest_kit_trap_common - (. + 4)",
    ".set pvk_vector, pvk_vector + 1",
    ".endr",
    ".balign 16",
    "pv_guest_kit_trap_stubs_end:",
    // The common path.
    "pv_guest_kit_trap_common:",
    push_registers!(),
    call_with_frame!(dispatch),
    "    mov %rbx, %rsp",
    "pv_guest_kit_trap_return:",
    pop_registers!(),
    // Drop the vector and error code, put the iret flags (0) where the error code was.
    "    add $16, %rsp",
    "    push $0",
    "    jmp pv_guest_kit_hypercall_page + {iret_offset}",
    // The failsafe callback: RCX, R11, DS, ES, FS, GS, RIP, CS, RFLAGS, RSP, SS.
    ".balign 16",
    ".globl pv_guest_kit_failsafe_entry",
    "pv_guest_kit_failsafe_entry:",
    "    pop %rcx",
    "    pop %r11",
    push_registers!(),
    call_with_frame!(failsafe_dispatch),
    // The dispatcher returned the vCPU id (read through GS while its base is still intact).
    "    mov %eax, %r12d",
    // Null data selectors: the ones Xen could not load are gone.
    "    xor %eax, %eax",
    "    mov %eax, %ds",
    "    mov %eax, %es",
    "    mov %eax, %fs",
    "    mov %eax, %gs",
    // A null %gs may have cleared the GS base: the kit's per-vCPU record needs it back.
    "    mov %r12d, %edi",
    "    call {restore_gs_base}",
    "    mov %rbx, %rsp",
    pop_registers!(),
    // Drop DS, ES, FS, GS but keep one slot for the iret flags.
    "    add $24, %rsp",
    "    movq $0, (%rsp)",
    "    jmp pv_guest_kit_hypercall_page + {iret_offset}",
    ".popsection",
    dispatch = sym trap_dispatch,
    failsafe_dispatch = sym failsafe_dispatch,
    restore_gs_base = sym restore_gs_base,
    iret_offset = const HYPERVISOR_IRET as usize * HYPERCALL_STUB_SIZE,
    options(att_syntax)
);

unsafe extern "C" {
    static pv_guest_kit_trap_stubs: u8;
    static pv_guest_kit_trap_stubs_end: u8;
    static pv_guest_kit_failsafe_entry: u8;
}

/// The address of vector `vector`'s entry stub.
pub fn stub_address(vector: u8) -> u64 {
    core::ptr::addr_of!(pv_guest_kit_trap_stubs) as u64 + u64::from(vector) * TRAP_STUB_SIZE
}

/// The address of the failsafe-callback entry.
pub fn failsafe_entry() -> u64 {
    core::ptr::addr_of!(pv_guest_kit_failsafe_entry) as u64
}

/// Whether the assembler laid the 256 stubs out 16 bytes apart (checked once by the kit).
pub fn stubs_well_formed() -> bool {
    core::ptr::addr_of!(pv_guest_kit_trap_stubs_end) as u64
        - core::ptr::addr_of!(pv_guest_kit_trap_stubs) as u64
        == 256 * TRAP_STUB_SIZE
}

extern "C" fn trap_dispatch(frame: *mut TrapFrame) {
    // SAFETY: the stub passes the address of the frame it just built on the stack; nothing else
    // refers to it until the handler returns.
    let frame = unsafe { &mut *frame };
    crate::traps::dispatch(frame);
}

/// Runs the failsafe handler; returns the vCPU's id for `restore_gs_base`.
extern "C" fn failsafe_dispatch(frame: *mut FailsafeFrame) -> u32 {
    // SAFETY: as `trap_dispatch`.
    let frame = unsafe { &mut *frame };
    let id = super::percpu::current();
    crate::traps::dispatch_failsafe(frame);
    id
}

extern "C" fn restore_gs_base(id: u32) {
    super::percpu::restore_gs_base(id);
}

/// What the kit installed in this domain's virtual IDTs through [`install`] (entry *v* is
/// vector *v*; address 0 = nothing installed), so that secondary vCPUs get the same table.
static INSTALLED: spin::Mutex<[TrapInfo; 256]> = spin::Mutex::new(
    [TrapInfo {
        vector: 0,
        flags: 0,
        cs: 0,
        _pad0: 0,
        address: 0,
    }; 256],
);

/// The failsafe registration: `Some(mask_events)` once [`register_failsafe`] succeeded.
static FAILSAFE: spin::Mutex<Option<bool>> = spin::Mutex::new(None);

/// Copies the entries the kit installed (through [`install`]) into `out`, lowest vector first;
/// returns how many.
pub fn installed(out: &mut [TrapInfo; 256]) -> usize {
    let table = INSTALLED.lock();
    let mut count = 0;
    for entry in table.iter().filter(|e| e.address != 0) {
        if let Some(slot) = out.get_mut(count) {
            *slot = *entry;
            count += 1;
        }
    }
    count
}

/// `Some(mask_events)` if the kit's failsafe entry was registered ([`register_failsafe`]).
pub fn failsafe_registration() -> Option<bool> {
    *FAILSAFE.lock()
}

/// One virtual-IDT entry for a kit stub.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gate {
    /// The vector.
    pub vector: u8,
    /// The DPL software `int n` must satisfy (0–3).
    pub dpl: u8,
    /// Interrupt-gate semantics: mask events (set `evtchn_upcall_mask`) on delivery.
    pub mask_events: bool,
}

impl Gate {
    /// The `trap_info` entry naming the kit's stub for this gate.
    pub fn trap_info(self) -> TrapInfo {
        TrapInfo {
            vector: self.vector,
            flags: (self.dpl & TI_DPL_MASK) | if self.mask_events { TI_IF } else { 0 },
            cs: FLAT_KERNEL_CS,
            _pad0: 0,
            address: stub_address(self.vector),
        }
    }
}

/// Installs `gates` in the virtual IDT with one `set_trap_table` call (vectors not listed keep
/// their entries), at most 32 per call.
///
/// # Errors
/// The hypervisor's error.
pub fn install(gates: &[Gate]) -> HypercallResult {
    const BATCH: usize = 32;
    let mut last = 0;
    for chunk in gates.chunks(BATCH) {
        let mut table = [TrapInfo::default(); BATCH + 1];
        for (slot, gate) in table.iter_mut().zip(chunk) {
            *slot = gate.trap_info();
        }
        // SAFETY: every entry names one of the kit's stubs, which take any vector's bounce frame
        // and return through the iret hypercall; the table ends with a zero entry.
        last = unsafe { crate::hypercall::traps::set_trap_table(&table)? };
        let mut record = INSTALLED.lock();
        for gate in chunk {
            if let Some(slot) = record.get_mut(usize::from(gate.vector)) {
                *slot = gate.trap_info();
            }
        }
    }
    Ok(last)
}

/// Registers the kit's failsafe entry (`callback_op`, `CALLBACKTYPE_failsafe`).
///
/// # Errors
/// The hypervisor's error.
pub fn register_failsafe(mask_events: bool) -> HypercallResult {
    use hypercall_abi::traps::{CALLBACKF_MASK_EVENTS, CallbackType};
    let flags = if mask_events {
        CALLBACKF_MASK_EVENTS
    } else {
        0
    };
    // SAFETY: the kit's failsafe entry takes the failsafe frame and returns through iret.
    let ret = unsafe {
        crate::hypercall::traps::callback_register(CallbackType::Failsafe, flags, failsafe_entry())
    }?;
    *FAILSAFE.lock() = Some(mask_events);
    Ok(ret)
}
