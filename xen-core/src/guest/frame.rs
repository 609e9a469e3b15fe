//! The register frame saved on every entry into the hypervisor.
//!
//! The architecture layer builds it at the top of the CPU's hypervisor stack for every
//! interrupt, exception and `syscall` (the order below is what its entry code pushes, lowest
//! address first) and restores from it on the way out. While a vCPU runs guest code, its
//! register state *is* this frame: hypercalls read their arguments from it, write their result
//! into it, and exception delivery rewrites it to enter the guest's handler.

/// Vector number the entry code uses for `syscall` from 64-bit code.
pub const VECTOR_SYSCALL: u64 = 0x100;
/// Vector number the entry code uses for `syscall` from compatibility mode.
pub const VECTOR_SYSCALL32: u64 = 0x101;

/// Saved registers.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Frame {
    /// R15.
    pub r15: u64,
    /// R14.
    pub r14: u64,
    /// R13.
    pub r13: u64,
    /// R12.
    pub r12: u64,
    /// R11.
    pub r11: u64,
    /// R10.
    pub r10: u64,
    /// R9.
    pub r9: u64,
    /// R8.
    pub r8: u64,
    /// RBP.
    pub rbp: u64,
    /// RDI.
    pub rdi: u64,
    /// RSI.
    pub rsi: u64,
    /// RDX.
    pub rdx: u64,
    /// RCX.
    pub rcx: u64,
    /// RBX.
    pub rbx: u64,
    /// RAX.
    pub rax: u64,
    /// Vector number (or [`VECTOR_SYSCALL`]).
    pub vector: u64,
    /// Error code (0 when the CPU pushes none).
    pub error_code: u64,
    /// Interrupted RIP.
    pub rip: u64,
    /// Interrupted CS.
    pub cs: u64,
    /// Interrupted RFLAGS.
    pub rflags: u64,
    /// Interrupted RSP.
    pub rsp: u64,
    /// Interrupted SS.
    pub ss: u64,
}

/// Size of [`Frame`] in bytes.
pub const FRAME_SIZE: usize = 22 * 8;
const _: () = assert!(core::mem::size_of::<Frame>() == FRAME_SIZE);
/// Offset of `cs` in the frame (the entry code tests its RPL).
pub const FRAME_CS: usize = 18 * 8;
const _: () = assert!(core::mem::offset_of!(Frame, cs) == FRAME_CS);

impl Frame {
    /// Writes the general registers as five lines (`rax: ... rbx: ... rcx: ...` and so on),
    /// each through `line`, for crash reports.
    pub fn dump_gprs(&self, line: &mut dyn FnMut(core::fmt::Arguments<'_>)) {
        line(format_args!(
            "rax: {:016x}   rbx: {:016x}   rcx: {:016x}\n",
            self.rax, self.rbx, self.rcx
        ));
        line(format_args!(
            "rdx: {:016x}   rsi: {:016x}   rdi: {:016x}\n",
            self.rdx, self.rsi, self.rdi
        ));
        line(format_args!(
            "rbp: {:016x}   r8:  {:016x}   r9:  {:016x}\n",
            self.rbp, self.r8, self.r9
        ));
        line(format_args!(
            "r10: {:016x}   r11: {:016x}   r12: {:016x}\n",
            self.r10, self.r11, self.r12
        ));
        line(format_args!(
            "r13: {:016x}   r14: {:016x}   r15: {:016x}\n",
            self.r13, self.r14, self.r15
        ));
    }

    /// Whether the frame was taken from ring 3 (guest code).
    pub fn from_guest(&self) -> bool {
        self.cs & 3 == 3
    }

    /// General register `n` in the instruction encoding's numbering (0 = rax ... 15 = r15).
    pub fn gpr(&self, n: u8) -> u64 {
        match n & 15 {
            0 => self.rax,
            1 => self.rcx,
            2 => self.rdx,
            3 => self.rbx,
            4 => self.rsp,
            5 => self.rbp,
            6 => self.rsi,
            7 => self.rdi,
            8 => self.r8,
            9 => self.r9,
            10 => self.r10,
            11 => self.r11,
            12 => self.r12,
            13 => self.r13,
            14 => self.r14,
            _ => self.r15,
        }
    }

    /// Sets general register `n` (same numbering as [`Frame::gpr`]).
    pub fn set_gpr(&mut self, n: u8, v: u64) {
        let r = match n & 15 {
            0 => &mut self.rax,
            1 => &mut self.rcx,
            2 => &mut self.rdx,
            3 => &mut self.rbx,
            4 => &mut self.rsp,
            5 => &mut self.rbp,
            6 => &mut self.rsi,
            7 => &mut self.rdi,
            8 => &mut self.r8,
            9 => &mut self.r9,
            10 => &mut self.r10,
            11 => &mut self.r11,
            12 => &mut self.r12,
            13 => &mut self.r13,
            14 => &mut self.r14,
            _ => &mut self.r15,
        };
        *r = v;
    }

    /// The five hypercall arguments: rdi, rsi, rdx, r10, r8.
    pub fn hypercall_args(&self) -> [u64; 5] {
        [self.rdi, self.rsi, self.rdx, self.r10, self.r8]
    }
}
