//! Machine memory on x86-64: the direct map, the global frame allocator, the hypervisor's
//! final page tables (W^X image, guard pages, direct map of all RAM) and the heap.

use crate::boot::multiboot::{PhysMem, RegionKind, Unreadable};
extern crate alloc;
use crate::cpuinfo::{CpuFeatures, CpuInfo};
use crate::layout::{
    BOOT_DIRECTMAP_SIZE, DIRECTMAP_VIRT_END, DIRECTMAP_VIRT_START, END_RESERVED_L4_SLOT,
    IMAGE_VIRT_OFFSET, IOREMAP_VIRT_END, IOREMAP_VIRT_START,
};
use crate::mm::frame_alloc::FrameAllocator;
use crate::mm::memmap::{FrameRange, MemoryMap};
use crate::types::{Mfn, PAGE_SIZE, Paddr};
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Mutex;

/// Page-table entry bits.
pub mod pte {
    /// Present.
    pub const P: u64 = 1 << 0;
    /// Writable.
    pub const RW: u64 = 1 << 1;
    /// User-accessible.
    pub const US: u64 = 1 << 2;
    /// Write-through.
    pub const PWT: u64 = 1 << 3;
    /// Cache disable.
    pub const PCD: u64 = 1 << 4;
    /// Accessed.
    pub const A: u64 = 1 << 5;
    /// Dirty.
    pub const D: u64 = 1 << 6;
    /// Large page (in L2/L3 entries).
    pub const PS: u64 = 1 << 7;
    /// Global.
    pub const G: u64 = 1 << 8;
    /// No-execute.
    pub const NX: u64 = 1 << 63;
    /// The machine-address bits.
    pub const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
}

/// Why a mapping could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// No free frame for a page table.
    NoMemory,
    /// Something is already mapped at this address.
    Conflict(u64),
    /// A page-table frame lies outside the part of the direct map that is set up.
    NotReachable(Paddr),
    /// The memory subsystem is not initialised yet, or the area is full.
    Unavailable,
}

/// Why memory setup failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemInitError {
    /// No free range below 4 GiB can hold the allocator's bitmap.
    NoRoomForBitmap,
    /// A mapping failed.
    Map(MapError),
    /// The heap could not be allocated.
    NoHeap,
}

/// What [`init`] set up.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemStats {
    /// Bytes of RAM in the memory map.
    pub ram_bytes: u64,
    /// Bytes free for allocation once the allocator was built (before page tables and heap).
    pub usable_bytes: u64,
    /// Bytes of the heap.
    pub heap_bytes: u64,
    /// Frames used by the hypervisor's page tables.
    pub pagetable_frames: u64,
    /// One past the highest machine address reachable through the direct map.
    pub directmap_end: u64,
    /// Whether 1 GiB pages were used for the direct map.
    pub gib_pages: bool,
}

static FRAMES: Mutex<Option<FrameAllocator<'static>>> = Mutex::new(None);
/// Machine memory reachable through the direct map: `[0, DIRECTMAP_END)`.
static DIRECTMAP_END: AtomicU64 = AtomicU64::new(BOOT_DIRECTMAP_SIZE);
/// The hypervisor's own L4 (machine address), once the final tables are live.
static ROOT: AtomicU64 = AtomicU64::new(0);
static IOREMAP_NEXT: AtomicU64 = AtomicU64::new(IOREMAP_VIRT_START);
static PT_FRAMES: AtomicU64 = AtomicU64::new(0);

#[global_allocator]
static HEAP: linked_list_allocator::LockedHeap = linked_list_allocator::LockedHeap::empty();

/// The direct-map address of machine address `pa` (no check that it is mapped).
pub const fn directmap_va(pa: Paddr) -> u64 {
    DIRECTMAP_VIRT_START + pa.0
}

/// Whether `[pa, pa + len)` is reachable through the direct map.
pub fn in_directmap(pa: Paddr, len: u64) -> bool {
    pa.0.checked_add(len)
        .is_some_and(|end| end <= DIRECTMAP_END.load(Ordering::Relaxed))
}

/// Reads machine memory through the direct map (the boot loader's structures, modules).
#[derive(Debug, Clone, Copy)]
pub struct DirectMapReader;

impl PhysMem for DirectMapReader {
    fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<(), Unreadable> {
        if !in_directmap(Paddr(paddr), buf.len() as u64) {
            return Err(Unreadable);
        }
        // SAFETY: the range is inside the direct map, which maps machine memory readable at
        // `DIRECTMAP_VIRT_START + pa` (boot tables: all of 0-4 GiB; final tables: all RAM, and
        // `DIRECTMAP_END` then only covers RAM); the destination is a distinct Rust buffer.
        unsafe {
            core::ptr::copy_nonoverlapping(
                directmap_va(Paddr(paddr)) as *const u8,
                buf.as_mut_ptr(),
                buf.len(),
            );
        }
        Ok(())
    }
}

/// Fills a frame with zeros.
fn zero_frame(mfn: Mfn) {
    // SAFETY: frames handed out by the allocator are free RAM inside the direct map and
    // owned by the caller from now on; nothing else references them.
    unsafe { core::ptr::write_bytes(directmap_va(mfn.paddr()) as *mut [u8; 4096], 0, 1) };
}

/// Allocates one zeroed machine frame.
pub fn alloc_frame() -> Option<Mfn> {
    let mfn = FRAMES.lock().as_mut()?.alloc()?;
    zero_frame(mfn);
    Some(mfn)
}

/// Allocates `2^order` contiguous, naturally aligned machine frames (not zeroed).
pub fn alloc_frames(order: u32) -> Option<Mfn> {
    FRAMES.lock().as_mut()?.alloc_run(order)
}

/// Returns `2^order` frames from [`alloc_frames`] (or one from [`alloc_frame`], order 0).
pub fn free_frames(mfn: Mfn, order: u32) -> Result<(), crate::mm::frame_alloc::FrameError> {
    match FRAMES.lock().as_mut() {
        Some(a) => a.free_run(mfn, order),
        None => Err(crate::mm::frame_alloc::FrameError::OutOfRange),
    }
}

/// Number of free machine frames.
pub fn free_frame_count() -> u64 {
    FRAMES.lock().as_ref().map_or(0, |a| a.free_frames())
}

/// A page table, through the direct map.
///
/// # Safety
/// `mfn` must be a page-table frame owned by the hypervisor and reachable through the direct
/// map, with no other live reference to it.
unsafe fn table<'a>(mfn: Mfn) -> &'a mut [u64; 512] {
    // SAFETY: per the contract, the frame is mapped, 4 KiB aligned and exclusively ours.
    unsafe { &mut *(directmap_va(mfn.paddr()) as *mut [u64; 512]) }
}

/// A fresh zeroed page-table frame, checked to be reachable through the direct map.
fn new_table_frame() -> Result<Mfn, MapError> {
    let mfn = FRAMES
        .lock()
        .as_mut()
        .ok_or(MapError::Unavailable)?
        .alloc()
        .ok_or(MapError::NoMemory)?;
    if !in_directmap(mfn.paddr(), PAGE_SIZE) {
        return Err(MapError::NotReachable(mfn.paddr()));
    }
    zero_frame(mfn);
    PT_FRAMES.fetch_add(1, Ordering::Relaxed);
    // Once the frame table exists, the frame is recorded as the hypervisor's. (No caller
    // holds the frame-table lock while mapping hypervisor memory.)
    if let Some(t) = FRAME_TABLE.lock().as_mut() {
        let _ = t.set_xen(mfn);
    }
    Ok(mfn)
}

/// Maps one page of size `4 KiB << (9 * (level - 1))` (level 1, 2 or 3) at `va` to `pa`.
fn map_one(root: Mfn, va: u64, pa: u64, level: u32, flags: u64) -> Result<(), MapError> {
    let mut t = root;
    for lvl in (level + 1..=4).rev() {
        let idx = ((va >> (12 + 9 * (lvl - 1))) & 511) as usize;
        // SAFETY: `t` is the root or a table created by this module, all hypervisor-owned and
        // direct-mapped; the boot CPU is the only one editing them.
        let e = unsafe { &mut table(t)[idx] };
        if *e & pte::P == 0 {
            let f = new_table_frame()?;
            // User-accessible leaves (the guest-readable M2P) need US on every level.
            *e = f.paddr().0 | pte::P | pte::RW | pte::A | (flags & pte::US);
        } else if *e & pte::PS != 0 {
            return Err(MapError::Conflict(va));
        }
        t = Mfn((*e & pte::ADDR_MASK) >> 12);
    }
    let idx = ((va >> (12 + 9 * (level - 1))) & 511) as usize;
    // SAFETY: as above.
    let e = unsafe { &mut table(t)[idx] };
    if *e & pte::P != 0 {
        return Err(MapError::Conflict(va));
    }
    *e = pa | flags | pte::P | if level > 1 { pte::PS } else { 0 };
    Ok(())
}

/// Maps `[va, va + len)` to `[pa, pa + len)`, with the largest pages alignment allows.
fn map_range(root: Mfn, va: u64, pa: u64, len: u64, flags: u64, gib: bool) -> Result<(), MapError> {
    const MIB2: u64 = 2 << 20;
    const GIB: u64 = 1 << 30;
    let mut off = 0;
    while off < len {
        let (v, p, rest) = (va + off, pa + off, len - off);
        let aligned = |size: u64| v % size == 0 && p % size == 0 && rest >= size;
        let (level, size) = if gib && aligned(GIB) {
            (3, GIB)
        } else if aligned(MIB2) {
            (2, MIB2)
        } else {
            (1, PAGE_SIZE)
        };
        map_one(root, v, p, level, flags)?;
        off += size;
    }
    Ok(())
}

unsafe extern "C" {
    static __image_start: u8;
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __data_start: u8;
    static __image_end: u8;
}

/// The image's `(start, text_end, rodata_end, end)` virtual addresses.
fn image_bounds() -> [u64; 5] {
    [
        &raw const __image_start as u64,
        &raw const __text_start as u64,
        &raw const __text_end as u64,
        &raw const __rodata_end as u64,
        &raw const __image_end as u64,
    ]
}

/// The machine range `[start, end)` the image occupies.
pub fn image_phys_range() -> (u64, u64) {
    let b = image_bounds();
    (b[0] - IMAGE_VIRT_OFFSET, b[4] - IMAGE_VIRT_OFFSET)
}

/// Pages inside the image deliberately left unmapped: stack guard pages.
fn guard_pages() -> [u64; 4] {
    let ist = super::gdt::ist_guard_pages();
    [super::percpu::boot_stack().0, ist[0], ist[1], ist[2]]
}

/// Maps the image with W^X permissions: text read-only executable, rodata read-only, data
/// and bss writable non-executable; guard pages stay unmapped.
fn map_image(root: Mfn) -> Result<(), MapError> {
    let (text_start, rodata_start, data_start) = (
        &raw const __text_start as u64,
        &raw const __rodata_start as u64,
        &raw const __data_start as u64,
    );
    let [_, _, text_end, rodata_end, end] = image_bounds();
    let guards = guard_pages();
    let sections = [
        (text_start, text_end, pte::G),
        (rodata_start, rodata_end, pte::G | pte::NX),
        (data_start, end, pte::G | pte::NX | pte::RW | pte::D),
    ];
    for (start, end, flags) in sections {
        let mut va = start;
        while va < end {
            if !guards.contains(&va) {
                map_one(root, va, va - IMAGE_VIRT_OFFSET, 1, flags | pte::A)?;
            }
            va += PAGE_SIZE;
        }
    }
    Ok(())
}

/// Maps every RAM region of `map` into the direct map; returns the highest address mapped.
fn map_directmap(root: Mfn, map: &MemoryMap, gib: bool) -> Result<u64, MapError> {
    let limit = DIRECTMAP_VIRT_END - DIRECTMAP_VIRT_START;
    let mut pending: Option<(u64, u64)> = None;
    let mut high = 0;
    let flush = |r: (u64, u64), high: &mut u64| -> Result<(), MapError> {
        let (s, e) = (r.0, r.1.min(limit));
        if s < e {
            map_range(
                root,
                DIRECTMAP_VIRT_START + s,
                s,
                e - s,
                pte::RW | pte::G | pte::NX | pte::A | pte::D,
                gib,
            )?;
            *high = (*high).max(e);
        }
        Ok(())
    };
    for r in map.regions() {
        if !matches!(
            r.kind,
            RegionKind::Usable | RegionKind::AcpiReclaimable | RegionKind::AcpiNvs
        ) {
            continue;
        }
        let s = r.base & !(PAGE_SIZE - 1);
        let e = r.end().saturating_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
        pending = match pending {
            Some((ps, pe)) if s <= pe => Some((ps, pe.max(e))),
            Some(p) => {
                flush(p, &mut high)?;
                Some((s, e))
            }
            None => Some((s, e)),
        };
    }
    if let Some(p) = pending {
        flush(p, &mut high)?;
    }
    Ok(high)
}

/// Sets up machine memory: the frame allocator over `free`, the final page tables, the heap.
pub fn init(map: &MemoryMap, free: &[FrameRange], cpu: &CpuInfo) -> Result<MemStats, MemInitError> {
    // 1. The allocator's bitmap, carved from the first free range (below 4 GiB) big enough.
    let limit = free.iter().map(|r| r.end.0).max().unwrap_or(0);
    let words = FrameAllocator::storage_words(limit);
    let pages = (words as u64 * 8).div_ceil(PAGE_SIZE);
    let host = free
        .iter()
        .find(|r| {
            r.count() >= pages && r.start.0.saturating_add(pages) * PAGE_SIZE <= BOOT_DIRECTMAP_SIZE
        })
        .copied()
        .ok_or(MemInitError::NoRoomForBitmap)?;
    // SAFETY: `[host.start, host.start + pages)` is free RAM inside the boot direct map; it is
    // removed from what the allocator manages below, so this slice is its only user forever.
    let storage: &'static mut [u64] = unsafe {
        core::slice::from_raw_parts_mut(directmap_va(host.start.paddr()) as *mut u64, words)
    };
    let mut alloc = FrameAllocator::new(storage, limit);
    for r in free {
        let (mut s, e) = (r.start.0, r.end.0);
        if r.start == host.start {
            s += pages;
        }
        if s < e {
            // Ranges come sorted and disjoint from the memory map: no double adds.
            let _ = alloc.add_free_range(Mfn(s), e - s);
        }
    }
    let usable_bytes = alloc.free_frames() * PAGE_SIZE;
    *FRAMES.lock() = Some(alloc);

    // 2. The final page tables.
    let gib = cpu.has(CpuFeatures::PDPE1GB);
    let root = new_table_frame().map_err(MemInitError::Map)?;
    // Every hypervisor L4 slot gets its L3 now, so guest L4s can share them later.
    for slot in 257..END_RESERVED_L4_SLOT {
        let l3 = new_table_frame().map_err(MemInitError::Map)?;
        // SAFETY: `root` was just allocated by this function and is only ours.
        unsafe { table(root)[slot] = l3.paddr().0 | pte::P | pte::RW | pte::A };
    }
    map_image(root).map_err(MemInitError::Map)?;
    let directmap_end = map_directmap(root, map, gib).map_err(MemInitError::Map)?;

    // 3. Switch: global pages on, then the new root.
    if cpu.has(CpuFeatures::PGE) {
        // SAFETY: setting CR4.PGE only enables global TLB entries.
        unsafe {
            x86_64::registers::control::Cr4::update(|f| {
                f.insert(x86_64::registers::control::Cr4Flags::PAGE_GLOBAL)
            })
        };
    }
    if cpu.has(CpuFeatures::SMEP) {
        // SAFETY: the hypervisor never executes user (guest) pages; SMEP makes that a fault.
        unsafe {
            x86_64::registers::control::Cr4::update(|f| {
                f.insert(x86_64::registers::control::Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION)
            })
        };
    }
    // SAFETY: the new tables map everything the hypervisor touches from here on at the same
    // virtual addresses as before (image, stacks, GDT/IDT/TSS, the direct map of RAM); the
    // identity map and the boot tables are dropped, and nothing refers to them any more.
    unsafe {
        core::arch::asm!("mov {}, %cr3", in(reg) root.paddr().0, options(att_syntax, nostack))
    };
    ROOT.store(root.paddr().0, Ordering::Relaxed);
    DIRECTMAP_END.store(directmap_end, Ordering::Relaxed);

    // 4. The heap: 1/64 of RAM, between 4 and 64 MiB, one contiguous run.
    let ram = map.ram_bytes();
    let heap_bytes = (ram / 64)
        .clamp(4 << 20, 64 << 20)
        .next_power_of_two()
        .min(64 << 20);
    let order = (heap_bytes / PAGE_SIZE).trailing_zeros();
    let heap = alloc_frames(order).ok_or(MemInitError::NoHeap)?;
    // SAFETY: the run is free RAM inside the direct map, handed to the heap for good.
    unsafe {
        HEAP.lock()
            .init(directmap_va(heap.paddr()) as *mut u8, heap_bytes as usize)
    };

    Ok(MemStats {
        ram_bytes: ram,
        usable_bytes,
        heap_bytes,
        pagetable_frames: PT_FRAMES.load(Ordering::Relaxed),
        directmap_end,
        gib_pages: gib,
    })
}

/// Maps device memory `[pa, pa + len)` uncached into the hypervisor's device area; returns
/// the virtual address of `pa`.
pub fn map_mmio(pa: Paddr, len: u64) -> Result<u64, MapError> {
    let root = ROOT.load(Ordering::Relaxed);
    if root == 0 {
        return Err(MapError::Unavailable);
    }
    let start = pa.page_down();
    let end = pa
        .checked_add(len)
        .and_then(|e| e.page_up())
        .ok_or(MapError::Unavailable)?;
    let size = end.0 - start.0;
    let va = IOREMAP_NEXT.fetch_add(size, Ordering::Relaxed);
    if va.saturating_add(size) > IOREMAP_VIRT_END {
        return Err(MapError::Unavailable);
    }
    let mut off = 0;
    while off < size {
        map_one(
            Paddr(root).frame(),
            va + off,
            start.0 + off,
            1,
            pte::RW | pte::PCD | pte::PWT | pte::G | pte::NX | pte::A | pte::D,
        )?;
        x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(va + off));
        off += PAGE_SIZE;
    }
    Ok(va + pa.page_offset())
}

/// Replaces the 4 KiB leaf mapping `va` (whose tables exist) with `pa` and `flags`, and
/// flushes it from this CPU's TLB.
pub fn remap_4k(va: u64, pa: Paddr, flags: u64) -> Result<(), MapError> {
    set_leaf_4k(va, pa.page_down().0 | flags | pte::P)
}

/// Removes the 4 KiB leaf mapping `va` (whose tables exist) and flushes it from this CPU's
/// TLB.
pub fn unmap_4k(va: u64) -> Result<(), MapError> {
    set_leaf_4k(va, 0)
}

/// Writes the leaf entry for `va` in the hypervisor's tables (which must exist down to the
/// L1) and flushes it.
fn set_leaf_4k(va: u64, entry: u64) -> Result<(), MapError> {
    let root = ROOT.load(Ordering::Relaxed);
    if root == 0 {
        return Err(MapError::Unavailable);
    }
    let mut t = Paddr(root).frame();
    for lvl in (2..=4u32).rev() {
        let idx = ((va >> (12 + 9 * (lvl - 1))) & 511) as usize;
        // SAFETY: walking the hypervisor's own tables through the direct map.
        let e = unsafe { table(t)[idx] };
        if e & pte::P == 0 || e & pte::PS != 0 {
            return Err(MapError::Unavailable);
        }
        t = Mfn((e & pte::ADDR_MASK) >> 12);
    }
    let idx = ((va >> 12) & 511) as usize;
    // SAFETY: `t` is the hypervisor-owned L1 covering `va`; only the current CPU edits it
    // (the areas remapped here are per-CPU).
    unsafe { table(t)[idx] = entry };
    x86_64::instructions::tlb::flush(x86_64::VirtAddr::new_truncate(va));
    Ok(())
}

/// Maps the 4 KiB page `va` (not mapped yet) to `pa` with `flags`, creating the tables.
pub fn map_4k(va: u64, pa: Paddr, flags: u64) -> Result<(), MapError> {
    let root = Paddr(ROOT.load(Ordering::Relaxed)).frame();
    map_one(root, va, pa.page_down().0, 1, flags)
}

/// Maps `len` bytes of fresh zeroed hypervisor frames at `va` (4 KiB pages, `flags`).
pub fn map_fresh(va: u64, len: u64, flags: u64) -> Result<(), MapError> {
    let root = Paddr(ROOT.load(Ordering::Relaxed)).frame();
    let mut off = 0;
    while off < len {
        let f = alloc_xen_frame().ok_or(MapError::NoMemory)?;
        map_one(root, va + off, f.paddr().0, 1, flags)?;
        off += PAGE_SIZE;
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// The frame table, the machine-to-phys table, and machine memory for guests.

use crate::mm::frame_table::{FrameInfo, FrameTable, Owner};
use crate::mm::pagetable::{MmEnv, XEN_L4_END, XEN_L4_FIRST};
use crate::types::{PAGE_BYTES, Pfn};

static FRAME_TABLE: Mutex<Option<FrameTable<'static>>> = Mutex::new(None);
/// Frames covered by the frame table and the M2P: `[0, MAX_MFN)`.
static MAX_MFN: AtomicU64 = AtomicU64::new(0);
/// The 2 MiB chunks backing the M2P, for `XENMEM_machphys_mfn_list`.
static M2P_CHUNKS: Mutex<alloc::vec::Vec<Mfn>> = Mutex::new(alloc::vec::Vec::new());
/// The hypervisor's L4 entries 256–271 that every guest L4 receives.
static XEN_L4: Mutex<[u64; XEN_L4_END - XEN_L4_FIRST]> = Mutex::new([0; XEN_L4_END - XEN_L4_FIRST]);

/// Allocates a zeroed frame for the hypervisor's own use (marked as the hypervisor's in the
/// frame table once it exists).
pub fn alloc_xen_frame() -> Option<Mfn> {
    let mfn = alloc_frame()?;
    if let Some(t) = FRAME_TABLE.lock().as_mut() {
        let _ = t.set_xen(mfn);
    }
    Some(mfn)
}

/// The hypervisor's own page-table root (machine address): no guest mappings.
pub fn hypervisor_root() -> u64 {
    ROOT.load(Ordering::Relaxed)
}

/// One past the highest machine frame the frame table covers.
pub fn max_mfn() -> u64 {
    MAX_MFN.load(Ordering::Relaxed)
}

/// The hypervisor's L4 slots 256–271 as every guest L4 gets them.
pub fn xen_l4_slots() -> [u64; XEN_L4_END - XEN_L4_FIRST] {
    *XEN_L4.lock()
}

/// The MFNs of the M2P's 2 MiB chunks.
pub fn m2p_chunks() -> alloc::vec::Vec<Mfn> {
    M2P_CHUNKS.lock().clone()
}

/// What [`init_frame_table`] set up.
#[derive(Debug, Clone, Copy, Default)]
pub struct FrameTableStats {
    /// Frames covered.
    pub frames: u64,
    /// Bytes of frame table.
    pub table_bytes: u64,
    /// Bytes of M2P.
    pub m2p_bytes: u64,
}

/// Builds the frame table (free RAM = what the allocator holds, the hypervisor's RAM, and
/// I/O for the rest) and the machine-to-phys table (read-write in slot 261, read-only and
/// guest-readable in slot 256), and records the L4 slots guests share.
pub fn init_frame_table(map: &MemoryMap) -> Result<FrameTableStats, MapError> {
    let frames = DIRECTMAP_END.load(Ordering::Relaxed).div_ceil(PAGE_SIZE);
    let root = Paddr(ROOT.load(Ordering::Relaxed)).frame();

    // Frame table storage.
    let bytes = frames * core::mem::size_of::<FrameInfo>() as u64;
    let table_bytes = bytes.div_ceil(PAGE_SIZE) * PAGE_SIZE;
    map_fresh(
        crate::layout::FRAMETABLE_VIRT_START,
        table_bytes,
        pte::RW | pte::G | pte::NX | pte::A | pte::D,
    )?;
    let len = usize::try_from(frames).map_err(|_| MapError::Unavailable)?;
    // SAFETY: `[FRAMETABLE_VIRT_START, + table_bytes)` was just mapped to fresh frames owned
    // by the hypervisor, nothing else refers to them, and it holds `frames` entries.
    let storage: &'static mut [FrameInfo] = unsafe {
        core::slice::from_raw_parts_mut(crate::layout::FRAMETABLE_VIRT_START as *mut FrameInfo, len)
    };
    let ram = |m: u64| {
        let a = m * PAGE_SIZE;
        map.regions().iter().any(|r| {
            matches!(r.kind, RegionKind::Usable | RegionKind::AcpiReclaimable)
                && a >= r.base
                && a < r.end()
        })
    };
    {
        let alloc = FRAMES.lock();
        let alloc = alloc.as_ref().ok_or(MapError::Unavailable)?;
        for (m, f) in storage.iter_mut().enumerate() {
            let m = m as u64;
            *f = if alloc.is_free(Mfn(m)) {
                FrameInfo::FREE
            } else if ram(m) {
                FrameInfo {
                    owner: Owner::Xen,
                    count: 1,
                    ..FrameInfo::FREE
                }
            } else {
                FrameInfo::IO
            };
        }
    }
    *FRAME_TABLE.lock() = Some(FrameTable::new(storage));
    MAX_MFN.store(frames, Ordering::Relaxed);

    // The M2P, in 2 MiB chunks, all entries invalid.
    let m2p_bytes = (frames * 8).div_ceil(2 << 20) * (2 << 20);
    let chunks = m2p_bytes / (2 << 20);
    // Slot 256 gets its own L3: guest kernels may read it, nobody may write through it.
    let l3 = new_table_frame()?;
    // SAFETY: the hypervisor's root, edited by the boot CPU during setup.
    unsafe {
        table(root)[crate::layout::l4_slot(crate::layout::RO_MPT_VIRT_START)] =
            l3.paddr().0 | pte::P | pte::US | pte::A
    };
    for i in 0..chunks {
        let run = alloc_frames(9).ok_or(MapError::NoMemory)?;
        {
            let mut t = FRAME_TABLE.lock();
            for k in 0..512 {
                if let Some(t) = t.as_mut() {
                    let _ = t.set_xen(Mfn(run.0 + k));
                }
            }
        }
        let off = i * (2 << 20);
        map_one(
            root,
            crate::layout::RDWR_MPT_VIRT_START + off,
            run.paddr().0,
            2,
            pte::RW | pte::G | pte::NX | pte::A | pte::D,
        )?;
        map_one(
            root,
            crate::layout::RO_MPT_VIRT_START + off,
            run.paddr().0,
            2,
            pte::US | pte::NX | pte::A,
        )?;
        // SAFETY: the 2 MiB run was just allocated for the M2P and is mapped writable above.
        unsafe {
            core::ptr::write_bytes(
                (crate::layout::RDWR_MPT_VIRT_START + off) as *mut u8,
                0xff,
                2 << 20,
            )
        };
        M2P_CHUNKS.lock().push(run);
    }
    let mut slots = [0u64; XEN_L4_END - XEN_L4_FIRST];
    for (k, slot) in slots.iter_mut().enumerate() {
        // SAFETY: reading the hypervisor's root table.
        *slot = unsafe { table(root)[XEN_L4_FIRST + k] };
    }
    *XEN_L4.lock() = slots;
    Ok(FrameTableStats {
        frames,
        table_bytes,
        m2p_bytes,
    })
}

/// Sets `m2p[mfn] = pfn` (ignored beyond the table).
pub fn set_m2p(mfn: Mfn, pfn: Pfn) {
    if mfn.0 < max_mfn() {
        // SAFETY: the RW M2P covers every frame below `max_mfn()`, 8 bytes each.
        unsafe {
            core::ptr::write_volatile(
                (crate::layout::RDWR_MPT_VIRT_START + mfn.0 * 8) as *mut u64,
                pfn.0,
            )
        };
    }
}

/// Reads `m2p[mfn]` (`!0` beyond the table).
pub fn get_m2p(mfn: Mfn) -> u64 {
    if mfn.0 < max_mfn() {
        // SAFETY: as in `set_m2p`.
        unsafe {
            core::ptr::read_volatile((crate::layout::RDWR_MPT_VIRT_START + mfn.0 * 8) as *const u64)
        }
    } else {
        !0
    }
}

/// Runs `f` with the frame table and machine memory. The frame table lock is taken inside
/// the caller's locks and before the allocator's.
pub fn with_frame_table<R>(
    f: impl FnOnce(&mut FrameTable<'static>, &mut MachineEnv) -> R,
) -> Option<R> {
    let mut guard = FRAME_TABLE.lock();
    let table = guard.as_mut()?;
    Some(f(table, &mut MachineEnv))
}

/// Machine memory through the direct map, for the frame table and the domain builder.
#[derive(Debug, Default)]
pub struct MachineEnv;

impl MachineEnv {
    fn frame_ptr(mfn: Mfn) -> Option<*mut u8> {
        in_directmap(mfn.paddr(), PAGE_SIZE).then(|| directmap_va(mfn.paddr()) as *mut u8)
    }
}

impl MmEnv for MachineEnv {
    fn read(&self, mfn: Mfn, index: usize) -> u64 {
        match Self::frame_ptr(mfn) {
            // SAFETY: a RAM frame in the direct map; `index < 512` (callers iterate 0..512),
            // and an 8-byte aligned volatile read cannot tear.
            Some(p) if index < 512 => unsafe {
                core::ptr::read_volatile(p.cast::<u64>().add(index))
            },
            _ => 0,
        }
    }

    fn write(&mut self, mfn: Mfn, index: usize, val: u64) {
        if let Some(p) = Self::frame_ptr(mfn).filter(|_| index < 512) {
            // SAFETY: as in `read`; the frame table decided this frame may be written.
            unsafe { core::ptr::write_volatile(p.cast::<u64>().add(index), val) };
        }
    }

    fn freed(&mut self, mfn: Mfn) {
        let _ = free_frames(mfn, 0);
    }
}

impl crate::domain::build::BuildMem for MachineEnv {
    fn write_bytes(&mut self, mfn: Mfn, offset: usize, bytes: &[u8]) {
        let Some(p) = Self::frame_ptr(mfn) else {
            return;
        };
        let n = bytes.len().min(PAGE_BYTES.saturating_sub(offset));
        // SAFETY: `[offset, offset + n)` lies inside a direct-mapped RAM frame the builder
        // owns; the source is a distinct buffer.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), p.add(offset), n) };
    }

    fn zero_frame(&mut self, mfn: Mfn) {
        if let Some(p) = Self::frame_ptr(mfn) {
            // SAFETY: a whole direct-mapped RAM frame the builder owns.
            unsafe { core::ptr::write_bytes(p, 0, PAGE_BYTES) };
        }
    }

    fn set_m2p(&mut self, mfn: Mfn, pfn: Pfn) {
        set_m2p(mfn, pfn);
    }
}

/// Copies `buf.len()` bytes from machine address `pa` (RAM in the direct map).
pub fn read_machine(pa: Paddr, buf: &mut [u8]) -> bool {
    if !in_directmap(pa, buf.len() as u64) {
        return false;
    }
    if buf.len() <= 8 {
        // Small reads (vcpu_info bytes, one entry) without a call to memcpy.
        let p = directmap_va(pa) as *const u8;
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: `[pa, pa + len)` is RAM in the direct map (checked above).
            *b = unsafe { core::ptr::read_volatile(p.add(i)) };
        }
        return true;
    }
    // SAFETY: the range is RAM inside the direct map; the destination is a distinct buffer.
    unsafe {
        core::ptr::copy_nonoverlapping(directmap_va(pa) as *const u8, buf.as_mut_ptr(), buf.len())
    };
    true
}

/// The little-endian 16-bit word at machine address `pa` (RAM in the direct map, even).
pub fn read_machine_u16(pa: Paddr) -> Option<u16> {
    if pa.0 == 0 || !pa.0.is_multiple_of(2) || !in_directmap(pa, 2) {
        return None;
    }
    // SAFETY: an aligned 2-byte read of RAM inside the direct map.
    Some(unsafe { core::ptr::read_volatile(directmap_va(pa) as *const u16) })
}

/// Copies `buf` to machine address `pa` (RAM in the direct map).
pub fn write_machine(pa: Paddr, buf: &[u8]) -> bool {
    if !in_directmap(pa, buf.len() as u64) {
        return false;
    }
    if buf.len() <= 8 {
        let p = directmap_va(pa) as *mut u8;
        for (i, b) in buf.iter().enumerate() {
            // SAFETY: as in `read_machine`; callers only write what the hypervisor may write.
            unsafe { core::ptr::write_volatile(p.add(i), *b) };
        }
        return true;
    }
    // SAFETY: as in `read_machine`; callers only write frames the hypervisor may write
    // (shared_info, vcpu_info, frames typed for the purpose).
    unsafe { core::ptr::copy_nonoverlapping(buf.as_ptr(), directmap_va(pa) as *mut u8, buf.len()) };
    true
}

/// Fills machine frame `mfn` with zeros (RAM in the direct map; the caller checked the
/// hypervisor may write it). Returns false for a frame outside RAM.
pub fn zero_machine_frame(mfn: Mfn) -> bool {
    if !in_directmap(mfn.paddr(), PAGE_BYTES as u64) {
        return false;
    }
    // SAFETY: a whole RAM frame inside the direct map, which the caller may write.
    unsafe { core::ptr::write_bytes(directmap_va(mfn.paddr()) as *mut u8, 0, PAGE_BYTES) };
    true
}

/// Copies machine frame `src` over `dst` (both RAM in the direct map; the caller checked it
/// may read one and write the other). Returns false for a frame outside RAM.
pub fn copy_machine_frame(src: Mfn, dst: Mfn) -> bool {
    if !in_directmap(src.paddr(), PAGE_BYTES as u64)
        || !in_directmap(dst.paddr(), PAGE_BYTES as u64)
    {
        return false;
    }
    if src == dst {
        return true;
    }
    // SAFETY: two distinct whole RAM frames inside the direct map, so they do not overlap;
    // the caller may read `src` and write `dst`.
    unsafe {
        core::ptr::copy_nonoverlapping(
            directmap_va(src.paddr()) as *const u8,
            directmap_va(dst.paddr()) as *mut u8,
            PAGE_BYTES,
        );
    }
    true
}

/// An atomic operation on bit `bit` (< 64) of the 8-byte-aligned little-endian word at
/// machine address `word` (guest-shared memory the guest changes concurrently: event bitmaps).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BitOp {
    /// `lock bts`: set, returning the old value.
    TestAndSet,
    /// `lock btr`: clear, returning the old value.
    TestAndClear,
    /// A plain read of the bit.
    Test,
}

/// Runs `op` on bit `bit` of the word at `word`; `None` if the word is not RAM in the direct
/// map, misaligned, or `bit` is out of range.
pub fn machine_bit(word: Paddr, bit: u32, op: BitOp) -> Option<bool> {
    if bit >= 64 || !word.0.is_multiple_of(8) || !in_directmap(word, 8) {
        return None;
    }
    let p = directmap_va(word) as *mut u64;
    let bit = u64::from(bit);
    let old: u8;
    // SAFETY: `p` is an aligned quadword of RAM in the direct map (checked above); the locked
    // bit instructions are atomic against the guest's own accesses to the same word.
    unsafe {
        match op {
            BitOp::TestAndSet => core::arch::asm!(
                "lock bts qword ptr [{p}], {bit}", "setc {old}",
                p = in(reg) p, bit = in(reg) bit, old = out(reg_byte) old, options(nostack)
            ),
            BitOp::TestAndClear => core::arch::asm!(
                "lock btr qword ptr [{p}], {bit}", "setc {old}",
                p = in(reg) p, bit = in(reg) bit, old = out(reg_byte) old, options(nostack)
            ),
            BitOp::Test => core::arch::asm!(
                "bt qword ptr [{p}], {bit}", "setc {old}",
                p = in(reg) p, bit = in(reg) bit, old = out(reg_byte) old,
                options(nostack, readonly)
            ),
        }
    }
    Some(old != 0)
}

/// A module's bytes (boot-loader memory, reserved from the allocator and never written).
pub fn module_bytes(start: Paddr, len: u64) -> Option<&'static [u8]> {
    if !in_directmap(start, len) {
        return None;
    }
    let len = usize::try_from(len).ok()?;
    // SAFETY: boot modules are RAM inside the direct map that the allocator never hands out
    // (they are reserved at boot) and nothing writes until `release_boot_range` gives them
    // back, which the caller does only after it stopped using the slice.
    Some(unsafe { core::slice::from_raw_parts(directmap_va(start) as *const u8, len) })
}

/// Gives boot-time memory (a module no longer needed) back to the allocator.
pub fn release_boot_range(start: Paddr, end: Paddr) -> u64 {
    let first = start.page_up().map_or(u64::MAX, |p| p.frame().0);
    let last = end.page_down().frame().0;
    let mut n = 0;
    for m in first..last {
        let mut t = FRAME_TABLE.lock();
        let Some(t) = t.as_mut() else { break };
        if t.info(Mfn(m)).is_ok_and(|f| f.owner == Owner::Xen)
            && t.set_free(Mfn(m)).is_ok()
            && let Some(a) = FRAMES.lock().as_mut()
            && a.add_free_range(Mfn(m), 1).is_ok()
        {
            n += 1;
        }
    }
    n
}
