//! User mode: a separate user L4, the kit's demo program, system calls and page faults.

use guest_support::{Checks, info};
use pv_guest_kit::abi::errno::Errno;
use pv_guest_kit::abi::mm::{_PAGE_GLOBAL, _PAGE_RW, _PAGE_USER};
use pv_guest_kit::arch::{cpu, virt_base};
use pv_guest_kit::frame::rflags;
use pv_guest_kit::mm::{Frame, flags, frames, is_guest_l4_slot, read_entry};
use pv_guest_kit::traps::{self, TrapFrame};
use pv_guest_kit::user::{self, SyscallAction, SyscallFrame, UserSpace, demo, sys};

use super::space::Ctx;

/// What `get_value` returns.
const VALUE: u64 = 0x600d_cafe_0000_1234;
/// The exit code of a program killed by an unexpected fault.
const KILLED: u64 = 0xdead;
/// Where the extra programs go.
const PEEK_VA: u64 = 0x0000_0000_0050_0000;
const ENOSYS_VA: u64 = 0x0000_0000_0051_0000;

pv_guest_kit::user_program!(
    /// Reads the kernel's first page (absent from the user tables): a user #PF.
    fn peek_kernel;
    "movabs ${kernel}, %rax",
    "mov (%rax), %rax",
    "ud2";
    kernel = const 0xffff_ffff_8000_0000u64,
);

pv_guest_kit::user_program!(
    /// Makes an unknown system call and exits with its result.
    fn unknown_syscall;
    "mov $77, %eax",
    "syscall",
    "mov %rax, %rdi",
    "mov ${exit}, %eax",
    "syscall",
    "ud2";
    exit = const sys::EXIT,
);

#[derive(Clone, Copy, Debug, Default)]
struct Fault {
    error_code: u64,
    rip: u64,
    cs: u64,
    cr2: u64,
}

#[derive(Debug)]
struct Seen {
    calls: [SyscallFrame; 8],
    n_calls: usize,
    text: [u8; 32],
    text_len: usize,
    cr3: u64,
    faults: [Fault; 4],
    n_faults: usize,
}

static SEEN: spin::Mutex<Seen> = spin::Mutex::new(Seen {
    calls: [SyscallFrame {
        regs: pv_guest_kit::frame::Registers {
            r15: 0,
            r14: 0,
            r13: 0,
            r12: 0,
            r11: 0,
            r10: 0,
            r9: 0,
            r8: 0,
            rbp: 0,
            rdi: 0,
            rsi: 0,
            rdx: 0,
            rcx: 0,
            rbx: 0,
            rax: 0,
        },
        rip: 0,
        cs: 0,
        rflags: 0,
        rsp: 0,
        ss: 0,
    }; 8],
    n_calls: 0,
    text: [0; 32],
    text_len: 0,
    cr3: 0,
    faults: [Fault {
        error_code: 0,
        rip: 0,
        cs: 0,
        cr2: 0,
    }; 4],
    n_faults: 0,
});

fn syscall(frame: &mut SyscallFrame) -> SyscallAction {
    let mut seen = SEEN.lock();
    let n = seen.n_calls;
    if let Some(slot) = seen.calls.get_mut(n) {
        *slot = *frame;
        seen.n_calls += 1;
    }
    seen.cr3 = cpu::read_cr3() >> 12;
    if frame.number() == sys::WRITE {
        let len = usize::try_from(frame.arg(1)).unwrap_or(0).min(32);
        let mut text = [0u8; 32];
        if let (Some(space), Some(buf)) = (UserSpace::active(), text.get_mut(..len))
            && space.copy_in(frame.arg(0), buf).is_ok()
        {
            seen.text = text;
            seen.text_len = len;
        }
    }
    drop(seen);
    demo::handle(frame, VALUE)
}

fn page_fault(frame: &mut TrapFrame) {
    let cr2 = cpu::read_cr2();
    {
        let mut seen = SEEN.lock();
        let n = seen.n_faults;
        if let Some(slot) = seen.faults.get_mut(n) {
            *slot = Fault {
                error_code: frame.error_code,
                rip: frame.rip,
                cs: frame.cs,
                cr2,
            };
            seen.n_faults += 1;
        }
    }
    assert!(
        !frame.from_kernel_mode(),
        "kernel #PF during the user checks: {frame}"
    );
    let mapped = cr2 & !0xfff == demo::LAZY_VA
        && UserSpace::active()
            .is_some_and(|s| s.map_fresh(demo::LAZY_VA, 1, flags::USER_RW).is_ok());
    if !mapped {
        user::exit_from_trap(frame, KILLED);
    }
}

pub fn checks(c: &mut Checks, ctx: &Ctx) {
    c.eq(
        "user::init: stack_switch and the syscall callback",
        user::init(),
        Ok(()),
    );
    let _ = user::set_syscall_handler(syscall);
    let previous_pf = traps::set_handler(14, page_fault);

    let us = match UserSpace::new() {
        Ok(us) => us,
        Err(err) => {
            c.fail("UserSpace::new: a pinned user L4", format_args!("{err}"));
            return;
        }
    };
    c.pass("UserSpace::new: a pinned user L4");
    let program = demo::program();
    let entry = us.load(&program, user::CODE_VA);
    c.eq("load the demo program at 4 MiB", entry, Ok(user::CODE_VA));
    c.eq(
        "map two stack pages below 8 MiB",
        us.map_fresh(user::STACK_TOP - 2 * 4096, 2, flags::USER_RW),
        Ok(()),
    );
    let slots = (0..512)
        .filter(|&i| is_guest_l4_slot(i))
        .filter(|&i| read_entry(us.space().root(), i).is_some_and(|e| e & 1 != 0))
        .count();
    c.check(
        "the user L4 maps no kernel memory (one guest slot, not VIRT_BASE)",
        slots == 1 && us.space().translate(virt_base()).is_none(),
        format_args!("{slots} slots"),
    );
    let code_pte = us.space().translate(user::CODE_VA).unwrap_or(0);
    info(format_args!("user code pte {code_pte:#x}"));
    c.eq_hex(
        "the code page is user, read-only, and Xen made it global",
        code_pte & (_PAGE_USER | _PAGE_RW | _PAGE_GLOBAL),
        _PAGE_USER | _PAGE_GLOBAL,
    );

    let entry = user::CODE_VA;
    let code = us.run(entry, user::STACK_TOP);
    c.eq(
        "run the demo: it exits with the value get_value gave",
        code,
        Ok(VALUE),
    );
    let seen = SEEN.lock();
    let calls = seen.calls.get(..seen.n_calls).unwrap_or_default();
    let numbers: [u64; 3] = core::array::from_fn(|i| calls.get(i).map_or(99, SyscallFrame::number));
    c.check(
        "three system calls reached the kernel: write, get_value, exit",
        calls.len() == 3 && numbers == [sys::WRITE, sys::GET_VALUE, sys::EXIT],
        format_args!("{numbers:?} ({} calls)", calls.len()),
    );
    let first = calls.first().copied().unwrap_or_default();
    info(format_args!(
        "first syscall frame: rip {:#x} cs {:#x} rflags {:#x} rsp {:#x} ss {:#x} rcx {:#x} r11 {:#x}",
        first.rip, first.cs, first.rflags, first.rsp, first.ss, first.regs.rcx, first.regs.r11
    ));
    c.eq_hex(
        "syscall frame: CS 0xe033 (RPL 3: from user mode)",
        first.cs & 0xffff,
        0xe033,
    );
    c.eq_hex(
        "syscall frame: RIP is just after the syscall",
        first.rip,
        entry + demo::write_return_offset(),
    );
    c.eq_hex(
        "syscall frame: rcx = the user RIP",
        first.regs.rcx,
        first.rip,
    );
    c.eq_hex(
        "syscall frame: r11 = the user RFLAGS (IF aside)",
        first.regs.r11 & !rflags::IF,
        first.rflags & !rflags::IF,
    );
    c.check(
        "syscall frame: RSP and SS are the user stack",
        first.rsp == user::STACK_TOP && first.ss & 0xffff == 0xe02b,
        format_args!("rsp {:#x} ss {:#x}", first.rsp, first.ss),
    );
    c.eq(
        "syscall frame: the arguments (buffer in rdi, length in rsi)",
        (first.arg(0) >= entry, first.arg(1)),
        (true, demo::MESSAGE.len() as u64),
    );
    let text = seen.text.get(..seen.text_len).unwrap_or_default();
    c.eq(
        "write: the kernel read the user's text",
        core::str::from_utf8(text).unwrap_or("?"),
        demo::MESSAGE,
    );
    c.eq_hex(
        "the syscall handler runs on the kernel tables",
        seen.cr3,
        ctx.space.root(),
    );
    let n_faults = seen.n_faults;
    let fault = seen.faults.first().copied().unwrap_or_default();
    drop(seen);
    info(format_args!("user page fault: {fault:x?}"));
    c.eq("one page fault was taken", n_faults, 1);
    c.eq_hex(
        "user #PF: error code U|W (6), the U bit set",
        fault.error_code,
        6,
    );
    c.check(
        "user #PF: CS RPL 3, RIP at the store, cr2 = the address",
        fault.cs & 3 == 3
            && fault.rip == entry + demo::store_offset()
            && fault.cr2 == demo::LAZY_VA,
        format_args!("{fault:x?}"),
    );

    let again = us.run(entry, user::STACK_TOP);
    c.eq("run it again: same exit code", again, Ok(VALUE));
    c.eq(
        "the second run took no page fault (the page stays mapped)",
        SEEN.lock().n_faults,
        1,
    );

    let peek = us.load(&peek_kernel(), PEEK_VA);
    let killed = peek.map(|e| us.run(e, user::STACK_TOP));
    c.eq(
        "a user read of kernel memory faults; the handler ends the program",
        killed,
        Ok(Ok(KILLED)),
    );
    let fault = SEEN.lock().faults.get(1).copied().unwrap_or_default();
    c.check(
        "that #PF: error code U (4, not present), cr2 = VIRT_BASE",
        fault.error_code == 4 && fault.cr2 == virt_base() && fault.cs & 3 == 3,
        format_args!("{fault:x?}"),
    );
    let unknown = us
        .load(&unknown_syscall(), ENOSYS_VA)
        .map(|e| us.run(e, user::STACK_TOP));
    c.eq(
        "an unknown system call returns -ENOSYS to user mode",
        unknown,
        Ok(Ok(Errno::Enosys.as_rax())),
    );

    let data: [Option<Frame>; 6] = [
        us.frame_at(user::CODE_VA),
        us.frame_at(user::STACK_TOP - 4096),
        us.frame_at(user::STACK_TOP - 2 * 4096),
        us.frame_at(demo::LAZY_VA),
        us.frame_at(PEEK_VA),
        us.frame_at(ENOSYS_VA),
    ];
    let released = us.release();
    info(format_args!("user space released: {released:?}"));
    c.check(
        "release the user tables (L4, L3, L2, L1)",
        released.is_ok_and(|n| n >= 4),
        format_args!("{released:?}"),
    );
    let freed = data
        .iter()
        .flatten()
        .filter(|&&f| frames::free(f).is_ok())
        .count();
    c.eq("free the program's frames", freed, 6);
    if let Some(handler) = previous_pf {
        traps::set_handler(14, handler);
    }
}
