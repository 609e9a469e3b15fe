//! `SCHEDOP_poll` on event-channel ports (reference §12.1).

use guest_support::{Checks, info};
use pv_guest_kit::abi::domid::DOMID_SELF;
use pv_guest_kit::abi::errno::Errno;
use pv_guest_kit::events;
use pv_guest_kit::hypercall::{evtchn as raw, sched};
use pv_guest_kit::time;

const MS: u64 = 1_000_000;

/// Attempts of a timing check.
const ATTEMPTS: u32 = 4;

/// Runs `f` and returns its result and the system time it took.
fn timed<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let start = time::now_ns().unwrap_or(0);
    let r = f();
    (r, time::now_ns().unwrap_or(0).saturating_sub(start))
}

pub fn poll(c: &mut Checks) {
    let was_enabled = events::disable();
    let Ok(u) = raw::alloc_unbound(DOMID_SELF) else {
        c.fail("poll: alloc_unbound", format_args!("failed"));
        return;
    };
    let Ok(l) = raw::bind_interdomain(DOMID_SELF, u) else {
        c.fail("poll: bind_interdomain", format_args!("failed"));
        return;
    };
    // Timing bounds are retried (Checks::timed): under TCG the guest's clock runs on while the
    // host deschedules QEMU.
    let took = c.timed(
        "poll on a pending port: 0 at once (< 5 ms of a 50 ms timeout)",
        ATTEMPTS,
        || {
            let now = time::now_ns().unwrap_or(0);
            let (r, took) = timed(|| events::poll(&[l], Some(now + 50 * MS)));
            (r.is_ok() && took < 5 * MS, (r, took))
        },
    );
    info(format_args!("poll on a pending port: {took:?} ns"));
    let _ = c.timed("poll on [idle, pending]: 0 at once", ATTEMPTS, || {
        let now = time::now_ns().unwrap_or(0);
        let (r, took) = timed(|| events::poll(&[u, l], Some(now + 50 * MS)));
        (r.is_ok() && took < 5 * MS, (r, took))
    });
    let many = [l; 128];
    let _ = c.timed(
        "poll on 128 ports (one pending): 0 at once",
        ATTEMPTS,
        || {
            let now = time::now_ns().unwrap_or(0);
            let (r, took) = timed(|| events::poll(&many, Some(now + 50 * MS)));
            (r.is_ok() && took < 5 * MS, (r, took))
        },
    );
    let now = time::now_ns().unwrap_or(0);
    let too_many = [l; 129];
    c.eq(
        "poll on 129 ports: -EINVAL",
        events::poll(&too_many, Some(now + 50 * MS)),
        Err(Errno::Einval),
    );

    events::clear_pending(l);
    let slept = c.timed(
        "poll on an idle port with a 10 ms timeout: 0 after 10-11 ms, the port still idle",
        ATTEMPTS,
        || {
            let start = time::now_ns().unwrap_or(0);
            let (r, took) = timed(|| events::poll(&[l], Some(start + 10 * MS)));
            let idle = !events::is_pending(l);
            (
                r.is_ok() && (10 * MS..11 * MS).contains(&took) && idle,
                (r, took, idle),
            )
        },
    );
    info(format_args!(
        "poll on an idle port with a 10 ms timeout: {slept:?}"
    ));
    let _ = c.timed(
        "poll on an idle port with a timeout in the past: 0 at once",
        ATTEMPTS,
        || {
            let (r, took) = timed(|| events::poll(&[l], Some(1)));
            (r.is_ok() && took < 5 * MS, (r, took))
        },
    );
    let (r, _) = timed(|| events::poll(&[4096], Some(time::now_ns().unwrap_or(0) + MS)));
    info(format_args!("poll on port 4096: {r:?}"));
    c.eq("poll on port 4096: -EINVAL", r, Err(Errno::Einval));

    // Xen 3.x refused a poll with events enabled; 4.17 does not look at the mask.
    events::enable();
    let enabled = c.timed(
        "poll with events enabled (not masked): 0 after the 5 ms timeout (5-6 ms)",
        ATTEMPTS,
        || {
            let (r, took) = timed(|| sched::poll(&[l], time::now_ns().unwrap_or(0) + 5 * MS));
            (r == Ok(0) && (5 * MS..6 * MS).contains(&took), (r, took))
        },
    );
    info(format_args!("poll with events enabled: {enabled:?}"));
    events::restore(was_enabled);
    let _ = raw::close(l);
    let _ = raw::close(u);
}
