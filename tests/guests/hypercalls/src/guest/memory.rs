//! update_va_mapping, mmu_update, mmuext_op and memory_op.

use guest_support::catch::catch;
use guest_support::{Checks, info};
use pv_guest_kit::StartInfo;
use pv_guest_kit::abi::errno::Errno;
use pv_guest_kit::abi::memory::{E820Entry, XenMachphysMapping};
use pv_guest_kit::abi::mm::{
    _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_PRESENT, _PAGE_RW, MmuCmd, MmuUpdate, MmuextCmd, MmuextOp,
    PTE_ADDR_MASK,
};
use pv_guest_kit::arch::{cpu, mm};
use pv_guest_kit::hypercall::memory;

use super::raw::{self, UNMAPPED};

const RW: u64 = _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY;

pub fn mappings(c: &mut Checks, si: &StartInfo) {
    let a = raw::leak_page(|i| 0xa000_0000_0000_0000 | i as u64);
    let b = raw::leak_page(|i| 0xb000_0000_0000_0000 | i as u64);
    let (Some(a_mfn), Some(b_pte), Some(b_l1e)) =
        (mm::virt_to_mfn(a), mm::pte_of(b), mm::l1_entry_maddr(b))
    else {
        c.fail(
            "page-table walk",
            format_args!("cannot find the MFN/PTE of the test pages"),
        );
        return;
    };
    info(format_args!(
        "page b: pte {b_pte:#x}, L1 entry at {b_l1e:#x}"
    ));
    c.eq_hex(
        "page-table walk: b's PTE names b's MFN",
        (b_pte & PTE_ADDR_MASK) >> 12,
        mm::virt_to_mfn(b).unwrap_or(0),
    );

    c.eq(
        "update_va_mapping(b -> a's frame): 0",
        raw::remap(b, a_mfn << 12 | RW),
        0,
    );
    c.eq_hex(
        "update_va_mapping: b now reads a's words",
        raw::read_word(b, 5),
        0xa000_0000_0000_0005,
    );
    c.eq("update_va_mapping(b, 0) unmaps: 0", raw::remap(b, 0), 0);
    let (_, fault) = catch(3, || raw::probe_read(b));
    c.check(
        "update_va_mapping(b, 0): reading b faults (#PF)",
        fault.is_some_and(|f| f.vector == 14),
        format_args!("{fault:x?}"),
    );
    c.eq(
        "update_va_mapping(b, its own frame back): 0",
        raw::remap(b, b_pte),
        0,
    );
    c.eq_hex(
        "update_va_mapping: b reads its own words again",
        raw::read_word(b, 5),
        0xb000_0000_0000_0005,
    );
    c.eq(
        "update_va_mapping of an address with no L1 table: -EINVAL",
        raw::remap(UNMAPPED, a_mfn << 12 | RW),
        Errno::Einval.as_neg(),
    );
    let l4_mfn = cpu::read_cr3() >> 12;
    // A page-table frame cannot also be a writable page: Xen answers the type conflict with -EBUSY.
    c.eq(
        "update_va_mapping: a writable mapping of the L4: -EBUSY",
        raw::remap(b, l4_mfn << 12 | RW),
        Errno::Ebusy.as_neg(),
    );

    let req = |val: u64| [MmuUpdate::new(MmuCmd::NormalPtUpdate, b_l1e, val)];
    c.eq(
        "mmu_update(NORMAL_PT_UPDATE b -> a's frame): 1 done",
        raw::mmu_update(&req(a_mfn << 12 | RW)),
        Ok(1),
    );
    let _ = raw::mmuext_op(&[MmuextOp::new(MmuextCmd::InvlpgLocal, b, 0)]);
    c.eq_hex(
        "mmu_update: b reads a's words",
        raw::read_word(b, 7),
        0xa000_0000_0000_0007,
    );
    c.eq(
        "mmu_update: a read-only mapping of the L4 is allowed",
        raw::mmu_update(&req(l4_mfn << 12 | _PAGE_PRESENT | _PAGE_ACCESSED)),
        Ok(1),
    );
    let _ = raw::mmuext_op(&[MmuextOp::new(MmuextCmd::InvlpgLocal, b, 0)]);
    let pt_base_word = raw::read_word(si.pt_base, 511);
    c.eq_hex(
        "mmu_update: b reads the L4 (same as pt_base)",
        raw::read_word(b, 511),
        pt_base_word,
    );
    c.eq(
        "mmu_update: a writable mapping of the L4: -EBUSY",
        raw::mmu_update(&req(l4_mfn << 12 | RW)),
        Err(Errno::Ebusy),
    );
    c.eq(
        "mmu_update: b back to its own frame",
        raw::mmu_update(&req(b_pte)),
        Ok(1),
    );
    let _ = raw::mmuext_op(&[MmuextOp::new(MmuextCmd::InvlpgLocal, b, 0)]);
    c.eq_hex(
        "mmu_update: b reads its own words again",
        raw::read_word(b, 7),
        0xb000_0000_0000_0007,
    );

    let op = |cmd: MmuextCmd, arg1: u64| [MmuextOp::new(cmd, arg1, 0)];
    c.eq(
        "mmuext_op(TLB_FLUSH_LOCAL): 1 done",
        raw::mmuext_op(&op(MmuextCmd::TlbFlushLocal, 0)),
        Ok(1),
    );
    c.eq(
        "mmuext_op(INVLPG_LOCAL): 1 done",
        raw::mmuext_op(&op(MmuextCmd::InvlpgLocal, b)),
        Ok(1),
    );
    c.eq(
        "mmuext_op(TLB_FLUSH_ALL): 1 done",
        raw::mmuext_op(&op(MmuextCmd::TlbFlushAll, 0)),
        Ok(1),
    );
    c.eq(
        "mmuext_op(INVLPG_ALL): 1 done",
        raw::mmuext_op(&op(MmuextCmd::InvlpgAll, b)),
        Ok(1),
    );
    c.eq(
        "mmuext_op(NEW_BASEPTR, the current L4): 1 done",
        raw::mmuext_op(&op(MmuextCmd::NewBaseptr, l4_mfn)),
        Ok(1),
    );
    c.eq(
        "mmuext_op(NEW_USER_BASEPTR, the kernel L4): 1 done",
        raw::mmuext_op(&op(MmuextCmd::NewUserBaseptr, l4_mfn)),
        Ok(1),
    );
    c.eq(
        "mmuext_op(NEW_USER_BASEPTR, 0): 1 done",
        raw::mmuext_op(&op(MmuextCmd::NewUserBaseptr, 0)),
        Ok(1),
    );
    let pin = raw::mmuext_op(&op(MmuextCmd::PinL4Table, l4_mfn));
    info(format_args!(
        "mmuext_op(PIN_L4_TABLE, the pinned boot L4) {pin:?}"
    ));
    c.eq(
        "mmuext_op(PIN_L4_TABLE) of the already pinned L4: -EINVAL",
        pin,
        Err(Errno::Einval),
    );
    let unpin = raw::mmuext_op(&op(MmuextCmd::UnpinTable, mm::virt_to_mfn(a).unwrap_or(0)));
    c.eq(
        "mmuext_op(UNPIN_TABLE) of a page never pinned: -EINVAL",
        unpin,
        Err(Errno::Einval),
    );
    let mark = raw::mmuext_op(&op(MmuextCmd::MarkSuper, a_mfn));
    c.eq(
        "mmuext_op(MARK_SUPER): -EOPNOTSUPP",
        mark,
        Err(Errno::Eopnotsupp),
    );
    let unknown = raw::mmuext_op(&[MmuextOp {
        cmd: 14,
        _pad0: 0,
        arg1: 0,
        arg2: 0,
    }]);
    c.eq(
        "mmuext_op(unknown command 14): -ENOSYS",
        unknown,
        Err(Errno::Enosys),
    );
}

pub fn memory_op(c: &mut Checks, si: &StartInfo) {
    let current = memory::current_reservation();
    let maximum = memory::maximum_reservation();
    info(format_args!(
        "memory_op: current {current:?}, maximum {maximum:?}, nr_pages {}",
        si.nr_pages
    ));
    c.check(
        "memory_op(current_reservation): dom0's page count (<= nr_pages)",
        current.is_ok_and(|n| n > 0 && n <= si.nr_pages),
        format_args!("{current:?}"),
    );
    c.check(
        "memory_op(maximum_reservation) >= current",
        matches!((current, maximum), (Ok(cur), Ok(max)) if max >= cur),
        format_args!("{maximum:?}"),
    );
    let max_page = memory::maximum_ram_page();
    info(format_args!("memory_op(maximum_ram_page) {max_page:#x?}"));
    c.check(
        "memory_op(maximum_ram_page): the highest MFN of RAM",
        max_page.is_ok_and(|m| m > cpu::read_cr3() >> 12),
        format_args!("{max_page:?}"),
    );
    let mut map = [E820Entry::default(); 16];
    let n = memory::memory_map(&mut map);
    info(format_args!(
        "memory_op(memory_map) {n:?}: {:x?}",
        map.get(..usize::try_from(n.unwrap_or(0)).unwrap_or(0).min(16))
    ));
    // Nobody set a memory map for dom0 (Xen builds none for a PV dom0): -ENOSYS.
    c.eq(
        "memory_op(memory_map) on a PV dom0: -ENOSYS",
        n,
        Err(Errno::Enosys),
    );
    let mapping = memory::machphys_mapping();
    info(format_args!("memory_op(machphys_mapping) {mapping:x?}"));
    c.check(
        "memory_op(machphys_mapping): the M2P at 0xffff800000000000..0xffff804000000000",
        matches!(
            mapping,
            Ok(XenMachphysMapping {
                v_start: 0xffff_8000_0000_0000,
                v_end: 0xffff_8040_0000_0000,
                ..
            })
        ),
        format_args!("{mapping:x?}"),
    );
    let unknown = pv_guest_kit::errno::result_from_ret(raw::call2(
        pv_guest_kit::abi::hypercall::HYPERVISOR_MEMORY_OP,
        63,
        0,
    ));
    c.eq(
        "memory_op(unknown sub-op 63): -ENOSYS",
        unknown,
        Err(Errno::Enosys),
    );
    let m2p_of_pt = mm::virt_to_mfn(si.pt_base).and_then(mm::mfn_to_pfn);
    c.eq(
        "the read-only M2P maps pt_base's frame back to its PFN",
        m2p_of_pt,
        Some((si.pt_base - pv_guest_kit::arch::virt_base()) >> 12),
    );
}
