//! The virtual IDT (`trap_info`), callbacks, bounce frames and the `iret` frame
//! (reference §8.1–§8.8).

/// `trap_info` (16 bytes; reference §8.1): one virtual IDT entry. An entry with `address == 0`
/// terminates a `set_trap_table` array.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrapInfo {
    /// Vector number 0–255.
    pub vector: u8,
    /// Bits 0–1: DPL for software `INT n`; bit 2: interrupt gate (mask events on delivery).
    pub flags: u8,
    /// Code selector (RPL forced to 3; 64-bit handlers always run on `FLAT_KERNEL_CS`).
    pub cs: u16,
    /// Padding; zero.
    pub _pad0: u32,
    /// Handler virtual address; 0 terminates the table.
    pub address: u64,
}

assert_layout!(TrapInfo, size = 16, align = 8, {
    vector: u8 = 0,
    flags: u8 = 1,
    cs: u16 = 2,
    _pad0: u32 = 4,
    address: u64 = 8,
});

/// Mask of the DPL bits in [`TrapInfo::flags`].
pub const TI_DPL_MASK: u8 = 0x3;
/// [`TrapInfo::flags`] bit: deliver like an interrupt gate (set the upcall mask).
pub const TI_IF: u8 = 0x4;

/// Number of entries in a virtual IDT.
pub const TRAP_TABLE_ENTRIES: usize = 256;

impl TrapInfo {
    /// The DPL that software `INT n` must satisfy.
    #[must_use]
    pub const fn dpl(&self) -> u8 {
        self.flags & TI_DPL_MASK
    }

    /// True if delivery masks events (interrupt-gate semantics).
    #[must_use]
    pub const fn is_interrupt_gate(&self) -> bool {
        self.flags & TI_IF != 0
    }

    /// True if this entry ends a `set_trap_table` array.
    #[must_use]
    pub const fn is_terminator(&self) -> bool {
        self.address == 0
    }
}

/// True for the exception vectors whose bounce frame carries an error code
/// (8, 10–14, 17, 21, 29, 30; reference §8.1).
#[must_use]
pub const fn vector_has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

/// `CALLBACKOP_register`.
pub const CALLBACKOP_REGISTER: u32 = 0;
/// `CALLBACKOP_unregister`.
pub const CALLBACKOP_UNREGISTER: u32 = 1;

code_enum! {
    /// Commands of `callback_op` (hypercall 30).
    pub enum CallbackCmd: u32 ["callback_op"] {
        /// Register a callback (`callback_register`).
        Register = CALLBACKOP_REGISTER => "CALLBACKOP_register",
        /// Unregister a callback (`callback_unregister`).
        Unregister = CALLBACKOP_UNREGISTER => "CALLBACKOP_unregister",
    }
    try_from: [u64];
}

/// `CALLBACKTYPE_event`: event-channel upcall entry.
pub const CALLBACKTYPE_EVENT: u16 = 0;
/// `CALLBACKTYPE_failsafe`: entered when segment state cannot be restored.
pub const CALLBACKTYPE_FAILSAFE: u16 = 1;
/// `CALLBACKTYPE_syscall`: `SYSCALL` from 64-bit guest user mode.
pub const CALLBACKTYPE_SYSCALL: u16 = 2;
/// `CALLBACKTYPE_sysenter_deprecated`: unused on 64-bit.
pub const CALLBACKTYPE_SYSENTER_DEPRECATED: u16 = 3;
/// `CALLBACKTYPE_nmi`: NMI entry.
pub const CALLBACKTYPE_NMI: u16 = 4;
/// `CALLBACKTYPE_sysenter`: `SYSENTER` from 32-bit user code.
pub const CALLBACKTYPE_SYSENTER: u16 = 5;
/// `CALLBACKTYPE_syscall32`: `SYSCALL` from 32-bit user code.
pub const CALLBACKTYPE_SYSCALL32: u16 = 7;

code_enum! {
    /// `callback_register.type` values.
    pub enum CallbackType: u16 ["callback type"] {
        /// Event upcall.
        Event = CALLBACKTYPE_EVENT => "CALLBACKTYPE_event",
        /// Failsafe.
        Failsafe = CALLBACKTYPE_FAILSAFE => "CALLBACKTYPE_failsafe",
        /// 64-bit syscall.
        Syscall = CALLBACKTYPE_SYSCALL => "CALLBACKTYPE_syscall",
        /// Deprecated sysenter slot.
        SysenterDeprecated = CALLBACKTYPE_SYSENTER_DEPRECATED => "CALLBACKTYPE_sysenter_deprecated",
        /// NMI.
        Nmi = CALLBACKTYPE_NMI => "CALLBACKTYPE_nmi",
        /// 32-bit sysenter.
        Sysenter = CALLBACKTYPE_SYSENTER => "CALLBACKTYPE_sysenter",
        /// 32-bit syscall.
        Syscall32 = CALLBACKTYPE_SYSCALL32 => "CALLBACKTYPE_syscall32",
    }
    try_from: [u32, u64];
}

/// `CALLBACKF_mask_events`: mask events when the callback is entered.
pub const CALLBACKF_MASK_EVENTS: u16 = 1 << 0;

/// `callback_register` (16 bytes; reference §8.2).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallbackRegister {
    /// `CALLBACKTYPE_*` (`type` in Xen).
    pub type_: u16,
    /// `CALLBACKF_*`.
    pub flags: u16,
    /// Padding; zero.
    pub _pad0: u32,
    /// Entry address (must be canonical).
    pub address: u64,
}

assert_layout!(CallbackRegister, size = 16, align = 8, {
    type_: u16 = 0,
    flags: u16 = 2,
    _pad0: u32 = 4,
    address: u64 = 8,
});

/// `callback_unregister` (4 bytes; reference §8.2).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallbackUnregister {
    /// `CALLBACKTYPE_*` (`type` in Xen).
    pub type_: u16,
    /// Unused; zero.
    pub _unused: u16,
}

assert_layout!(CallbackUnregister, size = 4, align = 2, {
    type_: u16 = 0,
    _unused: u16 = 2,
});

/// `XENNMI_register_callback` (old `nmi_op`).
pub const XENNMI_REGISTER_CALLBACK: u32 = 0;
/// `XENNMI_unregister_callback` (old `nmi_op`).
pub const XENNMI_UNREGISTER_CALLBACK: u32 = 1;

code_enum! {
    /// Commands of the old `nmi_op` (hypercall 28).
    pub enum NmiCmd: u32 ["nmi_op"] {
        /// Register the NMI handler.
        RegisterCallback = XENNMI_REGISTER_CALLBACK => "XENNMI_register_callback",
        /// Unregister it.
        UnregisterCallback = XENNMI_UNREGISTER_CALLBACK => "XENNMI_unregister_callback",
    }
    try_from: [u64];
}

/// `xennmi_callback` (16 bytes): argument of `XENNMI_register_callback`.
///
/// The reference gives only `{u64 handler_address; u64 pad}`; offsets derived, not measured.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XennmiCallback {
    /// Handler address.
    pub handler_address: u64,
    /// Padding (`pad` in Xen); zero.
    pub _pad0: u64,
}

assert_layout!(XennmiCallback, size = 16, align = 8, {
    handler_address: u64 = 0,
    _pad0: u64 = 8,
});

/// `iret_context` (72 bytes; reference §8.5): the frame the `iret` hypercall reads from the guest
/// stack. The stub pushes `rcx`, `r11`, `rax`; the guest pushed the rest beforehand.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IretContext {
    /// Guest `rax` (pushed by the stub); becomes the "return value".
    pub rax: u64,
    /// Guest `r11` (pushed by the stub).
    pub r11: u64,
    /// Guest `rcx` (pushed by the stub).
    pub rcx: u64,
    /// 0 or `VGCF_in_syscall` (see [`crate::vcpu::VGCF_IN_SYSCALL`]).
    pub flags: u64,
    /// Return address.
    pub rip: u64,
    /// Return code selector (RPL 3 ⇒ return to user mode).
    pub cs: u64,
    /// Return flags (IF restores the upcall mask).
    pub rflags: u64,
    /// Return stack pointer.
    pub rsp: u64,
    /// Return stack selector.
    pub ss: u64,
}

assert_layout!(IretContext, size = 72, align = 8, {
    rax: u64 = 0,
    r11: u64 = 8,
    rcx: u64 = 16,
    flags: u64 = 24,
    rip: u64 = 32,
    cs: u64 = 40,
    rflags: u64 = 48,
    rsp: u64 = 56,
    ss: u64 = 64,
});

/// Bit position of the saved upcall mask inside the CS slot of a bounce frame (bits 32–39).
pub const BOUNCE_CS_UPCALL_MASK_SHIFT: u32 = 32;

/// The CS slot of a bounce frame: the selector in bits 0–15 and the pre-delivery
/// `evtchn_upcall_mask` in bits 32–39 (reference §8.3).
#[must_use]
pub const fn bounce_frame_cs(cs: u16, saved_upcall_mask: u8) -> u64 {
    (saved_upcall_mask as u64) << BOUNCE_CS_UPCALL_MASK_SHIFT | cs as u64
}

/// The exception/event bounce frame without error code (56 bytes; reference §8.3), lowest
/// address first. Not a Xen C struct: layout taken from the reference's frame table.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BounceFrame {
    /// Interrupted `rcx`.
    pub rcx: u64,
    /// Interrupted `r11`.
    pub r11: u64,
    /// Interrupted (or next) instruction.
    pub rip: u64,
    /// See [`bounce_frame_cs`].
    pub cs: u64,
    /// Interrupted flags with IF = !old upcall mask.
    pub rflags: u64,
    /// Interrupted stack pointer.
    pub rsp: u64,
    /// Interrupted stack selector.
    pub ss: u64,
}

assert_layout!(BounceFrame, size = 56, align = 8, {
    rcx: u64 = 0,
    r11: u64 = 8,
    rip: u64 = 16,
    cs: u64 = 24,
    rflags: u64 = 32,
    rsp: u64 = 40,
    ss: u64 = 48,
});

/// The bounce frame with an error code (64 bytes; reference §8.3).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BounceFrameWithError {
    /// Interrupted `rcx`.
    pub rcx: u64,
    /// Interrupted `r11`.
    pub r11: u64,
    /// Zero-extended 32-bit error code.
    pub error_code: u64,
    /// Interrupted instruction.
    pub rip: u64,
    /// See [`bounce_frame_cs`].
    pub cs: u64,
    /// Interrupted flags.
    pub rflags: u64,
    /// Interrupted stack pointer.
    pub rsp: u64,
    /// Interrupted stack selector.
    pub ss: u64,
}

assert_layout!(BounceFrameWithError, size = 64, align = 8, {
    rcx: u64 = 0,
    r11: u64 = 8,
    error_code: u64 = 16,
    rip: u64 = 24,
    cs: u64 = 32,
    rflags: u64 = 40,
    rsp: u64 = 48,
    ss: u64 = 56,
});

/// The failsafe-callback frame (88 bytes; reference §8.6), lowest address first.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FailsafeFrame {
    /// Interrupted `rcx`.
    pub rcx: u64,
    /// Interrupted `r11`.
    pub r11: u64,
    /// Data segment selector that failed to load (or was current).
    pub ds: u64,
    /// ES selector.
    pub es: u64,
    /// FS selector.
    pub fs: u64,
    /// GS selector.
    pub gs: u64,
    /// Interrupted instruction.
    pub rip: u64,
    /// See [`bounce_frame_cs`].
    pub cs: u64,
    /// Interrupted flags.
    pub rflags: u64,
    /// Interrupted stack pointer.
    pub rsp: u64,
    /// Interrupted stack selector.
    pub ss: u64,
}

assert_layout!(FailsafeFrame, size = 88, align = 8, {
    rcx: u64 = 0,
    r11: u64 = 8,
    ds: u64 = 16,
    es: u64 = 24,
    fs: u64 = 32,
    gs: u64 = 40,
    rip: u64 = 48,
    cs: u64 = 56,
    rflags: u64 = 64,
    rsp: u64 = 72,
    ss: u64 = 80,
});

/// Start of the range in which a bounce-frame address crashes the domain
/// (`HYPERVISOR_VIRT_START`; reference §8.3 step 2).
pub const BOUNCE_FORBIDDEN_START: u64 = crate::mm::HYPERVISOR_VIRT_START;
/// End (exclusive) of that range: `HYPERVISOR_VIRT_END + 0x40`.
pub const BOUNCE_FORBIDDEN_END: u64 = crate::mm::HYPERVISOR_VIRT_END + 0x40;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trap_info_flags() {
        let t = TrapInfo {
            vector: 3,
            flags: 3 | TI_IF,
            cs: 0x8,
            _pad0: 0,
            address: 0xffff_ffff_8000_1000,
        };
        assert_eq!(t.dpl(), 3);
        assert!(t.is_interrupt_gate() && !t.is_terminator());
        assert!(TrapInfo::default().is_terminator());
    }

    #[test]
    fn error_code_vectors() {
        let with: std::vec::Vec<u8> = (0..=255u8).filter(|&v| vector_has_error_code(v)).collect();
        assert_eq!(with, [8, 10, 11, 12, 13, 14, 17, 21, 29, 30]);
    }

    #[test]
    fn callback_decoding() {
        assert_eq!(CallbackType::try_from(7u16), Ok(CallbackType::Syscall32));
        assert!(CallbackType::try_from(6u16).is_err());
        assert_eq!(CallbackCmd::try_from(1u64), Ok(CallbackCmd::Unregister));
    }

    #[test]
    fn bounce_cs_packs_mask() {
        assert_eq!(bounce_frame_cs(0xe030, 1), 0x0000_0001_0000_e030);
        assert_eq!(bounce_frame_cs(0xe033, 0), 0xe033);
    }
}
