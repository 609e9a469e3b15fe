//! The guest frame allocator and the kernel's direct map.
//!
//! The domain owns `nr_pages` pseudo-physical frames. The builder maps the first ones (the
//! initial mapping, reference §4.4) at `VIRT_BASE + pfn * 4096`; the kit's image, stacks and
//! heap live there. This allocator hands out the **rest**, from the end of the initial mapping
//! up to `nr_pages`, and maps them on demand at the same 1:1 place, so that every frame the
//! kit deals with has a *direct-map* address, `VIRT_BASE + pfn * 4096` ([`direct_va`]).
//!
//! The direct map grows by 2 MiB regions. The first frame of a new region becomes the region's
//! L1 table: the kit zeroes it through a scratch page of its own `.bss`, hooks it into the L2
//! that maps `VIRT_BASE` (in every kernel root registered with [`register_root`], so that the
//! direct map stays the same in every kernel address space), and fills it with one batched
//! `mmu_update`: the L1 maps itself read-only and the other 511 frames read-write. The L2 the
//! builder made covers 1 GiB, which bounds the frames handed out ([`DIRECT_MAP_MAX_PFNS`]).
//!
//! Frames come out zeroed and mapped read-write at their direct-map address. A frame that is to
//! become a page table must first lose every writable mapping: [`alloc_table`] returns one
//! already remapped read-only ([`make_readonly`]). [`free`] maps a frame read-write again and
//! keeps it for reuse; it fails while the hypervisor still counts the frame as a page table,
//! which makes it a leak check. Freed frames form a list linked through their first word.
//!
//! The allocator is not reentrant: don't call it from a handler that can interrupt it.

use core::ptr::addr_of;
use core::sync::atomic::{AtomicU64, Ordering};

use hypercall_abi::mm::{MmuCmd, MmuUpdate, UVMF_INVLPG};

use super::paging::AddressSpace;
use crate::hypercall::mm::{MmuBatch, mmu_update, update_va_mapping};
use crate::layout::PAGE_SIZE_U64;
use crate::mm::{ENTRIES, Frame, Level, MapError, flags};

/// The most frames the direct map covers: the one L2 table the builder made for `VIRT_BASE`,
/// 512 × 512 frames (1 GiB). Frames above it are never handed out.
pub const DIRECT_MAP_MAX_PFNS: u64 = (ENTRIES * ENTRIES) as u64;

/// Frames per direct-map region (one L1 table's worth).
const REGION: u64 = ENTRIES as u64;

/// Kernel roots whose direct map the allocator keeps up to date.
const MAX_ROOTS: usize = 8;

/// "No frame" in the free list.
const NONE: u64 = u64::MAX;

core::arch::global_asm!(
    ".pushsection .bss.pv_guest_kit.scratch, \"aw\", @nobits",
    ".balign 4096",
    ".globl pv_guest_kit_scratch_page",
    "pv_guest_kit_scratch_page:",
    ".skip 4096",
    ".popsection",
);

unsafe extern "C" {
    /// A page of `.bss` the allocator remaps to reach frames not mapped anywhere (only its
    /// address is used; no Rust code reads or writes it).
    static pv_guest_kit_scratch_page: u8;
}

/// Which allocator-range frames are handed out (bit `pfn`).
static ALLOCATED: [AtomicU64; (DIRECT_MAP_MAX_PFNS / 64) as usize] =
    [const { AtomicU64::new(0) }; (DIRECT_MAP_MAX_PFNS / 64) as usize];

#[derive(Debug)]
struct State {
    /// `VIRT_BASE`.
    virt_base: u64,
    /// The first frame beyond the initial mapping.
    initial_end: u64,
    /// The frames the allocator may hand out end here.
    limit: u64,
    /// Frames below are in the direct map.
    mapped_end: u64,
    /// The next frame never handed out.
    next: u64,
    /// The first freed frame, or [`NONE`].
    free_head: u64,
    free_count: u64,
    in_use: u64,
    region_tables: u64,
    roots: [u64; MAX_ROOTS],
}

static STATE: spin::Mutex<Option<State>> = spin::Mutex::new(None);

/// The first frame beyond the initial mapping, once the allocator started (0 before). Kept
/// outside [`STATE`] so that page-table reads made while the allocator grows need no lock.
static INITIAL_END: AtomicU64 = AtomicU64::new(0);
/// [`State::mapped_end`], readable without the lock (0 before the allocator started).
static MAPPED_END: AtomicU64 = AtomicU64::new(0);

/// Counters of the allocator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// The first frame beyond the initial mapping (the first the allocator may hand out).
    pub first_pfn: u64,
    /// Frames up to here are in the direct map.
    pub mapped_end: u64,
    /// The allocator's frames end here (`nr_pages`, at most [`DIRECT_MAP_MAX_PFNS`]).
    pub limit: u64,
    /// Frames handed out and not freed.
    pub in_use: u64,
    /// Frames on the free list.
    pub free_listed: u64,
    /// Frames that became direct-map L1 tables.
    pub region_tables: u64,
}

fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> Option<R> {
    let mut guard = STATE.lock();
    if guard.is_none() {
        *guard = init_state();
    }
    guard.as_mut().map(f)
}

fn init_state() -> Option<State> {
    let boot = super::boot_info()?;
    let virt_base = super::virt_base();
    let mapping = boot.initial_mapping(virt_base)?;
    let initial_end = (mapping.end - virt_base) / PAGE_SIZE_U64;
    let mut roots = [0; MAX_ROOTS];
    roots[0] = super::paging::current_root();
    INITIAL_END.store(initial_end, Ordering::SeqCst);
    MAPPED_END.store(initial_end, Ordering::SeqCst);
    Some(State {
        virt_base,
        initial_end,
        limit: boot.nr_pages.min(DIRECT_MAP_MAX_PFNS),
        mapped_end: initial_end,
        next: initial_end,
        free_head: NONE,
        free_count: 0,
        in_use: 0,
        region_tables: 0,
        roots,
    })
}

/// The direct-map address of `pfn`, if it is mapped there (the initial mapping, or a region
/// the allocator mapped).
pub fn direct_va(pfn: u64) -> Option<u64> {
    let virt_base = super::virt_base();
    let mut mapped_end = MAPPED_END.load(Ordering::SeqCst);
    if mapped_end == 0 {
        let end = super::boot_info()?.initial_mapping(virt_base)?.end;
        mapped_end = (end - virt_base) / PAGE_SIZE_U64;
    }
    (pfn < mapped_end).then(|| virt_base + pfn * PAGE_SIZE_U64)
}

/// The allocator's counters.
pub fn stats() -> Stats {
    with_state(|s| Stats {
        first_pfn: s.initial_end,
        mapped_end: s.mapped_end,
        limit: s.limit,
        in_use: s.in_use,
        free_listed: s.free_count,
        region_tables: s.region_tables,
    })
    .unwrap_or_default()
}

fn bit(pfn: u64) -> Option<(&'static AtomicU64, u64)> {
    let word = ALLOCATED.get(usize::try_from(pfn / 64).ok()?)?;
    Some((word, 1 << (pfn % 64)))
}

/// Whether `pfn` is a frame the allocator handed out and that was not freed.
pub fn is_allocated(pfn: u64) -> bool {
    bit(pfn).is_some_and(|(word, mask)| word.load(Ordering::Relaxed) & mask != 0)
}

fn set_allocated(pfn: u64, on: bool) {
    if let Some((word, mask)) = bit(pfn) {
        if on {
            word.fetch_or(mask, Ordering::Relaxed);
        } else {
            word.fetch_and(!mask, Ordering::Relaxed);
        }
    }
}

fn frame_of(pfn: u64) -> Option<Frame> {
    super::mm::pfn_to_mfn(pfn).map(|mfn| Frame::new(pfn, mfn))
}

/// A zeroed frame, mapped read-write at [`direct_va`]`(frame.pfn)`; `None` when the domain has
/// no frame left (or, past 1 GiB, none the direct map can reach).
pub fn alloc() -> Option<Frame> {
    with_state(|s| {
        let frame = take(s)?;
        s.in_use += 1;
        set_allocated(frame.pfn, true);
        let va = s.virt_base + frame.pfn * PAGE_SIZE_U64;
        // SAFETY: `va` is the frame's direct-map address, mapped read-write (regions are
        // mapped so, and `free` remaps freed frames so); the frame was free, so no Rust object
        // or mapping of anyone else's lives there.
        unsafe { core::ptr::write_bytes(va as *mut u8, 0, hypercall_abi::PAGE_SIZE) };
        Some(frame)
    })
    .flatten()
}

/// Takes a frame off the free list or from the never-used ones, growing the direct map.
fn take(s: &mut State) -> Option<Frame> {
    if s.free_head != NONE {
        let pfn = s.free_head;
        let link = (s.virt_base + pfn * PAGE_SIZE_U64) as *const u64;
        // SAFETY: a freed frame is mapped read-write at its direct-map address and holds the
        // next link in its first word (written by `free`).
        s.free_head = unsafe { link.read_volatile() };
        s.free_count -= 1;
        return frame_of(pfn);
    }
    if s.next >= s.mapped_end {
        grow(s).ok()?;
    }
    let pfn = s.next;
    s.next += 1;
    frame_of(pfn)
}

/// Ensures at least `count` frames can be handed out without growing the direct map (so that a
/// caller building tables sees every frame it will use already mapped).
///
/// # Errors
/// [`MapError::OutOfFrames`], or the hypervisor's refusal while growing.
pub fn reserve(count: u64) -> Result<(), MapError> {
    with_state(|s| {
        while s.free_count + (s.mapped_end - s.next) < count {
            grow(s)?;
        }
        Ok(())
    })
    .unwrap_or(Err(MapError::OutOfFrames))
}

/// Maps the next 2 MiB region of the direct map (see the module documentation).
fn grow(s: &mut State) -> Result<(), MapError> {
    let base = s.mapped_end;
    if base >= s.limit || !base.is_multiple_of(REGION) {
        return Err(MapError::OutOfFrames);
    }
    let count = REGION.min(s.limit - base);
    let l1 = frame_of(base).ok_or(MapError::OutOfFrames)?;
    zero_unmapped(l1.mfn)?;
    let va = s.virt_base + base * PAGE_SIZE_U64;
    for &root in s.roots.iter().filter(|&&r| r != 0) {
        let entry = AddressSpace::from_root(root).entry_maddr(va, Level::L2)?;
        let hook = [MmuUpdate::new(
            MmuCmd::NormalPtUpdate,
            entry,
            l1.pte(flags::TABLE),
        )];
        // SAFETY: the L2 entry for a region beyond everything mapped so far was empty; pointing
        // it at the zeroed L1 adds mappings and changes none.
        unsafe { mmu_update(&hook)? };
    }
    let mut batch = MmuBatch::<256>::new();
    for i in 0..count {
        let frame = frame_of(base + i).ok_or(MapError::OutOfFrames)?;
        let pte = if i == 0 {
            frame.pte(flags::KERNEL_RO)
        } else {
            frame.pte(flags::KERNEL_RW)
        };
        let index = usize::try_from(i).unwrap_or(0);
        // SAFETY: the entries map fresh frames at addresses nothing used before.
        unsafe {
            batch.push(MmuUpdate::new(
                MmuCmd::NormalPtUpdate,
                l1.entry_maddr(index),
                pte,
            ))?;
        }
    }
    batch.flush()?;
    s.mapped_end = base + count;
    MAPPED_END.store(s.mapped_end, Ordering::SeqCst);
    s.next = base + 1;
    s.region_tables += 1;
    Ok(())
}

/// Zeroes a frame that is mapped nowhere, through the kit's scratch page.
fn zero_unmapped(mfn: u64) -> Result<(), MapError> {
    let va = addr_of!(pv_guest_kit_scratch_page) as u64;
    let original = AddressSpace::current()
        .translate(va)
        .ok_or(MapError::NotPresent(Level::L1))?;
    // SAFETY: the scratch page is the kit's own .bss page that no Rust code reads or writes
    // through references; it is remapped, written through raw pointers and remapped back.
    unsafe {
        update_va_mapping(
            va,
            hypercall_abi::mm::make_pte(mfn, flags::KERNEL_RW),
            UVMF_INVLPG,
        )?;
        core::ptr::write_bytes(va as *mut u8, 0, hypercall_abi::PAGE_SIZE);
        update_va_mapping(va, original, UVMF_INVLPG)?;
    }
    Ok(())
}

/// A zeroed frame mapped only read-only (at its direct-map address), ready to become a page
/// table.
///
/// # Errors
/// [`MapError::OutOfFrames`], or the hypervisor's refusal to remap it.
pub fn alloc_table() -> Result<Frame, MapError> {
    let frame = alloc().ok_or(MapError::OutOfFrames)?;
    if let Err(errno) = make_readonly(frame) {
        let _ = free(frame);
        return Err(MapError::Hypercall(errno));
    }
    Ok(frame)
}

fn in_allocator_range(pfn: u64) -> bool {
    let start = INITIAL_END.load(Ordering::SeqCst);
    start != 0 && pfn >= start && pfn < MAPPED_END.load(Ordering::SeqCst)
}

/// Remaps the direct-map page of an allocator frame with `pte_flags`.
fn set_direct_flags(frame: Frame, pte_flags: u64) -> crate::errno::HypercallResult<()> {
    use crate::errno::Errno;
    if !in_allocator_range(frame.pfn) {
        return Err(Errno::Einval);
    }
    let va = direct_va(frame.pfn).ok_or(Errno::Einval)?;
    // SAFETY: the page is an allocator frame's direct-map page, which holds no Rust object;
    // the kit accesses allocator frames only through raw pointers.
    unsafe { update_va_mapping(va, frame.pte(pte_flags), UVMF_INVLPG)? };
    Ok(())
}

/// Maps an allocator frame read-only in the direct map (its only mapping the kit made), so
/// that it can become a page table or a descriptor page.
///
/// # Errors
/// `-EINVAL` for a frame outside the allocator's range; the hypervisor's error.
pub fn make_readonly(frame: Frame) -> crate::errno::HypercallResult<()> {
    set_direct_flags(frame, flags::KERNEL_RO)
}

/// Maps an allocator frame read-write in the direct map again. The hypervisor refuses
/// (`-EBUSY` on Xen) while the frame is still a page table.
///
/// # Errors
/// `-EINVAL` for a frame outside the allocator's range; the hypervisor's error.
pub fn make_writable(frame: Frame) -> crate::errno::HypercallResult<()> {
    set_direct_flags(frame, flags::KERNEL_RW)
}

/// Gives a frame back. It is mapped read-write again first, which fails while the hypervisor
/// still types it as a page table (then the frame is returned in the error and stays
/// allocated). Freeing a frame the allocator did not hand out, or twice, fails too.
///
/// # Errors
/// The frame itself, when it cannot be freed.
pub fn free(frame: Frame) -> Result<(), Frame> {
    if !is_allocated(frame.pfn) || super::mm::pfn_to_mfn(frame.pfn) != Some(frame.mfn) {
        return Err(frame);
    }
    make_writable(frame).map_err(|_| frame)?;
    with_state(|s| {
        let link = (s.virt_base + frame.pfn * PAGE_SIZE_U64) as *mut u64;
        // SAFETY: the frame is now mapped read-write at its direct-map address and belongs to
        // nobody; its first word holds the free-list link.
        unsafe { link.write_volatile(s.free_head) };
        s.free_head = frame.pfn;
        s.free_count += 1;
        s.in_use -= 1;
    });
    set_allocated(frame.pfn, false);
    Ok(())
}

/// Adds a kernel root whose direct map the allocator extends when it grows (an
/// [`AddressSpace::clone_kernel`] does this itself). The first root is the one current when the
/// allocator started.
///
/// # Errors
/// [`MapError::OutOfFrames`] if [`MAX_ROOTS`] roots are registered already.
pub fn register_root(root_mfn: u64) -> Result<(), MapError> {
    with_state(|s| {
        if s.roots.contains(&root_mfn) {
            return Ok(());
        }
        let slot = s
            .roots
            .iter_mut()
            .find(|r| **r == 0)
            .ok_or(MapError::OutOfFrames)?;
        *slot = root_mfn;
        Ok(())
    })
    .unwrap_or(Err(MapError::OutOfFrames))
}

/// Stops extending the direct map of `root_mfn`.
pub fn unregister_root(root_mfn: u64) {
    with_state(|s| {
        for r in s.roots.iter_mut().filter(|r| **r == root_mfn) {
            *r = 0;
        }
    });
}
