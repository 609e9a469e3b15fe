//! A domU's end of its event channel to its peer (dom0, or another domU): finding and binding
//! the port the peer offers ([`connect`], [`connect_to`]), counting what arrives
//! ([`received`]), sending ([`send`]) and waiting ([`wait_received`]).

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use guest_support::{Checks, Name, info};
use pv_guest_kit::abi::errno::Errno;
use pv_guest_kit::events::{self, Binding, Port};
use pv_guest_kit::hypercall::evtchn as raw;
use pv_guest_kit::{HypercallResult, time};

use super::{MS, SECOND, now};

/// The highest port of its peer a domU tries.
pub const MAX_PROBE: Port = 64;

/// How long a domU keeps looking for its port.
const CONNECT_TIMEOUT: u64 = 10 * SECOND;

/// This domain's end of the channel (0 until connected).
static PORT: AtomicU32 = AtomicU32::new(0);

/// Events the channel's handler received.
static RECEIVED: AtomicU64 = AtomicU64::new(0);

fn on_event(_port: Port) {
    RECEIVED.fetch_add(1, Ordering::SeqCst);
}

/// Events received from the peer so far.
pub fn received() -> u64 {
    RECEIVED.load(Ordering::SeqCst)
}

/// The channel's local port (0 before [`connect`]).
pub fn port() -> Port {
    PORT.load(Ordering::SeqCst)
}

/// Notifies the peer.
///
/// # Errors
/// As `EVTCHNOP_send`.
pub fn send() -> HypercallResult<()> {
    events::send(port())
}

/// Blocks until [`received`] reaches `n` or `timeout_ns` passed; returns whether it did.
pub fn wait_received(n: u64, timeout_ns: u64) -> bool {
    if received() >= n {
        return true;
    }
    let deadline = now().saturating_add(timeout_ns);
    time::wait_until(|| received() >= n, Some(deadline)).unwrap_or(false)
}

/// Finds the port dom0 offers this domain and binds it (see the module documentation of
/// `guest`); returns the local port, handled by this module's counter, or `None` (after a
/// failed check) if dom0 never offered one.
pub fn connect(c: &mut Checks) -> Option<Port> {
    connect_to(c, 0)
}

/// [`connect`] to domain `remote` instead of dom0.
pub fn connect_to(c: &mut Checks, remote: u16) -> Option<Port> {
    let start = now();
    let mut rounds = 0u32;
    let mut odd = None;
    let found = loop {
        rounds += 1;
        let mut found = None;
        for p in 1..=MAX_PROBE {
            match raw::bind_interdomain(remote, p) {
                Ok(local) => {
                    found = Some((p, local));
                    break;
                }
                Err(Errno::Einval) => {}
                Err(err) => odd = Some((p, err)),
            }
        }
        if found.is_some() || now().saturating_sub(start) > CONNECT_TIMEOUT {
            break found;
        }
        let _ = time::sleep_ns(MS);
    };
    c.eq(
        Name::of(format_args!(
            "probing d{remote}'s ports with bind_interdomain: every port not offered to this \
             domain is -EINVAL"
        ))
        .as_str(),
        odd,
        None,
    );
    let found_name = Name::of(format_args!(
        "bind_interdomain({remote}, p) finds the port d{remote} offers this domain"
    ));
    let Some((remote_port, local)) = found else {
        c.fail(
            found_name.as_str(),
            format_args!("no port in 1..={MAX_PROBE} bound within 10 s ({rounds} rounds)"),
        );
        return None;
    };
    info(format_args!(
        "bound d{remote}'s port {remote_port} as local port {local} after {rounds} probing \
         round(s), {} us",
        now().saturating_sub(start) / 1000
    ));
    c.pass(found_name.as_str());
    c.check(
        "the new local port is pending at once (Xen covers notifications sent before the bind)",
        events::is_pending(local),
        format_args!("not pending"),
    );
    events::clear_pending(local);
    c.eq(
        "EVTCHNOP_status of the new port: interdomain, to the port found",
        events::status(local).map(|s| s.binding),
        Ok(Binding::Interdomain {
            dom: remote,
            port: remote_port,
        }),
    );
    PORT.store(local, Ordering::SeqCst);
    c.eq(
        "a handler attached to the channel",
        events::attach(local, 0, on_event),
        Ok(local),
    );
    c.eq("nothing received yet", received(), 0);
    Some(local)
}

/// Makes `local` (a new binding of the same channel) this module's port, with its handler.
///
/// # Errors
/// As [`events::attach`].
pub fn adopt(local: Port) -> HypercallResult<Port> {
    PORT.store(local, Ordering::SeqCst);
    events::attach(local, 0, on_event)
}
