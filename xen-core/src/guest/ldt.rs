//! A vCPU's local descriptor table: `MMUEXT_SET_LDT` and the lazily built shadow.
//!
//! A PV guest names its LDT by a linear address in its own address space and an entry count.
//! The CPU, though, reads the LDT through the LDTR's base, which points at a per-CPU *shadow*
//! in the hypervisor's area whose 16 pages start out not present. The first descriptor load
//! that touches a shadow page faults; the hypervisor then looks up the guest page behind that
//! part of the LDT (through the guest kernel's page tables), gives it the descriptor-page type
//! (which validates every descriptor in it and forbids writable mappings from then on) and maps
//! it into the shadow. If that fails, the guest gets the page fault at its own LDT address —
//! the same contract as Xen's.
//!
//! The shadow mapping holds a general and a type reference on the frame, recorded in
//! [`Vcpu::ldt_frames`](crate::domain::vcpu::Vcpu::ldt_frames); they are dropped when the LDT
//! changes and when the vCPU or domain goes. As in Xen 4.17 (built without
//! `CONFIG_PV_LDT_PAGING`), unmapping the page from the guest's own tables does not drop the
//! shadow: the frame stays a descriptor page, safe to show, until the LDT changes.

use crate::hypercall::mm::{l1_slot, mm_err};
use crate::hypercall::{Ctx, canonical};
use crate::mm::frame_table::PageType;
use crate::types::{DomId, Mfn, Paddr};
use hypercall_abi::errno::Errno;
use hypercall_abi::mm::{_PAGE_PRESENT, HYPERVISOR_VIRT_END, pte_mfn};

/// Most descriptors an LDT can hold.
pub const MAX_LDT_ENTRIES: u32 = 8192;
/// Pages of the LDT shadow.
pub const LDT_PAGES: usize = 16;
/// Bytes of the LDT shadow.
pub const LDT_BYTES: u64 = LDT_PAGES as u64 * 4096;

/// Whether a guest may name `va` as a linear address (Xen's `__addr_ok`): the lower canonical
/// half, or the upper half above the hypervisor's slots.
pub const fn addr_ok(va: u64) -> bool {
    va < (1 << 47) || va >= HYPERVISOR_VIRT_END
}

/// Checks `MMUEXT_SET_LDT`'s arguments and returns the `(base, entries)` to install: an empty
/// LDT has base 0 whatever the guest passed.
pub fn check_set_ldt(linear: u64, entries: u32) -> Result<(u64, u32), Errno> {
    let base = if entries == 0 { 0 } else { linear };
    if entries > MAX_LDT_ENTRIES || base & 0xfff != 0 || !addr_ok(base) {
        return Err(Errno::Einval);
    }
    Ok((base, entries))
}

/// What a fault at `offset` into the LDT shadow needs: the shadow page to fill and the guest
/// linear address of the page that backs it, or `None` if the offset is outside the LDT.
pub fn shadow_page_for(ldt: (u64, u32), offset: u64) -> Option<(usize, u64)> {
    let (base, entries) = ldt;
    if offset >= LDT_BYTES || offset >> 3 >= u64::from(entries) {
        return None;
    }
    let page = usize::try_from(offset >> 12).ok()?;
    Some((page, base.wrapping_add(offset & !0xfff)))
}

/// The error code of the `#GP` a guest gets when its LDT runs into non-canonical addresses:
/// the selector's index with the table bit set.
pub fn noncanonical_error(offset: u64) -> u32 {
    u32::try_from((offset & 0xfff8) | 4).unwrap_or(4)
}

/// `MMUEXT_SET_LDT` for the calling vCPU (`fd`: the operation's foreign domain, which must be
/// the caller).
pub fn set_ldt(cx: &mut Ctx<'_>, fd: DomId, linear: u64, entries: u32) -> Result<(), Errno> {
    if fd != cx.dom.id {
        return Err(Errno::Eperm);
    }
    let ldt = check_set_ldt(linear, entries)?;
    if cx.v().ldt != ldt {
        let vcpu = cx.vcpu;
        destroy_shadow(cx, vcpu, true);
        cx.v().ldt = ldt;
        cx.plat.load_ldt(ldt.1);
    }
    Ok(())
}

/// Drops vCPU `vcpu`'s LDT shadow: its references, and (`loaded`: the vCPU's shadow is the one
/// this CPU shows) the mappings. Returns whether anything was mapped.
pub fn destroy_shadow(cx: &mut Ctx<'_>, vcpu: usize, loaded: bool) -> bool {
    match cx.dom.vcpus.get_mut(vcpu) {
        Some(v) => release_shadow(v, cx.plat, loaded),
        None => false,
    }
}

/// Drops `v`'s LDT shadow references (and, if `loaded`, this CPU's shadow mappings).
/// Returns whether anything was mapped.
pub fn release_shadow(
    v: &mut crate::domain::vcpu::Vcpu,
    plat: &mut dyn crate::hypercall::Platform,
    loaded: bool,
) -> bool {
    let frames = core::mem::take(&mut v.ldt_frames);
    let mut any = false;
    for (page, f) in frames.iter().enumerate() {
        let Some(mfn) = *f else { continue };
        any = true;
        if loaded {
            plat.map_ldt_page(page, None);
        }
        plat.mm(&mut |t, e| t.put_page_and_type(&mut &mut *e, mfn));
    }
    any
}

/// Fills the shadow page holding `offset` from the guest's LDT. Returns whether it is mapped
/// now (the faulting access can be retried).
pub fn map_shadow(cx: &mut Ctx<'_>, offset: u64) -> bool {
    let ldt = cx.v().ldt;
    let Some((page, linear)) = shadow_page_for(ldt, offset) else {
        return false;
    };
    if cx.v().ldt_frames[page].is_some() || !addr_ok(linear) || !canonical(linear) {
        // Already mapped (so this fault is something else), or not a guest address.
        return false;
    }
    let Some((l1, idx)) = l1_slot(cx, linear) else {
        return false;
    };
    let mut e = [0u8; 8];
    if !cx
        .plat
        .read_machine(Paddr(l1.paddr().0 + idx as u64 * 8), &mut e)
    {
        return false;
    }
    let e = u64::from_le_bytes(e);
    if e & _PAGE_PRESENT == 0 {
        return false;
    }
    let mfn = Mfn(pte_mfn(e));
    let dom = cx.dom.id;
    let ctx = crate::hypercall::mm::pt_ctx(cx);
    let mut taken = Err(Errno::Einval);
    cx.plat.mm(&mut |t, env| {
        taken = t
            .get_page_and_type(&mut &mut *env, &ctx, mfn, dom, PageType::SegDesc)
            .map_err(mm_err);
    });
    if taken.is_err() {
        return false;
    }
    cx.v().ldt_frames[page] = Some(mfn);
    cx.plat.map_ldt_page(page, Some(mfn));
    true
}

/// A page fault at `cr2` from guest context: if it hit this CPU's LDT shadow, fill the shadow
/// (the guest retries) or, when the guest's LDT page cannot be used, deliver the fault at the
/// guest's own LDT address (`#GP` if that address is not canonical). Returns false if the
/// fault is not the LDT's.
pub fn guest_fault(cx: &mut Ctx<'_>, cr2: u64, error: u64) -> bool {
    let area = cx.plat.ldt_area();
    let Some(offset) = cr2.checked_sub(area).filter(|&o| o < LDT_BYTES) else {
        return false;
    };
    if map_shadow(cx, offset) {
        return true;
    }
    let linear = cx.v().ldt.0.wrapping_add(offset);
    if canonical(linear) {
        super::deliver::page_fault(cx, linear, error);
    } else {
        super::deliver::deliver_exception(cx, 13, Some(noncanonical_error(offset)));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_ldt_arguments() {
        assert_eq!(check_set_ldt(0x1000, 1), Ok((0x1000, 1)));
        assert_eq!(check_set_ldt(0x1000, 8192), Ok((0x1000, 8192)));
        // An empty LDT ignores the address.
        assert_eq!(check_set_ldt(0x1234, 0), Ok((0, 0)));
        assert_eq!(check_set_ldt(0x1000, 8193), Err(Errno::Einval));
        assert_eq!(check_set_ldt(0x1008, 1), Err(Errno::Einval));
        assert_eq!(check_set_ldt(0xffff_8000_0000_0000, 1), Err(Errno::Einval));
        assert_eq!(check_set_ldt(0xffff_87ff_ffff_f000, 1), Err(Errno::Einval));
        assert_eq!(check_set_ldt(0x0000_8000_0000_0000, 1), Err(Errno::Einval));
        assert_eq!(
            check_set_ldt(0xffff_8800_0000_0000, 1),
            Ok((0xffff_8800_0000_0000, 1))
        );
    }

    #[test]
    fn shadow_pages() {
        let ldt = (0x40_0000, 600);
        assert_eq!(shadow_page_for(ldt, 0), Some((0, 0x40_0000)));
        assert_eq!(shadow_page_for(ldt, 0x1008), Some((1, 0x40_1000)));
        assert_eq!(shadow_page_for(ldt, 599 * 8), Some((1, 0x40_1000)));
        assert_eq!(shadow_page_for(ldt, 600 * 8), None);
        assert_eq!(shadow_page_for((0, 0), 0), None);
        assert_eq!(
            shadow_page_for((0x1000, 8192), LDT_BYTES - 8),
            Some((15, 0x10000))
        );
        assert_eq!(shadow_page_for((0x1000, 8192), LDT_BYTES), None);
    }

    #[test]
    fn noncanonical_gp_code() {
        assert_eq!(noncanonical_error(0x10), 0x14);
        assert_eq!(noncanonical_error(0x1fff), 0x1ffc);
    }
}
