//! Event channels for guest kernels: binding ports to handlers, masking, sending, and the
//! upcall that runs the handlers (reference §6.3, §8.4, §10).
//!
//! ```ignore
//! use pv_guest_kit::events;
//! use pv_guest_kit::abi::evtchn::VIRQ_TIMER;
//!
//! fn tick(port: events::Port) { /* runs in the upcall, events masked */ }
//!
//! events::init()?;                               // upcall entry registered on this vCPU
//! let port = events::bind_virq(VIRQ_TIMER, 0, tick)?;
//! events::enable();                              // the virtual "sti"
//! ```
//!
//! # How it works
//!
//! [`init`] maps `shared_info`, points vCPU 0's kernel GS base at its per-vCPU record (so that
//! the kit can tell which vCPU it runs on, [`crate::arch::percpu`]) and registers the kit's
//! upcall entry as vCPU 0's event callback; secondary vCPUs started by [`crate::vcpus`] get the
//! same entry in their first context. Events stay masked until [`enable`].
//!
//! Every port bound through this module has a [`Handler`] and belongs to the vCPU it notifies.
//! The upcall runs [`crate::evtchn_2l::dispatch`] on the running vCPU's `vcpu_info`: it takes
//! the selector, and for each pending, unmasked port of *this* vCPU that has a handler, clears
//! the pending bit and calls the handler (events masked, on the interrupted stack). Ports
//! without a handler here (bound with raw hypercalls, or belonging to another vCPU) are left
//! pending: [`is_pending`] and `SCHEDOP_poll` see them. After the handlers, the entry returns
//! through the `iret` hypercall, which restores the event mask atomically.
//!
//! Handlers must be short and must not take locks the interrupted code may hold (the heap's,
//! for instance: don't allocate). A handler may bind, close, send and mask; if it re-enables
//! events, upcalls nest, which the dispatcher handles.
//!
//! The bit-level protocol (selector, masks, the unmask fast path) is in
//! [`crate::evtchn_2l`]; the raw operations in [`crate::hypercall::evtchn`].

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use hypercall_abi::domid::DOMID_SELF;
use hypercall_abi::evtchn::{
    EVTCHNSTAT_CLOSED, EVTCHNSTAT_INTERDOMAIN, EVTCHNSTAT_IPI, EVTCHNSTAT_PIRQ, EVTCHNSTAT_UNBOUND,
    EVTCHNSTAT_VIRQ, EvtchnStatus,
};
use hypercall_abi::types::{DomidT, EvtchnPort};

use crate::arch::percpu::{self, MAX_VCPUS};
use crate::arch::shared::{self, SharedInfo, VcpuInfo};
use crate::arch::upcall::UpcallFrame;
use crate::errno::{Errno, HypercallResult};
use crate::evtchn_2l::{self, NR_PORTS, PortSet, TwoLevel, Unmasked};
use crate::hypercall::evtchn as raw;

/// An event-channel port number.
pub type Port = EvtchnPort;

/// What runs when a port fires: called in the upcall, events masked, with the port.
pub type Handler = fn(Port);

/// The handler of each port bound through this module.
static HANDLERS: spin::RwLock<[Option<Handler>; NR_PORTS as usize]> =
    spin::RwLock::new([None; NR_PORTS as usize]);

/// For each vCPU, the ports whose handler runs there (the ports that notify it).
static LOCAL: [PortSet; MAX_VCPUS] = [const { PortSet::new() }; MAX_VCPUS];

/// Per-vCPU counters.
struct Counters {
    upcalls: AtomicU64,
    nested: AtomicU64,
    spurious: AtomicU64,
    handled: AtomicU64,
    depth: AtomicU32,
    max_depth: AtomicU32,
}

static COUNTERS: [Counters; MAX_VCPUS] = [const {
    Counters {
        upcalls: AtomicU64::new(0),
        nested: AtomicU64::new(0),
        spurious: AtomicU64::new(0),
        handled: AtomicU64::new(0),
        depth: AtomicU32::new(0),
        max_depth: AtomicU32::new(0),
    }
}; MAX_VCPUS];

/// What the upcall did so far on one vCPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpcallStats {
    /// Upcalls entered.
    pub upcalls: u64,
    /// Upcalls entered while another was running on the same vCPU.
    pub nested: u64,
    /// Upcalls that found no port to dispatch.
    pub spurious: u64,
    /// Handler calls.
    pub handled: u64,
    /// The deepest nesting seen (1 = never nested).
    pub max_depth: u32,
}

/// The upcall counters of vCPU `vcpu` (all zero for an id the kit does not support).
pub fn stats(vcpu: u32) -> UpcallStats {
    counters(vcpu).map_or_else(UpcallStats::default, |c| UpcallStats {
        upcalls: c.upcalls.load(Ordering::Relaxed),
        nested: c.nested.load(Ordering::Relaxed),
        spurious: c.spurious.load(Ordering::Relaxed),
        handled: c.handled.load(Ordering::Relaxed),
        max_depth: c.max_depth.load(Ordering::Relaxed),
    })
}

fn counters(vcpu: u32) -> Option<&'static Counters> {
    COUNTERS.get(usize::try_from(vcpu).ok()?)
}

fn local(vcpu: u32) -> Option<&'static PortSet> {
    LOCAL.get(usize::try_from(vcpu).ok()?)
}

/// One vCPU's view of the 2-level state: its `vcpu_info` and the shared bitmaps.
#[derive(Clone, Copy, Debug)]
struct View {
    shared: SharedInfo,
    vcpu: VcpuInfo,
}

impl View {
    fn current() -> HypercallResult<View> {
        Ok(View {
            shared: shared::shared_info()?,
            vcpu: shared::vcpu_info(percpu::current())?,
        })
    }
}

impl TwoLevel for View {
    fn upcall_pending(&self) -> bool {
        self.vcpu.upcall_pending() != 0
    }
    fn set_upcall_pending(&self, pending: bool) {
        self.vcpu.set_upcall_pending(u8::from(pending));
    }
    fn upcall_masked(&self) -> bool {
        self.vcpu.upcall_mask() != 0
    }
    fn take_selector(&self) -> u64 {
        self.vcpu.take_pending_sel()
    }
    fn test_and_set_selector(&self, word: usize) -> bool {
        let bit = 1u64
            .checked_shl(u32::try_from(word).unwrap_or(64))
            .unwrap_or(0);
        self.vcpu.fetch_set_pending_sel(bit) & bit != 0
    }
    fn pending_word(&self, word: usize) -> u64 {
        self.shared.pending_word(word)
    }
    fn mask_word(&self, word: usize) -> u64 {
        self.shared.mask_word(word)
    }
    fn test_and_clear_pending(&self, word: usize, bit: u64) -> bool {
        self.shared.fetch_clear(false, word, bit) & bit != 0
    }
    fn test_and_clear_mask(&self, word: usize, bit: u64) -> bool {
        self.shared.fetch_clear(true, word, bit) & bit != 0
    }
}

/// Called by the upcall entry on the vCPU that took the upcall.
pub(crate) fn handle_upcall(_frame: &mut UpcallFrame) {
    let id = percpu::current();
    let (Ok(view), Some(counters), Some(local)) = (View::current(), counters(id), local(id)) else {
        return;
    };
    counters.upcalls.fetch_add(1, Ordering::Relaxed);
    let depth = counters.depth.fetch_add(1, Ordering::Relaxed) + 1;
    if depth > 1 {
        counters.nested.fetch_add(1, Ordering::Relaxed);
    }
    counters.max_depth.fetch_max(depth, Ordering::Relaxed);
    let done = evtchn_2l::dispatch(&view, |word| local.word(word), run_handler);
    if done.ports == 0 {
        counters.spurious.fetch_add(1, Ordering::Relaxed);
    }
    counters
        .handled
        .fetch_add(u64::from(done.ports), Ordering::Relaxed);
    counters.depth.fetch_sub(1, Ordering::Relaxed);
}

fn run_handler(port: Port) {
    let handler = HANDLERS
        .read()
        .get(usize::try_from(port).unwrap_or(usize::MAX))
        .copied()
        .flatten();
    if let Some(handler) = handler {
        handler(port);
    }
}

/// Sets the event layer up on vCPU 0 (once; later calls only re-register the callback on the
/// calling vCPU): maps `shared_info`, points the kernel GS base at the kit's per-vCPU record,
/// registers the upcall entry. Events stay masked; [`enable`] unmasks them.
///
/// # Errors
/// The hypervisor's error for the mapping, `set_segment_base` or `callback_op`.
pub fn init() -> HypercallResult<()> {
    shared::shared_info()?;
    percpu::init_boot_vcpu()?;
    crate::arch::upcall::register()?;
    Ok(())
}

/// The running vCPU's `vcpu_info`.
fn this_vcpu() -> HypercallResult<VcpuInfo> {
    shared::vcpu_info(percpu::current())
}

/// Whether event delivery is enabled on the running vCPU (`evtchn_upcall_mask` clear).
pub fn are_enabled() -> bool {
    this_vcpu().is_ok_and(|v| v.upcall_mask() == 0)
}

/// Masks event delivery on the running vCPU (the virtual `cli`); returns whether it was
/// enabled, for [`restore`].
pub fn disable() -> bool {
    match this_vcpu() {
        Ok(vcpu) => {
            let was_enabled = vcpu.upcall_mask() == 0;
            vcpu.set_upcall_mask(1);
            was_enabled
        }
        Err(_) => false,
    }
}

/// Enables event delivery on the running vCPU (the virtual `sti`): clears
/// `evtchn_upcall_mask`, then, if an upcall is pending, makes a harmless hypercall so that
/// the hypervisor delivers it now (reference §10.3, "enabling events").
pub fn enable() {
    if let Ok(vcpu) = this_vcpu() {
        vcpu.set_upcall_mask(0);
        core::sync::atomic::fence(Ordering::SeqCst);
        if vcpu.upcall_pending() != 0 {
            force_upcall();
        }
    }
}

/// Enables events again if `was_enabled` (what [`disable`] returned).
pub fn restore(was_enabled: bool) {
    if was_enabled {
        enable();
    }
}

/// Runs `f` with events masked on the running vCPU, restoring the previous state after.
pub fn without_events<R>(f: impl FnOnce() -> R) -> R {
    let was_enabled = disable();
    let result = f();
    restore(was_enabled);
    result
}

/// Gets a pending upcall delivered: any hypercall returns through the check, and
/// `xen_version(XENVER_version)` has no effect.
fn force_upcall() {
    let _ = crate::hypercall::version::version();
}

/// Makes `handler` the handler of `port`, which notifies `vcpu`. Events are masked on the
/// running vCPU while the table changes (an upcall here would wait for the lock forever).
fn register(port: Port, vcpu: u32, handler: Option<Handler>) -> HypercallResult<()> {
    let index = usize::try_from(port).map_err(|_| Errno::Einval)?;
    let target = local(vcpu).ok_or(Errno::Einval)?;
    without_events(|| {
        let mut table = HANDLERS.write();
        let slot = table.get_mut(index).ok_or(Errno::Einval)?;
        *slot = handler;
        for set in &LOCAL {
            set.remove(port);
        }
        if handler.is_some() {
            target.insert(port);
        }
        Ok(())
    })
}

/// After a port got its handler: unmask it and raise it again if it fired before the handler
/// was in place (its pending bit is set but its selector bit may have been consumed).
fn arm(port: Port) -> HypercallResult<()> {
    mask(port);
    unmask(port)
}

/// Binds `virq` on `vcpu` to a new port handled by `handler` (`EVTCHNOP_bind_virq`), unmasked.
///
/// # Errors
/// As [`raw::bind_virq`]: `-EINVAL` for a bad VIRQ or a global one on a vCPU other than 0,
/// `-ENOENT` for a bad vCPU, `-EEXIST` if it is bound already.
pub fn bind_virq(virq: u32, vcpu: u32, handler: Handler) -> HypercallResult<Port> {
    let port = raw::bind_virq(virq, vcpu)?;
    attach(port, vcpu, handler)
}

/// Binds a new IPI port notifying `vcpu` to `handler` (`EVTCHNOP_bind_ipi`), unmasked; any
/// vCPU's [`send`] on it runs `handler` on `vcpu`.
///
/// # Errors
/// As [`raw::bind_ipi`].
pub fn bind_ipi(vcpu: u32, handler: Handler) -> HypercallResult<Port> {
    let port = raw::bind_ipi(vcpu)?;
    attach(port, vcpu, handler)
}

/// Allocates a port of this domain that `remote` may bind to (`EVTCHNOP_alloc_unbound`),
/// handled by `handler` on vCPU 0 (where Xen points new ports), unmasked.
///
/// # Errors
/// As [`raw::alloc_unbound`].
pub fn alloc_unbound(remote: DomidT, handler: Handler) -> HypercallResult<Port> {
    let port = raw::alloc_unbound(remote)?;
    attach(port, 0, handler)
}

/// Connects a new local port to `remote_port` of `remote_dom` (`EVTCHNOP_bind_interdomain`;
/// `DOMID_SELF` for a loopback pair), handled by `handler` on vCPU 0, unmasked. Xen makes the
/// new port pending at once, so `handler` runs as soon as events are enabled.
///
/// # Errors
/// As [`raw::bind_interdomain`].
pub fn bind_interdomain(
    remote_dom: DomidT,
    remote_port: Port,
    handler: Handler,
) -> HypercallResult<Port> {
    let port = raw::bind_interdomain(remote_dom, remote_port)?;
    attach(port, 0, handler)
}

/// Gives `port`, bound elsewhere (e.g. with a raw hypercall) and notifying `vcpu`, the handler
/// `handler`, and unmasks it.
///
/// # Errors
/// `-EINVAL` for a port or vCPU out of range; the error of `EVTCHNOP_unmask`.
pub fn attach(port: Port, vcpu: u32, handler: Handler) -> HypercallResult<Port> {
    register(port, vcpu, Some(handler))?;
    arm(port)?;
    Ok(port)
}

/// Forgets `port`'s handler (the port stays open, and from now on stays pending when it
/// fires).
///
/// # Errors
/// `-EINVAL` for a port out of range.
pub fn detach(port: Port) -> HypercallResult<()> {
    register(port, 0, None)
}

/// Whether `port` has a handler here.
pub fn is_attached(port: Port) -> bool {
    LOCAL.iter().any(|set| set.contains(port))
}

/// Makes `port` notify `vcpu` from now on (`EVTCHNOP_bind_vcpu`); its handler then runs there.
///
/// # Errors
/// As [`raw::bind_vcpu`]: `-EINVAL` for per-vCPU VIRQs and IPIs, which cannot move.
pub fn bind_vcpu(port: Port, vcpu: u32) -> HypercallResult<()> {
    let handler = HANDLERS
        .read()
        .get(usize::try_from(port).unwrap_or(usize::MAX))
        .copied()
        .flatten();
    let was_masked = mask(port);
    let moved = raw::bind_vcpu(port, vcpu);
    if moved.is_ok() && handler.is_some() {
        register(port, vcpu, handler)?;
    }
    if !was_masked {
        unmask(port)?;
    }
    moved.map(|_| ())
}

/// Closes `port` (`EVTCHNOP_close`) and forgets its handler. The other end of an interdomain
/// channel becomes unbound again.
///
/// # Errors
/// As [`raw::close`]: `-EINVAL` for a port that is not open.
pub fn close(port: Port) -> HypercallResult<()> {
    if is_attached(port) {
        register(port, 0, None)?;
    }
    raw::close(port).map(|_| ())
}

/// Closes every port of this domain (`EVTCHNOP_reset`) and forgets every handler.
///
/// # Errors
/// As [`raw::reset`].
pub fn reset() -> HypercallResult<()> {
    without_events(|| {
        let mut table = HANDLERS.write();
        for slot in table.iter_mut() {
            *slot = None;
        }
        for set in &LOCAL {
            set.clear();
        }
    });
    // Every port is closed: the time layer's VIRQ_TIMER ports too.
    crate::time::forget_timer_ports();
    raw::reset(DOMID_SELF).map(|_| ())
}

/// Notifies the other end of `port` (`EVTCHNOP_send`).
///
/// # Errors
/// As [`raw::send`]: `-EINVAL` for a closed, VIRQ or PIRQ port.
pub fn send(port: Port) -> HypercallResult<()> {
    raw::send(port).map(|_| ())
}

/// Sets `port`'s mask bit in `shared_info` (the port then only becomes pending when it fires);
/// returns whether it was masked already. Does nothing for a port out of range.
pub fn mask(port: Port) -> bool {
    match (evtchn_2l::position(port), shared::shared_info()) {
        (Some((word, bit)), Ok(shared)) => shared.fetch_set(true, word, bit) & bit != 0,
        _ => false,
    }
}

/// Clears `port`'s mask bit and, if it is pending, raises it. For a port whose handler runs on
/// this vCPU that is the guest's fast path (reference §10.3): the kit sets the selector bit
/// and `upcall_pending` itself and, if events are enabled, gets the upcall delivered at once;
/// for any other port it asks Xen (`EVTCHNOP_unmask`).
///
/// # Errors
/// `-EINVAL` for a port out of range; the error of `EVTCHNOP_unmask`.
pub fn unmask(port: Port) -> HypercallResult<()> {
    evtchn_2l::position(port).ok_or(Errno::Einval)?;
    let here = percpu::current();
    if !local(here).is_some_and(|set| set.contains(port)) {
        return raw::unmask(port).map(|_| ());
    }
    let view = View::current()?;
    // The fast path must not be interrupted by an upcall of this vCPU between its steps.
    let was_enabled = disable();
    let outcome = evtchn_2l::unmask(&view, port);
    // Restoring the mask delivers the upcall if it is now pending.
    restore(was_enabled);
    match outcome {
        Some(Unmasked::Quiet | Unmasked::Deferred | Unmasked::DeliverNow) => Ok(()),
        None => Err(Errno::Einval),
    }
}

/// Whether `port`'s mask bit is set.
pub fn is_masked(port: Port) -> bool {
    bit_of(true, port)
}

/// Whether `port`'s pending bit is set.
pub fn is_pending(port: Port) -> bool {
    bit_of(false, port)
}

fn bit_of(mask: bool, port: Port) -> bool {
    match (evtchn_2l::position(port), shared::shared_info()) {
        (Some((word, bit)), Ok(shared)) => {
            let value = if mask {
                shared.mask_word(word)
            } else {
                shared.pending_word(word)
            };
            value & bit != 0
        }
        _ => false,
    }
}

/// Clears `port`'s pending bit; returns whether it was set.
pub fn clear_pending(port: Port) -> bool {
    match (evtchn_2l::position(port), shared::shared_info()) {
        (Some((word, bit)), Ok(shared)) => shared.fetch_clear(false, word, bit) & bit != 0,
        _ => false,
    }
}

/// What a port is bound to (`EVTCHNOP_status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    /// Not in use.
    Closed,
    /// Waiting for `remote` to bind to it.
    Unbound {
        /// The domain allowed to bind.
        remote: DomidT,
    },
    /// Connected to `port` of `dom`.
    Interdomain {
        /// The remote domain.
        dom: DomidT,
        /// The remote port.
        port: Port,
    },
    /// A physical IRQ.
    Pirq(u32),
    /// A VIRQ.
    Virq(u32),
    /// An IPI.
    Ipi,
    /// A status value the ABI does not define.
    Other(u32),
}

/// A port's status: its binding and the vCPU it notifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// What the port is bound to.
    pub binding: Binding,
    /// The vCPU it notifies.
    pub vcpu: u32,
}

impl From<EvtchnStatus> for Status {
    fn from(raw: EvtchnStatus) -> Status {
        let binding = match raw.status {
            EVTCHNSTAT_CLOSED => Binding::Closed,
            EVTCHNSTAT_UNBOUND => Binding::Unbound {
                remote: raw.unbound_dom(),
            },
            EVTCHNSTAT_INTERDOMAIN => {
                let (dom, port) = raw.interdomain();
                Binding::Interdomain { dom, port }
            }
            EVTCHNSTAT_PIRQ => Binding::Pirq(raw.pirq()),
            EVTCHNSTAT_VIRQ => Binding::Virq(raw.virq()),
            EVTCHNSTAT_IPI => Binding::Ipi,
            other => Binding::Other(other),
        };
        Status {
            binding,
            vcpu: raw.vcpu,
        }
    }
}

/// The status of this domain's `port`.
///
/// # Errors
/// As [`raw::status`]: `-EINVAL` for a port out of range.
pub fn status(port: Port) -> HypercallResult<Status> {
    raw::status(DOMID_SELF, port).map(Status::from)
}

/// `SCHEDOP_poll` on `ports` until one is pending or system time reaches `deadline_ns`
/// (`None`: no timeout). Returns at once if a port is pending already. Events are masked on
/// this vCPU during the call (Xen 4.17 does not require it, Xen 3.x did) and the mask restored
/// afterwards, so that the upcalls of whatever woke the vCPU run after the poll returned.
/// Meant for ports without a handler here, whose pending bit the caller then looks at
/// ([`is_pending`]); a caller that checks a condition first should mask events before the
/// check ([`disable`]), so that an event arriving in between stays pending and ends the poll.
///
/// # Errors
/// As [`crate::hypercall::sched::poll`]: `-EINVAL` for more than 128 ports or a port out of
/// range.
pub fn poll(ports: &[Port], deadline_ns: Option<u64>) -> HypercallResult<()> {
    without_events(|| crate::hypercall::sched::poll(ports, deadline_ns.unwrap_or(0))).map(|_| ())
}
