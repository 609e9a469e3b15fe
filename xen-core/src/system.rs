//! The machine-wide state that a hypercall reaches beyond its own domain — every domain's
//! event channels, the scheduler, the timers, the vCPUs polling ports — and the rules that
//! tie them together (portable; the runtime holds one [`System`] under its lock).
//!
//! An event for a vCPU ends up here as a *wake-up*: it makes a blocked vCPU runnable, ends a
//! poll (and its timeout), and leaves the decision of what runs next to the scheduler, which
//! the runtime asks once the hypercall or interrupt is handled.

use crate::event::{EventHub, EventSink};
use crate::sched::{SchedParams, Scheduler};
use crate::time::timers::TimerQueue;
use crate::types::{DomId, Port, VcpuRef};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// What a timer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TimerKey {
    /// A vCPU's single-shot timer (`set_timer_op`, `VCPUOP_set_singleshot_timer`).
    Singleshot(VcpuRef),
    /// A vCPU's periodic timer (armed only while the vCPU runs, as in Xen).
    Periodic(VcpuRef),
    /// The timeout of a vCPU's `SCHEDOP_poll`.
    Poll(VcpuRef),
    /// The next look at the console for typed input.
    ConsolePoll,
}

impl TimerKey {
    /// The vCPU the timer belongs to, if it belongs to one.
    pub const fn vcpu(self) -> Option<VcpuRef> {
        match self {
            TimerKey::Singleshot(v) | TimerKey::Periodic(v) | TimerKey::Poll(v) => Some(v),
            TimerKey::ConsolePoll => None,
        }
    }
}

/// Most ports one `SCHEDOP_poll` may wait on (Xen's limit).
pub const MAX_POLL_PORTS: usize = 128;

/// The machine-wide state.
#[derive(Debug)]
pub struct System {
    /// Every domain's event channels.
    pub events: EventHub,
    /// The scheduler for every vCPU.
    pub sched: Scheduler,
    /// Every timer.
    pub timers: TimerQueue<TimerKey>,
    /// vCPUs blocked in `SCHEDOP_poll`, with the ports they wait on.
    polls: BTreeMap<VcpuRef, Vec<Port>>,
    /// Typed console input (dom0's, or the debug keys').
    pub console_in: crate::console::input::ConsoleInput,
}

impl System {
    /// The state for `nr_cpus` physical CPUs with scheduler parameters `params`.
    pub fn new(nr_cpus: usize, params: SchedParams) -> System {
        System {
            events: EventHub::new(),
            sched: Scheduler::new(nr_cpus, params),
            timers: TimerQueue::new(),
            polls: BTreeMap::new(),
            console_in: crate::console::input::ConsoleInput::new(),
        }
    }

    /// An [`EventSink`] that turns kicks and raised ports into wake-ups at time `now`, with
    /// the event hub beside it (they are disjoint parts of `self`).
    pub fn split(&mut self, now: u64) -> (&mut EventHub, Wakeups<'_>) {
        let System {
            events,
            sched,
            timers,
            polls,
            ..
        } = self;
        (
            events,
            Wakeups {
                sched,
                timers,
                polls,
                now,
            },
        )
    }

    /// Wakes `v` at `now` (see [`Wakeups::wake`]).
    pub fn wake(&mut self, v: VcpuRef, now: u64) {
        self.split(now).1.wake(v);
    }

    /// `v` starts polling `ports` (already checked not to be pending), blocked until one is
    /// raised, an event arrives for it, or (if `timeout` is not 0) system time `timeout`.
    pub fn start_poll(&mut self, v: VcpuRef, ports: Vec<Port>, timeout: u64, now: u64) {
        self.polls.insert(v, ports);
        if timeout != 0 {
            self.timers.set(TimerKey::Poll(v), timeout);
        }
        let _ = self.sched.block(v, now);
    }

    /// Whether `v` is blocked in a poll.
    pub fn is_polling(&self, v: VcpuRef) -> bool {
        self.polls.contains_key(&v)
    }

    /// Forgets everything about domain `dom`'s vCPUs here: polls, timers, scheduling.
    /// (Its event channels go with [`EventHub::remove_domain`], which needs guest memory.)
    pub fn forget_domain(&mut self, dom: DomId) {
        self.polls.retain(|v, _| v.dom != dom);
        self.timers
            .retain(|k| k.vcpu().is_none_or(|v| v.dom != dom));
        let _ = self.sched.remove_domain(dom);
    }
}

/// Wake-ups at one moment: the scheduler, the polls and their timeouts.
#[derive(Debug)]
pub struct Wakeups<'a> {
    sched: &'a mut Scheduler,
    timers: &'a mut TimerQueue<TimerKey>,
    polls: &'a mut BTreeMap<VcpuRef, Vec<Port>>,
    now: u64,
}

impl Wakeups<'_> {
    /// `v` has an event: it stops polling (its poll returns 0) and, if it was blocked,
    /// becomes runnable. A vCPU that is down stays down.
    pub fn wake(&mut self, v: VcpuRef) {
        if self.polls.remove(&v).is_some() {
            self.timers.cancel(TimerKey::Poll(v));
        }
        let _ = self.sched.wake(v, self.now);
    }
}

impl EventSink for Wakeups<'_> {
    fn kick(&mut self, v: VcpuRef) {
        self.wake(v);
    }

    fn port_raised(&mut self, dom: DomId, port: Port) {
        let pollers: Vec<VcpuRef> = self
            .polls
            .iter()
            .filter(|(v, ports)| v.dom == dom && ports.contains(&port))
            .map(|(v, _)| *v)
            .collect();
        for v in pollers {
            self.wake(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::DomParams;

    const D: DomId = DomId(1);

    fn v(n: u32) -> VcpuRef {
        VcpuRef { dom: D, vcpu: n }
    }

    fn system_with_vcpus(n: u32) -> System {
        let mut s = System::new(1, SchedParams::default());
        s.sched.add_domain(D, DomParams::default()).unwrap();
        for i in 0..n {
            s.sched.add_vcpu(v(i), 0, 0).unwrap();
            s.sched.vcpu_up(v(i), 0).unwrap();
        }
        s
    }

    #[test]
    fn a_raised_port_wakes_only_its_pollers() {
        let mut s = system_with_vcpus(2);
        s.start_poll(v(0), alloc::vec![Port(3), Port(4)], 1_000, 10);
        s.start_poll(v(1), alloc::vec![Port(5)], 0, 10);
        assert!(s.is_polling(v(0)) && s.is_polling(v(1)));
        assert_eq!(s.timers.deadline(TimerKey::Poll(v(0))), Some(1_000));
        assert_eq!(s.timers.deadline(TimerKey::Poll(v(1))), None);
        s.split(20).1.port_raised(D, Port(4));
        assert!(!s.is_polling(v(0)));
        assert_eq!(s.timers.deadline(TimerKey::Poll(v(0))), None);
        assert!(s.is_polling(v(1)));
        // Another domain's port 5 is not ours.
        s.split(30).1.port_raised(DomId(2), Port(5));
        assert!(s.is_polling(v(1)));
        // A kick (an upcall for it) ends any poll.
        s.split(40).1.kick(v(1));
        assert!(!s.is_polling(v(1)));
    }

    #[test]
    fn forgetting_a_domain_drops_its_polls_and_timers() {
        let mut s = system_with_vcpus(1);
        s.start_poll(v(0), alloc::vec![Port(1)], 500, 0);
        s.timers.set(TimerKey::Singleshot(v(0)), 700);
        let other = VcpuRef {
            dom: DomId(2),
            vcpu: 0,
        };
        s.timers.set(TimerKey::Singleshot(other), 900);
        s.forget_domain(D);
        assert!(!s.is_polling(v(0)));
        assert_eq!(s.timers.len(), 1);
        assert_eq!(s.timers.next_deadline(), Some(900));
        assert_eq!(TimerKey::Periodic(other).vcpu(), Some(other));
        assert_eq!(TimerKey::ConsolePoll.vcpu(), None);
    }
}
