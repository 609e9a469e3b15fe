//! The machine memory map: sanitising what the firmware reports and finding the frames that
//! are free for the hypervisor to allocate.

use crate::boot::multiboot::{MemRegion, RegionKind};
use crate::types::{Mfn, PAGE_SIZE};
use arrayvec::ArrayVec;

/// Most regions in a sanitised map or a free-range list.
pub const MAX_RANGES: usize = 256;

/// Memory below this address is never handed out (real-mode structures, BIOS data, option
/// ROMs, and legacy DMA live there).
pub const LOW_MEMORY_END: u64 = 1 << 20;

/// A half-open range of machine frames `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRange {
    /// First frame.
    pub start: Mfn,
    /// One past the last frame.
    pub end: Mfn,
}

impl FrameRange {
    /// Number of frames.
    pub fn count(&self) -> u64 {
        self.end.0.saturating_sub(self.start.0)
    }
}

/// A sanitised memory map: sorted, non-overlapping, adjacent regions of one kind merged.
#[derive(Clone, Debug, Default)]
pub struct MemoryMap {
    regions: ArrayVec<MemRegion, MAX_RANGES>,
}

/// How bad a region kind is when two overlap: the worse one wins (as in Xen's and Linux's
/// E820 sanitising), so RAM reported inside a reserved area is not used.
fn badness(k: RegionKind) -> u8 {
    match k {
        RegionKind::Usable => 0,
        RegionKind::AcpiReclaimable => 1,
        RegionKind::AcpiNvs => 2,
        RegionKind::Reserved => 3,
        RegionKind::BadMemory => 4,
    }
}

impl MemoryMap {
    /// Sanitises firmware regions: overlaps resolve to the worse kind, empty and wrapping
    /// entries are dropped, the result is sorted and merged.
    pub fn sanitize(input: &[MemRegion]) -> MemoryMap {
        // Every boundary point of every region, sorted and deduplicated.
        let mut points: ArrayVec<u64, { 2 * MAX_RANGES }> = ArrayVec::new();
        for r in input.iter().filter(|r| r.len > 0).take(MAX_RANGES) {
            let _ = points.try_push(r.base);
            let _ = points.try_push(r.end());
        }
        points.sort_unstable();
        let mut uniq: ArrayVec<u64, { 2 * MAX_RANGES }> = ArrayVec::new();
        for p in points {
            if uniq.last() != Some(&p) {
                uniq.push(p);
            }
        }
        let mut map = MemoryMap::default();
        for w in uniq.windows(2) {
            let (a, b) = (w[0], w[1]);
            // The worst kind among the input regions covering [a, b).
            let kind = input
                .iter()
                .filter(|r| r.len > 0 && r.base <= a && r.end() >= b)
                .map(|r| r.kind)
                .max_by_key(|k| badness(*k));
            if let Some(kind) = kind {
                map.push_merged(MemRegion {
                    base: a,
                    len: b - a,
                    kind,
                });
            }
        }
        map
    }

    fn push_merged(&mut self, r: MemRegion) {
        if let Some(last) = self.regions.last_mut()
            && last.kind == r.kind
            && last.end() == r.base
        {
            last.len += r.len;
            return;
        }
        // Capacity: at most 2 * MAX_RANGES - 1 windows, but merged adjacent windows of one
        // kind collapse; past capacity the tail is dropped rather than overflowing.
        let _ = self.regions.try_push(r);
    }

    /// The regions, sorted by address.
    pub fn regions(&self) -> &[MemRegion] {
        &self.regions
    }

    /// Bytes of RAM: usable and ACPI-reclaimable regions.
    pub fn ram_bytes(&self) -> u64 {
        self.regions
            .iter()
            .filter(|r| matches!(r.kind, RegionKind::Usable | RegionKind::AcpiReclaimable))
            .map(|r| r.len)
            .sum()
    }

    /// One past the highest RAM address.
    pub fn ram_end(&self) -> u64 {
        self.regions
            .iter()
            .filter(|r| matches!(r.kind, RegionKind::Usable | RegionKind::AcpiReclaimable))
            .map(|r| r.end())
            .max()
            .unwrap_or(0)
    }

    /// The frames free for allocation: whole pages inside usable regions, above
    /// [`LOW_MEMORY_END`], outside every `reserved` byte range `[start, end)` (the hypervisor
    /// image, boot modules, the loader's information). Sorted by address.
    pub fn free_frames(&self, reserved: &[(u64, u64)]) -> ArrayVec<FrameRange, MAX_RANGES> {
        let mut out = ArrayVec::new();
        for r in self.regions.iter().filter(|r| r.kind == RegionKind::Usable) {
            let start = r.base.max(LOW_MEMORY_END);
            let end = r.end();
            subtract_and_push(start, end, reserved, &mut out);
        }
        out
    }
}

/// Pushes the page-aligned parts of `[start, end)` not covered by `reserved`.
fn subtract_and_push(
    start: u64,
    end: u64,
    reserved: &[(u64, u64)],
    out: &mut ArrayVec<FrameRange, MAX_RANGES>,
) {
    // Walk the range left to right, skipping over reserved pieces (in any order).
    let mut cursor = start;
    while cursor < end {
        // The reserved piece that starts lowest among those overlapping [cursor, end).
        let blocker = reserved
            .iter()
            .filter(|&&(rs, re)| rs < end && re > cursor && re > rs)
            .min_by_key(|&&(rs, _)| rs);
        let piece_end = match blocker {
            Some(&(rs, _)) => rs.max(cursor),
            None => end,
        };
        push_aligned(cursor, piece_end, out);
        match blocker {
            Some(&(_, re)) => cursor = re.max(cursor),
            None => break,
        }
    }
}

fn push_aligned(start: u64, end: u64, out: &mut ArrayVec<FrameRange, MAX_RANGES>) {
    let first = start.div_ceil(PAGE_SIZE);
    let last = end / PAGE_SIZE;
    if first < last {
        let _ = out.try_push(FrameRange {
            start: Mfn(first),
            end: Mfn(last),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(base: u64, len: u64, kind: RegionKind) -> MemRegion {
        MemRegion { base, len, kind }
    }
    use RegionKind::*;

    #[test]
    fn qemu_map_is_kept_as_is() {
        let m = MemoryMap::sanitize(&[
            r(0, 0x9fc00, Usable),
            r(0x9fc00, 0x400, Reserved),
            r(0xf0000, 0x10000, Reserved),
            r(0x10_0000, 0xfee_0000, Usable),
            r(0xfffc_0000, 0x4_0000, Reserved),
        ]);
        assert_eq!(m.regions().len(), 5);
        assert_eq!(m.ram_bytes(), 0x9fc00 + 0xfee_0000);
        assert_eq!(m.ram_end(), 0xffe_0000);
    }

    #[test]
    fn overlaps_resolve_to_the_worse_kind_and_sort() {
        let m = MemoryMap::sanitize(&[
            r(0x20_0000, 0x10_0000, Reserved),
            r(0x10_0000, 0x40_0000, Usable),
            r(0x28_0000, 0x1000, AcpiNvs),
        ]);
        assert_eq!(
            m.regions(),
            &[
                r(0x10_0000, 0x10_0000, Usable),
                r(0x20_0000, 0x10_0000, Reserved),
                r(0x30_0000, 0x20_0000, Usable),
            ]
        );
    }

    #[test]
    fn adjacent_and_duplicate_regions_merge() {
        let m = MemoryMap::sanitize(&[
            r(0x10_0000, 0x10_0000, Usable),
            r(0x20_0000, 0x10_0000, Usable),
            r(0x10_0000, 0x10_0000, Usable),
            r(0x50_0000, 0, Usable),
        ]);
        assert_eq!(m.regions(), &[r(0x10_0000, 0x20_0000, Usable)]);
    }

    #[test]
    fn wrapping_entries_are_clamped() {
        let m = MemoryMap::sanitize(&[r(u64::MAX - 0xfff, 0x10_0000, Usable)]);
        assert_eq!(m.regions().len(), 1);
        assert_eq!(m.regions()[0].end(), u64::MAX);
    }

    #[test]
    fn free_frames_exclude_low_memory_and_reserved_ranges() {
        let m = MemoryMap::sanitize(&[r(0, 0x9fc00, Usable), r(0x10_0000, 0xf0_0000, Usable)]);
        // Image at 2 MiB..3 MiB, a module at 4 MiB + 0x800 .. 5 MiB - 0x800 (unaligned).
        let free = m.free_frames(&[(0x20_0000, 0x30_0000), (0x40_0800, 0x4f_f800)]);
        assert_eq!(
            free.as_slice(),
            &[
                FrameRange {
                    start: Mfn(0x100),
                    end: Mfn(0x200)
                },
                FrameRange {
                    start: Mfn(0x300),
                    end: Mfn(0x400)
                },
                FrameRange {
                    start: Mfn(0x500),
                    end: Mfn(0x1000)
                },
            ]
        );
    }

    #[test]
    fn reserved_ranges_in_any_order_and_overlapping() {
        let m = MemoryMap::sanitize(&[r(0x10_0000, 0x10_0000, Usable)]);
        let free = m.free_frames(&[
            (0x18_0000, 0x1a_0000),
            (0x10_0000, 0x11_0000),
            (0x17_0000, 0x19_0000),
        ]);
        assert_eq!(
            free.as_slice(),
            &[
                FrameRange {
                    start: Mfn(0x110),
                    end: Mfn(0x170)
                },
                FrameRange {
                    start: Mfn(0x1a0),
                    end: Mfn(0x200)
                },
            ]
        );
        // A reservation covering everything leaves nothing; an empty one is ignored.
        assert!(m.free_frames(&[(0, u64::MAX)]).is_empty());
        assert_eq!(m.free_frames(&[(0x15_0000, 0x15_0000)]).len(), 1);
    }

    #[test]
    fn unaligned_usable_regions_shrink_to_whole_pages() {
        let m = MemoryMap::sanitize(&[r(0x10_0800, 0x2000, Usable)]);
        assert_eq!(
            m.free_frames(&[]).as_slice(),
            &[FrameRange {
                start: Mfn(0x101),
                end: Mfn(0x102)
            }]
        );
        let m = MemoryMap::sanitize(&[r(0x10_0800, 0x800, Usable)]);
        assert!(m.free_frames(&[]).is_empty());
    }
}
