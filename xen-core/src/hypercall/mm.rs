//! Memory hypercalls: `mmu_update`, `mmuext_op`, `update_va_mapping` (and its other-domain
//! form), `set_gdt`, `update_descriptor`. Every change goes through the frame table's rules
//! (reference §9).

use super::{Ctx, HcResult, read_guest, write_guest};
use crate::mm::frame_table::{FrameTable, MmError, Owner, PageType};
use crate::mm::pagetable::{MmEnv, PtContext, check_descriptor};
use crate::types::{DomId, Mfn, Paddr};
use hypercall_abi::domid::{DOMID_IO, DOMID_SELF};
use hypercall_abi::errno::Errno;
use hypercall_abi::mm as m;

/// Marks a continued `mmu_update`/`mmuext_op` whose `done` count is partly accumulated in the
/// guest's `done` variable (Xen's encoding: the top bit of `count`).
pub const MMU_UPDATE_PREEMPTED: u64 = 1 << 31;
/// Requests handled before a batch is continued, so a huge batch cannot stall the CPU.
pub const BATCH: u64 = 1024;

/// The page-table context for the calling domain.
pub fn pt_ctx(cx: &Ctx<'_>) -> PtContext {
    PtContext {
        dom: cx.dom.id,
        privileged: cx.dom.privileged,
        io: cx.dom.hardware,
        io_limit: cx.plat.io_limit(),
        xen_l4: cx.plat.xen_l4(),
    }
}

/// The errno a guest sees for a frame-table refusal.
pub fn mm_err(e: MmError) -> Errno {
    e.errno()
}

/// Runs `f` on the frame table and machine memory, returning its result (`default` if the
/// frame table is not available, which only happens before boot finishes).
pub(super) fn with_mm<R>(
    cx: &mut Ctx<'_>,
    default: R,
    mut f: impl FnMut(&mut FrameTable<'_>, &mut dyn MmEnv) -> R,
) -> R {
    let mut out = None;
    cx.plat.mm(&mut |t, e| out = Some(f(t, e)));
    out.unwrap_or(default)
}

/// The foreign domain of a `foreigndom` argument: the caller itself, or for a privileged
/// caller `DOMID_IO` or another existing domain (whose frames it may then map); `-ESRCH` for
/// a domain that does not exist, `-EPERM` for an unprivileged caller.
fn foreign_domain(cx: &Ctx<'_>, fd: u16) -> Result<DomId, Errno> {
    if fd == DOMID_SELF || fd == cx.dom.id.0 {
        return Ok(cx.dom.id);
    }
    if !cx.dom.privileged {
        return Err(Errno::Eperm);
    }
    if fd == DOMID_IO {
        return Ok(DomId(DOMID_IO));
    }
    if cx.others.get(DomId(fd)).is_some() {
        return Ok(DomId(fd));
    }
    Err(Errno::Esrch)
}

/// `(L1 frame, index)` of the entry mapping `va` in the vCPU's kernel page tables.
pub fn l1_slot(cx: &mut Ctx<'_>, va: u64) -> Option<(Mfn, usize)> {
    let mut table = cx.v().kernel_root?;
    for level in (2..=4u32).rev() {
        let idx = (va >> (12 + 9 * (level - 1))) & 511;
        let mut e = [0u8; 8];
        if !cx
            .plat
            .read_machine(Paddr(table.paddr().0 + idx * 8), &mut e)
        {
            return None;
        }
        let e = u64::from_le_bytes(e);
        if e & m::_PAGE_PRESENT == 0 || (level < 4 && e & m::_PAGE_PSE != 0) {
            return None;
        }
        table = Mfn(m::pte_mfn(e));
    }
    Some((table, ((va >> 12) & 511) as usize))
}

/// Flushes as `update_va_mapping`'s flags ask after a successful update, exactly as Xen
/// does: flush type 3 and `UVMF_NONE` do nothing; a scope other than `UVMF_LOCAL` (0) or
/// `UVMF_ALL` (4) is a pointer to a vCPU mask, and failing to read it makes the call
/// `-EFAULT` (the update stays done). Every vCPU of a domain runs on this CPU for now, so
/// every scope flushes this CPU. Guest user mappings are global, so a TLB flush includes
/// global entries.
fn uvmf_flush(cx: &mut Ctx<'_>, va: u64, flags: u64, rc: HcResult) -> HcResult {
    let kind = flags & m::UVMF_FLUSHTYPE_MASK;
    if kind != m::UVMF_TLB_FLUSH && kind != m::UVMF_INVLPG {
        return rc;
    }
    let mut rc = rc;
    let scope = flags & !m::UVMF_FLUSHTYPE_MASK;
    if scope != m::UVMF_LOCAL && scope != m::UVMF_ALL {
        rc = read_guest::<u64>(cx.mem, scope).map(|_| 0);
    }
    if kind == m::UVMF_TLB_FLUSH {
        cx.plat.flush_tlb(true);
    } else {
        cx.plat.invlpg(va);
    }
    rc
}

/// `update_va_mapping(va, val, flags)` and `update_va_mapping_otherdomain(..., domid)`.
pub fn update_va_mapping(cx: &mut Ctx<'_>, args: [u64; 5], other: Option<u16>) -> HcResult {
    let (va, val, flags) = (args[0], args[1], args[2]);
    let fd = match other {
        Some(d) => foreign_domain(cx, d)?,
        None => cx.dom.id,
    };
    // A failed update returns at once: nothing changed, so there is nothing to flush (and
    // `va` may be garbage) — Xen since XSA-279.
    let rc = update_va(cx, va, val, fd)?;
    uvmf_flush(cx, va, flags, Ok(rc))
}

/// The update part of `update_va_mapping`: `-EINVAL` unless `va`'s L1 exists and is an L1.
fn update_va(cx: &mut Ctx<'_>, va: u64, val: u64, fd: DomId) -> HcResult {
    if hypercall_abi::mm::in_hypervisor_hole(va) {
        return Err(Errno::Einval);
    }
    let (l1, idx) = l1_slot(cx, va).ok_or(Errno::Einval)?;
    let ctx = pt_ctx(cx);
    let r = with_mm(cx, Err(Errno::Einval), |t, e| {
        if t.info(l1).map(|f| f.ty) != Ok(PageType::L1) {
            return Err(Errno::Einval);
        }
        t.update_entry(&mut &mut *e, &ctx, l1, idx, val, fd)
            .map_err(mm_err)
    });
    r?;
    Ok(0)
}

fn write_done(cx: &mut Ctx<'_>, done_va: u64, done: u64) -> Result<(), Errno> {
    if done_va != 0 {
        let d = u32::try_from(done).unwrap_or(u32::MAX);
        write_guest(cx.mem, done_va, &d)?;
    }
    Ok(())
}

/// Decodes `count` of a possibly continued batch: `(count, done so far)`.
fn batch_start(cx: &mut Ctx<'_>, count_arg: u64, done_va: u64) -> (u64, u64) {
    let count = count_arg & 0xffff_ffff;
    if count & MMU_UPDATE_PREEMPTED != 0 {
        let done = if done_va != 0 {
            read_guest::<u32>(cx.mem, done_va).map_or(0, u64::from)
        } else {
            0
        };
        (count & !MMU_UPDATE_PREEMPTED, done)
    } else {
        (count, 0)
    }
}

/// Runs a batch of `count` requests of type `T` (`size` bytes each) at guest address `list`,
/// Xen's way: `done` accumulates across continuations (every [`BATCH`] requests the call
/// continues itself as hypercall `nr`), and the first failing request ends the batch with
/// `done` counting the requests before it.
fn run_batch<T: crate::arch::pod::Pod>(
    cx: &mut Ctx<'_>,
    nr: u32,
    args: [u64; 5],
    mut one: impl FnMut(&mut Ctx<'_>, T) -> Result<(), Errno>,
) -> HcResult {
    let size = core::mem::size_of::<T>() as u64;
    let (list, done_va, fdom) = (args[0], args[2], args[3]);
    let (count, done0) = batch_start(cx, args[1], done_va);
    for i in 0..count {
        if i > 0 && i % BATCH == 0 {
            write_done(cx, done_va, done0 + i)?;
            let rest = (count - i) | MMU_UPDATE_PREEMPTED;
            cx.continue_with(nr, [list.wrapping_add(i * size), rest, done_va, fdom, 0]);
            return Ok(0);
        }
        let result =
            read_guest::<T>(cx.mem, list.wrapping_add(i * size)).and_then(|req| one(cx, req));
        if let Err(e) = result {
            write_done(cx, done_va, done0 + i)?;
            return Err(e);
        }
    }
    write_done(cx, done_va, done0 + count)?;
    Ok(0)
}

/// `mmu_update(reqs, count, done, foreigndom)`.
pub fn mmu_update(cx: &mut Ctx<'_>, args: [u64; 5]) -> HcResult {
    let fds = m::ForeignDom::decode(args[3]);
    let fd = foreign_domain(cx, fds.fd)?;
    let pfd = match fds.pfd {
        Some(p) => foreign_domain(cx, p)?,
        None => cx.dom.id,
    };
    let mut ctx = pt_ctx(cx);
    ctx.dom = pfd;
    run_batch(
        cx,
        hypercall_abi::hypercall::HYPERVISOR_MMU_UPDATE,
        args,
        |cx, req: m::MmuUpdate| mmu_update_one(cx, &ctx, fd, req),
    )
}

fn mmu_update_one(
    cx: &mut Ctx<'_>,
    ctx: &PtContext,
    fd: DomId,
    req: m::MmuUpdate,
) -> Result<(), Errno> {
    let maddr = req.maddr();
    match req.cmd() {
        m::MmuCmd::NormalPtUpdate
        | m::MmuCmd::PtUpdatePreserveAd
        | m::MmuCmd::PtUpdateNoTranslate => {
            if maddr & 7 != 0 {
                return Err(Errno::Einval);
            }
            let table = Paddr(maddr).frame();
            let idx = ((maddr & 0xfff) >> 3) as usize;
            let preserve = req.cmd() == m::MmuCmd::PtUpdatePreserveAd;
            let ctx = *ctx;
            with_mm(cx, Err(MmError::BadState(table)), |t, e| {
                let mut val = req.val;
                if preserve {
                    let ad = m::_PAGE_ACCESSED | m::_PAGE_DIRTY;
                    val |= e.read(table, idx) & ad;
                }
                t.update_entry(&mut &mut *e, &ctx, table, idx, val, fd)
            })
            .map(|_| ())
            .map_err(mm_err)
        }
        m::MmuCmd::MachphysUpdate => {
            let mfn = Paddr(maddr).frame();
            let owner = with_mm(cx, None, |t, _| t.info(mfn).ok().map(|f| f.owner));
            if owner != Some(Owner::Dom(fd)) {
                return Err(Errno::Eperm);
            }
            cx.plat.set_m2p(mfn, req.val);
            Ok(())
        }
    }
}

/// Validates and installs an L4 as a page-table root, dropping the previous one's references.
fn set_root(cx: &mut Ctx<'_>, mfn: Option<Mfn>, user: bool) -> Result<(), Errno> {
    let ctx = pt_ctx(cx);
    let dom = cx.dom.id;
    if let Some(mfn) = mfn {
        with_mm(cx, Err(MmError::BadState(mfn)), |t, e| {
            t.get_page_and_type(&mut &mut *e, &ctx, mfn, dom, PageType::L4)
        })
        .map_err(mm_err)?;
    }
    let old = {
        let v = cx.v();
        let slot = if user {
            &mut v.user_root
        } else {
            &mut v.kernel_root
        };
        core::mem::replace(slot, mfn)
    };
    let v = cx.v();
    if v.in_kernel != user
        && let Some(root) = v.current_root()
    {
        // The active root changed: switch now, flushing global (user) entries too.
        cx.plat.load_cr3(root.paddr().0, true);
    }
    // Only now, with no CPU using it, can the old root lose its references.
    if let Some(old) = old {
        with_mm(cx, (), |t, e| t.put_page_and_type(&mut &mut *e, old));
    }
    Ok(())
}

/// Makes `mfn` the calling vCPU's kernel page-table root (`MMUEXT_NEW_BASEPTR`, or an emulated
/// `mov %reg, %cr3`).
pub fn set_kernel_root(cx: &mut Ctx<'_>, mfn: Mfn) -> Result<(), Errno> {
    set_root(cx, Some(mfn), false)
}

/// `mmuext_op(ops, count, done, foreigndom)`.
pub fn mmuext_op(cx: &mut Ctx<'_>, args: [u64; 5]) -> HcResult {
    let fd = foreign_domain(cx, m::ForeignDom::decode(args[3]).fd)?;
    run_batch(
        cx,
        hypercall_abi::hypercall::HYPERVISOR_MMUEXT_OP,
        args,
        |cx, op: m::MmuextOp| mmuext_one(cx, fd, op),
    )
}

fn mmuext_one(cx: &mut Ctx<'_>, fd: DomId, op: m::MmuextOp) -> Result<(), Errno> {
    let Ok(cmd) = m::MmuextCmd::try_from(op.cmd) else {
        return Err(Errno::Enosys);
    };
    let self_only = |cx: &Ctx<'_>| {
        if fd == cx.dom.id {
            Ok(())
        } else {
            Err(Errno::Eperm)
        }
    };
    let mfn = Mfn(op.arg1);
    match cmd {
        m::MmuextCmd::PinL1Table
        | m::MmuextCmd::PinL2Table
        | m::MmuextCmd::PinL3Table
        | m::MmuextCmd::PinL4Table => {
            let level = match cmd {
                m::MmuextCmd::PinL1Table => 1,
                m::MmuextCmd::PinL2Table => 2,
                m::MmuextCmd::PinL3Table => 3,
                _ => 4,
            };
            let mut ctx = pt_ctx(cx);
            ctx.dom = fd;
            with_mm(cx, Err(MmError::BadState(mfn)), |t, e| {
                t.pin(&mut &mut *e, &ctx, mfn, level)
            })
            .map_err(mm_err)
        }
        m::MmuextCmd::UnpinTable => with_mm(cx, Err(MmError::BadState(mfn)), |t, e| {
            t.unpin(&mut &mut *e, mfn, fd)
        })
        .map_err(mm_err),
        m::MmuextCmd::NewBaseptr => {
            self_only(cx)?;
            set_root(cx, Some(mfn), false)
        }
        m::MmuextCmd::NewUserBaseptr => {
            self_only(cx)?;
            set_root(cx, (op.arg1 != 0).then_some(mfn), true)
        }
        m::MmuextCmd::TlbFlushLocal | m::MmuextCmd::TlbFlushAll => {
            self_only(cx)?;
            cx.plat.flush_tlb(true);
            Ok(())
        }
        m::MmuextCmd::InvlpgLocal | m::MmuextCmd::InvlpgAll => {
            self_only(cx)?;
            cx.plat.invlpg(op.arg1);
            Ok(())
        }
        m::MmuextCmd::TlbFlushMulti | m::MmuextCmd::InvlpgMulti => {
            self_only(cx)?;
            let _mask: u64 = read_guest(cx.mem, op.arg2)?;
            if cmd == m::MmuextCmd::TlbFlushMulti {
                cx.plat.flush_tlb(true);
            } else {
                cx.plat.invlpg(op.arg1);
            }
            Ok(())
        }
        m::MmuextCmd::FlushCache | m::MmuextCmd::FlushCacheGlobal => {
            self_only(cx)?;
            if !cx.dom.hardware {
                return Err(Errno::Eacces);
            }
            // The caches are coherent under every machine Oxen runs on; a real wbinvd comes
            // with device passthrough.
            Ok(())
        }
        m::MmuextCmd::ClearPage | m::MmuextCmd::CopyPage => {
            let dom = cx.dom.id;
            let ctx = pt_ctx(cx);
            let src = (cmd == m::MmuextCmd::CopyPage).then_some(Mfn(op.arg2));
            // The source is read under a reference, so it cannot change hands meanwhile.
            if let Some(src) = src
                && !with_mm(cx, false, |t, _| t.get_page(src, dom).is_ok())
            {
                return Err(Errno::Einval);
            }
            let dst = with_mm(cx, Err(MmError::BadState(mfn)), |t, e| {
                t.get_page_and_type(&mut &mut *e, &ctx, mfn, dom, PageType::Writable)
            })
            .map_err(mm_err);
            let done = dst.is_ok()
                && match src {
                    Some(src) => cx.plat.copy_frame(src, mfn),
                    None => cx.plat.zero_frame(mfn),
                };
            if dst.is_ok() {
                with_mm(cx, (), |t, e| t.put_page_and_type(&mut &mut *e, mfn));
            }
            if let Some(src) = src {
                with_mm(cx, (), |t, e| t.put_page_env(&mut &mut *e, src));
            }
            dst?;
            if done { Ok(()) } else { Err(Errno::Einval) }
        }
        m::MmuextCmd::MarkSuper | m::MmuextCmd::UnmarkSuper => Err(Errno::Eopnotsupp),
        m::MmuextCmd::SetLdt => crate::guest::ldt::set_ldt(cx, fd, op.arg1, super::lo32(op.arg2)),
    }
}

/// `set_gdt(frame_list, entries)`: validate and install GDT frames (reference §7.3).
pub fn set_gdt(cx: &mut Ctx<'_>, args: [u64; 5]) -> HcResult {
    let (list, entries) = (args[0], args[1] & 0xffff_ffff);
    if entries > hypercall_abi::segments::FIRST_RESERVED_GDT_ENTRY as u64 {
        return Err(Errno::Einval);
    }
    let nr = usize::try_from(entries.div_ceil(512)).unwrap_or(0);
    let mut frames = arrayvec::ArrayVec::<Mfn, { crate::domain::vcpu::MAX_GDT_FRAMES }>::new();
    for i in 0..nr {
        let f: u64 = read_guest(cx.mem, list.wrapping_add(i as u64 * 8))?;
        frames.push(Mfn(f));
    }
    let dom = cx.dom.id;
    let ctx = pt_ctx(cx);
    let taken = with_mm(cx, Err(Errno::Einval), |t, e| {
        for (k, &f) in frames.iter().enumerate() {
            if t.get_page_and_type(&mut &mut *e, &ctx, f, dom, PageType::SegDesc)
                .is_err()
            {
                for &g in &frames[..k] {
                    t.put_page_and_type(&mut &mut *e, g);
                }
                return Err(Errno::Einval);
            }
        }
        Ok(())
    });
    taken?;
    let old = core::mem::replace(&mut cx.v().gdt_frames, frames.clone());
    cx.v().gdt_entries = u32::try_from(entries).unwrap_or(0);
    cx.plat.load_gdt(&frames);
    with_mm(cx, (), |t, e| {
        for &g in &old {
            t.put_page_and_type(&mut &mut *e, g);
        }
    });
    Ok(0)
}

/// `update_descriptor(maddr, desc)`: write one validated descriptor.
pub fn update_descriptor(cx: &mut Ctx<'_>, args: [u64; 5]) -> HcResult {
    let (maddr, desc) = (args[0], args[1]);
    if maddr & 7 != 0 {
        return Err(Errno::Einval);
    }
    let desc = check_descriptor(desc).ok_or(Errno::Einval)?;
    let mfn = Paddr(maddr).frame();
    let dom = cx.dom.id;
    let ctx = pt_ctx(cx);
    // A descriptor page stays one (the new descriptor is valid); any other frame must be one
    // the guest could map writable.
    let ok = with_mm(cx, false, |t, e| {
        if t.get_page(mfn, dom).is_err() {
            return false;
        }
        let is_desc = t
            .info(mfn)
            .is_ok_and(|f| f.ty == PageType::SegDesc && f.type_count > 0);
        let ty = if is_desc {
            PageType::SegDesc
        } else {
            PageType::Writable
        };
        if t.get_type(&mut &mut *e, &ctx, mfn, ty).is_err() {
            t.put_page_env(&mut &mut *e, mfn);
            return false;
        }
        true
    });
    if !ok {
        return Err(Errno::Einval);
    }
    cx.plat.write_machine(Paddr(maddr), &desc.to_le_bytes());
    with_mm(cx, (), |t, e| t.put_page_and_type(&mut &mut *e, mfn));
    Ok(0)
}
