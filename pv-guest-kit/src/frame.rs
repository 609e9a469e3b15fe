//! The register frames the kit's trap stubs hand to Rust handlers.
//!
//! When Xen bounces an exception into the guest it leaves RCX, R11, [error code,] RIP, CS,
//! RFLAGS, RSP, SS on the guest stack (reference §8.3). The kit's stub pops RCX and R11 back
//! into their registers, pushes a zero error code where the CPU has none, pushes the vector and
//! every general register, and passes the handler a `&mut` [`TrapFrame`] over that memory.
//! Whatever the handler leaves in the frame (for example `rip` advanced past the faulting
//! instruction) is what the stub returns to, through the `iret` hypercall.

use hypercall_abi::traps::BOUNCE_CS_UPCALL_MASK_SHIFT;

/// RFLAGS bits the kit and its tests look at (architectural values).
pub mod rflags {
    /// Carry.
    pub const CF: u64 = 1 << 0;
    /// Trap flag: single-step.
    pub const TF: u64 = 1 << 8;
    /// Interrupt enable; in a bounce frame it is `!evtchn_upcall_mask` (reference §8.3).
    pub const IF: u64 = 1 << 9;
    /// Direction flag.
    pub const DF: u64 = 1 << 10;
    /// I/O privilege level (2 bits).
    pub const IOPL: u64 = 3 << 12;
    /// Nested task.
    pub const NT: u64 = 1 << 14;
    /// Resume flag.
    pub const RF: u64 = 1 << 16;
    /// Alignment check (with CR0.AM, at CPL 3).
    pub const AC: u64 = 1 << 18;
}

/// The general registers as the trap stubs save them (lowest address first).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[expect(missing_docs, reason = "one field per register, named after it")]
pub struct Registers {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
}

/// Size of [`Registers`] (15 registers), used by the stubs' assembly.
pub const REGISTERS_SIZE: usize = 15 * 8;

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<Registers>() == REGISTERS_SIZE);
    assert!(offset_of!(Registers, r15) == 0);
    assert!(offset_of!(Registers, r11) == 4 * 8);
    assert!(offset_of!(Registers, rcx) == 12 * 8);
    assert!(offset_of!(Registers, rax) == 14 * 8);
};

/// The bytes of Xen's frame an entry takes off before saving anything: it pops the RCX and
/// R11 slots back into their registers (reference §8.3).
pub(crate) const POPPED_BY_ENTRY: usize = 2 * 8;

/// Asserts that the kit frame `$kit` ends with Xen's frame `$xen` (the ABI's layout, from
/// [`hypercall_abi::traps`]) as an entry leaves it: the `$field`s where Xen put them, less the
/// RCX and R11 slots the entry popped, above the `$below` bytes the entry pushed.
macro_rules! ends_with_xen_frame {
    ($kit:ty, $xen:ty, below = $below:expr, [$($field:ident),+ $(,)?]) => {
        const _: () = {
            use core::mem::{offset_of, size_of};
            const SHIFT: usize = $below - $crate::frame::POPPED_BY_ENTRY;
            assert!(offset_of!($xen, rcx) == 0 && offset_of!($xen, r11) == 8);
            $(assert!(offset_of!($kit, $field) == offset_of!($xen, $field) + SHIFT);)+
            assert!(size_of::<$kit>() == size_of::<$xen>() + SHIFT);
        };
    };
}
// For the upcall entry's frame (`crate::arch::upcall`), which exists only on the guest target.
#[cfg(target_os = "none")]
pub(crate) use ends_with_xen_frame;

/// An exception (or software interrupt) as the handler sees it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrapFrame {
    /// The interrupted code's general registers (RCX and R11 included: the stub restored them
    /// from Xen's frame before saving).
    pub regs: Registers,
    /// The vector (0–255).
    pub vector: u64,
    /// The error code (zero-extended), or 0 for vectors without one.
    pub error_code: u64,
    /// Where execution resumes: the faulting instruction for faults, the next one for traps
    /// and software interrupts. Handlers may change it.
    pub rip: u64,
    /// Bits 0–15: the interrupted CS (RPL 0 when the guest kernel was interrupted, 3 for guest
    /// user mode); bits 32–39: `evtchn_upcall_mask` before delivery (reference §8.3).
    pub cs: u64,
    /// The interrupted RFLAGS, with IF = !(saved upcall mask).
    pub rflags: u64,
    /// The interrupted stack pointer.
    pub rsp: u64,
    /// The interrupted stack selector.
    pub ss: u64,
}

/// Offset of [`TrapFrame::vector`], used by the stubs' assembly.
pub const TRAP_FRAME_VECTOR_OFFSET: usize = REGISTERS_SIZE;
/// Size of [`TrapFrame`].
pub const TRAP_FRAME_SIZE: usize = REGISTERS_SIZE + 7 * 8;

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<TrapFrame>() == TRAP_FRAME_SIZE);
    assert!(offset_of!(TrapFrame, vector) == TRAP_FRAME_VECTOR_OFFSET);
    assert!(offset_of!(TrapFrame, error_code) == REGISTERS_SIZE + 8);
    assert!(offset_of!(TrapFrame, rip) == REGISTERS_SIZE + 16);
    assert!(offset_of!(TrapFrame, ss) == REGISTERS_SIZE + 48);
};

ends_with_xen_frame!(
    TrapFrame,
    hypercall_abi::traps::BounceFrameWithError,
    below = REGISTERS_SIZE + 8,
    [error_code, rip, cs, rflags, rsp, ss]
);

/// The failsafe callback's frame (reference §8.6) as the kit's failsafe stub saves it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FailsafeFrame {
    /// The interrupted code's general registers.
    pub regs: Registers,
    /// The DS selector Xen tried to load.
    pub ds: u64,
    /// The ES selector.
    pub es: u64,
    /// The FS selector.
    pub fs: u64,
    /// The GS selector.
    pub gs: u64,
    /// Where execution resumes.
    pub rip: u64,
    /// CS with the saved upcall mask in bits 32–39.
    pub cs: u64,
    /// RFLAGS with IF = !(saved upcall mask).
    pub rflags: u64,
    /// Stack pointer.
    pub rsp: u64,
    /// Stack selector.
    pub ss: u64,
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<FailsafeFrame>() == REGISTERS_SIZE + 9 * 8);
    assert!(offset_of!(FailsafeFrame, ds) == REGISTERS_SIZE);
    assert!(offset_of!(FailsafeFrame, rip) == REGISTERS_SIZE + 32);
};

ends_with_xen_frame!(
    FailsafeFrame,
    hypercall_abi::traps::FailsafeFrame,
    below = REGISTERS_SIZE,
    [ds, es, fs, gs, rip, cs, rflags, rsp, ss]
);

/// A system call from guest user mode, as the kit's syscall entry saves it (reference §8.3).
///
/// Xen enters the syscall callback on the kernel stack (`stack_switch`) with RCX, R11, RIP, CS,
/// RFLAGS, RSP, SS; RCX and R11 hold the user's return RIP and RFLAGS (what `syscall` put
/// there), RIP is the same return RIP, CS is the user selector (`0xe033`, RPL 3: "from user
/// mode"). The entry pops RCX and R11 back into their registers and saves every register, so
/// `regs` holds the user's registers at the `syscall` (the number in `rax`, the arguments in
/// `rdi`, `rsi`, `rdx`, `r10`, `r8`, `r9`, as on Linux).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallFrame {
    /// The user's registers; `rcx` = return RIP and `r11` = RFLAGS (from Xen's frame).
    pub regs: Registers,
    /// Where the user continues (after the `syscall`).
    pub rip: u64,
    /// The user code selector (RPL 3), with the upcall mask before delivery in bits 32–39.
    pub cs: u64,
    /// The user's RFLAGS, with IF = !(saved upcall mask).
    pub rflags: u64,
    /// The user stack pointer.
    pub rsp: u64,
    /// The user stack selector.
    pub ss: u64,
}

/// Size of [`SyscallFrame`].
pub const SYSCALL_FRAME_SIZE: usize = REGISTERS_SIZE + 5 * 8;

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<SyscallFrame>() == SYSCALL_FRAME_SIZE);
    assert!(offset_of!(SyscallFrame, rip) == REGISTERS_SIZE);
    assert!(offset_of!(SyscallFrame, ss) == REGISTERS_SIZE + 32);
};

ends_with_xen_frame!(
    SyscallFrame,
    hypercall_abi::traps::BounceFrame,
    below = REGISTERS_SIZE,
    [rip, cs, rflags, rsp, ss]
);

impl SyscallFrame {
    /// The user code selector (bits 0–15 of the CS slot).
    pub fn selector(&self) -> u16 {
        cs_selector(self.cs)
    }

    /// `evtchn_upcall_mask` as it was before delivery.
    pub fn saved_upcall_mask(&self) -> u8 {
        cs_upcall_mask(self.cs)
    }

    /// Whether the call came from guest user mode (selector RPL 3).
    pub fn from_user_mode(&self) -> bool {
        self.cs & 3 == 3
    }

    /// The system call number (`rax`).
    pub fn number(&self) -> u64 {
        self.regs.rax
    }

    /// Argument `n` (0–5: `rdi`, `rsi`, `rdx`, `r10`, `r8`, `r9`), 0 past them.
    pub fn arg(&self, n: usize) -> u64 {
        let r = &self.regs;
        match n {
            0 => r.rdi,
            1 => r.rsi,
            2 => r.rdx,
            3 => r.r10,
            4 => r.r8,
            5 => r.r9,
            _ => 0,
        }
    }
}

/// Decoding of the CS slot of a bounce frame, shared by both frame kinds.
fn cs_selector(cs: u64) -> u16 {
    (cs & 0xffff) as u16
}

fn cs_upcall_mask(cs: u64) -> u8 {
    ((cs >> BOUNCE_CS_UPCALL_MASK_SHIFT) & 0xff) as u8
}

impl TrapFrame {
    /// The interrupted code selector (bits 0–15 of the CS slot).
    pub fn selector(&self) -> u16 {
        cs_selector(self.cs)
    }

    /// `evtchn_upcall_mask` as it was before delivery (bits 32–39 of the CS slot).
    pub fn saved_upcall_mask(&self) -> u8 {
        cs_upcall_mask(self.cs)
    }

    /// Whether guest kernel mode was interrupted (selector RPL 0), rather than guest user mode.
    pub fn from_kernel_mode(&self) -> bool {
        self.cs & 3 == 0
    }

    /// Whether the vector was one the kit knows carries an error code.
    pub fn has_error_code(&self) -> bool {
        u8::try_from(self.vector).is_ok_and(hypercall_abi::traps::vector_has_error_code)
    }
}

impl FailsafeFrame {
    /// The interrupted code selector.
    pub fn selector(&self) -> u16 {
        cs_selector(self.cs)
    }

    /// `evtchn_upcall_mask` as it was before delivery.
    pub fn saved_upcall_mask(&self) -> u8 {
        cs_upcall_mask(self.cs)
    }
}

/// The mnemonic of an exception vector (`"#PF"`), or `"int"` for vectors 32–255.
pub const fn vector_name(vector: u64) -> &'static str {
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
        9 => "coprocessor overrun",
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
        15 | 22..=27 | 31 => "reserved",
        _ => "int",
    }
}

impl core::fmt::Display for TrapFrame {
    /// One line: `#PF (vector 14) error 0x0 at e030:ffffffff80001234 rflags 0x246 rsp
    /// e02b:ffffffff8002ff00 mask 1`, then the general registers.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let r = &self.regs;
        write!(
            f,
            "{} (vector {}) error {:#x} at {:04x}:{:016x} rflags {:#x} rsp {:04x}:{:016x} \
             upcall mask {}\n  rax {:016x} rbx {:016x} rcx {:016x} rdx {:016x}\n  \
             rsi {:016x} rdi {:016x} rbp {:016x} r8  {:016x}\n  r9  {:016x} r10 {:016x} \
             r11 {:016x} r12 {:016x}\n  r13 {:016x} r14 {:016x} r15 {:016x}",
            vector_name(self.vector),
            self.vector,
            self.error_code,
            self.selector(),
            self.rip,
            self.rflags,
            self.ss & 0xffff,
            self.rsp,
            self.saved_upcall_mask(),
            r.rax,
            r.rbx,
            r.rcx,
            r.rdx,
            r.rsi,
            r.rdi,
            r.rbp,
            r.r8,
            r.r9,
            r.r10,
            r.r11,
            r.r12,
            r.r13,
            r.r14,
            r.r15
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cs_slot_decoding() {
        let frame = TrapFrame {
            vector: 14,
            cs: 0x0000_0001_0000_e030,
            ..TrapFrame::default()
        };
        assert_eq!(frame.selector(), 0xe030);
        assert_eq!(frame.saved_upcall_mask(), 1);
        assert!(frame.from_kernel_mode());
        assert!(frame.has_error_code());
        let sys = SyscallFrame {
            cs: 0x1_0000_e033,
            regs: Registers {
                rax: 2,
                rdi: 7,
                r10: 9,
                ..Registers::default()
            },
            ..SyscallFrame::default()
        };
        assert!(sys.from_user_mode());
        assert_eq!((sys.selector(), sys.saved_upcall_mask()), (0xe033, 1));
        assert_eq!(
            (sys.number(), sys.arg(0), sys.arg(3), sys.arg(6)),
            (2, 7, 9, 0)
        );
        let user = TrapFrame {
            vector: 3,
            cs: 0xe033,
            ..TrapFrame::default()
        };
        assert!(!user.from_kernel_mode() && !user.has_error_code());
        assert_eq!(user.saved_upcall_mask(), 0);
    }

    #[test]
    fn names() {
        assert_eq!(vector_name(14), "#PF");
        assert_eq!(vector_name(15), "reserved");
        assert_eq!(vector_name(0x80), "int");
    }
}
