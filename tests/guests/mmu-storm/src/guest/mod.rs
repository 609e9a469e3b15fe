//! The storm.
//!
//! Set-up: a private pool of frames from the kit's allocator — a private window in L4 slot 3
//! (an L3, an L2 and four L1s, pinned, hooked into the kernel L4), an "anchor" L4 pinned for
//! the whole storm, spare frames mapped read-only (free to be typed any way) and a few kept
//! writable. A snapshot of the kernel's page tables (every present entry outside the window)
//! is the protected set.
//!
//! The storm: rounds of one of
//! - an `mmu_update` batch of 1–32 requests (after a failure the rest is sent again, so every
//!   request is judged), or a single request;
//! - an `mmuext_op` batch of 1–8 operations;
//! - a single `update_va_mapping`;
//! - a `multicall` of 2–16 entries mixing the three;
//! - calls with junk pointers (non-canonical, unmapped, inside Xen), which must fail;
//!
//! until at least the requested number (default 100,000) of requests was judged. Every return
//! value must be 0 or `-errno` with an errno of Xen's set; `done` must be consistent with it;
//! the requests that must fail (see `requests.rs`) must; and the kernel's canaries and the protected
//! set are checked every 64 rounds and at the end.
//!
//! Clean-up: unhook the window, clear the user root and the LDT, restore the M2P entries of
//! the pool, unpin every pool frame, then map each pool frame writable again and give it back
//! to the allocator — which fails for a frame still typed as a page table (a type leak).

#[allow(unsafe_code, reason = "the hypercalls of the storm")]
mod raw;
mod requests;
mod rng;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use guest_support::{Checks, info};
use pv_guest_kit::abi::errno::Errno;
use pv_guest_kit::abi::hypercall::{
    HYPERVISOR_MMU_UPDATE, HYPERVISOR_MMUEXT_OP, HYPERVISOR_UPDATE_VA_MAPPING,
};
use pv_guest_kit::abi::mm::{
    _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_PRESENT, MMU_MACHPHYS_UPDATE, MmuCmd, MmuUpdate, MmuextCmd,
    MmuextOp, pte_mfn,
};
use pv_guest_kit::abi::multicall::MulticallEntry;
use pv_guest_kit::arch::{mm, virt_base};
use pv_guest_kit::hypercall::memory;
use pv_guest_kit::mm::{
    AddressSpace, Frame, Level, frames, is_guest_l4_slot, new_user_baseptr, pin, read_entry, unpin,
};
use pv_guest_kit::{StartInfo, println, traps};

use requests::{Pool, WINDOW, WINDOW_L1S, WINDOW_SLOT};
use rng::Rng;

pv_guest_kit::guest_kernel!(main);

/// Spare frames of the playground.
const RO_SPARES: usize = 40;
/// Frames kept writable.
const RW_FRAMES: usize = 8;
/// How often (in rounds) the protected set is compared.
const VERIFY_EVERY: u64 = 64;
/// How often (in rounds) the window's chain of tables is put back (so that
/// `update_va_mapping` keeps reaching real L1s however the storm scrambled it).
const REPAIR_EVERY: u64 = 128;
/// How many violations are printed in full.
const SHOW: u64 = 12;

static CANARY: AtomicU64 = AtomicU64::new(0x5afe_c0de_5afe_c0de);
/// A vCPU mask with vCPU 0 (for the `*_MULTI` flushes).
static VCPU_MASK: AtomicU64 = AtomicU64::new(1);

/// Counts of what happened.
#[derive(Debug)]
struct Tally {
    requests: u64,
    succeeded: u64,
    failed: u64,
    calls: u64,
    /// Return values outside {0, -errno of Xen's set}, or inconsistent `done` counts.
    bad_returns: u64,
    /// Requests that must fail but succeeded.
    wrongly_accepted: u64,
    /// Failures by errno number.
    errnos: [u64; 128],
    /// `(what, succeeded, failed)` by kind of call.
    kinds: [(&'static str, u64, u64); 12],
}

impl Tally {
    const fn new() -> Tally {
        Tally {
            requests: 0,
            succeeded: 0,
            failed: 0,
            calls: 0,
            bad_returns: 0,
            wrongly_accepted: 0,
            errnos: [0; 128],
            kinds: [("", 0, 0); 12],
        }
    }

    fn count(&mut self, what: &'static str, succeeded: u64, failed: u64) {
        let slot = match self.kinds.iter().position(|k| k.0 == what) {
            Some(i) => self.kinds.get_mut(i),
            None => self.kinds.iter_mut().find(|k| k.0.is_empty()),
        };
        if let Some(slot) = slot {
            *slot = (what, slot.1 + succeeded, slot.2 + failed);
        }
    }

    fn violation(&mut self, what: core::fmt::Arguments<'_>) {
        if self.bad_returns + self.wrongly_accepted <= SHOW {
            info(format_args!("violation: {what}"));
        }
    }

    /// Prints a violation's details (the first few only).
    fn show(&self, what: core::fmt::Arguments<'_>) {
        if self.bad_returns + self.wrongly_accepted <= SHOW {
            info(format_args!("  the request: {what}"));
        }
    }

    /// Judges a call of `n` requests that returned `ret` after completing `done` of them
    /// (`None`: not reported). Returns how many requests it judged, and the index of a request
    /// that must fail but was done, if any.
    fn judge(
        &mut self,
        what: &'static str,
        ret: i64,
        n: usize,
        done: Option<u32>,
        must_fail: &[bool],
    ) -> (usize, Option<usize>) {
        let done = done.map(|d| usize::try_from(d).unwrap_or(usize::MAX));
        let accepted = |t: &mut Tally, upto: usize| {
            let bad = must_fail.iter().take(upto).position(|&m| m);
            if let Some(i) = bad {
                t.wrongly_accepted += 1;
                t.violation(format_args!(
                    "{what}: request {i} of {n} must fail but was done"
                ));
            }
            bad
        };
        if ret == 0 {
            if done.is_some_and(|d| d != n) {
                self.bad_returns += 1;
                self.violation(format_args!("{what}: returned 0 with done {done:?} of {n}"));
            }
            let bad = accepted(self, n);
            self.requests += n as u64;
            self.succeeded += n as u64;
            self.count(what, n as u64, 0);
            return (n, bad);
        }
        let Some(errno) = Errno::from_ret(ret) else {
            self.bad_returns += 1;
            self.violation(format_args!(
                "{what}: returned {ret:#x}, not 0 or a Xen errno"
            ));
            self.requests += n as u64;
            self.failed += n as u64;
            self.count(what, 0, n as u64);
            return (n, None);
        };
        if let Some(slot) = self.errnos.get_mut(errno.raw() as usize) {
            *slot += 1;
        }
        let done = match done {
            Some(d) if d < n => d,
            Some(d) => {
                self.bad_returns += 1;
                self.violation(format_args!(
                    "{what}: failed ({errno:?}) with done {d} of {n}"
                ));
                n.saturating_sub(1)
            }
            None => 0,
        };
        let bad = accepted(self, done);
        self.requests += done as u64 + 1;
        self.succeeded += done as u64;
        self.failed += 1;
        self.count(what, done as u64, 1);
        (done + 1, bad)
    }
}

/// The kernel's page-table entries outside the window: `(table, index, entry)` with the
/// accessed and dirty bits masked (the CPU sets them).
fn snapshot(root: u64) -> Vec<(u64, usize, u64)> {
    fn walk(table: u64, level: Level, out: &mut Vec<(u64, usize, u64)>) {
        for index in 0..512 {
            if level == Level::L4 && !is_guest_l4_slot(index) {
                continue;
            }
            let Some(entry) = read_entry(table, index) else {
                continue;
            };
            if entry & _PAGE_PRESENT == 0 {
                continue;
            }
            out.push((table, index, entry & !(_PAGE_ACCESSED | _PAGE_DIRTY)));
            let below = level
                .lower()
                .filter(|_| !(level == Level::L4 && index == WINDOW_SLOT));
            if let Some(lower) = below {
                walk(pte_mfn(entry), lower, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, Level::L4, &mut out);
    out
}

fn changed(protected: &[(u64, usize, u64)]) -> usize {
    protected
        .iter()
        .filter(|&&(table, index, entry)| {
            read_entry(table, index).map(|e| e & !(_PAGE_ACCESSED | _PAGE_DIRTY)) != Some(entry)
        })
        .count()
}

fn main(si: StartInfo) -> ! {
    let (seed, target) = rng::parse_cmdline(si.cmdline());
    println!("mmu-storm: {target} random MMU requests, seed {seed:#x}");
    let mut c = Checks::new();
    c.eq("set_trap_table with the kit's stubs", traps::init(), Ok(0));

    let Some((pool, window)) = setup(&mut c, &si) else {
        c.finish();
    };
    let kernel = AddressSpace::current();
    let protected = snapshot(kernel.root());
    info(format_args!(
        "pool: {} read-only frames (window tables and anchor included), {} writable, anchor L4 {:#x}; \
         protected set: {} kernel entries",
        pool.ro.len(),
        pool.rw.len(),
        pool.anchor.mfn,
        protected.len()
    ));
    let heap_canary = Box::new([0x1357_9bdf_u64; 32]);

    let mut rng = Rng::new(seed);
    let mut t = Tally::new();
    let mut rounds = 0u64;
    let mut corrupted = 0usize;
    let mut canary_dead = false;
    let mut next_report = 20_000;
    while t.requests < target {
        round(&mut rng, &pool, &mut t);
        rounds += 1;
        if CANARY.load(Ordering::SeqCst) != 0x5afe_c0de_5afe_c0de
            || heap_canary.iter().any(|&w| w != 0x1357_9bdf)
        {
            canary_dead = true;
            break;
        }
        if rounds.is_multiple_of(REPAIR_EVERY) {
            repair(&window);
        }
        if rounds.is_multiple_of(VERIFY_EVERY) {
            corrupted = changed(&protected);
            if corrupted != 0 {
                break;
            }
        }
        if t.requests >= next_report {
            info(format_args!(
                "{} requests, {} succeeded, {} failed, {} calls",
                t.requests, t.succeeded, t.failed, t.calls
            ));
            next_report += 20_000;
        }
    }
    let corrupted_at_end = changed(&protected);

    println!(
        "STORM {} requests, {} succeeded, {} failed",
        t.requests, t.succeeded, t.failed
    );
    info(format_args!("{} hypercalls in {rounds} rounds", t.calls));
    for &(what, ok, failed) in t.kinds.iter().filter(|k| !k.0.is_empty()) {
        info(format_args!("{what}: {ok} succeeded, {failed} failed"));
    }
    for (errno, &n) in t.errnos.iter().enumerate().filter(|&(_, &n)| n > 0) {
        let name = u32::try_from(errno)
            .ok()
            .and_then(Errno::from_raw)
            .map_or("?", Errno::name);
        info(format_args!("-{name}: {n}"));
    }
    c.check(
        "at least the requested number of requests was judged",
        t.requests >= target,
        format_args!("{} of {target}", t.requests),
    );
    c.check(
        "every call returned 0 or -errno of Xen's set, with a consistent done count",
        t.bad_returns == 0,
        format_args!("{} bad returns", t.bad_returns),
    );
    c.check(
        "every request that must fail failed",
        t.wrongly_accepted == 0,
        format_args!("{} accepted", t.wrongly_accepted),
    );
    c.check(
        "both valid and invalid requests were issued (some succeeded, some failed)",
        t.succeeded > target / 20 && t.failed > target / 20,
        format_args!("{} succeeded, {} failed", t.succeeded, t.failed),
    );
    c.check(
        "the kernel's canaries survived",
        !canary_dead,
        format_args!("a canary changed"),
    );
    c.eq(
        "the kernel's page tables (the protected set) never changed",
        (corrupted, corrupted_at_end),
        (0, 0),
    );
    cleanup(&mut c, &si, pool, window);
    c.finish()
}

/// The window's tables.
struct Window {
    /// The kernel L4 entry (slot 3) pointing at the window's L3.
    hook: u64,
    /// The L3, the L2 and the L1s, in that order.
    tables: Vec<Frame>,
}

/// Points the window's L3 at its L2 and the L2 at its L1s again, and re-pins them. Not part
/// of the storm's count: the results do not matter (a table the storm retyped is refused).
fn repair(window: &Window) {
    let mut reqs = Vec::new();
    if let (Some(l3), Some(l2)) = (window.tables.first(), window.tables.get(1)) {
        reqs.push(MmuUpdate::new(
            MmuCmd::NormalPtUpdate,
            l3.entry_maddr(0),
            l2.pte(pv_guest_kit::mm::flags::TABLE),
        ));
        for (k, l1) in window.tables.iter().skip(2).enumerate() {
            reqs.push(MmuUpdate::new(
                MmuCmd::NormalPtUpdate,
                l2.entry_maddr(k),
                l1.pte(pv_guest_kit::mm::flags::TABLE),
            ));
        }
    }
    for req in &reqs {
        let mut done = 0;
        let _ = raw::mmu_update_slice(
            core::slice::from_ref(req),
            &mut done,
            u64::from(pv_guest_kit::abi::domid::DOMID_SELF),
        );
    }
}

fn setup(c: &mut Checks, si: &StartInfo) -> Option<(Pool, Window)> {
    let kernel = AddressSpace::current();
    let mut ro = Vec::new();
    for k in 0..WINDOW_L1S {
        match kernel.ensure_table(WINDOW + k * (2 << 20), Level::L1) {
            Ok(_) => {}
            Err(err) => {
                c.fail("the private window's tables", format_args!("{err}"));
                return None;
            }
        }
    }
    let walk = kernel.walk(WINDOW);
    let (Some(l4e), Some(l3), Some(l2)) =
        (walk.at(Level::L4), walk.at(Level::L3), walk.at(Level::L2))
    else {
        c.fail("the private window's tables", format_args!("{walk:x?}"));
        return None;
    };
    let frame_of = |mfn: u64| mm::mfn_to_pfn(mfn).map(|pfn| Frame::new(pfn, mfn));
    let mut tables = Vec::new();
    tables.push((Level::L3, l3.table));
    tables.push((Level::L2, l2.table));
    for k in 0..WINDOW_L1S {
        if let Some(step) = kernel.walk(WINDOW + k * (2 << 20)).l1() {
            tables.push((Level::L1, step.table));
        }
    }
    let mut pinned = 0;
    let mut window_tables = Vec::new();
    for &(level, mfn) in &tables {
        if let Some(frame) = frame_of(mfn) {
            ro.push(frame);
            window_tables.push(frame);
            pinned += usize::from(pin(level, mfn).is_ok());
        }
    }
    c.eq(
        "the private window: L3, L2 and 4 L1s from the allocator, pinned",
        pinned,
        2 + usize::try_from(WINDOW_L1S).unwrap_or(0),
    );
    let Ok(anchor) = frames::alloc_table() else {
        c.fail("the anchor L4", format_args!("no frame"));
        return None;
    };
    c.eq("the anchor L4, pinned", pin(Level::L4, anchor.mfn), Ok(()));
    ro.push(anchor);
    for _ in 0..RO_SPARES {
        match frames::alloc_table() {
            Ok(frame) => ro.push(frame),
            Err(err) => {
                c.fail("spare frames", format_args!("{err}"));
                return None;
            }
        }
    }
    let rw: Vec<Frame> = (0..RW_FRAMES).filter_map(|_| frames::alloc()).collect();
    let pt_first = (si.pt_base - virt_base()) / 4096;
    let pt_end = pt_first + si.nr_pt_frames;
    let initial_end = frames::stats().first_pfn;
    let mut rng = Rng::new(0x07e3);
    let mut others = Vec::new();
    while others.len() < 64 {
        let pfn = rng.below(initial_end);
        if (pt_first..pt_end).contains(&pfn) {
            continue;
        }
        if let Some(mfn) = mm::pfn_to_mfn(pfn) {
            others.push(mfn);
        }
    }
    let max_ram = memory::maximum_ram_page().unwrap_or(1 << 24);
    info(format_args!("maximum_ram_page {max_ram:#x}"));
    Some((
        Pool {
            ro,
            rw,
            anchor,
            others,
            junk_mfn: max_ram + 1,
            mask: VCPU_MASK.as_ptr() as u64,
            kernel_root: kernel.root(),
            nr_pages: si.nr_pages,
        },
        Window {
            hook: l4e.maddr(),
            tables: window_tables,
        },
    ))
}

fn round(rng: &mut Rng, pool: &Pool, t: &mut Tally) {
    let size = rng.below_usize(32);
    match rng.below(100) {
        0..35 => mmu_batch(rng, pool, t, 1 + size),
        35..50 => mmu_batch(rng, pool, t, 1),
        50..65 => mmuext_batch(rng, pool, t, 1 + size % 8),
        65..80 => {
            let ([va, val, flags], must_fail) = requests::update_va_mapping(rng, pool);
            let ret = raw::update_va_mapping(va, val, flags);
            t.calls += 1;
            let done = u32::from(ret == 0);
            let (_, bad) = t.judge("update_va_mapping", ret, 1, Some(done), &[must_fail]);
            if bad.is_some() {
                t.show(format_args!("va {va:#x} val {val:#x} flags {flags:#x}"));
            }
        }
        80..97 => multicall(rng, pool, t, 2 + size % 15),
        _ => junk_pointers(rng, t),
    }
}

fn mmu_batch(rng: &mut Rng, pool: &Pool, t: &mut Tally, n: usize) {
    let mut reqs = [MmuUpdate::default(); 32];
    let mut must_fail = [false; 32];
    let n = n.min(32);
    for (req, mf) in reqs.iter_mut().zip(must_fail.iter_mut()).take(n) {
        (*req, *mf) = requests::mmu_update(rng, pool);
    }
    let fd = requests::foreigndom(rng);
    let mut start = 0;
    while start < n {
        let (Some(slice), Some(mf)) = (reqs.get(start..n), must_fail.get(start..n)) else {
            break;
        };
        let mut done = 0u32;
        let ret = raw::mmu_update_slice(slice, &mut done, fd);
        t.calls += 1;
        let (judged, bad) = t.judge("mmu_update", ret, slice.len(), Some(done), mf);
        if let Some(req) = bad.and_then(|i| slice.get(i)) {
            t.show(format_args!(
                "ptr {:#x} val {:#x} foreigndom {fd:#x}",
                req.ptr, req.val
            ));
        }
        start += judged;
    }
}

fn mmuext_batch(rng: &mut Rng, pool: &Pool, t: &mut Tally, n: usize) {
    let mut ops = [MmuextOp::default(); 8];
    let mut must_fail = [false; 8];
    let n = n.min(8);
    for (op, mf) in ops.iter_mut().zip(must_fail.iter_mut()).take(n) {
        let (va, _) = requests::address(rng);
        (*op, *mf) = requests::mmuext(rng, pool, va);
    }
    let fd = if rng.chance(90) {
        u64::from(pv_guest_kit::abi::domid::DOMID_SELF)
    } else {
        requests::foreigndom(rng)
    };
    let mut start = 0;
    while start < n {
        let (Some(slice), Some(mf)) = (ops.get(start..n), must_fail.get(start..n)) else {
            break;
        };
        let mut done = 0u32;
        let ret = raw::mmuext_op_slice(slice, &mut done, fd);
        t.calls += 1;
        let (judged, bad) = t.judge("mmuext_op", ret, slice.len(), Some(done), mf);
        if let Some(op) = bad.and_then(|i| slice.get(i)) {
            t.show(format_args!(
                "cmd {} arg1 {:#x} arg2 {:#x} foreigndom {fd:#x}",
                op.cmd, op.arg1, op.arg2
            ));
        }
        start += judged;
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Uvm,
    Mmu(usize),
    Ext(usize),
}

fn multicall(rng: &mut Rng, pool: &Pool, t: &mut Tally, n: usize) {
    const MAX: usize = 16;
    let n = n.min(MAX);
    let mut entries = [MulticallEntry::default(); MAX];
    let mut kinds = [Kind::Uvm; MAX];
    let mut must_fail = [[false; 4]; MAX];
    let mut mmu_reqs = [[MmuUpdate::default(); 4]; MAX];
    let mut ext_ops = [[MmuextOp::default(); 2]; MAX];
    let mut dones = [0u32; MAX];
    let mut report_done = [true; MAX];
    for i in 0..n {
        let (Some(entry), Some(kind), Some(mf), Some(reqs), Some(ops), Some(done), Some(report)) = (
            entries.get_mut(i),
            kinds.get_mut(i),
            must_fail.get_mut(i),
            mmu_reqs.get_mut(i),
            ext_ops.get_mut(i),
            dones.get_mut(i),
            report_done.get_mut(i),
        ) else {
            break;
        };
        *report = rng.chance(80);
        let done_ptr = if *report {
            core::ptr::from_mut(done) as u64
        } else {
            0
        };
        match rng.below(100) {
            0..50 => {
                let ([va, val, flags], m) = requests::update_va_mapping(rng, pool);
                mf[0] = m;
                *kind = Kind::Uvm;
                *entry = MulticallEntry {
                    op: u64::from(HYPERVISOR_UPDATE_VA_MAPPING),
                    result: 0,
                    args: [va, val, flags, 0, 0, 0],
                };
            }
            50..80 => {
                let k = 1 + rng.below_usize(4);
                for (req, m) in reqs.iter_mut().zip(mf.iter_mut()).take(k) {
                    (*req, *m) = requests::mmu_update(rng, pool);
                }
                *kind = Kind::Mmu(k);
                *entry = MulticallEntry {
                    op: u64::from(HYPERVISOR_MMU_UPDATE),
                    result: 0,
                    args: [
                        reqs.as_ptr() as u64,
                        k as u64,
                        done_ptr,
                        requests::foreigndom(rng),
                        0,
                        0,
                    ],
                };
            }
            _ => {
                let k = 1 + rng.below_usize(2);
                for (op, m) in ops.iter_mut().zip(mf.iter_mut()).take(k) {
                    let (va, _) = requests::address(rng);
                    (*op, *m) = requests::mmuext(rng, pool, va);
                }
                *kind = Kind::Ext(k);
                *entry = MulticallEntry {
                    op: u64::from(HYPERVISOR_MMUEXT_OP),
                    result: 0,
                    args: [
                        ops.as_ptr() as u64,
                        k as u64,
                        done_ptr,
                        u64::from(pv_guest_kit::abi::domid::DOMID_SELF),
                        0,
                        0,
                    ],
                };
            }
        }
    }
    let Some(batch) = entries.get_mut(..n) else {
        return;
    };
    let ret = raw::multicall(batch);
    t.calls += 1;
    if ret != 0 {
        t.bad_returns += 1;
        t.violation(format_args!("multicall of {n} entries returned {ret:#x}"));
        return;
    }
    for i in 0..n {
        let (Some(entry), Some(kind), Some(mf), Some(&done), Some(&report)) = (
            entries.get(i),
            kinds.get(i),
            must_fail.get(i),
            dones.get(i),
            report_done.get(i),
        ) else {
            break;
        };
        let ret = entry.result_signed();
        let (what, count, done) = match *kind {
            Kind::Uvm => ("multicall/update_va_mapping", 1, Some(u32::from(ret == 0))),
            Kind::Mmu(k) => ("multicall/mmu_update", k, report.then_some(done)),
            Kind::Ext(k) => ("multicall/mmuext_op", k, report.then_some(done)),
        };
        let (_, bad) = t.judge(what, ret, count, done, mf.get(..count).unwrap_or_default());
        let Some(b) = bad else {
            continue;
        };
        let [a0, a1, a2, a3, ..] = entry.args;
        match *kind {
            Kind::Uvm => t.show(format_args!("va {a0:#x} val {a1:#x} flags {a2:#x}")),
            Kind::Mmu(_) => {
                if let Some(req) = mmu_reqs.get(i).and_then(|r| r.get(b)) {
                    t.show(format_args!(
                        "ptr {:#x} val {:#x} foreigndom {a3:#x}",
                        req.ptr, req.val
                    ));
                }
            }
            Kind::Ext(_) => {
                if let Some(op) = ext_ops.get(i).and_then(|o| o.get(b)) {
                    t.show(format_args!(
                        "cmd {} arg1 {:#x} arg2 {:#x}",
                        op.cmd, op.arg1, op.arg2
                    ));
                }
            }
        }
    }
}

fn junk_pointers(rng: &mut Rng, t: &mut Tally) {
    let ptr = rng.pick(&requests::JUNK_POINTERS).unwrap_or(0);
    let n = 1 + rng.below(4);
    let self_dom = u64::from(pv_guest_kit::abi::domid::DOMID_SELF);
    let (what, ret) = match rng.below(3) {
        0 => (
            "mmu_update(junk pointer)",
            raw::mmu_update(ptr, n, 0, self_dom),
        ),
        1 => (
            "mmuext_op(junk pointer)",
            raw::mmuext_op(ptr, n, 0, self_dom),
        ),
        _ => ("multicall(junk pointer)", raw::multicall_raw(ptr, n)),
    };
    t.calls += 1;
    let (_, bad) = t.judge(what, ret, 1, None, &[true]);
    if bad.is_some() {
        t.show(format_args!("pointer {ptr:#x}, count {n}"));
    }
}

fn cleanup(c: &mut Checks, si: &StartInfo, pool: Pool, window: Window) {
    // The hook is the one entry of the kernel L4 the storm owns (slot 3).
    let unhook = [MmuUpdate::new(MmuCmd::NormalPtUpdate, window.hook, 0)];
    let mut done = 0;
    let ret = raw::mmu_update_slice(
        &unhook,
        &mut done,
        u64::from(pv_guest_kit::abi::domid::DOMID_SELF),
    );
    c.eq("unhook the private window from the kernel L4", ret, 0);
    c.eq("clear the user root", new_user_baseptr(None), Ok(()));
    let ldt = [MmuextOp::new(MmuextCmd::SetLdt, 0, 0)];
    let ret = raw::mmuext_op_slice(
        &ldt,
        &mut done,
        u64::from(pv_guest_kit::abi::domid::DOMID_SELF),
    );
    c.eq("clear the LDT", ret, 0);
    let all: Vec<Frame> = pool.ro.iter().chain(pool.rw.iter()).copied().collect();
    let restore: Vec<MmuUpdate> = all
        .iter()
        .map(|f| MmuUpdate {
            ptr: (f.mfn << 12) | u64::from(MMU_MACHPHYS_UPDATE),
            val: f.pfn,
        })
        .collect();
    let ret = raw::mmu_update_slice(
        &restore,
        &mut done,
        u64::from(pv_guest_kit::abi::domid::DOMID_SELF),
    );
    c.eq("restore the M2P entries of the pool", ret, 0);
    c.check(
        "the M2P maps every pool frame back to its PFN",
        all.iter().all(|f| mm::mfn_to_pfn(f.mfn) == Some(f.pfn)),
        format_args!("an entry differs"),
    );
    let unpinned = all.iter().filter(|f| unpin(f.mfn).is_ok()).count();
    info(format_args!("unpinned {unpinned} pool frames"));
    let still_typed: Vec<Frame> = pool
        .ro
        .iter()
        .copied()
        .filter(|&f| frames::make_writable(f).is_err())
        .collect();
    if let Some(f) = still_typed.first() {
        info(format_args!(
            "{} pool frames still typed, e.g. {f:x?}",
            still_typed.len()
        ));
    }
    c.eq(
        "no pool frame is still a page table (each maps writable again)",
        still_typed.len(),
        0,
    );
    let freed = all.iter().filter(|&&f| frames::free(f).is_ok()).count();
    c.eq(
        "every pool frame goes back to the allocator",
        freed,
        all.len(),
    );
    let user = AddressSpace::current();
    c.eq_hex(
        "the kernel still runs on its own root",
        user.root(),
        pool.kernel_root,
    );
    let _ = si;
}
