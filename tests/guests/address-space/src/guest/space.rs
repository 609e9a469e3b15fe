//! A fresh address space: built, pinned, loaded; 10,000 pages mapped and unmapped through it.

use alloc::boxed::Box;
use alloc::vec::Vec;

use guest_support::catch::catch;
use guest_support::{Checks, info};
use pv_guest_kit::abi::errno::Errno;
use pv_guest_kit::abi::mm::{_PAGE_GUEST_KERNEL, _PAGE_USER, pte_mfn};
use pv_guest_kit::arch::{cpu, mm, virt_base};
use pv_guest_kit::mm::{AddressSpace, Frame, Level, flags, frames, pin, read_entry, unpin};

use super::frames::PF_WRITE_PROTECTED;
use super::{hc, raw};

/// The lower-half window the 10,000 pages are mapped at (L4 slot 2).
pub const WINDOW: u64 = 0x0000_0100_0000_0000;
/// How many pages.
pub const PAGES: usize = 10_000;
/// How many frames back them: page `i` maps frame `i % FRAMES`, so each frame is mapped at
/// `ALIASES` pages (which also exercises several writable mappings of one frame), and the
/// guest fits the 32 MiB dom0 the Oxen tests use.
pub const FRAMES: usize = 2_500;
/// Pages per frame.
const ALIASES: usize = PAGES / FRAMES;
/// The pattern of frame `f`'s first word is `TAG | f` (its last word the complement).
const TAG: u64 = 0x5a5a_0000_0000_0000;

/// What the later checks share.
pub struct Ctx {
    /// The tables the builder made.
    pub boot: AddressSpace,
    /// The fresh tables, current from [`build`] to [`teardown`].
    pub space: AddressSpace,
    /// The window's frames (page `i` maps `frames[i % FRAMES]`).
    pub frames: Vec<Frame>,
}

/// The address of window page `i`.
pub fn page(i: usize) -> u64 {
    WINDOW + i as u64 * 4096
}

fn direct(frame: Frame) -> u64 {
    frames::direct_va(frame.pfn).unwrap_or(0)
}

pub fn build(c: &mut Checks, boot: AddressSpace) -> Option<Ctx> {
    let before = frames::stats();
    let space = match boot.clone_kernel() {
        Ok(space) => space,
        Err(err) => {
            c.fail(
                "clone_kernel: a fresh copy of the kernel's tables",
                format_args!("{err}"),
            );
            return None;
        }
    };
    let after = frames::stats();
    info(format_args!(
        "boot L4 {:#x}, fresh L4 {:#x}; {} tables allocated",
        boot.root(),
        space.root(),
        after.in_use - before.in_use
    ));
    c.check(
        "clone_kernel: a fresh L4 with fresh L3/L2/L1 tables",
        space.root() != boot.root() && after.in_use - before.in_use >= 4,
        format_args!("{before:?} -> {after:?}"),
    );
    let Some(root) = space.root_frame() else {
        c.fail("the fresh L4's PFN", format_args!("not in the M2P"));
        return None;
    };
    let (_, fault) = catch(3, || raw::probe_write(direct(root) + 8 * 10, 0));
    c.check(
        "the fresh L4 is mapped read-only (a write faults)",
        fault.is_some_and(|f| f.vector == 14 && f.error_code == PF_WRITE_PROTECTED),
        format_args!("{fault:x?}"),
    );
    c.eq(
        "the fresh L4 is pinned: pinning it again is refused (-EINVAL)",
        pin(Level::L4, space.root()),
        Err(Errno::Einval),
    );
    let stack_probe = 0u64;
    let heap_probe = Box::new(0x1234u64);
    for (what, va) in [
        ("the image", virt_base()),
        ("the stack", core::ptr::addr_of!(stack_probe) as u64),
        ("the heap", &*heap_probe as *const u64 as u64),
        ("the direct map", direct(root)),
    ] {
        let same = space.translate(va).map(pte_mfn) == boot.translate(va).map(pte_mfn)
            && space.translate(va).is_some();
        c.check(
            guest_support::Name::of(format_args!(
                "the fresh tables map {what} like the boot tables"
            ))
            .as_str(),
            same,
            format_args!("{:x?} vs {:x?}", space.translate(va), boot.translate(va)),
        );
    }
    let xen_slots = |s: AddressSpace| {
        (256..272)
            .filter(|&i| read_entry(s.root(), i).is_some_and(|e| e & 1 != 0))
            .count()
    };
    info(format_args!(
        "Xen slots present before loading: fresh L4 {}, boot L4 {}",
        xen_slots(space),
        xen_slots(boot)
    ));

    c.eq("new_baseptr(the fresh L4)", hc::switch_to(space), Ok(()));
    c.eq_hex(
        "mov %cr3 names the fresh L4",
        cpu::read_cr3() >> 12,
        space.root(),
    );
    let boxed = Box::new([7u64; 64]);
    c.check(
        "the kernel runs on the fresh tables (stack, heap, console)",
        boxed.iter().sum::<u64>() == 448 && *heap_probe == 0x1234,
        format_args!("heap corrupted"),
    );
    let present = xen_slots(space);
    info(format_args!(
        "Xen slots present in the loaded fresh L4: {present}"
    ));
    c.check(
        "Xen filled its slots of the fresh L4 (M2P at slot 256)",
        read_entry(space.root(), 256).is_some_and(|e| e & 1 != 0),
        format_args!("L4[256] = {:x?}", read_entry(space.root(), 256)),
    );
    c.eq(
        "the M2P answers on the fresh tables",
        mm::mfn_to_pfn(space.root()),
        Some(root.pfn),
    );
    let unpinned = unpin(space.root());
    info(format_args!("unpin of the L4 in use: {unpinned:?}"));
    c.eq("unpin of the L4 in use (cr3): allowed", unpinned, Ok(()));
    c.eq("pin it again", pin(Level::L4, space.root()), Ok(()));
    Some(Ctx {
        boot,
        space,
        frames: Vec::new(),
    })
}

pub fn window(c: &mut Checks, ctx: &mut Ctx) {
    let before = frames::stats();
    ctx.frames.reserve(FRAMES);
    for _ in 0..FRAMES {
        match frames::alloc() {
            Some(frame) => ctx.frames.push(frame),
            None => break,
        }
    }
    let after = frames::stats();
    info(format_args!("allocator before {before:?}, after {after:?}"));
    c.eq("alloc 2500 frames", ctx.frames.len(), FRAMES);
    if ctx.frames.len() != FRAMES {
        return;
    }
    for (f, &frame) in ctx.frames.iter().enumerate() {
        raw::write(direct(frame), TAG | f as u64);
        raw::write(direct(frame) + 4088, !(TAG | f as u64));
    }
    let frame_of = |i: usize| {
        ctx.frames
            .get(i % FRAMES)
            .copied()
            .unwrap_or(Frame::new(0, 0))
    };

    let mut mapper = ctx.space.mapper();
    let mut refused = 0;
    for i in 0..PAGES {
        if mapper
            .map(page(i), frame_of(i).mfn, flags::KERNEL_RW)
            .is_err()
        {
            refused += 1;
        }
    }
    let (calls, _) = mapper.stats();
    let finished = mapper.finish();
    info(format_args!(
        "mapping 10000 pages: about {calls} mmu_update calls of up to 512"
    ));
    c.check(
        "map 10000 pages (2500 frames, each at 4 pages), batched through mmu_update",
        refused == 0 && finished.is_ok(),
        format_args!("{refused} refused, finish {finished:?}"),
    );
    let wrong = (0..PAGES)
        .filter(|&i| {
            let f = (i % FRAMES) as u64;
            raw::read(page(i)) != TAG | f || raw::read(page(i) + 4088) != !(TAG | f)
        })
        .count();
    c.eq(
        "every page reads back its frame's contents through the window",
        wrong,
        0,
    );
    // Alias k of frame f writes word 1 + k: every word must land in the frame.
    for i in 0..PAGES {
        raw::write(page(i) + 8 * (1 + (i / FRAMES) as u64), i as u64 ^ 0x77);
    }
    let wrong = ctx
        .frames
        .iter()
        .enumerate()
        .filter(|&(f, &frame)| {
            (0..ALIASES).any(|k| {
                raw::read(direct(frame) + 8 * (1 + k as u64)) != (f + k * FRAMES) as u64 ^ 0x77
            })
        })
        .count();
    c.eq("writes through every alias land in the frames", wrong, 0);
    let wrong = (0..PAGES)
        .filter(|&i| ctx.space.translate(page(i)).map(pte_mfn) != Some(frame_of(i).mfn))
        .count();
    c.eq("a walk of the tables finds every page's frame", wrong, 0);
    let pte = ctx.space.translate(WINDOW).unwrap_or(0);
    info(format_args!("window page 0: pte {pte:#x}"));
    c.eq_hex(
        "Xen stores a kernel entry with US and _PAGE_GUEST_KERNEL (bit 52) added",
        pte & (_PAGE_USER | _PAGE_GUEST_KERNEL),
        _PAGE_USER | _PAGE_GUEST_KERNEL,
    );

    c.eq(
        "protect(page 0, read-only)",
        ctx.space.protect(WINDOW, flags::KERNEL_RO),
        Ok(()),
    );
    let (_, fault) = catch(3, || raw::probe_write(WINDOW, 1));
    c.check(
        "protect: a write to the read-only page faults (#PF, P|W)",
        fault.is_some_and(|f| f.vector == 14 && f.error_code == PF_WRITE_PROTECTED),
        format_args!("{fault:x?}"),
    );
    c.eq_hex("protect: reads still work", raw::read(WINDOW), TAG);
    c.eq(
        "protect(page 0, read-write)",
        ctx.space.protect(WINDOW, flags::KERNEL_RW),
        Ok(()),
    );
    let (_, fault) = catch(3, || raw::probe_write(WINDOW + 16, 0x55));
    c.check(
        "protect: writable again",
        fault.is_none() && raw::read(WINDOW + 16) == 0x55,
        format_args!("{fault:x?}"),
    );

    let mut mapper = ctx.space.mapper();
    let refused = (0..PAGES)
        .filter(|&i| mapper.unmap(page(i)).is_err())
        .count();
    let finished = mapper.finish();
    c.check(
        "unmap the 10000 pages, batched",
        refused == 0 && finished.is_ok(),
        format_args!("{refused} refused, finish {finished:?}"),
    );
    let still = (0..PAGES)
        .filter(|&i| ctx.space.translate(page(i)).is_some())
        .count();
    c.eq("no window page is mapped any more", still, 0);
    for i in [0, PAGES / 2, PAGES - 1] {
        let (_, fault) = catch(3, || raw::probe_read(page(i)));
        let cr2 = cpu::read_cr2();
        c.check(
            guest_support::Name::of(format_args!(
                "reading unmapped window page {i} faults (#PF, error 0, cr2)"
            ))
            .as_str(),
            fault.is_some_and(|f| f.vector == 14 && f.error_code == 0) && cr2 == page(i),
            format_args!("{fault:x?}, cr2 {cr2:#x}"),
        );
    }
}

pub fn teardown(c: &mut Checks, ctx: Ctx) {
    c.eq(
        "new_baseptr(the boot L4) again",
        hc::switch_to(ctx.boot),
        Ok(()),
    );
    c.eq_hex(
        "mov %cr3 names the boot L4",
        cpu::read_cr3() >> 12,
        ctx.boot.root(),
    );
    let root = ctx.space.root_frame();
    let released = ctx.space.release();
    info(format_args!("release of the fresh tables: {released:?}"));
    c.check(
        "release: the fresh tables are unpinned and every one is freed",
        released.is_ok_and(|n| n >= 4),
        format_args!("{released:?}"),
    );
    c.check(
        "the fresh L4 frame is an ordinary page again",
        root.is_some_and(|r| !frames::is_allocated(r.pfn)),
        format_args!("{root:x?}"),
    );
    let refused = ctx
        .frames
        .iter()
        .filter(|&&f| frames::free(f).is_err())
        .count();
    c.eq("free the 2500 window frames", refused, 0);
}
