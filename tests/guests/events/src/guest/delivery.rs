//! Delivery through the upcall: exact counts over 10,000 sends, edge coalescing while masked,
//! port masking with both unmask paths, and nested upcalls.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use guest_support::{Checks, info};
use pv_guest_kit::abi::domid::DOMID_SELF;
use pv_guest_kit::arch::shared;
use pv_guest_kit::events::{self, Port};
use pv_guest_kit::hypercall::evtchn as raw;
use pv_guest_kit::time;

/// Sends per counted run.
const SENDS: u64 = 10_000;

static BOUND: AtomicU64 = AtomicU64::new(0);
static OTHER: AtomicU64 = AtomicU64::new(0);
/// The loopback pair of [`counted`]: (unbound end, bound end), kept for the later checks.
static PAIR: AtomicU64 = AtomicU64::new(0);

fn on_bound(_: Port) {
    BOUND.fetch_add(1, Ordering::SeqCst);
}

fn on_other(_: Port) {
    OTHER.fetch_add(1, Ordering::SeqCst);
}

fn pair() -> Option<(Port, Port)> {
    let packed = PAIR.load(Ordering::SeqCst);
    let u = u32::try_from(packed >> 32).ok()?;
    let l = u32::try_from(packed & 0xffff_ffff).ok()?;
    (packed != 0).then_some((u, l))
}

/// A loopback pair with handlers: (unbound end `u` handled by `on_u`, bound end `l` by `on_l`).
pub fn loopback_pair(on_u: fn(Port), on_l: fn(Port)) -> Option<(Port, Port)> {
    let u = raw::alloc_unbound(DOMID_SELF).ok()?;
    let l = raw::bind_interdomain(DOMID_SELF, u).ok()?;
    events::attach(l, 0, on_l).ok()?;
    events::attach(u, 0, on_u).ok()?;
    Some((u, l))
}

pub fn counted(c: &mut Checks) {
    let Some((u, l)) = loopback_pair(on_other, on_bound) else {
        c.fail(
            "delivery: a loopback pair with handlers",
            format_args!("failed"),
        );
        return;
    };
    PAIR.store(u64::from(u) << 32 | u64::from(l), Ordering::SeqCst);
    c.eq(
        "the bind-time event waits while events are masked",
        BOUND.load(Ordering::SeqCst),
        0,
    );
    let before = events::stats(0);
    events::enable();
    c.eq(
        "enabling events delivers the bind-time event once",
        BOUND.load(Ordering::SeqCst),
        1,
    );
    let start = time::now_ns().unwrap_or(0);
    let mut errors = 0u32;
    for _ in 0..SENDS {
        if raw::send(u).is_err() {
            errors += 1;
        }
    }
    let elapsed = time::now_ns().unwrap_or(0).saturating_sub(start);
    c.eq("10,000 sends: every one returned 0", errors, 0);
    c.eq(
        "10,000 sends to a loopback port: its handler ran exactly 10,000 times",
        BOUND.load(Ordering::SeqCst),
        1 + SENDS,
    );
    for _ in 0..SENDS {
        let _ = raw::send(l);
    }
    c.eq(
        "10,000 sends the other way: exactly 10,000 handler calls",
        OTHER.load(Ordering::SeqCst),
        SENDS,
    );
    let after = events::stats(0);
    info(format_args!(
        "20,001 events: {} upcalls ({} spurious, {} nested), {} handler calls; \
         send + upcall + iret {} ns each",
        after.upcalls - before.upcalls,
        after.spurious - before.spurious,
        after.nested - before.nested,
        after.handled - before.handled,
        elapsed / SENDS
    ));
    c.eq(
        "one upcall per event, none spurious",
        (
            after.upcalls - before.upcalls,
            after.spurious - before.spurious,
        ),
        (1 + 2 * SENDS, 0),
    );
    let was_enabled = events::disable();
    for _ in 0..10 {
        let _ = raw::send(u);
    }
    c.check(
        "10 sends with events masked: pending, no handler call yet",
        events::is_pending(l) && BOUND.load(Ordering::SeqCst) == 1 + SENDS,
        format_args!("count {}", BOUND.load(Ordering::SeqCst)),
    );
    events::restore(was_enabled);
    c.eq(
        "... one handler call when events are enabled (edge semantics)",
        BOUND.load(Ordering::SeqCst),
        2 + SENDS,
    );
}

pub fn masking(c: &mut Checks) {
    let Some((u, l)) = pair() else {
        return;
    };
    let count = || BOUND.load(Ordering::SeqCst);
    let base = count();
    c.check(
        "mask(port): it was unmasked",
        !events::mask(l),
        format_args!("was masked"),
    );
    c.eq("send to a masked port: 0", raw::send(u), Ok(0));
    c.check(
        "send to a masked port: pending, no upcall, no handler call",
        events::is_pending(l) && count() == base,
        format_args!("pending {} count {}", events::is_pending(l), count() - base),
    );
    c.eq(
        "kit unmask (guest fast path): Ok",
        events::unmask(l),
        Ok(()),
    );
    c.eq(
        "fast-path unmask of a pending port: its handler runs once",
        count(),
        base + 1,
    );
    c.check(
        "... and the port is no longer pending or masked",
        !events::is_pending(l) && !events::is_masked(l),
        format_args!(
            "pending {} masked {}",
            events::is_pending(l),
            events::is_masked(l)
        ),
    );
    events::mask(l);
    let _ = raw::send(u);
    c.eq(
        "EVTCHNOP_unmask of a pending port: 0",
        raw::unmask(l),
        Ok(0),
    );
    c.eq(
        "EVTCHNOP_unmask re-raises the pending port: its handler runs once",
        count(),
        base + 2,
    );
    c.check(
        "EVTCHNOP_unmask clears the mask bit",
        !events::is_masked(l),
        format_args!("still masked"),
    );
    c.eq(
        "EVTCHNOP_unmask of an unmasked, idle port: 0, nothing runs",
        (raw::unmask(l), count()),
        (Ok(0), base + 2),
    );

    // With events masked on the vCPU, the bits themselves can be watched.
    let Ok(vcpu) = shared::vcpu0() else {
        return;
    };
    let word_bit = 1u64 << (l / 64);
    let was_enabled = events::disable();
    events::mask(l);
    let _ = raw::send(u);
    c.check(
        "masked port: send sets only its pending bit (no selector bit, no upcall_pending)",
        events::is_pending(l) && vcpu.pending_sel() & word_bit == 0 && vcpu.upcall_pending() == 0,
        format_args!(
            "pending {} sel {:#x} upcall_pending {}",
            events::is_pending(l),
            vcpu.pending_sel(),
            vcpu.upcall_pending()
        ),
    );
    let _ = raw::unmask(l);
    c.check(
        "EVTCHNOP_unmask with events masked: selector bit and upcall_pending set, no upcall",
        vcpu.pending_sel() & word_bit != 0 && vcpu.upcall_pending() == 1 && count() == base + 2,
        format_args!(
            "sel {:#x} upcall_pending {} count {}",
            vcpu.pending_sel(),
            vcpu.upcall_pending(),
            count() - base
        ),
    );
    events::restore(was_enabled);
    c.eq(
        "enabling events then delivers it: one handler call",
        count(),
        base + 3,
    );
    let _ = events::disable();
    events::mask(l);
    let _ = raw::send(u);
    let _ = events::unmask(l);
    c.check(
        "fast-path unmask with events masked: selector bit and upcall_pending set by the guest",
        vcpu.pending_sel() & word_bit != 0 && vcpu.upcall_pending() == 1 && count() == base + 3,
        format_args!(
            "sel {:#x} upcall_pending {} count {}",
            vcpu.pending_sel(),
            vcpu.upcall_pending(),
            count() - base
        ),
    );
    events::enable();
    c.eq(
        "... and enabling events (with a hypercall to get it delivered) runs the handler",
        count(),
        base + 4,
    );
}

static OUTER: AtomicU32 = AtomicU32::new(0);
static INNER: AtomicU32 = AtomicU32::new(0);
static INNER_DURING_OUTER: AtomicU32 = AtomicU32::new(0);
static INNER_SEND: AtomicU32 = AtomicU32::new(0);
static SELF_COUNT: AtomicU32 = AtomicU32::new(0);
static SELF_SEND: AtomicU32 = AtomicU32::new(0);

fn on_outer(_: Port) {
    OUTER.fetch_add(1, Ordering::SeqCst);
    events::enable();
    let _ = raw::send(INNER_SEND.load(Ordering::SeqCst));
    INNER_DURING_OUTER.store(INNER.load(Ordering::SeqCst), Ordering::SeqCst);
    events::disable();
}

fn on_inner(_: Port) {
    INNER.fetch_add(1, Ordering::SeqCst);
}

fn on_self(_: Port) {
    if SELF_COUNT.fetch_add(1, Ordering::SeqCst) == 0 {
        events::enable();
        let _ = raw::send(SELF_SEND.load(Ordering::SeqCst));
        events::disable();
    }
}

pub fn nested(c: &mut Checks) {
    let (Some((ou, ol)), Some((iu, il))) = (
        loopback_pair(on_inner, on_outer),
        loopback_pair(on_inner, on_inner),
    ) else {
        c.fail("nested: two loopback pairs", format_args!("failed"));
        return;
    };
    // The bind-time events of both bound ends ran (events are enabled): start from zero.
    OUTER.store(0, Ordering::SeqCst);
    INNER.store(0, Ordering::SeqCst);
    INNER_SEND.store(iu, Ordering::SeqCst);
    let before = events::stats(0);
    let _ = raw::send(ou);
    let after = events::stats(0);
    c.eq(
        "a handler that enables events and sends: the other handler runs nested, inside it",
        (
            OUTER.load(Ordering::SeqCst),
            INNER.load(Ordering::SeqCst),
            INNER_DURING_OUTER.load(Ordering::SeqCst),
        ),
        (1, 1, 1),
    );
    c.eq(
        "nested upcall counted: 2 upcalls, 1 nested, depth 2",
        (
            after.upcalls - before.upcalls,
            after.nested - before.nested,
            after.max_depth,
        ),
        (2, 1, 2),
    );
    let Some((su, sl)) = loopback_pair(on_inner, on_self) else {
        return;
    };
    SELF_COUNT.store(0, Ordering::SeqCst);
    SELF_SEND.store(su, Ordering::SeqCst);
    let _ = raw::send(su);
    c.eq(
        "a handler re-raising its own port with events enabled runs again, nested, once",
        SELF_COUNT.load(Ordering::SeqCst),
        2,
    );
    c.check(
        "events enabled again after the nested upcalls returned",
        events::are_enabled(),
        format_args!("masked"),
    );
    for port in [ou, ol, iu, il, su, sl] {
        let _ = events::close(port);
    }
}
