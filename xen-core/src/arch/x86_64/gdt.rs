//! The GDT (with Xen's reserved selectors), the TSS and the IST stacks.
//!
//! A PV guest uses Xen's flat selectors without installing a GDT, and may install its own GDT
//! frames as pages 0–13 of the 16-page GDT; pages 14–15 belong to the hypervisor. Oxen's GDT
//! has that shape: the hypervisor's and the flat ring-3 descriptors sit in the *reserved page*
//! (page 14), at entries 7168 and up (selectors 0xe0xx), exactly where Xen puts them, so
//! `syscall`/`sysret` and the guest ABI line up.
//!
//! During early boot the GDTR base is the reserved page minus 56 KiB (the entries below are
//! never used then). Once memory management is up, the CPU gets a 16-page GDT area in the
//! per-domain slot: pages 0–13 show the running vCPU's GDT frames (or a zero page), page 14 is
//! the CPU's reserved page, page 15 a zero page; switching GDTs is remapping, not `lgdt`.

use core::cell::UnsafeCell;
use x86_64::structures::tss::TaskStateSegment;

/// Hypervisor 64-bit code selector.
pub const HYPERVISOR_CS: u16 = 0xe008;
/// Hypervisor data/stack selector.
pub const HYPERVISOR_DS: u16 = 0xe010;
/// Ring-3 32-bit code (`FLAT_RING3_CS32`).
pub const RING3_CS32: u16 = 0xe023;
/// Ring-3 data/stack (`FLAT_RING3_SS64`, the guest kernel's SS).
pub const RING3_DS: u16 = 0xe02b;
/// Ring-3 64-bit code (`FLAT_RING3_CS64`, the guest kernel's CS).
pub const RING3_CS64: u16 = 0xe033;
/// The TSS.
pub const TSS_SEL: u16 = 0xe040;
/// The guest's LDT (a 16-byte system descriptor, rewritten whenever the LDT changes).
pub const LDT_SEL: u16 = 0xe050;
/// The per-CPU marker (limit = CPU number).
pub const PERCPU_SEL: u16 = 0xe060;

/// The GDTR limit covering all 16 pages (8192 entries).
const GDT_LIMIT: u16 = 0xffff;
/// Byte offset of the reserved page in the GDT.
const RESERVED_PAGE_OFFSET: u64 = 14 * 4096;
/// Entry index of the first reserved descriptor.
const FIRST_RESERVED: usize = 7168;
/// Size of the TSS (no I/O bitmap).
const TSS_BYTES: u16 = 104;
const _: () = assert!(core::mem::size_of::<TaskStateSegment>() == TSS_BYTES as usize);

/// IST index (1-based, as in the IDT) of the double-fault stack.
pub const IST_DOUBLE_FAULT: u8 = 1;
/// IST index of the NMI stack.
pub const IST_NMI: u8 = 2;
/// IST index of the machine-check stack.
pub const IST_MACHINE_CHECK: u8 = 3;

/// Pages per IST stack, including the unmapped guard page at the bottom.
const IST_PAGES: usize = 5;
const IST_BYTES: usize = IST_PAGES * 4096;

/// Memory the CPU reads (and writes: accessed and busy bits) behind Rust's back.
#[repr(C, align(4096))]
struct HwCell<T>(UnsafeCell<T>);

// SAFETY: each instance is written only by the boot CPU during `init_boot_cpu`, before any
// other code can observe it; afterwards only the CPU itself touches it.
unsafe impl<T> Sync for HwCell<T> {}

static GDT_RESERVED: HwCell<[u64; 512]> = HwCell(UnsafeCell::new([0; 512]));
static TSS: HwCell<TaskStateSegment> = HwCell(UnsafeCell::new(TaskStateSegment::new()));
static IST_STACKS: HwCell<[[u8; IST_BYTES]; 3]> = HwCell(UnsafeCell::new([[0; IST_BYTES]; 3]));

/// The reserved-page index of a reserved selector.
const fn index(sel: u16) -> usize {
    (sel >> 3) as usize - FIRST_RESERVED
}

/// The 16-byte TSS descriptor for a TSS at `base` with limit `limit`.
fn tss_descriptor(base: u64, limit: u32) -> (u64, u64) {
    let low = u64::from(limit & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (0x89 << 40) // present, DPL 0, type 9: available 64-bit TSS
        | (u64::from((limit >> 16) & 0xf) << 48)
        | (((base >> 24) & 0xff) << 56);
    (low, base >> 32)
}

/// Addresses of the guard pages under the IST stacks (left unmapped by the final tables).
pub fn ist_guard_pages() -> [u64; 3] {
    let base = IST_STACKS.0.get() as u64;
    [base, base + IST_BYTES as u64, base + 2 * IST_BYTES as u64]
}

/// Bounds `[bottom, top)` of the usable part of each IST stack.
pub fn ist_stacks() -> [(u64, u64); 3] {
    let g = ist_guard_pages();
    g.map(|b| (b + 4096, b + IST_BYTES as u64))
}

/// Builds and loads the boot CPU's GDT and TSS, reloads the segment registers.
pub fn init_boot_cpu() {
    let gdt = GDT_RESERVED.0.get();
    let tss = TSS.0.get();
    let stacks = ist_stacks();
    // SAFETY: single-threaded early boot; nothing else references the GDT or TSS yet.
    unsafe {
        let t = &mut *tss;
        t.interrupt_stack_table[usize::from(IST_DOUBLE_FAULT - 1)] =
            x86_64::VirtAddr::new(stacks[0].1);
        t.interrupt_stack_table[usize::from(IST_NMI - 1)] = x86_64::VirtAddr::new(stacks[1].1);
        t.interrupt_stack_table[usize::from(IST_MACHINE_CHECK - 1)] =
            x86_64::VirtAddr::new(stacks[2].1);
        t.privilege_stack_table[0] = x86_64::VirtAddr::new(super::percpu::boot_stack().1);
        // No I/O bitmap: the offset points past the limit.
        t.iomap_base = TSS_BYTES;

        let g = &mut *gdt;
        g[index(HYPERVISOR_CS)] = 0x00af_9b00_0000_ffff;
        g[index(HYPERVISOR_DS)] = 0x00cf_9300_0000_ffff;
        g[index(RING3_CS32)] = 0x00cf_fb00_0000_ffff;
        g[index(RING3_DS)] = 0x00cf_f300_0000_ffff;
        g[index(RING3_CS64)] = 0x00af_fb00_0000_ffff;
        let (lo, hi) = tss_descriptor(tss as u64, u32::from(TSS_BYTES) - 1);
        g[index(TSS_SEL)] = lo;
        g[index(TSS_SEL) + 1] = hi;
        // Per-CPU marker: a DPL-3 data segment whose limit is the CPU number (0 here).
        g[index(PERCPU_SEL)] = 0x0000_f300_0000_0000;
    }

    #[repr(C, packed)]
    struct Gdtr {
        limit: u16,
        base: u64,
    }
    let gdtr = Gdtr {
        limit: GDT_LIMIT,
        base: gdt as u64 - RESERVED_PAGE_OFFSET,
    };
    // SAFETY: the GDT is fully built and static; the code selector reloaded by the far return
    // and the data selectors exist in it with the right types; the TSS descriptor is valid and
    // not busy.
    unsafe {
        core::arch::asm!(
            "lgdt ({gdtr})",
            "pushq ${cs}",
            "leaq 2f(%rip), {tmp}",
            "pushq {tmp}",
            "lretq",
            "2:",
            "movl ${ds}, {tmp:e}",
            "movl {tmp:e}, %ss",
            "xorl {tmp:e}, {tmp:e}",
            "movl {tmp:e}, %ds",
            "movl {tmp:e}, %es",
            "movw ${tss}, {tmp:x}",
            "ltr {tmp:x}",
            gdtr = in(reg) &raw const gdtr,
            tmp = out(reg) _,
            cs = const HYPERVISOR_CS,
            ds = const HYPERVISOR_DS,
            tss = const TSS_SEL,
            options(att_syntax)
        );
    }
}

/// Where this CPU's GDT area starts (16 GDT pages, then 16 pages for the LDT shadow).
fn area(cpu: u64) -> u64 {
    crate::layout::PERDOMAIN_VIRT_START + cpu * 0x20000
}

/// First page of the LDT shadow within the area.
const LDT_FIRST_PAGE: u64 = 16;
/// Pages of the LDT shadow (8192 descriptors).
pub const LDT_PAGES: usize = 16;

/// A frame of zeros, mapped read-only wherever the GDT has no guest page.
static ZERO_FRAME: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

const GDT_PAGE_FLAGS: u64 =
    super::mm::pte::RW | super::mm::pte::NX | super::mm::pte::A | super::mm::pte::D;
const ZERO_PAGE_FLAGS: u64 = super::mm::pte::NX | super::mm::pte::A;

/// Moves this CPU's GDT into its area in the per-domain slot (after memory setup). The LDT
/// shadow pages start out not present: a guest's LDT page is mapped when the CPU first
/// touches it (see [`map_ldt_page`]).
pub fn init_area() -> Result<(), super::mm::MapError> {
    use crate::types::Paddr;
    let zero = super::mm::alloc_xen_frame().ok_or(super::mm::MapError::NoMemory)?;
    ZERO_FRAME.store(zero.paddr().0, core::sync::atomic::Ordering::Relaxed);
    let base = area(0);
    let reserved = GDT_RESERVED.0.get() as u64 - crate::layout::IMAGE_VIRT_OFFSET;
    for page in 0..16u64 {
        let (pa, flags) = if page == 14 {
            (Paddr(reserved), GDT_PAGE_FLAGS)
        } else {
            (zero.paddr(), ZERO_PAGE_FLAGS)
        };
        super::mm::map_4k(base + page * 4096, pa, flags)?;
    }
    #[repr(C, packed)]
    struct Gdtr {
        limit: u16,
        base: u64,
    }
    let gdtr = Gdtr {
        limit: GDT_LIMIT,
        base,
    };
    // SAFETY: the area shows the same reserved page (same descriptors, the TSS already
    // loaded) at page 14 and zero pages elsewhere, so every loaded selector stays valid.
    unsafe { core::arch::asm!("lgdt ({})", in(reg) &raw const gdtr, options(att_syntax, nostack)) };
    Ok(())
}

/// Shows `frames` (a vCPU's GDT frames, at most 14) as pages 0–13 of this CPU's GDT; the
/// others show zeros.
pub fn load_guest_frames(frames: &[crate::types::Mfn]) -> Result<(), super::mm::MapError> {
    let zero = crate::types::Paddr(ZERO_FRAME.load(core::sync::atomic::Ordering::Relaxed));
    let base = area(0);
    for page in 0..14u64 {
        let va = base + page * 4096;
        match usize::try_from(page).ok().and_then(|p| frames.get(p)) {
            Some(m) => super::mm::remap_4k(va, m.paddr(), GDT_PAGE_FLAGS)?,
            None => super::mm::remap_4k(va, zero, ZERO_PAGE_FLAGS)?,
        }
    }
    Ok(())
}

/// Where this CPU's LDT shadow starts: the linear base of the LDT descriptor.
pub fn ldt_area() -> u64 {
    area(0) + LDT_FIRST_PAGE * 4096
}

/// Shows the guest frame `mfn` (a validated descriptor page) as page `page` of this CPU's LDT
/// shadow, or (`None`) makes that page not present again.
pub fn map_ldt_page(
    page: usize,
    mfn: Option<crate::types::Mfn>,
) -> Result<(), super::mm::MapError> {
    if page >= LDT_PAGES {
        return Err(super::mm::MapError::Unavailable);
    }
    let va = ldt_area() + page as u64 * 4096;
    match mfn {
        Some(m) => super::mm::remap_4k(va, m.paddr(), GDT_PAGE_FLAGS),
        None => super::mm::unmap_4k(va),
    }
}

/// Loads an LDT of `entries` descriptors (0: no LDT) based at this CPU's shadow.
pub fn load_ldt(entries: u32) {
    if entries == 0 {
        // SAFETY: a null LDT selector is always valid; no loaded selector refers to the LDT
        // from hypervisor code.
        unsafe { core::arch::asm!("lldt {0:x}", in(reg) 0u16, options(nostack, preserves_flags)) };
        return;
    }
    let limit = entries.min(8192) * 8 - 1;
    let base = ldt_area();
    let low = u64::from(limit & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (0x82 << 40) // present, DPL 0, type 2: LDT
        | (u64::from((limit >> 16) & 0xf) << 48)
        | (((base >> 24) & 0xff) << 56);
    let g = GDT_RESERVED.0.get();
    // SAFETY: only this CPU uses its reserved GDT page; the LDT entries are not in use by a
    // loaded selector while they are rewritten (LDTR is reloaded right after).
    unsafe {
        (*g)[index(LDT_SEL)] = low;
        (*g)[index(LDT_SEL) + 1] = base >> 32;
        core::arch::asm!("lldt {0:x}", in(reg) LDT_SEL, options(nostack, preserves_flags));
    }
}
