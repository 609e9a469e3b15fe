//! The kit's heap: a `linked_list_allocator` over the free tail of the initial mapping
//! ([`crate::layout::InitialMapping::free`]), installed as the global allocator when the
//! `global-allocator` feature is on (the default).

use core::ops::Range;

use linked_list_allocator::LockedHeap;

#[cfg_attr(feature = "global-allocator", global_allocator)]
static HEAP: LockedHeap = LockedHeap::empty();

static RANGE: spin::Once<Range<u64>> = spin::Once::new();

/// Hands `range` to the heap (once; later calls do nothing). Called by the entry code with the
/// free part of the initial mapping.
pub(crate) fn init(range: Range<u64>) {
    RANGE.call_once(|| {
        let size = usize::try_from(range.end - range.start).unwrap_or(0);
        if size > 0 {
            // SAFETY: `range` is the unused tail of the initial mapping: mapped read-write by the
            // builder, zeroed, and used by nothing else (the kit runs on its own stack); this
            // runs once.
            unsafe { HEAP.lock().init(range.start as *mut u8, size) };
        }
        range
    });
}

/// The heap's address range, empty before initialisation.
pub fn range() -> Range<u64> {
    RANGE.get().cloned().unwrap_or(0..0)
}

/// Bytes of the heap in use and free.
pub fn usage() -> (usize, usize) {
    let heap = HEAP.lock();
    (heap.used(), heap.free())
}
