//! What the secondary vCPUs run, and the state they share with vCPU 0.
//!
//! Each starts in [`entry`] on its own stack: it records that it runs (and which id
//! `vcpus::current` reports), enables events, binds its own `VIRQ_TIMER` and sleeps 5 ms on
//! it, then serves commands: vCPU 0 stores a [`Command`] and sends the vCPU's kick IPI. After
//! each step it sends on [`NOTIFY`] to wake vCPU 0.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use pv_guest_kit::events::{self, Port};
use pv_guest_kit::time;
use pv_guest_kit::vcpus::{self, MAX_VCPUS};

/// Increments each vCPU adds to [`SHARED`].
pub const INCREMENTS: u64 = 100_000;

/// What a secondary vCPU is asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Command {
    /// Nothing (yet).
    Idle = 0,
    /// Add [`INCREMENTS`] to [`SHARED`], then report.
    Count = 1,
}

/// Per-vCPU state (index = vCPU id).
pub struct PerVcpu {
    /// Set (to the id `vcpus::current` gave + 1) when the entry function runs.
    pub started: AtomicU32,
    /// Nanoseconds the 5 ms sleep on the vCPU's own timer took (0 until done).
    pub slept_ns: AtomicU64,
    /// Timer ticks the vCPU counted during that sleep.
    pub sleep_ticks: AtomicU64,
    /// The vCPU's `VIRQ_TIMER` port.
    pub timer_port: AtomicU32,
    /// The command to run, and how many commands completed.
    pub command: AtomicU32,
    /// Commands completed.
    pub done: AtomicU32,
    /// Handler calls on this vCPU for a port bound to another one.
    pub misrouted: AtomicU32,
}

/// One record per vCPU the kit supports.
pub static STATE: [PerVcpu; MAX_VCPUS] = [const {
    PerVcpu {
        started: AtomicU32::new(0),
        slept_ns: AtomicU64::new(0),
        sleep_ticks: AtomicU64::new(0),
        timer_port: AtomicU32::new(0),
        command: AtomicU32::new(0),
        done: AtomicU32::new(0),
        misrouted: AtomicU32::new(0),
    }
}; MAX_VCPUS];

/// The IPI port (notifying vCPU 0) the secondaries send on after each step, so that vCPU 0,
/// blocked waiting for them, wakes up to look.
pub static NOTIFY: AtomicU32 = AtomicU32::new(0);

fn notify() {
    let _ = events::send(NOTIFY.load(Ordering::SeqCst));
}

/// The counter every vCPU increments.
pub static SHARED: AtomicU64 = AtomicU64::new(0);

/// The state of vCPU `id`.
pub fn state(id: u32) -> &'static PerVcpu {
    let index = usize::try_from(id).unwrap_or(0).min(MAX_VCPUS - 1);
    &STATE[index]
}

/// A kick handler: the wake-up is the point; it also checks where it runs.
pub fn on_kick(port: Port) {
    let here = vcpus::current();
    if events::status(port).is_ok_and(|s| s.vcpu != here) {
        state(here).misrouted.fetch_add(1, Ordering::SeqCst);
    }
}

/// The secondary vCPUs' entry point.
pub fn entry(id: u32) -> ! {
    let me = state(id);
    me.started.store(vcpus::current() + 1, Ordering::SeqCst);
    events::enable();
    if let Ok(port) = time::init() {
        me.timer_port.store(port, Ordering::SeqCst);
    }
    let before = time::timer_ticks(id);
    let t0 = time::now_ns().unwrap_or(0);
    let _ = time::sleep_ns(5_000_000);
    me.sleep_ticks
        .store(time::timer_ticks(id) - before, Ordering::SeqCst);
    me.slept_ns.store(
        time::now_ns().unwrap_or(0).saturating_sub(t0).max(1),
        Ordering::SeqCst,
    );
    notify();
    let mut seen = Command::Idle as u32;
    loop {
        let _ = time::wait_until(|| me.command.load(Ordering::SeqCst) != seen, None);
        seen = me.command.load(Ordering::SeqCst);
        if seen == Command::Count as u32 {
            for _ in 0..INCREMENTS {
                SHARED.fetch_add(1, Ordering::SeqCst);
            }
        }
        me.command.store(Command::Idle as u32, Ordering::SeqCst);
        seen = Command::Idle as u32;
        me.done.fetch_add(1, Ordering::SeqCst);
        notify();
    }
}
