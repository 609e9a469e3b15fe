//! dom0, the orchestrator: `domains dom0 d1=<role>[:<n>] d2=<role>[:<n>] ... [timeout=<s>]`.
//!
//! For each domU named on its command line dom0 allocates a port the domU may bind
//! (`alloc_unbound(remote_dom = d)`, unless the role is `none`), handles what arrives on it,
//! and serves the domU's protocol:
//!
//! | role | the domU's events | what dom0 does |
//! |---|---|---|
//! | `pingpong:<n>` | `n` pings | answers each ping at once (in the handler); counts pings that arrive when none is due |
//! | `timers` | 1: spin; 2: stop; 3, 4, ...: wake me | acknowledges 1, spins (CPU-bound) until 2, acknowledges it; answers each wake request after sleeping 20 ms |
//! | `spin` | 1: ready; 2: measured | once every `spin` domU is ready, sends each one event (go), then blocks; once every one has measured, sends each another (stop) |
//! | `hostile:<n>` | a storm of `n` sends, plus one before it and one after | counts (coalescing allowed: at least one, at most `n + 2`) |
//! | `crash` | 1: hello | counts |
//! | `none` | (no channel) | only waits for the domain to go |
//!
//! Every protocol but the storm alternates strictly (the domU waits for dom0's answer before
//! its next message), so no two messages can coalesce into one event and the counts are
//! exact.
//!
//! Meanwhile it waits (blocked) for every domU to be gone: `VIRQ_DOM_EXC` wakes it, and
//! `EVTCHNOP_status(d, 0)` — dom0 may look at any domain's ports — answers `-ESRCH` once
//! domain `d` no longer exists. Then it checks what it saw: every domU gone, `VIRQ_DOM_EXC`
//! raised, its end of each channel unbound again (destroying a domain closes its ports), each
//! role's counts; prints `PINGPONG d<N> ...` and `STORM d<N> ...` lines; and shuts down, which
//! stops the machine.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use guest_support::{Checks, Name, info};
use pv_guest_kit::abi::errno::Errno;
use pv_guest_kit::abi::evtchn::VIRQ_DOM_EXC;
use pv_guest_kit::abi::vcpu::RUNSTATE_RUNNING;
use pv_guest_kit::events::{self, Binding, Port};
use pv_guest_kit::hypercall::evtchn as raw;
use pv_guest_kit::{println, time, vcpus};

use super::{Args, MS, SECOND, now, setup};

/// Most domUs dom0 serves.
const MAX_DOMUS: usize = 8;

/// How long dom0 waits for the domUs unless `timeout=<s>` says otherwise.
const DEFAULT_TIMEOUT_S: u64 = 60;

/// How long dom0 sleeps before answering a `timers` domU's wake request.
const WAKE_DELAY: u64 = 20 * MS;

/// What a domU does, from dom0's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
enum Role {
    /// Not served (no channel).
    None = 0,
    /// Strict round trips.
    Pingpong = 1,
    /// Sleeps; dom0 spins and wakes it.
    Timers = 2,
    /// CPU-bound, measuring its share.
    Spin = 3,
    /// Hostile: a send storm at the end.
    Hostile = 4,
    /// Crashes after one event.
    Crash = 5,
}

impl Role {
    fn parse(name: &str) -> Option<Role> {
        Some(match name {
            "none" => Role::None,
            "pingpong" => Role::Pingpong,
            "timers" => Role::Timers,
            "spin" => Role::Spin,
            "hostile" => Role::Hostile,
            "crash" => Role::Crash,
            _ => return None,
        })
    }

    fn from_raw(raw: u32) -> Role {
        match raw {
            1 => Role::Pingpong,
            2 => Role::Timers,
            3 => Role::Spin,
            4 => Role::Hostile,
            5 => Role::Crash,
            _ => Role::None,
        }
    }
}

/// One domU as dom0 sees it; written by the main loop, read and counted by the handler.
struct Peer {
    /// The domain id (0: slot unused).
    dom: AtomicU32,
    /// Its [`Role`].
    role: AtomicU32,
    /// The role's number (`pingpong`: round trips; `hostile`: the most sends).
    n: AtomicU64,
    /// dom0's end of the channel (0: none).
    port: AtomicU32,
    /// Events received.
    received: AtomicU64,
    /// Events sent.
    sent: AtomicU64,
    /// Events that arrived when none was due.
    unexpected: AtomicU64,
}

static PEERS: [Peer; MAX_DOMUS] = [const {
    Peer {
        dom: AtomicU32::new(0),
        role: AtomicU32::new(0),
        n: AtomicU64::new(0),
        port: AtomicU32::new(0),
        received: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        unexpected: AtomicU64::new(0),
    }
}; MAX_DOMUS];

/// Bumped by the handlers whose events the main loop acts on, so that it wakes up to look.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// `VIRQ_DOM_EXC` events received.
static DOM_EXC: AtomicU64 = AtomicU64::new(0);

/// Whether the handler may answer pings (off once dom0 stops serving).
static SERVING: AtomicBool = AtomicBool::new(true);

fn peers() -> impl Iterator<Item = &'static Peer> {
    PEERS.iter().filter(|p| p.dom.load(Ordering::SeqCst) != 0)
}

impl Peer {
    fn dom(&self) -> u16 {
        u16::try_from(self.dom.load(Ordering::SeqCst)).unwrap_or(u16::MAX)
    }
    fn role(&self) -> Role {
        Role::from_raw(self.role.load(Ordering::SeqCst))
    }
    fn port(&self) -> Port {
        self.port.load(Ordering::SeqCst)
    }
    fn received(&self) -> u64 {
        self.received.load(Ordering::SeqCst)
    }
    fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }
    fn send(&self) -> bool {
        let ok = events::send(self.port()).is_ok();
        if ok {
            self.sent.fetch_add(1, Ordering::SeqCst);
        }
        ok
    }
    /// Whether the domain no longer exists (`EVTCHNOP_status` on it: `-ESRCH`).
    fn gone(&self) -> bool {
        raw::status(self.dom(), 0) == Err(Errno::Esrch)
    }
}

fn on_dom_exc(_port: Port) {
    DOM_EXC.fetch_add(1, Ordering::SeqCst);
    GENERATION.fetch_add(1, Ordering::SeqCst);
}

fn on_peer(port: Port) {
    let Some(peer) = peers().find(|p| p.port() == port) else {
        return;
    };
    let received = peer.received.fetch_add(1, Ordering::SeqCst) + 1;
    // Only the roles the main loop serves need it awake; the others are served right here
    // (waking it for each of 100,000 pings would only cost time).
    if matches!(peer.role(), Role::Timers | Role::Spin) {
        GENERATION.fetch_add(1, Ordering::SeqCst);
    }
    if peer.role() == Role::Pingpong {
        // Strict alternation: ping `i` arrives after pong `i - 1` went out, never before.
        let due = received == peer.sent() + 1 && received <= peer.n.load(Ordering::SeqCst);
        if !due {
            peer.unexpected.fetch_add(1, Ordering::SeqCst);
        } else if SERVING.load(Ordering::SeqCst) {
            peer.send();
        }
    }
}

/// Reads `d<N>=<role>[:<n>]` words into [`PEERS`]; returns how many, or the word it could not
/// read.
fn parse(args: Args) -> Result<usize, &'static str> {
    let mut count = 0;
    for word in args.words() {
        let Some((key, value)) = word.split_once('=') else {
            return Err(word);
        };
        let Some(dom) = key.strip_prefix('d').and_then(|d| d.parse::<u32>().ok()) else {
            if key == "timeout" {
                continue;
            }
            return Err(word);
        };
        let (name, n) = value.split_once(':').unwrap_or((value, ""));
        let role = Role::parse(name).ok_or(word)?;
        let n = if n.is_empty() {
            0
        } else {
            n.parse().map_err(|_| word)?
        };
        let slot = PEERS.get(count).ok_or(word)?;
        if dom == 0 || dom > 0x7fef {
            return Err(word);
        }
        slot.role.store(role as u32, Ordering::SeqCst);
        slot.n.store(n, Ordering::SeqCst);
        slot.dom.store(dom, Ordering::SeqCst);
        count += 1;
    }
    Ok(count)
}

/// dom0's running time so far (ns).
fn running_ns() -> u64 {
    vcpus::runstate(0).map_or(0, |r| r.time[0])
}

/// What the main loop keeps between rounds.
#[derive(Debug, Default)]
struct Loop {
    /// `timers` domUs dom0 spun for (by slot).
    spun: [bool; MAX_DOMUS],
    /// Whether the spinners got their go, and when (system time, dom0's running time).
    go: Option<(u64, u64)>,
    /// Whether the spinners got their stop, and when.
    stop: Option<(u64, u64)>,
}

fn run_loop(state: &mut Loop, deadline: u64) -> bool {
    loop {
        let seen = GENERATION.load(Ordering::SeqCst);
        serve_timers(state, deadline);
        serve_spinners(state);
        if peers().all(Peer::gone) {
            return true;
        }
        if now() >= deadline {
            return false;
        }
        let _ = time::wait_until(|| GENERATION.load(Ordering::SeqCst) != seen, Some(deadline));
    }
}

fn serve_timers(state: &mut Loop, deadline: u64) {
    for (slot, peer) in PEERS.iter().enumerate() {
        if peer.dom.load(Ordering::SeqCst) == 0 || peer.role() != Role::Timers {
            continue;
        }
        if peer.received() >= 1 && !state.spun[slot] {
            // Acknowledge, then be CPU-bound until the domU says stop (events on: its
            // messages still arrive), and acknowledge that.
            peer.send();
            info(format_args!("d{}: spinning until it says stop", peer.dom()));
            let stopped = super::spin_until(deadline.saturating_sub(now()), || {
                peer.received() >= 2 || peer.gone()
            });
            info(format_args!(
                "d{}: stopped spinning ({stopped})",
                peer.dom()
            ));
            if let Some(spun) = state.spun.get_mut(slot) {
                *spun = true;
            }
            peer.send();
        }
        while state.spun[slot] && peer.sent() < peer.received() && !peer.gone() {
            let _ = time::sleep_ns(WAKE_DELAY);
            peer.send();
        }
    }
}

fn serve_spinners(state: &mut Loop) {
    let spinners = || peers().filter(|p| p.role() == Role::Spin);
    if spinners().next().is_none() {
        return;
    }
    if state.go.is_none() && spinners().all(|p| p.received() >= 1) {
        state.go = Some((now(), running_ns()));
        for peer in spinners() {
            peer.send();
        }
    }
    if state.go.is_some() && state.stop.is_none() && spinners().all(|p| p.received() >= 2) {
        state.stop = Some((now(), running_ns()));
        for peer in spinners() {
            peer.send();
        }
    }
}

pub fn run(args: Args) -> ! {
    println!("domains: dom0, the orchestrator of the boot-time domUs");
    let mut c = Checks::new();
    setup(&mut c);
    let count = parse(args);
    c.check(
        "dom0's command line names the domUs and their roles",
        matches!(count, Ok(1..)),
        format_args!("{count:?}"),
    );
    // A domU may end before dom0 gets here (one that needs nothing from dom0): only those
    // alive once the VIRQ is bound must raise it, and at most those alive before.
    let alive_before = peers().filter(|p| !p.gone()).count() as u64;
    let exc = events::bind_virq(VIRQ_DOM_EXC, 0, on_dom_exc);
    let alive_after = peers().filter(|p| !p.gone()).count() as u64;
    c.check(
        "bind VIRQ_DOM_EXC (dom0 hears of domains that end)",
        exc.is_ok(),
        format_args!("{exc:?}"),
    );
    offer_ports(&mut c);
    let timeout = args.number("timeout", DEFAULT_TIMEOUT_S) * SECOND;
    let start = now();
    let mut state = Loop::default();
    let all_gone = run_loop(&mut state, start.saturating_add(timeout));
    SERVING.store(false, Ordering::SeqCst);
    let took = now().saturating_sub(start);
    info(format_args!(
        "every domU gone after {} ms: {all_gone}; VIRQ_DOM_EXC events: {} ({alive_before} \
         domU(s) alive before binding it, {alive_after} after)",
        took / MS,
        DOM_EXC.load(Ordering::SeqCst)
    ));
    judge(&mut c, &state, all_gone, (alive_before, alive_after));
    c.finish()
}

fn offer_ports(c: &mut Checks) {
    for peer in peers() {
        let dom = peer.dom();
        if peer.role() == Role::None {
            continue;
        }
        // Events off until the handler can find the port: the domU may bind and send at once.
        let port = events::without_events(|| {
            let port = events::alloc_unbound(dom, on_peer);
            if let Ok(port) = port {
                peer.port.store(port, Ordering::SeqCst);
            }
            port
        });
        c.check(
            Name::of(format_args!(
                "alloc_unbound(remote_dom = {dom}): a port offered to d{dom}"
            ))
            .as_str(),
            port.is_ok(),
            format_args!("{port:?}"),
        );
        let Ok(port) = port else { continue };
        info(format_args!(
            "port {port} offered to d{dom} ({:?})",
            peer.role()
        ));
        let status = events::status(port).map(|s| s.binding);
        c.check(
            Name::of(format_args!(
                "status of port {port}: unbound, waiting for d{dom} (or bound by it already)"
            ))
            .as_str(),
            matches!(status, Ok(Binding::Unbound { remote }
                | Binding::Interdomain { dom: remote, .. }) if remote == dom),
            format_args!("{status:?}"),
        );
    }
}

fn judge(c: &mut Checks, state: &Loop, all_gone: bool, alive: (u64, u64)) {
    let domus = peers().count() as u64;
    c.check(
        "every domU ended within the timeout (EVTCHNOP_status on it: -ESRCH)",
        all_gone,
        format_args!(
            "{} of {domus} domU(s) still there",
            peers().filter(|p| !p.gone()).count()
        ),
    );
    let exc = DOM_EXC.load(Ordering::SeqCst);
    let (before, after) = alive;
    c.check(
        "VIRQ_DOM_EXC raised for the domUs' ends (once each, or coalesced)",
        (after.min(1)..=before).contains(&exc),
        format_args!(
            "{exc} event(s) for {domus} domU(s), {before} alive before binding it, {after} after"
        ),
    );
    for peer in peers() {
        judge_peer(c, peer);
    }
    if let (Some((t0, r0)), Some((t1, r1))) = (state.go, state.stop) {
        let window = t1.saturating_sub(t0);
        let ran = r1.saturating_sub(r0);
        info(format_args!(
            "dom0 ran {} us of the {} ms between go and stop",
            ran / 1000,
            window / MS
        ));
        c.check(
            "dom0 stayed blocked while the spinners measured (ran < 2% of the window)",
            ran.saturating_mul(50) < window,
            format_args!("ran {ran} ns of {window} ns"),
        );
    }
    c.eq(
        "dom0's vCPU 0 is running as it judges",
        vcpus::runstate(0).map(|r| r.state),
        Ok(RUNSTATE_RUNNING),
    );
}

fn judge_peer(c: &mut Checks, peer: &Peer) {
    let dom = peer.dom();
    let role = peer.role();
    let port = peer.port();
    if role != Role::None && port != 0 {
        c.eq(
            Name::of(format_args!(
                "d{dom} destroyed: dom0's end (port {port}) is unbound again, waiting for d{dom}"
            ))
            .as_str(),
            events::status(port).map(|s| s.binding),
            Ok(Binding::Unbound { remote: dom }),
        );
        c.eq(
            Name::of(format_args!(
                "send on port {port} now: 0 (an unbound port swallows it)"
            ))
            .as_str(),
            raw::send(port),
            Ok(0),
        );
    }
    let received = peer.received();
    let sent = peer.sent();
    let unexpected = peer.unexpected.load(Ordering::SeqCst);
    let n = peer.n.load(Ordering::SeqCst);
    match role {
        Role::None => {}
        Role::Pingpong => {
            println!("PINGPONG d{dom} received={received} sent={sent} unexpected={unexpected}");
            c.eq(
                Name::of(format_args!(
                    "d{dom} ping-pong: every ping received and answered exactly once ({n})"
                ))
                .as_str(),
                (received, sent),
                (n, n),
            );
            c.eq(
                Name::of(format_args!(
                    "d{dom} ping-pong: no ping arrived when none was due"
                ))
                .as_str(),
                unexpected,
                0,
            );
        }
        Role::Timers => {
            c.check(
                Name::of(format_args!(
                    "d{dom} timers: spin, stop and at least one wake request received"
                ))
                .as_str(),
                received >= 3,
                format_args!("{received} event(s)"),
            );
            c.eq(
                Name::of(format_args!(
                    "d{dom} timers: every message answered (spin, stop, each wake request)"
                ))
                .as_str(),
                sent,
                received,
            );
        }
        Role::Spin => {
            c.eq(
                Name::of(format_args!(
                    "d{dom} spin: ready and measured received, go and stop sent"
                ))
                .as_str(),
                (received, sent),
                (2, 2),
            );
        }
        Role::Hostile => {
            println!("STORM d{dom} received={received}");
            c.check(
                Name::of(format_args!(
                    "d{dom} storm: at least one event, at most one per send ({n} + 2)"
                ))
                .as_str(),
                (1..=n + 2).contains(&received),
                format_args!("{received} event(s)"),
            );
        }
        Role::Crash => {
            c.eq(
                Name::of(format_args!(
                    "d{dom} crash: its one event arrived (and stayed pending across its end)"
                ))
                .as_str(),
                received,
                1,
            );
        }
    }
}
