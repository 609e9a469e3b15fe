//! Page tables over machine frames: walking and editing the tables under any L4, pinning, and
//! loading roots (reference §9.3–§9.6).
//!
//! The kit reads a table through the direct map ([`super::frames::direct_va`]): an entry gives
//! an MFN, the read-only M2P gives its PFN, and `VIRT_BASE + pfn * 4096` maps it (read-only,
//! for page tables). It writes entries with `mmu_update` by machine address, which works for
//! the current tables and for any other. Tables it creates come from the frame allocator,
//! zeroed and remapped read-only first; hooking a zeroed table into its parent makes the
//! hypervisor validate (type) it, so lower tables are never pinned, only roots.
//!
//! TLB: after changing an entry that was present, the kit invalidates the address with
//! `MMUEXT_INVLPG_LOCAL` when the tables are the current ones, and always for user entries
//! (Xen makes user mappings global, so they survive root switches).

use core::sync::atomic::{AtomicU64, Ordering};

use hypercall_abi::mm::{
    _PAGE_PRESENT, _PAGE_USER, MmuCmd, MmuUpdate, MmuextCmd, MmuextOp, PTE_ADDR_MASK,
    PTE_FLAGS_MASK, make_pte, pte_mfn,
};

use super::frames;
use crate::errno::{Errno, HypercallResult};
use crate::hypercall::mm::{MmuBatch, mmu_update, mmuext_op};
use crate::mm::{ENTRIES, Frame, Level, MapError, check_guest_va, in_lower_half, is_guest_l4_slot};

/// The current kernel root (L4 MFN), 0 until first asked.
static CURRENT_ROOT: AtomicU64 = AtomicU64::new(0);

/// The MFN of the current kernel L4 (read once with the emulated `mov %cr3`, then tracked by
/// [`new_baseptr`]).
pub fn current_root() -> u64 {
    match CURRENT_ROOT.load(Ordering::SeqCst) {
        0 => {
            let root = super::cpu::read_cr3() >> 12;
            CURRENT_ROOT.store(root, Ordering::SeqCst);
            root
        }
        root => root,
    }
}

/// The highest MFN of RAM (`XENMEM_maximum_ram_page`), asked once; the M2P is not mapped
/// beyond it.
fn max_ram_mfn() -> u64 {
    static MAX: AtomicU64 = AtomicU64::new(0);
    match MAX.load(Ordering::SeqCst) {
        0 => {
            let max = crate::hypercall::memory::maximum_ram_page().unwrap_or(u64::MAX);
            MAX.store(max, Ordering::SeqCst);
            max
        }
        max => max,
    }
}

/// Reads entry `index` of the page table in machine frame `table_mfn`, through the direct
/// map. `None` if the frame is not one of the domain's direct-mapped frames.
pub fn read_entry(table_mfn: u64, index: usize) -> Option<u64> {
    if index >= ENTRIES || table_mfn > max_ram_mfn() {
        return None;
    }
    let pfn = super::mm::mfn_to_pfn(table_mfn)?;
    if super::mm::pfn_to_mfn(pfn) != Some(table_mfn) {
        return None;
    }
    let va = frames::direct_va(pfn)?;
    let entry = (va + index as u64 * 8) as *const u64;
    // SAFETY: the frame is one of the domain's frames, mapped (read-only for page tables) at
    // its direct-map address; `index < 512` keeps the read inside it. Volatile: the hypervisor
    // changes tables behind the compiler's back.
    Some(unsafe { entry.read_volatile() })
}

fn present(entry: u64) -> bool {
    entry & _PAGE_PRESENT != 0
}

/// One level of a walk: the table, the index into it and the entry found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalkStep {
    /// The level of the table.
    pub level: Level,
    /// The table's MFN.
    pub table: u64,
    /// The index used.
    pub index: usize,
    /// The entry read.
    pub entry: u64,
}

impl WalkStep {
    /// The machine address of the entry (what `mmu_update` takes).
    pub const fn maddr(&self) -> u64 {
        self.table * 4096 + self.index as u64 * 8
    }
}

/// A walk from the root towards the L1 entry of an address; it stops at the first entry that
/// is not present (or at a table it cannot read).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Walk {
    /// The L4, L3, L2 and L1 steps, as far as the walk went.
    pub steps: [Option<WalkStep>; 4],
}

impl Walk {
    /// The step at `level`, if the walk reached it.
    pub fn at(&self, level: Level) -> Option<WalkStep> {
        let i = usize::from(4 - level.number());
        self.steps.get(i).copied().flatten()
    }

    /// The L1 entry, if every level down to it was present (the entry itself may not be).
    pub fn l1(&self) -> Option<WalkStep> {
        self.at(Level::L1)
    }

    /// The present L1 entry (the address's mapping).
    pub fn pte(&self) -> Option<u64> {
        self.l1().map(|s| s.entry).filter(|&e| present(e))
    }
}

/// The page tables under one L4: the current kernel tables, a user root, or tables being
/// built. A plain handle (the root's MFN): copying it copies no table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressSpace {
    root: u64,
}

impl AddressSpace {
    /// The current kernel tables.
    pub fn current() -> AddressSpace {
        AddressSpace {
            root: current_root(),
        }
    }

    /// The tables under the L4 in machine frame `root_mfn`.
    pub const fn from_root(root_mfn: u64) -> AddressSpace {
        AddressSpace { root: root_mfn }
    }

    /// The L4's MFN.
    pub const fn root(&self) -> u64 {
        self.root
    }

    /// The L4 as a [`Frame`] (its PFN from the M2P).
    pub fn root_frame(&self) -> Option<Frame> {
        super::mm::mfn_to_pfn(self.root).map(|pfn| Frame::new(pfn, self.root))
    }

    /// Whether these are the current kernel tables.
    pub fn is_current(&self) -> bool {
        self.root == current_root()
    }

    /// Walks the tables for `va`.
    pub fn walk(&self, va: u64) -> Walk {
        let mut walk = Walk::default();
        let mut table = self.root;
        for (slot, level) in walk.steps.iter_mut().zip(Level::TOP_DOWN) {
            let index = level.index(va);
            let Some(entry) = read_entry(table, index) else {
                break;
            };
            *slot = Some(WalkStep {
                level,
                table,
                index,
                entry,
            });
            if !present(entry) {
                break;
            }
            table = pte_mfn(entry);
        }
        walk
    }

    /// The present L1 entry mapping `va`.
    pub fn translate(&self, va: u64) -> Option<u64> {
        self.walk(va).pte()
    }

    /// The machine address of the entry of `level` for `va`; every table above must be
    /// present.
    ///
    /// # Errors
    /// [`MapError::NotPresent`] naming the missing table's level, or [`MapError::Unreadable`].
    pub fn entry_maddr(&self, va: u64, level: Level) -> Result<u64, MapError> {
        let walk = self.walk(va);
        match walk.at(level) {
            Some(step) => Ok(step.maddr()),
            None => Err(missing(&walk)),
        }
    }

    /// The MFN of the table of `level` that covers `va`, creating the missing tables above it
    /// (zeroed frames from the allocator, made read-only, hooked in with `mmu_update`).
    /// Creating a table only adds empty mappings, so this is safe anywhere outside the
    /// hypervisor's slots.
    ///
    /// # Errors
    /// A non-canonical or hypervisor address, no free frame, or the hypervisor's refusal.
    pub fn ensure_table(&self, va: u64, level: Level) -> Result<u64, MapError> {
        check_guest_va(va)?;
        let mut table = self.root;
        for parent in Level::TOP_DOWN {
            if parent == level {
                return Ok(table);
            }
            let index = parent.index(va);
            let entry = read_entry(table, index).ok_or(MapError::Unreadable)?;
            if present(entry) {
                table = pte_mfn(entry);
                continue;
            }
            let child = frames::alloc_table()?;
            let hook = [MmuUpdate::new(
                MmuCmd::NormalPtUpdate,
                table * 4096 + index as u64 * 8,
                child.pte(crate::mm::flags::TABLE),
            )];
            // SAFETY: the entry was not present; pointing it at an empty table maps nothing.
            if let Err(errno) = unsafe { mmu_update(&hook) } {
                let _ = frames::free(child);
                return Err(MapError::Hypercall(errno));
            }
            table = child.mfn;
        }
        Ok(table)
    }

    /// Maps `va` (lower half) to machine frame `mfn` with `flags`, creating missing tables.
    ///
    /// # Errors
    /// [`MapError::KernelHalf`] for an upper-half address; see [`ensure_table`]; the
    /// hypervisor's refusal of the entry.
    ///
    /// [`ensure_table`]: AddressSpace::ensure_table
    pub fn map(&self, va: u64, mfn: u64, flags: u64) -> Result<(), MapError> {
        lower_half(va)?;
        // SAFETY: lower-half mappings hold no memory Rust code relies on (module docs of
        // `crate::mm`).
        unsafe { self.map_unchecked(va, mfn, flags) }
    }

    /// [`map`](AddressSpace::map) for any guest address.
    ///
    /// # Safety
    /// Replacing the mapping of `va` must not invalidate memory Rust code uses.
    ///
    /// # Errors
    /// As [`map`](AddressSpace::map), without the lower-half rule.
    pub unsafe fn map_unchecked(&self, va: u64, mfn: u64, flags: u64) -> Result<(), MapError> {
        let l1 = self.ensure_table(va, Level::L1)?;
        let index = Level::L1.index(va);
        let old = read_entry(l1, index).ok_or(MapError::Unreadable)?;
        let req = [MmuUpdate::new(
            MmuCmd::NormalPtUpdate,
            l1 * 4096 + index as u64 * 8,
            make_pte(mfn, flags),
        )];
        // SAFETY: forwarded to the caller.
        unsafe { mmu_update(&req)? };
        self.after_change(va, old)
    }

    /// Unmaps `va` (lower half). Returns the entry it had (0 if none).
    ///
    /// # Errors
    /// [`MapError::KernelHalf`], a missing table, or the hypervisor's refusal.
    pub fn unmap(&self, va: u64) -> Result<u64, MapError> {
        lower_half(va)?;
        // SAFETY: lower-half mappings hold no memory Rust code relies on.
        unsafe { self.unmap_unchecked(va) }
    }

    /// [`unmap`](AddressSpace::unmap) for any guest address.
    ///
    /// # Safety
    /// Nothing Rust code uses may live at `va`.
    ///
    /// # Errors
    /// As [`unmap`](AddressSpace::unmap).
    pub unsafe fn unmap_unchecked(&self, va: u64) -> Result<u64, MapError> {
        check_guest_va(va)?;
        let step = self.walk(va).l1().ok_or(MapError::NotPresent(Level::L1))?;
        let req = [MmuUpdate::new(MmuCmd::NormalPtUpdate, step.maddr(), 0)];
        // SAFETY: forwarded to the caller.
        unsafe { mmu_update(&req)? };
        self.after_change(va, step.entry)?;
        Ok(step.entry)
    }

    /// Changes the flags of the present mapping of `va` (lower half), keeping its frame.
    ///
    /// # Errors
    /// [`MapError::KernelHalf`], [`MapError::NotPresent`] if `va` is not mapped, or the
    /// hypervisor's refusal (e.g. making a page-table frame writable).
    pub fn protect(&self, va: u64, flags: u64) -> Result<(), MapError> {
        lower_half(va)?;
        // SAFETY: lower-half mappings hold no memory Rust code relies on.
        unsafe { self.protect_unchecked(va, flags) }
    }

    /// [`protect`](AddressSpace::protect) for any guest address.
    ///
    /// # Safety
    /// The new permissions must not break Rust code using `va` (e.g. a read-only page that
    /// Rust writes).
    ///
    /// # Errors
    /// As [`protect`](AddressSpace::protect).
    pub unsafe fn protect_unchecked(&self, va: u64, flags: u64) -> Result<(), MapError> {
        check_guest_va(va)?;
        let step = self.walk(va).l1().ok_or(MapError::NotPresent(Level::L1))?;
        if !present(step.entry) {
            return Err(MapError::NotPresent(Level::L1));
        }
        let new = (step.entry & PTE_ADDR_MASK) | (flags & PTE_FLAGS_MASK);
        let req = [MmuUpdate::new(MmuCmd::NormalPtUpdate, step.maddr(), new)];
        // SAFETY: forwarded to the caller.
        unsafe { mmu_update(&req)? };
        self.after_change(va, step.entry)
    }

    /// Invalidates `va` after its entry changed from `old`, when the TLB may hold it.
    fn after_change(&self, va: u64, old: u64) -> Result<(), MapError> {
        if present(old) && (self.is_current() || old & _PAGE_USER != 0) {
            crate::hypercall::mm::invlpg(va)?;
        }
        Ok(())
    }

    /// A batching editor of these tables.
    pub fn mapper(&self) -> Mapper {
        Mapper::new(*self)
    }

    /// A fresh, empty address space: a zeroed L4 from the allocator, read-only and pinned. Xen
    /// fills its slots 256–271 itself.
    ///
    /// # Errors
    /// No free frame, or the hypervisor's refusal to pin.
    pub fn new_empty() -> Result<AddressSpace, MapError> {
        let root = frames::alloc_table()?;
        if let Err(errno) = pin(Level::L4, root.mfn) {
            let _ = frames::free(root);
            return Err(MapError::Hypercall(errno));
        }
        Ok(AddressSpace { root: root.mfn })
    }

    /// Builds a fresh copy of these tables' guest mappings: new L4, L3, L2 and L1 frames from
    /// the allocator (made read-only, the L4 pinned), entries written with `mmu_update`. The
    /// L1 entries are copied as they are, so the copy maps the same frames with the same
    /// rights: the kernel stays mapped when the copy is loaded with [`new_baseptr`]. The copy
    /// is registered with the allocator, whose later growth of the direct map reaches it too.
    ///
    /// # Errors
    /// No free frames, an unreadable table, or the hypervisor's refusal.
    pub fn clone_kernel(&self) -> Result<AddressSpace, MapError> {
        // Every frame the copy uses is mapped (and made read-only) before any L1 is copied,
        // so the copied L1s already map them read-only and the allocator does not grow while
        // the copy is half built.
        let tables = count_tables(self.root, Level::L4)?;
        frames::reserve(tables + 1)?;
        let copy = AddressSpace::new_empty()?;
        let root = copy.root_frame().ok_or(MapError::Unreadable)?;
        build_skeleton(self.root, root, Level::L4)?;
        copy_leaves(self.root, copy.root, Level::L4)?;
        frames::register_root(copy.root)?;
        Ok(copy)
    }

    /// Unpins the L4 and gives every table the allocator handed out for these tables back to
    /// it (leaf frames are the caller's; the direct map's own L1s stay). Returns the number of
    /// tables freed. The tables must not be in use (the current root, or a user root that will
    /// be used again) and must not share tables with another address space.
    ///
    /// # Errors
    /// [`MapError::Hypercall`]`(EBUSY)` for the current root; [`MapError::Hypercall`] with the
    /// hypervisor's refusal when a table is still typed (a reference the caller still holds).
    pub fn release(self) -> Result<u64, MapError> {
        if self.is_current() {
            return Err(MapError::Hypercall(Errno::Ebusy));
        }
        frames::unregister_root(self.root);
        // Not pinned is fine: the tables may have been unpinned already.
        let _ = unpin(self.root);
        let root = self.root_frame().ok_or(MapError::Unreadable)?;
        free_tree(root, Level::L4)
    }
}

fn lower_half(va: u64) -> Result<(), MapError> {
    check_guest_va(va)?;
    if in_lower_half(va) {
        Ok(())
    } else {
        Err(MapError::KernelHalf)
    }
}

/// The error for a walk that did not reach L1.
fn missing(walk: &Walk) -> MapError {
    for level in Level::TOP_DOWN {
        match walk.at(level) {
            None => return MapError::Unreadable,
            Some(step) if !present(step.entry) => {
                return step
                    .level
                    .lower()
                    .map_or(MapError::Unreadable, MapError::NotPresent);
            }
            Some(_) => {}
        }
    }
    MapError::Unreadable
}

/// The present entries of a table worth copying (guest slots only in an L4).
fn guest_entries(table: u64, level: Level) -> impl Iterator<Item = (usize, u64)> {
    (0..ENTRIES)
        .filter(move |&i| level != Level::L4 || is_guest_l4_slot(i))
        .filter_map(move |i| read_entry(table, i).map(|e| (i, e)))
        .filter(|&(_, e)| present(e))
}

/// The tables under (and including) `table`.
fn count_tables(table: u64, level: Level) -> Result<u64, MapError> {
    read_entry(table, 0).ok_or(MapError::Unreadable)?;
    let Some(lower) = level.lower() else {
        return Ok(1);
    };
    let mut n = 1;
    for (_, entry) in guest_entries(table, level) {
        n += count_tables(pte_mfn(entry), lower)?;
    }
    Ok(n)
}

/// Creates and hooks the copy's tables down to (empty) L1s.
fn build_skeleton(src: u64, dst: Frame, level: Level) -> Result<(), MapError> {
    let Some(lower) = level.lower() else {
        return Ok(());
    };
    for (index, entry) in guest_entries(src, level) {
        let child = frames::alloc_table()?;
        let hook = [MmuUpdate::new(
            MmuCmd::NormalPtUpdate,
            dst.entry_maddr(index),
            child.pte(entry & PTE_FLAGS_MASK),
        )];
        // SAFETY: `dst` is a table of the copy under construction, not in use anywhere.
        unsafe { mmu_update(&hook)? };
        build_skeleton(pte_mfn(entry), child, lower)?;
    }
    Ok(())
}

/// Copies the L1 entries of `src` into the copy's empty L1s.
fn copy_leaves(src: u64, dst: u64, level: Level) -> Result<(), MapError> {
    let Some(lower) = level.lower() else {
        let mut batch = MmuBatch::<512>::new();
        for (index, entry) in guest_entries(src, Level::L1) {
            // SAFETY: `dst` is an L1 of the copy under construction, not in use anywhere.
            unsafe {
                batch.push(MmuUpdate::new(
                    MmuCmd::NormalPtUpdate,
                    dst * 4096 + index as u64 * 8,
                    entry,
                ))?;
            }
        }
        batch.flush()?;
        return Ok(());
    };
    for (index, entry) in guest_entries(src, level) {
        let child = read_entry(dst, index)
            .filter(|&e| present(e))
            .ok_or(MapError::NotPresent(lower))?;
        copy_leaves(pte_mfn(entry), pte_mfn(child), lower)?;
    }
    Ok(())
}

/// Frees the allocator's tables under (and including) `table`.
fn free_tree(table: Frame, level: Level) -> Result<u64, MapError> {
    let mut freed = 0;
    if let Some(lower) = level.lower() {
        for (_, entry) in guest_entries(table.mfn, level) {
            let mfn = pte_mfn(entry);
            let Some(pfn) = super::mm::mfn_to_pfn(mfn) else {
                continue;
            };
            if frames::is_allocated(pfn) {
                freed += free_tree(Frame::new(pfn, mfn), lower)?;
            }
        }
    }
    if frames::is_allocated(table.pfn) {
        frames::free(table).map_err(|_| MapError::Hypercall(Errno::Ebusy))?;
        freed += 1;
    }
    Ok(freed)
}

/// Pins machine frame `mfn` as a page table of `level` (`MMUEXT_PIN_Lx_TABLE`): the hypervisor
/// validates it and keeps it typed until [`unpin`]. Pinning changes no mapping.
///
/// # Errors
/// The hypervisor's refusal: an invalid table, a frame with writable mappings, already pinned.
pub fn pin(level: Level, mfn: u64) -> HypercallResult<()> {
    let op = [MmuextOp {
        cmd: level.pin_cmd(),
        _pad0: 0,
        arg1: mfn,
        arg2: 0,
    }];
    // SAFETY: pinning validates and type-locks a frame; it changes no mapping.
    unsafe { mmuext_op(&op)? };
    Ok(())
}

/// Releases the pin of machine frame `mfn` (`MMUEXT_UNPIN_TABLE`). A table still referenced
/// (by a parent entry or as a root) stays typed.
///
/// # Errors
/// The hypervisor's refusal (not pinned).
pub fn unpin(mfn: u64) -> HypercallResult<()> {
    let op = [MmuextOp::new(MmuextCmd::UnpinTable, mfn, 0)];
    // SAFETY: dropping a pin changes no mapping.
    unsafe { mmuext_op(&op)? };
    Ok(())
}

/// Loads `space` as the kernel root (`MMUEXT_NEW_BASEPTR`), which flushes the TLB.
///
/// # Safety
/// `space` must map everything the kernel uses, at the same addresses (its image, stacks,
/// heap, direct map): [`AddressSpace::clone_kernel`] builds such tables.
///
/// # Errors
/// The hypervisor's refusal (not a valid L4, a writable mapping of it, ...).
pub unsafe fn new_baseptr(space: AddressSpace) -> HypercallResult<()> {
    let op = [MmuextOp::new(MmuextCmd::NewBaseptr, space.root, 0)];
    // SAFETY: forwarded to the caller.
    unsafe { mmuext_op(&op)? };
    CURRENT_ROOT.store(space.root, Ordering::SeqCst);
    Ok(())
}

/// Sets the user-mode root (`MMUEXT_NEW_USER_BASEPTR`), or clears it with `None`. The user
/// root is loaded only while the vCPU runs in guest user mode (reference §7.5).
///
/// # Errors
/// The hypervisor's refusal (not a valid L4).
pub fn new_user_baseptr(space: Option<AddressSpace>) -> HypercallResult<()> {
    let op = [MmuextOp::new(
        MmuextCmd::NewUserBaseptr,
        space.map_or(0, |s| s.root),
        0,
    )];
    // SAFETY: the user root matters only in user mode, which the kernel enters explicitly.
    unsafe { mmuext_op(&op)? };
    Ok(())
}

/// How many `INVLPG_LOCAL` operations a [`Mapper`] queues before it sends them.
const INVLPG_BATCH: usize = 64;

/// A batching editor: queues L1 writes and sends them 512 at a time in one `mmu_update`, then
/// invalidates the TLB where needed. Missing tables are created at once (each with its own
/// `mmu_update`). Call [`finish`](Mapper::finish) to send the rest and see errors; a mapper
/// dropped unfinished sends them and ignores errors.
#[derive(Debug)]
pub struct Mapper {
    space: AddressSpace,
    batch: MmuBatch<512>,
    /// The L1 covering the last address: (address >> 21, L1 MFN).
    last_l1: Option<(u64, u64)>,
    invlpg: [MmuextOp; INVLPG_BATCH],
    n_invlpg: usize,
    is_current: bool,
}

impl Mapper {
    fn new(space: AddressSpace) -> Mapper {
        Mapper {
            space,
            batch: MmuBatch::new(),
            last_l1: None,
            invlpg: [MmuextOp::default(); INVLPG_BATCH],
            n_invlpg: 0,
            is_current: space.is_current(),
        }
    }

    fn l1_for(&mut self, va: u64, create: bool) -> Result<u64, MapError> {
        let key = va >> Level::L2.shift();
        if let Some((k, l1)) = self.last_l1
            && k == key
        {
            return Ok(l1);
        }
        let l1 = if create {
            self.space.ensure_table(va, Level::L1)?
        } else {
            let walk = self.space.walk(va);
            walk.l1().ok_or_else(|| missing(&walk))?.table
        };
        self.last_l1 = Some((key, l1));
        Ok(l1)
    }

    /// Queues an L1 write and the TLB invalidation it needs.
    ///
    /// # Safety
    /// As [`AddressSpace::map_unchecked`].
    unsafe fn queue(&mut self, va: u64, l1: u64, pte: u64) -> Result<(), MapError> {
        let index = Level::L1.index(va);
        let old = read_entry(l1, index).ok_or(MapError::Unreadable)?;
        // SAFETY: forwarded to the caller.
        unsafe {
            self.batch.push(MmuUpdate::new(
                MmuCmd::NormalPtUpdate,
                l1 * 4096 + index as u64 * 8,
                pte,
            ))?;
        }
        if present(old) && (self.is_current || old & _PAGE_USER != 0) {
            if self.n_invlpg == INVLPG_BATCH {
                self.send_invlpg()?;
            }
            if let Some(op) = self.invlpg.get_mut(self.n_invlpg) {
                *op = MmuextOp::new(MmuextCmd::InvlpgLocal, va, 0);
                self.n_invlpg += 1;
            }
        }
        Ok(())
    }

    fn send_invlpg(&mut self) -> Result<(), MapError> {
        self.batch.flush()?;
        let ops = self.invlpg.get(..self.n_invlpg).unwrap_or_default();
        self.n_invlpg = 0;
        if !ops.is_empty() {
            // SAFETY: TLB invalidations change no mapping.
            unsafe { mmuext_op(ops)? };
        }
        Ok(())
    }

    /// Queues a mapping of `va` (lower half) to `mfn` with `flags`.
    ///
    /// # Errors
    /// As [`AddressSpace::map`]; a failed flush of earlier requests.
    pub fn map(&mut self, va: u64, mfn: u64, flags: u64) -> Result<(), MapError> {
        lower_half(va)?;
        // SAFETY: lower-half mappings hold no memory Rust code relies on.
        unsafe { self.map_unchecked(va, mfn, flags) }
    }

    /// [`map`](Mapper::map) for any guest address.
    ///
    /// # Safety
    /// As [`AddressSpace::map_unchecked`].
    ///
    /// # Errors
    /// As [`map`](Mapper::map).
    pub unsafe fn map_unchecked(&mut self, va: u64, mfn: u64, flags: u64) -> Result<(), MapError> {
        check_guest_va(va)?;
        let l1 = self.l1_for(va, true)?;
        // SAFETY: forwarded to the caller.
        unsafe { self.queue(va, l1, make_pte(mfn, flags)) }
    }

    /// Queues the unmapping of `va` (lower half).
    ///
    /// # Errors
    /// As [`AddressSpace::unmap`].
    pub fn unmap(&mut self, va: u64) -> Result<(), MapError> {
        lower_half(va)?;
        let l1 = self.l1_for(va, false)?;
        // SAFETY: lower-half mappings hold no memory Rust code relies on.
        unsafe { self.queue(va, l1, 0) }
    }

    /// Sends everything queued.
    ///
    /// # Errors
    /// The first refused request's error.
    pub fn finish(mut self) -> Result<(), MapError> {
        self.send_invlpg()
    }

    /// `(mmu_update hypercalls made, requests completed)` so far.
    pub fn stats(&self) -> (u64, u64) {
        self.batch.stats()
    }
}

impl Drop for Mapper {
    fn drop(&mut self) {
        let _ = self.send_invlpg();
    }
}
