//! The initial virtual layout of a PV domain, in Xen's dom0 builder order (reference §4.4):
//! kernel, initrd, phys-to-machine list, start_info, bootstrap page tables, stack, then padding
//! to a 4 MiB boundary with at least 512 KiB of slack. The whole region `[virt_base, v_end)`
//! is mapped onto pseudo-physical frames 0, 1, 2, ... in order.

use crate::types::{PAGE_SIZE, Pfn};
use hypercall_abi::start_info::StartInfo;

/// Bytes reserved for start_info and dom0's console information after it.
pub const START_INFO_BYTES: u64 = core::mem::size_of::<StartInfo>() as u64
    + core::mem::size_of::<hypercall_abi::start_info::Dom0VgaConsoleInfo>() as u64;

const MIB4: u64 = 4 << 20;
const SLACK: u64 = 512 << 10;

/// The initial virtual layout of a domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Start of the initial mapping (`VIRT_BASE`; pseudo-physical frame 0).
    pub v_start: u64,
    /// Kernel image `[start, end)`.
    pub kernel: (u64, u64),
    /// Initrd `[start, end)`, empty if none.
    pub initrd: (u64, u64),
    /// Phys-to-machine list `[start, end)` (`mfn_list`).
    pub p2m: (u64, u64),
    /// The start_info page.
    pub start_info: u64,
    /// Bootstrap page tables `[start, end)`; the L4 comes first.
    pub page_tables: (u64, u64),
    /// Number of page-table frames.
    pub nr_pt_frames: u64,
    /// The bootstrap stack page `[start, end)`; `rsp` starts at its end.
    pub stack: (u64, u64),
    /// End of the initial mapping (4 MiB aligned).
    pub v_end: u64,
}

/// Why a layout does not fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// The initial mapping needs more pages than the domain has.
    TooBig {
        /// Pages the initial mapping needs.
        needed: u64,
        /// Pages the domain has.
        available: u64,
    },
    /// The addresses overflow the address space.
    Overflow,
}

impl core::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LayoutError::TooBig { needed, available } => write!(
                f,
                "the initial mapping needs {needed} pages but the domain has only {available}"
            ),
            LayoutError::Overflow => write!(f, "the initial mapping overflows the address space"),
        }
    }
}

const fn page_up(v: u64) -> Option<u64> {
    match v.checked_add(PAGE_SIZE - 1) {
        Some(x) => Some(x & !(PAGE_SIZE - 1)),
        None => None,
    }
}

/// Page-table frames needed to map `[start, end)` with 4 KiB pages: one L4 plus the L3s,
/// L2s and L1s covering it.
pub fn tables_needed(start: u64, end: u64) -> u64 {
    if end <= start {
        return 1;
    }
    let count = |shift: u32| ((end - 1) >> shift) - (start >> shift) + 1;
    1 + count(39) + count(30) + count(21)
}

impl Layout {
    /// Lays out a domain of `nr_pages` pages whose kernel occupies `[kstart, kend)` with the
    /// initial mapping starting at `v_start`, and an initrd of `initrd_len` bytes (0: none).
    pub fn compute(
        v_start: u64,
        kstart: u64,
        kend: u64,
        initrd_len: u64,
        nr_pages: u64,
    ) -> Result<Layout, LayoutError> {
        let o = LayoutError::Overflow;
        let initrd_start = page_up(kend).ok_or(o)?;
        let initrd_end = initrd_start.checked_add(initrd_len).ok_or(o)?;
        let p2m_start = page_up(initrd_end).ok_or(o)?;
        let p2m_end = p2m_start
            .checked_add(nr_pages.checked_mul(8).ok_or(o)?)
            .ok_or(o)?;
        let start_info = page_up(p2m_end).ok_or(o)?;
        let pt_start = page_up(start_info.checked_add(START_INFO_BYTES).ok_or(o)?).ok_or(o)?;
        let mut nr_pt = 2u64;
        loop {
            let pt_end = pt_start.checked_add(nr_pt * PAGE_SIZE).ok_or(o)?;
            let stack_end = pt_end.checked_add(PAGE_SIZE).ok_or(o)?;
            let mut v_end = stack_end.checked_add(MIB4 - 1).ok_or(o)? & !(MIB4 - 1);
            if v_end - stack_end < SLACK {
                v_end = v_end.checked_add(MIB4).ok_or(o)?;
            }
            if tables_needed(v_start, v_end) <= nr_pt {
                let needed = (v_end - v_start) / PAGE_SIZE;
                if needed > nr_pages {
                    return Err(LayoutError::TooBig {
                        needed,
                        available: nr_pages,
                    });
                }
                return Ok(Layout {
                    v_start,
                    kernel: (kstart, kend),
                    initrd: (initrd_start, initrd_end),
                    p2m: (p2m_start, p2m_end),
                    start_info,
                    page_tables: (pt_start, pt_end),
                    nr_pt_frames: nr_pt,
                    stack: (pt_end, stack_end),
                    v_end,
                });
            }
            nr_pt += 1;
        }
    }

    /// Pages in the initial mapping.
    pub fn mapped_pages(&self) -> u64 {
        (self.v_end - self.v_start) / PAGE_SIZE
    }

    /// The pseudo-physical frame behind virtual address `va` of the initial mapping.
    pub fn pfn_of(&self, va: u64) -> Option<Pfn> {
        (va >= self.v_start && va < self.v_end).then(|| Pfn((va - self.v_start) / PAGE_SIZE))
    }

    /// The virtual address of pseudo-physical frame `pfn` in the initial mapping.
    pub fn va_of(&self, pfn: Pfn) -> Option<u64> {
        (pfn.0 < self.mapped_pages()).then(|| self.v_start + pfn.0 * PAGE_SIZE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 0xffff_ffff_8000_0000;

    #[test]
    fn table_counts() {
        assert_eq!(tables_needed(BASE, BASE + (4 << 20)), 5);
        assert_eq!(tables_needed(BASE, BASE + (4 << 20) + 1), 6);
        // Crossing a 1 GiB boundary needs a second L2; crossing 512 GiB a second L3.
        assert_eq!(
            tables_needed((1 << 30) - 4096, (1 << 30) + 4096),
            1 + 1 + 2 + 2
        );
        assert_eq!(
            tables_needed((1 << 39) - 4096, (1 << 39) + 4096),
            1 + 2 + 2 + 2
        );
    }

    #[test]
    fn small_kernel_without_initrd() {
        // 64 MiB domain, kernel of 3 pages.
        let l = Layout::compute(BASE, BASE, BASE + 0x3000, 0, 16384).unwrap();
        assert_eq!(l.initrd, (BASE + 0x3000, BASE + 0x3000));
        assert_eq!(l.p2m, (BASE + 0x3000, BASE + 0x3000 + 16384 * 8));
        assert_eq!(l.start_info, BASE + 0x23000);
        assert_eq!(l.page_tables.0, BASE + 0x24000);
        // [BASE, BASE + 4 MiB): L4, L3, L2, 2 L1s? No: 4 MiB = 2 L1s -> 1+1+1+2 = 5 frames.
        assert_eq!(l.nr_pt_frames, 5);
        assert_eq!(l.stack, (BASE + 0x29000, BASE + 0x2a000));
        assert_eq!(l.v_end, BASE + (4 << 20));
        assert!(l.v_end - l.stack.1 >= SLACK);
        assert_eq!(l.mapped_pages(), 1024);
        assert_eq!(l.pfn_of(l.start_info), Some(Pfn(0x23)));
        assert_eq!(l.va_of(Pfn(0x23)), Some(l.start_info));
        assert_eq!(l.pfn_of(l.v_end), None);
    }

    #[test]
    fn slack_rule_adds_4_mib() {
        // Kernel ending just below 4 MiB: the stack lands past it and leaves < 512 KiB.
        let l = Layout::compute(BASE, BASE, BASE + (3 << 20) + (800 << 10), 0, 65536).unwrap();
        assert_eq!(l.v_end % MIB4, 0);
        assert!(l.v_end - l.stack.1 >= SLACK);
        assert_eq!(l.v_end, BASE + (8 << 20));
        assert_eq!(tables_needed(BASE, l.v_end), l.nr_pt_frames);
    }

    #[test]
    fn initrd_and_big_p2m() {
        // 1 GiB domain: P2M is 2 MiB.
        let l = Layout::compute(BASE, BASE, BASE + 0x10_0000, 5 << 20, 262_144).unwrap();
        assert_eq!(l.initrd, (BASE + 0x10_0000, BASE + 0x60_0000));
        assert_eq!(l.p2m.1 - l.p2m.0, 2 << 20);
        assert!(l.page_tables.0 > l.start_info);
        assert!(tables_needed(BASE, l.v_end) <= l.nr_pt_frames);
    }

    #[test]
    fn too_big_for_memory() {
        assert_eq!(
            Layout::compute(BASE, BASE, BASE + (8 << 20), 0, 1024),
            Err(LayoutError::TooBig {
                needed: 3072,
                available: 1024
            })
        );
        assert_eq!(
            Layout::compute(BASE, BASE, u64::MAX - 10, 0, 1024),
            Err(LayoutError::Overflow)
        );
        assert_eq!(
            Layout::compute(0, 0, 0x1000, u64::MAX, 1024),
            Err(LayoutError::Overflow)
        );
    }

    #[test]
    fn low_virt_base_like_xtf() {
        let l = Layout::compute(0, 0x1000, 0x20_0000, 0, 4096).unwrap();
        assert_eq!(l.v_start, 0);
        assert_eq!(l.pfn_of(0x1000), Some(Pfn(1)));
        assert_eq!(l.v_end, 4 << 20);
    }
}
