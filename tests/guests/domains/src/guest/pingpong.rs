//! domU roles `pingpong [peer=<d>] rounds=<n>` and `pong peer=<d> rounds=<n>`: `n` strict round
//! trips over one interdomain channel, with dom0 (the default peer) or between two domUs.
//!
//! The initiator (`pingpong`) binds the port its peer offers and sends ping `i` only after
//! pong `i - 1` arrived; the peer (dom0, or a `pong` domU that offered the port with
//! `alloc_unbound`) answers each ping in its event handler. Each side counts every event its
//! handler receives: a pong that does not come within a second is lost, a count beyond the
//! pings sent is a duplicate (an event that arrived when none was expected), and after the
//! last round a 20 ms quiet period must bring nothing more. Both print their counts:
//! `PINGPONG sent=<n> received=<n> elapsed_ns=<t>` (initiator) and
//! `PONG received=<n> sent=<n> unexpected=<n>` (a `pong` domU).
//!
//! Between two domUs the initiator then waits for the `pong` domU to end: its destruction
//! must leave the initiator's end unbound (waiting for the dead domain), where a send is
//! swallowed.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use guest_support::{Checks, Name, info};
use pv_guest_kit::events::{self, Binding, Port};
use pv_guest_kit::hypercall::evtchn as raw;
use pv_guest_kit::{println, time, vcpus};

use super::{Args, MS, SECOND, channel, now, setup};

/// How long a pong may take before it counts as lost.
const PONG_TIMEOUT: u64 = SECOND;

/// How long the `pong` domU waits for the next ping before it gives up.
const PING_TIMEOUT: u64 = 2 * SECOND;

/// How long the initiator waits for a `pong` peer to be gone.
const PEER_END_TIMEOUT: u64 = 10 * SECOND;

pub fn run(args: Args) -> ! {
    let rounds = args.number("rounds", 100_000);
    let peer = u16::try_from(args.number("peer", 0)).unwrap_or(u16::MAX);
    println!("domains: pingpong, {rounds} strict round trips with d{peer}");
    let mut c = Checks::new();
    setup(&mut c);
    let Some(port) = channel::connect_to(&mut c, peer) else {
        c.finish()
    };
    let mut sent = 0u64;
    let mut send_error = None;
    let mut lost_at = None;
    let mut duplicate_at = None;
    let r0 = vcpus::runstate(0).unwrap_or_default();
    let start = now();
    for i in 1..=rounds {
        if let Err(err) = channel::send() {
            send_error = Some((i, err));
            break;
        }
        sent += 1;
        if !channel::wait_received(i, PONG_TIMEOUT) {
            lost_at = Some(i);
            break;
        }
        if channel::received() > i {
            duplicate_at = Some((i, channel::received()));
            break;
        }
    }
    let took = now().saturating_sub(start);
    let r1 = vcpus::runstate(0).unwrap_or_default();
    let _ = time::sleep_ns(20 * MS);
    let received = channel::received();
    println!("PINGPONG sent={sent} received={received} elapsed_ns={took}");
    info(format_args!(
        "{sent} round trips in {} ms ({} ns each); upcalls {:?}",
        took / MS,
        took.checked_div(sent).unwrap_or(0),
        events::stats(0)
    ));
    let spent: [u64; 4] = core::array::from_fn(|i| r1.time[i].saturating_sub(r0.time[i]));
    info(format_args!(
        "runstate over the round trips (running, runnable, blocked, offline ns): {spent:?}"
    ));
    c.eq("every send on the channel returned 0", send_error, None);
    c.eq("every pong arrived within 1 s (none lost)", lost_at, None);
    c.eq(
        "no pong arrived when none was expected (none duplicated)",
        duplicate_at,
        None,
    );
    c.eq(
        "exactly one pong per ping, also after a 20 ms quiet period",
        (sent, received),
        (rounds, rounds),
    );
    if peer != 0 {
        peer_ends(&mut c, peer, port);
    }
    c.finish()
}

/// After the round trips with a `pong` domU: wait for it to end, then look at this end.
fn peer_ends(c: &mut Checks, peer: u16, port: Port) {
    let start = now();
    let unbound = Binding::Unbound { remote: peer };
    while now().saturating_sub(start) < PEER_END_TIMEOUT
        && events::status(port).map(|s| s.binding) != Ok(unbound)
    {
        let _ = time::sleep_ns(MS);
    }
    c.eq(
        Name::of(format_args!(
            "d{peer} ended: this end is unbound again, waiting for d{peer}"
        ))
        .as_str(),
        events::status(port).map(|s| s.binding),
        Ok(unbound),
    );
    c.eq("a send on it is swallowed: 0", raw::send(port), Ok(0));
    c.eq(
        Name::of(format_args!(
            "bind_interdomain({peer}, 1), d{peer} gone: -ESRCH"
        ))
        .as_str(),
        raw::bind_interdomain(peer, 1),
        Err(pv_guest_kit::abi::errno::Errno::Esrch),
    );
}

/// The `pong` domU's port, counts and round-trip limit.
static PONG_PORT: AtomicU32 = AtomicU32::new(0);
static PINGS: AtomicU64 = AtomicU64::new(0);
static PONGS: AtomicU64 = AtomicU64::new(0);
static UNEXPECTED: AtomicU64 = AtomicU64::new(0);
static ROUNDS: AtomicU64 = AtomicU64::new(0);

fn on_ping(port: Port) {
    let pings = PINGS.fetch_add(1, Ordering::SeqCst) + 1;
    let due = pings == PONGS.load(Ordering::SeqCst) + 1 && pings <= ROUNDS.load(Ordering::SeqCst);
    if !due {
        UNEXPECTED.fetch_add(1, Ordering::SeqCst);
    } else if events::send(port).is_ok() {
        PONGS.fetch_add(1, Ordering::SeqCst);
    }
}

/// The `pong` role: offers a port to `peer=<d>`, answers `rounds=<n>` pings, then ends.
pub fn pong(args: Args) -> ! {
    let rounds = args.number("rounds", 100_000);
    let peer = u16::try_from(args.number("peer", 0)).unwrap_or(u16::MAX);
    println!("domains: pong, answering {rounds} pings of d{peer}");
    let mut c = Checks::new();
    setup(&mut c);
    ROUNDS.store(rounds, Ordering::SeqCst);
    let port = events::without_events(|| {
        let port = events::alloc_unbound(peer, on_ping);
        if let Ok(port) = port {
            PONG_PORT.store(port, Ordering::SeqCst);
        }
        port
    });
    c.check(
        Name::of(format_args!(
            "alloc_unbound(remote_dom = {peer}) by a domU: a port offered to d{peer}"
        ))
        .as_str(),
        port.is_ok(),
        format_args!("{port:?}"),
    );
    let Ok(port) = port else { c.finish() };
    let pings = || PINGS.load(Ordering::SeqCst);
    loop {
        let seen = pings();
        if seen >= rounds {
            break;
        }
        let deadline = now().saturating_add(PING_TIMEOUT);
        let moved = time::wait_until(|| pings() != seen, Some(deadline)).unwrap_or(false);
        if !moved {
            break;
        }
    }
    let _ = time::sleep_ns(20 * MS);
    let (pings, pongs, unexpected) = (
        pings(),
        PONGS.load(Ordering::SeqCst),
        UNEXPECTED.load(Ordering::SeqCst),
    );
    println!("PONG received={pings} sent={pongs} unexpected={unexpected}");
    c.eq(
        "every ping received and answered exactly once, also after a 20 ms quiet period",
        (pings, pongs),
        (rounds, rounds),
    );
    c.eq("no ping arrived when none was due", unexpected, 0);
    c.check(
        Name::of(format_args!("the port is bound to d{peer}")).as_str(),
        matches!(events::status(port).map(|s| s.binding),
            Ok(Binding::Interdomain { dom, .. }) if dom == peer),
        format_args!("{:?}", events::status(port)),
    );
    c.finish()
}
