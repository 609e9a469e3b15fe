//! The memory-management and user-mode benchmarks (`bench mm`):
//!
//! - `mmu-update-1`: one `mmu_update` of one L1 entry (alternating between two frames);
//! - `update-va-mapping-invlpg`: `update_va_mapping(va, pte, UVMF_INVLPG)` (alternating);
//! - `mmu-update-512`: one `mmu_update` of 512 requests, a whole L1 (alternating between two
//!   sets of 512 frames);
//! - `ptwr-write`: a `mov` of an L1 entry through its read-only mapping, which the hypervisor
//!   decodes, validates and performs (`vm_assist(writable_pagetables)` on);
//! - `user-syscall-round-trip`: timed in user mode around a `syscall`: the hypervisor's bounce
//!   to the kit's syscall entry, the Rust handler, the `iret` hypercall with `VGCF_in_syscall`
//!   back to user mode.
//!
//! The mappings live at a lower-half window of their own.

use alloc::vec::Vec;
use core::cell::Cell;

use guest_support::{Checks, info};
use pv_guest_kit::abi::mm::{MmuCmd, MmuUpdate, pte_mfn};
use pv_guest_kit::abi::vm_assist::{VmAssistCmd, VmAssistType};
use pv_guest_kit::arch::mm as machine;
use pv_guest_kit::hypercall::mm::vm_assist;
use pv_guest_kit::mm::{AddressSpace, Frame, flags, frames, read_entry};
use pv_guest_kit::user::{self, SyscallAction, SyscallFrame, UserSpace, demo, sys};

use crate::guest::{RUNS, WARMUP, bench, report};

/// The benchmarks' window (L4 slot 4).
const WINDOW: u64 = 0x0000_0200_0000_0000;
/// System calls the user program makes (warm-up included), then its exit.
const CALLS: u64 = (WARMUP + RUNS) as u64;

#[allow(
    unsafe_code,
    reason = "the hypercalls and the page-table write under test"
)]
mod raw {
    use pv_guest_kit::abi::mm::{MmuUpdate, UVMF_INVLPG};
    use pv_guest_kit::hypercall::mm;

    /// `mmu_update(reqs)`; true if every request was done.
    pub fn mmu_update(reqs: &[MmuUpdate]) -> bool {
        // SAFETY: the requests map the benchmark's own frames at its lower-half window.
        unsafe { mm::mmu_update(reqs) }.is_ok()
    }

    /// `update_va_mapping(va, pte, UVMF_INVLPG)`; true on success.
    pub fn update_va_mapping(va: u64, pte: u64) -> bool {
        // SAFETY: `va` is a page of the benchmark's lower-half window.
        unsafe { mm::update_va_mapping(va, pte, UVMF_INVLPG) }.is_ok()
    }

    /// A plain store of `value` to `entry` (an L1 entry, through its read-only mapping).
    pub fn write_entry(entry: u64, value: u64) {
        // SAFETY: `entry` is an entry of the window's L1, mapped read-only in the direct map:
        // the hypervisor validates and emulates the store (or delivers #PF).
        unsafe { (entry as *mut u64).write_volatile(value) }
    }
}

pv_guest_kit::user_program!(
    /// `CALLS` times: TSC, `syscall(NOP)`, TSC, store the difference at `DATA_VA[i]`; then
    /// `exit(count)`.
    fn syscall_loop;
    "xor %r12d, %r12d",
    "movabs ${data}, %r13",
    "2:",
    "lfence",
    "rdtsc",
    "lfence",
    "shl $32, %rdx",
    "or %rdx, %rax",
    "mov %rax, %r14",
    "mov ${nop}, %eax",
    "syscall",
    "lfence",
    "rdtsc",
    "lfence",
    "shl $32, %rdx",
    "or %rdx, %rax",
    "sub %r14, %rax",
    "mov %rax, (%r13,%r12,8)",
    "inc %r12",
    "cmp ${calls}, %r12",
    "jb 2b",
    "mov %r12, %rdi",
    "mov ${exit}, %eax",
    "syscall",
    "ud2";
    data = const user::DATA_VA,
    nop = const sys::NOP,
    exit = const sys::EXIT,
    calls = const CALLS,
);

fn syscall_handler(frame: &mut SyscallFrame) -> SyscallAction {
    demo::handle(frame, 0)
}

/// Runs the five benchmarks; `null_hypercall` is the median of the null hypercall.
pub fn run(c: &mut Checks, null_hypercall: u64) {
    let space = AddressSpace::current();
    let a: Vec<Frame> = (0..512).filter_map(|_| frames::alloc()).collect();
    let b: Vec<Frame> = (0..512).filter_map(|_| frames::alloc()).collect();
    c.eq(
        "mm: 1024 frames from the allocator",
        a.len() + b.len(),
        1024,
    );
    let mut mapper = space.mapper();
    for (i, f) in a.iter().enumerate() {
        let _ = mapper.map(WINDOW + i as u64 * 4096, f.mfn, flags::KERNEL_RW);
    }
    c.eq(
        "mm: 512 pages mapped at the window",
        mapper.finish(),
        Ok(()),
    );
    let Some(l1) = space.walk(WINDOW).l1().map(|s| s.table) else {
        c.fail("mm: the window's L1", format_args!("not found"));
        return;
    };
    let l1_va = machine::mfn_to_pfn(l1)
        .and_then(frames::direct_va)
        .unwrap_or(0);
    let (Some(&a0), Some(&b0)) = (a.first(), b.first()) else {
        return;
    };
    let refused = Cell::new(0u32);
    let pick = |flip: &Cell<bool>| {
        flip.set(!flip.get());
        if flip.get() { b0 } else { a0 }
    };

    let flip = Cell::new(false);
    let (mmu1, _) = bench("mmu-update-1", || {
        let f = pick(&flip);
        let req = [MmuUpdate::new(
            MmuCmd::NormalPtUpdate,
            l1 * 4096,
            f.pte(flags::KERNEL_RW),
        )];
        if !raw::mmu_update(&req) {
            refused.set(refused.get() + 1);
        }
    });
    let (_uvm, _) = bench("update-va-mapping-invlpg", || {
        let f = pick(&flip);
        if !raw::update_va_mapping(WINDOW + 4096, f.pte(flags::KERNEL_RW)) {
            refused.set(refused.get() + 1);
        }
    });
    let batch = |set: &[Frame]| -> Vec<MmuUpdate> {
        set.iter()
            .enumerate()
            .map(|(i, f)| {
                MmuUpdate::new(
                    MmuCmd::NormalPtUpdate,
                    l1 * 4096 + i as u64 * 8,
                    f.pte(flags::KERNEL_RW),
                )
            })
            .collect()
    };
    let (batch_a, batch_b) = (batch(&a), batch(&b));
    let (mmu512, _) = bench("mmu-update-512", || {
        flip.set(!flip.get());
        let reqs = if flip.get() { &batch_b } else { &batch_a };
        if !raw::mmu_update(reqs) {
            refused.set(refused.get() + 1);
        }
    });
    c.eq(
        "mm: every mmu_update and update_va_mapping was accepted",
        refused.get(),
        0,
    );
    c.check(
        "mmu-update-512: one batch costs less than 512 single updates",
        mmu512 < 512 * mmu1,
        format_args!("batch {mmu512}, single {mmu1}"),
    );
    c.check(
        "mmu-update-1 costs more than a null hypercall",
        mmu1 > null_hypercall,
        format_args!("mmu_update {mmu1}, null {null_hypercall}"),
    );

    c.eq(
        "vm_assist(enable, writable_pagetables)",
        vm_assist(VmAssistCmd::Enable, VmAssistType::WritablePagetables),
        Ok(0),
    );
    let entry = l1_va + 2 * 8;
    let last = Cell::new(a0);
    let _ = bench("ptwr-write", || {
        let f = pick(&flip);
        raw::write_entry(entry, f.pte(flags::KERNEL_RW));
        last.set(f);
    });
    c.eq(
        "ptwr-write: the last emulated write is in the L1",
        read_entry(l1, 2).map(pte_mfn),
        Some(last.get().mfn),
    );

    user_round_trip(c);

    let mut mapper = space.mapper();
    for i in 0..512u64 {
        let _ = mapper.unmap(WINDOW + i * 4096);
    }
    let _ = mapper.finish();
    let freed = a
        .iter()
        .chain(b.iter())
        .filter(|&&f| frames::free(f).is_ok())
        .count();
    info(format_args!("mm: {freed} frames freed"));
}

fn user_round_trip(c: &mut Checks) {
    c.eq("user::init", user::init(), Ok(()));
    let _ = user::set_syscall_handler(syscall_handler);
    let us = match UserSpace::new() {
        Ok(us) => us,
        Err(err) => {
            c.fail("a user address space", format_args!("{err}"));
            return;
        }
    };
    let data_pages = (CALLS * 8).div_ceil(4096);
    let ready = us
        .load(&syscall_loop(), user::CODE_VA)
        .and_then(|_| us.map_fresh(user::STACK_TOP - 4096, 1, flags::USER_RW))
        .and_then(|()| us.map_fresh(user::DATA_VA, data_pages, flags::USER_RW));
    c.eq(
        "the user program, its stack and its data pages",
        ready,
        Ok(()),
    );
    let code = us.run(user::CODE_VA, user::STACK_TOP);
    c.eq(
        "user-syscall-round-trip: the program made every system call",
        code,
        Ok(CALLS),
    );
    let mut bytes = alloc::vec![0u8; RUNS * 8];
    let copied = us.copy_in(user::DATA_VA + (WARMUP * 8) as u64, &mut bytes);
    let mut samples: Vec<u64> = bytes
        .chunks_exact(8)
        .map(|w| u64::from_le_bytes(w.try_into().unwrap_or([0; 8])))
        .collect();
    if copied.is_ok() {
        report("user-syscall-round-trip", &mut samples);
    }
    let frames_used: Vec<Frame> = (0..data_pages)
        .map(|p| user::DATA_VA + p * 4096)
        .chain([user::CODE_VA, user::STACK_TOP - 4096])
        .filter_map(|va| us.frame_at(va))
        .collect();
    let _ = us.release();
    for f in frames_used {
        let _ = frames::free(f);
    }
}
