//! The frame table: for every machine frame, who owns it, what it is used as, and how many
//! references hold it — and the one place that decides every change of those.
//!
//! This is the "memory tracing" that makes paravirtualized page tables safe. Every frame has:
//! - an **owner**: free, the hypervisor, I/O (not RAM), or a domain;
//! - a general **reference count**: while non-zero the frame cannot change owner or be freed
//!   (a domain's allocation itself is one reference);
//! - a **type** (none, writable, L1–L4 page table, segment-descriptor page) with a **type
//!   count**: the type can only change while the type count is zero, so a frame is never at
//!   once a page table and writable by a guest;
//! - flags: **pinned** (an extra type reference the guest holds explicitly).
//!
//! Page-table types are *validated*: a frame becomes an L*n* table only after every present
//! entry in it has been checked and has taken its references ([`super::pagetable`] holds the
//! entry rules). A type count dropping to zero releases those references again.

use crate::types::{DomId, Mfn};

/// Who a frame belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// Free RAM, in the allocator.
    Free,
    /// Used by the hypervisor itself.
    Xen,
    /// Not RAM (device memory, firmware areas, holes).
    Io,
    /// Allocated to a domain.
    Dom(DomId),
}

/// What a frame is used as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageType {
    /// No particular use.
    None,
    /// Mapped writable by a guest, or written by the hypervisor on a guest's behalf.
    Writable,
    /// A validated level-1 page table.
    L1,
    /// A validated level-2 page table.
    L2,
    /// A validated level-3 page table.
    L3,
    /// A validated level-4 page table.
    L4,
    /// A validated GDT/LDT page.
    SegDesc,
}

impl PageType {
    /// The page-table type for `level` (1–4).
    pub fn table(level: u8) -> Option<PageType> {
        match level {
            1 => Some(PageType::L1),
            2 => Some(PageType::L2),
            3 => Some(PageType::L3),
            4 => Some(PageType::L4),
            _ => None,
        }
    }

    /// The page-table level of this type, if it is one.
    pub fn level(self) -> Option<u8> {
        match self {
            PageType::L1 => Some(1),
            PageType::L2 => Some(2),
            PageType::L3 => Some(3),
            PageType::L4 => Some(4),
            _ => None,
        }
    }

    /// Whether taking this type requires validating the frame's contents.
    pub fn needs_validation(self) -> bool {
        self.level().is_some() || self == PageType::SegDesc
    }
}

/// One frame's bookkeeping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameInfo {
    /// Owner.
    pub owner: Owner,
    /// Current type (meaningful while `type_count > 0`, or as the last type held).
    pub ty: PageType,
    /// References to the type.
    pub type_count: u32,
    /// General references.
    pub count: u32,
    /// The guest pinned this page-table frame (holds one type reference).
    pub pinned: bool,
    /// The domain's allocation of this frame holds one general reference.
    pub allocated: bool,
    /// Linear page-table bookkeeping (Xen's rules since XSA-240): positive, the number of
    /// read-only same-level entries this table has that point at *other* tables; negative,
    /// the number of such entries elsewhere pointing at this table. A table may be one or the
    /// other, never both, so linear mappings cannot form cycles that keep tables alive.
    pub linear: i32,
}

impl FrameInfo {
    /// A frame that is not RAM.
    pub const IO: FrameInfo = FrameInfo {
        owner: Owner::Io,
        ty: PageType::None,
        type_count: 0,
        count: 0,
        pinned: false,
        allocated: false,
        linear: 0,
    };
    /// A free RAM frame.
    pub const FREE: FrameInfo = FrameInfo {
        owner: Owner::Free,
        ..FrameInfo::IO
    };
}

/// Why a frame-table operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmError {
    /// The frame number is beyond the frame table.
    NoSuchFrame(Mfn),
    /// The frame is not owned by the domain that needs it.
    NotOwner(Mfn),
    /// The frame is free, or otherwise not in a state that allows this.
    BadState(Mfn),
    /// The frame already has a different type that is in use.
    TypeConflict(Mfn),
    /// A reference count would overflow.
    CountOverflow(Mfn),
    /// An entry of a page table or descriptor page is not allowed (frame, index).
    BadEntry(Mfn, usize),
    /// The frame is already pinned.
    AlreadyPinned(Mfn),
    /// The frame is not pinned.
    NotPinned(Mfn),
    /// The entry index is reserved for the hypervisor.
    ReservedSlot(Mfn, usize),
    /// A frame in use as something else cannot be mapped writable.
    Busy(Mfn),
    /// Device memory (or no memory at all) the domain has no right to map.
    NoIoAccess(Mfn),
}

impl MmError {
    /// The Xen errno a guest sees for this error (all are `-EINVAL` except ownership, which is
    /// `-EPERM` only where Xen says so; callers may refine).
    pub fn errno(self) -> hypercall_abi::errno::Errno {
        use hypercall_abi::errno::Errno;
        match self {
            MmError::CountOverflow(_) | MmError::Busy(_) => Errno::Ebusy,
            MmError::NoIoAccess(_) => Errno::Eperm,
            _ => Errno::Einval,
        }
    }
}

/// The frame table over frames `[0, len)`.
#[derive(Debug)]
pub struct FrameTable<'a> {
    frames: &'a mut [FrameInfo],
}

/// Counts are capped well below `u32::MAX` so that overflow attempts fail cleanly.
pub const MAX_COUNT: u32 = 1 << 30;

impl<'a> FrameTable<'a> {
    /// A frame table over `storage` (one entry per frame, all initially as given).
    pub fn new(storage: &'a mut [FrameInfo]) -> Self {
        Self { frames: storage }
    }

    /// Number of frames covered.
    pub fn len(&self) -> u64 {
        self.frames.len() as u64
    }

    /// Whether the table covers no frames.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The bookkeeping of `mfn`.
    pub fn info(&self, mfn: Mfn) -> Result<&FrameInfo, MmError> {
        usize::try_from(mfn.0)
            .ok()
            .and_then(|i| self.frames.get(i))
            .ok_or(MmError::NoSuchFrame(mfn))
    }

    pub(crate) fn info_mut(&mut self, mfn: Mfn) -> Result<&mut FrameInfo, MmError> {
        usize::try_from(mfn.0)
            .ok()
            .and_then(|i| self.frames.get_mut(i))
            .ok_or(MmError::NoSuchFrame(mfn))
    }

    /// Whether `mfn` is RAM (a frame the table tracks as allocatable memory).
    pub fn is_ram(&self, mfn: Mfn) -> bool {
        self.info(mfn).is_ok_and(|f| f.owner != Owner::Io)
    }

    /// Marks a frame as free RAM (at boot, for every frame the allocator manages).
    pub fn set_free(&mut self, mfn: Mfn) -> Result<(), MmError> {
        *self.info_mut(mfn)? = FrameInfo::FREE;
        Ok(())
    }

    /// Marks a frame as RAM the hypervisor uses (never a guest's, never in the allocator).
    pub fn set_xen(&mut self, mfn: Mfn) -> Result<(), MmError> {
        let f = self.info_mut(mfn)?;
        *f = FrameInfo {
            owner: Owner::Xen,
            count: 1,
            ..FrameInfo::FREE
        };
        Ok(())
    }

    /// Gives a free frame (just taken from the allocator) to `dom`; the allocation holds one
    /// general reference.
    pub fn assign(&mut self, mfn: Mfn, dom: DomId) -> Result<(), MmError> {
        let f = self.info_mut(mfn)?;
        if f.owner != Owner::Free || f.count != 0 || f.type_count != 0 {
            return Err(MmError::BadState(mfn));
        }
        *f = FrameInfo {
            owner: Owner::Dom(dom),
            count: 1,
            allocated: true,
            ..FrameInfo::FREE
        };
        Ok(())
    }

    /// Drops the domain's allocation reference (giving memory back, or tearing the domain
    /// down). Returns `true` if that freed the frame. Does nothing if it was already dropped.
    #[must_use = "a frame whose last reference went must go back to the allocator"]
    pub fn release_allocation(&mut self, mfn: Mfn) -> bool {
        match self.info_mut(mfn) {
            Ok(f) if f.allocated => {
                f.allocated = false;
                self.put_page(mfn)
            }
            _ => false,
        }
    }

    /// Takes a general reference on a frame owned by `dom`.
    pub fn get_page(&mut self, mfn: Mfn, dom: DomId) -> Result<(), MmError> {
        let f = self.info_mut(mfn)?;
        if f.owner != Owner::Dom(dom) {
            return Err(MmError::NotOwner(mfn));
        }
        if f.count == 0 {
            return Err(MmError::BadState(mfn));
        }
        if f.count >= MAX_COUNT {
            return Err(MmError::CountOverflow(mfn));
        }
        f.count += 1;
        Ok(())
    }

    /// Takes a general reference on a frame owned by any domain (privileged mappings of other
    /// domains' memory); returns the owner.
    pub fn get_page_any_domain(&mut self, mfn: Mfn) -> Result<DomId, MmError> {
        let owner = match self.info(mfn)?.owner {
            Owner::Dom(d) => d,
            _ => return Err(MmError::NotOwner(mfn)),
        };
        self.get_page(mfn, owner)?;
        Ok(owner)
    }

    /// Drops a general reference. Returns `true` when it was the last one: the frame is then
    /// free again and the caller must hand it back to the allocator.
    #[must_use = "a frame whose last reference went must go back to the allocator"]
    pub fn put_page(&mut self, mfn: Mfn) -> bool {
        let Ok(f) = self.info_mut(mfn) else {
            return false;
        };
        if f.count == 0 {
            // Callers only put references they hold; a miscount is a hypervisor bug, and the
            // invariant checker reports it. Never underflow.
            return false;
        }
        f.count -= 1;
        if f.count == 0 {
            *f = FrameInfo::FREE;
            return true;
        }
        false
    }

    /// Iterates over `(mfn, info)` for every frame.
    pub fn iter(&self) -> impl Iterator<Item = (Mfn, &FrameInfo)> {
        self.frames
            .iter()
            .enumerate()
            .map(|(i, f)| (Mfn(i as u64), f))
    }

    /// Frames owned by `dom`.
    pub fn frames_of(&self, dom: DomId) -> impl Iterator<Item = Mfn> + '_ {
        self.iter()
            .filter(move |(_, f)| f.owner == Owner::Dom(dom))
            .map(|(m, _)| m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(n: usize) -> Vec<FrameInfo> {
        vec![FrameInfo::FREE; n]
    }

    #[test]
    fn assign_get_put_lifecycle() {
        let mut s = table(8);
        let mut t = FrameTable::new(&mut s);
        let d = DomId(1);
        t.assign(Mfn(3), d).unwrap();
        assert_eq!(t.assign(Mfn(3), d), Err(MmError::BadState(Mfn(3))));
        t.get_page(Mfn(3), d).unwrap();
        assert_eq!(t.get_page(Mfn(3), DomId(2)), Err(MmError::NotOwner(Mfn(3))));
        assert!(!t.put_page(Mfn(3)));
        assert!(t.put_page(Mfn(3)), "last reference frees");
        assert_eq!(*t.info(Mfn(3)).unwrap(), FrameInfo::FREE);
        // A free frame cannot be referenced.
        assert_eq!(t.get_page(Mfn(3), d), Err(MmError::NotOwner(Mfn(3))));
        assert!(!t.put_page(Mfn(3)), "no underflow");
        assert_eq!(t.get_page(Mfn(99), d), Err(MmError::NoSuchFrame(Mfn(99))));
    }

    #[test]
    fn counts_cannot_overflow() {
        let mut s = table(2);
        let mut t = FrameTable::new(&mut s);
        t.assign(Mfn(1), DomId(0)).unwrap();
        t.info_mut(Mfn(1)).unwrap().count = MAX_COUNT;
        assert_eq!(
            t.get_page(Mfn(1), DomId(0)),
            Err(MmError::CountOverflow(Mfn(1)))
        );
    }

    #[test]
    fn io_and_xen_frames_are_nobodys() {
        let mut s = table(4);
        s[2] = FrameInfo::IO;
        let mut t = FrameTable::new(&mut s);
        t.set_xen(Mfn(1)).unwrap();
        assert!(!t.is_ram(Mfn(2)));
        assert!(t.is_ram(Mfn(1)));
        assert_eq!(
            t.get_page_any_domain(Mfn(1)),
            Err(MmError::NotOwner(Mfn(1)))
        );
        assert_eq!(
            t.get_page_any_domain(Mfn(2)),
            Err(MmError::NotOwner(Mfn(2)))
        );
        assert_eq!(t.assign(Mfn(1), DomId(0)), Err(MmError::BadState(Mfn(1))));
    }
}
