//! The frame table's invariants, checkable at any time (tests and the hostile-guest checks call
//! it; so can a debug key later).
//!
//! Every count is recomputed from first principles — the allocation references, the pins, the
//! references each present entry of each validated table holds, and the references the
//! hypervisor itself holds (page-table bases, GDT frames, shared pages) — and compared with
//! what the table records. Along the way, the type rules are re-checked: whatever a present L1
//! entry maps writable has the writable type, upper-level entries point at tables of the next
//! level (or read-only at the same level), free frames are untouched.

use super::frame_table::{FrameTable, Owner, PageType};
use super::pagetable::{ENTRIES, MmEnv, is_xen_l4_slot};
use crate::types::Mfn;
use alloc::vec;
use hypercall_abi::mm::{_PAGE_PRESENT, _PAGE_RW, PTE_ADDR_MASK};

/// References the hypervisor holds on a frame outside page tables: `(general, type)`.
pub type HeldRefs = (u32, u32);

/// A broken invariant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// The general count differs from the references found.
    Count {
        /// The frame.
        mfn: Mfn,
        /// Recorded.
        recorded: u32,
        /// Found.
        expected: u32,
    },
    /// The type count differs from the references found.
    TypeCount {
        /// The frame.
        mfn: Mfn,
        /// Recorded.
        recorded: u32,
        /// Found.
        expected: u32,
    },
    /// A present entry points at a frame whose type does not fit it.
    WrongType {
        /// The table.
        table: Mfn,
        /// The entry.
        index: usize,
        /// Its target.
        target: Mfn,
    },
    /// A free or idle frame is in a state only a used frame can be in.
    BadIdleState(Mfn),
    /// A table's linear-map bookkeeping differs from its entries, or a table is both a linear
    /// target and has linear entries.
    Linear {
        /// The frame.
        mfn: Mfn,
        /// Recorded.
        recorded: i32,
        /// Found.
        expected: i32,
    },
    /// A page-table entry references a frame that no domain owns.
    Unowned {
        /// The table.
        table: Mfn,
        /// The entry.
        index: usize,
    },
}

/// Summary of a clean audit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuditSummary {
    /// Frames owned by domains.
    pub domain_frames: u64,
    /// Frames validated as page tables.
    pub page_tables: u64,
    /// Free frames.
    pub free_frames: u64,
}

/// Checks every invariant of `table`; `held(mfn)` gives the hypervisor's own references.
pub fn audit(
    table: &FrameTable<'_>,
    env: &impl MmEnv,
    held: &dyn Fn(Mfn) -> HeldRefs,
) -> Result<AuditSummary, Violation> {
    let len = usize::try_from(table.len()).unwrap_or(usize::MAX);
    let mut expected = vec![(0u32, 0u32); len];
    let mut linear = vec![(0i32, 0i32); len];
    let mut summary = AuditSummary::default();
    let bump = |exp: &mut [(u32, u32)], m: Mfn, g: u32, t: u32| {
        if let Some(e) = usize::try_from(m.0).ok().and_then(|i| exp.get_mut(i)) {
            e.0 = e.0.saturating_add(g);
            e.1 = e.1.saturating_add(t);
        }
    };
    for (mfn, f) in table.iter() {
        match f.owner {
            Owner::Free => {
                summary.free_frames += 1;
                if f.count != 0 || f.type_count != 0 || f.pinned || f.allocated {
                    return Err(Violation::BadIdleState(mfn));
                }
                continue;
            }
            Owner::Dom(_) => summary.domain_frames += 1,
            Owner::Xen | Owner::Io => continue,
        }
        if f.type_count == 0 && (f.ty != PageType::None || f.pinned) {
            return Err(Violation::BadIdleState(mfn));
        }
        let (g, t) = held(mfn);
        bump(
            &mut expected,
            mfn,
            g + u32::from(f.allocated) + u32::from(f.pinned),
            t + u32::from(f.pinned),
        );
        let Some(level) = (f.type_count > 0).then_some(f.ty.level()).flatten() else {
            continue;
        };
        summary.page_tables += 1;
        for i in 0..ENTRIES {
            if level == 4 && is_xen_l4_slot(i) {
                continue;
            }
            let e = env.read(mfn, i);
            if e & _PAGE_PRESENT == 0 {
                continue;
            }
            let target = Mfn((e & PTE_ADDR_MASK) >> 12);
            let tinfo = table.info(target).ok();
            if level == 1 {
                match tinfo.map(|t| t.owner) {
                    Some(Owner::Dom(_)) => {}
                    Some(Owner::Free | Owner::Xen) => {
                        return Err(Violation::Unowned {
                            table: mfn,
                            index: i,
                        });
                    }
                    // Device memory: no references.
                    Some(Owner::Io) | None => continue,
                }
                if e & _PAGE_RW != 0 {
                    if tinfo.map(|t| t.ty) != Some(PageType::Writable) {
                        return Err(Violation::WrongType {
                            table: mfn,
                            index: i,
                            target,
                        });
                    }
                    bump(&mut expected, target, 1, 1);
                } else {
                    bump(&mut expected, target, 1, 0);
                }
            } else {
                if target == mfn {
                    if e & _PAGE_RW != 0 {
                        return Err(Violation::WrongType {
                            table: mfn,
                            index: i,
                            target,
                        });
                    }
                    continue;
                }
                let tty = tinfo.map(|t| t.ty);
                let lower = PageType::table(level - 1);
                let linear_ok = e & _PAGE_RW == 0 && tty == PageType::table(level);
                if tty != lower && !linear_ok {
                    return Err(Violation::WrongType {
                        table: mfn,
                        index: i,
                        target,
                    });
                }
                if tty != lower {
                    // A linear entry: (entries held, uses as a target).
                    if let Some(l) = usize::try_from(mfn.0).ok().and_then(|x| linear.get_mut(x)) {
                        l.0 += 1;
                    }
                    if let Some(l) = usize::try_from(target.0)
                        .ok()
                        .and_then(|x| linear.get_mut(x))
                    {
                        l.1 += 1;
                    }
                }
                bump(&mut expected, target, 1, 1);
            }
        }
    }
    for (mfn, f) in table.iter() {
        if !matches!(f.owner, Owner::Dom(_)) {
            continue;
        }
        let (g, t) = usize::try_from(mfn.0)
            .ok()
            .and_then(|i| expected.get(i))
            .copied()
            .unwrap_or_default();
        let (entries, uses) = usize::try_from(mfn.0)
            .ok()
            .and_then(|i| linear.get(i))
            .copied()
            .unwrap_or_default();
        if (entries > 0 && uses > 0) || f.linear != entries - uses {
            return Err(Violation::Linear {
                mfn,
                recorded: f.linear,
                expected: entries - uses,
            });
        }
        if f.count != g {
            return Err(Violation::Count {
                mfn,
                recorded: f.count,
                expected: g,
            });
        }
        // Descriptor pages' and writable frames' type references come only from the places
        // counted above too.
        if f.type_count != t {
            return Err(Violation::TypeCount {
                mfn,
                recorded: f.type_count,
                expected: t,
            });
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::frame_table::FrameInfo;
    use crate::mm::pagetable::tests::{D, FakeEnv, ctx};
    use crate::types::DomId;

    fn none(_: Mfn) -> HeldRefs {
        (0, 0)
    }

    #[test]
    fn consistent_tables_pass_and_miscounts_are_caught() {
        let mut s = vec![FrameInfo::FREE; 16];
        let mut env = FakeEnv::default();
        {
            let mut t = FrameTable::new(&mut s);
            for m in 1..=8 {
                t.assign(Mfn(m), D).unwrap();
            }
            env.write(Mfn(1), 0, (2 << 12) | 3);
            env.write(Mfn(2), 0, (3 << 12) | 3);
            env.write(Mfn(3), 0, (4 << 12) | 3);
            env.write(Mfn(4), 0, (5 << 12) | 3);
            env.write(Mfn(4), 1, (6 << 12) | 1);
            t.pin(&mut env, &ctx(D), Mfn(1), 4).unwrap();
            let sum = audit(&t, &env, &none).unwrap();
            assert_eq!(
                sum,
                AuditSummary {
                    domain_frames: 8,
                    page_tables: 4,
                    free_frames: 8
                }
            );
            // The hypervisor holding a base pointer on the L4 must be declared.
            t.get_page(Mfn(1), D).unwrap();
            assert!(matches!(
                audit(&t, &env, &none),
                Err(Violation::Count { .. })
            ));
            assert!(audit(&t, &env, &|m| if m == Mfn(1) { (1, 0) } else { (0, 0) }).is_ok());
        }
        // A corrupted count is found.
        s[5].count += 1;
        {
            let t = FrameTable::new(&mut s);
            let held = |m: Mfn| if m == Mfn(1) { (1, 0) } else { (0, 0) };
            assert_eq!(
                audit(&t, &env, &held),
                Err(Violation::Count {
                    mfn: Mfn(5),
                    recorded: 3,
                    expected: 2
                })
            );
        }
        s[5].count -= 1;
        // A writable mapping of a frame that is not typed writable is found.
        s[5].ty = PageType::None;
        s[5].type_count = 0;
        {
            let t = FrameTable::new(&mut s);
            let held = |m: Mfn| if m == Mfn(1) { (1, 0) } else { (0, 0) };
            assert!(matches!(
                audit(&t, &env, &held),
                Err(Violation::WrongType { .. })
            ));
        }
        // A free frame with a count is found.
        s[5] = FrameInfo {
            ty: PageType::Writable,
            type_count: 1,
            ..s[5]
        };
        s[12].count = 1;
        let t = FrameTable::new(&mut s);
        let held = |m: Mfn| if m == Mfn(1) { (1, 0) } else { (0, 0) };
        assert_eq!(
            audit(&t, &env, &held),
            Err(Violation::BadIdleState(Mfn(12)))
        );
        let _ = DomId(0);
    }
}
