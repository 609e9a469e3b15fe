//! Ping-pong between two peers: vCPU 0 and vCPU 1 of one domain (`bench events`), or dom0
//! (`bench ping`) and domain 1 (`bench pong`). The client (vCPU 0 of dom0) measures; the
//! server measures nothing. On one physical CPU every exchange is a context switch.
//!
//! The protocol counts events, so that the server needs no shared memory:
//!
//! 1. the server sends a hello on its reply port;
//! 2. [`PINGS`] pings: the client sends and blocks (`SCHEDOP_block`) until the reply's upcall
//!    has run; the server, blocked too, is woken by the ping and replies from its event
//!    handler. `<who>-event-round-trip` is the client's time from the send to the return of
//!    its block, so it holds two wake-ups, two blocks, two switches and two upcalls;
//! 3. event `PINGS + 1`: the server replies and enters a loop of `SCHEDOP_yield`; the client
//!    times its own `SCHEDOP_yield` calls: `<who>-yield-round-trip` is a switch to the server
//!    and one back, with the server's loop (a load and a compare) in between. The client
//!    keeps only the yields that let the server run: those across which its own runnable time
//!    (`VCPUOP_get_runstate_info`, read untimed) grew. The others are counted on an `INFO:`
//!    line;
//! 4. event `PINGS + 2`: the server replies and leaves the loop (a vCPU then blocks for good,
//!    a domain shuts down, which dom0 hears of through `VIRQ_DOM_EXC`).
//!
//! The client's waits are bounded by a watchdog: its single-shot timer, armed once for the
//! whole exchange, so that no timer hypercall falls inside a timed run.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use guest_support::{Checks, Name, info};
use pv_guest_kit::abi::errno::Errno;
use pv_guest_kit::abi::evtchn::VIRQ_DOM_EXC;
use pv_guest_kit::abi::sched::ShutdownReason;
use pv_guest_kit::abi::types::DomidT;
use pv_guest_kit::abi::vcpu::RUNSTATE_RUNNABLE;
use pv_guest_kit::events::{self, Port};
use pv_guest_kit::hypercall::evtchn as raw;
use pv_guest_kit::hypercall::sched;
use pv_guest_kit::{println, time, traps, vcpus};

use crate::guest::{RUNS, WARMUP, report, stamp};

/// Ping-pong round trips, warm-up included.
pub const PINGS: u64 = (WARMUP + RUNS) as u64;
/// The server's event count at which it enters its yield loop.
const YIELD_EVENT: u64 = PINGS + 1;
/// The server's event count at which it leaves its yield loop.
const STOP_EVENT: u64 = PINGS + 2;
/// The client's yields, at most (including those that did not switch).
const MAX_YIELDS: usize = 4 * (WARMUP + RUNS);

/// The domain `bench ping` talks to: the first `domU=` domain.
const PEER: DomidT = 1;

const MS: u64 = 1_000_000;
/// How long the client waits for the whole exchange.
const WATCHDOG_NS: u64 = 60_000 * MS;
/// How long the domain server looks for dom0's port.
const BIND_TIMEOUT_NS: u64 = 20_000 * MS;

// The client's side.
static REPLIES: AtomicU64 = AtomicU64::new(0);
static DEADLINE: AtomicU64 = AtomicU64::new(u64::MAX);
static TIMED_OUT: AtomicBool = AtomicBool::new(false);
static PEER_GONE: AtomicBool = AtomicBool::new(false);

fn on_reply(_: Port) {
    REPLIES.fetch_add(1, Ordering::SeqCst);
}

fn on_tick(_vcpu: u32) {
    if time::now_ns().is_ok_and(|now| now >= DEADLINE.load(Ordering::SeqCst)) {
        TIMED_OUT.store(true, Ordering::SeqCst);
    }
}

fn on_dom_exc(_: Port) {
    PEER_GONE.store(true, Ordering::SeqCst);
}

// The server's side.
static RECEIVED: AtomicU64 = AtomicU64::new(0);
static REPLY_PORT: AtomicU32 = AtomicU32::new(0);

fn on_ping(_: Port) {
    RECEIVED.fetch_add(1, Ordering::SeqCst);
    let _ = events::send(REPLY_PORT.load(Ordering::SeqCst));
}

/// The server: hello, replies to every event (from the handler), the yield loop. Events must
/// be enabled. Returns the events received.
fn serve(reply: Port) -> u64 {
    REPLY_PORT.store(reply, Ordering::SeqCst);
    let _ = events::send(reply);
    let _ = time::wait_until(|| RECEIVED.load(Ordering::SeqCst) >= YIELD_EVENT, None);
    while RECEIVED.load(Ordering::SeqCst) < STOP_EVENT {
        let _ = sched::yield_now();
    }
    RECEIVED.load(Ordering::SeqCst)
}

/// Blocks the client until `condition()` holds or the watchdog fires; returns whether it
/// held.
fn wait(condition: impl Fn() -> bool) -> bool {
    let _ = time::wait_until(|| condition() || TIMED_OUT.load(Ordering::SeqCst), None);
    condition()
}

fn wait_replies(target: u64) -> bool {
    wait(|| REPLIES.load(Ordering::SeqCst) >= target)
}

/// vCPU 0's runnable time so far (ns).
fn runnable_ns() -> u64 {
    vcpus::runstate(0)
        .ok()
        .and_then(|r| {
            r.time
                .get(usize::try_from(RUNSTATE_RUNNABLE).ok()?)
                .copied()
        })
        .unwrap_or(0)
}

/// The client, on vCPU 0 with events enabled: pings the server on `ping` and prints
/// `<who>-event-round-trip` and `<who>-yield-round-trip`.
fn client(c: &mut Checks, ping: Port, who: &str) {
    let watchdog = time::init().and_then(|_| {
        let deadline = time::now_ns()?.saturating_add(WATCHDOG_NS);
        DEADLINE.store(deadline, Ordering::SeqCst);
        time::set_timer_hook(Some(on_tick));
        time::set_timer(deadline)
    });
    c.eq(
        Name::of(format_args!("{who}: the watchdog timer armed")).as_str(),
        watchdog,
        Ok(()),
    );
    let hello = wait_replies(1);
    c.check(
        Name::of(format_args!("{who}: the server said hello")).as_str(),
        hello,
        format_args!("no event within {} s", WATCHDOG_NS / 1000 / MS),
    );
    if !hello {
        return;
    }

    let mut samples = alloc::vec![0u64; RUNS];
    let mut answered = 0u64;
    for i in 0..WARMUP + RUNS {
        let target = REPLIES.load(Ordering::SeqCst) + 1;
        let start = stamp();
        let _ = events::send(ping);
        let replied = wait_replies(target);
        let cycles = stamp().wrapping_sub(start);
        if !replied {
            break;
        }
        answered += 1;
        if let Some(sample) = i.checked_sub(WARMUP).and_then(|j| samples.get_mut(j)) {
            *sample = cycles;
        }
    }
    c.eq(
        Name::of(format_args!("{who}: the server answered every ping")).as_str(),
        answered,
        PINGS,
    );
    if answered != PINGS {
        return;
    }
    report(
        Name::of(format_args!("{who}-event-round-trip")).as_str(),
        &mut samples,
    );

    let _ = events::send(ping);
    let yielding = wait_replies(YIELD_EVENT + 1);
    c.check(
        Name::of(format_args!("{who}: the server entered its yield loop")).as_str(),
        yielding,
        format_args!("no reply"),
    );
    let mut samples: Vec<u64> = Vec::with_capacity(RUNS);
    let (mut switched, mut stayed) = (0usize, 0usize);
    let mut before = runnable_ns();
    while samples.len() < RUNS && switched + stayed < MAX_YIELDS {
        let start = stamp();
        let _ = sched::yield_now();
        let cycles = stamp().wrapping_sub(start);
        let after = runnable_ns();
        if after > before {
            switched += 1;
            if switched > WARMUP {
                samples.push(cycles);
            }
        } else {
            stayed += 1;
        }
        before = after;
    }
    info(format_args!(
        "{who}-yield-round-trip: {switched} yields let the server run, {stayed} did not"
    ));
    c.eq(
        Name::of(format_args!(
            "{who}: {RUNS} timed yields let the server run (after {WARMUP} more)"
        ))
        .as_str(),
        samples.len(),
        RUNS,
    );
    if !samples.is_empty() {
        report(
            Name::of(format_args!("{who}-yield-round-trip")).as_str(),
            &mut samples,
        );
    }

    let _ = events::send(ping);
    c.check(
        Name::of(format_args!("{who}: the server left its yield loop")).as_str(),
        wait_replies(STOP_EVENT + 1),
        format_args!("no reply"),
    );
}

/// Cancels the client's watchdog.
fn disarm() {
    let _ = time::set_timer(0);
    time::set_timer_hook(None);
}

/// The vCPUs the domain has: `VCPUOP_is_up` answers for each, `-ENOENT` past the last.
fn count_vcpus() -> u32 {
    (0..32u32)
        .take_while(|&id| vcpus::is_up(id) != Err(Errno::Enoent))
        .count()
        .try_into()
        .unwrap_or(0)
}

/// vCPU 1's entry: the server, then blocked for good.
fn vcpu_server(id: u32) -> ! {
    let _ = time::stop_periodic(id);
    events::enable();
    let _ = serve(REPLY_PORT.load(Ordering::SeqCst));
    loop {
        let _ = time::wait_until(|| false, None);
    }
}

/// `bench events`, second part: vCPU 0 against vCPU 1 (needs `dom0_max_vcpus=2`).
pub fn vcpus(c: &mut Checks) {
    let n = count_vcpus();
    if n < 2 {
        c.fail(
            "dom0 has a second vCPU",
            format_args!("{n} vCPU(s): boot the hypervisor with dom0_max_vcpus=2"),
        );
        return;
    }
    let ports =
        events::bind_ipi(0, on_reply).and_then(|pong| Ok((pong, events::bind_ipi(1, on_ping)?)));
    let Ok((pong, ping)) = ports else {
        c.fail("IPI ports for vCPU 0 and vCPU 1", format_args!("{ports:?}"));
        return;
    };
    REPLY_PORT.store(pong, Ordering::SeqCst);
    events::enable();
    c.eq(
        "vcpus::start(1): the server on vCPU 1",
        vcpus::start(1, vcpu_server, vcpus::DEFAULT_STACK_SIZE),
        Ok(()),
    );
    client(c, ping, "vcpu");
    disarm();
}

/// `bench ping`: dom0's side of the ping-pong with domain 1 (`bench pong`).
pub fn ping_domain(c: &mut Checks) {
    c.eq("events::init", events::init(), Ok(()));
    let _ = time::stop_periodic(0);
    c.check(
        "VIRQ_DOM_EXC bound (domain 1's end)",
        events::bind_virq(VIRQ_DOM_EXC, 0, on_dom_exc).is_ok(),
        format_args!("refused"),
    );
    let port = events::alloc_unbound(PEER, on_reply);
    c.check(
        "a port for domain 1 (EVTCHNOP_alloc_unbound)",
        port.is_ok(),
        format_args!("{port:?}"),
    );
    let Ok(port) = port else {
        return;
    };
    info(format_args!("port {port} offered to domain {PEER}"));
    events::enable();
    client(c, port, "domain");
    c.check(
        "domain 1 shut down after the exchange (VIRQ_DOM_EXC)",
        wait(|| PEER_GONE.load(Ordering::SeqCst)),
        format_args!("no VIRQ_DOM_EXC"),
    );
    disarm();
}

/// `bench pong`: domain 1's side. Binds to the port dom0 offers it (trying dom0's ports in
/// turn until one binds), serves, and powers off; prints two lines.
pub fn pong_domain() -> ! {
    let ready = traps::init().is_ok() && events::init().is_ok();
    let _ = time::stop_periodic(0);
    let deadline = time::now_ns().unwrap_or(0).saturating_add(BIND_TIMEOUT_NS);
    let bound = loop {
        if !ready {
            break None;
        }
        let found = (1..64).find_map(|remote| {
            raw::bind_interdomain(0, remote)
                .ok()
                .map(|port| (remote, port))
        });
        if found.is_some() || time::now_ns().map_or(true, |now| now >= deadline) {
            break found;
        }
        let _ = time::sleep_ns(MS);
    };
    let Some((remote, port)) = bound else {
        println!("bench pong: found no port of dom0 to bind");
        pv_guest_kit::shutdown(ShutdownReason::Crash);
    };
    // The new port is pending at once (Xen's rule): not a ping.
    events::clear_pending(port);
    let _ = events::attach(port, 0, on_ping);
    events::enable();
    println!("bench pong: dom0's port {remote} bound as port {port}");
    let received = serve(port);
    println!("bench pong: {received} events served");
    pv_guest_kit::shutdown(ShutdownReason::Poweroff)
}
