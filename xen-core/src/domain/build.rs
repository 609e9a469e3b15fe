//! Building a PV domain's initial memory image the way Xen's dom0 builder does: allocate its
//! pages, load the kernel by physical address, lay out initrd, P2M list, start_info, bootstrap
//! page tables and stack (reference §4.4), write the hypercall page, fill in start_info, and pin
//! the page tables through the frame table so every frame carries its owner and type from the
//! start.
//!
//! Portable: machine memory is reached through [`BuildMem`], frames come from a caller-supplied
//! allocator, so the whole builder is tested on the host.

use super::image::{ImageError, ImagePlan, KernelImage};
use super::layout::{Layout, LayoutError};
use crate::arch::pod;
use crate::mm::frame_table::{FrameTable, MmError};
use crate::mm::pagetable::{MmEnv, PtContext};
use crate::types::{DomId, Mfn, PAGE_BYTES, PAGE_SIZE, Pfn};
use alloc::vec::Vec;
use hypercall_abi::mm::{_PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_PRESENT, _PAGE_RW, _PAGE_USER};
use hypercall_abi::start_info::{SIF_INITDOMAIN, SIF_PRIVILEGED, StartInfo, StartInfoConsole};

/// Machine memory as the builder needs it, on top of page-table entry access.
pub trait BuildMem: MmEnv {
    /// Writes `bytes` into frame `mfn` at byte `offset` (within the frame).
    fn write_bytes(&mut self, mfn: Mfn, offset: usize, bytes: &[u8]);
    /// Fills frame `mfn` with zeros.
    fn zero_frame(&mut self, mfn: Mfn);
    /// Records `m2p[mfn] = pfn` in the machine-to-phys table.
    fn set_m2p(&mut self, mfn: Mfn, pfn: Pfn);
}

/// What to build.
#[derive(Debug)]
pub struct BuildSpec<'a> {
    /// The domain.
    pub dom: DomId,
    /// Whether it is the initial, privileged domain (dom0 rules and start_info flags).
    pub dom0: bool,
    /// The kernel ELF image.
    pub kernel: &'a [u8],
    /// The initrd, if any.
    pub initrd: Option<&'a [u8]>,
    /// The kernel command line.
    pub cmdline: &'a str,
    /// Pages of memory the domain gets.
    pub nr_pages: u64,
    /// Page-table rights (and the hypervisor's L4 slots).
    pub pt: PtContext,
}

/// Why a domain could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// The kernel image is not acceptable.
    Image(ImageError),
    /// It does not fit in the domain's memory.
    Layout(LayoutError),
    /// Not enough free memory for the domain.
    NoMemory {
        /// Pages asked for.
        wanted: u64,
        /// Pages obtained before running out.
        got: u64,
    },
    /// The bootstrap page tables did not validate (a builder bug).
    PageTables(MmError),
}

impl core::fmt::Display for BuildError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BuildError::Image(e) => write!(f, "kernel image refused: {e}"),
            BuildError::Layout(e) => write!(f, "kernel does not fit: {e}"),
            BuildError::NoMemory { wanted, got } => {
                write!(f, "out of memory: {got} of {wanted} pages available")
            }
            BuildError::PageTables(e) => write!(f, "bootstrap page tables invalid: {e:?}"),
        }
    }
}

/// A built domain: what the hypervisor needs to start its first vCPU.
#[derive(Clone, Debug)]
pub struct Built {
    /// Where everything is.
    pub layout: Layout,
    /// The kernel's plan (entry, features, ...).
    pub plan: ImagePlan,
    /// The domain's frames, by pseudo-physical frame number.
    pub p2m: Vec<Mfn>,
    /// The pinned bootstrap L4.
    pub l4: Mfn,
    /// The shared_info frame.
    pub shared_info: Mfn,
    /// `rip` at entry.
    pub entry: u64,
    /// `rsp` at entry (end of the bootstrap stack).
    pub stack_top: u64,
    /// `rsi` at entry (start_info's virtual address).
    pub start_info_va: u64,
}

/// Entry flags for L2–L4 bootstrap entries.
const UPPER_FLAGS: u64 = _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY | _PAGE_USER;
/// Entry flags for L1 entries of ordinary kernel pages (validation marks them guest-kernel).
const L1_FLAGS: u64 = _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY;

/// Gives back every frame of a half-built domain.
fn undo(table: &mut FrameTable<'_>, mem: &mut impl BuildMem, frames: &[Mfn]) {
    for &m in frames {
        if table.release_allocation(m) {
            mem.freed(m);
        }
    }
}

/// Writes `bytes` at virtual address `va` of the initial mapping.
fn write_va(mem: &mut impl BuildMem, layout: &Layout, p2m: &[Mfn], va: u64, mut bytes: &[u8]) {
    let mut va = va;
    while !bytes.is_empty() {
        let Some(mfn) = layout
            .pfn_of(va)
            .and_then(|p| usize::try_from(p.0).ok())
            .and_then(|i| p2m.get(i))
        else {
            return;
        };
        let off = (va % PAGE_SIZE) as usize;
        let n = bytes.len().min(PAGE_BYTES - off);
        mem.write_bytes(*mfn, off, &bytes[..n]);
        bytes = &bytes[n..];
        va += n as u64;
    }
}

/// Builds a domain in `table`'s memory. Frames come from `alloc`; on failure everything taken
/// is given back.
pub fn build(
    table: &mut FrameTable<'_>,
    mem: &mut impl BuildMem,
    alloc: &mut dyn FnMut() -> Option<Mfn>,
    spec: &BuildSpec<'_>,
) -> Result<Built, BuildError> {
    let image = KernelImage::parse(spec.kernel).map_err(BuildError::Image)?;
    let plan = image.plan(spec.dom0).map_err(BuildError::Image)?;
    let initrd_len = spec.initrd.map_or(0, |i| i.len() as u64);
    let layout = Layout::compute(
        plan.virt_base,
        plan.virt_kstart,
        plan.virt_kend,
        initrd_len,
        spec.nr_pages,
    )
    .map_err(BuildError::Layout)?;

    // Memory: nr_pages frames in pseudo-physical order, plus the shared_info frame.
    let mut p2m = Vec::new();
    p2m.try_reserve_exact(usize::try_from(spec.nr_pages).unwrap_or(usize::MAX))
        .map_err(|_| BuildError::NoMemory {
            wanted: spec.nr_pages,
            got: 0,
        })?;
    let mut take = |table: &mut FrameTable<'_>, taken: &mut Vec<Mfn>| -> Option<Mfn> {
        let m = alloc()?;
        if table.assign(m, spec.dom).is_err() {
            // The allocator and the frame table disagree: do not use the frame.
            return None;
        }
        mem.zero_frame(m);
        taken.push(m);
        Some(m)
    };
    for _ in 0..spec.nr_pages {
        if take(table, &mut p2m).is_none() {
            let got = p2m.len() as u64;
            undo(table, mem, &p2m);
            return Err(BuildError::NoMemory {
                wanted: spec.nr_pages,
                got,
            });
        }
    }
    let mut si_vec = Vec::new();
    let Some(shared_info) = take(table, &mut si_vec) else {
        undo(table, mem, &p2m);
        return Err(BuildError::NoMemory {
            wanted: spec.nr_pages + 1,
            got: spec.nr_pages,
        });
    };
    for (pfn, mfn) in p2m.iter().enumerate() {
        mem.set_m2p(*mfn, Pfn(pfn as u64));
    }

    // Kernel segments by physical address, zero-filled to their memory size (the frames are
    // already zero), then the initrd and the P2M list.
    for seg in &image.segments {
        let off = usize::try_from(seg.offset).unwrap_or(usize::MAX);
        let len = usize::try_from(seg.filesz).unwrap_or(usize::MAX);
        if let Some(bytes) = spec.kernel.get(off..off.saturating_add(len)) {
            write_va(
                mem,
                &layout,
                &p2m,
                seg.paddr.wrapping_add(plan.virt_offset),
                bytes,
            );
        }
    }
    if let Some(initrd) = spec.initrd {
        write_va(mem, &layout, &p2m, layout.initrd.0, initrd);
    }
    let mut chunk = Vec::with_capacity(512 * 8);
    for (i, mfns) in p2m.chunks(512).enumerate() {
        chunk.clear();
        for m in mfns {
            chunk.extend_from_slice(&m.0.to_le_bytes());
        }
        write_va(
            mem,
            &layout,
            &p2m,
            layout.p2m.0 + (i as u64) * PAGE_SIZE,
            &chunk,
        );
    }

    // Bootstrap page tables: L4 first, then tables as the walk needs them; page-table frames
    // are mapped read-only.
    let mfn_of = |va: u64| {
        layout
            .pfn_of(va)
            .and_then(|p| usize::try_from(p.0).ok())
            .and_then(|i| p2m.get(i))
            .copied()
    };
    let pt_mfns: Vec<Mfn> = (layout.page_tables.0..layout.page_tables.1)
        .step_by(PAGE_BYTES)
        .filter_map(mfn_of)
        .collect();
    let Some(&l4) = pt_mfns.first() else {
        undo(table, mem, &p2m);
        undo(table, mem, &si_vec);
        return Err(BuildError::PageTables(MmError::BadState(Mfn(0))));
    };
    let mut next_pt = 1usize;
    // The table currently used at each level (index 1..=3) and the VA range it covers.
    let mut current: [Option<(Mfn, u64)>; 4] = [None; 4];
    let mut va = layout.v_start;
    while va < layout.v_end {
        let mut parent = l4;
        for level in (1..=3u8).rev() {
            let shift = 12 + 9 * u32::from(level);
            let region = va >> shift;
            let slot = usize::from(level);
            let t = match current[slot] {
                Some((m, r)) if r == region => m,
                _ => {
                    let Some(&m) = pt_mfns.get(next_pt) else {
                        undo(table, mem, &p2m);
                        undo(table, mem, &si_vec);
                        return Err(BuildError::PageTables(MmError::BadState(Mfn(0))));
                    };
                    next_pt += 1;
                    let idx = ((va >> shift) & 511) as usize;
                    mem.write(parent, idx, m.paddr().0 | UPPER_FLAGS);
                    current[slot] = Some((m, region));
                    m
                }
            };
            parent = t;
        }
        let in_pt = va >= layout.page_tables.0 && va < layout.page_tables.1;
        let flags = if in_pt {
            L1_FLAGS & !_PAGE_RW & !_PAGE_DIRTY
        } else {
            L1_FLAGS
        };
        if let Some(m) = mfn_of(va) {
            mem.write(parent, ((va >> 12) & 511) as usize, m.paddr().0 | flags);
        }
        va += PAGE_SIZE;
    }
    if let Err(e) = table.pin(mem, &spec.pt, l4, 4) {
        undo(table, mem, &p2m);
        undo(table, mem, &si_vec);
        return Err(BuildError::PageTables(e));
    }

    // The hypercall page.
    if let Some(hp) = plan.hypercall_page {
        let mut page = [0u8; 4096];
        hypercall_abi::hypercall::render_hypercall_page(&mut page);
        write_va(mem, &layout, &p2m, hp, &page);
    }

    // start_info.
    let mut si = StartInfo::new_x86_64();
    si.nr_pages = spec.nr_pages;
    si.shared_info = shared_info.paddr().0;
    // dom0 also gets the power-management bits Xen sets by default (C- and P-states
    // handled by dom0: `xen_processor_pmbits` 3).
    si.flags = if spec.dom0 {
        SIF_PRIVILEGED | SIF_INITDOMAIN | (3 << 8)
    } else {
        0
    };
    si.console = StartInfoConsole::dom0(0, 0);
    si.pt_base = layout.page_tables.0;
    si.nr_pt_frames = layout.nr_pt_frames;
    si.mfn_list = layout.p2m.0;
    if spec.dom0 {
        // Xen reports the first frame after the initial mapping (no separate P2M frames).
        si.first_p2m_pfn = layout.mapped_pages();
    }
    if initrd_len > 0 {
        si.mod_start = layout.initrd.0;
        si.mod_len = initrd_len;
    }
    let cmdline = spec.cmdline.as_bytes();
    let cut = cmdline.len().min(si.cmd_line.len() - 1);
    let _ = si.set_cmd_line(&cmdline[..cut]);
    write_va(mem, &layout, &p2m, layout.start_info, pod::bytes_of(&si));

    // shared_info: every vCPU's events masked.
    let shared = hypercall_abi::shared_info::SharedInfo::initial();
    mem.write_bytes(shared_info, 0, pod::bytes_of(&shared));

    Ok(Built {
        layout,
        plan,
        p2m,
        l4,
        shared_info,
        entry: plan.entry,
        stack_top: layout.stack.1,
        start_info_va: layout.start_info,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::image::tests::ElfBuilder;
    use crate::mm::audit;
    use crate::mm::frame_table::{FrameInfo, Owner, PageType};
    use crate::mm::pagetable::tests::FakeEnv;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Mem {
        env: FakeEnv,
        m2p: HashMap<u64, u64>,
    }

    impl MmEnv for Mem {
        fn read(&self, mfn: Mfn, index: usize) -> u64 {
            self.env.read(mfn, index)
        }
        fn write(&mut self, mfn: Mfn, index: usize, val: u64) {
            self.env.write(mfn, index, val)
        }
        fn freed(&mut self, mfn: Mfn) {
            self.env.freed(mfn)
        }
    }

    impl BuildMem for Mem {
        fn write_bytes(&mut self, mfn: Mfn, offset: usize, bytes: &[u8]) {
            for (i, b) in bytes.iter().enumerate() {
                let at = offset + i;
                let word = self.env.read(mfn, at / 8);
                let shift = (at % 8) * 8;
                let w = (word & !(0xff << shift)) | (u64::from(*b) << shift);
                self.env.write(mfn, at / 8, w);
            }
        }
        fn zero_frame(&mut self, mfn: Mfn) {
            self.env.frames.insert(mfn.0, Box::new([0; 512]));
        }
        fn set_m2p(&mut self, mfn: Mfn, pfn: Pfn) {
            self.m2p.insert(mfn.0, pfn.0);
        }
    }

    impl Mem {
        fn byte(&self, mfn: Mfn, at: usize) -> u8 {
            (self.env.read(mfn, at / 8) >> ((at % 8) * 8)) as u8
        }
        fn bytes(&self, mfn: Mfn, at: usize, n: usize) -> Vec<u8> {
            (at..at + n).map(|i| self.byte(mfn, i)).collect()
        }
    }

    fn spec(kernel: &[u8], nr_pages: u64) -> BuildSpec<'_> {
        BuildSpec {
            dom: DomId(0),
            dom0: true,
            kernel,
            initrd: None,
            cmdline: "console=hvc0 test",
            nr_pages,
            pt: PtContext {
                dom: DomId(0),
                privileged: true,
                io: true,
                io_limit: 1 << 28,
                xen_l4: [0x5003; 16],
            },
        }
    }

    /// Frames 100..100+n are free, handed out in a scrambled order to show P2M mapping works.
    fn allocator(n: u64) -> impl FnMut() -> Option<Mfn> {
        let mut free: Vec<u64> = (100..100 + n).collect();
        free.reverse();
        move || free.pop().map(Mfn)
    }

    #[test]
    fn builds_a_dom0_like_xen() {
        let kernel = ElfBuilder::pv_kernel().build();
        let mut storage = vec![FrameInfo::FREE; 4096];
        let mut t = FrameTable::new(&mut storage);
        let mut mem = Mem::default();
        let b = build(&mut t, &mut mem, &mut allocator(3000), &spec(&kernel, 2048)).unwrap();
        let base = 0xffff_ffff_8000_0000u64;
        assert_eq!(b.entry, base + 0x10);
        assert_eq!(b.layout.v_start, base);
        assert_eq!(b.p2m.len(), 2048);
        assert_eq!(b.p2m[0], Mfn(100));
        assert_eq!(mem.m2p[&105], 5);
        // The kernel's bytes landed at pseudo-physical 0 (p_paddr 0).
        assert_eq!(mem.byte(b.p2m[0], 0), 0x90);
        assert_eq!(mem.byte(b.p2m[2], 0x100), 0, "bss is zero");
        // The hypercall page: stub 0 starts with push %rcx.
        assert_eq!(mem.bytes(b.p2m[1], 0, 3), vec![0x51, 0x41, 0x53]);
        // start_info: magic, flags, pt_base, mfn_list, command line.
        let si_mfn = b.p2m[b.layout.pfn_of(b.start_info_va).unwrap().0 as usize];
        assert_eq!(mem.bytes(si_mfn, 0, 14), b"xen-3.0-x86_64".to_vec());
        let si: StartInfo =
            pod::read(&mem.bytes(si_mfn, 0, core::mem::size_of::<StartInfo>())).unwrap();
        assert_eq!(si.nr_pages, 2048);
        assert_eq!(si.flags, SIF_PRIVILEGED | SIF_INITDOMAIN | 0x300);
        assert_eq!(si.first_p2m_pfn, 1024);
        assert_eq!(si.pt_base, b.layout.page_tables.0);
        assert_eq!(si.mfn_list, b.layout.p2m.0);
        assert_eq!(si.shared_info, b.shared_info.paddr().0);
        assert_eq!(si.cmd_line_bytes(), b"console=hvc0 test");
        // The P2M list in guest memory.
        let p2m_mfn = b.p2m[b.layout.pfn_of(b.layout.p2m.0).unwrap().0 as usize];
        assert_eq!(mem.bytes(p2m_mfn, 8, 8), 101u64.to_le_bytes().to_vec());
        // Page tables: L4 pinned, the tree typed, page-table frames mapped read-only.
        assert_eq!(
            b.l4,
            b.p2m[b.layout.pfn_of(b.layout.page_tables.0).unwrap().0 as usize]
        );
        let l4 = t.info(b.l4).unwrap();
        assert_eq!((l4.ty, l4.pinned), (PageType::L4, true));
        for va in (b.layout.page_tables.0..b.layout.page_tables.1).step_by(4096) {
            let m = b.p2m[b.layout.pfn_of(va).unwrap().0 as usize];
            assert!(
                t.info(m).unwrap().ty.level().is_some(),
                "{va:#x} is a page table"
            );
        }
        assert_eq!(t.info(b.p2m[0]).unwrap().ty, PageType::Writable);
        // Frames beyond the initial mapping are owned but unmapped.
        let last = t.info(b.p2m[2047]).unwrap();
        assert_eq!(
            (last.owner, last.count, last.type_count),
            (Owner::Dom(DomId(0)), 1, 0)
        );
        audit::audit(&t, &mem, &|_| (0, 0)).unwrap();
    }

    #[test]
    fn initrd_and_command_line_limits() {
        let kernel = ElfBuilder::pv_kernel().build();
        let initrd: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let long = "x".repeat(5000);
        let mut s = spec(&kernel, 2048);
        s.initrd = Some(&initrd);
        s.cmdline = &long;
        let mut storage = vec![FrameInfo::FREE; 4096];
        let mut t = FrameTable::new(&mut storage);
        let mut mem = Mem::default();
        let b = build(&mut t, &mut mem, &mut allocator(3000), &s).unwrap();
        assert_eq!(b.layout.initrd.1 - b.layout.initrd.0, 10_000);
        let pfn = b.layout.pfn_of(b.layout.initrd.0).unwrap().0 as usize;
        // Byte 4096 + k of the initrd is (4096 + k) as u8 = k.
        assert_eq!(mem.bytes(b.p2m[pfn + 1], 0, 4), [0, 1, 2, 3]);
        let si_mfn = b.p2m[b.layout.pfn_of(b.start_info_va).unwrap().0 as usize];
        let si: StartInfo =
            pod::read(&mem.bytes(si_mfn, 0, core::mem::size_of::<StartInfo>())).unwrap();
        assert_eq!(si.mod_len, 10_000);
        assert_eq!(si.cmd_line_bytes().len(), 1023);
    }

    #[test]
    fn failures_give_every_frame_back() {
        let kernel = ElfBuilder::pv_kernel().build();
        // Not enough memory.
        let mut storage = vec![FrameInfo::FREE; 4096];
        let mut t = FrameTable::new(&mut storage);
        let mut mem = Mem::default();
        assert_eq!(
            build(&mut t, &mut mem, &mut allocator(500), &spec(&kernel, 2048)).unwrap_err(),
            BuildError::NoMemory {
                wanted: 2048,
                got: 500
            }
        );
        assert_eq!(mem.env.freed.len(), 500);
        assert!(t.iter().all(|(_, f)| f.owner == Owner::Free));
        // A domain too small for its own initial mapping.
        let mut storage = vec![FrameInfo::FREE; 4096];
        let mut t = FrameTable::new(&mut storage);
        assert!(matches!(
            build(&mut t, &mut mem, &mut allocator(3000), &spec(&kernel, 64)),
            Err(BuildError::Layout(_))
        ));
        // A hostile image.
        assert!(matches!(
            build(
                &mut t,
                &mut mem,
                &mut allocator(3000),
                &spec(b"\x7fELF garbage", 2048)
            ),
            Err(BuildError::Image(_))
        ));
        assert!(t.iter().all(|(_, f)| f.owner == Owner::Free));
    }
}
