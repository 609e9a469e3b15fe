//! `memory_op` (hypercall 12): giving memory to and taking it from a domain, and the facts
//! about machine memory a PV guest needs (reference §9.8).

use super::mm::with_mm;
use super::{Ctx, HcResult, read_guest, write_guest};
use crate::mm::frame_table::Owner;
use crate::types::Mfn;
use hypercall_abi::domid::DOMID_SELF;
use hypercall_abi::errno::Errno;
use hypercall_abi::memory::{
    self as xm, XenMachphysMapping, XenMachphysMfnList, XenMemoryMap, XenMemoryReservation,
};
use hypercall_abi::mm::{MACH2PHYS_NR_ENTRIES, MACH2PHYS_VIRT_END, MACH2PHYS_VIRT_START};

/// Bits 5:0 of `cmd` are the sub-op; the rest is the extent to start at (continuations).
const MEMOP_EXTENT_SHIFT: u32 = 6;
/// Extents handled per call before continuing.
const EXTENTS_PER_CALL: u64 = 512;
/// Largest extent order accepted from a guest (2 MiB).
const MAX_ORDER: u32 = 9;

/// The domain a `domid` argument names: only the caller for now (others arrive with the
/// toolstack).
fn target(cx: &Ctx<'_>, domid: u16) -> Result<(), Errno> {
    if domid == DOMID_SELF || domid == cx.dom.id.0 {
        Ok(())
    } else if cx.dom.privileged {
        Err(Errno::Esrch)
    } else {
        Err(Errno::Eperm)
    }
}

/// `memory_op(cmd, arg)`.
pub fn memory_op(cx: &mut Ctx<'_>, args: [u64; 5]) -> HcResult {
    let cmd = args[0];
    let op = u32::try_from(cmd & ((1 << MEMOP_EXTENT_SHIFT) - 1)).unwrap_or(u32::MAX);
    let start = cmd >> MEMOP_EXTENT_SHIFT;
    let arg = args[1];
    match op {
        xm::XENMEM_INCREASE_RESERVATION
        | xm::XENMEM_POPULATE_PHYSMAP
        | xm::XENMEM_DECREASE_RESERVATION => reservation(cx, op, start, arg),
        xm::XENMEM_MAXIMUM_RAM_PAGE => Ok(cx.plat.max_mfn().saturating_sub(1)),
        xm::XENMEM_CURRENT_RESERVATION | xm::XENMEM_MAXIMUM_RESERVATION => {
            let domid: u16 = read_guest(cx.mem, arg)?;
            target(cx, domid)?;
            Ok(if op == xm::XENMEM_CURRENT_RESERVATION {
                cx.dom.tot_pages
            } else {
                cx.dom.max_pages
            })
        }
        xm::XENMEM_MAXIMUM_GPFN => {
            let domid: u16 = read_guest(cx.mem, arg)?;
            target(cx, domid)?;
            Ok(cx.dom.tot_pages.saturating_sub(1))
        }
        xm::XENMEM_MACHPHYS_MFN_LIST => {
            let mut l: XenMachphysMfnList = read_guest(cx.mem, arg)?;
            let chunks = cx.plat.m2p_chunks();
            let n = chunks.len().min(l.max_extents as usize);
            for (i, c) in chunks.iter().take(n).enumerate() {
                write_guest(cx.mem, l.extent_start.wrapping_add(i as u64 * 8), &c.0)?;
            }
            l.nr_extents = u32::try_from(n).unwrap_or(u32::MAX);
            write_guest(cx.mem, arg, &l)?;
            Ok(0)
        }
        xm::XENMEM_MACHPHYS_MAPPING => {
            // The hardware domain sees the real top of RAM; others the whole M2P range.
            let max_mfn = if cx.dom.hardware {
                cx.plat.max_mfn().saturating_sub(1)
            } else {
                MACH2PHYS_NR_ENTRIES - 1
            };
            let m = XenMachphysMapping {
                v_start: MACH2PHYS_VIRT_START,
                v_end: MACH2PHYS_VIRT_END,
                max_mfn,
            };
            write_guest(cx.mem, arg, &m)?;
            Ok(0)
        }
        xm::XENMEM_MEMORY_MAP | xm::XENMEM_MACHINE_MEMORY_MAP => {
            let map = if op == xm::XENMEM_MEMORY_MAP {
                if cx.dom.e820.is_empty() {
                    return Err(Errno::Enosys);
                }
                cx.dom.e820.clone()
            } else {
                if !cx.dom.privileged {
                    return Err(Errno::Eperm);
                }
                cx.plat.machine_memory_map()
            };
            let mut mm: XenMemoryMap = read_guest(cx.mem, arg)?;
            let n = map.len().min(mm.nr_entries as usize);
            for (i, e) in map.iter().take(n).enumerate() {
                write_guest(cx.mem, mm.buffer.wrapping_add(i as u64 * 20), e)?;
            }
            mm.nr_entries = u32::try_from(n).unwrap_or(u32::MAX);
            write_guest(cx.mem, arg, &mm)?;
            Ok(0)
        }
        // PV guests map shared_info and grant frames by machine address; only translated
        // guests may use the physmap calls (Xen 4.17 answers PV the same way).
        xm::XENMEM_ADD_TO_PHYSMAP
        | xm::XENMEM_REMOVE_FROM_PHYSMAP
        | xm::XENMEM_ADD_TO_PHYSMAP_BATCH => Err(Errno::Eacces),
        _ => Err(Errno::Enosys),
    }
}

/// increase_reservation, populate_physmap, decrease_reservation.
fn reservation(cx: &mut Ctx<'_>, op: u32, start: u64, arg: u64) -> HcResult {
    let r: XenMemoryReservation = read_guest(cx.mem, arg)?;
    target(cx, r.domid)?;
    if r.extent_order > MAX_ORDER {
        return Err(Errno::Einval);
    }
    // Extent flags Oxen cannot honour are refused rather than ignored.
    if r.mem_flags & !0xff != 0 {
        return Err(Errno::Einval);
    }
    let pages = 1u64 << r.extent_order;
    let mut i = start;
    while i < r.nr_extents {
        if i - start >= EXTENTS_PER_CALL {
            let cmd = (i << MEMOP_EXTENT_SHIFT) | u64::from(op);
            cx.continue_with(
                hypercall_abi::hypercall::HYPERVISOR_MEMORY_OP,
                [cmd, arg, 0, 0, 0],
            );
            return Ok(0);
        }
        let slot = r.extent_start.wrapping_add(i * 8);
        let done = match op {
            xm::XENMEM_DECREASE_RESERVATION => {
                if r.extent_start == 0 {
                    break;
                }
                let Ok(first) = read_guest::<u64>(cx.mem, slot) else {
                    break;
                };
                give_back(cx, Mfn(first), pages)
            }
            _ => {
                let gpfn = if op == xm::XENMEM_POPULATE_PHYSMAP {
                    match read_guest::<u64>(cx.mem, slot) {
                        Ok(g) => Some(g),
                        Err(_) => break,
                    }
                } else {
                    None
                };
                match take(cx, r.extent_order, r.mem_flags & 0xff) {
                    Some(first) => {
                        if let Some(g) = gpfn {
                            for k in 0..pages {
                                cx.plat.set_m2p(Mfn(first.0 + k), g.wrapping_add(k));
                            }
                        }
                        if r.extent_start != 0 && write_guest(cx.mem, slot, &first.0).is_err() {
                            give_back(cx, first, pages);
                            break;
                        }
                        true
                    }
                    None => false,
                }
            }
        };
        if !done {
            break;
        }
        i += 1;
    }
    Ok(i)
}

/// Allocates an extent of `2^order` frames for the caller, within its limit and below
/// `2^addr_bits` if `addr_bits` is not 0.
fn take(cx: &mut Ctx<'_>, order: u32, addr_bits: u32) -> Option<Mfn> {
    let pages = 1u64 << order;
    if cx.dom.tot_pages + pages > cx.dom.max_pages {
        return None;
    }
    let first = cx.plat.alloc_frames(order)?;
    let too_high =
        addr_bits != 0 && addr_bits < 64 && (first.0 + pages) << 12 > (1u64 << addr_bits);
    let dom = cx.dom.id;
    let ok = !too_high
        && with_mm(cx, false, |t, _| {
            (0..pages).all(|k| t.assign(Mfn(first.0 + k), dom).is_ok())
        });
    if !ok {
        with_mm(cx, (), |t, e| {
            for k in 0..pages {
                let m = Mfn(first.0 + k);
                if t.info(m).is_ok_and(|f| f.owner == Owner::Dom(dom)) {
                    if t.release_allocation(m) {
                        e.freed(m);
                    }
                } else {
                    e.freed(m);
                }
            }
        });
        return None;
    }
    for k in 0..pages {
        cx.plat.zero_frame(Mfn(first.0 + k));
        cx.plat
            .set_m2p(Mfn(first.0 + k), hypercall_abi::mm::INVALID_M2P_ENTRY);
    }
    cx.dom.tot_pages += pages;
    Some(first)
}

/// Gives back an extent starting at `first`: every frame must be the caller's (not its
/// shared_info); frames still mapped somewhere are freed when the last mapping goes.
fn give_back(cx: &mut Ctx<'_>, first: Mfn, pages: u64) -> bool {
    let dom = cx.dom.id;
    let shared = cx.dom.shared_info;
    let frames: alloc::vec::Vec<Mfn> = (0..pages).map(|k| Mfn(first.0.wrapping_add(k))).collect();
    let owned = with_mm(cx, false, |t, _| {
        frames.iter().all(|&m| {
            m != shared
                && t.info(m)
                    .is_ok_and(|f| f.owner == Owner::Dom(dom) && f.allocated)
        })
    });
    if !owned {
        return false;
    }
    with_mm(cx, (), |t, e| {
        for &m in &frames {
            if t.release_allocation(m) {
                e.freed(m);
            }
        }
    });
    for &m in &frames {
        cx.plat.set_m2p(m, hypercall_abi::mm::INVALID_M2P_ENTRY);
    }
    cx.dom.tot_pages = cx.dom.tot_pages.saturating_sub(pages);
    true
}
