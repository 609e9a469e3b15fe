//! set_segment_base, set_gdt and update_descriptor, with FS/GS checked through the hardware.

use guest_support::catch::catch;
use guest_support::{Checks, info};
use pv_guest_kit::abi::errno::Errno;
use pv_guest_kit::abi::hypercall::HYPERVISOR_SET_GDT;
use pv_guest_kit::abi::mm::{_PAGE_ACCESSED, _PAGE_PRESENT};
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
/// A present 64-bit TSS descriptor (system type 9), which a PV guest may not install.
const TSS: u64 = 0x0000_8900_0000_0067;
/// Selector of GDT entry 1 with RPL 3.
const SELECTOR_1: u16 = (1 << 3) | 3;

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
