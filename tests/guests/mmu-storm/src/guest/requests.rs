//! The request generators. Each returns a request and whether it **must** fail on any
//! hypervisor (Xen's L4 slots, non-canonical or hypervisor addresses, roots from frames that
//! cannot be L4s, unknown commands, ...).
//!
//! The protected set — the kernel's page tables and every mapping it uses — is never a target:
//!
//! - `ptr` (the entry written) is always in a pool frame, or a machine address beyond RAM;
//! - values name pool frames, junk beyond RAM, or (leaf mappings only matter there, and a
//!   table entry naming them is refused) kernel *data* frames — never a kernel page table, so a
//!   pool table can never make a kernel table reachable through the private window;
//! - `update_va_mapping` targets the private window (whose tables are pool frames), or
//!   addresses that have no tables (other lower-half slots, unused upper-half slots) or that
//!   must be refused (non-canonical, hypervisor area) — never the kernel's slot 511;
//! - roots are loaded only from frames kept writable (never an L4), junk, or the current root;
//!   user roots and pins may name any pool frame; pages are cleared or copied into only in the
//!   pool.

use pv_guest_kit::abi::domid::{DOMID_IO, DOMID_SELF, DOMID_XEN};
use pv_guest_kit::abi::mm::{
    _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_GLOBAL, _PAGE_GNTTAB, _PAGE_NX, _PAGE_PCD, _PAGE_PRESENT,
    _PAGE_PSE, _PAGE_PWT, _PAGE_RW, _PAGE_USER, MMU_MACHPHYS_UPDATE, MMU_NORMAL_PT_UPDATE,
    MMU_PT_UPDATE_NO_TRANSLATE, MMU_PT_UPDATE_PRESERVE_AD, MmuextOp, UVMF_ALL,
};
use pv_guest_kit::abi::mm::{MmuUpdate, MmuextCmd};
use pv_guest_kit::mm::{Frame, l4_slot_base};

use super::rng::Rng;

/// The L4 slot of the private window.
pub const WINDOW_SLOT: usize = 3;
/// The private window's first address.
pub const WINDOW: u64 = l4_slot_base(WINDOW_SLOT);
/// Its L1 tables (each 2 MiB).
pub const WINDOW_L1S: u64 = 4;
/// Its pages.
pub const WINDOW_PAGES: u64 = WINDOW_L1S * 512;

/// A non-canonical address, an unmapped one, and one in Xen's own direct map.
pub const JUNK_POINTERS: [u64; 4] = [
    0x8000_0000_0000_0000,
    0x0000_0000_0000_1000,
    0xffff_8300_0000_0000,
    0xffff_82d0_4000_0000,
];

/// What the generators may name.
#[derive(Debug)]
pub struct Pool {
    /// The playground: frames mapped read-only in the direct map (the window's tables, the
    /// anchor L4 and spare frames), free to be typed any way.
    pub ro: alloc::vec::Vec<Frame>,
    /// Frames kept writable in the direct map: never a page table, never a root.
    pub rw: alloc::vec::Vec<Frame>,
    /// An L4 pinned for the whole storm (never unpinned by it): its Xen slots must refuse.
    pub anchor: Frame,
    /// MFNs of kernel data frames (not page tables), for leaf values.
    pub others: alloc::vec::Vec<u64>,
    /// The first MFN beyond RAM.
    pub junk_mfn: u64,
    /// The address of a vCPU mask with bit 0 set.
    pub mask: u64,
    /// The kernel's current root.
    pub kernel_root: u64,
    /// `nr_pages`.
    pub nr_pages: u64,
}

impl Pool {
    fn ro_frame(&self, rng: &mut Rng) -> Frame {
        rng.pick(&self.ro).unwrap_or(self.anchor)
    }

    fn rw_frame(&self, rng: &mut Rng) -> Frame {
        rng.pick(&self.rw).unwrap_or(self.anchor)
    }

    fn junk(&self, rng: &mut Rng) -> u64 {
        let far = rng.below(5) == 0;
        self.junk_mfn
            + if far {
                rng.below(1 << 38)
            } else {
                rng.below(1 << 20)
            }
    }

    /// A pool frame (mostly the playground) as an MFN.
    fn pool_mfn(&self, rng: &mut Rng) -> u64 {
        if rng.chance(85) {
            self.ro_frame(rng).mfn
        } else {
            self.rw_frame(rng).mfn
        }
    }
}

fn base_flags(rng: &mut Rng) -> u64 {
    let mut flags = _PAGE_PRESENT;
    for bit in [_PAGE_RW, _PAGE_USER, _PAGE_ACCESSED, _PAGE_DIRTY] {
        if rng.chance(50) {
            flags |= bit;
        }
    }
    flags
}

fn odd_bit(rng: &mut Rng) -> u64 {
    rng.pick(&[
        _PAGE_PSE,
        _PAGE_GLOBAL,
        _PAGE_PWT,
        _PAGE_PCD,
        _PAGE_GNTTAB,
        _PAGE_NX,
        0x7 << 9,
        1 << 52,
    ])
    .unwrap_or(0)
}

/// A value for any entry.
pub fn value(rng: &mut Rng, pool: &Pool) -> u64 {
    match rng.below(100) {
        0..20 => rng.next() & !_PAGE_PRESENT,
        20..55 => (pool.pool_mfn(rng) << 12) | base_flags(rng),
        55..65 => (rng.pick(&pool.others).unwrap_or(pool.junk_mfn) << 12) | base_flags(rng),
        65..75 => (pool.pool_mfn(rng) << 12) | base_flags(rng) | odd_bit(rng),
        75..85 => ((pool.junk(rng) << 12) & 0x000f_ffff_ffff_f000) | base_flags(rng),
        85..95 => {
            // Address bits beyond RAM (and reserved bits) with random flags.
            let mfn = pool.junk_mfn + rng.below(1 << 40);
            ((mfn << 12) & 0x7fff_ffff_ffff_f000) | (rng.next() & 0x8000_0000_0000_0fff) | 1
        }
        _ => 0,
    }
}

/// A random `mmu_update` request and whether it must fail.
pub fn mmu_update(rng: &mut Rng, pool: &Pool) -> (MmuUpdate, bool) {
    let (frame_mfn, is_anchor) = match rng.below(100) {
        0..15 => (pool.anchor.mfn, true),
        15..85 => {
            let f = pool.ro_frame(rng);
            (f.mfn, f == pool.anchor)
        }
        85..95 => (pool.rw_frame(rng).mfn, false),
        _ => (pool.junk(rng), false),
    };
    let index = if is_anchor && rng.chance(50) {
        256 + rng.below(16)
    } else {
        rng.below(512)
    };
    let cmd = match rng.below(100) {
        0..80 => MMU_NORMAL_PT_UPDATE,
        80..88 => MMU_PT_UPDATE_PRESERVE_AD,
        88..95 => MMU_MACHPHYS_UPDATE,
        _ => MMU_PT_UPDATE_NO_TRANSLATE,
    };
    if cmd == MMU_MACHPHYS_UPDATE {
        let pfn = if rng.chance(50) {
            rng.below(pool.nr_pages)
        } else {
            rng.next() >> 20
        };
        let req = MmuUpdate {
            ptr: (frame_mfn << 12) | u64::from(cmd),
            val: pfn,
        };
        return (req, false);
    }
    let req = MmuUpdate {
        ptr: (frame_mfn << 12) | (index * 8) | u64::from(cmd),
        val: value(rng, pool),
    };
    let xen_slot = is_anchor && (256..272).contains(&index) && cmd != MMU_PT_UPDATE_NO_TRANSLATE;
    (req, xen_slot)
}

/// A random `mmuext_op` and whether it must fail.
pub fn mmuext(rng: &mut Rng, pool: &Pool, va: u64) -> (MmuextOp, bool) {
    let op = |cmd: MmuextCmd, arg1: u64, arg2: u64| MmuextOp::new(cmd, arg1, arg2);
    match rng.below(100) {
        0..20 => {
            let pin = rng
                .pick(&[
                    MmuextCmd::PinL1Table,
                    MmuextCmd::PinL2Table,
                    MmuextCmd::PinL3Table,
                    MmuextCmd::PinL4Table,
                ])
                .unwrap_or(MmuextCmd::PinL1Table);
            match rng.below(10) {
                0..7 => (op(pin, pool.ro_frame(rng).mfn, 0), false),
                7..9 => (op(pin, pool.rw_frame(rng).mfn, 0), true),
                _ => (op(pin, pool.junk(rng), 0), true),
            }
        }
        20..35 => {
            let target = match rng.below(10) {
                0..8 => pool.ro_frame(rng),
                8 => pool.rw_frame(rng),
                _ => Frame::new(0, pool.junk(rng)),
            };
            if target == pool.anchor {
                (op(MmuextCmd::TlbFlushLocal, 0, 0), false)
            } else {
                let never_pinned = pool.rw.contains(&target) || target.pfn == 0;
                (op(MmuextCmd::UnpinTable, target.mfn, 0), never_pinned)
            }
        }
        35..42 => match rng.below(10) {
            0..5 => (op(MmuextCmd::NewBaseptr, pool.rw_frame(rng).mfn, 0), true),
            5..9 => (op(MmuextCmd::NewBaseptr, pool.junk(rng), 0), true),
            _ => (op(MmuextCmd::NewBaseptr, pool.kernel_root, 0), false),
        },
        42..48 => {
            let mfn = match rng.below(10) {
                0..6 => pool.ro_frame(rng).mfn,
                6..8 => pool.rw_frame(rng).mfn,
                _ => 0,
            };
            (op(MmuextCmd::NewUserBaseptr, mfn, 0), false)
        }
        48..58 => (op(MmuextCmd::InvlpgLocal, va, 0), false),
        58..62 => (op(MmuextCmd::TlbFlushLocal, 0, 0), false),
        62..66 => {
            let (mask, bad) = if rng.chance(70) {
                (pool.mask, false)
            } else {
                (rng.pick(&JUNK_POINTERS).unwrap_or(0), true)
            };
            if rng.chance(50) {
                (op(MmuextCmd::TlbFlushMulti, 0, mask), bad)
            } else {
                (op(MmuextCmd::InvlpgMulti, va, mask), bad)
            }
        }
        66..70 => {
            if rng.chance(50) {
                (op(MmuextCmd::TlbFlushAll, 0, 0), false)
            } else {
                (op(MmuextCmd::InvlpgAll, va, 0), false)
            }
        }
        70..76 => {
            let dst = match rng.below(10) {
                0..6 => pool.ro_frame(rng).mfn,
                6..9 => pool.rw_frame(rng).mfn,
                _ => pool.junk(rng),
            };
            (op(MmuextCmd::ClearPage, dst, 0), false)
        }
        76..82 => {
            let dst = if rng.chance(80) {
                pool.pool_mfn(rng)
            } else {
                pool.junk(rng)
            };
            let src = match rng.below(10) {
                0..5 => pool.pool_mfn(rng),
                5..8 => rng.pick(&pool.others).unwrap_or(0),
                _ => pool.junk(rng),
            };
            (op(MmuextCmd::CopyPage, dst, src), false)
        }
        82..86 => {
            let cmd = if rng.chance(50) {
                MmuextCmd::MarkSuper
            } else {
                MmuextCmd::UnmarkSuper
            };
            (op(cmd, pool.pool_mfn(rng), 0), true)
        }
        86..90 => {
            let cmd = if rng.chance(50) {
                MmuextCmd::FlushCache
            } else {
                MmuextCmd::FlushCacheGlobal
            };
            (op(cmd, 0, 0), false)
        }
        90..93 => {
            let linear = match rng.below(4) {
                0 => 0,
                1 => WINDOW + rng.below(WINDOW_PAGES) * 4096,
                2 => rng.pick(&JUNK_POINTERS).unwrap_or(0),
                _ => rng.next(),
            };
            (op(MmuextCmd::SetLdt, linear, rng.below(9000)), false)
        }
        _ => {
            let cmd = rng
                .pick(&[14u32, 21, 22, 25, 30, 40, 999, u32::MAX])
                .unwrap_or(14);
            let bad = MmuextOp {
                cmd,
                _pad0: 0,
                arg1: rng.next(),
                arg2: rng.next(),
            };
            (bad, true)
        }
    }
}

/// A random virtual address for `update_va_mapping` or `invlpg`, and whether a mapping there
/// must be refused.
pub fn address(rng: &mut Rng) -> (u64, bool) {
    match rng.below(100) {
        0..60 => (
            WINDOW + rng.below(WINDOW_PAGES) * 4096 + rng.below(4096),
            false,
        ),
        60..65 => (WINDOW + rng.below(1 << 39), false),
        65..75 => (0x8000_0000_0000_0000 | rng.next() >> 2, true),
        75..85 => (0xffff_8000_0000_0000 + rng.below(16 << 39), true),
        85..92 => {
            // Upper-half guest slots without tables (272..=510).
            let slot = 272 + rng.below(239);
            (
                0xffff_0000_0000_0000 | slot << 39 | rng.below(1 << 39),
                true,
            )
        }
        _ => {
            // Lower-half slots without tables (all but the window's).
            let mut slot = rng.below(256);
            if slot == WINDOW_SLOT as u64 {
                slot = 0;
            }
            (slot << 39 | rng.below(1 << 39), true)
        }
    }
}

/// A random `update_va_mapping(va, val, flags)` and whether it must fail.
pub fn update_va_mapping(rng: &mut Rng, pool: &Pool) -> ([u64; 3], bool) {
    let (va, refused) = address(rng);
    let mut flags = rng.below(4);
    match rng.below(10) {
        0 => flags |= UVMF_ALL,
        1 => flags |= pool.mask,
        2 => flags |= rng.pick(&JUNK_POINTERS).unwrap_or(0) & !7,
        _ => {}
    }
    ([va, value(rng, pool), flags], refused)
}

/// A random `foreigndom`: mostly the caller.
pub fn foreigndom(rng: &mut Rng) -> u64 {
    match rng.below(100) {
        0..90 => u64::from(DOMID_SELF),
        90..94 => u64::from(DOMID_IO),
        94..96 => u64::from(DOMID_XEN),
        96..98 => 1 << 16 | u64::from(DOMID_SELF),
        _ => rng.below(0x8000),
    }
}
