//! Guest user mode (reference §7.4–§7.5, §8.2–§8.5).
//!
//! A 64-bit PV kernel and its user programs both run in ring 3; the hypervisor tells them apart
//! with a per-vCPU mode flag and gives each mode its own root page table. The kit follows
//! Xen's rule for them: a **user** L4 of its own that maps only the user program (the kernel's
//! mappings are absent, so user code cannot reach kernel memory), loaded by the hypervisor
//! whenever the vCPU enters user mode (`MMUEXT_NEW_USER_BASEPTR`).
//!
//! How the pieces fit (guest target):
//!
//! 1. [`init`] gives the hypervisor a kernel stack for entries from user mode (`stack_switch`)
//!    and registers the kit's system-call entry (`callback_op`, `CALLBACKTYPE_syscall`).
//! 2. [`UserSpace::new`] makes an empty user L4 (pinned); [`UserSpace::load`] copies a
//!    [`UserProgram`] into fresh frames mapped user-executable; [`UserSpace::map_fresh`] adds
//!    stack and data pages.
//! 3. [`set_syscall_handler`] names the kernel's handler: it gets a `&mut`
//!    [`SyscallFrame`](crate::frame::SyscallFrame) and answers a [`SyscallAction`].
//! 4. [`UserSpace::run`] sets the user root and enters user mode with the `iret` hypercall and
//!    a user code selector (`0xe033`, RPL 3). A `syscall` in user mode comes back to the
//!    kernel through Xen's bounce frame; the kit saves the registers, calls the handler and
//!    returns to user mode with `iret` + `VGCF_in_syscall` (Xen leaves through `sysret`).
//!    Exceptions in user mode reach the kit's trap stubs as usual (with CS RPL 3 and the `U`
//!    bit in a #PF error code), and their `iret` returns to user mode. [`run`] returns when
//!    the handler answers [`SyscallAction::Exit`] (or a trap handler calls [`exit_from_trap`]),
//!    with the exit code.
//!
//! Events stay masked in user mode (the `iret` frame has IF clear), as in the rest of the kit.
//!
//! [`demo`] is a tiny user program with its system calls — write a string through the kernel's
//! console, get a value from the kernel, store it in a page nobody mapped yet (a page fault
//! the kernel resolves), exit with the value read back — and a kernel-side handler for them.
//!
//! [`init`]: crate::arch::user::init
//! [`UserSpace::new`]: crate::arch::user::UserSpace::new
//! [`UserSpace::load`]: crate::arch::user::UserSpace::load
//! [`UserSpace::map_fresh`]: crate::arch::user::UserSpace::map_fresh
//! [`UserProgram`]: crate::arch::user::UserProgram
//! [`set_syscall_handler`]: crate::arch::user::set_syscall_handler
//! [`UserSpace::run`]: crate::arch::user::UserSpace::run
//! [`run`]: crate::arch::user::UserSpace::run
//! [`exit_from_trap`]: crate::arch::user::exit_from_trap
//! [`demo`]: crate::arch::user::demo

#[cfg(target_os = "none")]
pub use crate::arch::user::{
    SyscallHandler, UserError, UserProgram, UserSpace, demo, exit_from_trap, init,
    kernel_stack_top, set_syscall_handler,
};
pub use crate::frame::SyscallFrame;

/// Where the kit's helpers put a user program by default (4 MiB, L4 slot 0).
pub const CODE_VA: u64 = 0x0000_0000_0040_0000;
/// A default place for user data pages.
pub const DATA_VA: u64 = 0x0000_0000_0060_0000;
/// A default top of the user stack (the stack grows down from here).
pub const STACK_TOP: u64 = 0x0000_0000_0080_0000;

/// The system-call numbers of the kit's demo ABI (in `rax`; arguments in `rdi`, `rsi`, ...;
/// the result in `rax`, `-errno` on failure).
pub mod sys {
    /// Does nothing; returns 0 (a round trip for benchmarks).
    pub const NOP: u64 = 0;
    /// `write(buf = rdi, len = rsi)`: prints the text on the kernel's console; returns `len`.
    pub const WRITE: u64 = 1;
    /// `get_value()`: returns a value the kernel chose.
    pub const GET_VALUE: u64 = 2;
    /// `exit(code = rdi)`: ends the program; [`run`](crate::arch::user::UserSpace::run)
    /// returns `code`.
    pub const EXIT: u64 = 3;
}

/// What the kernel's system-call handler wants done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyscallAction {
    /// Return to the user program with this value in `rax`.
    Return(u64),
    /// End the user program; `run` returns this code.
    Exit(u64),
}

/// The `RFLAGS` the kit enters user mode with: reserved bit 1 only (IF clear: events stay
/// masked; Xen sets the hardware IF itself).
pub const USER_RFLAGS: u64 = 0x2;
