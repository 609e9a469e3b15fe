//! The GDT (with Xen's reserved selectors), the TSS and the IST stacks.
//!
//! A PV guest uses Xen's flat selectors without installing a GDT, and later installs its own
//! GDT frames in pages 0–13 of the 16-page GDT; pages 14–15 belong to the hypervisor. Oxen's
//! GDT therefore has the same shape from the start: 8192 entries, the hypervisor's and the
//! flat ring-3 descriptors at entries 7168 and up (selectors 0xe0xx), exactly where Xen puts
//! them, so `syscall`/`sysret` and the guest ABI line up.

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
/// The per-CPU marker (limit = CPU number).
pub const PERCPU_SEL: u16 = 0xe060;

/// Entries in the full GDT (16 pages).
const GDT_ENTRIES: usize = 8192;
/// The GDTR limit covering all of them.
const GDT_LIMIT: u16 = 0xffff;
/// Size of the TSS (no I/O bitmap).
const TSS_BYTES: u16 = 104;
const _: () = assert!(core::mem::size_of::<TaskStateSegment>() == TSS_BYTES as usize);
const _: () = assert!(GDT_ENTRIES * 8 - 1 == GDT_LIMIT as usize);

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

static GDT: HwCell<[u64; GDT_ENTRIES]> = HwCell(UnsafeCell::new([0; GDT_ENTRIES]));
static TSS: HwCell<TaskStateSegment> = HwCell(UnsafeCell::new(TaskStateSegment::new()));
static IST_STACKS: HwCell<[[u8; IST_BYTES]; 3]> = HwCell(UnsafeCell::new([[0; IST_BYTES]; 3]));

/// The GDT entry index of a selector.
const fn index(sel: u16) -> usize {
    (sel >> 3) as usize
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
    let gdt = GDT.0.get();
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
        base: gdt as u64,
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
