//! Shared-ring arithmetic: free-running `u32` indices, slot masking, used/free space, ring sizing
//! and the notification check (reference §13.2, §13.3, §14.1).
//!
//! All producer/consumer indices in Xen rings are free-running `u32` counters that wrap at 2^32.
//! The slot of index `i` in a ring of `size` (a power of two) entries or bytes is
//! `i & (size - 1)`; the number of unconsumed items is `prod - cons` modulo 2^32.

/// Size of the generic split-driver ring header (`DEFINE_RING_TYPES`).
pub const SRING_HEADER_SIZE: usize = 64;

/// Initial value of `req_event` / `rsp_event` in a freshly initialised shared ring.
pub const SRING_INITIAL_EVENT: u32 = 1;

/// The slot that free-running index `idx` maps to in a ring of `size` entries.
///
/// `size` must be a power of two (every Xen ring is): the slot is `idx & (size - 1)`. For other
/// sizes the result is still below `size` (so it is safe as an index) but consecutive indices
/// no longer visit the slots in order. A `size` of 0 yields 0 rather than underflowing.
#[must_use]
pub const fn ring_slot(idx: u32, size: u32) -> u32 {
    if size == 0 {
        return 0;
    }
    idx & (size - 1)
}

/// Number of unconsumed items: `prod - cons` with wrap-around.
#[must_use]
pub const fn ring_used(prod: u32, cons: u32) -> u32 {
    prod.wrapping_sub(cons)
}

/// Free space for the producer: `size - (prod - cons)`.
///
/// Returns `None` when the indices claim more than `size` items are outstanding — the peer has
/// written inconsistent (possibly hostile) indices and the ring must not be trusted.
#[must_use]
pub const fn ring_free(prod: u32, cons: u32, size: u32) -> Option<u32> {
    size.checked_sub(ring_used(prod, cons))
}

/// True if the indices are consistent for a ring of `size` items (`prod - cons <= size`).
#[must_use]
pub const fn ring_indices_valid(prod: u32, cons: u32, size: u32) -> bool {
    ring_used(prod, cons) <= size
}

/// Largest power of two `<= x` (0 for 0).
#[must_use]
pub const fn round_down_pow2(x: usize) -> usize {
    if x == 0 {
        0
    } else {
        1 << (usize::BITS - 1 - x.leading_zeros())
    }
}

/// Entries in a generic shared ring: `round_down_pow2((page_size - 64) / entry_size)`, where
/// `entry_size` is the larger of the request and response sizes.
///
/// Returns 0 when the page cannot hold the header or `entry_size` is 0.
#[must_use]
pub const fn ring_size(page_size: usize, entry_size: usize) -> usize {
    let Some(body) = page_size.checked_sub(SRING_HEADER_SIZE) else {
        return 0;
    };
    let Some(fit) = body.checked_div(entry_size) else {
        return 0;
    };
    round_down_pow2(fit)
}

/// [`ring_size`] for one 4 KiB page and the larger of a request and a response size.
#[must_use]
pub const fn ring_size_4k(req_size: usize, rsp_size: usize) -> usize {
    let entry = if req_size > rsp_size {
        req_size
    } else {
        rsp_size
    };
    ring_size(crate::PAGE_SIZE, entry)
}

/// The producer's notification check: after moving `prod` from `old_prod` to `new_prod`, notify
/// the peer iff its `event` index lies in `(old_prod, new_prod]`, i.e.
/// `(new_prod - event) < (new_prod - old_prod)` with wrapping arithmetic.
#[must_use]
pub const fn need_notify(old_prod: u32, new_prod: u32, event: u32) -> bool {
    new_prod.wrapping_sub(event) < new_prod.wrapping_sub(old_prod)
}

/// The header of a generic split-driver shared ring (64 bytes; reference §14.1). The entry
/// array follows at offset 64.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SringHeader {
    /// Requests produced (frontend writes).
    pub req_prod: u32,
    /// Backend wants a notification when `req_prod` passes this.
    pub req_event: u32,
    /// Responses produced (backend writes).
    pub rsp_prod: u32,
    /// Frontend wants a notification when `rsp_prod` passes this.
    pub rsp_event: u32,
    /// Private bytes (netif `smartpoll_active`, ...).
    pub pvt: [u8; 4],
    /// Padding; zero.
    pub _pad: [u8; 44],
}

impl Default for SringHeader {
    /// All zero, like a freshly allocated page (see [`SringHeader::initialised`]).
    fn default() -> Self {
        Self {
            req_prod: 0,
            req_event: 0,
            rsp_prod: 0,
            rsp_event: 0,
            pvt: [0; 4],
            _pad: [0; 44],
        }
    }
}

impl SringHeader {
    /// The initialised state (`SHARED_RING_INIT`): producers 0, both event indices 1.
    #[must_use]
    pub const fn initialised() -> Self {
        Self {
            req_prod: 0,
            req_event: SRING_INITIAL_EVENT,
            rsp_prod: 0,
            rsp_event: SRING_INITIAL_EVENT,
            pvt: [0; 4],
            _pad: [0; 44],
        }
    }
}

assert_layout!(SringHeader, size = 64, align = 4, {
    req_prod: u32 = 0,
    req_event: u32 = 4,
    rsp_prod: u32 = 8,
    rsp_event: u32 = 12,
    pvt: [u8; 4] = 16,
    _pad: [u8; 44] = 20,
});

const _: () = assert!(core::mem::size_of::<SringHeader>() == SRING_HEADER_SIZE);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_mask_free_running_indices() {
        assert_eq!(ring_slot(5, 1024), 5);
        assert_eq!(ring_slot(1024, 1024), 0);
        assert_eq!(ring_slot(u32::MAX, 2048), 2047);
        assert_eq!(ring_slot(u32::MAX, 32), 31);
        assert_eq!(ring_slot(7, 0), 0);
    }

    #[test]
    fn used_and_free_wrap_at_u32_max() {
        // The producer has wrapped past 2^32, the consumer has not: the unconsumed indices are
        // MAX-2, MAX-1, MAX (3 before the wrap) and 0, 1, 2, 3 (4 after it).
        let cons = u32::MAX - 2;
        let prod = 4u32;
        assert_eq!(ring_used(prod, cons), 7);
        assert_eq!(ring_free(prod, cons, 1024), Some(1017));
        assert_eq!(ring_used(u32::MAX, u32::MAX), 0);
        assert_eq!(ring_used(0, u32::MAX), 1);
        // Full ring, exactly.
        assert_eq!(
            ring_free(1024u32.wrapping_sub(10), u32::MAX - 9, 1024),
            Some(0)
        );
        // Hostile indices: more outstanding than the ring holds.
        assert_eq!(ring_free(2000, 0, 1024), None);
        assert!(!ring_indices_valid(2000, 0, 1024));
        assert_eq!(ring_free(0, 1, 1024), None); // cons ahead of prod
    }

    #[test]
    fn ring_sizes_from_reference() {
        assert_eq!(round_down_pow2(0), 0);
        assert_eq!(round_down_pow2(1), 1);
        assert_eq!(round_down_pow2(36), 32);
        assert_eq!(round_down_pow2(504), 256);
        assert_eq!(round_down_pow2(usize::MAX), 1 << (usize::BITS - 1));
        assert_eq!(ring_size(4096, 112), 32); // blkif
        assert_eq!(ring_size(4096, 12), 256); // netif tx
        assert_eq!(ring_size(4096, 8), 256); // netif rx
        assert_eq!(ring_size_4k(112, 16), 32);
        assert_eq!(ring_size(4096, 0), 0);
        assert_eq!(ring_size(32, 8), 0);
        assert_eq!(ring_size(4096, 4096), 0);
    }

    #[test]
    fn notify_check() {
        // Event inside (old, new] → notify.
        assert!(need_notify(10, 15, 11));
        assert!(need_notify(10, 15, 15));
        // Event at old or beyond new → no notify.
        assert!(!need_notify(10, 15, 10));
        assert!(!need_notify(10, 15, 16));
        // Nothing produced → never notify.
        assert!(!need_notify(10, 10, 10));
        // Across the u32 wrap.
        assert!(need_notify(u32::MAX - 1, 2, u32::MAX));
        assert!(need_notify(u32::MAX - 1, 2, 0));
        assert!(need_notify(u32::MAX - 1, 2, 2));
        assert!(!need_notify(u32::MAX - 1, 2, u32::MAX - 1));
        assert!(!need_notify(u32::MAX - 1, 2, 3));
        // Initial state: events = 1, first request 0 → 1 notifies.
        let h = SringHeader::initialised();
        assert!(need_notify(h.req_prod, 1, h.req_event));
        assert_eq!(SringHeader::default().req_event, 0);
    }
}
