//! User mode: the system-call entry, entering and leaving user mode, user address spaces and
//! the demo program (see [`crate::user`] for the overview).
//!
//! # The assembly
//!
//! - `pv_guest_kit_user_run(rip, rsp)` saves the callee-saved registers and the kernel stack
//!   pointer, builds `[flags 0, rip, cs 0xe033, rflags, rsp, ss 0xe02b]`, clears every general
//!   register (nothing of the kernel leaks to user mode) and jumps to the `iret` stub: the CS
//!   RPL 3 makes Xen switch to user mode and load the user root.
//! - `pv_guest_kit_syscall_entry` is the syscall callback. Xen enters it in kernel mode on the
//!   `stack_switch` stack with `[rcx, r11, rip, cs, rflags, rsp, ss]` (reference §8.3); it pops
//!   RCX and R11 (the user's return RIP and RFLAGS), saves the registers as a
//!   [`SyscallFrame`], calls the handler and, unless the program exits, restores the
//!   registers (with the handler's `rax`) and returns with `[VGCF_in_syscall, rip, cs, rflags,
//!   rsp, ss]` through the `iret` stub.
//! - `pv_guest_kit_user_exit` restores the stack pointer and registers saved by `run` and
//!   returns the exit code from it.

use core::ptr::addr_of;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use hypercall_abi::hypercall::{HYPERCALL_STUB_SIZE, HYPERVISOR_IRET};
use hypercall_abi::mm::{_PAGE_PRESENT, _PAGE_USER, pte_mfn};
use hypercall_abi::segments::{FLAT_KERNEL_SS, FLAT_RING3_CS64, FLAT_RING3_SS64};
use hypercall_abi::traps::{CALLBACKF_MASK_EVENTS, CallbackType};
use hypercall_abi::vcpu::VGCF_IN_SYSCALL;

use super::frame_asm::{call_with_frame, pop_registers, push_registers};
use super::frames;
use super::paging::{AddressSpace, new_user_baseptr};
use crate::errno::{Errno, HypercallResult};
use crate::frame::{SyscallFrame, TrapFrame};
use crate::layout::PAGE_SIZE_U64;
use crate::mm::{Frame, Level, MapError, flags};
use crate::user::{SyscallAction, USER_RFLAGS};

/// The size of the kernel stack entries from user mode run on.
pub const KERNEL_STACK_SIZE: usize = 32 * 1024;

/// The kernel selector a trap frame gets to resume kernel code (RPL 0).
const KERNEL_CS_RPL0: u64 = 0xe030;

core::arch::global_asm!(
    ".pushsection .bss.pv_guest_kit.user_stack, \"aw\", @nobits",
    ".balign 4096",
    ".globl pv_guest_kit_user_entry_stack",
    "pv_guest_kit_user_entry_stack:",
    ".skip {stack_size}",
    ".globl pv_guest_kit_user_entry_stack_top",
    "pv_guest_kit_user_entry_stack_top:",
    ".popsection",
    ".pushsection .text.pv_guest_kit.user, \"ax\", @progbits",
    // The syscall callback.
    ".balign 16",
    ".globl pv_guest_kit_syscall_entry",
    "pv_guest_kit_syscall_entry:",
    "    pop %rcx",
    "    pop %r11",
    push_registers!(),
    call_with_frame!(dispatch),
    "    mov %rbx, %rsp",
    "    test %rax, %rax",
    "    jnz pv_guest_kit_user_exit",
    pop_registers!(),
    // [rip, cs, rflags, rsp, ss] remain: add the iret flags.
    "    push ${in_syscall}",
    "    jmp pv_guest_kit_hypercall_page + {iret_offset}",
    // Entering user mode: rdi = rip, rsi = rsp.
    ".balign 16",
    ".globl pv_guest_kit_user_run",
    "pv_guest_kit_user_run:",
    "    push %rbx",
    "    push %rbp",
    "    push %r12",
    "    push %r13",
    "    push %r14",
    "    push %r15",
    "    mov %rsp, {saved_rsp}(%rip)",
    "    push ${user_ss}",
    "    push %rsi",
    "    push ${user_rflags}",
    "    push ${user_cs}",
    "    push %rdi",
    "    push $0",
    "    xor %eax, %eax",
    "    xor %ebx, %ebx",
    "    xor %ecx, %ecx",
    "    xor %edx, %edx",
    "    xor %esi, %esi",
    "    xor %edi, %edi",
    "    xor %ebp, %ebp",
    "    xor %r8d, %r8d",
    "    xor %r9d, %r9d",
    "    xor %r10d, %r10d",
    "    xor %r11d, %r11d",
    "    xor %r12d, %r12d",
    "    xor %r13d, %r13d",
    "    xor %r14d, %r14d",
    "    xor %r15d, %r15d",
    "    jmp pv_guest_kit_hypercall_page + {iret_offset}",
    // Leaving user mode for good: back to run's caller with the exit code.
    ".balign 16",
    ".globl pv_guest_kit_user_exit",
    "pv_guest_kit_user_exit:",
    "    mov {saved_rsp}(%rip), %rsp",
    "    pop %r15",
    "    pop %r14",
    "    pop %r13",
    "    pop %r12",
    "    pop %rbp",
    "    pop %rbx",
    "    mov {exit_code}(%rip), %rax",
    "    ret",
    ".popsection",
    stack_size = const KERNEL_STACK_SIZE,
    dispatch = sym syscall_dispatch,
    saved_rsp = sym SAVED_RSP,
    exit_code = sym EXIT_CODE,
    in_syscall = const VGCF_IN_SYSCALL,
    iret_offset = const HYPERVISOR_IRET as usize * HYPERCALL_STUB_SIZE,
    user_ss = const FLAT_RING3_SS64,
    user_cs = const FLAT_RING3_CS64,
    user_rflags = const USER_RFLAGS,
    options(att_syntax)
);

unsafe extern "C" {
    static pv_guest_kit_user_entry_stack_top: u8;
    static pv_guest_kit_syscall_entry: u8;
    static pv_guest_kit_user_exit: u8;
}

unsafe extern "sysv64" {
    /// Enters user mode at `rip` with `rsp`; returns the exit code.
    fn pv_guest_kit_user_run(rip: u64, rsp: u64) -> u64;
}

/// The kernel stack pointer `run` saved (restored by the exit path).
static SAVED_RSP: AtomicU64 = AtomicU64::new(0);
/// The exit code the exit path returns.
static EXIT_CODE: AtomicU64 = AtomicU64::new(0);
static INITIALISED: AtomicBool = AtomicBool::new(false);
static RUNNING: AtomicBool = AtomicBool::new(false);
/// The user root last set by [`UserSpace::activate`] (0: none).
static ACTIVE_ROOT: AtomicU64 = AtomicU64::new(0);

/// A kernel system-call handler.
pub type SyscallHandler = fn(&mut SyscallFrame) -> SyscallAction;

static HANDLER: spin::Mutex<Option<SyscallHandler>> = spin::Mutex::new(None);

/// The top of the kernel stack the hypervisor switches to on entries from user mode.
pub fn kernel_stack_top() -> u64 {
    addr_of!(pv_guest_kit_user_entry_stack_top) as u64
}

/// Prepares user mode: `stack_switch(FLAT_KERNEL_SS, kernel_stack_top())` and the syscall
/// callback (`callback_op(register, CALLBACKTYPE_syscall, CALLBACKF_mask_events, entry)`).
///
/// # Errors
/// The hypervisor's error.
pub fn init() -> HypercallResult<()> {
    // SAFETY: the stack is the kit's own .bss stack reserved for entries from user mode; the
    // entry takes Xen's syscall frame and returns through the iret hypercall.
    unsafe {
        crate::hypercall::traps::stack_switch(FLAT_KERNEL_SS, kernel_stack_top())?;
        crate::hypercall::traps::callback_register(
            CallbackType::Syscall,
            CALLBACKF_MASK_EVENTS,
            addr_of!(pv_guest_kit_syscall_entry) as u64,
        )?;
    }
    INITIALISED.store(true, Ordering::SeqCst);
    Ok(())
}

/// Sets the kernel's system-call handler; returns the previous one.
pub fn set_syscall_handler(handler: SyscallHandler) -> Option<SyscallHandler> {
    HANDLER.lock().replace(handler)
}

extern "C" fn syscall_dispatch(frame: *mut SyscallFrame) -> u64 {
    // SAFETY: the entry passes the frame it just built on the stack; nothing else refers to it
    // until the handler returns.
    let frame = unsafe { &mut *frame };
    let handler = HANDLER.try_lock().and_then(|h| *h);
    let Some(handler) = handler else {
        panic!(
            "system call {} from user mode at {:#x} with no handler",
            frame.regs.rax, frame.rip
        );
    };
    match handler(frame) {
        SyscallAction::Return(value) => {
            frame.regs.rax = value;
            0
        }
        SyscallAction::Exit(code) => {
            EXIT_CODE.store(code, Ordering::SeqCst);
            1
        }
    }
}

/// From a trap handler that interrupted user mode: ends the user program, so that
/// [`UserSpace::run`] returns `code`. The frame is redirected to the kit's exit path in kernel
/// mode. Does nothing if the frame is not from user mode during a `run`.
pub fn exit_from_trap(frame: &mut TrapFrame, code: u64) {
    if frame.from_kernel_mode() || !RUNNING.load(Ordering::SeqCst) {
        return;
    }
    EXIT_CODE.store(code, Ordering::SeqCst);
    frame.rip = addr_of!(pv_guest_kit_user_exit) as u64;
    frame.cs = KERNEL_CS_RPL0;
    frame.rflags = USER_RFLAGS;
    // Any valid stack: the exit path loads the saved one first.
    frame.rsp = kernel_stack_top() - 256;
    frame.ss = u64::from(FLAT_KERNEL_SS);
}

/// A user program: position-independent machine code the kit copies into fresh frames.
/// Define one with [`user_program!`](crate::user_program).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserProgram {
    start: u64,
    end: u64,
}

impl UserProgram {
    /// The program whose bytes are `[start, end)`.
    ///
    /// # Safety
    /// The range must be readable memory of the image that never changes (code or read-only
    /// data).
    pub const unsafe fn from_raw(start: u64, end: u64) -> UserProgram {
        UserProgram { start, end }
    }

    /// The program's length in bytes.
    pub const fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Whether the program is empty.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The address of byte `offset` of the program in the image (e.g. to compute a label's
    /// offset from its symbol).
    pub const fn image_address(&self) -> u64 {
        self.start
    }

    fn byte(&self, offset: u64) -> u8 {
        if offset >= self.len() {
            return 0;
        }
        // SAFETY: `from_raw`'s contract: the range is readable, unchanging image memory.
        unsafe { ((self.start + offset) as *const u8).read() }
    }
}

/// Defines a [`UserProgram`]: `user_program!(pub fn name; "asm line", ...)`, optionally followed
/// by `; operands` for the assembler (`const`, `sym`), in AT&T syntax. The program starts at
/// its first instruction and must be position-independent (RIP-relative or absolute user
/// addresses only): the kit copies it to user pages. Names must be unique in the image (they
/// become the symbols `pv_guest_kit_user_<name>_start`/`_end`).
///
/// ```ignore
/// pv_guest_kit::user_program!(
///     /// Exits with code 7.
///     pub fn exit7;
///     "mov ${exit}, %eax",
///     "mov $7, %edi",
///     "syscall";
///     exit = const pv_guest_kit::user::sys::EXIT,
/// );
/// ```
#[macro_export]
macro_rules! user_program {
    ($(#[$meta:meta])* $vis:vis fn $name:ident; $($line:literal),+ $(,)? $(; $($operand:tt)*)?) => {
        ::core::arch::global_asm!(
            ".pushsection .rodata.pv_guest_kit.user_program, \"a\", @progbits",
            ::core::concat!(".globl pv_guest_kit_user_", ::core::stringify!($name), "_start"),
            ::core::concat!("pv_guest_kit_user_", ::core::stringify!($name), "_start:"),
            $($line,)+
            ::core::concat!(".globl pv_guest_kit_user_", ::core::stringify!($name), "_end"),
            ::core::concat!("pv_guest_kit_user_", ::core::stringify!($name), "_end:"),
            ".popsection",
            options(att_syntax),
            $($($operand)*)?
        );

        $(#[$meta])*
        $vis fn $name() -> $crate::user::UserProgram {
            #[allow(unsafe_code, reason = "the program's bounds are linker symbols")]
            unsafe extern "C" {
                #[link_name = ::core::concat!("pv_guest_kit_user_", ::core::stringify!($name), "_start")]
                static START: u8;
                #[link_name = ::core::concat!("pv_guest_kit_user_", ::core::stringify!($name), "_end")]
                static END: u8;
            }
            #[allow(unsafe_code, reason = "the program's bounds are linker symbols")]
            // SAFETY: the symbols delimit the program's bytes in .rodata, which never change.
            unsafe {
                $crate::user::UserProgram::from_raw(
                    ::core::ptr::addr_of!(START) as u64,
                    ::core::ptr::addr_of!(END) as u64,
                )
            }
        }
    };
}

/// Why a user program could not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserError {
    /// [`init`] was not called (or failed).
    NotInitialised,
    /// No system-call handler is set.
    NoHandler,
    /// A user program is running already.
    Busy,
    /// The entry point or stack is not mapped for user mode in this address space.
    NotMapped,
    /// Setting the user root failed.
    Hypercall(Errno),
}

/// A user address space: a user L4 (pinned) and the tables under it, from the allocator. A
/// plain handle, like [`AddressSpace`]: copies name the same tables, and after
/// [`release`](UserSpace::release) none may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserSpace {
    space: AddressSpace,
}

impl UserSpace {
    /// An empty user address space.
    ///
    /// # Errors
    /// No free frame, or the hypervisor's refusal.
    pub fn new() -> Result<UserSpace, MapError> {
        Ok(UserSpace {
            space: AddressSpace::new_empty()?,
        })
    }

    /// The page tables.
    pub const fn space(&self) -> AddressSpace {
        self.space
    }

    /// Maps `frame` at `va` (lower half) with `flags` (e.g. [`flags::USER_RW`]).
    ///
    /// # Errors
    /// As [`AddressSpace::map`].
    pub fn map(&self, va: u64, frame: Frame, pte_flags: u64) -> Result<(), MapError> {
        self.space.map(va, frame.mfn, pte_flags)
    }

    /// Maps `pages` fresh zeroed frames from the allocator at `va` onwards with `flags`.
    ///
    /// # Errors
    /// No free frame, or as [`AddressSpace::map`].
    pub fn map_fresh(&self, va: u64, pages: u64, pte_flags: u64) -> Result<(), MapError> {
        for page in 0..pages {
            let frame = frames::alloc().ok_or(MapError::OutOfFrames)?;
            if let Err(err) = self.map(va + page * PAGE_SIZE_U64, frame, pte_flags) {
                let _ = frames::free(frame);
                return Err(err);
            }
        }
        Ok(())
    }

    /// The frame mapped at `va`, if any.
    pub fn frame_at(&self, va: u64) -> Option<Frame> {
        let mfn = pte_mfn(self.space.translate(va)?);
        super::mm::mfn_to_pfn(mfn).map(|pfn| Frame::new(pfn, mfn))
    }

    /// Copies `program` into fresh frames mapped user-executable (read-only) from `va` (page
    /// aligned). Returns the entry point, `va`.
    ///
    /// # Errors
    /// No free frame, or as [`AddressSpace::map`].
    pub fn load(&self, program: &UserProgram, va: u64) -> Result<u64, MapError> {
        let pages = program.len().div_ceil(PAGE_SIZE_U64).max(1);
        for page in 0..pages {
            let frame = frames::alloc().ok_or(MapError::OutOfFrames)?;
            let dst = frames::direct_va(frame.pfn).ok_or(MapError::Unreadable)?;
            for i in 0..PAGE_SIZE_U64 {
                let byte = program.byte(page * PAGE_SIZE_U64 + i);
                // SAFETY: `dst` is the fresh frame's read-write direct-map page, which holds no
                // Rust object.
                unsafe { ((dst + i) as *mut u8).write_volatile(byte) };
            }
            if let Err(err) = self.map(va + page * PAGE_SIZE_U64, frame, flags::USER_RX) {
                let _ = frames::free(frame);
                return Err(err);
            }
        }
        Ok(va)
    }

    /// Copies user memory at `va` into `buf`, through the kernel's direct map (the kernel's own
    /// tables do not map user memory). Every page must be present and user-accessible.
    ///
    /// # Errors
    /// [`MapError::NotPresent`] for a page that is not a present user page.
    pub fn copy_in(&self, va: u64, buf: &mut [u8]) -> Result<(), MapError> {
        let mut done = 0u64;
        while let Some(rest) = buf.get_mut(usize::try_from(done).unwrap_or(usize::MAX)..) {
            if rest.is_empty() {
                break;
            }
            let at = va.checked_add(done).ok_or(MapError::NonCanonical)?;
            crate::mm::check_guest_va(at)?;
            let pte = self
                .space
                .translate(at)
                .filter(|&e| e & (_PAGE_PRESENT | _PAGE_USER) == _PAGE_PRESENT | _PAGE_USER)
                .ok_or(MapError::NotPresent(Level::L1))?;
            let pfn = super::mm::mfn_to_pfn(pte_mfn(pte)).ok_or(MapError::Unreadable)?;
            let page = frames::direct_va(pfn).ok_or(MapError::Unreadable)?;
            let offset = at % PAGE_SIZE_U64;
            let chunk = (PAGE_SIZE_U64 - offset).min(rest.len() as u64);
            for (i, byte) in rest
                .iter_mut()
                .take(usize::try_from(chunk).unwrap_or(0))
                .enumerate()
            {
                // SAFETY: the frame is one of the domain's frames, mapped at its direct-map
                // address; `offset + i` stays inside the page.
                *byte = unsafe { ((page + offset + i as u64) as *const u8).read_volatile() };
            }
            done += chunk;
        }
        Ok(())
    }

    /// Makes this the user root (`MMUEXT_NEW_USER_BASEPTR`).
    ///
    /// # Errors
    /// The hypervisor's refusal.
    pub fn activate(&self) -> HypercallResult<()> {
        new_user_baseptr(Some(self.space))?;
        ACTIVE_ROOT.store(self.space.root(), Ordering::SeqCst);
        Ok(())
    }

    /// A handle to the user address space last activated, if any (for system-call and trap
    /// handlers).
    pub fn active() -> Option<UserSpace> {
        match ACTIVE_ROOT.load(Ordering::SeqCst) {
            0 => None,
            root => Some(UserSpace {
                space: AddressSpace::from_root(root),
            }),
        }
    }

    /// Runs user code at `entry` with the stack pointer `stack_top` until it exits: activates
    /// this address space and enters user mode. Returns the exit code.
    ///
    /// # Errors
    /// [`UserError`]: not initialised, no handler, already running, the entry or stack not
    /// mapped for user mode (Xen would crash the domain on the first instruction), or the
    /// hypervisor's refusal of the user root.
    pub fn run(&self, entry: u64, stack_top: u64) -> Result<u64, UserError> {
        if !INITIALISED.load(Ordering::SeqCst) {
            return Err(UserError::NotInitialised);
        }
        if HANDLER.lock().is_none() {
            return Err(UserError::NoHandler);
        }
        let user_page = |va: u64| {
            self.space
                .translate(va)
                .is_some_and(|e| e & (_PAGE_PRESENT | _PAGE_USER) == _PAGE_PRESENT | _PAGE_USER)
        };
        if !user_page(entry) || !user_page(stack_top.wrapping_sub(8)) {
            return Err(UserError::NotMapped);
        }
        self.activate().map_err(UserError::Hypercall)?;
        if RUNNING.swap(true, Ordering::SeqCst) {
            return Err(UserError::Busy);
        }
        // SAFETY: the kernel stack and syscall entry are registered (`init`), a handler is
        // set, and the user root maps the entry and stack for user mode. User code runs in its
        // own address space, which maps none of the kernel's memory; it comes back only through
        // the kit's entries, which end up in the exit path with run's saved registers.
        let code = unsafe { pv_guest_kit_user_run(entry, stack_top) };
        RUNNING.store(false, Ordering::SeqCst);
        Ok(code)
    }

    /// Clears the user root if it is this one, then releases the tables (see
    /// [`AddressSpace::release`]; the data frames mapped are the caller's).
    ///
    /// # Errors
    /// As [`AddressSpace::release`].
    pub fn release(self) -> Result<u64, MapError> {
        if ACTIVE_ROOT.load(Ordering::SeqCst) == self.space.root() {
            new_user_baseptr(None)?;
            ACTIVE_ROOT.store(0, Ordering::SeqCst);
        }
        self.space.release()
    }
}

/// The kit's demo user program and the kernel side of its system calls.
pub mod demo {
    use super::{SyscallAction, SyscallFrame, UserSpace};
    use crate::errno::Errno;
    use crate::user::sys;

    /// The page the demo stores into without mapping it first: the kernel's #PF handler is
    /// expected to map a page there (see [`program`]).
    pub const LAZY_VA: u64 = 0x0000_0000_0070_0000;

    /// The longest text [`handle`] prints for one `write`.
    pub const MAX_WRITE: usize = 128;

    /// The text the demo writes.
    pub const MESSAGE: &str = "hello from user mode";

    crate::user_program!(
        /// The demo: `write(MESSAGE)`, `v = get_value()`, store `v` at [`LAZY_VA`] (a page
        /// fault unless the page is mapped: the kernel maps one and the store is retried), then
        /// `exit(the value read back from LAZY_VA)`.
        pub fn program;
        "mov ${write}, %eax",
        "lea 3f(%rip), %rdi",
        "mov $(4f - 3f), %esi",
        "syscall",
        ".globl pv_guest_kit_demo_after_write",
        "pv_guest_kit_demo_after_write:",
        "mov ${get_value}, %eax",
        "syscall",
        "mov %rax, %rbx",
        "movabs ${lazy}, %rcx",
        ".globl pv_guest_kit_demo_store",
        "pv_guest_kit_demo_store:",
        "mov %rbx, (%rcx)",
        "mov (%rcx), %rdi",
        "mov ${exit}, %eax",
        "syscall",
        "ud2",
        "3: .ascii \"hello from user mode\"",
        "4:";
        write = const sys::WRITE,
        get_value = const sys::GET_VALUE,
        exit = const sys::EXIT,
        lazy = const LAZY_VA,
    );

    const _: () = assert!(MESSAGE.len() == 20);

    unsafe extern "C" {
        static pv_guest_kit_demo_after_write: u8;
        static pv_guest_kit_demo_store: u8;
    }

    /// The offset in [`program`] where the first `syscall` returns to (`rcx` in its frame).
    pub fn write_return_offset() -> u64 {
        core::ptr::addr_of!(pv_guest_kit_demo_after_write) as u64 - program().image_address()
    }

    /// The offset in [`program`] of the store that faults on [`LAZY_VA`].
    pub fn store_offset() -> u64 {
        core::ptr::addr_of!(pv_guest_kit_demo_store) as u64 - program().image_address()
    }

    /// The kernel side of the demo ABI ([`crate::user::sys`]): `NOP` returns 0, `WRITE` prints
    /// the user's text (at most [`MAX_WRITE`] bytes, read from the active user space) and
    /// returns its length (`-EFAULT` if unreadable), `GET_VALUE` returns `value`, `EXIT` ends
    /// the program with `rdi`; anything else returns `-ENOSYS`.
    pub fn handle(frame: &SyscallFrame, value: u64) -> SyscallAction {
        match frame.number() {
            sys::NOP => SyscallAction::Return(0),
            sys::WRITE => {
                let mut buf = [0u8; MAX_WRITE];
                let len = usize::try_from(frame.arg(1)).unwrap_or(usize::MAX);
                let Some(dst) = buf.get_mut(..len) else {
                    return SyscallAction::Return(Errno::Einval.as_rax());
                };
                let copied = UserSpace::active().map(|space| space.copy_in(frame.arg(0), dst));
                match copied {
                    Some(Ok(())) => {
                        let mut line = [b'\n'; MAX_WRITE + 1];
                        for (out, &byte) in line.iter_mut().zip(dst.iter()) {
                            *out = crate::text::printable(byte);
                        }
                        crate::console::write(line.get(..=len).unwrap_or_default());
                        SyscallAction::Return(len as u64)
                    }
                    _ => SyscallAction::Return(Errno::Efault.as_rax()),
                }
            }
            sys::GET_VALUE => SyscallAction::Return(value),
            sys::EXIT => SyscallAction::Exit(frame.arg(0)),
            _ => SyscallAction::Return(Errno::Enosys.as_rax()),
        }
    }
}
