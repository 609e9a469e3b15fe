//! The machine frame allocator: one bit per frame, naturally aligned power-of-two runs.
//!
//! The bitmap covers frames `[0, limit)`; a set bit means the frame is free. Frames enter the
//! allocator only through [`FrameAllocator::add_free_range`] (from the sanitised memory map),
//! so memory the firmware reserved, the image and the boot modules can never be handed out.
//! Freeing checks the range and refuses a double free, so a bookkeeping bug elsewhere shows up
//! as an error instead of silently corrupting the free set.

use crate::types::Mfn;

/// Largest run order supported (2^18 frames = 1 GiB).
pub const MAX_ORDER: u32 = 18;

/// What went wrong with a free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The run lies (partly) outside the frames the allocator covers.
    OutOfRange,
    /// The run is not aligned to its size, or its order is too large.
    BadRun,
    /// A frame of the run is already free.
    DoubleFree,
}

/// A bitmap frame allocator over caller-provided storage.
#[derive(Debug)]
pub struct FrameAllocator<'a> {
    bits: &'a mut [u64],
    limit: u64,
    free: u64,
    /// Word index where the last single-frame search succeeded.
    hint: usize,
}

impl<'a> FrameAllocator<'a> {
    /// Words of storage needed to cover frames `[0, limit)`.
    pub fn storage_words(limit: u64) -> usize {
        usize::try_from(limit.div_ceil(64)).unwrap_or(usize::MAX)
    }

    /// An allocator covering frames `[0, limit)` (capped by the storage), with nothing free.
    pub fn new(storage: &'a mut [u64], limit: u64) -> Self {
        storage.fill(0);
        let cap = (storage.len() as u64).saturating_mul(64);
        Self {
            bits: storage,
            limit: limit.min(cap),
            free: 0,
            hint: 0,
        }
    }

    /// Frames covered: `[0, limit)`.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Number of free frames.
    pub fn free_frames(&self) -> u64 {
        self.free
    }

    /// Whether `mfn` is free.
    pub fn is_free(&self, mfn: Mfn) -> bool {
        mfn.0 < self.limit && self.bit(mfn.0)
    }

    fn bit(&self, f: u64) -> bool {
        self.bits
            .get((f / 64) as usize)
            .is_some_and(|w| w & (1 << (f % 64)) != 0)
    }

    fn set(&mut self, f: u64, free: bool) {
        if let Some(w) = self.bits.get_mut((f / 64) as usize) {
            if free {
                *w |= 1 << (f % 64);
            } else {
                *w &= !(1 << (f % 64));
            }
        }
    }

    /// Makes `[start, start + count)` available. Frames beyond the covered limit are ignored;
    /// frames already free are a [`FrameError::DoubleFree`] (nothing is changed then).
    pub fn add_free_range(&mut self, start: Mfn, count: u64) -> Result<(), FrameError> {
        let end = start.0.saturating_add(count).min(self.limit);
        if start.0 >= end {
            return Ok(());
        }
        if (start.0..end).any(|f| self.bit(f)) {
            return Err(FrameError::DoubleFree);
        }
        for f in start.0..end {
            self.set(f, true);
        }
        self.free += end - start.0;
        Ok(())
    }

    /// Allocates one frame.
    pub fn alloc(&mut self) -> Option<Mfn> {
        let n = self.bits.len();
        for i in 0..n {
            let idx = (self.hint + i) % n;
            let w = self.bits[idx];
            if w != 0 {
                let f = idx as u64 * 64 + u64::from(w.trailing_zeros());
                if f >= self.limit {
                    continue;
                }
                self.set(f, false);
                self.free -= 1;
                self.hint = idx;
                return Some(Mfn(f));
            }
        }
        None
    }

    /// Allocates `2^order` contiguous frames aligned to their size; returns the first.
    pub fn alloc_run(&mut self, order: u32) -> Option<Mfn> {
        if order == 0 {
            return self.alloc();
        }
        if order > MAX_ORDER {
            return None;
        }
        let n = 1u64 << order;
        let mut f = 0u64;
        while f + n <= self.limit {
            if self.run_is_free(f, n) {
                for x in f..f + n {
                    self.set(x, false);
                }
                self.free -= n;
                return Some(Mfn(f));
            }
            f += n;
        }
        None
    }

    /// Whether the aligned run `[f, f + n)` is entirely free (word-at-a-time).
    fn run_is_free(&self, f: u64, n: u64) -> bool {
        if n >= 64 {
            let first = (f / 64) as usize;
            let words = (n / 64) as usize;
            self.bits
                .get(first..first + words)
                .is_some_and(|ws| ws.iter().all(|&w| w == u64::MAX))
        } else {
            let mask = (1u64 << n) - 1;
            self.bits
                .get((f / 64) as usize)
                .is_some_and(|w| (w >> (f % 64)) & mask == mask)
        }
    }

    /// Returns `2^order` frames starting at `start` (as allocated by [`Self::alloc_run`]).
    pub fn free_run(&mut self, start: Mfn, order: u32) -> Result<(), FrameError> {
        if order > MAX_ORDER || !start.0.is_multiple_of(1u64 << order) {
            return Err(FrameError::BadRun);
        }
        let n = 1u64 << order;
        let end = start.0.checked_add(n).ok_or(FrameError::OutOfRange)?;
        if end > self.limit {
            return Err(FrameError::OutOfRange);
        }
        if (start.0..end).any(|f| self.bit(f)) {
            return Err(FrameError::DoubleFree);
        }
        for f in start.0..end {
            self.set(f, true);
        }
        self.free += n;
        Ok(())
    }

    /// Returns one frame.
    pub fn free(&mut self, mfn: Mfn) -> Result<(), FrameError> {
        self.free_run(mfn, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn with_alloc<R>(limit: u64, f: impl FnOnce(&mut FrameAllocator<'_>) -> R) -> R {
        let mut storage = vec![0u64; FrameAllocator::storage_words(limit)];
        let mut a = FrameAllocator::new(&mut storage, limit);
        f(&mut a)
    }

    #[test]
    fn nothing_is_free_until_added() {
        with_alloc(1000, |a| {
            assert_eq!(a.free_frames(), 0);
            assert_eq!(a.alloc(), None);
            a.add_free_range(Mfn(100), 10).unwrap();
            assert_eq!(a.free_frames(), 10);
            assert!(a.is_free(Mfn(105)));
            assert!(!a.is_free(Mfn(110)));
        });
    }

    #[test]
    fn every_frame_once_then_exhaustion() {
        with_alloc(300, |a| {
            a.add_free_range(Mfn(1), 130).unwrap();
            a.add_free_range(Mfn(200), 100).unwrap();
            let mut seen = HashSet::new();
            while let Some(f) = a.alloc() {
                assert!(seen.insert(f), "{f:?} handed out twice");
                assert!((1..131).contains(&f.0) || (200..300).contains(&f.0));
            }
            assert_eq!(seen.len(), 230);
            assert_eq!(a.free_frames(), 0);
            for f in seen {
                a.free(f).unwrap();
            }
            assert_eq!(a.free_frames(), 230);
        });
    }

    #[test]
    fn ranges_past_the_limit_are_clipped() {
        with_alloc(100, |a| {
            a.add_free_range(Mfn(90), 50).unwrap();
            assert_eq!(a.free_frames(), 10);
            a.add_free_range(Mfn(u64::MAX - 1), 10).unwrap();
            assert_eq!(a.free_frames(), 10);
        });
    }

    #[test]
    fn runs_are_aligned_and_contiguous() {
        with_alloc(4096, |a| {
            a.add_free_range(Mfn(3), 4000).unwrap();
            for order in [1, 3, 6, 7, 9] {
                let f = a.alloc_run(order).unwrap();
                assert_eq!(f.0 % (1 << order), 0, "order {order} misaligned");
                for x in f.0..f.0 + (1 << order) {
                    assert!(!a.is_free(Mfn(x)));
                }
            }
            // Order 12 needs all 4096 frames: impossible with frames 0..3 missing.
            assert_eq!(a.alloc_run(12), None);
            assert_eq!(a.alloc_run(MAX_ORDER + 1), None);
        });
    }

    #[test]
    fn run_round_trip() {
        with_alloc(1024, |a| {
            a.add_free_range(Mfn(0), 1024).unwrap();
            let r = a.alloc_run(8).unwrap();
            assert_eq!(a.free_frames(), 768);
            a.free_run(r, 8).unwrap();
            assert_eq!(a.free_frames(), 1024);
            assert_eq!(a.alloc_run(10), Some(Mfn(0)));
        });
    }

    #[test]
    fn bad_frees_are_refused_without_changes() {
        with_alloc(256, |a| {
            a.add_free_range(Mfn(0), 256).unwrap();
            let f = a.alloc().unwrap();
            a.free(f).unwrap();
            assert_eq!(a.free(f), Err(FrameError::DoubleFree));
            assert_eq!(a.free(Mfn(256)), Err(FrameError::OutOfRange));
            assert_eq!(a.free(Mfn(u64::MAX)), Err(FrameError::OutOfRange));
            assert_eq!(a.free_run(Mfn(1), 1), Err(FrameError::BadRun));
            assert_eq!(a.free_run(Mfn(0), MAX_ORDER + 1), Err(FrameError::BadRun));
            assert_eq!(a.add_free_range(Mfn(10), 1), Err(FrameError::DoubleFree));
            assert_eq!(a.free_frames(), 256);
            // A partly free run: refused as a whole.
            let r = a.alloc_run(2).unwrap();
            a.free(r).unwrap();
            assert_eq!(a.free_run(r, 2), Err(FrameError::DoubleFree));
            assert!(!a.is_free(Mfn(r.0 + 1)));
        });
    }

    #[test]
    fn storage_caps_the_limit() {
        let mut storage = vec![0u64; 1];
        let mut a = FrameAllocator::new(&mut storage, 1000);
        assert_eq!(a.limit(), 64);
        a.add_free_range(Mfn(0), 1000).unwrap();
        assert_eq!(a.free_frames(), 64);
    }
}
