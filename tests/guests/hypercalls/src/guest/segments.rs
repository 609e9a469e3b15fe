//! set_segment_base, set_gdt and update_descriptor, with FS/GS checked through the hardware.

use guest_support::catch::catch;
use guest_support::{Checks, info};
use pv_guest_kit::abi::domid::DOMID_IO;
use pv_guest_kit::abi::errno::Errno;
use pv_guest_kit::abi::hypercall::HYPERVISOR_SET_GDT;
use pv_guest_kit::abi::mm::{_PAGE_ACCESSED, _PAGE_PRESENT, _PAGE_RW, MmuextCmd, MmuextOp};
use pv_guest_kit::abi::segments::SegBase;
use pv_guest_kit::arch::mm;
use pv_guest_kit::errno::result_from_ret;
use pv_guest_kit::hypercall::segments::{set_gdt, set_segment_base};

use super::raw::{self, NON_CANONICAL, UNMAPPED};

/// MSRs of the segment bases.
const MSR_FS_BASE: u32 = 0xc000_0100;
const MSR_SHADOW_GS_BASE: u32 = 0xc000_0102;

/// A flat 4 GiB data segment, DPL 3, present (what Xen's own `FLAT_RING3_DS32` is).
const DATA_DPL3: u64 = 0x00cf_f300_0000_ffff;
/// The same with DPL 0: Xen raises the DPL of a guest's descriptor to 3.
const DATA_DPL0: u64 = 0x00cf_9300_0000_ffff;
/// A 64-bit code segment, DPL 3, present (what Xen's `FLAT_RING3_CS64` is).
const CODE64_DPL3: u64 = 0x00af_fb00_0000_ffff;
/// A present 64-bit TSS descriptor (system type 9), which a PV guest may not install.
const TSS: u64 = 0x0000_8900_0000_0067;
/// Selector of GDT entry 1 with RPL 3.
const SELECTOR_1: u16 = (1 << 3) | 3;
/// Selector of LDT entry `i` with RPL 3.
const fn ldt_selector(i: u16) -> u16 {
    (i << 3) | 4 | 3
}

pub fn segment_base(c: &mut Checks) {
    let page = raw::leak_page(|i| 0x5eed_0000_0000_0000 | i as u64);
    c.eq(
        "set_segment_base(FS, a page): 0",
        set_segment_base(SegBase::Fs, page),
        Ok(0),
    );
    c.eq_hex(
        "set_segment_base(FS): %fs:8 reads the page's word 1",
        raw::read_fs(8),
        0x5eed_0000_0000_0001,
    );
    c.eq(
        "set_segment_base(GS_KERNEL, the page + 16): 0",
        set_segment_base(SegBase::GsKernel, page + 16),
        Ok(0),
    );
    c.eq_hex(
        "set_segment_base(GS_KERNEL): %gs:0 reads the page's word 2",
        raw::read_gs(0),
        0x5eed_0000_0000_0002,
    );
    c.eq(
        "set_segment_base(GS_USER, 0x1000): 0",
        set_segment_base(SegBase::GsUser, 0x1000),
        Ok(0),
    );
    let (shadow, fault) = catch(2, || raw::rdmsr(MSR_SHADOW_GS_BASE));
    c.check(
        "set_segment_base(GS_USER): rdmsr(SHADOW_GS_BASE) reads it",
        fault.is_none() && shadow == 0x1000,
        format_args!("{shadow:#x} {fault:x?}"),
    );
    c.eq(
        "set_segment_base(GS_USER_SEL, null selector): 0",
        set_segment_base(SegBase::GsUserSel, 0),
        Ok(0),
    );
    c.eq(
        "set_segment_base(FS, non-canonical): -EINVAL",
        set_segment_base(SegBase::Fs, NON_CANONICAL),
        Err(Errno::Einval),
    );
    c.eq(
        "set_segment_base(GS_KERNEL, non-canonical): -EINVAL",
        set_segment_base(SegBase::GsKernel, NON_CANONICAL),
        Err(Errno::Einval),
    );
    c.eq(
        "set_segment_base(GS_USER, non-canonical): -EINVAL",
        set_segment_base(SegBase::GsUser, NON_CANONICAL),
        Err(Errno::Einval),
    );
    c.eq(
        "set_segment_base(unknown which 4): -EINVAL",
        result_from_ret(raw::call2(
            pv_guest_kit::abi::hypercall::HYPERVISOR_SET_SEGMENT_BASE,
            4,
            0,
        )),
        Err(Errno::Einval),
    );
    let (fs, _) = catch(2, || raw::rdmsr(MSR_FS_BASE));
    c.eq_hex(
        "rdmsr(FS_BASE) reads the base set_segment_base left",
        fs,
        page,
    );
    for which in [SegBase::Fs, SegBase::GsKernel, SegBase::GsUser] {
        let _ = set_segment_base(which, 0);
    }
}

pub fn gdt(c: &mut Checks) {
    // A GDT page: entry 0 null, entry 1 a flat data segment; the rest zero (not present).
    let good = raw::leak_page(|i| if i == 1 { DATA_DPL3 } else { 0 });
    // A page holding a TSS descriptor in entry 1.
    let bad = raw::leak_page(|i| if i == 1 { TSS } else { 0 });
    let (Some(good_mfn), Some(bad_mfn)) = (mm::virt_to_mfn(good), mm::virt_to_mfn(bad)) else {
        c.fail("GDT pages", format_args!("no MFN for {good:#x} / {bad:#x}"));
        return;
    };
    c.eq(
        "set_gdt with 7169 entries: -EINVAL",
        set_gdt(&[good_mfn; 15], 7169),
        Err(Errno::Einval),
    );
    c.eq(
        "set_gdt with a frame still mapped writable: -EINVAL",
        set_gdt(&[good_mfn], 2),
        Err(Errno::Einval),
    );
    let ro = |mfn: u64| mfn << 12 | _PAGE_PRESENT | _PAGE_ACCESSED;
    c.eq(
        "update_va_mapping: the GDT page read-only: 0",
        raw::remap(good, ro(good_mfn)),
        0,
    );
    c.eq(
        "update_va_mapping: the TSS page read-only: 0",
        raw::remap(bad, ro(bad_mfn)),
        0,
    );
    c.eq(
        "set_gdt with a TSS descriptor: -EINVAL",
        set_gdt(&[bad_mfn], 2),
        Err(Errno::Einval),
    );
    c.eq(
        "set_gdt from an unmapped frame list: -EFAULT",
        result_from_ret(raw::call2(HYPERVISOR_SET_GDT, UNMAPPED, 2)),
        Err(Errno::Efault),
    );
    c.eq(
        "set_gdt with a valid read-only frame: 0",
        set_gdt(&[good_mfn], 16),
        Ok(0),
    );
    let (back, fault) = catch(2, || raw::load_fs(SELECTOR_1));
    c.check(
        "mov to %fs of the new GDT's data selector works",
        fault.is_none() && back == SELECTOR_1,
        format_args!("read back {back:#x}, {fault:x?}"),
    );
    let _ = raw::load_fs(0);

    let entry = |i: u64| (good_mfn << 12) | (i * 8);
    c.eq(
        "update_descriptor at a misaligned address: -EINVAL",
        raw::update_descriptor(entry(2) + 4, DATA_DPL3),
        Err(Errno::Einval),
    );
    c.eq(
        "update_descriptor with a TSS descriptor: -EINVAL",
        raw::update_descriptor(entry(2), TSS),
        Err(Errno::Einval),
    );
    c.eq(
        "update_descriptor with a DPL-0 data descriptor: 0",
        raw::update_descriptor(entry(2), DATA_DPL0),
        Ok(0),
    );
    let stored = raw::read_word(good, 2);
    info(format_args!(
        "update_descriptor stored {stored:#x} for {DATA_DPL0:#x}"
    ));
    c.eq_hex(
        "update_descriptor raised the stored DPL to 3",
        stored,
        DATA_DPL3,
    );
    c.eq(
        "update_descriptor clearing an entry (not present): 0",
        raw::update_descriptor(entry(2), 0),
        Ok(0),
    );
    let plain = raw::leak_page(|_| 0);
    match mm::virt_to_machine(plain + 8) {
        Some(maddr) => {
            c.eq(
                "update_descriptor on an ordinary writable page: 0",
                raw::update_descriptor(maddr, DATA_DPL3),
                Ok(0),
            );
            c.eq_hex(
                "update_descriptor wrote the ordinary page",
                raw::read_word(plain, 1),
                DATA_DPL3,
            );
        }
        None => c.fail(
            "update_descriptor on an ordinary page",
            format_args!("no MFN"),
        ),
    }
    c.eq(
        "set_gdt with no entries (back to Xen's GDT only): 0",
        set_gdt(&[], 0),
        Ok(0),
    );
}

/// `MMUEXT_SET_LDT` (through the raw wrapper, so refused requests are visible).
fn set_ldt(base: u64, entries: u64) -> Result<u32, Errno> {
    raw::mmuext_op(&[MmuextOp::new(MmuextCmd::SetLdt, base, entries)])
}

/// Loads `selector` into FS, catching the fault; returns the vector, error code and (for a
/// page fault) the virtual CR2.
fn try_fs(selector: u16) -> Option<(u64, u64, u64)> {
    let (back, fault) = catch(2, || raw::load_fs(selector));
    let _ = raw::load_fs(0);
    match fault {
        None if back == selector => None,
        None => Some((u64::MAX, u64::from(back), 0)),
        Some(f) => {
            let cr2 = if f.vector == 14 {
                pv_guest_kit::arch::cpu::read_cr2()
            } else {
                0
            };
            Some((f.vector, f.error_code, cr2))
        }
    }
}

pub fn ldt(c: &mut Checks) {
    // Entry 1: a flat data segment; entry 2: the same, not present; the rest zero.
    let page = raw::leak_page(|i| match i {
        1 => DATA_DPL3,
        2 => DATA_DPL3 & !(1 << 47),
        _ => 0,
    });
    let bad = raw::leak_page(|i| if i == 3 { TSS } else { 0 });
    let (Some(mfn), Some(bad_mfn)) = (mm::virt_to_mfn(page), mm::virt_to_mfn(bad)) else {
        c.fail("LDT pages", format_args!("no MFN for {page:#x} / {bad:#x}"));
        return;
    };
    c.eq(
        "set_ldt with a misaligned base: -EINVAL",
        set_ldt(page + 8, 2),
        Err(Errno::Einval),
    );
    c.eq(
        "set_ldt with 8193 entries: -EINVAL",
        set_ldt(page, 8193),
        Err(Errno::Einval),
    );
    c.eq(
        "set_ldt inside the hypervisor's area: -EINVAL",
        set_ldt(0xffff_8000_0000_0000, 2),
        Err(Errno::Einval),
    );
    c.eq(
        "set_ldt at a non-canonical base: -EINVAL",
        set_ldt(NON_CANONICAL & !0xfff, 2),
        Err(Errno::Einval),
    );
    c.eq(
        "set_ldt for DOMID_IO: -EPERM",
        raw::mmuext_op_foreign(&[MmuextOp::new(MmuextCmd::SetLdt, page, 2)], DOMID_IO),
        Err(Errno::Eperm),
    );
    c.eq(
        "set_ldt with 0 entries and a bad base: 0",
        set_ldt(0x1234, 0),
        Ok(1),
    );

    // The LDT page is still mapped writable: it cannot become a descriptor page, so the
    // descriptor load faults at the guest's LDT address.
    c.eq("set_ldt on a writable page: 0", set_ldt(page, 3), Ok(1));
    let got = try_fs(ldt_selector(1));
    c.eq(
        "LDT selector with the LDT page writable: #PF at the descriptor, error 0",
        got,
        Some((14, 0, page + 8)),
    );
    let ro = |mfn: u64| mfn << 12 | _PAGE_PRESENT | _PAGE_ACCESSED;
    c.eq(
        "update_va_mapping: the LDT page read-only: 0",
        raw::remap(page, ro(mfn)),
        0,
    );
    c.eq(
        "LDT selector 1 loads (the page is read-only now)",
        try_fs(ldt_selector(1)),
        None,
    );
    c.eq(
        "LDT selector 2 (not present): #NP",
        try_fs(ldt_selector(2)),
        Some((11, u64::from(ldt_selector(2)) & !3, 0)),
    );
    c.eq(
        "LDT selector 3 (beyond the 3 entries): #GP",
        try_fs(ldt_selector(3)),
        Some((13, u64::from(ldt_selector(3)) & !3, 0)),
    );
    c.eq(
        "update_va_mapping: the LDT page writable while in use: -EBUSY",
        raw::remap(page, ro(mfn) | _PAGE_RW),
        Errno::Ebusy.as_neg(),
    );
    // Unmapping the page leaves the shadow as it is (Xen 4.17 without PV_LDT_PAGING): the
    // frame stays a descriptor page until the LDT changes.
    c.eq(
        "update_va_mapping: unmapping the LDT page: 0",
        raw::remap(page, 0),
        0,
    );
    c.eq(
        "LDT selector 1 still loads from the shadow after the unmap",
        try_fs(ldt_selector(1)),
        None,
    );
    c.eq("set_ldt: 2 entries now: 0", set_ldt(page, 2), Ok(1));
    c.eq(
        "LDT selector after the LDT changed, its page unmapped: #PF at the descriptor",
        try_fs(ldt_selector(1)),
        Some((14, 0, page + 8)),
    );
    c.eq(
        "update_va_mapping: the LDT page back read-only: 0",
        raw::remap(page, ro(mfn)),
        0,
    );
    c.eq("LDT selector 1 loads again", try_fs(ldt_selector(1)), None);
    c.eq("set_ldt: the same LDT again: 0", set_ldt(page, 2), Ok(1));
    c.eq("LDT selector 1 still loads", try_fs(ldt_selector(1)), None);

    // A page holding a TSS descriptor can never be an LDT page.
    c.eq(
        "update_va_mapping: the TSS page read-only: 0",
        raw::remap(bad, ro(bad_mfn)),
        0,
    );
    c.eq("set_ldt on the TSS page: 0", set_ldt(bad, 8), Ok(1));
    c.eq(
        "LDT selector on a page with a TSS descriptor: #PF at the descriptor",
        try_fs(ldt_selector(1)),
        Some((14, 0, bad + 8)),
    );
    // A code segment in the LDT: the hypervisor's own return to the guest (iretq) is what
    // touches the LDT page first.
    let code = raw::leak_page(|i| if i == 1 { CODE64_DPL3 } else { 0 });
    match mm::virt_to_mfn(code) {
        Some(code_mfn) => {
            c.eq(
                "update_va_mapping: the code LDT page read-only: 0",
                raw::remap(code, ro(code_mfn)),
                0,
            );
            c.eq("set_ldt on the code page: 0", set_ldt(code, 2), Ok(1));
            c.eq_hex(
                "iret to an LDT code selector runs there (CS read back)",
                u64::from(raw::iret_through_cs(ldt_selector(1) & !3)),
                u64::from(ldt_selector(1)),
            );
        }
        None => c.fail("code LDT page", format_args!("no MFN for {code:#x}")),
    }
    c.eq("set_ldt with no entries: 0", set_ldt(0, 0), Ok(1));
    c.eq(
        "LDT selector with no LDT: #GP",
        try_fs(ldt_selector(1)).map(|f| f.0),
        Some(13),
    );
    c.eq(
        "update_va_mapping: the LDT page writable again: 0",
        raw::remap(page, ro(mfn) | _PAGE_RW),
        0,
    );
}
