//! Hypercalls: raw calls through the hypercall page, typed wrappers, and the `iret` path.
//!
//! # Calling convention (reference §1.2–§1.3)
//!
//! Hypercall *N* is `call hypercall_page + N * 32` with the number in `rax` (the stub loads it)
//! and arguments in `rdi`, `rsi`, `rdx`, `r10`, `r8`; the result comes back in `rax`. The
//! page's stubs save and restore `rcx` and `r11` around `syscall`, so a call through the page
//! preserves them; the argument registers may be clobbered (a debug Xen overwrites them), and
//! the raw functions below tell the compiler so for all five, whatever the arity. Memory is
//! clobbered (the hypervisor reads and writes guest memory), and so are the flags.
//!
//! Each typed wrapper returns a [`HypercallResult`]: `Ok(value)` for a non-negative result,
//! `Err(errno)` for `-errno`. Wrappers that let the hypervisor write guest memory or change
//! what code runs (trap tables, callbacks, mappings, descriptors, stacks) are `unsafe fn`s
//! whose `# Safety` sections say what the caller must guarantee.

use core::arch::asm;

use hypercall_abi::hypercall::{HYPERCALL_STUB_COUNT, HYPERCALL_STUB_SIZE, HYPERVISOR_IRET};

pub use crate::errno::{Errno, HypercallResult, result_from_ret};

pub mod console;
pub mod evtchn;
pub mod memory;
pub mod mm;
pub mod multicall;
pub mod physdev;
pub mod sched;
pub mod segments;
pub mod traps;
pub mod vcpu;
pub mod version;

unsafe extern "C" {
    /// The hypercall page (a page-aligned 4 KiB in `.text`, named by the `HYPERCALL_PAGE` note
    /// and filled by the domain builder). Defined in `arch::entry`'s assembly.
    #[link_name = "pv_guest_kit_hypercall_page"]
    static HYPERCALL_PAGE: [u8; 4096];
}

/// The virtual address of the hypercall page.
pub fn page_address() -> u64 {
    // Only the address is taken; the page is never read through a Rust reference.
    core::ptr::addr_of!(HYPERCALL_PAGE) as u64
}

/// The address of stub `nr`.
///
/// # Panics
/// If `nr` is 128 or more: the page has 128 stubs. Use [`direct`] for larger numbers.
fn stub(nr: u32) -> u64 {
    let index = usize::try_from(nr).unwrap_or(usize::MAX);
    assert!(
        index < HYPERCALL_STUB_COUNT,
        "hypercall {nr} has no stub in the hypercall page"
    );
    page_address() + (index * HYPERCALL_STUB_SIZE) as u64
}

/// Hypercall `nr` with no argument, through the page. Returns `rax`.
///
/// # Safety
/// The hypercall must not break memory safety: with no argument this only depends on `nr`'s
/// semantics (e.g. `iret` must not be called this way; use [`iret`]).
///
/// # Panics
/// If `nr >= 128`.
#[inline]
pub unsafe fn hypercall0(nr: u32) -> i64 {
    let entry = stub(nr);
    let ret: i64;
    // The stub follows the page ABI: it preserves everything but rax and the argument
    // registers, which are declared clobbered.
    // SAFETY: the caller vouches for the hypercall's effect; the registers are as declared.
    unsafe {
        asm!(
            "call {entry}",
            entry = in(reg) entry,
            lateout("rax") ret,
            out("rdi") _, out("rsi") _, out("rdx") _, out("r10") _, out("r8") _,
        );
    }
    ret
}

/// Hypercall `nr` with one argument (`rdi`), through the page. Returns `rax`.
///
/// # Safety
/// The arguments must be valid for hypercall `nr`: pointers must point to memory the
/// hypervisor may read or write as that call specifies, and the call's effect must not break
/// memory safety.
///
/// # Panics
/// If `nr >= 128`.
#[inline]
pub unsafe fn hypercall1(nr: u32, a1: u64) -> i64 {
    let entry = stub(nr);
    let ret: i64;
    // SAFETY: see `hypercall0`; the caller vouches for the argument.
    unsafe {
        asm!(
            "call {entry}",
            entry = in(reg) entry,
            lateout("rax") ret,
            inout("rdi") a1 => _, out("rsi") _, out("rdx") _, out("r10") _, out("r8") _,
        );
    }
    ret
}

/// Hypercall `nr` with two arguments (`rdi`, `rsi`), through the page. Returns `rax`.
///
/// # Safety
/// As [`hypercall1`].
///
/// # Panics
/// If `nr >= 128`.
#[inline]
pub unsafe fn hypercall2(nr: u32, a1: u64, a2: u64) -> i64 {
    let entry = stub(nr);
    let ret: i64;
    // SAFETY: see `hypercall0`; the caller vouches for the arguments.
    unsafe {
        asm!(
            "call {entry}",
            entry = in(reg) entry,
            lateout("rax") ret,
            inout("rdi") a1 => _, inout("rsi") a2 => _, out("rdx") _, out("r10") _, out("r8") _,
        );
    }
    ret
}

/// Hypercall `nr` with three arguments (`rdi`, `rsi`, `rdx`), through the page. Returns `rax`.
///
/// # Safety
/// As [`hypercall1`].
///
/// # Panics
/// If `nr >= 128`.
#[inline]
pub unsafe fn hypercall3(nr: u32, a1: u64, a2: u64, a3: u64) -> i64 {
    let entry = stub(nr);
    let ret: i64;
    // SAFETY: see `hypercall0`; the caller vouches for the arguments.
    unsafe {
        asm!(
            "call {entry}",
            entry = in(reg) entry,
            lateout("rax") ret,
            inout("rdi") a1 => _, inout("rsi") a2 => _, inout("rdx") a3 => _,
            out("r10") _, out("r8") _,
        );
    }
    ret
}

/// Hypercall `nr` with four arguments (`rdi`, `rsi`, `rdx`, `r10`), through the page.
///
/// # Safety
/// As [`hypercall1`].
///
/// # Panics
/// If `nr >= 128`.
#[inline]
pub unsafe fn hypercall4(nr: u32, a1: u64, a2: u64, a3: u64, a4: u64) -> i64 {
    let entry = stub(nr);
    let ret: i64;
    // SAFETY: see `hypercall0`; the caller vouches for the arguments.
    unsafe {
        asm!(
            "call {entry}",
            entry = in(reg) entry,
            lateout("rax") ret,
            inout("rdi") a1 => _, inout("rsi") a2 => _, inout("rdx") a3 => _,
            inout("r10") a4 => _, out("r8") _,
        );
    }
    ret
}

/// Hypercall `nr` with five arguments (`rdi`, `rsi`, `rdx`, `r10`, `r8`), through the page.
///
/// # Safety
/// As [`hypercall1`].
///
/// # Panics
/// If `nr >= 128`.
#[inline]
pub unsafe fn hypercall5(nr: u32, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
    let entry = stub(nr);
    let ret: i64;
    // SAFETY: see `hypercall0`; the caller vouches for the arguments.
    unsafe {
        asm!(
            "call {entry}",
            entry = in(reg) entry,
            lateout("rax") ret,
            inout("rdi") a1 => _, inout("rsi") a2 => _, inout("rdx") a3 => _,
            inout("r10") a4 => _, inout("r8") a5 => _,
        );
    }
    ret
}

/// Hypercalls issued with a bare `syscall` instead of the hypercall page (reference §1.3: the
/// same register convention; `rcx` and `r11` are destroyed). This is the only way to reach
/// numbers ≥ 128; kernels normally use the page.
pub mod direct {
    use core::arch::asm;

    /// `syscall` with `rax = nr` and five arguments. Returns `rax`.
    ///
    /// # Safety
    /// As [`super::hypercall1`]; `nr` is any 64-bit value.
    #[inline]
    pub unsafe fn hypercall5(nr: u64, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
        let ret: i64;
        // `syscall` destroys rcx and r11, and the argument registers may be clobbered.
        // SAFETY: the caller vouches for the hypercall; every clobbered register is declared.
        unsafe {
            asm!(
                "syscall",
                inlateout("rax") nr => ret,
                inout("rdi") a1 => _, inout("rsi") a2 => _, inout("rdx") a3 => _,
                inout("r10") a4 => _, inout("r8") a5 => _,
                out("rcx") _, out("r11") _,
            );
        }
        ret
    }
}

/// The frame the guest pushes for the `iret` hypercall (reference §8.5): the `iret_context`
/// without the three words the stub pushes. `rsp` points at `flags` when jumping to stub 23.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IretFrame {
    /// 0, or `VGCF_in_syscall` to return through `sysret` (rcx/r11 then not restored).
    pub flags: u64,
    /// Where to continue.
    pub rip: u64,
    /// Code selector; RPL 3 returns to guest user mode.
    pub cs: u64,
    /// Flags; IF sets `evtchn_upcall_mask = !IF`.
    pub rflags: u64,
    /// Stack pointer.
    pub rsp: u64,
    /// Stack selector.
    pub ss: u64,
}

const _: () = {
    use core::mem::{offset_of, size_of};
    use hypercall_abi::traps::IretContext;
    // The guest part of `iret_context` starts at its `flags` field.
    assert!(size_of::<IretFrame>() + offset_of!(IretContext, flags) == size_of::<IretContext>());
    assert!(
        offset_of!(IretFrame, rip) + offset_of!(IretContext, flags) == offset_of!(IretContext, rip)
    );
    assert!(
        offset_of!(IretFrame, ss) + offset_of!(IretContext, flags) == offset_of!(IretContext, ss)
    );
};

/// Address of the `iret` stub: `hypercall_page + 23 * 32`.
pub fn iret_stub() -> u64 {
    stub(HYPERVISOR_IRET)
}

/// Leaves the current context through the `iret` hypercall with `frame` (reference §8.5):
/// execution continues at `frame.rip` with `frame.rsp`, `rax`, `rcx` and `r11` as they are now
/// (`rcx`/`r11` restored by the hypervisor unless `VGCF_in_syscall`), every other register as
/// it is when the stub runs.
///
/// # Safety
/// `frame` must describe a context that is safe to continue in: `rip` is code expecting to be
/// entered with these registers and `rsp` is a stack it may use. Nothing of the current stack
/// frame is used again.
pub unsafe fn iret(frame: &IretFrame) -> ! {
    let stub = iret_stub();
    // The frame is copied onto a 16-byte aligned spot of the current stack, below everything
    // live, and the stub is entered by a jump with rsp at the copy.
    // SAFETY: that is what the iret hypercall requires; the caller vouches for the target.
    unsafe {
        asm!(
            "sub $64, %rsp",
            "and $-16, %rsp",
            "mov 0({f}), %rax", "mov %rax, 0(%rsp)",
            "mov 8({f}), %rax", "mov %rax, 8(%rsp)",
            "mov 16({f}), %rax", "mov %rax, 16(%rsp)",
            "mov 24({f}), %rax", "mov %rax, 24(%rsp)",
            "mov 32({f}), %rax", "mov %rax, 32(%rsp)",
            "mov 40({f}), %rax", "mov %rax, 40(%rsp)",
            "jmp *{stub}",
            f = in(reg) core::ptr::from_ref(frame),
            stub = in(reg) stub,
            // Scratch for the copy; the block never returns, so its value does not matter.
            in("rax") 0u64,
            options(att_syntax, noreturn),
        );
    }
}
