//! 10,000 IPI round trips between vCPU 0 and vCPU 1: vCPU 0 sends on the port that notifies
//! vCPU 1; its handler there counts and sends on the port that notifies vCPU 0, whose handler
//! counts and sends the next ping, until the count is reached.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use guest_support::{Checks, info};
use pv_guest_kit::events::{self, Port};
use pv_guest_kit::{time, vcpus};

use super::secondary::state;
use super::{MS, wait};

/// Round trips.
const ROUNDS: u64 = 10_000;

static PING: AtomicU32 = AtomicU32::new(0);
static PONG: AtomicU32 = AtomicU32::new(0);
static PINGS: AtomicU64 = AtomicU64::new(0);
static PONGS: AtomicU64 = AtomicU64::new(0);
static TARGET: AtomicU64 = AtomicU64::new(0);

fn on_ping(_: Port) {
    if vcpus::current() != 1 {
        state(vcpus::current())
            .misrouted
            .fetch_add(1, Ordering::SeqCst);
    }
    PINGS.fetch_add(1, Ordering::SeqCst);
    let _ = events::send(PONG.load(Ordering::SeqCst));
}

fn on_pong(_: Port) {
    if vcpus::current() != 0 {
        state(vcpus::current())
            .misrouted
            .fetch_add(1, Ordering::SeqCst);
    }
    let pongs = PONGS.fetch_add(1, Ordering::SeqCst) + 1;
    if pongs < TARGET.load(Ordering::SeqCst) {
        let _ = events::send(PING.load(Ordering::SeqCst));
    }
}

/// Handler calls on vCPU 1 so far.
pub fn pings() -> u64 {
    PINGS.load(Ordering::SeqCst)
}

/// Handler calls on vCPU 0 so far.
pub fn pongs() -> u64 {
    PONGS.load(Ordering::SeqCst)
}

/// Sends one ping without expecting the game to go on.
pub fn ping_once() -> bool {
    TARGET.store(PONGS.load(Ordering::SeqCst), Ordering::SeqCst);
    events::send(PING.load(Ordering::SeqCst)).is_ok()
}

/// Whether the ping port is pending.
pub fn ping_pending() -> bool {
    events::is_pending(PING.load(Ordering::SeqCst))
}

/// One more round trip; whether its pong came back within a second.
pub fn round_trip() -> bool {
    let pongs = PONGS.load(Ordering::SeqCst);
    TARGET.store(pongs + 1, Ordering::SeqCst);
    let _ = events::send(PING.load(Ordering::SeqCst));
    wait(1000, || PONGS.load(Ordering::SeqCst) > pongs)
}

pub fn run(c: &mut Checks) {
    let ping = events::bind_ipi(1, on_ping);
    let pong = events::bind_ipi(0, on_pong);
    let (Ok(ping), Ok(pong)) = (ping, pong) else {
        c.fail(
            "bind_ipi(1) and bind_ipi(0) with handlers",
            format_args!("{ping:?} {pong:?}"),
        );
        return;
    };
    PING.store(ping, Ordering::SeqCst);
    PONG.store(pong, Ordering::SeqCst);
    TARGET.store(ROUNDS, Ordering::SeqCst);
    let t0 = time::now_ns().unwrap_or(0);
    let _ = events::send(ping);
    let finished = wait(20_000, || PONGS.load(Ordering::SeqCst) >= ROUNDS);
    let took = time::now_ns().unwrap_or(0).saturating_sub(t0);
    info(format_args!(
        "{ROUNDS} IPI round trips vCPU 0 -> 1 -> 0 in {} ms ({} us each); upcalls: vCPU 0 {:?}, \
         vCPU 1 {:?}",
        took / MS,
        took / ROUNDS / 1000,
        events::stats(0),
        events::stats(1)
    ));
    c.check(
        "10,000 IPI round trips between vCPU 0 and vCPU 1 complete",
        finished,
        format_args!("{} pongs after {took} ns", PONGS.load(Ordering::SeqCst)),
    );
    c.eq(
        "... none lost, none duplicated: 10,000 pings handled on vCPU 1, 10,000 pongs on vCPU 0",
        (PINGS.load(Ordering::SeqCst), PONGS.load(Ordering::SeqCst)),
        (ROUNDS, ROUNDS),
    );
    c.eq(
        "every handler ran on the vCPU its port notifies",
        (
            state(0).misrouted.load(Ordering::SeqCst),
            state(1).misrouted.load(Ordering::SeqCst),
        ),
        (0, 0),
    );
}
