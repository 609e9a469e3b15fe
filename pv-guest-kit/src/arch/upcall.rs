//! The event-upcall entry (reference §8.3–§8.5, §10.3).
//!
//! Xen enters the registered event callback like any bounce, without an error code: RCX, R11,
//! RIP, CS (the upcall mask before delivery in bits 32–39), RFLAGS (IF = !that mask), RSP, SS
//! on the stack, and `evtchn_upcall_mask` set. RCX and R11 hold garbage (Xen returned with
//! `sysret`). The entry pops RCX and R11 back into place, saves every general register, and
//! calls [`crate::events`]'s dispatcher with the [`UpcallFrame`] on a 16-byte aligned stack.
//! It then restores the registers, turns the frame into `[flags = 0, rip, cs, rflags, rsp,
//! ss]` and jumps to the `iret` hypercall stub. Xen sets `evtchn_upcall_mask = !RFLAGS.IF`
//! as it returns — the mask as it was before delivery — in the same hypercall, so no event
//! can slip in between re-enabling events and leaving the handler: if one became pending
//! meanwhile, Xen delivers it at once, on the stack the iret just unwound.
//!
//! Upcalls nest when a handler re-enables events (directly, or by blocking): the nested entry
//! builds its frame below the current one and the dispatcher takes only the events still
//! pending, so nothing is handled twice (see [`crate::evtchn_2l::dispatch`]).

use core::arch::global_asm;

use hypercall_abi::hypercall::{HYPERCALL_STUB_SIZE, HYPERVISOR_IRET};
use hypercall_abi::traps::CallbackType;

use super::frame_asm::{call_with_frame, pop_registers, push_registers};
use crate::errno::HypercallResult;
use crate::frame::{REGISTERS_SIZE, Registers};

/// The interrupted context, as the upcall entry saves it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpcallFrame {
    /// The interrupted code's general registers.
    pub regs: Registers,
    /// Where the interrupted code resumes.
    pub rip: u64,
    /// The interrupted CS (RPL 0 for guest kernel mode, 3 for user mode), with the upcall mask
    /// before delivery in bits 32–39.
    pub cs: u64,
    /// The interrupted RFLAGS; IF = !(upcall mask before delivery).
    pub rflags: u64,
    /// The interrupted stack pointer.
    pub rsp: u64,
    /// The interrupted stack selector.
    pub ss: u64,
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(offset_of!(UpcallFrame, rip) == REGISTERS_SIZE);
    assert!(size_of::<UpcallFrame>() == REGISTERS_SIZE + 5 * 8);
};

crate::frame::ends_with_xen_frame!(
    UpcallFrame,
    hypercall_abi::traps::BounceFrame,
    below = REGISTERS_SIZE,
    [rip, cs, rflags, rsp, ss]
);

impl UpcallFrame {
    /// `evtchn_upcall_mask` before the upcall (bits 32–39 of the CS slot).
    pub fn saved_upcall_mask(&self) -> u8 {
        (self.cs >> hypercall_abi::traps::BOUNCE_CS_UPCALL_MASK_SHIFT).to_le_bytes()[0]
    }

    /// Whether guest user mode was interrupted.
    pub fn from_user_mode(&self) -> bool {
        self.cs & 3 == 3
    }
}

global_asm!(
    ".pushsection .text.pv_guest_kit.upcall, \"ax\", @progbits",
    ".balign 16",
    ".globl pv_guest_kit_upcall_entry",
    "pv_guest_kit_upcall_entry:",
    "    pop %rcx",
    "    pop %r11",
    push_registers!(),
    call_with_frame!(dispatch),
    "    mov %rbx, %rsp",
    pop_registers!(),
    // [rip, cs, rflags, rsp, ss] is left: push the iret flags (0) below it.
    "    push $0",
    "    jmp pv_guest_kit_hypercall_page + {iret_offset}",
    ".popsection",
    dispatch = sym upcall_dispatch,
    iret_offset = const HYPERVISOR_IRET as usize * HYPERCALL_STUB_SIZE,
    options(att_syntax)
);

unsafe extern "C" {
    static pv_guest_kit_upcall_entry: u8;
}

/// The address of the upcall entry (the event callback to register, on every vCPU).
pub fn entry_address() -> u64 {
    core::ptr::addr_of!(pv_guest_kit_upcall_entry) as u64
}

extern "C" fn upcall_dispatch(frame: *mut UpcallFrame) {
    // SAFETY: the entry passes the frame it just built on the stack; nothing else refers to it
    // until the dispatcher returns.
    let frame = unsafe { &mut *frame };
    crate::events::handle_upcall(frame);
}

/// Registers the upcall entry as the running vCPU's event callback (`callback_op`,
/// `CALLBACKTYPE_event`; events are always masked on entry).
///
/// # Errors
/// The hypervisor's error.
pub fn register() -> HypercallResult {
    // SAFETY: the entry takes any upcall frame, runs the kit's dispatcher and returns through
    // the iret hypercall to the interrupted context.
    unsafe { crate::hypercall::traps::callback_register(CallbackType::Event, 0, entry_address()) }
}
