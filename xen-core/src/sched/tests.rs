//! Host tests of the scheduler: event-by-event checks and simulated runs.

use super::*;
use alloc::vec;
use hypercall_abi::vcpu::{
    RUNSTATE_BLOCKED, RUNSTATE_OFFLINE, RUNSTATE_RUNNABLE, RUNSTATE_RUNNING,
};

const SEC: u64 = 1_000 * MS;

fn vr(dom: u16, vcpu: u32) -> VcpuRef {
    VcpuRef {
        dom: DomId(dom),
        vcpu,
    }
}

fn sched(nr_cpus: usize) -> Scheduler {
    Scheduler::new(nr_cpus, SchedParams::default())
}

/// Adds and brings up `v` on `cpu` at `now`.
fn up(s: &mut Scheduler, v: VcpuRef, cpu: usize, now: u64) {
    s.add_vcpu(v, cpu, now).unwrap();
    s.vcpu_up(v, now).unwrap();
}

fn state(s: &Scheduler, v: VcpuRef, now: u64) -> i32 {
    s.runstate(v, now).unwrap().state
}

/// Checks that a vCPU's runstate times add up to the time since it was created.
fn assert_times_add_up(s: &Scheduler, v: VcpuRef, created: u64, now: u64) {
    let info = s.runstate(v, now).unwrap();
    assert_eq!(
        info.time.iter().sum::<u64>(),
        now - created,
        "{v}: {:?}",
        info
    );
}

// ---- a small discrete-event simulator ----

/// What a simulated vCPU does.
#[derive(Clone, Copy, Debug)]
enum Load {
    /// Always runnable.
    Hog,
    /// Wakes every `every` ns (phase `phase`), needs `run` ns of CPU, then blocks.
    Burst { every: u64, run: u64, phase: u64 },
    /// Needs `run` ns of CPU, then wakes vCPU number `partner` of the simulation and blocks.
    Pong { run: u64, partner: usize },
}

#[derive(Debug)]
struct SimVcpu {
    r: VcpuRef,
    load: Load,
    blocked: bool,
    next_wake: u64,
    /// CPU time still needed for the current burst.
    left: u64,
    /// Total CPU time received.
    ran: u64,
    woke_at: Option<u64>,
    wakes: u64,
    wakes_preempting: u64,
    max_latency: u64,
}

#[derive(Debug)]
struct Sim {
    s: Scheduler,
    now: u64,
    /// Per CPU: what runs and until when the decision holds.
    cpus: Vec<Decision>,
    v: Vec<SimVcpu>,
    idle: Vec<u64>,
    decisions: u64,
}

impl Sim {
    fn new(nr_cpus: usize) -> Self {
        Self {
            s: sched(nr_cpus),
            now: 0,
            cpus: vec![
                Decision {
                    next: None,
                    until: 0
                };
                nr_cpus
            ],
            v: Vec::new(),
            idle: vec![0; nr_cpus],
            decisions: 0,
        }
    }

    /// Adds vCPU `r` (its domain with `params` if new) on `cpu` with `load`; returns its index.
    fn add(&mut self, r: VcpuRef, params: DomParams, cpu: usize, load: Load) -> usize {
        match self.s.add_domain(r.dom, params) {
            Ok(()) | Err(SchedError::DomainExists) => {}
            Err(e) => panic!("{e:?}"),
        }
        self.s.add_vcpu(r, cpu, self.now).unwrap();
        self.s.vcpu_up(r, self.now).unwrap();
        let (blocked, next_wake, left) = match load {
            Load::Hog => (false, 0, u64::MAX),
            Load::Burst { run, phase, .. } => (false, phase, run),
            Load::Pong { run, .. } => (false, 0, run),
        };
        self.v.push(SimVcpu {
            r,
            load,
            blocked,
            next_wake,
            left,
            ran: 0,
            woke_at: None,
            wakes: 0,
            wakes_preempting: 0,
            max_latency: 0,
        });
        if blocked || matches!(load, Load::Burst { phase, .. } if phase > 0) {
            self.s.block(r, self.now).unwrap();
            self.v.last_mut().unwrap().blocked = true;
        }
        self.v.len() - 1
    }

    /// Parks a Pong vCPU until its partner wakes it.
    fn start_blocked(&mut self, i: usize) {
        self.s.block(self.v[i].r, self.now).unwrap();
        self.v[i].blocked = true;
        self.v[i].next_wake = u64::MAX;
    }

    fn index(&self, r: VcpuRef) -> Option<usize> {
        self.v.iter().position(|v| v.r == r)
    }

    fn resched(&mut self, cpu: usize) {
        let d = self.s.schedule(cpu, self.now);
        assert!(d.until > self.now, "decision must move time forward: {d:?}");
        self.decisions += 1;
        if let Some(r) = d.next {
            let i = self.index(r).expect("scheduler picked an unknown vCPU");
            assert!(!self.v[i].blocked, "picked a blocked vCPU {r}");
            if let Some(w) = self.v[i].woke_at.take() {
                self.v[i].max_latency = self.v[i].max_latency.max(self.now - w);
            }
        }
        self.cpus[cpu] = d;
    }

    fn wake(&mut self, i: usize) {
        let r = self.v[i].r;
        self.v[i].blocked = false;
        self.v[i].woke_at = Some(self.now);
        self.v[i].wakes += 1;
        self.v[i].left = match self.v[i].load {
            Load::Burst { run, .. } | Load::Pong { run, .. } => run,
            Load::Hog => u64::MAX,
        };
        let cpu = self.s.wake(r, self.now).unwrap();
        if self.s.should_preempt(cpu, self.now) {
            self.v[i].wakes_preempting += 1;
        }
        self.kick();
    }

    /// What the runtime does after every event: reschedule (IPI) each CPU that asks for it.
    fn kick(&mut self) {
        let kicks: Vec<usize> = self.s.resched_cpus(self.now).collect();
        for cpu in kicks {
            self.resched(cpu);
        }
    }

    /// Forgets the statistics gathered so far (after a warm-up).
    fn reset_stats(&mut self) {
        for v in &mut self.v {
            v.ran = 0;
            v.wakes = 0;
            v.wakes_preempting = 0;
            v.max_latency = 0;
        }
        self.idle.iter_mut().for_each(|i| *i = 0);
    }

    fn run(&mut self, end: u64) {
        for cpu in 0..self.cpus.len() {
            self.resched(cpu);
        }
        while self.now < end {
            // The next event: a decision expiring, a burst finishing, a wake-up.
            let mut t = end;
            for d in &self.cpus {
                t = t.min(d.until);
                if let Some(i) = d.next.and_then(|r| self.index(r)) {
                    t = t.min(self.now.saturating_add(self.v[i].left));
                }
            }
            for v in &self.v {
                if v.blocked {
                    t = t.min(v.next_wake);
                }
            }
            let t = t.max(self.now);
            let dt = t - self.now;
            for (cpu, d) in self.cpus.iter().enumerate() {
                match d.next.and_then(|r| self.v.iter().position(|v| v.r == r)) {
                    Some(i) => {
                        self.v[i].ran += dt;
                        self.v[i].left = self.v[i].left.saturating_sub(dt);
                    }
                    None => self.idle[cpu] += dt,
                }
            }
            self.now = t;
            // Bursts that are done block (and may wake a partner).
            for cpu in 0..self.cpus.len() {
                let Some(i) = self.cpus[cpu].next.and_then(|r| self.index(r)) else {
                    continue;
                };
                if self.v[i].left > 0 {
                    continue;
                }
                let r = self.v[i].r;
                // A ping-pong partner is signalled before blocking, as a guest does it
                // (send on the event channel, then SCHEDOP_block).
                if let Load::Pong { partner, .. } = self.v[i].load
                    && self.v[partner].blocked
                {
                    self.wake(partner);
                }
                self.s.block(r, self.now).unwrap();
                self.v[i].blocked = true;
                assert!(self.s.should_preempt(cpu, self.now));
                self.kick();
                match self.v[i].load {
                    Load::Burst { every, .. } => {
                        let mut next = self.v[i].next_wake;
                        while next <= self.now {
                            next += every;
                        }
                        self.v[i].next_wake = next;
                    }
                    Load::Pong { .. } => self.v[i].next_wake = u64::MAX,
                    Load::Hog => unreachable!(),
                }
            }
            // Timed wake-ups.
            for i in 0..self.v.len() {
                if self.v[i].blocked && self.v[i].next_wake <= self.now {
                    self.wake(i);
                }
            }
            // Decisions that ran out.
            for cpu in 0..self.cpus.len() {
                if self.cpus[cpu].until <= self.now {
                    self.resched(cpu);
                    self.kick();
                }
            }
        }
    }

    fn ran(&self, i: usize) -> u64 {
        self.v[i].ran
    }

    /// Checks every vCPU's runstate against the simulation: the four times add up to the time
    /// since it was added (at 0), and, unless statistics were reset, the running time is
    /// exactly the CPU time it received.
    fn assert_runstates(&self, check_running: bool) {
        for v in &self.v {
            let info = self.s.runstate(v.r, self.now).unwrap();
            assert_eq!(info.time.iter().sum::<u64>(), self.now, "{}: {info:?}", v.r);
            if check_running {
                assert_eq!(info.time[0], v.ran, "{}: {info:?}", v.r);
            }
        }
    }
}

fn weight(w: u16) -> DomParams {
    DomParams { weight: w, cap: 0 }
}

// ---- runstates ----

#[test]
fn runstate_through_every_transition() {
    let mut s = sched(1);
    let a = vr(1, 0);
    let b = vr(2, 0);
    s.add_vcpu(a, 0, 100).unwrap();
    s.add_vcpu(b, 0, 100).unwrap();
    assert_eq!(state(&s, a, 100), RUNSTATE_OFFLINE);
    assert_eq!(s.is_up(a), Some(false));

    s.vcpu_up(a, 1_100).unwrap(); // offline 1000
    assert_eq!(state(&s, a, 1_100), RUNSTATE_RUNNABLE);
    let d = s.schedule(0, 1_300); // runnable 200
    assert_eq!(d.next, Some(a));
    assert_eq!(state(&s, a, 1_300), RUNSTATE_RUNNING);
    s.block(a, 2_300).unwrap(); // running 1000
    assert_eq!(state(&s, a, 2_300), RUNSTATE_BLOCKED);
    assert!(s.should_preempt(0, 2_300));
    assert_eq!(s.schedule(0, 2_300).next, None);
    s.wake(a, 5_300).unwrap(); // blocked 3000
    assert_eq!(state(&s, a, 5_300), RUNSTATE_RUNNABLE);
    assert_eq!(s.schedule(0, 5_400).next, Some(a)); // runnable 100
    s.vcpu_up(b, 5_400).unwrap();
    s.yield_now(a, 6_400).unwrap(); // running 1000
    assert_eq!(s.schedule(0, 6_400).next, Some(b));
    assert_eq!(state(&s, a, 6_400), RUNSTATE_RUNNABLE);
    s.vcpu_down(a, 7_400).unwrap(); // runnable 1000
    assert_eq!(state(&s, a, 7_400), RUNSTATE_OFFLINE);

    let info = s.runstate(a, 8_000).unwrap(); // offline 600 more
    assert_eq!(info.state, RUNSTATE_OFFLINE);
    assert_eq!(info.state_entry_time, 7_400);
    assert_eq!(info.time, [2_000, 1_300, 3_000, 1_600]);
    assert_times_add_up(&s, a, 100, 8_000);

    let info = s.runstate(b, 8_000).unwrap();
    assert_eq!(info.state, RUNSTATE_RUNNING);
    assert_eq!(info.time, [1_600, 1_000, 0, 5_300]);
    assert_times_add_up(&s, b, 100, 8_000);
}

#[test]
fn runstate_is_unchanged_while_the_same_vcpu_continues() {
    let mut s = sched(1);
    let a = vr(1, 0);
    up(&mut s, a, 0, 0);
    assert_eq!(s.schedule(0, 10).next, Some(a));
    for t in 1..20 {
        assert_eq!(s.schedule(0, t * 40 * MS).next, Some(a));
    }
    let info = s.runstate(a, 800 * MS).unwrap();
    assert_eq!(
        info.state_entry_time, 10,
        "continuing is not a state change"
    );
    assert_eq!(info.time, [800 * MS - 10, 10, 0, 0]);
}

#[test]
fn runstate_reading_is_pure_and_counts_up_to_now() {
    let mut s = sched(1);
    let a = vr(1, 0);
    up(&mut s, a, 0, 0);
    s.schedule(0, 0);
    let one = s.runstate(a, 500).unwrap();
    let two = s.runstate(a, 500).unwrap();
    assert_eq!(one, two);
    assert_eq!(one.time[0], 500);
    // A reader's `now` before the entry time adds nothing.
    s.block(a, 1_000).unwrap();
    assert_eq!(s.runstate(a, 10).unwrap().time, [1_000, 0, 0, 0]);
}

// ---- basic policy ----

#[test]
fn idle_when_nothing_is_runnable() {
    let mut s = sched(1);
    assert_eq!(
        s.schedule(0, 5),
        Decision {
            next: None,
            until: u64::MAX
        }
    );
    assert!(!s.should_preempt(0, 5));
    let a = vr(1, 0);
    s.add_vcpu(a, 0, 5).unwrap();
    assert_eq!(s.schedule(0, 6).next, None, "offline vCPUs do not run");
    s.vcpu_up(a, 7).unwrap();
    assert!(s.should_preempt(0, 7), "an idle CPU got work");
    assert_eq!(s.schedule(0, 8).next, Some(a));
}

#[test]
fn round_robin_among_equal_weights() {
    // With credit out of the picture (a long accounting period), slices rotate A, B, C, A, ...
    let mut s = Scheduler::new(
        1,
        SchedParams {
            period_ns: 1000 * MS,
            slice_ns: 10 * MS,
            ..SchedParams::default()
        },
    );
    let vs = [vr(1, 0), vr(2, 0), vr(3, 0)];
    for &v in &vs {
        up(&mut s, v, 0, 0);
    }
    let mut now = 0;
    let mut order = Vec::new();
    for _ in 0..30 {
        let d = s.schedule(0, now);
        assert_eq!(d.until, now + 10 * MS);
        order.push(d.next.unwrap());
        now = d.until;
    }
    for chunk in order.chunks(3) {
        assert_eq!(chunk, vs);
    }

    // Over two seconds, equal weights get equal time.
    let mut sim = Sim::new(1);
    let idx: Vec<usize> = (1..=3)
        .map(|d| sim.add(vr(d, 0), DomParams::default(), 0, Load::Hog))
        .collect();
    sim.run(2 * SEC);
    for &i in &idx {
        let share = sim.ran(i) as f64 / (2 * SEC) as f64;
        std::println!("three equal hogs: {} got {:.2}%", sim.v[i].r, share * 100.0);
        assert!((share - 1.0 / 3.0).abs() < 0.02, "share {share}");
    }
    assert_eq!(sim.idle[0], 0);
}

#[test]
fn weights_256_and_512_share_one_to_two() {
    let mut sim = Sim::new(1);
    let a = sim.add(vr(1, 0), weight(256), 0, Load::Hog);
    let b = sim.add(vr(2, 0), weight(512), 0, Load::Hog);
    sim.run(2 * SEC);
    let ratio = sim.ran(b) as f64 / sim.ran(a) as f64;
    std::println!(
        "weights 256:512 -> {} ms : {} ms, ratio {ratio:.3}, {} decisions",
        sim.ran(a) / MS,
        sim.ran(b) / MS,
        sim.decisions
    );
    assert!((ratio - 2.0).abs() < 0.2, "ratio {ratio}");
    assert_eq!(sim.ran(a) + sim.ran(b), 2 * SEC, "work conserving");
    sim.assert_runstates(true);
}

#[test]
fn extreme_weights() {
    let mut sim = Sim::new(1);
    let a = sim.add(vr(1, 0), weight(1), 0, Load::Hog);
    let b = sim.add(vr(2, 0), weight(u16::MAX), 0, Load::Hog);
    sim.run(2 * SEC);
    assert_eq!(sim.ran(a) + sim.ran(b), 2 * SEC);
    std::println!(
        "weights 1:65535 -> {} ms : {} ms",
        sim.ran(a) / MS,
        sim.ran(b) / MS
    );
    assert!(
        sim.ran(b) > 9 * sim.ran(a),
        "{} vs {}",
        sim.ran(b),
        sim.ran(a)
    );
}

#[test]
fn multi_vcpu_domain_weight_is_per_vcpu() {
    // Xen's credit1 weighs each active vCPU: a 2-vCPU domain with weight 256 gets as much as
    // two 1-vCPU domains with weight 256.
    let mut sim = Sim::new(1);
    let a0 = sim.add(vr(1, 0), weight(256), 0, Load::Hog);
    let a1 = sim.add(vr(1, 1), weight(256), 0, Load::Hog);
    let b = sim.add(vr(2, 0), weight(256), 0, Load::Hog);
    sim.run(3 * SEC);
    let dom1 = (sim.ran(a0) + sim.ran(a1)) as f64;
    let ratio = dom1 / sim.ran(b) as f64;
    std::println!("2-vCPU vs 1-vCPU domain, equal weights: ratio {ratio:.3}");
    assert!((ratio - 2.0).abs() < 0.2, "ratio {ratio}");
}

// ---- caps ----

#[test]
fn cap_is_honoured_on_an_idle_machine() {
    let mut sim = Sim::new(1);
    let a = sim.add(
        vr(1, 0),
        DomParams {
            weight: 256,
            cap: 25,
        },
        0,
        Load::Hog,
    );
    sim.run(2 * SEC);
    let share = sim.ran(a) as f64 / (2 * SEC) as f64;
    std::println!(
        "cap 25%: ran {} ms of 2000 ({:.2}%), idle {} ms",
        sim.ran(a) / MS,
        share * 100.0,
        sim.idle[0] / MS
    );
    assert!((share - 0.25).abs() < 0.02, "share {share}");
    assert_eq!(sim.ran(a) + sim.idle[0], 2 * SEC);
    sim.assert_runstates(true);
    // While parked it is offline, as Xen's parked vCPUs are.
    let info = sim.s.runstate(vr(1, 0), sim.now).unwrap();
    assert_eq!(info.time[3], sim.idle[0]);
    // Parked vCPUs report offline, as Xen's do.
    let mut s = sched(1);
    let v = vr(1, 0);
    s.add_domain(
        v.dom,
        DomParams {
            weight: 256,
            cap: 10,
        },
    )
    .unwrap();
    up(&mut s, v, 0, 0);
    let d = s.schedule(0, 0);
    assert_eq!(d.next, Some(v));
    assert_eq!(
        d.until,
        3 * MS,
        "runs until its budget (10% of 30 ms) is spent"
    );
    let d = s.schedule(0, d.until);
    assert_eq!(d.next, None);
    assert_eq!(d.until, 30 * MS, "idle until the next accounting");
    assert_eq!(s.is_parked(v.dom), Some(true));
    assert_eq!(state(&s, v, 10 * MS), RUNSTATE_OFFLINE);
    assert!(!s.should_preempt(0, 10 * MS));
    assert_eq!(s.schedule(0, 30 * MS).next, Some(v));
    assert_eq!(s.is_parked(v.dom), Some(false));
}

#[test]
fn cap_under_contention_and_cap_changes() {
    let mut sim = Sim::new(1);
    let a = sim.add(
        vr(1, 0),
        DomParams {
            weight: 256,
            cap: 20,
        },
        0,
        Load::Hog,
    );
    let b = sim.add(vr(2, 0), weight(256), 0, Load::Hog);
    sim.run(2 * SEC);
    let share = sim.ran(a) as f64 / (2 * SEC) as f64;
    std::println!("cap 20% against an uncapped hog: {:.2}%", share * 100.0);
    assert!((share - 0.20).abs() < 0.02, "share {share}");
    assert_eq!(
        sim.ran(a) + sim.ran(b),
        2 * SEC,
        "the uncapped domain takes the rest"
    );

    // Lifting the cap unparks at once and restores an even split.
    sim.s
        .set_domain_params(DomId(1), weight(256), sim.now)
        .unwrap();
    assert_eq!(sim.s.is_parked(DomId(1)), Some(false));
    let (ra, rb) = (sim.ran(a), sim.ran(b));
    sim.run(4 * SEC);
    let share = (sim.ran(a) - ra) as f64 / ((sim.ran(a) - ra) + (sim.ran(b) - rb)) as f64;
    std::println!("cap lifted: {:.2}%", share * 100.0);
    assert!((share - 0.5).abs() < 0.03, "share {share}");
}

#[test]
fn new_cap_applies_to_a_running_vcpu() {
    let mut s = sched(1);
    let a = vr(1, 0);
    up(&mut s, a, 0, 0);
    assert_eq!(s.schedule(0, 0).until, 30 * MS);
    s.set_domain_params(
        DomId(1),
        DomParams {
            weight: 256,
            cap: 10,
        },
        5 * MS,
    )
    .unwrap();
    assert!(
        s.should_preempt(0, 5 * MS),
        "the decision must be revisited"
    );
    let d = s.schedule(0, 5 * MS);
    assert_eq!(
        d,
        Decision {
            next: Some(a),
            until: 8 * MS
        }
    );
    assert_eq!(s.schedule(0, 8 * MS).next, None);
    assert_eq!(s.is_parked(DomId(1)), Some(true));
    // Removing the cap unparks at once.
    s.putinfo(DomId(1), 0, 0, 9 * MS).unwrap();
    assert_eq!(s.is_parked(DomId(1)), Some(false));
    assert!(s.should_preempt(0, 9 * MS));
    assert_eq!(s.schedule(0, 9 * MS).next, Some(a));
}

#[test]
fn cap_of_a_multi_vcpu_domain_on_two_cpus() {
    let mut sim = Sim::new(2);
    let a0 = sim.add(vr(1, 0), DomParams::default(), 0, Load::Hog);
    let a1 = sim.add(vr(1, 1), DomParams::default(), 1, Load::Hog);
    sim.s
        .set_domain_params(
            DomId(1),
            DomParams {
                weight: 256,
                cap: 150,
            },
            0,
        )
        .unwrap();
    sim.run(2 * SEC);
    let share = (sim.ran(a0) + sim.ran(a1)) as f64 / (2 * SEC) as f64;
    std::println!("cap 150% on two CPUs: {:.1}% of one CPU", share * 100.0);
    assert!((share - 1.5).abs() < 0.05, "share {share} of one CPU");
}

// ---- wake-up latency ----

#[test]
fn io_bound_waker_preempts_a_cpu_hog() {
    let mut sim = Sim::new(1);
    let hog = sim.add(vr(1, 0), DomParams::default(), 0, Load::Hog);
    let every = 2 * MS;
    let run = 100 * US;
    let a = sim.add(
        vr(2, 0),
        DomParams::default(),
        0,
        Load::Burst {
            every,
            run,
            phase: MS,
        },
    );
    let b = sim.add(
        vr(2, 1),
        DomParams::default(),
        0,
        Load::Burst {
            every,
            run,
            phase: 2 * MS,
        },
    );
    // Everything brought up starts boosted; measure once that has settled.
    sim.run(100 * MS);
    sim.reset_stats();
    sim.run(2 * SEC);
    for i in [a, b] {
        let v = &sim.v[i];
        std::println!(
            "waker {}: {} wakes, {} preempting, max latency {} us, ran {} ms",
            v.r,
            v.wakes,
            v.wakes_preempting,
            v.max_latency / US,
            v.ran / MS
        );
        assert!(v.wakes >= 945, "{} wakes", v.wakes);
        assert_eq!(
            v.wakes, v.wakes_preempting,
            "every wake asks for a preemption"
        );
        assert!(v.max_latency <= MS, "latency {}", v.max_latency);
        assert!(v.ran >= 94 * MS, "got its bursts: {}", v.ran);
    }
    assert!(
        sim.ran(hog) >= 1_650 * MS,
        "the hog keeps the rest: {}",
        sim.ran(hog)
    );
}

#[test]
fn boosted_waker_gets_the_cpu_after_the_rate_limit() {
    let mut s = sched(1);
    let hog = vr(1, 0);
    let io = vr(2, 0);
    up(&mut s, hog, 0, 0);
    up(&mut s, io, 0, 0);
    s.block(io, 0).unwrap();
    // Give both some credit.
    let mut now = 0;
    while now < 100 * MS {
        now = s.schedule(0, now).until;
    }
    assert!(s.credit(io).unwrap() > 0);
    assert_eq!(s.schedule(0, now).next, Some(hog));
    let start = now;
    now += 200 * US;
    s.wake(io, now).unwrap();
    assert_eq!(s.priority(io), Some(Priority::Boost));
    assert!(s.should_preempt(0, now));
    // Within the rate limit the hog continues, but only until the rate limit ends.
    let d = s.schedule(0, now);
    assert_eq!(d.next, Some(hog));
    assert_eq!(d.until, start + MS);
    let d = s.schedule(0, d.until);
    assert_eq!(d.next, Some(io));
}

#[test]
fn boost_ends_after_a_tick_of_running() {
    let mut s = sched(1);
    let hog = vr(1, 0);
    let v = vr(2, 0);
    up(&mut s, hog, 0, 0);
    up(&mut s, v, 0, 0);
    s.block(v, 0).unwrap();
    let mut now = 0;
    while now < 100 * MS {
        now = s.schedule(0, now).until;
    }
    s.wake(v, now).unwrap();
    // Let the rate limit pass and switch to the boosted vCPU.
    let mut d = s.schedule(0, now);
    while d.next != Some(v) {
        now = d.until;
        d = s.schedule(0, now);
    }
    // It turns CPU-bound: the boost stops after one tick of running; it keeps the CPU only
    // while its credit lasts (it slept, the hog overdrew), then the hog gets it back.
    let switched = now;
    assert_eq!(s.priority(v), Some(Priority::Boost));
    assert!(d.until <= switched + s.params().tick_ns);
    let mut guard = 0;
    while d.next == Some(v) {
        now = d.until;
        d = s.schedule(0, now);
        if now >= switched + s.params().tick_ns {
            assert_ne!(s.priority(v), Some(Priority::Boost));
        }
        guard += 1;
        assert!(guard < 10);
    }
    assert!(
        now - switched <= 3 * s.params().period_ns,
        "{}",
        now - switched
    );
    assert_eq!(d.next, Some(hog));
    assert!(s.credit(v).unwrap() <= 0 || s.priority(hog) >= s.priority(v));
}

#[test]
fn tight_ping_pong_cannot_starve_a_hog() {
    let mut sim = Sim::new(1);
    let hog = sim.add(vr(1, 0), DomParams::default(), 0, Load::Hog);
    let a = sim.add(
        vr(2, 0),
        DomParams::default(),
        0,
        Load::Pong {
            run: 50 * US,
            partner: 2,
        },
    );
    let b = sim.add(
        vr(2, 1),
        DomParams::default(),
        0,
        Load::Pong {
            run: 50 * US,
            partner: 1,
        },
    );
    sim.start_blocked(b);
    sim.run(3 * SEC);
    let hog_share = sim.ran(hog) as f64 / (3 * SEC) as f64;
    std::println!(
        "tight ping-pong vs hog: hog {:.1}%, pair {:.1}%",
        hog_share * 100.0,
        (sim.ran(a) + sim.ran(b)) as f64 / (3 * SEC) as f64 * 100.0
    );
    // dom2 has two active vCPUs of weight 256, the hog one: 1/3 is the hog's fair share.
    assert!(hog_share > 0.25, "hog share {hog_share}");
    assert!(sim.v[a].wakes > 1000 && sim.v[b].wakes > 1000);
    sim.assert_runstates(true);
}

#[test]
fn sleeper_does_not_dilute_or_bank() {
    // Two hogs (256, 512) and a domain that wakes rarely and briefly: the hogs still split
    // 1:2, and the sleeper's credit never exceeds one period.
    let mut sim = Sim::new(1);
    let a = sim.add(vr(1, 0), weight(256), 0, Load::Hog);
    let b = sim.add(vr(2, 0), weight(512), 0, Load::Hog);
    let c = sim.add(
        vr(3, 0),
        weight(256),
        0,
        Load::Burst {
            every: 20 * MS,
            run: 200 * US,
            phase: 5 * MS,
        },
    );
    sim.run(100 * MS);
    sim.reset_stats();
    sim.run(4 * SEC);
    let ratio = sim.ran(b) as f64 / sim.ran(a) as f64;
    std::println!(
        "hogs 256:512 with a sleeper: ratio {ratio:.3}, sleeper latency {} us",
        sim.v[c].max_latency / US
    );
    assert!((ratio - 2.0).abs() < 0.2, "ratio {ratio}");
    assert!(sim.s.credit(vr(3, 0)).unwrap() <= signed(sim.s.params().period_ns));
    assert!(sim.v[c].max_latency <= MS);

    // A vCPU blocked for a long time does not bank credit.
    let mut s = sched(1);
    let hog = vr(1, 0);
    let sleeper = vr(2, 0);
    up(&mut s, hog, 0, 0);
    up(&mut s, sleeper, 0, 0);
    s.block(sleeper, 0).unwrap();
    let mut now = 0;
    while now < 10 * SEC {
        now = s.schedule(0, now).until;
    }
    assert!(s.credit(sleeper).unwrap() <= signed(s.params().period_ns));
}

// ---- lifecycle ----

#[test]
fn domain_removed_mid_run() {
    let mut s = sched(1);
    let a = vr(1, 0);
    let b = vr(2, 0);
    let c = vr(2, 1);
    up(&mut s, a, 0, 0);
    up(&mut s, b, 0, 0);
    up(&mut s, c, 0, 0);
    let mut now = 0;
    let mut d = s.schedule(0, now);
    while d.next != Some(b) {
        now = d.until;
        d = s.schedule(0, now);
    }
    // Domain 2 goes away while b runs and c waits.
    s.remove_domain(DomId(2)).unwrap();
    assert_eq!(s.current(0), None);
    assert!(s.should_preempt(0, now));
    assert_eq!(s.runstate(b, now), None);
    assert_eq!(s.runstate(c, now), None);
    assert_eq!(s.domain_params(DomId(2)), None);
    for _ in 0..5 {
        let d = s.schedule(0, now);
        assert_eq!(d.next, Some(a));
        now = d.until;
    }
    // Everything about it is now unknown.
    assert_eq!(s.remove_domain(DomId(2)), Err(SchedError::NoSuchDomain));
    assert_eq!(s.wake(b, now), Err(SchedError::NoSuchVcpu));
    assert_eq!(s.block(c, now), Err(SchedError::NoSuchVcpu));
    // The id can be reused.
    up(&mut s, b, 0, now);
    assert_eq!(state(&s, b, now), RUNSTATE_RUNNABLE);
}

#[test]
fn removing_the_last_domain_leaves_an_idle_cpu() {
    let mut s = sched(2);
    let a = vr(7, 0);
    up(&mut s, a, 1, 0);
    assert_eq!(s.schedule(1, 0).next, Some(a));
    s.remove_domain(DomId(7)).unwrap();
    assert!(s.should_preempt(1, 1));
    assert_eq!(
        s.schedule(1, 1),
        Decision {
            next: None,
            until: u64::MAX
        }
    );
    assert!(!s.should_preempt(1, 2));
}

#[test]
fn offline_up_and_down() {
    let mut s = sched(1);
    let a = vr(1, 0);
    let b = vr(1, 1);
    s.add_vcpu(a, 0, 0).unwrap();
    s.add_vcpu(b, 0, 0).unwrap();
    // Down while offline, wake while offline: nothing happens.
    s.vcpu_down(a, 10).unwrap();
    s.wake(a, 10).unwrap();
    assert_eq!(state(&s, a, 10), RUNSTATE_OFFLINE);
    assert_eq!(s.schedule(0, 10).next, None);

    s.vcpu_up(a, 20).unwrap();
    s.vcpu_up(a, 25).unwrap(); // twice is harmless
    assert_eq!(s.is_up(a), Some(true));
    assert_eq!(s.schedule(0, 30).next, Some(a));

    // Down while running: descheduled at once.
    s.vcpu_down(a, 40).unwrap();
    assert_eq!(s.is_up(a), Some(false));
    assert_eq!(state(&s, a, 40), RUNSTATE_OFFLINE);
    assert_eq!(s.current(0), None);
    assert!(s.should_preempt(0, 40));
    assert_eq!(s.schedule(0, 40).next, None);

    // Down while runnable: leaves the queue.
    s.vcpu_up(a, 50).unwrap();
    s.vcpu_up(b, 50).unwrap();
    assert_eq!(s.schedule(0, 50).next, Some(a));
    s.vcpu_down(b, 60).unwrap();
    s.yield_now(a, 70).unwrap();
    assert_eq!(s.schedule(0, 70).next, Some(a), "nobody else to yield to");

    // Blocked and down: stays blocked (Xen only turns runnable vCPUs offline); the event then
    // leaves it offline; up makes it runnable.
    s.block(a, 80).unwrap();
    s.vcpu_down(a, 90).unwrap();
    assert_eq!(state(&s, a, 90), RUNSTATE_BLOCKED);
    s.wake(a, 100).unwrap();
    assert_eq!(state(&s, a, 100), RUNSTATE_OFFLINE);
    s.vcpu_up(a, 110).unwrap();
    assert_eq!(state(&s, a, 110), RUNSTATE_RUNNABLE);
    // Up while blocked stays blocked until the event.
    s.vcpu_down(b, 120).unwrap();
    assert_eq!(s.schedule(0, 120).next, Some(a));
    assert_times_add_up(&s, a, 0, 200);
    assert_times_add_up(&s, b, 0, 200);
}

#[test]
fn up_while_blocked_waits_for_the_event() {
    let mut s = sched(1);
    let a = vr(1, 0);
    up(&mut s, a, 0, 0);
    s.block(a, 0).unwrap();
    s.vcpu_down(a, 1).unwrap();
    s.vcpu_up(a, 2).unwrap();
    assert_eq!(state(&s, a, 2), RUNSTATE_BLOCKED);
    assert_eq!(s.schedule(0, 3).next, None);
    s.wake(a, 4).unwrap();
    assert_eq!(s.schedule(0, 5).next, Some(a));
}

#[test]
fn pause_and_unpause() {
    let mut s = sched(1);
    let a = vr(1, 0);
    let b = vr(1, 1);
    up(&mut s, a, 0, 0);
    up(&mut s, b, 0, 0);
    s.block(b, 0).unwrap();
    assert_eq!(s.schedule(0, 0).next, Some(a));
    s.pause_domain(DomId(1), 10).unwrap();
    s.pause_domain(DomId(1), 10).unwrap();
    assert_eq!(
        state(&s, a, 10),
        RUNSTATE_OFFLINE,
        "a paused vCPU is offline, as in Xen"
    );
    assert_eq!(state(&s, b, 10), RUNSTATE_BLOCKED);
    assert!(s.should_preempt(0, 10));
    assert_eq!(s.schedule(0, 10).next, None);
    s.wake(b, 20).unwrap();
    assert_eq!(state(&s, b, 20), RUNSTATE_OFFLINE);
    s.unpause_domain(DomId(1), 30).unwrap();
    assert_eq!(s.schedule(0, 30).next, None, "still paused once");
    s.unpause_domain(DomId(1), 40).unwrap();
    s.unpause_domain(DomId(1), 40).unwrap(); // one too many: harmless
    assert_eq!(state(&s, a, 40), RUNSTATE_RUNNABLE);
    assert_eq!(state(&s, b, 40), RUNSTATE_RUNNABLE);
    assert!(s.schedule(0, 40).next.is_some());
    assert_eq!(s.pause_domain(DomId(9), 50), Err(SchedError::NoSuchDomain));
}

#[test]
fn yield_gives_way_to_any_runnable_vcpu() {
    let mut s = sched(1);
    let a = vr(1, 0);
    let b = vr(2, 0);
    up(&mut s, a, 0, 0);
    up(&mut s, b, 0, 0);
    // Equal priorities, within the rate limit: yielding hands the CPU over at once.
    assert_eq!(s.schedule(0, 0).next, Some(a));
    s.yield_now(a, 10 * US).unwrap();
    assert!(s.should_preempt(0, 10 * US));
    assert_eq!(s.schedule(0, 10 * US).next, Some(b));
    assert_eq!(state(&s, a, 10 * US), RUNSTATE_RUNNABLE);

    // A boosted vCPU yields even to an OVER one.
    let mut now = 10 * US;
    s.block(a, now).unwrap();
    while now < 100 * MS {
        now = s.schedule(0, now).until;
    }
    assert_eq!(s.current(0), Some(b));
    assert_eq!(
        s.priority(b),
        Some(Priority::Over),
        "b ran alone for a while"
    );
    s.wake(a, now).unwrap();
    assert_eq!(s.priority(a), Some(Priority::Boost));
    now += MS;
    assert_eq!(s.schedule(0, now).next, Some(a));
    s.yield_now(a, now + 10 * US).unwrap();
    assert_eq!(
        s.priority(a),
        Some(Priority::Under),
        "yielding drops the boost"
    );
    assert_eq!(s.schedule(0, now + 10 * US).next, Some(b));
    // Yielding a vCPU that is not running does nothing.
    s.yield_now(a, now + 20 * US).unwrap();
    assert_eq!(s.current(0), Some(b));
}

// ---- several CPUs ----

#[test]
fn four_hogs_on_two_cpus() {
    let mut sim = Sim::new(2);
    let idx: Vec<usize> = (1..=4)
        .map(|d| sim.add(vr(d, 0), DomParams::default(), 0, Load::Hog))
        .collect();
    sim.run(2 * SEC);
    for &i in &idx {
        let share = sim.ran(i) as f64 / (2 * SEC) as f64;
        std::println!(
            "four hogs on two CPUs: {} got {:.1}%",
            sim.v[i].r,
            share * 100.0
        );
        assert!((share - 0.5).abs() < 0.05, "share {share}");
    }
    assert!(sim.idle.iter().all(|&i| i == 0), "idle {:?}", sim.idle);
    sim.assert_runstates(true);
}

#[test]
fn waking_vcpu_goes_to_an_idle_cpu() {
    let mut s = sched(3);
    let a = vr(1, 0);
    let b = vr(2, 0);
    up(&mut s, a, 0, 0);
    assert_eq!(s.schedule(0, 0).next, Some(a));
    s.add_vcpu(b, 0, 0).unwrap();
    assert_eq!(s.pick_cpu(b), Some(1));
    let cpu = s.vcpu_up(b, 1).unwrap();
    assert_eq!(cpu, 1);
    assert_eq!(s.cpu_of(b), Some(1));
    assert!(s.should_preempt(1, 1));
    assert!(!s.should_preempt(0, 1));
    assert_eq!(s.schedule(1, 1).next, Some(b));
}

#[test]
fn idle_cpu_steals_queued_work() {
    let mut s = sched(2);
    let a = vr(1, 0);
    let b = vr(2, 0);
    up(&mut s, a, 0, 0);
    assert_eq!(s.schedule(0, 0).next, Some(a));
    // Make CPU 1 look busy when b wakes, so b queues behind a on CPU 0.
    let c = vr(3, 0);
    up(&mut s, c, 1, 0);
    assert_eq!(s.schedule(1, 0).next, Some(c));
    up(&mut s, b, 0, 0);
    assert_eq!(s.cpu_of(b), Some(0));
    s.block(c, 10).unwrap();
    assert_eq!(s.schedule(1, 10).next, Some(b), "stolen from CPU 0");
    assert_eq!(s.cpu_of(b), Some(1));
    assert_eq!(s.schedule(0, 20).next, Some(a));
}

// ---- parameters and errors ----

#[test]
fn domain_parameter_checks() {
    let mut s = sched(1);
    let d = DomId(4);
    assert_eq!(
        s.add_domain(d, DomParams { weight: 0, cap: 0 }),
        Err(SchedError::BadWeight)
    );
    assert_eq!(
        s.add_domain(
            d,
            DomParams {
                weight: 1,
                cap: 101
            }
        ),
        Err(SchedError::BadCap)
    );
    s.add_domain(d, DomParams::default()).unwrap();
    assert_eq!(
        s.add_domain(d, DomParams::default()),
        Err(SchedError::DomainExists)
    );
    s.add_vcpu(vr(4, 0), 0, 0).unwrap();
    s.add_vcpu(vr(4, 1), 0, 0).unwrap();
    // Two vCPUs: up to 200%.
    let p = DomParams {
        weight: 65535,
        cap: 200,
    };
    s.set_domain_params(d, p, 0).unwrap();
    assert_eq!(s.domain_params(d), Some(p));
    assert_eq!(
        s.set_domain_params(
            d,
            DomParams {
                weight: 9,
                cap: 201
            },
            0
        ),
        Err(SchedError::BadCap)
    );
    assert_eq!(
        s.set_domain_params(d, DomParams { weight: 0, cap: 5 }, 0),
        Err(SchedError::BadWeight)
    );
    assert_eq!(
        s.set_domain_params(DomId(5), DomParams::default(), 0),
        Err(SchedError::NoSuchDomain)
    );
    assert_eq!(s.domain_params(d), Some(p), "failed calls change nothing");

    // putinfo: 0 and 0xffff mean "unchanged", nothing else is checked.
    s.putinfo(d, 0, u16::MAX, 0).unwrap();
    assert_eq!(s.domain_params(d), Some(p));
    s.putinfo(d, 100, 0, 0).unwrap();
    assert_eq!(
        s.domain_params(d),
        Some(DomParams {
            weight: 100,
            cap: 0
        })
    );
    s.putinfo(d, 0, 1000, 0).unwrap();
    assert_eq!(
        s.domain_params(d),
        Some(DomParams {
            weight: 100,
            cap: 1000
        })
    );
    assert_eq!(s.putinfo(DomId(5), 1, 1, 0), Err(SchedError::NoSuchDomain));

    assert_eq!(SchedError::BadWeight.errno(), Errno::Einval);
    assert_eq!(Errno::from(SchedError::NoSuchDomain), Errno::Esrch);
    assert_eq!(SchedError::VcpuExists.errno(), Errno::Eexist);
}

#[test]
fn global_parameters() {
    assert_eq!(SchedParams::default().validate(), Ok(()));
    let bad = SchedParams {
        period_ns: 0,
        slice_ns: u64::MAX,
        ratelimit_ns: 1,
        tick_ns: 0,
    };
    assert_eq!(bad.validate(), Err(SchedError::BadParams));
    let fixed = bad.sanitized();
    assert_eq!(fixed.validate(), Ok(()));
    assert_eq!(fixed.period_ns, MIN_SLICE_NS);
    assert_eq!(fixed.slice_ns, MAX_SLICE_NS);
    assert_eq!(fixed.ratelimit_ns, MIN_RATELIMIT_NS);
    let s = Scheduler::new(0, bad);
    assert_eq!(s.nr_cpus(), 1);
    assert_eq!(s.params(), fixed);
    let no_ratelimit = SchedParams {
        ratelimit_ns: 0,
        ..SchedParams::default()
    };
    assert_eq!(no_ratelimit.validate(), Ok(()));
    assert_eq!(no_ratelimit.sanitized(), no_ratelimit);
}

#[test]
fn unknown_things_are_errors_not_panics() {
    let mut s = sched(2);
    let ghost = vr(9, 9);
    assert_eq!(s.wake(ghost, 1), Err(SchedError::NoSuchVcpu));
    assert_eq!(s.block(ghost, 1), Err(SchedError::NoSuchVcpu));
    assert_eq!(s.vcpu_up(ghost, 1), Err(SchedError::NoSuchVcpu));
    assert_eq!(s.vcpu_down(ghost, 1), Err(SchedError::NoSuchVcpu));
    assert_eq!(s.yield_now(ghost, 1), Err(SchedError::NoSuchVcpu));
    assert_eq!(s.runstate(ghost, 1), None);
    assert_eq!(s.priority(ghost), None);
    assert_eq!(s.pick_cpu(ghost), None);
    assert_eq!(s.is_up(ghost), None);
    assert_eq!(s.add_vcpu(ghost, 2, 1), Err(SchedError::NoSuchCpu));
    assert_eq!(s.add_vcpu(ghost, usize::MAX, 1), Err(SchedError::NoSuchCpu));
    s.add_vcpu(ghost, 1, 1).unwrap();
    assert_eq!(s.add_vcpu(ghost, 1, 1), Err(SchedError::VcpuExists));
    assert_eq!(
        s.schedule(2, 5),
        Decision {
            next: None,
            until: u64::MAX
        }
    );
    assert_eq!(s.schedule(usize::MAX, 5).next, None);
    assert!(!s.should_preempt(2, 5));
    assert_eq!(s.current(7), None);
    assert_eq!(s.remove_domain(DomId(3)), Err(SchedError::NoSuchDomain));
}

#[test]
fn time_going_backwards() {
    let mut s = sched(1);
    let a = vr(1, 0);
    let b = vr(2, 0);
    up(&mut s, a, 0, 1_000 * MS);
    up(&mut s, b, 0, 1_000 * MS);
    let mut times = vec![
        1_000 * MS,
        500 * MS,
        0,
        1_010 * MS,
        3,
        1_050 * MS,
        1_049 * MS,
    ];
    times.extend((0..50).map(|i| if i % 2 == 0 { 2_000 * MS + i * MS } else { i }));
    for t in times {
        let d = s.schedule(0, t);
        assert!(d.next.is_some());
        assert!(d.until > 0);
        let _ = s.should_preempt(0, t);
        let _ = s.wake(a, t);
        let _ = s.block(b, t);
        let _ = s.wake(b, t);
    }
    // Time as seen by the scheduler never went back: the states still add up.
    let end = 5 * SEC;
    assert_times_add_up(&s, a, 1_000 * MS, end);
    assert_times_add_up(&s, b, 1_000 * MS, end);
    // A vCPU added "in the past" starts at the scheduler's latest time.
    let c = vr(3, 0);
    s.add_vcpu(c, 0, 0).unwrap();
    assert_eq!(s.runstate(c, end).unwrap().state_entry_time, 2_048 * MS);
}

#[test]
fn extreme_times() {
    let mut s = sched(1);
    let a = vr(1, 0);
    up(&mut s, a, 0, u64::MAX - 10);
    let d = s.schedule(0, u64::MAX - 5);
    assert_eq!(d.next, Some(a));
    assert_eq!(d.until, u64::MAX);
    let d = s.schedule(0, u64::MAX);
    assert_eq!(d.next, Some(a));
    s.block(a, u64::MAX).unwrap();
    assert_eq!(
        s.runstate(a, u64::MAX).unwrap().time.iter().sum::<u64>(),
        10
    );
}

#[test]
fn repeated_calls_are_idempotent() {
    let mut s = sched(1);
    let a = vr(1, 0);
    up(&mut s, a, 0, 0);
    for _ in 0..3 {
        s.vcpu_up(a, 0).unwrap();
        s.wake(a, 0).unwrap();
    }
    assert_eq!(s.schedule(0, 0).next, Some(a));
    assert_eq!(s.schedule(0, 0).next, Some(a));
    for _ in 0..3 {
        s.block(a, 10).unwrap();
    }
    assert_eq!(s.schedule(0, 10).next, None);
    assert_eq!(s.schedule(0, 10).next, None);
    for _ in 0..3 {
        s.wake(a, 20).unwrap();
    }
    assert_eq!(s.schedule(0, 20).next, Some(a));
    assert_eq!(s.schedule(0, 20).next, Some(a));
    assert_times_add_up(&s, a, 0, 30);
}

#[test]
fn many_domains() {
    // 1000 domains of two vCPUs each, a few of them runnable, over four CPUs.
    let mut s = sched(4);
    for d in 0..1000u16 {
        for v in 0..2 {
            let r = vr(d, v);
            s.add_vcpu(r, usize::from(d) % 4, 0).unwrap();
            if d % 10 == 0 {
                s.vcpu_up(r, 0).unwrap();
            }
        }
    }
    let mut ran: BTreeMap<VcpuRef, u64> = BTreeMap::new();
    let mut until = [0u64; 4];
    let mut cur = [None; 4];
    let mut now = 0;
    while now < 2 * SEC {
        for cpu in 0..4 {
            if until[cpu] <= now {
                let d = s.schedule(cpu, now);
                cur[cpu] = d.next;
                until[cpu] = d.until;
            }
        }
        let next = until.iter().copied().min().unwrap();
        for c in cur.iter().flatten() {
            *ran.entry(*c).or_default() += next - now;
        }
        now = next;
    }
    // Every one of the 200 runnable vCPUs ran, roughly evenly (4 CPUs × 2 s / 200 = 40 ms on
    // average; queues are balanced only by stealing, so not exactly).
    assert_eq!(ran.len(), 200);
    for (v, t) in &ran {
        assert!(*t >= 20 * MS && *t <= 80 * MS, "{v}: {t}");
    }
    s.remove_domain(DomId(0)).unwrap();
    s.remove_domain(DomId(500)).unwrap();
}
