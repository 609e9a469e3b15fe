//! The failsafe callback (reference §8.6): Xen enters it when it cannot reload a data segment
//! selector of the guest on its way back to it.
//!
//! Xen reloads a PV vCPU's DS/ES/FS/GS only on a real context switch. A single-vCPU dom0 that
//! blocks or yields only ever switches to the idle vCPU and back, which Xen does lazily
//! without reloading anything, so the test brings up a second vCPU (Xen's command line needs
//! `dom0_max_vcpus=2`) that does nothing but yield. Then: FS is loaded with a selector of the
//! guest's own GDT, that descriptor is made not-present with `update_descriptor`, and vCPU 0
//! sleeps for 1 ms (`SCHEDOP_poll`; a bare `SCHEDOP_yield` does not hand the CPU to vCPU 1 under
//! credit2); switching back, Xen fails to reload FS and enters the failsafe callback with the
//! selectors in its frame. The kit's failsafe stub loads null selectors and returns through the
//! `iret` hypercall, so the `poll` returns normally.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use guest_support::{Checks, info};
use pv_guest_kit::abi::hypercall::{HYPERCALL_STUB_SIZE, HYPERVISOR_SCHED_OP};
use pv_guest_kit::abi::mm::{_PAGE_ACCESSED, _PAGE_PRESENT, UVMF_INVLPG};
use pv_guest_kit::abi::segments::{FLAT_KERNEL_CS, FLAT_KERNEL_SS};
use pv_guest_kit::abi::vcpu::{VGCF_IN_KERNEL, VcpuGuestContext};
use pv_guest_kit::arch::{cpu, mm};
use pv_guest_kit::frame::FailsafeFrame;
use pv_guest_kit::hypercall::{self, segments, vcpu};
use pv_guest_kit::traps;

extern crate alloc;

/// A flat data segment, DPL 3.
const DATA_DPL3: u64 = 0x00cf_f300_0000_ffff;
/// GDT entry 1, RPL 3.
const SELECTOR_1: u16 = (1 << 3) | 3;

/// The sched_op stub vCPU 1 calls in a loop to yield (filled before it starts).
static YIELD_STUB: AtomicU64 = AtomicU64::new(0);
/// Iterations of vCPU 1's loop.
static VCPU1_SPINS: AtomicU64 = AtomicU64::new(0);
/// Failsafe callbacks taken, and the last frame.
static TAKEN: AtomicU32 = AtomicU32::new(0);
static LAST: spin::Mutex<Option<FailsafeFrame>> = spin::Mutex::new(None);

core::arch::global_asm!(
    ".pushsection .text.exceptions_vcpu1, \"ax\", @progbits",
    ".globl exceptions_vcpu1_entry",
    "exceptions_vcpu1_entry:",
    "1:",
    "    lock incq {spins}(%rip)",
    "    xor %edi, %edi",
    "    xor %esi, %esi",
    "    call *{stub}(%rip)",
    "    jmp 1b",
    ".popsection",
    stub = sym YIELD_STUB,
    spins = sym VCPU1_SPINS,
    options(att_syntax)
);

unsafe extern "C" {
    /// vCPU 1's code: `sched_op(SCHEDOP_yield)` forever.
    static exceptions_vcpu1_entry: u8;
}

fn record(frame: &mut FailsafeFrame) {
    TAKEN.fetch_add(1, Ordering::SeqCst);
    *LAST.lock() = Some(*frame);
}

fn fs_selector() -> u16 {
    let value: u16;
    // SAFETY: reads a segment register.
    unsafe { core::arch::asm!("mov ax, fs", out("ax") value, options(nostack, nomem)) };
    value
}

fn load_fs(selector: u16) {
    // SAFETY: FS is not used by the kit or the guest; the selector names a valid descriptor.
    unsafe { core::arch::asm!("mov fs, ax", in("ax") selector, options(nostack, nomem)) };
}

/// Brings up vCPU 1 running the yield loop on a stack of its own.
fn start_vcpu1(c: &mut Checks) -> bool {
    YIELD_STUB.store(
        hypercall::page_address() + u64::from(HYPERVISOR_SCHED_OP) * HYPERCALL_STUB_SIZE as u64,
        Ordering::SeqCst,
    );
    #[repr(C, align(4096))]
    struct Stack([u8; 16384]);
    let stack = alloc::boxed::Box::into_raw(alloc::boxed::Box::new(Stack([0; 16384])));
    let top = stack as u64 + 16384;
    let mut ctx = alloc::boxed::Box::new(VcpuGuestContext::default());
    // Only VGCF_in_kernel: with VGCF_online Xen 4.17 clears the vCPU's "down" flag inside
    // VCPUOP_initialise without waking it, so the VCPUOP_up that follows finds nothing to do
    // and the vCPU stays offline for good (is_up says 1, the runstate says offline).
    ctx.flags = VGCF_IN_KERNEL;
    ctx.user_regs.rip = core::ptr::addr_of!(exceptions_vcpu1_entry) as u64;
    ctx.user_regs.rsp = top;
    ctx.user_regs.cs = FLAT_KERNEL_CS;
    ctx.user_regs.ss = FLAT_KERNEL_SS;
    ctx.user_regs.rflags = 0x200;
    ctx.kernel_ss = u64::from(FLAT_KERNEL_SS);
    ctx.kernel_sp = top;
    ctx.ctrlreg[3] = cpu::read_cr3();
    // SAFETY: vCPU 1 runs only the yield loop, on its own leaked stack, in the kernel's page
    // tables; it touches no memory but that stack and YIELD_STUB.
    let init = unsafe { vcpu::initialise(1, &ctx) };
    c.eq("VCPUOP_initialise(1) with a yield loop: 0", init, Ok(0));
    c.eq("VCPUOP_up(1): 0", vcpu::up(1), Ok(0));
    c.eq("VCPUOP_is_up(1): 1", vcpu::is_up(1), Ok(1));
    init.is_ok()
}

pub fn run(c: &mut Checks) {
    #[repr(C, align(4096))]
    struct Page([u64; 512]);
    let mut page = alloc::boxed::Box::new(Page([0; 512]));
    page.0[1] = DATA_DPL3;
    let gdt = alloc::boxed::Box::into_raw(page) as u64;
    let Some(mfn) = mm::virt_to_mfn(gdt) else {
        c.fail("failsafe: GDT page", format_args!("no MFN"));
        return;
    };
    // SAFETY: the page is leaked and no Rust reference to it remains; it becomes read-only.
    let ro = unsafe {
        hypercall::mm::update_va_mapping(
            gdt,
            mfn << 12 | _PAGE_PRESENT | _PAGE_ACCESSED,
            UVMF_INVLPG,
        )
    };
    c.eq("failsafe: GDT page mapped read-only", ro, Ok(0));
    c.eq(
        "failsafe: set_gdt with a data descriptor at entry 1",
        segments::set_gdt(&[mfn], 16),
        Ok(0),
    );
    if !start_vcpu1(c) {
        return;
    }
    c.eq(
        "failsafe: callback registered (kit's failsafe entry)",
        traps::set_failsafe_handler(record, false),
        Ok(0),
    );

    load_fs(SELECTOR_1);
    c.eq(
        "failsafe: FS loaded with the GDT selector",
        fs_selector(),
        SELECTOR_1,
    );
    // SAFETY: the address is entry 1 of the test's own GDT page.
    let cleared = unsafe { segments::update_descriptor(mfn << 12 | 8, 0) };
    c.eq(
        "failsafe: update_descriptor makes entry 1 not present",
        cleared,
        Ok(0),
    );
    // Sleep (poll with no port and a 1 ms timeout): vCPU 1 gets the CPU, and when the timeout
    // wakes vCPU 0, switching back reloads its selectors.
    let mut polls = 0;
    let vcpu0 = pv_guest_kit::arch::shared::vcpu0();
    while TAKEN.load(Ordering::SeqCst) == 0 && polls < 100 {
        let now = vcpu0.map_or(0, |v| v.system_time_ns());
        let _ = hypercall::sched::poll(&[], now + 1_000_000);
        polls += 1;
    }
    let mut runstate = pv_guest_kit::abi::vcpu::VcpuRunstateInfo::default();
    // SAFETY: the hypervisor writes one vcpu_runstate_info.
    let rs = unsafe {
        vcpu::vcpu_op(
            pv_guest_kit::abi::vcpu::VCPUOP_GET_RUNSTATE_INFO,
            1,
            core::ptr::from_mut(&mut runstate) as u64,
        )
    };
    c.check(
        "VCPUOP_get_runstate_info(1): vCPU 1 ran and is not offline",
        rs == Ok(0)
            && runstate.state != pv_guest_kit::abi::vcpu::RUNSTATE_OFFLINE
            && VCPU1_SPINS.load(Ordering::SeqCst) > 0,
        format_args!(
            "{rs:?} {runstate:?}, {} loops",
            VCPU1_SPINS.load(Ordering::SeqCst)
        ),
    );
    info(format_args!(
        "failsafe: {} callback(s) after {polls} poll(s); vCPU 1 looped {} times",
        TAKEN.load(Ordering::SeqCst),
        VCPU1_SPINS.load(Ordering::SeqCst)
    ));
    match *LAST.lock() {
        Some(f) => {
            let stub = hypercall::page_address()
                + u64::from(HYPERVISOR_SCHED_OP) * HYPERCALL_STUB_SIZE as u64;
            info(format_args!(
                "failsafe frame: ds {:#x} es {:#x} fs {:#x} gs {:#x} rip {:#x} cs {:#x} rflags {:#x} rsp {:#x} ss {:#x}",
                f.ds, f.es, f.fs, f.gs, f.rip, f.cs, f.rflags, f.rsp, f.ss
            ));
            c.eq_hex(
                "failsafe: the frame's FS is the selector Xen could not load",
                f.fs,
                u64::from(SELECTOR_1),
            );
            c.check(
                "failsafe: DS, ES, GS null in the frame",
                f.ds == 0 && f.es == 0 && f.gs == 0,
                format_args!("ds {:#x} es {:#x} gs {:#x}", f.ds, f.es, f.gs),
            );
            // The stub is push rcx; push r11; mov $29, %eax; syscall (10 bytes), then pop r11.
            c.check(
                "failsafe: RIP in the sched_op stub, after its syscall",
                f.rip == stub + 10,
                format_args!("rip {:#x}, stub {stub:#x}", f.rip),
            );
            c.check(
                "failsafe: CS 0xe030 with upcall mask 1, RFLAGS.IF clear, SS 0xe02b",
                f.selector() == 0xe030
                    && f.saved_upcall_mask() == 1
                    && f.rflags & pv_guest_kit::frame::rflags::IF == 0
                    && f.ss == u64::from(FLAT_KERNEL_SS),
                format_args!("cs {:#x} rflags {:#x} ss {:#x}", f.cs, f.rflags, f.ss),
            );
        }
        None => c.fail(
            "failsafe: callback entered",
            format_args!("not after {polls} polls"),
        ),
    }
    c.eq("failsafe: FS null after the callback", fs_selector(), 0);
    c.eq("VCPUOP_down(1): 0", vcpu::down(1), Ok(0));
    c.eq(
        "failsafe: set_gdt back to no entries",
        segments::set_gdt(&[], 0),
        Ok(0),
    );
}
