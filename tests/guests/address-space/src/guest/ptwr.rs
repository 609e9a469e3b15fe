//! Writable page tables (`VMASST_TYPE_writable_pagetables`, reference §9.7): a write to a
//! read-only mapping of one of the guest's L1 tables becomes a validated update.

use guest_support::catch::catch;
use guest_support::{Checks, info};
use pv_guest_kit::abi::mm::PTE_ADDR_MASK;
use pv_guest_kit::abi::vm_assist::{VmAssistCmd, VmAssistType};
use pv_guest_kit::arch::{cpu, mm};
use pv_guest_kit::hypercall::mm::{invlpg, vm_assist};
use pv_guest_kit::mm::{Frame, Level, flags, frames, read_entry};

use super::frames::PF_WRITE_PROTECTED;
use super::space::{Ctx, WINDOW, page};
use super::{hc, raw};

fn faulted_pf(fault: Option<guest_support::catch::Caught>) -> bool {
    fault.is_some_and(|f| f.vector == 14 && f.error_code == PF_WRITE_PROTECTED)
}

pub fn checks(c: &mut Checks, ctx: &Ctx) {
    let walk = ctx.space.walk(WINDOW);
    let (Some(l1), Some(l2)) = (walk.at(Level::L1), walk.at(Level::L2)) else {
        c.fail("the window's tables", format_args!("{walk:x?}"));
        return;
    };
    let (l1, l2) = (l1.table, l2.table);
    let direct = |mfn: u64| mm::mfn_to_pfn(mfn).and_then(frames::direct_va).unwrap_or(0);
    let (e0, e1) = (direct(l1), direct(l1) + 8);
    let f = |i: usize| ctx.frames.get(i).copied().unwrap_or(Frame::new(0, 0));
    let entry0 = || read_entry(l1, 0).unwrap_or(u64::MAX);
    let l1_rw = Frame::new(0, l1).pte(flags::KERNEL_RW);

    // Without the assist a write faults (reference §9.7) -- except that Xen 4.17 emulates it
    // for the hardware domain anyway: its fault handler sends dom0's writes to read-only pages
    // to `pv_ro_page_fault` for MMIO, which falls back to the page-table emulation. Either is
    // accepted; the same behaviour must come back when the assist is disabled.
    let (_, fault) = catch(3, || raw::probe_write(e0, f(0).pte(flags::KERNEL_RW)));
    let emulated_without = fault.is_none();
    info(format_args!(
        "without the assist the write was {}",
        if emulated_without {
            "emulated"
        } else {
            "refused (#PF)"
        }
    ));
    c.check(
        "without the assist: #PF with the entry untouched, or (dom0 on Xen) a validated write",
        if emulated_without {
            (entry0() & PTE_ADDR_MASK) >> 12 == f(0).mfn
        } else {
            faulted_pf(fault) && entry0() == 0
        },
        format_args!("{fault:x?}, entry {:#x}", entry0()),
    );
    let _ = catch(3, || raw::probe_write(e0, 0));
    let _ = hc::mmu1(l1 * 4096, 0);
    c.eq(
        "vm_assist(enable, writable_pagetables)",
        vm_assist(VmAssistCmd::Enable, VmAssistType::WritablePagetables),
        Ok(0),
    );

    let (_, fault) = catch(3, || raw::probe_write(e0, f(0).pte(flags::KERNEL_RW)));
    let stored = entry0();
    info(format_args!("after the mov: entry {stored:#x}"));
    c.check(
        "mov of a valid entry: no fault, the entry is written (validated)",
        fault.is_none() && (stored & PTE_ADDR_MASK) >> 12 == f(0).mfn && stored & 3 == 3,
        format_args!("{fault:x?}, entry {stored:#x}"),
    );
    let _ = invlpg(WINDOW);
    c.eq_hex(
        "the mapping took effect: page 0 reads frame 0",
        raw::read(page(0)) & 0xffff_0000_0000_ffff,
        0x5a5a_0000_0000_0000,
    );

    let (found, fault) = catch(5, || {
        raw::probe_cmpxchg(e0, stored, f(1).pte(flags::KERNEL_RW))
    });
    c.check(
        "cmpxchg of a valid entry: no fault, returns the old entry",
        fault.is_none() && found == stored,
        format_args!("{fault:x?}, found {found:#x}"),
    );
    let _ = invlpg(WINDOW);
    c.eq_hex(
        "cmpxchg took effect: page 0 reads frame 1",
        raw::read(page(0)) & 0xffff_0000_0000_ffff,
        0x5a5a_0000_0000_0001,
    );
    let current = entry0();
    let (found, fault) = catch(5, || {
        raw::probe_cmpxchg(e0, 0x1234, f(2).pte(flags::KERNEL_RW))
    });
    c.check(
        "cmpxchg with a stale expected value: no fault, no change, returns the entry",
        fault.is_none() && found == current && entry0() == current,
        format_args!("{fault:x?}, found {found:#x}, entry {:#x}", entry0()),
    );

    let (_, fault) = catch(3, || raw::probe_write(e0, l1_rw));
    let cr2 = cpu::read_cr2();
    c.check(
        "mov of an invalid entry (the L1 itself writable): #PF delivered, cr2 = the entry",
        faulted_pf(fault) && cr2 == e0,
        format_args!("{fault:x?}, cr2 {cr2:#x}"),
    );
    c.eq_hex(
        "the invalid mov left the entry untouched",
        entry0(),
        current,
    );
    let (_, fault) = catch(5, || raw::probe_cmpxchg(e0, current, l1_rw));
    c.check(
        "cmpxchg of an invalid entry: #PF delivered, entry untouched",
        faulted_pf(fault) && entry0() == current,
        format_args!("{fault:x?}, entry {:#x}", entry0()),
    );

    let (_, fault) = catch(3, || raw::probe_write(e1, 0xdead_0000));
    c.check(
        "mov of a not-present entry: accepted as it is",
        fault.is_none() && read_entry(l1, 1) == Some(0xdead_0000),
        format_args!("{fault:x?}, entry {:x?}", read_entry(l1, 1)),
    );
    let _ = catch(3, || raw::probe_write(e1, 0));

    let (_, fault) = catch(3, || raw::probe_write(direct(l2) + 100 * 8, 0));
    c.check(
        "an L2 entry is never emulated: #PF",
        faulted_pf(fault),
        format_args!("{fault:x?}"),
    );

    c.eq(
        "vm_assist(disable, writable_pagetables)",
        vm_assist(VmAssistCmd::Disable, VmAssistType::WritablePagetables),
        Ok(0),
    );
    let (_, fault) = catch(3, || raw::probe_write(e0, 0));
    c.check(
        "with the assist off again, a write behaves as before enabling it",
        if emulated_without {
            fault.is_none() && entry0() == 0
        } else {
            faulted_pf(fault) && entry0() == current
        },
        format_args!("{fault:x?}, entry {:#x}", entry0()),
    );
    let _ = hc::mmu1(l1 * 4096, 0);
    let _ = invlpg(WINDOW);
}
