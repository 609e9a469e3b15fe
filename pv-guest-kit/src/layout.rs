//! The guest's virtual memory layout: the initial mapping the domain builder creates, and the
//! part of it the kit may use as a heap (reference §4.3–§4.4).
//!
//! The builder maps `[VIRT_BASE, end)` 1:1 onto pseudo-physical frames (virtual
//! `VIRT_BASE + pfn * 4096` is PFN `pfn`). In address order it holds: the kernel image, the
//! initrd (if any), the P2M list (`mfn_list`), the `start_info` page, the bootstrap page tables
//! (`pt_base`, `nr_pt_frames` pages), one page of bootstrap stack (the initial `rsp` is its end)
//! and at least 512 KiB of zeroed padding up to a 4 MiB boundary
//! ([`hypercall_abi::start_info::initial_mapping_end`]).
//!
//! The kit runs on its own stack in `.bss`, so everything from the initial `rsp` to the end of
//! the mapping is unused. The kit's heap takes exactly that range: it starts **after** the
//! bootstrap stack page (which the kit leaves alone, though it no longer runs on it) and ends at
//! the 4 MiB boundary, capped by the domain's size (`nr_pages`).

use core::ops::Range;

use hypercall_abi::PAGE_SIZE;
use hypercall_abi::start_info::initial_mapping_end;

/// The page size as a `u64`, for address arithmetic.
pub const PAGE_SIZE_U64: u64 = PAGE_SIZE as u64;

/// The `VIRT_BASE` of images linked with the kit's `link.ld` (top 2 GiB, like Linux). The
/// running kernel reads the linker's value through `arch::virt_base()`; this constant is for
/// documentation and host tests, and the kit checks at boot that the two agree.
pub const DEFAULT_VIRT_BASE: u64 = 0xffff_ffff_8000_0000;

/// The initial mapping of a booted guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InitialMapping {
    /// `VIRT_BASE`: where PFN 0 is mapped.
    pub virt_base: u64,
    /// End of the bootstrap stack (the initial `rsp`).
    pub stack_end: u64,
    /// End of the mapping (exclusive), by the 4 MiB rule and capped by the domain's size.
    pub end: u64,
}

impl InitialMapping {
    /// Derives the mapping from `VIRT_BASE`, the initial `rsp` and `nr_pages`. `None` if the
    /// values are inconsistent (stack below the base, overflow).
    pub fn new(virt_base: u64, stack_end: u64, nr_pages: u64) -> Option<InitialMapping> {
        if stack_end < virt_base || !stack_end.is_multiple_of(PAGE_SIZE_U64) {
            return None;
        }
        let by_rule = initial_mapping_end(stack_end)?;
        let by_size = virt_base.checked_add(nr_pages.checked_mul(PAGE_SIZE_U64)?)?;
        let end = by_rule.min(by_size);
        (end >= stack_end).then_some(InitialMapping {
            virt_base,
            stack_end,
            end,
        })
    }

    /// The unused tail of the mapping (after the bootstrap stack), which the kit's heap uses.
    pub const fn free(&self) -> Range<u64> {
        self.stack_end..self.end
    }

    /// The virtual address of pseudo-physical frame `pfn` inside the mapping, if it is mapped.
    pub fn pfn_to_virt(&self, pfn: u64) -> Option<u64> {
        let va = self
            .virt_base
            .checked_add(pfn.checked_mul(PAGE_SIZE_U64)?)?;
        (va < self.end).then_some(va)
    }

    /// The pseudo-physical frame behind virtual address `va`, if it lies in the mapping.
    pub fn virt_to_pfn(&self, va: u64) -> Option<u64> {
        (self.virt_base..self.end)
            .contains(&va)
            .then(|| (va - self.virt_base) / PAGE_SIZE_U64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const BASE: u64 = DEFAULT_VIRT_BASE;

    #[test]
    fn free_range_runs_from_the_stack_to_the_boundary() {
        let m = InitialMapping::new(BASE, BASE + 0x2c_3000, 60_000).expect("valid");
        assert_eq!(m.free(), BASE + 0x2c_3000..BASE + 4 * MIB);
        assert_eq!(m.pfn_to_virt(3), Some(BASE + 0x3000));
        assert_eq!(m.pfn_to_virt(1024), None);
        assert_eq!(m.virt_to_pfn(BASE + 0x3fff), Some(3));
        assert_eq!(m.virt_to_pfn(BASE + 4 * MIB), None);
        assert_eq!(m.virt_to_pfn(BASE - 1), None);
    }

    #[test]
    fn small_domains_are_capped_by_their_size() {
        let m = InitialMapping::new(BASE, BASE + 0x10_0000, 300).expect("valid");
        assert_eq!(m.end, BASE + 300 * PAGE_SIZE_U64);
    }

    #[test]
    fn inconsistent_values_are_refused() {
        assert_eq!(InitialMapping::new(BASE, BASE - 4096, 100), None);
        assert_eq!(InitialMapping::new(BASE, BASE + 12, 100), None);
        assert_eq!(InitialMapping::new(BASE, BASE + 0x10_0000, 10), None);
    }
}
