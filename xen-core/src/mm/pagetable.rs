//! Guest page tables: the entry rules of Xen's 64-bit PV ABI, and the typed reference counting
//! that validates a frame before it may be used as a page table or descriptor page.
//!
//! The operations here are the only way a frame's type changes:
//! - [`FrameTable::get_type`] / [`FrameTable::put_type`] take and drop a type reference,
//!   validating the frame's contents on the 0→1 transition to a page-table or descriptor type
//!   and releasing the references its entries hold on the 1→0 transition;
//! - [`FrameTable::pin`] / [`FrameTable::unpin`] are the guest's explicit references;
//! - [`FrameTable::update_entry`] replaces one entry of a validated table (`mmu_update`,
//!   `update_va_mapping`, emulated writes), taking the new entry's references before dropping
//!   the old one's;
//! - [`FrameTable::relinquish`] takes a dying domain's memory apart, cycles included.
//!
//! Entry rules (reference §9.1): present entries may only use the allowed flag bits of their
//! level; L1 entries may only map frames the page owner may map (its own, any domain's for a
//! privileged caller, device memory for a domain with I/O rights), and a writable L1 mapping
//! takes a *writable* type reference, which conflicts with every page-table type; L2–L4
//! entries must point to validated tables of the next level down, or read-only to a table of
//! the same level (a linear page table); L4 slots 256–271 belong to the hypervisor.

use super::frame_table::{FrameInfo, FrameTable, MAX_COUNT, MmError, Owner, PageType};
use crate::types::{DomId, Mfn};
use hypercall_abi::mm::{
    _PAGE_ACCESSED, _PAGE_GLOBAL, _PAGE_GUEST_KERNEL, _PAGE_PRESENT, _PAGE_RW, _PAGE_USER,
    L1_ALLOWED_FLAGS, L1_CACHE_ATTR_FLAGS, L2_L4_ALLOWED_FLAGS, PTE_ADDR_MASK, PTE_FLAGS_MASK,
};

/// Entries per page-table or descriptor page.
pub const ENTRIES: usize = 512;
/// First L4 slot the hypervisor owns.
pub const XEN_L4_FIRST: usize = 256;
/// One past the last L4 slot the hypervisor owns.
pub const XEN_L4_END: usize = 272;

/// What the frame-table operations need from the machine: reading and writing 8-byte entries
/// of frames, and learning about frames whose last reference went.
pub trait MmEnv {
    /// Entry `index` (0–511) of frame `mfn`.
    fn read(&self, mfn: Mfn, index: usize) -> u64;
    /// Writes entry `index` of frame `mfn`.
    fn write(&mut self, mfn: Mfn, index: usize, val: u64);
    /// `mfn` lost its last reference: it is free again and goes back to the allocator.
    fn freed(&mut self, mfn: Mfn);
}

impl<T: MmEnv + ?Sized> MmEnv for &mut T {
    fn read(&self, mfn: Mfn, index: usize) -> u64 {
        (**self).read(mfn, index)
    }
    fn write(&mut self, mfn: Mfn, index: usize, val: u64) {
        (**self).write(mfn, index, val)
    }
    fn freed(&mut self, mfn: Mfn) {
        (**self).freed(mfn)
    }
}

/// Who is changing page tables, with what rights.
#[derive(Clone, Copy, Debug)]
pub struct PtContext {
    /// The domain owning the page tables being validated or changed.
    pub dom: DomId,
    /// May map any domain's frames (the control domain).
    pub privileged: bool,
    /// May map device memory and use cache-attribute bits (domains with I/O resources).
    pub io: bool,
    /// One past the highest frame such a domain may map as device memory (the machine's
    /// physical address width; frames the hypervisor keeps are refused regardless).
    pub io_limit: u64,
    /// The hypervisor's L4 entries, written into slots 256–271 of every validated L4.
    pub xen_l4: [u64; XEN_L4_END - XEN_L4_FIRST],
}

const fn present(e: u64) -> bool {
    e & _PAGE_PRESENT != 0
}

const fn frame_of(e: u64) -> Mfn {
    Mfn((e & PTE_ADDR_MASK) >> 12)
}

/// Device frames the hypervisor keeps for itself and no domain may map: the local APIC and
/// the I/O APIC (at their architectural addresses).
pub const HYPERVISOR_IO_FRAMES: [u64; 2] = [0xfee00, 0xfec00];

/// Whether `index` of an L4 is one of the hypervisor's slots.
pub const fn is_xen_l4_slot(index: usize) -> bool {
    index >= XEN_L4_FIRST && index < XEN_L4_END
}

/// Checks and normalises one GDT/LDT descriptor for a 64-bit PV guest (reference §7.3);
/// `None` if it is not allowed.
pub fn check_descriptor(d: u64) -> Option<u64> {
    const PRESENT: u64 = 1 << 47;
    const S: u64 = 1 << 44;
    const DPL_SHIFT: u32 = 45;
    if d & PRESENT == 0 {
        return Some(d);
    }
    let dpl = (d >> DPL_SHIFT) & 3;
    if d & S != 0 {
        // Code or data: the guest kernel runs at RPL 3, so every DPL becomes 3.
        return Some(d | (3 << DPL_SHIFT));
    }
    match (d >> 40) & 0xf {
        // The upper half of a 16-byte system descriptor.
        0 => Some(d | (3 << DPL_SHIFT)),
        // 64-bit call gate: the target must be a guest GDT selector, the kernel's flat code
        // selector, or an LDT selector, and the reserved byte must be clear. Stored with DPL
        // 0 and the original DPL moved into the target's RPL, so every use faults (#GP) and is
        // seen by the hypervisor.
        0xc => {
            let sel = (d >> 16) & 0xffff;
            let ok_target = sel & 4 != 0
                || (sel >> 3) < hypercall_abi::segments::FIRST_RESERVED_GDT_ENTRY as u64
                || sel == u64::from(hypercall_abi::segments::FLAT_KERNEL_CS);
            if !ok_target || (d >> 32) & 0xff != 0 {
                return None;
            }
            let sel = (sel & !3) | dpl;
            Some((d & !(0xffff << 16) & !(3 << DPL_SHIFT)) | (sel << 16))
        }
        _ => None,
    }
}

impl FrameTable<'_> {
    /// Takes a type reference of type `ty` on `mfn`, validating it on first use as a page
    /// table or descriptor page. The caller already holds a general reference.
    pub fn get_type(
        &mut self,
        env: &mut impl MmEnv,
        ctx: &PtContext,
        mfn: Mfn,
        ty: PageType,
    ) -> Result<(), MmError> {
        let f = self.info_mut(mfn)?;
        if f.type_count > 0 {
            if f.ty != ty {
                return Err(MmError::TypeConflict(mfn));
            }
            if f.type_count >= MAX_COUNT {
                return Err(MmError::CountOverflow(mfn));
            }
            f.type_count += 1;
            return Ok(());
        }
        // First reference: the frame takes this type. Recording it before validating the
        // contents means an entry pointing back at this frame sees a type conflict (or a
        // legitimate self-map), never an unvalidated table.
        f.ty = ty;
        f.type_count = 1;
        let result = match ty {
            PageType::SegDesc => self.validate_segdesc(env, mfn),
            t => match t.level() {
                Some(level) => self.validate_table(env, ctx, mfn, level),
                None => Ok(()),
            },
        };
        if result.is_err()
            && let Ok(f) = self.info_mut(mfn)
        {
            f.type_count = 0;
            f.ty = PageType::None;
        }
        result
    }

    /// Drops a type reference; the last one releases what a page table's entries hold.
    pub fn put_type(&mut self, env: &mut impl MmEnv, mfn: Mfn) {
        let Ok(f) = self.info_mut(mfn) else { return };
        if f.type_count == 0 {
            return;
        }
        f.type_count -= 1;
        if f.type_count > 0 {
            return;
        }
        let ty = f.ty;
        f.ty = PageType::None;
        if let Some(level) = ty.level() {
            self.release_entries(env, mfn, level);
        }
    }

    /// Drops a type reference and then a general reference (freeing the frame if it was the
    /// last).
    pub fn put_page_and_type(&mut self, env: &mut impl MmEnv, mfn: Mfn) {
        self.put_type(env, mfn);
        if self.put_page(mfn) {
            env.freed(mfn);
        }
    }

    /// Takes a general reference on a frame of `dom` and a type reference on it.
    pub fn get_page_and_type(
        &mut self,
        env: &mut impl MmEnv,
        ctx: &PtContext,
        mfn: Mfn,
        dom: DomId,
        ty: PageType,
    ) -> Result<(), MmError> {
        self.get_page(mfn, dom)?;
        if let Err(e) = self.get_type(env, ctx, mfn, ty) {
            if self.put_page(mfn) {
                env.freed(mfn);
            }
            return Err(e);
        }
        Ok(())
    }

    /// Drops a general reference, telling `env` if that freed the frame.
    pub fn put_page_env(&mut self, env: &mut impl MmEnv, mfn: Mfn) {
        if self.put_page(mfn) {
            env.freed(mfn);
        }
    }

    fn validate_segdesc(&mut self, env: &mut impl MmEnv, mfn: Mfn) -> Result<(), MmError> {
        for i in 0..ENTRIES {
            let d = env.read(mfn, i);
            match check_descriptor(d) {
                Some(n) if n != d => env.write(mfn, i, n),
                Some(_) => {}
                None => return Err(MmError::BadEntry(mfn, i)),
            }
        }
        Ok(())
    }

    fn validate_table(
        &mut self,
        env: &mut impl MmEnv,
        ctx: &PtContext,
        mfn: Mfn,
        level: u8,
    ) -> Result<(), MmError> {
        for i in 0..ENTRIES {
            if level == 4 && is_xen_l4_slot(i) {
                continue;
            }
            let e = env.read(mfn, i);
            match self.get_entry(env, ctx, level, mfn, e, ctx.dom) {
                Ok(adj) => {
                    if adj != e {
                        env.write(mfn, i, adj);
                    }
                }
                Err(err) => {
                    // Undo what the entries before this one took.
                    for j in 0..i {
                        if !(level == 4 && is_xen_l4_slot(j)) {
                            let e = env.read(mfn, j);
                            self.put_entry(env, level, mfn, e);
                        }
                    }
                    return Err(match err {
                        MmError::CountOverflow(m) => MmError::CountOverflow(m),
                        _ => MmError::BadEntry(mfn, i),
                    });
                }
            }
        }
        if level == 4 {
            for (k, v) in ctx.xen_l4.iter().enumerate() {
                env.write(mfn, XEN_L4_FIRST + k, *v);
            }
        }
        Ok(())
    }

    fn release_entries(&mut self, env: &mut impl MmEnv, mfn: Mfn, level: u8) {
        for i in 0..ENTRIES {
            if level == 4 && is_xen_l4_slot(i) {
                continue;
            }
            let e = env.read(mfn, i);
            self.put_entry(env, level, mfn, e);
        }
    }

    /// Validates entry `e` of a level-`level` table `table` and takes its references;
    /// returns the entry as it must be stored. `fd` owns the data frames new L1 entries map.
    pub fn get_entry(
        &mut self,
        env: &mut impl MmEnv,
        ctx: &PtContext,
        level: u8,
        table: Mfn,
        e: u64,
        fd: DomId,
    ) -> Result<u64, MmError> {
        if !present(e) {
            return Ok(e);
        }
        if level == 1 {
            self.get_l1e(env, ctx, e, fd)
        } else {
            self.get_upper(env, ctx, level, table, e)
        }
    }

    fn get_l1e(
        &mut self,
        env: &mut impl MmEnv,
        ctx: &PtContext,
        e: u64,
        fd: DomId,
    ) -> Result<u64, MmError> {
        let target = frame_of(e);
        let allowed = if ctx.io {
            L1_ALLOWED_FLAGS | L1_CACHE_ATTR_FLAGS
        } else {
            L1_ALLOWED_FLAGS
        };
        if e & PTE_FLAGS_MASK & !allowed != 0 {
            return Err(MmError::BadEntry(target, 0));
        }
        let owner = match self.info(target) {
            Ok(FrameInfo { owner, .. }) => Some(*owner),
            Err(_) => None,
        };
        match owner {
            // Device memory (or beyond RAM): only with I/O rights for that frame, and without
            // references; otherwise Xen's -EPERM.
            None | Some(Owner::Io) => {
                if !ctx.io || target.0 >= ctx.io_limit || HYPERVISOR_IO_FRAMES.contains(&target.0) {
                    return Err(MmError::NoIoAccess(target));
                }
            }
            Some(Owner::Dom(o)) if o == fd || ctx.privileged => {
                self.get_page(target, o)?;
                if e & _PAGE_RW != 0
                    && let Err(err) = self.get_type(env, ctx, target, PageType::Writable)
                {
                    self.put_page_env(env, target);
                    // A frame in use as something else cannot be mapped writable: Xen's
                    // -EBUSY (every other type conflict is -EINVAL).
                    return Err(match err {
                        MmError::TypeConflict(m) => MmError::Busy(m),
                        other => other,
                    });
                }
            }
            _ => return Err(MmError::NotOwner(target)),
        }
        // Kernel pages (US clear) are stored as user pages marked guest-kernel; user pages
        // are made global (reference §9.1).
        Ok(if e & _PAGE_USER == 0 {
            e | _PAGE_USER | _PAGE_GUEST_KERNEL
        } else {
            e | _PAGE_GLOBAL
        })
    }

    fn get_upper(
        &mut self,
        env: &mut impl MmEnv,
        ctx: &PtContext,
        level: u8,
        table: Mfn,
        e: u64,
    ) -> Result<u64, MmError> {
        let child = frame_of(e);
        if e & PTE_FLAGS_MASK & !L2_L4_ALLOWED_FLAGS != 0 {
            return Err(MmError::BadEntry(child, 0));
        }
        let adjust = |e: u64| {
            if level == 4 {
                e | _PAGE_USER | _PAGE_ACCESSED
            } else {
                e | _PAGE_USER
            }
        };
        let same = PageType::table(level).ok_or(MmError::BadState(table))?;
        let lower = PageType::table(level - 1).ok_or(MmError::BadState(table))?;
        let linear = e & _PAGE_RW == 0;
        // A read-only entry pointing at its own table: the classic linear map.
        if child == table {
            return if linear {
                Ok(adjust(e))
            } else {
                Err(MmError::TypeConflict(child))
            };
        }
        self.get_page(child, ctx.dom)?;
        let is_same_level = self
            .info(child)
            .is_ok_and(|f| f.type_count > 0 && f.ty == same);
        if linear && is_same_level {
            // A linear map of another, already validated table of this level: allowed only if
            // this table is not itself a linear target and the target has no linear entries
            // (Xen's one-level rule), so no cycle can ever form.
            let table_ok = self.info(table).is_ok_and(|f| f.linear >= 0);
            let child_ok = self.info(child).is_ok_and(|f| f.linear <= 0);
            if !table_ok || !child_ok {
                self.put_page_env(env, child);
                return Err(MmError::BadEntry(child, 0));
            }
            if let Err(err) = self.get_type(env, ctx, child, same) {
                self.put_page_env(env, child);
                return Err(err);
            }
            self.adjust_linear(table, child, 1);
            return Ok(adjust(e));
        }
        if let Err(err) = self.get_type(env, ctx, child, lower) {
            self.put_page_env(env, child);
            return Err(err);
        }
        Ok(adjust(e))
    }

    /// Counts (`delta` = 1) or uncounts (-1) a linear entry of `table` pointing at `child`.
    fn adjust_linear(&mut self, table: Mfn, child: Mfn, delta: i32) {
        if let Ok(f) = self.info_mut(table) {
            f.linear = f.linear.saturating_add(delta);
        }
        if let Ok(f) = self.info_mut(child) {
            f.linear = f.linear.saturating_sub(delta);
        }
    }

    /// Drops the references held by entry `e` of a level-`level` table `table`.
    pub fn put_entry(&mut self, env: &mut impl MmEnv, level: u8, table: Mfn, e: u64) {
        if !present(e) {
            return;
        }
        let target = frame_of(e);
        if level == 1 {
            match self.info(target) {
                Ok(f) if matches!(f.owner, Owner::Dom(_)) => {}
                _ => return,
            }
            if e & _PAGE_RW != 0 {
                self.put_type(env, target);
            }
            self.put_page_env(env, target);
        } else if target != table {
            // An entry to a table of the same level is a linear one.
            let linear = PageType::table(level).is_some_and(|same| {
                self.info(target)
                    .is_ok_and(|f| f.type_count > 0 && f.ty == same)
            });
            if linear {
                self.adjust_linear(table, target, -1);
            }
            self.put_type(env, target);
            self.put_page_env(env, target);
        }
    }

    /// Pins `mfn` (owned by `ctx.dom`) as a level-`level` table.
    pub fn pin(
        &mut self,
        env: &mut impl MmEnv,
        ctx: &PtContext,
        mfn: Mfn,
        level: u8,
    ) -> Result<(), MmError> {
        let ty = PageType::table(level).ok_or(MmError::BadState(mfn))?;
        if self.info(mfn)?.owner != Owner::Dom(ctx.dom) {
            return Err(MmError::NotOwner(mfn));
        }
        if self.info(mfn)?.pinned {
            return Err(MmError::AlreadyPinned(mfn));
        }
        self.get_page_and_type(env, ctx, mfn, ctx.dom, ty)?;
        self.info_mut(mfn)?.pinned = true;
        Ok(())
    }

    /// Unpins `mfn` (owned by `dom`).
    pub fn unpin(&mut self, env: &mut impl MmEnv, mfn: Mfn, dom: DomId) -> Result<(), MmError> {
        let f = self.info_mut(mfn)?;
        if f.owner != Owner::Dom(dom) {
            return Err(MmError::NotOwner(mfn));
        }
        if !f.pinned {
            return Err(MmError::NotPinned(mfn));
        }
        f.pinned = false;
        self.put_page_and_type(env, mfn);
        Ok(())
    }

    /// Replaces entry `index` of the validated table `table` (owned by `ctx.dom`) with
    /// `new`, whose L1 data frames belong to `fd`. A frame that is not a page table is written
    /// without checks if the caller may write it. Returns the value stored.
    ///
    /// `fd` is trusted: the hypercall layer only passes a domain other than the caller for a
    /// privileged caller (reference §9.4, `foreigndom`).
    pub fn update_entry(
        &mut self,
        env: &mut impl MmEnv,
        ctx: &PtContext,
        table: Mfn,
        index: usize,
        new: u64,
        fd: DomId,
    ) -> Result<u64, MmError> {
        if index >= ENTRIES {
            return Err(MmError::BadEntry(table, index));
        }
        let f = *self.info(table)?;
        if f.owner != Owner::Dom(ctx.dom) {
            return Err(MmError::NotOwner(table));
        }
        let level = match (f.type_count > 0).then_some(f.ty.level()).flatten() {
            Some(level) => level,
            None => {
                // Not a page table: an ordinary write, allowed if the frame can be writable.
                self.get_page(table, ctx.dom)?;
                if let Err(e) = self.get_type(env, ctx, table, PageType::Writable) {
                    self.put_page_env(env, table);
                    return Err(e);
                }
                env.write(table, index, new);
                self.put_page_and_type(env, table);
                return Ok(new);
            }
        };
        if level == 4 && is_xen_l4_slot(index) {
            return Err(MmError::ReservedSlot(table, index));
        }
        // The table must stay a table while we change it.
        self.get_page(table, ctx.dom)?;
        if let Err(e) = self.get_type(env, ctx, table, f.ty) {
            self.put_page_env(env, table);
            return Err(e);
        }
        let old = env.read(table, index);
        let result = self.get_entry(env, ctx, level, table, new, fd);
        if let Ok(adj) = result {
            env.write(table, index, adj);
            self.put_entry(env, level, table, old);
        }
        self.put_page_and_type(env, table);
        result
    }

    /// Takes apart everything `dom` holds: unpins its tables, then forcibly devalidates every
    /// table still typed (so reference cycles through linear page tables cannot keep memory
    /// alive), then drops the allocation references. The caller has already released the
    /// references the hypervisor held for the domain (page-table bases, GDT frames, ...).
    /// Frames other domains still reference stay owned by `dom` until those go.
    pub fn relinquish(&mut self, env: &mut impl MmEnv, dom: DomId) {
        let len = self.len();
        let owned = |t: &Self, m: Mfn| t.info(m).is_ok_and(|f| f.owner == Owner::Dom(dom));
        for m in (0..len).map(Mfn) {
            if owned(self, m) && self.info(m).is_ok_and(|f| f.pinned) {
                let _ = self.unpin(env, m, dom);
            }
        }
        for m in (0..len).map(Mfn) {
            if !owned(self, m) {
                continue;
            }
            let Ok(f) = self.info_mut(m) else { continue };
            // Only validated types hold references; writable counts drain as the tables
            // mapping those frames are released.
            if f.type_count == 0 || !f.ty.needs_validation() {
                continue;
            }
            let ty = f.ty;
            f.type_count = 0;
            f.ty = PageType::None;
            f.linear = 0;
            if let Some(level) = ty.level() {
                self.release_entries(env, m, level);
            }
        }
        for m in (0..len).map(Mfn) {
            if owned(self, m) && self.release_allocation(m) {
                env.freed(m);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Fake machine memory: frames as arrays of entries; records freed frames.
    #[derive(Default)]
    pub(crate) struct FakeEnv {
        pub frames: HashMap<u64, Box<[u64; ENTRIES]>>,
        pub freed: Vec<Mfn>,
    }

    impl MmEnv for FakeEnv {
        fn read(&self, mfn: Mfn, index: usize) -> u64 {
            self.frames.get(&mfn.0).map_or(0, |f| f[index])
        }
        fn write(&mut self, mfn: Mfn, index: usize, val: u64) {
            self.frames
                .entry(mfn.0)
                .or_insert_with(|| Box::new([0; ENTRIES]))[index] = val;
        }
        fn freed(&mut self, mfn: Mfn) {
            self.freed.push(mfn);
        }
    }

    pub(crate) const D: DomId = DomId(1);
    pub(crate) const E: DomId = DomId(2);
    const P: u64 = _PAGE_PRESENT;
    const RW: u64 = _PAGE_RW;
    const US: u64 = _PAGE_USER;

    pub(crate) fn ctx(dom: DomId) -> PtContext {
        PtContext {
            dom,
            privileged: false,
            io: false,
            io_limit: 1 << 28,
            xen_l4: [0xdead_0000_0000_1003; 16],
        }
    }

    fn pte(mfn: u64, flags: u64) -> u64 {
        (mfn << 12) | flags
    }

    /// 64 frames: 1..=40 owned by D, 41..=50 by E, 60.. are I/O.
    fn setup() -> (Vec<FrameInfo>, FakeEnv) {
        let mut s = vec![FrameInfo::FREE; 64];
        for f in s.iter_mut().skip(60) {
            *f = FrameInfo::IO;
        }
        {
            let mut t = FrameTable::new(&mut s);
            for m in 1..=40 {
                t.assign(Mfn(m), D).unwrap();
            }
            for m in 41..=50 {
                t.assign(Mfn(m), E).unwrap();
            }
        }
        (s, FakeEnv::default())
    }

    /// Builds L4(1) -> L3(2) -> L2(3) -> L1(4) mapping frame 5 RW and frame 6 RO.
    fn build_tree(env: &mut FakeEnv) {
        env.write(Mfn(1), 0, pte(2, P | RW));
        env.write(Mfn(2), 0, pte(3, P | RW));
        env.write(Mfn(3), 0, pte(4, P | RW));
        env.write(Mfn(4), 0, pte(5, P | RW));
        env.write(Mfn(4), 1, pte(6, P));
    }

    #[test]
    fn pinning_a_tree_types_and_counts_everything() {
        let (mut s, mut env) = setup();
        let mut t = FrameTable::new(&mut s);
        build_tree(&mut env);
        t.pin(&mut env, &ctx(D), Mfn(1), 4).unwrap();
        let ty = |t: &FrameTable<'_>, m| {
            (
                t.info(Mfn(m)).unwrap().ty,
                t.info(Mfn(m)).unwrap().type_count,
            )
        };
        assert_eq!(ty(&t, 1), (PageType::L4, 1));
        assert_eq!(ty(&t, 2), (PageType::L3, 1));
        assert_eq!(ty(&t, 3), (PageType::L2, 1));
        assert_eq!(ty(&t, 4), (PageType::L1, 1));
        assert_eq!(ty(&t, 5), (PageType::Writable, 1));
        assert_eq!(
            ty(&t, 6).1,
            0,
            "a read-only mapping takes no type reference"
        );
        assert_eq!(t.info(Mfn(6)).unwrap().count, 2);
        // The hypervisor slots were filled, kernel entries adjusted.
        assert_eq!(env.read(Mfn(1), 256), 0xdead_0000_0000_1003);
        assert_eq!(
            env.read(Mfn(4), 0),
            pte(5, P | RW | US) | _PAGE_GUEST_KERNEL
        );
        assert_eq!(env.read(Mfn(3), 0), pte(4, P | RW | US));
        assert_eq!(env.read(Mfn(1), 0), pte(2, P | RW | US | _PAGE_ACCESSED));
        // Unpinning releases the whole tree.
        t.unpin(&mut env, Mfn(1), D).unwrap();
        for m in 1..=6 {
            assert_eq!(t.info(Mfn(m)).unwrap().type_count, 0, "frame {m}");
            assert_eq!(
                t.info(Mfn(m)).unwrap().count,
                1,
                "frame {m}: only the allocation"
            );
        }
        assert!(env.freed.is_empty());
    }

    #[test]
    fn a_writable_mapping_of_a_page_table_is_refused() {
        let (mut s, mut env) = setup();
        let mut t = FrameTable::new(&mut s);
        build_tree(&mut env);
        // The L1 maps the L2 (frame 3) writable.
        env.write(Mfn(4), 2, pte(3, P | RW));
        assert_eq!(
            t.pin(&mut env, &ctx(D), Mfn(1), 4),
            Err(MmError::BadEntry(Mfn(1), 0))
        );
        for m in 1..=6 {
            let f = t.info(Mfn(m)).unwrap();
            assert_eq!(
                (f.type_count, f.count, f.pinned),
                (0, 1, false),
                "frame {m} not rolled back"
            );
        }
        // Read-only is fine.
        env.write(Mfn(4), 2, pte(3, P));
        t.pin(&mut env, &ctx(D), Mfn(1), 4).unwrap();
        // And once the tree is live, the RO mapping cannot be made writable.
        assert!(
            t.update_entry(&mut env, &ctx(D), Mfn(4), 2, pte(3, P | RW), D)
                .is_err()
        );
        assert_eq!(env.read(Mfn(4), 2) & RW, 0, "memory untouched on failure");
    }

    #[test]
    fn a_page_table_in_use_cannot_become_writable() {
        let (mut s, mut env) = setup();
        let mut t = FrameTable::new(&mut s);
        build_tree(&mut env);
        t.pin(&mut env, &ctx(D), Mfn(1), 4).unwrap();
        // Another L1 tries to map the live L1 (frame 4) writable.
        env.write(Mfn(7), 0, pte(4, P | RW));
        assert_eq!(
            t.pin(&mut env, &ctx(D), Mfn(7), 1),
            Err(MmError::BadEntry(Mfn(7), 0))
        );
        // A mapped-writable frame cannot become a table either.
        assert_eq!(
            t.pin(&mut env, &ctx(D), Mfn(5), 1),
            Err(MmError::TypeConflict(Mfn(5)))
        );
    }

    #[test]
    fn wrong_levels_are_refused() {
        let (mut s, mut env) = setup();
        let mut t = FrameTable::new(&mut s);
        // An L2 entry pointing at an L4.
        env.write(Mfn(10), 0, pte(11, P | RW));
        t.pin(&mut env, &ctx(D), Mfn(11), 4).unwrap();
        assert!(t.pin(&mut env, &ctx(D), Mfn(10), 2).is_err());
        // Pinning an L2 whose entry points at an empty frame makes that frame an L1.
        env.write(Mfn(12), 0, pte(13, P | RW));
        t.pin(&mut env, &ctx(D), Mfn(12), 2).unwrap();
        assert_eq!(t.info(Mfn(13)).unwrap().ty, PageType::L1);
        // ... which therefore cannot be pinned as an L2.
        assert_eq!(
            t.pin(&mut env, &ctx(D), Mfn(13), 2),
            Err(MmError::TypeConflict(Mfn(13)))
        );
        // Pinning twice, unpinning what is not pinned, bad levels.
        assert_eq!(
            t.pin(&mut env, &ctx(D), Mfn(12), 2),
            Err(MmError::AlreadyPinned(Mfn(12)))
        );
        assert_eq!(
            t.unpin(&mut env, Mfn(13), D),
            Err(MmError::NotPinned(Mfn(13)))
        );
        assert!(t.pin(&mut env, &ctx(D), Mfn(14), 5).is_err());
    }

    #[test]
    fn superpages_and_forbidden_bits_are_refused() {
        let (mut s, mut env) = setup();
        let mut t = FrameTable::new(&mut s);
        for (level, bad) in [
            (2u8, 1u64 << 7),
            (3, 1 << 7),
            (2, _PAGE_GLOBAL),
            (3, 1 << 4),
            (4, 1 << 3),
        ] {
            env.write(Mfn(20), 0, pte(21, P | bad));
            assert!(
                t.pin(&mut env, &ctx(D), Mfn(20), level).is_err(),
                "level {level} bit {bad:#x}"
            );
        }
        // L1: bit 62 and cache attributes are refused without I/O rights, fine with them.
        env.write(Mfn(20), 0, pte(21, P | (1 << 62)));
        assert!(t.pin(&mut env, &ctx(D), Mfn(20), 1).is_err());
        env.write(Mfn(20), 0, pte(21, P | (1 << 4)));
        assert!(t.pin(&mut env, &ctx(D), Mfn(20), 1).is_err());
        let io = PtContext { io: true, ..ctx(D) };
        t.pin(&mut env, &io, Mfn(20), 1).unwrap();
        // Not-present entries may hold anything.
        env.write(Mfn(22), 0, 0xffff_ffff_ffff_fffe);
        t.pin(&mut env, &ctx(D), Mfn(22), 2).unwrap();
    }

    #[test]
    fn other_domains_and_device_frames() {
        let (mut s, mut env) = setup();
        let mut t = FrameTable::new(&mut s);
        env.write(Mfn(20), 0, pte(41, P));
        assert_eq!(
            t.pin(&mut env, &ctx(D), Mfn(20), 1),
            Err(MmError::BadEntry(Mfn(20), 0))
        );
        let dom0 = PtContext {
            privileged: true,
            ..ctx(D)
        };
        t.pin(&mut env, &dom0, Mfn(20), 1).unwrap();
        assert_eq!(t.info(Mfn(41)).unwrap().count, 2);
        // Device memory and frames beyond RAM need I/O rights; they take no references.
        env.write(Mfn(21), 0, pte(61, P | RW));
        env.write(Mfn(21), 1, pte(1000, P | RW));
        assert!(t.pin(&mut env, &ctx(D), Mfn(21), 1).is_err());
        let io = PtContext { io: true, ..ctx(D) };
        t.pin(&mut env, &io, Mfn(21), 1).unwrap();
        assert_eq!(t.info(Mfn(61)).unwrap().count, 0);
        // Without I/O rights, beyond the address space, or the hypervisor's APICs: the update
        // is refused with -EPERM (a table holding such an entry fails validation: -EINVAL).
        t.pin(&mut env, &io, Mfn(24), 1).unwrap();
        assert_eq!(
            t.update_entry(&mut env, &ctx(D), Mfn(24), 0, pte(1000, P), D),
            Err(MmError::NoIoAccess(Mfn(1000)))
        );
        for far in [1u64 << 28, 1 << 38, 0xfee00, 0xfec00] {
            assert_eq!(
                t.update_entry(&mut env, &io, Mfn(24), 0, pte(far, P), D),
                Err(MmError::NoIoAccess(Mfn(far)))
            );
        }
        env.write(Mfn(25), 0, pte(0xfee00, P));
        assert_eq!(
            t.pin(&mut env, &io, Mfn(25), 1),
            Err(MmError::BadEntry(Mfn(25), 0))
        );
        assert_eq!(
            MmError::NoIoAccess(Mfn(1)).errno(),
            hypercall_abi::errno::Errno::Eperm
        );
        assert_eq!(
            MmError::Busy(Mfn(1)).errno(),
            hypercall_abi::errno::Errno::Ebusy
        );
        // Free frames can never be mapped.
        env.write(Mfn(23), 0, pte(55, P));
        assert!(t.pin(&mut env, &dom0, Mfn(23), 1).is_err());
        // Pinning another domain's frame is refused.
        assert_eq!(
            t.pin(&mut env, &ctx(D), Mfn(42), 1),
            Err(MmError::NotOwner(Mfn(42)))
        );
    }

    #[test]
    fn hypervisor_l4_slots() {
        let (mut s, mut env) = setup();
        let mut t = FrameTable::new(&mut s);
        // Guest garbage in the hypervisor's slots (here: another domain's frame) is ignored
        // and overwritten.
        env.write(Mfn(1), 260, pte(41, P | RW));
        env.write(Mfn(1), 256, 0x1234_5678);
        t.pin(&mut env, &ctx(D), Mfn(1), 4).unwrap();
        assert_eq!(env.read(Mfn(1), 256), 0xdead_0000_0000_1003);
        assert_eq!(env.read(Mfn(1), 260), 0xdead_0000_0000_1003);
        assert_eq!(t.info(Mfn(41)).unwrap().count, 1);
        // Updates to the hypervisor's slots are refused; guest slots validated.
        assert_eq!(
            t.update_entry(&mut env, &ctx(D), Mfn(1), 260, pte(2, P), D),
            Err(MmError::ReservedSlot(Mfn(1), 260))
        );
        t.update_entry(&mut env, &ctx(D), Mfn(1), 5, pte(2, P | RW), D)
            .unwrap();
        assert_eq!(t.info(Mfn(2)).unwrap().ty, PageType::L3);
    }

    #[test]
    fn linear_page_tables() {
        let (mut s, mut env) = setup();
        let mut t = FrameTable::new(&mut s);
        // Self-reference, read-only: allowed, no references.
        env.write(Mfn(1), 10, pte(1, P));
        t.pin(&mut env, &ctx(D), Mfn(1), 4).unwrap();
        assert_eq!(t.info(Mfn(1)).unwrap().type_count, 1);
        // Writable self-reference: refused.
        env.write(Mfn(2), 10, pte(2, P | RW));
        assert!(t.pin(&mut env, &ctx(D), Mfn(2), 4).is_err());
        // Read-only to another validated L4: a type reference on it.
        env.write(Mfn(3), 11, pte(1, P));
        t.pin(&mut env, &ctx(D), Mfn(3), 4).unwrap();
        assert_eq!(t.info(Mfn(1)).unwrap().type_count, 2);
        t.unpin(&mut env, Mfn(3), D).unwrap();
        assert_eq!(t.info(Mfn(1)).unwrap().type_count, 1);
    }

    #[test]
    fn update_entry_swaps_references() {
        let (mut s, mut env) = setup();
        let mut t = FrameTable::new(&mut s);
        build_tree(&mut env);
        t.pin(&mut env, &ctx(D), Mfn(1), 4).unwrap();
        // Remap slot 0 of the L1 from frame 5 (RW) to frame 8 (RW).
        let v = t
            .update_entry(&mut env, &ctx(D), Mfn(4), 0, pte(8, P | RW), D)
            .unwrap();
        assert_eq!(v & _PAGE_GUEST_KERNEL, _PAGE_GUEST_KERNEL);
        assert_eq!(t.info(Mfn(5)).unwrap().type_count, 0);
        assert_eq!(t.info(Mfn(8)).unwrap().ty, PageType::Writable);
        // A user mapping becomes global.
        let v = t
            .update_entry(&mut env, &ctx(D), Mfn(4), 3, pte(9, P | US), D)
            .unwrap();
        assert_eq!(v & _PAGE_GLOBAL, _PAGE_GLOBAL);
        // Unmapping drops the reference.
        t.update_entry(&mut env, &ctx(D), Mfn(4), 3, 0, D).unwrap();
        assert_eq!(t.info(Mfn(9)).unwrap().count, 1);
        // E's frames: not with FD = self; with FD = E (which the hypercall layer allows only
        // for privileged callers) the mapping is made and references E's frame.
        assert!(
            t.update_entry(&mut env, &ctx(D), Mfn(4), 4, pte(42, P), D)
                .is_err()
        );
        t.update_entry(&mut env, &ctx(D), Mfn(4), 4, pte(42, P), E)
            .unwrap();
        assert_eq!(t.info(Mfn(42)).unwrap().count, 2);
        // Writing a plain data frame (not a table) is an unchecked write.
        t.update_entry(&mut env, &ctx(D), Mfn(30), 7, 0x1234, D)
            .unwrap();
        assert_eq!(env.read(Mfn(30), 7), 0x1234);
        assert_eq!(t.info(Mfn(30)).unwrap().type_count, 0);
        // ...but not into another domain's frame.
        assert_eq!(
            t.update_entry(&mut env, &ctx(D), Mfn(42), 0, 1, D),
            Err(MmError::NotOwner(Mfn(42)))
        );
        assert_eq!(
            t.update_entry(&mut env, &ctx(D), Mfn(4), 512, 0, D),
            Err(MmError::BadEntry(Mfn(4), 512))
        );
    }

    #[test]
    fn linear_maps_cannot_form_cycles() {
        let (mut s, mut env) = setup();
        let mut t = FrameTable::new(&mut s);
        build_tree(&mut env);
        t.pin(&mut env, &ctx(D), Mfn(20), 4).unwrap();
        t.pin(&mut env, &ctx(D), Mfn(21), 4).unwrap();
        t.pin(&mut env, &ctx(D), Mfn(22), 4).unwrap();
        // 20 -> 21 read-only: a linear map of another L4.
        t.update_entry(&mut env, &ctx(D), Mfn(20), 1, pte(21, P), D)
            .unwrap();
        assert_eq!(t.info(Mfn(20)).unwrap().linear, 1);
        assert_eq!(t.info(Mfn(21)).unwrap().linear, -1);
        // 21 -> 20 would close a cycle: 21 is a linear target, 20 has linear entries.
        assert_eq!(
            t.update_entry(&mut env, &ctx(D), Mfn(21), 1, pte(20, P), D),
            Err(MmError::BadEntry(Mfn(20), 0))
        );
        // 22 -> 20: 20 has linear entries, so it may not be a target either.
        assert!(
            t.update_entry(&mut env, &ctx(D), Mfn(22), 1, pte(20, P), D)
                .is_err()
        );
        // 22 -> 21: another table may map the same target.
        t.update_entry(&mut env, &ctx(D), Mfn(22), 1, pte(21, P), D)
            .unwrap();
        assert_eq!(t.info(Mfn(21)).unwrap().linear, -2);
        // Clearing the entries undoes the counts, and unpinned tables lose their type.
        t.update_entry(&mut env, &ctx(D), Mfn(20), 1, 0, D).unwrap();
        t.update_entry(&mut env, &ctx(D), Mfn(22), 1, 0, D).unwrap();
        for m in [20, 21, 22] {
            assert_eq!(t.info(Mfn(m)).unwrap().linear, 0);
            t.unpin(&mut env, Mfn(m), D).unwrap();
            assert_eq!(t.info(Mfn(m)).unwrap().type_count, 0);
        }
    }

    #[test]
    fn relinquish_frees_everything_even_with_linear_maps() {
        let (mut s, mut env) = setup();
        let mut t = FrameTable::new(&mut s);
        build_tree(&mut env);
        t.pin(&mut env, &ctx(D), Mfn(1), 4).unwrap();
        // An L4 mapping another read-only, then unpinned: kept alive by the linear entry.
        t.pin(&mut env, &ctx(D), Mfn(20), 4).unwrap();
        t.pin(&mut env, &ctx(D), Mfn(21), 4).unwrap();
        t.update_entry(&mut env, &ctx(D), Mfn(20), 1, pte(21, P), D)
            .unwrap();
        t.unpin(&mut env, Mfn(21), D).unwrap();
        assert_eq!(
            t.info(Mfn(21)).unwrap().type_count,
            1,
            "kept alive by the linear entry"
        );
        t.relinquish(&mut env, D);
        let mut freed: Vec<u64> = env.freed.iter().map(|m| m.0).collect();
        freed.sort_unstable();
        assert_eq!(freed, (1..=40).collect::<Vec<_>>());
        for m in 1..=40 {
            assert_eq!(*t.info(Mfn(m)).unwrap(), FrameInfo::FREE);
        }
        // E is untouched.
        assert_eq!(t.info(Mfn(41)).unwrap().owner, Owner::Dom(E));
    }

    #[test]
    fn descriptors() {
        // Flat ring-3 code/data: accepted as is.
        assert_eq!(
            check_descriptor(0x00af_fb00_0000_ffff),
            Some(0x00af_fb00_0000_ffff)
        );
        // DPL 0 code: raised to 3.
        assert_eq!(
            check_descriptor(0x00af_9b00_0000_ffff),
            Some(0x00af_fb00_0000_ffff)
        );
        // Not present: anything goes.
        assert_eq!(check_descriptor(0x1234_0000_5678), Some(0x1234_0000_5678));
        // TSS, LDT, interrupt and trap gates: refused.
        for ty in [0x2u64, 0x9, 0xb, 0xe, 0xf] {
            assert_eq!(
                check_descriptor((1 << 47) | (ty << 40)),
                None,
                "type {ty:#x}"
            );
        }
        // Call gate to the flat kernel CS, DPL 3: stored with DPL 0 and RPL 3 in the selector.
        let gate = (1 << 47) | (3 << 45) | (0xc << 40) | (0xe033 << 16) | 0x1000;
        let stored = check_descriptor(gate).unwrap();
        assert_eq!((stored >> 45) & 3, 0);
        assert_eq!((stored >> 16) & 0xffff, 0xe033);
        // Call gate into the hypervisor's selectors, or with the reserved byte set: refused.
        assert_eq!(
            check_descriptor((1 << 47) | (0xc << 40) | (0xe008 << 16)),
            None
        );
        assert_eq!(
            check_descriptor((1 << 47) | (0xc << 40) | (0x10 << 16) | (1 << 32)),
            None
        );
    }

    #[test]
    fn descriptor_pages_validate_every_entry() {
        let (mut s, mut env) = setup();
        let mut t = FrameTable::new(&mut s);
        env.write(Mfn(25), 3, 0x00af_9b00_0000_ffff);
        t.get_page_and_type(&mut env, &ctx(D), Mfn(25), D, PageType::SegDesc)
            .unwrap();
        assert_eq!(env.read(Mfn(25), 3), 0x00af_fb00_0000_ffff);
        env.write(Mfn(26), 100, (1 << 47) | (0x9 << 40));
        assert!(
            t.get_page_and_type(&mut env, &ctx(D), Mfn(26), D, PageType::SegDesc)
                .is_err()
        );
        assert_eq!(t.info(Mfn(26)).unwrap().count, 1);
    }
}
