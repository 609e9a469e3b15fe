//! Raw hypercalls with deliberately bad arguments, and the instructions under test.
//!
//! Everything here hands the hypervisor addresses that are unmapped, non-canonical or
//! otherwise invalid, or runs privileged instructions; the hypervisor must refuse or emulate
//! them without touching the guest's memory.

use core::arch::asm;

use pv_guest_kit::hypercall::{self, direct};

/// A canonical address in the guest half that nothing maps.
pub const UNMAPPED: u64 = 0x0000_1234_5678_9000;
/// A non-canonical address.
pub const NON_CANONICAL: u64 = 0x8000_0000_0000_1000;

/// A hypercall through the page with two raw arguments.
pub fn call2(nr: u32, a1: u64, a2: u64) -> i64 {
    // SAFETY: used only with arguments the hypervisor must reject or that name no guest memory
    // (numbers, unmapped or non-canonical addresses, or pointers built by the caller for
    // read-only queries); see each use.
    unsafe { hypercall::hypercall2(nr, a1, a2) }
}

/// A hypercall through the page with three raw arguments.
pub fn call3(nr: u32, a1: u64, a2: u64, a3: u64) -> i64 {
    // SAFETY: as `call2`.
    unsafe { hypercall::hypercall3(nr, a1, a2, a3) }
}

/// A hypercall through the page with no argument.
pub fn call0(nr: u32) -> i64 {
    // SAFETY: as `call2`; used for unallocated numbers, which do nothing.
    unsafe { hypercall::hypercall0(nr) }
}

/// A hypercall issued with a bare `syscall` (any 64-bit number).
pub fn syscall(nr: u64, a1: u64, a2: u64) -> i64 {
    // SAFETY: as `call2`; used for unallocated numbers and `xen_version(0)`.
    unsafe { direct::hypercall5(nr, a1, a2, 0, 0, 0) }
}

/// Registers preserved across a hypercall through the page, as seen after `xen_version(0)`:
/// rcx, r11, rbx, r9, r12, r13, r14, r15 (each loaded with a distinct pattern before).
pub fn preserved_registers() -> [u64; 8] {
    let page = hypercall::page_address() + 17 * 32;
    let mut out = [0u64; 8];
    // SAFETY: calls stub 17 (xen_version) with rdi = XENVER_version and rsi = NULL; the
    // registers under test are saved and restored around it; rbx and the callee-saved
    // registers are spilled to `out`.
    unsafe {
        asm!(
            "push rbx",
            "push r12",
            "push r13",
            "push r14",
            "push r15",
            "push rdi",
            "mov rcx, 0x1111111111111111",
            "mov r11, 0x2222222222222222",
            "mov rbx, 0x3333333333333333",
            "mov r9, 0x4444444444444444",
            "mov r12, 0x5555555555555555",
            "mov r13, 0x6666666666666666",
            "mov r14, 0x7777777777777777",
            "mov r15, 0x8888888888888888",
            "xor edi, edi",
            "xor esi, esi",
            "call rax",
            "pop rdi",
            "mov [rdi], rcx",
            "mov [rdi + 8], r11",
            "mov [rdi + 16], rbx",
            "mov [rdi + 24], r9",
            "mov [rdi + 32], r12",
            "mov [rdi + 40], r13",
            "mov [rdi + 48], r14",
            "mov [rdi + 56], r15",
            "pop r15",
            "pop r14",
            "pop r13",
            "pop r12",
            "pop rbx",
            inout("rax") page => _,
            in("rdi") out.as_mut_ptr(),
            out("rcx") _, out("rdx") _, out("rsi") _, out("r8") _, out("r9") _,
            out("r10") _, out("r11") _,
        );
    }
    out
}

/// The registers after an `iret` hypercall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AfterIret {
    /// rax.
    pub rax: u64,
    /// rcx.
    pub rcx: u64,
    /// r11.
    pub r11: u64,
    /// rsp equals what it was before the frame was built.
    pub rsp_restored: bool,
    /// The label the frame returned to.
    pub target: u64,
}

/// Returns through the `iret` hypercall to the next instruction, with RFLAGS.IF = `if_flag`
/// in the frame and `flags` (0 or `VGCF_in_syscall`), and rax/rcx/r11 holding patterns.
pub fn iret_here(if_flag: bool, flags: u64) -> AfterIret {
    let stub = hypercall::iret_stub();
    let (rax, rcx, r11, rsp_before, rsp_after, target): (u64, u64, u64, u64, u64, u64);
    // SAFETY: builds a valid iret frame on the current stack (below everything live) that
    // returns to label 2 with the same stack pointer, selectors and flags (IF as asked), then
    // jumps to the iret stub. rax, rcx and r11 carry patterns the hypercall must restore (or,
    // with VGCF_in_syscall, clobber).
    unsafe {
        asm!(
            "mov {sp0}, rsp",
            "lea {tgt}, [rip + 2f]",
            "pushfq",
            "pop {fl}",
            "and {fl}, {not_if}",
            "or {fl}, {if_bit}",
            "push 0xe02b",
            "push {sp0}",
            "push {fl}",
            // CS with RPL 0: a return to guest kernel mode (RPL 3 would mean user mode).
            "push 0xe030",
            "push {tgt}",
            "push {flags}",
            "mov rax, 0xaaaaaaaaaaaaaaaa",
            "mov rcx, 0xcccccccccccccccc",
            "mov r11, 0xbbbbbbbbbbbbbbbb",
            "jmp {stub}",
            "2:",
            "mov {sp1}, rsp",
            sp0 = out(reg) rsp_before,
            sp1 = out(reg) rsp_after,
            tgt = out(reg) target,
            fl = out(reg) _,
            not_if = in(reg) !(1u64 << 9),
            if_bit = in(reg) u64::from(if_flag) << 9,
            flags = in(reg) flags,
            stub = in(reg) stub,
            out("rax") rax,
            out("rcx") rcx,
            out("r11") r11,
        );
    }
    AfterIret {
        rax,
        rcx,
        r11,
        rsp_restored: rsp_before == rsp_after,
        target,
    }
}

/// Returns through the `iret` hypercall to the next instruction with code selector `cs`
/// (RPL 0: guest kernel mode), reads CS there, and returns to the flat kernel selector the
/// same way. Returns the CS seen in between.
pub fn iret_through_cs(cs: u16) -> u16 {
    let stub = hypercall::iret_stub();
    let got: u64;
    // SAFETY: two valid iret frames built below everything live on the current stack, each
    // returning to the next label with the same stack pointer and flags; the code between
    // them runs in a 64-bit code segment with the flat one's attributes. rax, rcx and r11 are
    // declared clobbered.
    unsafe {
        asm!(
            "mov {sp}, rsp",
            "lea {tgt}, [rip + 2f]",
            "pushfq",
            "pop {fl}",
            "push 0xe02b",
            "push {sp}",
            "push {fl}",
            "push {cs}",
            "push {tgt}",
            "push 0",
            "jmp {stub}",
            "2:",
            "mov {got:e}, cs",
            "mov {sp}, rsp",
            "lea {tgt}, [rip + 3f]",
            "pushfq",
            "pop {fl}",
            "push 0xe02b",
            "push {sp}",
            "push {fl}",
            "push 0xe030",
            "push {tgt}",
            "push 0",
            "jmp {stub}",
            "3:",
            sp = out(reg) _,
            tgt = out(reg) _,
            fl = out(reg) _,
            got = out(reg) got,
            cs = in(reg) u64::from(cs),
            stub = in(reg) stub,
            out("rax") _,
            out("rcx") _,
            out("r11") _,
        );
    }
    (got & 0xffff) as u16
}

/// Reads the quadword at `%fs:offset`.
pub fn read_fs(offset: u64) -> u64 {
    let value: u64;
    // SAFETY: reads through FS; the caller set the FS base to readable memory.
    unsafe {
        asm!("mov {v}, fs:[{o}]", v = out(reg) value, o = in(reg) offset, options(nostack, readonly))
    };
    value
}

/// Reads the quadword at `%gs:offset`.
pub fn read_gs(offset: u64) -> u64 {
    let value: u64;
    // SAFETY: reads through GS; the caller set the GS base to readable memory.
    unsafe {
        asm!("mov {v}, gs:[{o}]", v = out(reg) value, o = in(reg) offset, options(nostack, readonly))
    };
    value
}

/// Loads `selector` into FS (`mov %ax, %fs`, 2 bytes: 8E E0), then reads it back.
pub fn load_fs(selector: u16) -> u16 {
    let back: u16;
    // SAFETY: loading a data selector changes only FS (and its base), which the kit does not use.
    unsafe {
        asm!(
            "mov fs, ax",
            "mov ax, fs",
            inout("ax") selector => back,
            options(nostack, nomem),
        );
    }
    back
}

/// Reads the quadword at `address` with `mov (%rax), %rax` (3 bytes: 48 8B 00), for use
/// under `catch(3, ..)` on addresses that may be unmapped.
pub fn probe_read(address: u64) -> u64 {
    let value: u64;
    // SAFETY: a read; if `address` is unmapped the resulting #PF is caught by the test's handler,
    // which skips the 3-byte instruction.
    unsafe {
        asm!(".byte 0x48, 0x8b, 0x00", inout("rax") address => value, options(nostack, readonly))
    };
    value
}

/// `rdmsr` (2 bytes), for use under `catch`.
pub fn rdmsr(msr: u32) -> u64 {
    // SAFETY: the MSRs read here (segment bases, EFER, an unknown index) have no side effect.
    unsafe { pv_guest_kit::arch::cpu::rdmsr(msr) }
}

/// `wrmsr` (2 bytes), for use under `catch`.
pub fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the MSRs written here are the FS/GS bases (not used by the kit) or an unknown
    // index the hypervisor refuses.
    unsafe { pv_guest_kit::arch::cpu::wrmsr(msr, value) }
}

/// `in al, imm8` (2 bytes).
pub fn in_port_0x80() -> u8 {
    let value: u8;
    // SAFETY: port 0x80 is the POST diagnostic port; reading it has no effect.
    unsafe { asm!("in al, 0x80", out("al") value, options(nostack, nomem)) };
    value
}

/// `in al, dx` (1 byte).
pub fn in_port(port: u16) -> u8 {
    // SAFETY: the ports read here (PIT status, COM1 line status) have no read side effects
    // that matter to the hypervisor or the guest.
    unsafe { pv_guest_kit::arch::cpu::inb(port) }
}

/// `cli` (1 byte).
pub fn cli() {
    // SAFETY: for a PV guest, cli either faults (#GP) or does nothing.
    unsafe { asm!("cli", options(nostack, nomem)) };
}

/// `sti` (1 byte).
pub fn sti() {
    // SAFETY: as `cli`.
    unsafe { asm!("sti", options(nostack, nomem)) };
}

/// A page from the heap, never freed, returned as its address.
pub fn leak_page(fill: impl Fn(usize) -> u64) -> u64 {
    extern crate alloc;
    #[repr(C, align(4096))]
    struct Page([u64; 512]);
    let mut page = alloc::boxed::Box::new(Page([0; 512]));
    for (i, word) in page.0.iter_mut().enumerate() {
        *word = fill(i);
    }
    alloc::boxed::Box::into_raw(page) as u64
}

/// Reads word `index` of the page at `page` (volatile: its mapping changes under the tests).
pub fn read_word(page: u64, index: usize) -> u64 {
    let word = (page as *const u64).wrapping_add(index);
    // SAFETY: `page` is a leaked heap page (or a page the test mapped there); the callers
    // keep `index < 512` and read only while it is mapped.
    unsafe { word.read_volatile() }
}

/// `update_va_mapping` for the tests' own leaked pages.
pub fn remap(va: u64, pte: u64) -> i64 {
    // SAFETY: `va` is one of the test's leaked heap pages, referenced by no Rust reference.
    match unsafe { hypercall::mm::update_va_mapping(va, pte, pv_guest_kit::abi::mm::UVMF_INVLPG) } {
        Ok(v) => v.cast_signed(),
        Err(e) => e.as_neg(),
    }
}

/// `mmu_update` for the tests' own leaked pages' L1 entries.
pub fn mmu_update(reqs: &[pv_guest_kit::abi::mm::MmuUpdate]) -> Result<u32, pv_guest_kit::Errno> {
    // SAFETY: the requests change only L1 entries of the test's leaked heap pages.
    unsafe { hypercall::mm::mmu_update(reqs) }
}

/// `mmuext_op` for flushes, the root the guest already runs on, and refused requests.
pub fn mmuext_op(ops: &[pv_guest_kit::abi::mm::MmuextOp]) -> Result<u32, pv_guest_kit::Errno> {
    // SAFETY: the operations flush TLBs, reload the current root, set the user root to the
    // kernel's own L4 or none, or are refused; none changes a mapping Rust code uses.
    unsafe { hypercall::mm::mmuext_op(ops) }
}

/// `mmuext_op` naming foreign domain `domid` (requests the hypervisor refuses).
pub fn mmuext_op_foreign(
    ops: &[pv_guest_kit::abi::mm::MmuextOp],
    domid: u16,
) -> Result<u64, pv_guest_kit::Errno> {
    let mut done: u32 = 0;
    // SAFETY: the hypervisor reads the operations and writes `done`; the callers pass only
    // requests it refuses, which change nothing.
    let ret = unsafe {
        hypercall::hypercall4(
            pv_guest_kit::abi::hypercall::HYPERVISOR_MMUEXT_OP,
            ops.as_ptr() as u64,
            ops.len() as u64,
            core::ptr::from_mut(&mut done) as u64,
            u64::from(domid),
        )
    };
    pv_guest_kit::errno::result_from_ret(ret)
}

/// `update_descriptor` on the tests' descriptor pages (or a leaked heap page).
pub fn update_descriptor(maddr: u64, desc: u64) -> Result<u64, pv_guest_kit::Errno> {
    // SAFETY: `maddr` lies in one of the test's leaked heap pages.
    unsafe { hypercall::segments::update_descriptor(maddr, desc) }
}

/// `set_trap_table` with a raw pointer (bad pointers and bad tables).
pub fn set_trap_table_raw(table: u64) -> i64 {
    call2(
        pv_guest_kit::abi::hypercall::HYPERVISOR_SET_TRAP_TABLE,
        table,
        0,
    )
}

/// `callback_op` with a raw argument.
pub fn callback_op_raw(cmd: u32, arg: u64) -> Result<u64, pv_guest_kit::Errno> {
    // SAFETY: registrations name the kit's trap stubs (which take any frame) or bad addresses
    // the hypervisor refuses.
    unsafe { hypercall::traps::callback_op_raw(cmd, arg) }
}

/// `set_callbacks` with the kit's stubs (or bad addresses).
pub fn set_callbacks(event: u64, failsafe: u64, syscall: u64) -> Result<u64, pv_guest_kit::Errno> {
    // SAFETY: the addresses are the kit's stubs, or non-canonical ones the hypervisor refuses.
    unsafe { hypercall::traps::set_callbacks(event, failsafe, syscall) }
}

/// `stack_switch` to the kit's own stack top.
pub fn stack_switch(ss: u16, rsp: u64) -> Result<u64, pv_guest_kit::Errno> {
    // SAFETY: the guest never enters user mode, so the recorded stack is never used; it is the
    // kit's stack top anyway.
    unsafe { hypercall::traps::stack_switch(ss, rsp) }
}
