//! The frame allocator.

use guest_support::catch::catch;
use guest_support::{Checks, info};
use pv_guest_kit::arch::{mm, virt_base};
use pv_guest_kit::mm::{Frame, frames};

use super::{hc, raw};
use pv_guest_kit::abi::mm::{MmuextCmd, MmuextOp};

/// The error code of a kernel-mode write to a present read-only page: P | W.
pub const PF_WRITE_PROTECTED: u64 = 3;

pub fn checks(c: &mut Checks) {
    let Some(a) = frames::alloc() else {
        c.fail("frames::alloc", format_args!("no frame"));
        return;
    };
    let stats = frames::stats();
    info(format_args!("first frame {a:x?}; allocator {stats:x?}"));
    c.check(
        "alloc: the frame lies beyond the initial mapping, below nr_pages",
        a.pfn >= stats.first_pfn && a.pfn < stats.limit,
        format_args!("{a:x?}, {stats:x?}"),
    );
    c.eq(
        "alloc: P2M[pfn] is the MFN",
        mm::pfn_to_mfn(a.pfn),
        Some(a.mfn),
    );
    c.eq(
        "alloc: M2P[mfn] is the PFN",
        mm::mfn_to_pfn(a.mfn),
        Some(a.pfn),
    );
    let va = frames::direct_va(a.pfn).unwrap_or(0);
    c.eq_hex(
        "alloc: mapped at VIRT_BASE + pfn * 4096",
        va,
        virt_base() + a.pfn * 4096,
    );
    c.check(
        "alloc: the frame is zeroed",
        (0..512).all(|i| raw::read(va + i * 8) == 0),
        format_args!("non-zero word"),
    );
    raw::write(va + 7 * 8, 0xdead_beef);
    c.eq("make_readonly", frames::make_readonly(a), Ok(()));
    let (_, fault) = catch(3, || raw::probe_write(va, 1));
    c.check(
        "make_readonly: a write faults (#PF, P|W)",
        fault.is_some_and(|f| f.vector == 14 && f.error_code == PF_WRITE_PROTECTED),
        format_args!("{fault:x?}"),
    );
    c.eq("make_writable", frames::make_writable(a), Ok(()));
    let (_, fault) = catch(3, || raw::probe_write(va, 1));
    c.check(
        "make_writable: the write goes through",
        fault.is_none() && raw::read(va) == 1,
        format_args!("{fault:x?}"),
    );
    c.eq("free", frames::free(a), Ok(()));
    c.eq("free twice is refused", frames::free(a), Err(a));
    let b = frames::alloc();
    c.eq("alloc after free reuses the frame", b, Some(a));
    c.check(
        "a reused frame is zeroed again",
        (0..512).all(|i| raw::read(va + i * 8) == 0),
        format_args!("word 7 = {:#x}", raw::read(va + 7 * 8)),
    );
    if let Some(b) = b {
        let _ = frames::free(b);
    }
    copy_and_clear(c);
    let kernel = Frame::new(0, mm::pfn_to_mfn(0).unwrap_or(0));
    c.eq(
        "free of a frame the allocator did not hand out is refused",
        frames::free(kernel),
        Err(kernel),
    );
}

/// `MMUEXT_COPY_PAGE` and `MMUEXT_CLEAR_PAGE` on two frames of the allocator.
fn copy_and_clear(c: &mut Checks) {
    let (Some(a), Some(b)) = (frames::alloc(), frames::alloc()) else {
        c.fail("copy/clear page", format_args!("no frames"));
        return;
    };
    let (va, vb) = (
        frames::direct_va(a.pfn).unwrap_or(0),
        frames::direct_va(b.pfn).unwrap_or(0),
    );
    let pattern = |i: u64| (i + 1).wrapping_mul(0x0101_0101_0101_0101);
    for i in 0..512 {
        raw::write(va + i * 8, pattern(i));
    }
    c.eq(
        "MMUEXT_COPY_PAGE",
        hc::ext1(MmuextOp::new(MmuextCmd::CopyPage, b.mfn, a.mfn)),
        Ok(0),
    );
    c.check(
        "MMUEXT_COPY_PAGE: the destination holds the source's bytes",
        (0..512).all(|i| raw::read(vb + i * 8) == pattern(i)),
        format_args!("word 0 = {:#x}", raw::read(vb)),
    );
    c.eq(
        "MMUEXT_CLEAR_PAGE",
        hc::ext1(MmuextOp::new(MmuextCmd::ClearPage, a.mfn, 0)),
        Ok(0),
    );
    c.check(
        "MMUEXT_CLEAR_PAGE: the frame is zero, the copy untouched",
        (0..512).all(|i| raw::read(va + i * 8) == 0) && raw::read(vb + 8) == pattern(1),
        format_args!("word 0 = {:#x}", raw::read(va)),
    );
    let _ = frames::free(a);
    let _ = frames::free(b);
}
