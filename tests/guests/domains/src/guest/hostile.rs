//! domU role `hostile [sends=<n>]`: an unprivileged domain abusing event channels. Every
//! refusal must be Xen 4.17's errno, and none may disturb dom0 or the other domains:
//!
//! - bad ports (0, 4096, 2^31, 2^32 - 1) for every command that takes one;
//! - domains that do not exist (`-ESRCH`); dom0's ports that were not offered to it
//!   (`-EINVAL`), another domU's ports;
//! - what only dom0 may do: status, `alloc_unbound` and reset of dom0, and shutting it down
//!   (`SCHEDOP_remote_shutdown`) (`-EPERM`);
//! - `bind_vcpu` to vCPUs it lacks, of ports that cannot move; 10,000 unmasks of a pending
//!   port, which must deliver it once;
//! - closing ports in use: the timer VIRQ while a timer is armed, an IPI while pending, the
//!   channel to dom0 (which it binds again), then all of them with `EVTCHNOP_reset(DOMID_SELF)`
//!   (and binds the channel again);
//! - a storm of `n` sends (default 100,000) to dom0 (`STORM sends=<n> errors=<k>
//!   elapsed_ns=<t>`);
//! - every port taken (`EXHAUST allocated=<n> first=<p> last=<q> open_before=<m>`), then
//!   `-ENOSPC`; it leaves them all allocated and shuts down, so that its destruction has to
//!   close every one of them.
//!
//! Expected values are Xen 4.17's (`xen/common/event_channel.c`: the domain is looked up first
//! (`-ESRCH`), then a free local port (`-ENOSPC`), then the port's validity (`-EINVAL`), then
//! the permission (`-EPERM`)), as the `events` guest measured them for dom0.

use core::sync::atomic::{AtomicU64, Ordering};

use guest_support::{Checks, Name, info};
use pv_guest_kit::abi::domid::{DOMID_SELF, DOMID_XEN};
use pv_guest_kit::abi::errno::Errno;
use pv_guest_kit::abi::evtchn::{VIRQ_DOM_EXC, VIRQ_TIMER};
use pv_guest_kit::events::{self, Binding, Port};
use pv_guest_kit::hypercall::{evtchn as raw, sched};
use pv_guest_kit::{println, time};

use super::{Args, MS, channel, now, setup, spin_until};

/// Ports no command may accept: reserved port 0 aside, beyond the 2-level space.
const BAD_PORTS: [Port; 3] = [4096, 0x8000_0000, u32::MAX];

/// Domain ids that name no domain (the scenario has fewer than nine domUs).
const NO_DOMAINS: [u16; 3] = [9, 0x7fef, DOMID_XEN];

/// Unmasks of one pending port.
const UNMASKS: u32 = 10_000;

/// The IPI handler's count.
static IPIS: AtomicU64 = AtomicU64::new(0);

fn on_ipi(_port: Port) {
    IPIS.fetch_add(1, Ordering::SeqCst);
}

fn ipis() -> u64 {
    IPIS.load(Ordering::SeqCst)
}

pub fn run(args: Args) -> ! {
    let sends = args.number("sends", 100_000);
    println!("domains: hostile, abusing event channels; then {sends} sends to dom0");
    let mut c = Checks::new();
    setup(&mut c);
    let Some(port) = channel::connect(&mut c) else {
        c.finish()
    };
    let dom0_port = match events::status(port).map(|s| s.binding) {
        Ok(Binding::Interdomain { port, .. }) => port,
        _ => 0,
    };
    bad_ports(&mut c);
    missing_domains(&mut c);
    not_offered(&mut c);
    privileged(&mut c, dom0_port);
    vcpus_and_unmask(&mut c, port);
    close_in_use(&mut c, port, dom0_port);
    storm(&mut c, sends);
    exhaust(&mut c, dom0_port);
    c.finish()
}

fn name(args: core::fmt::Arguments<'_>) -> Name {
    Name::of(args)
}

fn bad_ports(c: &mut Checks) {
    for p in BAD_PORTS {
        c.eq(
            name(format_args!("send({p:#x}): -EINVAL")).as_str(),
            raw::send(p),
            Err(Errno::Einval),
        );
        c.eq(
            name(format_args!("close({p:#x}): -EINVAL")).as_str(),
            raw::close(p),
            Err(Errno::Einval),
        );
        c.eq(
            name(format_args!("unmask({p:#x}): -EINVAL")).as_str(),
            raw::unmask(p),
            Err(Errno::Einval),
        );
        c.eq(
            name(format_args!("status({p:#x}): -EINVAL")).as_str(),
            raw::status(DOMID_SELF, p).map(|s| s.status),
            Err(Errno::Einval),
        );
        c.eq(
            name(format_args!("bind_vcpu({p:#x}, 0): -EINVAL")).as_str(),
            raw::bind_vcpu(p, 0),
            Err(Errno::Einval),
        );
        c.eq(
            name(format_args!("SCHEDOP_poll on port {p:#x}: -EINVAL")).as_str(),
            sched::poll(&[p], 0),
            Err(Errno::Einval),
        );
    }
    c.eq(
        "send(0), the reserved port: -EINVAL",
        raw::send(0),
        Err(Errno::Einval),
    );
    c.eq(
        "close(0), the reserved port: -EINVAL",
        raw::close(0),
        Err(Errno::Einval),
    );
    c.eq(
        "bind_vcpu(0, 0), the reserved port: -EINVAL",
        raw::bind_vcpu(0, 0),
        Err(Errno::Einval),
    );
    c.eq(
        "status(0): closed",
        events::status(0).map(|s| s.binding),
        Ok(Binding::Closed),
    );
    c.eq("unmask(0): 0", raw::unmask(0), Ok(0));
}

fn missing_domains(c: &mut Checks) {
    for d in NO_DOMAINS {
        c.eq(
            name(format_args!(
                "bind_interdomain({d:#x}, 1), no such domain: -ESRCH"
            ))
            .as_str(),
            raw::bind_interdomain(d, 1),
            Err(Errno::Esrch),
        );
        c.eq(
            name(format_args!("status of domain {d:#x}'s port 1: -ESRCH")).as_str(),
            raw::status(d, 1).map(|s| s.status),
            Err(Errno::Esrch),
        );
        c.eq(
            name(format_args!("alloc_unbound in domain {d:#x}: -ESRCH")).as_str(),
            raw::alloc_unbound_in(d, DOMID_SELF),
            Err(Errno::Esrch),
        );
        c.eq(
            name(format_args!("reset(domain {d:#x}): -ESRCH")).as_str(),
            raw::reset(d),
            Err(Errno::Esrch),
        );
    }
    // Xen does not check the remote domain of alloc_unbound: it is recorded as given.
    let port = raw::alloc_unbound(9);
    c.check(
        "alloc_unbound(remote_dom = 9), a domain that does not exist: a port",
        port.is_ok(),
        format_args!("{port:?}"),
    );
    if let Ok(port) = port {
        c.eq(
            "... unbound, waiting for d9",
            events::status(port).map(|s| s.binding),
            Ok(Binding::Unbound { remote: 9 }),
        );
        c.eq("... closed again", raw::close(port), Ok(0));
    }
}

fn not_offered(c: &mut Checks) {
    let mut wrong = None;
    let mut tried = 0;
    for p in (0..=super::channel::MAX_PROBE).chain(BAD_PORTS) {
        tried += 1;
        let got = raw::bind_interdomain(0, p);
        if got != Err(Errno::Einval) {
            wrong = Some((p, got));
        }
    }
    c.eq(
        "bind_interdomain(0, p) for dom0's ports 0-64 and bad ones, now that its own is bound: \
         all -EINVAL (not offered to this domain, or not unbound)",
        wrong,
        None,
    );
    info(format_args!("{tried} binds to dom0's ports refused"));
    // Other domUs' ports: not offered to it either (or the domain is gone already).
    let mut bound = None;
    for d in 1..=8u16 {
        for p in 1..=8 {
            match raw::bind_interdomain(d, p) {
                Err(Errno::Einval | Errno::Esrch) => {}
                other => bound = Some((d, p, other)),
            }
        }
    }
    c.eq(
        "bind_interdomain to ports 1-8 of d1-d8 (itself included): -EINVAL, or -ESRCH for a \
         domain that does not exist",
        bound,
        None,
    );
}

fn privileged(c: &mut Checks, dom0_port: Port) {
    c.eq(
        "status of dom0's port (the other end of its channel): -EPERM",
        raw::status(0, dom0_port).map(|s| s.status),
        Err(Errno::Eperm),
    );
    c.eq(
        "status of dom0's port 0: -EPERM",
        raw::status(0, 0).map(|s| s.status),
        Err(Errno::Eperm),
    );
    c.eq(
        "status of dom0's port 4096: -EINVAL (the port is checked before the permission)",
        raw::status(0, 4096).map(|s| s.status),
        Err(Errno::Einval),
    );
    c.eq(
        "alloc_unbound in dom0 for itself: -EPERM",
        raw::alloc_unbound_in(0, DOMID_SELF),
        Err(Errno::Eperm),
    );
    c.eq(
        "alloc_unbound in dom0 for dom0: -EPERM",
        raw::alloc_unbound_in(0, 0),
        Err(Errno::Eperm),
    );
    c.eq("reset(dom0): -EPERM", raw::reset(0), Err(Errno::Eperm));
    c.eq(
        "SCHEDOP_remote_shutdown(dom0): -EPERM",
        super::remote::remote_shutdown(0),
        Err(Errno::Eperm),
    );
    c.eq(
        "its channel still works after all that: send to dom0",
        channel::send(),
        Ok(()),
    );
}

fn vcpus_and_unmask(c: &mut Checks, port: Port) {
    c.eq(
        "bind_vcpu(channel, 1), a vCPU it lacks: -ENOENT",
        raw::bind_vcpu(port, 1),
        Err(Errno::Enoent),
    );
    c.eq(
        "bind_vcpu(channel, 2^32 - 1): -ENOENT",
        raw::bind_vcpu(port, u32::MAX),
        Err(Errno::Enoent),
    );
    c.eq("bind_vcpu(channel, 0): 0", raw::bind_vcpu(port, 0), Ok(0));
    let timer = time::timer_port(0).unwrap_or(0);
    c.eq(
        "bind_vcpu(VIRQ_TIMER's port, 0), a per-vCPU VIRQ: -EINVAL",
        raw::bind_vcpu(timer, 0),
        Err(Errno::Einval),
    );
    c.eq(
        "bind_virq(VIRQ_TIMER, 0) again: -EEXIST",
        raw::bind_virq(VIRQ_TIMER, 0),
        Err(Errno::Eexist),
    );
    c.eq(
        "bind_virq(VIRQ_TIMER, 1), a vCPU it lacks: -ENOENT",
        raw::bind_virq(VIRQ_TIMER, 1),
        Err(Errno::Enoent),
    );
    c.eq(
        "bind_virq(VIRQ_DOM_EXC, 1), a global VIRQ on vCPU 1: -EINVAL",
        raw::bind_virq(VIRQ_DOM_EXC, 1),
        Err(Errno::Einval),
    );
    c.eq(
        "bind_virq(24, 0): -EINVAL",
        raw::bind_virq(24, 0),
        Err(Errno::Einval),
    );
    c.eq("bind_ipi(1): -ENOENT", raw::bind_ipi(1), Err(Errno::Enoent));
    let ipi = events::bind_ipi(0, on_ipi);
    c.check(
        "bind_ipi(0) with a counting handler",
        ipi.is_ok(),
        format_args!("{ipi:?}"),
    );
    let Ok(ipi) = ipi else { return };
    c.eq(
        "bind_vcpu(IPI port, 0): -EINVAL",
        raw::bind_vcpu(ipi, 0),
        Err(Errno::Einval),
    );

    // A pending, masked IPI unmasked 10,000 times with events off: delivered once.
    let was_enabled = events::disable();
    events::mask(ipi);
    let sent = events::send(ipi);
    let mut errors = 0u32;
    for _ in 0..UNMASKS {
        events::mask(ipi);
        if raw::unmask(ipi).is_err() {
            errors += 1;
        }
    }
    let before = ipis();
    events::restore(was_enabled);
    let _ = time::sleep_ns(MS);
    c.eq(
        "an IPI sent masked, then 10,000 EVTCHNOP_unmask with events off: every unmask 0",
        (sent, errors),
        (Ok(()), 0),
    );
    c.eq(
        "... and the handler ran exactly once when events came on",
        (before, ipis()),
        (0, 1),
    );
    let mut odd = None;
    for p in 0..=256 {
        match raw::unmask(p) {
            Ok(0) | Err(Errno::Einval) => {}
            other => odd = Some((p, other)),
        }
    }
    c.eq(
        "unmask of each port 0-256: 0, or -EINVAL beyond the table",
        odd,
        None,
    );
    c.eq("the IPI ran no more for those unmasks", ipis(), 1);
    close_pending_ipi(c, ipi);
}

fn close_pending_ipi(c: &mut Checks, ipi: Port) {
    let was_enabled = events::disable();
    let _ = events::send(ipi);
    let pending = events::is_pending(ipi);
    let closed = events::close(ipi);
    let still = events::is_pending(ipi);
    events::restore(was_enabled);
    let _ = time::sleep_ns(MS);
    c.eq(
        "closing a pending IPI port: 0, and its pending bit is cleared",
        (pending, closed, still),
        (true, Ok(()), false),
    );
    c.eq("... its handler never ran for it", ipis(), 1);
    c.eq(
        "... status: closed",
        events::status(ipi).map(|s| s.binding),
        Ok(Binding::Closed),
    );
    c.eq(
        "... close again: -EINVAL",
        raw::close(ipi),
        Err(Errno::Einval),
    );
    c.eq(
        "... send on it: -EINVAL",
        raw::send(ipi),
        Err(Errno::Einval),
    );
}

fn close_in_use(c: &mut Checks, port: Port, dom0_port: Port) {
    // The timer VIRQ closed while its timer is armed: the expiry finds no port.
    let timer = time::timer_port(0).unwrap_or(0);
    let ticks = time::timer_ticks(0);
    let _ = time::stop_periodic(0);
    let armed = time::set_timer(now() + 5 * MS);
    let closed = events::close(timer);
    spin_until(20 * MS, || false);
    c.eq(
        "closing VIRQ_TIMER's port with a timer armed: 0; the expiry delivers nothing",
        (armed, closed, time::timer_ticks(0) - ticks),
        (Ok(()), Ok(()), 0),
    );
    c.eq(
        "... status: closed",
        events::status(timer).map(|s| s.binding),
        Ok(Binding::Closed),
    );
    let again = time::init();
    c.check(
        "VIRQ_TIMER bound again",
        again.is_ok(),
        format_args!("{again:?}"),
    );
    let t0 = now();
    let slept = time::sleep_ns(5 * MS);
    c.check(
        "... and a 5 ms sleep works on it",
        slept.is_ok() && now().saturating_sub(t0) >= 5 * MS,
        format_args!("{slept:?}, {} ns", now().saturating_sub(t0)),
    );

    // The channel to dom0 closed while in use, then bound again: dom0's end became unbound,
    // waiting for this domain, so the same bind works once more.
    let closed = events::close(port);
    c.eq("closing the channel to dom0: 0", closed, Ok(()));
    c.eq(
        "... status: closed",
        events::status(port).map(|s| s.binding),
        Ok(Binding::Closed),
    );
    c.eq(
        "... send on it: -EINVAL",
        raw::send(port),
        Err(Errno::Einval),
    );
    c.eq(
        "... close again: -EINVAL",
        raw::close(port),
        Err(Errno::Einval),
    );
    let rebound = raw::bind_interdomain(0, dom0_port);
    c.check(
        "bind_interdomain(0, dom0's port) again: dom0's end was unbound, waiting for this domain",
        rebound.is_ok(),
        format_args!("{rebound:?}"),
    );
    if let Ok(local) = rebound {
        events::clear_pending(local);
        c.eq(
            "... the new port: interdomain, to the same dom0 port",
            events::status(local).map(|s| s.binding),
            Ok(Binding::Interdomain {
                dom: 0,
                port: dom0_port,
            }),
        );
        c.eq(
            "... with the channel's handler",
            channel::adopt(local),
            Ok(local),
        );
    }
    reset_self(c, dom0_port);
}

/// `EVTCHNOP_reset(DOMID_SELF)` with the channel to dom0 open: every port closes, dom0's end
/// becomes unbound (waiting for this domain), and the channel can be bound once more.
fn reset_self(c: &mut Checks, dom0_port: Port) {
    let channel = channel::port();
    let timer = time::timer_port(0).unwrap_or(0);
    c.eq("EVTCHNOP_reset(DOMID_SELF): 0", events::reset(), Ok(()));
    c.eq(
        "... the channel and VIRQ_TIMER's port are closed",
        (
            events::status(channel).map(|s| s.binding),
            events::status(timer).map(|s| s.binding),
        ),
        (Ok(Binding::Closed), Ok(Binding::Closed)),
    );
    // The timer first: the kit's time layer remembers its port number and would take a
    // reused number for its own (its `init` only asks whether the port has a handler).
    let again = time::init();
    c.check(
        "VIRQ_TIMER bound again after the reset",
        again.is_ok(),
        format_args!("{again:?}"),
    );
    c.eq(
        "... on a port that says VIRQ_TIMER",
        again.and_then(|port| events::status(port).map(|s| s.binding)),
        Ok(Binding::Virq(VIRQ_TIMER)),
    );
    let rebound = raw::bind_interdomain(0, dom0_port);
    c.check(
        "... and dom0's end is unbound again: bind_interdomain(0, dom0's port) works",
        rebound.is_ok(),
        format_args!("{rebound:?}"),
    );
    if let Ok(local) = rebound {
        events::clear_pending(local);
        c.eq(
            "... with the channel's handler",
            channel::adopt(local),
            Ok(local),
        );
    }
}

fn storm(c: &mut Checks, sends: u64) {
    let start = now();
    let mut errors = 0u64;
    for _ in 0..sends {
        if channel::send().is_err() {
            errors += 1;
        }
    }
    let took = now().saturating_sub(start);
    println!("STORM sends={sends} errors={errors} elapsed_ns={took}");
    info(format_args!("{sends} sends to dom0 in {} ms", took / MS));
    c.eq("every send of the storm to dom0 returned 0", errors, 0);
    c.eq("dom0 sent nothing back", channel::received(), 0);
}

fn exhaust(c: &mut Checks, dom0_port: Port) {
    let open_before = (1..=256)
        .filter(|&p| matches!(events::status(p), Ok(s) if s.binding != Binding::Closed))
        .count() as u64;
    let mut allocated = 0u64;
    let mut first = 0;
    let mut last = 0;
    let mut ascending = true;
    let error = loop {
        match raw::alloc_unbound(0) {
            Ok(p) => {
                allocated += 1;
                if first == 0 {
                    first = p;
                }
                ascending &= p > last;
                last = p;
            }
            Err(err) => break Some(err),
        }
        if allocated > 5000 {
            break None;
        }
    };
    println!("EXHAUST allocated={allocated} first={first} last={last} open_before={open_before}");
    c.eq(
        "alloc_unbound until it fails: -ENOSPC",
        error,
        Some(Errno::Enospc),
    );
    c.check(
        "ports handed out lowest first, each once",
        ascending,
        format_args!("not ascending"),
    );
    c.eq(
        "every port from 1 to the last one handed out is in use",
        open_before + allocated,
        u64::from(last),
    );
    c.eq(
        "bind_ipi with every port taken: -ENOSPC",
        raw::bind_ipi(0),
        Err(Errno::Enospc),
    );
    c.eq(
        "bind_interdomain with every port taken: -ENOSPC (a free port is looked for first)",
        raw::bind_interdomain(0, dom0_port),
        Err(Errno::Enospc),
    );
    c.eq("the channel to dom0 still works", channel::send(), Ok(()));
    if first != 0 {
        let _ = raw::close(first);
        c.eq(
            "closing one port and allocating again: the same port",
            raw::alloc_unbound(0),
            Ok(first),
        );
    }
}
