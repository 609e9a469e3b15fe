//! What the hypervisor refuses, and with which errno.

use guest_support::{Checks, Name, info};
use pv_guest_kit::abi::errno::Errno;
use pv_guest_kit::abi::hypercall::{HYPERVISOR_MULTICALL, HYPERVISOR_UPDATE_VA_MAPPING, Hypercall};
use pv_guest_kit::abi::mm::{
    _PAGE_GNTTAB, _PAGE_PSE, MmuCmd, MmuUpdate, MmuextCmd, MmuextOp, UVMF_INVLPG,
};
use pv_guest_kit::abi::multicall::MulticallEntry;
use pv_guest_kit::hypercall::HypercallResult;
use pv_guest_kit::mm::{Frame, Level, flags, frames, pin, unpin};

use super::space::{Ctx, WINDOW, page};
use super::{hc, raw};

fn errno_of(r: HypercallResult) -> Result<u64, Errno> {
    r
}

/// Checks `got` against `want` and prints the value.
fn expect(c: &mut Checks, name: &str, got: HypercallResult, want: HypercallResult) {
    info(format_args!("{name}: {got:?}"));
    c.eq(name, errno_of(got), want);
}

pub fn checks(c: &mut Checks, ctx: &Ctx) {
    let walk = ctx.space.walk(WINDOW);
    let (Some(l1), Some(l2), Some(l3)) =
        (walk.at(Level::L1), walk.at(Level::L2), walk.at(Level::L3))
    else {
        c.fail("the window's tables", format_args!("{walk:x?}"));
        return;
    };
    let (l1, l2, l3) = (l1.table, l2.table, l3.table);
    let root = ctx.space.root();
    let (Some(data), Some(junk)) = (frames::alloc(), frames::alloc()) else {
        c.fail("two more frames", format_args!("none left"));
        return;
    };
    let junk_va = frames::direct_va(junk.pfn).unwrap_or(0);
    for i in 0..512 {
        raw::write(junk_va + i * 8, u64::MAX);
    }
    let _ = frames::make_readonly(junk);
    let entry = |table: u64, index: u64| table * 4096 + index * 8;
    let l1e = |index: u64| entry(l1, index);
    let f = |i: usize| ctx.frames.get(i).copied().unwrap_or(data);

    // Leaf entries.
    expect(
        c,
        "mmu_update: an L1 entry mapping a page table writable",
        hc::mmu1(l1e(0), Frame::new(0, l1).pte(flags::KERNEL_RW)),
        Err(Errno::Ebusy),
    );
    expect(
        c,
        "mmu_update: an L1 entry mapping a page table read-only",
        hc::mmu1(l1e(0), Frame::new(0, l1).pte(flags::KERNEL_RO)),
        Ok(0),
    );
    c.eq_hex(
        "the read-only mapping of the L1 reads the L1 itself",
        raw::read(WINDOW + 8),
        raw::read(
            frames::direct_va(pv_guest_kit::arch::mm::mfn_to_pfn(l1).unwrap_or(0)).unwrap_or(0) + 8,
        ),
    );
    expect(c, "mmu_update: clear it", hc::mmu1(l1e(0), 0), Ok(0));
    let _ = pv_guest_kit::hypercall::mm::invlpg(WINDOW);
    // Bit 62 is Xen's `_PAGE_GNTTAB`: a debug Xen (and the reference) refuses it with
    // -EINVAL; a release Xen compiles the check out (NDEBUG) and keeps the bit. Either is
    // accepted, nothing else.
    let gnttab = hc::mmu1(l1e(0), data.pte(flags::KERNEL_RW) | _PAGE_GNTTAB);
    let stored = ctx.space.translate(WINDOW).unwrap_or(0);
    info(format_args!(
        "mmu_update with bit 62: {gnttab:?}, stored entry {stored:#x}"
    ));
    c.check(
        "mmu_update: an L1 entry with bit 62: -EINVAL, or (release Xen) kept in the entry",
        match gnttab {
            Ok(_) => stored & _PAGE_GNTTAB != 0,
            Err(errno) => errno == Errno::Einval && stored == 0,
        },
        format_args!("{gnttab:?}, entry {stored:#x}"),
    );
    let _ = hc::mmu1(l1e(0), 0);
    let _ = pv_guest_kit::hypercall::mm::invlpg(WINDOW);
    // Not RAM, and not an I/O frame dom0 may map: -EPERM.
    expect(
        c,
        "mmu_update: an L1 entry naming a frame beyond the machine's RAM (-EPERM)",
        hc::mmu1(l1e(0), (1u64 << 50) | flags::KERNEL_RW),
        Err(Errno::Eperm),
    );
    expect(
        c,
        "mmu_update: a not-present L1 entry may hold anything",
        hc::mmu1(l1e(0), 0xdead_0000_0000_beee & !1),
        Ok(0),
    );
    expect(c, "mmu_update: clear it again", hc::mmu1(l1e(0), 0), Ok(0));

    // Table entries.
    expect(
        c,
        "mmu_update: an L2 entry with PSE (a 2 MiB page)",
        hc::mmu1(entry(l2, 100), data.pte(flags::TABLE | _PAGE_PSE)),
        Err(Errno::Einval),
    );
    expect(
        c,
        "mmu_update: an L2 entry pointing at a frame of junk (not a valid L1)",
        hc::mmu1(entry(l2, 100), junk.pte(flags::TABLE)),
        Err(Errno::Einval),
    );
    expect(
        c,
        "mmu_update: an L2 entry pointing at a frame mapped writable",
        hc::mmu1(entry(l2, 100), data.pte(flags::TABLE)),
        Err(Errno::Einval),
    );
    expect(
        c,
        "mmu_update: an L3 entry pointing at an L1 (wrong level)",
        hc::mmu1(entry(l3, 100), Frame::new(0, l1).pte(flags::TABLE)),
        Err(Errno::Einval),
    );
    for slot in [256u64, 261, 271] {
        expect(
            c,
            Name::of(format_args!("mmu_update: L4 slot {slot} (Xen's)")).as_str(),
            hc::mmu1(entry(root, slot), 0),
            Err(Errno::Einval),
        );
    }
    expect(
        c,
        "mmu_update: L4 slot 300 (a guest slot)",
        hc::mmu1(entry(root, 300), 0),
        Ok(0),
    );

    // Pins and roots.
    let ext = |cmd: MmuextCmd, mfn: u64| hc::ext1(MmuextOp::new(cmd, mfn, 0));
    expect(
        c,
        "pin L1: a frame mapped writable",
        pin(Level::L1, data.mfn).map(|()| 0),
        Err(Errno::Einval),
    );
    expect(
        c,
        "pin L1: a frame of junk",
        pin(Level::L1, junk.mfn).map(|()| 0),
        Err(Errno::Einval),
    );
    expect(
        c,
        "pin L2: a frame of junk",
        pin(Level::L2, junk.mfn).map(|()| 0),
        Err(Errno::Einval),
    );
    expect(
        c,
        "unpin: a frame never pinned",
        unpin(data.mfn).map(|()| 0),
        Err(Errno::Einval),
    );
    expect(
        c,
        "pin L1: the window's L1 (in use, not pinned)",
        pin(Level::L1, l1).map(|()| 0),
        Ok(0),
    );
    expect(
        c,
        "pin L2: the same frame at another level",
        pin(Level::L2, l1).map(|()| 0),
        Err(Errno::Einval),
    );
    expect(c, "unpin it", unpin(l1).map(|()| 0), Ok(0));
    expect(
        c,
        "new_baseptr: an L1",
        ext(MmuextCmd::NewBaseptr, l1),
        Err(Errno::Einval),
    );
    expect(
        c,
        "new_baseptr: a frame mapped writable",
        ext(MmuextCmd::NewBaseptr, data.mfn),
        Err(Errno::Einval),
    );
    expect(
        c,
        "new_user_baseptr: a frame mapped writable",
        ext(MmuextCmd::NewUserBaseptr, data.mfn),
        Err(Errno::Einval),
    );
    expect(
        c,
        "mmuext_op: unknown command 999",
        hc::ext1(MmuextOp {
            cmd: 999,
            _pad0: 0,
            arg1: 0,
            arg2: 0,
        }),
        Err(Errno::Enosys),
    );

    // A batch that fails in the middle.
    let reqs = [
        MmuUpdate::new(MmuCmd::NormalPtUpdate, l1e(0), f(0).pte(flags::KERNEL_RW)),
        MmuUpdate::new(
            MmuCmd::NormalPtUpdate,
            l1e(1),
            Frame::new(0, l1).pte(flags::KERNEL_RW),
        ),
        MmuUpdate::new(MmuCmd::NormalPtUpdate, l1e(2), f(2).pte(flags::KERNEL_RW)),
    ];
    let outcome = hc::mmu(&reqs);
    info(format_args!("mmu_update [ok, bad, ok]: {outcome:?}"));
    c.check(
        "mmu_update [ok, bad, ok]: the error of the second, done = 1",
        outcome.result == Err(Errno::Ebusy) && outcome.done == 1,
        format_args!("{outcome:?}"),
    );
    c.check(
        "mmu_update [ok, bad, ok]: the first applied, the third not",
        ctx.space.translate(page(0)).is_some() && ctx.space.translate(page(2)).is_none(),
        format_args!(
            "{:x?} {:x?}",
            ctx.space.translate(page(0)),
            ctx.space.translate(page(2))
        ),
    );
    let _ = hc::mmu1(l1e(0), 0);

    // update_va_mapping.
    expect(
        c,
        "update_va_mapping: a non-canonical address",
        hc::uvm(
            0x8000_0000_0000_0000,
            f(0).pte(flags::KERNEL_RW),
            UVMF_INVLPG,
        ),
        Err(Errno::Einval),
    );
    expect(
        c,
        "update_va_mapping: the hypervisor area (M2P)",
        hc::uvm(
            0xffff_8000_0000_0000,
            f(0).pte(flags::KERNEL_RO),
            UVMF_INVLPG,
        ),
        Err(Errno::Einval),
    );
    expect(
        c,
        "update_va_mapping: a window page",
        hc::uvm(WINDOW, f(0).pte(flags::KERNEL_RW), UVMF_INVLPG),
        Ok(0),
    );
    c.eq_hex(
        "update_va_mapping: the page reads its frame",
        raw::read(WINDOW) >> 48,
        0x5a5a,
    );
    expect(
        c,
        "update_va_mapping: UVMF_MULTI with an unmapped vCPU mask",
        hc::uvm(WINDOW, 0, UVMF_INVLPG | 0x0000_1234_5678_0000),
        Err(Errno::Efault),
    );
    let _ = hc::uvm(WINDOW, 0, UVMF_INVLPG);

    // multicall.
    let uvm = |va: u64, pte: u64| {
        MulticallEntry::new(Hypercall::UpdateVaMapping, [va, pte, UVMF_INVLPG, 0, 0])
    };
    let mut inner = [uvm(page(3), f(3).pte(flags::KERNEL_RW))];
    let mut calls = [
        uvm(page(0), f(0).pte(flags::KERNEL_RW)),
        uvm(0x8000_0000_0000_0000, f(1).pte(flags::KERNEL_RW)),
        uvm(page(1), f(1).pte(flags::KERNEL_RW)),
        MulticallEntry {
            op: u64::from(HYPERVISOR_MULTICALL),
            result: 0,
            args: [inner.as_mut_ptr() as u64, 1, 0, 0, 0, 0],
        },
    ];
    let ret = hc::multicall(&mut calls);
    let results: [i64; 4] = calls.map(|e| e.result_signed());
    info(format_args!("multicall: {ret:?}, results {results:?}"));
    c.eq("multicall of 4 entries: 0", ret, Ok(0));
    c.eq(
        "multicall: results [0, -EINVAL, 0, -EINVAL (nested multicall)]",
        results,
        [0, Errno::Einval.as_neg(), 0, Errno::Einval.as_neg()],
    );
    c.check(
        "multicall: the good entries took effect, the nested one did not",
        raw::read(page(0)) >> 48 == 0x5a5a
            && raw::read(page(1)) & 0xffff == 1
            && ctx.space.translate(page(3)).is_none(),
        format_args!("{:#x} {:#x}", raw::read(page(0)), raw::read(page(1))),
    );
    let _ = (HYPERVISOR_UPDATE_VA_MAPPING, ());
    for i in 0..4 {
        let _ = hc::uvm(page(i), 0, UVMF_INVLPG);
    }

    let _ = frames::make_writable(junk);
    let _ = frames::free(junk);
    let _ = frames::free(data);
}

/// The hypervisor writes shared_info behind the guest's back (event bits, the time record,
/// CR2), so it must never let the frame become a page table: it holds the frame writable for
/// the domain's lifetime, as Xen does. The check takes away every guest mapping of the frame
/// and zeroes it first, so that only that type reference can refuse the pin.
pub fn shared_info_never_a_table(c: &mut Checks, shared_info_maddr: u64) {
    use pv_guest_kit::abi::mm::{_PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_PRESENT, _PAGE_RW};
    use pv_guest_kit::arch::shared::{shared_info, shared_info_address};
    if let Err(e) = shared_info() {
        c.fail("shared_info mapped", format_args!("{e:?}"));
        return;
    }
    let va = shared_info_address();
    let mfn = shared_info_maddr >> 12;
    let mut saved = [0u64; 512];
    for (i, w) in saved.iter_mut().enumerate() {
        *w = raw::read(va + i as u64 * 8);
    }
    for i in 0..512 {
        raw::write(va + i * 8, 0);
    }
    c.eq("unmap shared_info", hc::uvm(va, 0, UVMF_INVLPG), Ok(0));
    let pin = hc::ext1(MmuextOp::new(MmuextCmd::PinL1Table, mfn, 0));
    if pin.is_ok() {
        let _ = hc::ext1(MmuextOp::new(MmuextCmd::UnpinTable, mfn, 0));
    }
    let pte = shared_info_maddr | _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY;
    c.eq(
        "map shared_info again",
        hc::uvm(va, pte, UVMF_INVLPG),
        Ok(0),
    );
    for (i, w) in saved.iter().enumerate() {
        raw::write(va + i as u64 * 8, *w);
    }
    c.eq(
        "shared_info, unmapped and zeroed, still cannot be pinned as an L1",
        errno_of(pin),
        Err(Errno::Einval),
    );
}
