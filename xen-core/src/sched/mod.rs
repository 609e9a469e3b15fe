//! The vCPU scheduler (portable): a credit scheduler in the style of Xen's credit1, for all
//! vCPUs of all domains on any number of physical CPUs.
//!
//! # Model
//!
//! Every physical CPU has a run queue and at most one *current* vCPU. Every vCPU belongs to one
//! CPU (the one whose queue it waits on or which runs it); [`Scheduler::pick_cpu`] may move a
//! waking vCPU to an idle CPU, and an idle CPU steals queued work of higher priority from the
//! others. The scheduler never reads a clock or touches hardware: the runtime reports events
//! with the current Xen system time (`now`, ns since boot), calls [`Scheduler::schedule`] when a
//! CPU must decide what to run, and arms the CPU's timer for the decision's `until`.
//!
//! # Credits
//!
//! Every accounting period (30 ms by default, as in credit1) the CPUs' time — `nr_cpus ×
//! period` — is shared among the domains that have *active* vCPUs, in proportion to
//! `weight × active vCPUs` (Xen's per-vCPU weighting), never more than a domain can use (its
//! active vCPUs for a whole period, or its cap) — what one cannot use goes to the others. Each
//! domain's share is split evenly among its active vCPUs. Running costs credit, nanosecond for
//! nanosecond. A vCPU is active while it competes: it was runnable or running during the period
//! and is not sitting on a full bank of unused credit. A vCPU whose credit would exceed one
//! period's worth stops earning (its credit is halved, as in credit1) until it has run for a tick
//! again, so domains that mostly sleep neither bank unlimited credit nor dilute the shares of
//! the busy ones. Credit stays within ± one period.
//!
//! Priorities: **BOOST** (just woke up with credit left: latency-sensitive vCPUs preempt CPU
//! hogs; the boost ends after a tick of running) > **UNDER** (credit ≥ 0) > **OVER** (credit
//! < 0). As in credit1, a new vCPU with no credit yet counts as UNDER, so it is boosted when it
//! first wakes. Within a priority the queue is round-robin. A running vCPU keeps its CPU for a
//! time slice unless a vCPU of strictly higher priority waits, and always for at least the
//! rate limit (unless it yields or stops being runnable). A running UNDER vCPU is revisited
//! when its credit runs out if another UNDER vCPU waits, so shares follow the weights closely.
//!
//! # Caps
//!
//! A cap limits a domain to `cap`% of one CPU even when the machine is otherwise idle. Each
//! capped domain has a budget of `cap% × period` per period, consumed by all its vCPUs; when it
//! is spent, the domain is *parked* (its vCPUs are not runnable, and report
//! `RUNSTATE_offline` as Xen's parked vCPUs do) until an accounting period refills it. Overruns
//! are carried over as debt, so the long-run share is honoured exactly.
//!
//! # Runstates
//!
//! Each vCPU's `running`/`runnable`/`blocked`/`offline` state and the cumulative time in each
//! are kept exactly as Xen reports them ([`Scheduler::runstate`]).
//!
//! # Driving it
//!
//! - Domains and vCPUs: [`Scheduler::add_domain`] (or implicitly with defaults),
//!   [`Scheduler::add_vcpu`] (offline), [`Scheduler::remove_domain`].
//! - Events: [`Scheduler::vcpu_up`], [`Scheduler::vcpu_down`], [`Scheduler::wake`],
//!   [`Scheduler::block`], [`Scheduler::yield_now`], [`Scheduler::pause_domain`],
//!   [`Scheduler::unpause_domain`], [`Scheduler::set_domain_params`].
//! - After any event (and after [`Scheduler::schedule`], whose accounting may unpark domains),
//!   every CPU in [`Scheduler::resched_cpus`] must call [`Scheduler::schedule`]: the local one
//!   directly, the others by IPI.
//! - [`Scheduler::schedule`] returns the vCPU to run (or `None`: halt) and the latest time at
//!   which to call it again; the runtime arms the CPU's timer for that time.
//!
//! # Hostile input
//!
//! Unknown vCPUs, domains and CPUs are errors or no-ops, never panics. Time is taken as the
//! latest `now` seen so far: an earlier `now` counts as that latest time, so nothing runs
//! backwards. All arithmetic saturates.

mod credit;
mod runstate;
#[cfg(test)]
mod tests;

use crate::types::{DomId, VcpuRef};
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;
use hypercall_abi::errno::Errno;
use hypercall_abi::vcpu::{Runstate, VcpuRunstateInfo};
use runstate::RunstateRecord;

/// Nanoseconds in a millisecond.
const MS: u64 = 1_000_000;
/// Nanoseconds in a microsecond.
const US: u64 = 1_000;

/// A domain's weight unless set otherwise (Xen's `CSCHED_DEFAULT_WEIGHT`).
pub const DEFAULT_WEIGHT: u16 = 256;
/// Shortest time slice and accounting period accepted (Xen's `XEN_SYSCTL_CSCHED_TSLICE_MIN`).
pub const MIN_SLICE_NS: u64 = MS;
/// Longest time slice and accounting period accepted (Xen's `XEN_SYSCTL_CSCHED_TSLICE_MAX`).
pub const MAX_SLICE_NS: u64 = 1000 * MS;
/// Smallest non-zero rate limit accepted (Xen's `XEN_SYSCTL_SCHED_RATELIMIT_MIN`, 100 µs).
pub const MIN_RATELIMIT_NS: u64 = 100 * US;
/// Largest rate limit accepted (Xen's `XEN_SYSCTL_SCHED_RATELIMIT_MAX`, 500 ms).
pub const MAX_RATELIMIT_NS: u64 = 500 * MS;
/// The earliest a decision asks to be revisited: never sooner than this after `now`, so the
/// CPU is not flooded with timer interrupts (Xen's `CSCHED_MIN_TIMER`).
pub const MIN_TIMER_NS: u64 = 100 * US;

/// Global scheduler parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedParams {
    /// Accounting period: how often credit is handed out and caps are refilled (ns).
    pub period_ns: u64,
    /// Time slice: how long a vCPU runs before others of its priority get a turn (ns).
    pub slice_ns: u64,
    /// Rate limit: the least a vCPU runs before it can be preempted (ns; 0 = none).
    pub ratelimit_ns: u64,
    /// Tick: how long a boost lasts in running time, and how much an inactive vCPU must run to
    /// earn credit again (ns; credit1 uses a third of the slice).
    pub tick_ns: u64,
}

impl Default for SchedParams {
    fn default() -> Self {
        Self {
            period_ns: 30 * MS,
            slice_ns: 30 * MS,
            ratelimit_ns: MS,
            tick_ns: 10 * MS,
        }
    }
}

impl SchedParams {
    /// Checks the parameters against Xen's limits: period and slice in 1..=1000 ms, rate limit
    /// 0 or 100 µs..=500 ms and not above the slice, tick in [`MIN_TIMER_NS`]..=slice.
    ///
    /// # Errors
    ///
    /// [`SchedError::BadParams`] if any is out of range.
    pub fn validate(&self) -> Result<(), SchedError> {
        let slices = MIN_SLICE_NS..=MAX_SLICE_NS;
        let ok = slices.contains(&self.period_ns)
            && slices.contains(&self.slice_ns)
            && (self.ratelimit_ns == 0
                || (MIN_RATELIMIT_NS..=MAX_RATELIMIT_NS).contains(&self.ratelimit_ns))
            && self.ratelimit_ns <= self.slice_ns
            && (MIN_TIMER_NS..=self.slice_ns).contains(&self.tick_ns);
        if ok {
            Ok(())
        } else {
            Err(SchedError::BadParams)
        }
    }

    /// The nearest valid parameters: each value clamped into its range.
    pub fn sanitized(self) -> Self {
        let period_ns = self.period_ns.clamp(MIN_SLICE_NS, MAX_SLICE_NS);
        let slice_ns = self.slice_ns.clamp(MIN_SLICE_NS, MAX_SLICE_NS);
        let ratelimit_ns = if self.ratelimit_ns == 0 {
            0
        } else {
            self.ratelimit_ns
                .clamp(MIN_RATELIMIT_NS, MAX_RATELIMIT_NS)
                .min(slice_ns)
        };
        let tick_ns = self.tick_ns.clamp(MIN_TIMER_NS, slice_ns);
        Self {
            period_ns,
            slice_ns,
            ratelimit_ns,
            tick_ns,
        }
    }
}

/// A domain's scheduling parameters (Xen's `xen_domctl_sched_credit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomParams {
    /// Relative share of contended CPU time, 1..=65535 (default 256).
    pub weight: u16,
    /// Most CPU time the domain may use, in percent of one CPU; 0 = no cap.
    pub cap: u16,
}

impl Default for DomParams {
    fn default() -> Self {
        Self {
            weight: DEFAULT_WEIGHT,
            cap: 0,
        }
    }
}

/// A scheduler request that cannot be carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchedError {
    /// No such physical CPU.
    NoSuchCpu,
    /// The domain is not known to the scheduler.
    NoSuchDomain,
    /// The vCPU is not known to the scheduler.
    NoSuchVcpu,
    /// The domain is already known.
    DomainExists,
    /// The vCPU is already known.
    VcpuExists,
    /// Weight 0 (the valid range is 1..=65535).
    BadWeight,
    /// A cap above 100% per vCPU of the domain.
    BadCap,
    /// Global parameters out of range.
    BadParams,
}

impl SchedError {
    /// The errno a hypercall reports for this error.
    pub const fn errno(self) -> Errno {
        match self {
            SchedError::NoSuchDomain => Errno::Esrch,
            SchedError::NoSuchVcpu => Errno::Enoent,
            SchedError::DomainExists | SchedError::VcpuExists => Errno::Eexist,
            SchedError::NoSuchCpu
            | SchedError::BadWeight
            | SchedError::BadCap
            | SchedError::BadParams => Errno::Einval,
        }
    }
}

impl From<SchedError> for Errno {
    fn from(e: SchedError) -> Self {
        e.errno()
    }
}

/// A vCPU's scheduling priority, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// Credit overdrawn (< 0).
    Over,
    /// Credit not overdrawn (≥ 0).
    Under,
    /// Just woke up with credit left.
    Boost,
}

/// What a CPU should do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The vCPU to run, or `None` to idle (halt until an interrupt).
    pub next: Option<VcpuRef>,
    /// System time at which to call [`Scheduler::schedule`] again at the latest (end of slice,
    /// credit or cap budget exhausted, accounting due); `u64::MAX` if nothing is due.
    pub until: u64,
}

/// Scheduler state of one vCPU.
#[derive(Clone, Debug)]
struct Vcpu {
    /// The CPU whose queue it waits on, or which runs it.
    cpu: usize,
    /// Down (offline: never brought up, or `VCPUOP_down`).
    down: bool,
    /// Blocked, waiting for an event.
    blocked: bool,
    /// Boosted: woke up with credit and has not yet run a tick.
    boosted: bool,
    /// Asked to yield at its next descheduling.
    yielded: bool,
    /// Credit in ns of CPU time.
    credit: i64,
    /// Earns credit at accounting.
    active: bool,
    /// Was runnable or running since the last accounting.
    busy: bool,
    /// Running time since the boost was granted.
    boost_run: u64,
    /// Running time since it stopped earning credit.
    idle_run: u64,
    /// Runstate bookkeeping.
    runstate: RunstateRecord,
}

/// Scheduler state of one domain.
#[derive(Clone, Debug)]
struct Dom {
    /// Weight and cap.
    params: DomParams,
    /// Nested pause count.
    paused: u32,
    /// Cap budget used up: no vCPU may run until accounting refills it.
    parked: bool,
    /// Remaining cap budget this period (ns; negative = debt).
    budget: i64,
}

/// Scheduler state of one physical CPU.
#[derive(Clone, Debug, Default)]
struct Cpu {
    /// The vCPU running (or about to run) here.
    current: Option<VcpuRef>,
    /// Runnable vCPUs waiting for this CPU, in round-robin order.
    queue: VecDeque<VcpuRef>,
    /// When `current` was picked (start of its slice).
    picked_at: u64,
    /// Up to when `current` has been charged.
    charged_to: u64,
    /// The current vCPU was taken away (blocked, down, parked, removed): must reschedule.
    resched: bool,
}

/// The credit scheduler for all vCPUs of all domains on `nr_cpus` physical CPUs.
#[derive(Clone, Debug)]
pub struct Scheduler {
    /// Global parameters (sanitised).
    params: SchedParams,
    /// Per-CPU state; never empty.
    cpus: Vec<Cpu>,
    /// Domains.
    doms: BTreeMap<DomId, Dom>,
    /// vCPUs of all domains.
    vcpus: BTreeMap<VcpuRef, Vcpu>,
    /// When the next accounting is due.
    next_acct: u64,
    /// The latest time seen.
    now: u64,
    /// Changes so far (see [`Scheduler::changes`]).
    changes: u64,
}

/// `n` as a signed credit amount (saturating).
fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The range of [`VcpuRef`]s belonging to `dom`.
fn dom_range(dom: DomId) -> core::ops::RangeInclusive<VcpuRef> {
    VcpuRef { dom, vcpu: 0 }..=VcpuRef {
        dom,
        vcpu: u32::MAX,
    }
}

impl Scheduler {
    /// A scheduler for `nr_cpus` physical CPUs (at least one is assumed) with `params`
    /// (clamped into range, see [`SchedParams::sanitized`]).
    pub fn new(nr_cpus: usize, params: SchedParams) -> Self {
        let params = params.sanitized();
        let mut cpus = Vec::new();
        cpus.resize_with(nr_cpus.max(1), Cpu::default);
        Self {
            params,
            cpus,
            doms: BTreeMap::new(),
            vcpus: BTreeMap::new(),
            next_acct: params.period_ns,
            now: 0,
            changes: 0,
        }
    }

    /// The parameters in force.
    pub fn params(&self) -> SchedParams {
        self.params
    }

    /// Number of physical CPUs.
    pub fn nr_cpus(&self) -> usize {
        self.cpus.len()
    }

    /// Registers a domain with `params`.
    ///
    /// # Errors
    ///
    /// [`SchedError::DomainExists`], or the errors of [`Scheduler::set_domain_params`].
    pub fn add_domain(&mut self, dom: DomId, params: DomParams) -> Result<(), SchedError> {
        if self.doms.contains_key(&dom) {
            return Err(SchedError::DomainExists);
        }
        check_params(params, 0)?;
        self.doms
            .insert(dom, new_dom(params, self.params.period_ns));
        self.changes = self.changes.wrapping_add(1);
        Ok(())
    }

    /// Sets a domain's weight and cap, checked the way the toolstack checks them (libxl):
    /// weight 1..=65535, cap at most 100% per vCPU the domain has (at least one).
    ///
    /// # Errors
    ///
    /// [`SchedError::NoSuchDomain`], [`SchedError::BadWeight`], [`SchedError::BadCap`].
    pub fn set_domain_params(
        &mut self,
        dom: DomId,
        params: DomParams,
        now: u64,
    ) -> Result<(), SchedError> {
        if !self.doms.contains_key(&dom) {
            return Err(SchedError::NoSuchDomain);
        }
        let nr = self.vcpus.range(dom_range(dom)).count();
        check_params(params, nr)?;
        self.apply_params(dom, params, now);
        Ok(())
    }

    /// `XEN_DOMCTL_SCHEDOP_putinfo` for the credit scheduler, with Xen's semantics: a weight of
    /// 0 leaves the weight unchanged, a cap of `0xffff` leaves the cap unchanged, and nothing
    /// else is checked (range checks are the toolstack's; see
    /// [`Scheduler::set_domain_params`]).
    ///
    /// # Errors
    ///
    /// [`SchedError::NoSuchDomain`].
    pub fn putinfo(
        &mut self,
        dom: DomId,
        weight: u16,
        cap: u16,
        now: u64,
    ) -> Result<(), SchedError> {
        let old = self.domain_params(dom).ok_or(SchedError::NoSuchDomain)?;
        let params = DomParams {
            weight: if weight == 0 { old.weight } else { weight },
            cap: if cap == u16::MAX { old.cap } else { cap },
        };
        self.apply_params(dom, params, now);
        Ok(())
    }

    /// A domain's weight and cap.
    pub fn domain_params(&self, dom: DomId) -> Option<DomParams> {
        self.doms.get(&dom).map(|d| d.params)
    }

    /// Whether a capped domain is parked (cap budget used up until the next period).
    pub fn is_parked(&self, dom: DomId) -> Option<bool> {
        self.doms.get(&dom).map(|d| d.parked)
    }

    /// Registers vCPU `v`, offline, on `cpu`, at `now` (its runstate starts there). Its domain
    /// is registered with default parameters if it is not known yet.
    ///
    /// # Errors
    ///
    /// [`SchedError::NoSuchCpu`], [`SchedError::VcpuExists`].
    pub fn add_vcpu(&mut self, v: VcpuRef, cpu: usize, now: u64) -> Result<(), SchedError> {
        if cpu >= self.cpus.len() {
            return Err(SchedError::NoSuchCpu);
        }
        if self.vcpus.contains_key(&v) {
            return Err(SchedError::VcpuExists);
        }
        let now = self.clock(now);
        let period = self.params.period_ns;
        self.doms
            .entry(v.dom)
            .or_insert_with(|| new_dom(DomParams::default(), period));
        self.vcpus.insert(
            v,
            Vcpu {
                cpu,
                down: true,
                blocked: false,
                boosted: false,
                yielded: false,
                credit: 0,
                active: true,
                busy: false,
                boost_run: 0,
                idle_run: 0,
                runstate: RunstateRecord::new(Runstate::Offline, now),
            },
        );
        Ok(())
    }

    /// Forgets a domain and all its vCPUs. A CPU that was running one of them has no current
    /// vCPU any more and reports [`Scheduler::should_preempt`].
    ///
    /// # Errors
    ///
    /// [`SchedError::NoSuchDomain`].
    pub fn remove_domain(&mut self, dom: DomId) -> Result<(), SchedError> {
        if self.doms.remove(&dom).is_none() {
            return Err(SchedError::NoSuchDomain);
        }
        self.changes = self.changes.wrapping_add(1);
        let gone: Vec<VcpuRef> = self.vcpus.range(dom_range(dom)).map(|(&r, _)| r).collect();
        for r in &gone {
            self.vcpus.remove(r);
        }
        for cpu in &mut self.cpus {
            if cpu.current.is_some_and(|c| c.dom == dom) {
                cpu.current = None;
                cpu.resched = true;
            }
            cpu.queue.retain(|r| r.dom != dom);
        }
        Ok(())
    }

    /// `VCPUOP_up` (or a domain's first start): the vCPU is no longer down; it becomes runnable
    /// unless blocked, paused or parked. Returns the CPU it belongs to: check
    /// [`Scheduler::should_preempt`] there.
    ///
    /// # Errors
    ///
    /// [`SchedError::NoSuchVcpu`].
    pub fn vcpu_up(&mut self, v: VcpuRef, now: u64) -> Result<usize, SchedError> {
        self.change_waking(v, now, |vc| vc.down = false)
    }

    /// `VCPUOP_down`: the vCPU goes offline (descheduled at once if it is running).
    ///
    /// # Errors
    ///
    /// [`SchedError::NoSuchVcpu`].
    pub fn vcpu_down(&mut self, v: VcpuRef, now: u64) -> Result<(), SchedError> {
        let now = self.clock(now);
        self.vcpus.get_mut(&v).ok_or(SchedError::NoSuchVcpu)?.down = true;
        self.settle(v, now);
        Ok(())
    }

    /// Whether the vCPU is up (`VCPUOP_is_up`).
    pub fn is_up(&self, v: VcpuRef) -> Option<bool> {
        self.vcpus.get(&v).map(|vc| !vc.down)
    }

    /// An event for a blocked vCPU: it becomes runnable (boosted if it has credit) unless it is
    /// down, paused or parked. Waking a vCPU that is not blocked does nothing. Returns the CPU
    /// it belongs to: check [`Scheduler::should_preempt`] there.
    ///
    /// # Errors
    ///
    /// [`SchedError::NoSuchVcpu`].
    pub fn wake(&mut self, v: VcpuRef, now: u64) -> Result<usize, SchedError> {
        // Not blocked: nothing changes (and the change counter stands still, so the caller's
        // last decision stays valid).
        match self.vcpus.get(&v) {
            None => return Err(SchedError::NoSuchVcpu),
            Some(vc) if !vc.blocked => return Ok(vc.cpu),
            Some(_) => {}
        }
        self.change_waking(v, now, |vc| vc.blocked = false)
    }

    /// `SCHEDOP_block` (or a poll): the vCPU waits for an event. A running vCPU is descheduled
    /// at once; call [`Scheduler::schedule`] on its CPU.
    ///
    /// # Errors
    ///
    /// [`SchedError::NoSuchVcpu`].
    pub fn block(&mut self, v: VcpuRef, now: u64) -> Result<(), SchedError> {
        let now = self.clock(now);
        self.vcpus
            .get_mut(&v)
            .ok_or(SchedError::NoSuchVcpu)?
            .blocked = true;
        self.settle(v, now);
        Ok(())
    }

    /// `SCHEDOP_yield`: a running vCPU gives way to any other runnable vCPU of its CPU at the
    /// next [`Scheduler::schedule`] (which it requests), and loses its boost. No effect on a
    /// vCPU that is not running.
    ///
    /// # Errors
    ///
    /// [`SchedError::NoSuchVcpu`].
    pub fn yield_now(&mut self, v: VcpuRef, now: u64) -> Result<(), SchedError> {
        let now = self.clock(now);
        let cpu = self.vcpus.get(&v).ok_or(SchedError::NoSuchVcpu)?.cpu;
        if self.cpus.get(cpu).and_then(|c| c.current) != Some(v) {
            return Ok(());
        }
        self.charge(cpu, now);
        if let Some(vc) = self.vcpus.get_mut(&v) {
            vc.yielded = true;
            vc.boosted = false;
        }
        if let Some(c) = self.cpus.get_mut(cpu) {
            c.resched = true;
        }
        Ok(())
    }

    /// Pauses a domain (nested): none of its vCPUs runs until as many unpauses.
    ///
    /// # Errors
    ///
    /// [`SchedError::NoSuchDomain`].
    pub fn pause_domain(&mut self, dom: DomId, now: u64) -> Result<(), SchedError> {
        let now = self.clock(now);
        let d = self.doms.get_mut(&dom).ok_or(SchedError::NoSuchDomain)?;
        d.paused = d.paused.saturating_add(1);
        self.settle_domain(dom, now, false);
        Ok(())
    }

    /// Undoes one [`Scheduler::pause_domain`]; on the last one, the domain's vCPUs that are up
    /// and not blocked become runnable (boosted if they have credit). Unpausing a domain that
    /// is not paused does nothing.
    ///
    /// # Errors
    ///
    /// [`SchedError::NoSuchDomain`].
    pub fn unpause_domain(&mut self, dom: DomId, now: u64) -> Result<(), SchedError> {
        let now = self.clock(now);
        let d = self.doms.get_mut(&dom).ok_or(SchedError::NoSuchDomain)?;
        d.paused = d.paused.saturating_sub(1);
        self.settle_domain(dom, now, true);
        Ok(())
    }

    /// The vCPU's runstate as `VCPUOP_get_runstate_info` reports it at `now` (the current
    /// state's time counted up to `now`).
    pub fn runstate(&self, v: VcpuRef, now: u64) -> Option<VcpuRunstateInfo> {
        self.vcpus.get(&v).map(|vc| vc.runstate.info(now))
    }

    /// The vCPU's priority as it stands (credit charged up to the last event).
    pub fn priority(&self, v: VcpuRef) -> Option<Priority> {
        self.vcpus.get(&v).map(priority)
    }

    /// The vCPU's credit in ns (charged up to the last event), for diagnostics.
    pub fn credit(&self, v: VcpuRef) -> Option<i64> {
        self.vcpus.get(&v).map(|vc| vc.credit)
    }

    /// The CPU the vCPU belongs to.
    pub fn cpu_of(&self, v: VcpuRef) -> Option<usize> {
        self.vcpus.get(&v).map(|vc| vc.cpu)
    }

    /// The vCPU `cpu` is running, if any.
    pub fn current(&self, cpu: usize) -> Option<VcpuRef> {
        self.cpus.get(cpu).and_then(|c| c.current)
    }

    /// Where a vCPU that becomes runnable should wait: its own CPU if that is idle, else the
    /// first idle CPU after it, else its own CPU.
    pub fn pick_cpu(&self, v: VcpuRef) -> Option<usize> {
        let home = self.vcpus.get(&v)?.cpu;
        let n = self.cpus.len();
        let idle = |c: usize| {
            self.cpus
                .get(c)
                .is_some_and(|cpu| cpu.current.is_none() && cpu.queue.is_empty())
        };
        Some(
            (0..n)
                .map(|i| (home + i) % n)
                .find(|&c| idle(c))
                .unwrap_or(home),
        )
    }

    /// Whether `cpu` should call [`Scheduler::schedule`] now: its current vCPU was taken away
    /// or yielded, it idles while work waits in its queue, or a vCPU of strictly higher
    /// priority than the running one waits (a boosted waker against a CPU hog, say).
    pub fn should_preempt(&self, cpu: usize, now: u64) -> bool {
        let Some(c) = self.cpus.get(cpu) else {
            return false;
        };
        if c.resched {
            return true;
        }
        let Some(cur) = c.current else {
            return !c.queue.is_empty();
        };
        let Some(vc) = self.vcpus.get(&cur) else {
            return true;
        };
        // The running vCPU's priority with its credit charged up to `now`.
        let ran = now.max(self.now).saturating_sub(c.charged_to);
        let credit = vc.credit.saturating_sub(signed(ran));
        let cur_pri = if vc.boosted && vc.boost_run.saturating_add(ran) < self.params.tick_ns {
            Priority::Boost
        } else if credit >= 0 {
            Priority::Under
        } else {
            Priority::Over
        };
        self.best_queued(cpu, None)
            .is_some_and(|(_, pri)| pri > cur_pri)
    }

    /// The CPUs for which [`Scheduler::should_preempt`] holds at `now`: after reporting an
    /// event, the runtime reschedules each of them (the local one directly, others by IPI).
    pub fn resched_cpus(&self, now: u64) -> impl Iterator<Item = usize> + '_ {
        (0..self.cpus.len()).filter(move |&cpu| self.should_preempt(cpu, now))
    }

    /// Decides what `cpu` runs next at `now`: charges the running vCPU, runs the accounting if
    /// it is due, enforces caps, and picks the vCPU of highest priority (round-robin within a
    /// priority; the running one keeps its slice unless a strictly higher priority waits).
    /// An unknown CPU gets an idle decision.
    pub fn schedule(&mut self, cpu: usize, now: u64) -> Decision {
        if cpu >= self.cpus.len() {
            return Decision {
                next: None,
                until: u64::MAX,
            };
        }
        let now = self.clock(now);
        self.charge(cpu, now);
        if now >= self.next_acct {
            self.account(now);
        }
        if let Some(cur) = self.current(cpu) {
            self.enforce_cap(cur.dom, now);
        }
        let Some(c) = self.cpus.get_mut(cpu) else {
            return Decision {
                next: None,
                until: u64::MAX,
            };
        };
        c.resched = false;
        let prev = c.current.take();
        let picked_at = c.picked_at;
        // (Defensive: a current vCPU that may not run should already have been taken away.)
        let prev = match prev {
            Some(r) if !self.vcpu_runnable(r) => {
                self.settle(r, now);
                None
            }
            other => other,
        };

        // Keep the running vCPU for its slice (and always for the rate limit) unless it
        // yielded or a strictly higher priority waits.
        let mut yielder = None;
        if let Some(r) = prev {
            let Some(vc) = self.vcpus.get(&r) else {
                return self.idle(now);
            };
            let ran = now.saturating_sub(picked_at);
            let yielded = vc.yielded;
            let pri = priority(vc);
            let higher_waits = self.best_queued(cpu, None).is_some_and(|(_, p)| p > pri);
            let keep = !yielded
                && (ran < self.params.ratelimit_ns
                    || (ran < self.params.slice_ns && !higher_waits));
            if keep {
                if let Some(c) = self.cpus.get_mut(cpu) {
                    c.current = Some(r);
                }
                let until = self.until(cpu, r, now);
                return Decision {
                    next: Some(r),
                    until,
                };
            }
            if let Some(vc) = self.vcpus.get_mut(&r) {
                vc.yielded = false;
            }
            if yielded {
                yielder = Some(r);
            }
            if let Some(c) = self.cpus.get_mut(cpu) {
                c.queue.push_back(r);
            }
        }

        let next = self.pick(cpu, yielder);
        if let Some(r) = prev.filter(|&p| Some(p) != next)
            && let Some(vc) = self.vcpus.get_mut(&r)
        {
            vc.runstate.change(Runstate::Runnable, now);
        }
        let Some(r) = next else {
            return self.idle(now);
        };
        if let Some(vc) = self.vcpus.get_mut(&r) {
            vc.runstate.change(Runstate::Running, now);
            vc.busy = true;
        }
        if let Some(c) = self.cpus.get_mut(cpu) {
            c.current = Some(r);
            c.picked_at = now;
            c.charged_to = now;
        }
        let until = self.until(cpu, r, now);
        Decision {
            next: Some(r),
            until,
        }
    }

    // ---- internals ----

    /// Advances the scheduler's clock to `now` (never backwards) and returns it. Every call
    /// that can change a decision goes through here, so it also counts changes.
    fn clock(&mut self, now: u64) -> u64 {
        self.changes = self.changes.wrapping_add(1);
        self.now = self.now.max(now);
        self.now
    }

    /// A counter that moves whenever something that can change a scheduling decision happens
    /// (a wake, a block, a yield, a vCPU going up or down, a domain coming or going, a
    /// decision). While it stands still and no deadline passed, the last decision holds and
    /// [`Scheduler::should_preempt`] need not be asked.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Applies a change to a vCPU that may wake it, and boosts it if it became runnable with
    /// credit left. Returns its CPU.
    fn change_waking(
        &mut self,
        v: VcpuRef,
        now: u64,
        change: impl FnOnce(&mut Vcpu),
    ) -> Result<usize, SchedError> {
        let now = self.clock(now);
        let was = self.vcpu_runnable(v);
        change(self.vcpus.get_mut(&v).ok_or(SchedError::NoSuchVcpu)?);
        self.settle(v, now);
        if !was && self.vcpu_runnable(v) {
            self.boost(v);
        }
        self.vcpus
            .get(&v)
            .map(|vc| vc.cpu)
            .ok_or(SchedError::NoSuchVcpu)
    }

    /// Grants a boost to a vCPU that just became runnable, if it has credit.
    fn boost(&mut self, v: VcpuRef) {
        if let Some(vc) = self.vcpus.get_mut(&v)
            && vc.credit >= 0
        {
            vc.boosted = true;
            vc.boost_run = 0;
        }
    }

    /// Whether the vCPU may run: up, not blocked, its domain neither paused nor parked.
    fn vcpu_runnable(&self, v: VcpuRef) -> bool {
        let Some(vc) = self.vcpus.get(&v) else {
            return false;
        };
        let dom_ok = self
            .doms
            .get(&v.dom)
            .is_some_and(|d| d.paused == 0 && !d.parked);
        !vc.down && !vc.blocked && dom_ok
    }

    /// Brings a vCPU's queue membership and runstate in line with its flags: a runnable vCPU
    /// that is not running waits in a queue (placed by [`Scheduler::pick_cpu`]); one that may
    /// not run leaves its queue or its CPU, and is blocked or offline.
    fn settle(&mut self, v: VcpuRef, now: u64) {
        let runnable = self.vcpu_runnable(v);
        let Some(cpu) = self.vcpus.get(&v).map(|vc| vc.cpu) else {
            return;
        };
        let running = self.current(cpu) == Some(v);
        if running {
            if runnable {
                return;
            }
            self.charge(cpu, now);
            if let Some(c) = self.cpus.get_mut(cpu) {
                c.current = None;
                c.resched = true;
            }
        }
        let queued = self.cpus.get(cpu).is_some_and(|c| c.queue.contains(&v));
        if runnable && !queued {
            let target = self.pick_cpu(v).unwrap_or(cpu);
            if let Some(c) = self.cpus.get_mut(target) {
                c.queue.push_back(v);
            }
            if let Some(vc) = self.vcpus.get_mut(&v) {
                vc.cpu = target;
            }
        } else if !runnable
            && queued
            && let Some(c) = self.cpus.get_mut(cpu)
        {
            c.queue.retain(|&q| q != v);
        }
        if let Some(vc) = self.vcpus.get_mut(&v) {
            let state = if runnable {
                vc.busy = true;
                Runstate::Runnable
            } else if vc.blocked {
                Runstate::Blocked
            } else {
                Runstate::Offline
            };
            if !(running && runnable) {
                vc.runstate.change(state, now);
            }
        }
    }

    /// [`Scheduler::settle`]s every vCPU of a domain, boosting those that became runnable if
    /// `wake` (not for an unpark: a capped domain getting its budget back is not waking up).
    fn settle_domain(&mut self, dom: DomId, now: u64, wake: bool) {
        let list: Vec<VcpuRef> = self.vcpus.range(dom_range(dom)).map(|(&r, _)| r).collect();
        for v in list {
            let was = self.vcpu_runnable(v);
            self.settle(v, now);
            if wake && !was && self.vcpu_runnable(v) {
                self.boost(v);
            }
        }
    }

    /// Charges `cpu`'s running vCPU for the time since it was last charged: credit, cap
    /// budget, boost and reactivation progress.
    fn charge(&mut self, cpu: usize, now: u64) {
        let tick = self.params.tick_ns;
        let Some(c) = self.cpus.get_mut(cpu) else {
            return;
        };
        let ran = now.saturating_sub(c.charged_to);
        c.charged_to = c.charged_to.max(now);
        let Some(r) = c.current else {
            return;
        };
        if ran == 0 {
            return;
        }
        if let Some(vc) = self.vcpus.get_mut(&r) {
            vc.credit = vc.credit.saturating_sub(signed(ran));
            vc.busy = true;
            if vc.boosted {
                vc.boost_run = vc.boost_run.saturating_add(ran);
                if vc.boost_run >= tick {
                    vc.boosted = false;
                }
            }
            if !vc.active {
                vc.idle_run = vc.idle_run.saturating_add(ran);
                if vc.idle_run >= tick {
                    vc.active = true;
                    vc.idle_run = 0;
                }
            }
        }
        if let Some(d) = self.doms.get_mut(&r.dom)
            && d.params.cap != 0
        {
            d.budget = d.budget.saturating_sub(signed(ran));
        }
    }

    /// Parks a capped domain whose budget is used up: its vCPUs leave their queues and CPUs.
    fn enforce_cap(&mut self, dom: DomId, now: u64) {
        if self
            .doms
            .get(&dom)
            .is_none_or(|d| d.params.cap == 0 || d.parked)
        {
            return;
        }
        for cpu in 0..self.cpus.len() {
            if self.current(cpu).is_some_and(|r| r.dom == dom) {
                self.charge(cpu, now);
            }
        }
        let Some(d) = self.doms.get_mut(&dom) else {
            return;
        };
        if d.budget > 0 {
            return;
        }
        d.parked = true;
        self.settle_domain(dom, now, false);
    }

    /// The accounting period: hands out credit, bounds it, refills cap budgets and unparks.
    fn account(&mut self, now: u64) {
        // Everything that ran up to now is paid for before credit and budgets are handed out.
        for cpu in 0..self.cpus.len() {
            self.charge(cpu, now);
        }
        let period = self.params.period_ns;
        let periods = (now.saturating_sub(self.next_acct) / period).saturating_add(1);
        self.next_acct = self
            .next_acct
            .saturating_add(periods.saturating_mul(period));

        // Competitors: domains with active vCPUs that were busy this period.
        let eligible = |vc: &Vcpu| vc.active && vc.busy;
        let mut doms = Vec::new();
        let mut claims = Vec::new();
        for (&id, d) in &self.doms {
            let n = self
                .vcpus
                .range(dom_range(id))
                .filter(|(_, vc)| eligible(vc))
                .count();
            let n = u64::try_from(n).unwrap_or(u64::MAX);
            if n == 0 {
                continue;
            }
            let mut peak = n.saturating_mul(period);
            if d.params.cap != 0 {
                peak = peak.min(cap_amount(d.params.cap, period));
            }
            doms.push((id, n));
            claims.push(credit::Claim {
                weight: u64::from(d.params.weight).saturating_mul(n),
                peak,
            });
        }
        let total = u64::try_from(self.cpus.len())
            .unwrap_or(u64::MAX)
            .saturating_mul(period);
        let grants = credit::distribute(total, &claims);

        let bound = signed(period);
        for ((id, n), grant) in doms.into_iter().zip(grants) {
            let each = signed((grant / n).saturating_mul(periods));
            for (_, vc) in self.vcpus.range_mut(dom_range(id)) {
                if !eligible(vc) {
                    continue;
                }
                vc.credit = vc.credit.saturating_add(each);
                if vc.credit > bound {
                    // Not using what it earns: stop earning until it runs a tick again.
                    vc.active = false;
                    vc.idle_run = 0;
                    vc.credit = (vc.credit / 2).min(bound);
                }
            }
        }
        // Bounds, and a fresh look at who competes in the next period: whoever runs or waits.
        let mut busy: BTreeSet<VcpuRef> = self.cpus.iter().filter_map(|c| c.current).collect();
        busy.extend(self.cpus.iter().flat_map(|c| c.queue.iter().copied()));
        for (r, vc) in &mut self.vcpus {
            vc.credit = vc.credit.clamp(-bound, bound);
            if vc.credit < 0 {
                vc.boosted = false;
            }
            vc.busy = busy.contains(r);
        }

        // Cap budgets: refill (no banking beyond one period's worth) and unpark.
        let mut unpark = Vec::new();
        for (&id, d) in &mut self.doms {
            if d.params.cap != 0 {
                let amount = signed(cap_amount(d.params.cap, period));
                d.budget = d
                    .budget
                    .saturating_add(amount.saturating_mul(signed(periods)))
                    .min(amount);
            }
            if d.parked && (d.params.cap == 0 || d.budget > 0) {
                d.parked = false;
                unpark.push(id);
            }
        }
        for id in unpark {
            self.settle_domain(id, now, false);
        }
    }

    /// The best vCPU waiting in `cpu`'s queue (first of the highest priority), ignoring
    /// `skip`: its position and priority.
    fn best_queued(&self, cpu: usize, skip: Option<VcpuRef>) -> Option<(usize, Priority)> {
        let c = self.cpus.get(cpu)?;
        let mut best: Option<(usize, Priority)> = None;
        for (i, r) in c.queue.iter().enumerate() {
            if Some(*r) == skip {
                continue;
            }
            let Some(vc) = self.vcpus.get(r) else {
                continue;
            };
            let p = priority(vc);
            if best.is_none_or(|(_, b)| p > b) {
                best = Some((i, p));
            }
        }
        best
    }

    /// Takes the vCPU `cpu` runs next out of the queues: the best of its own queue (the
    /// yielder only if nothing else is runnable), unless another CPU has queued work of
    /// strictly higher priority, which is stolen.
    fn pick(&mut self, cpu: usize, yielder: Option<VcpuRef>) -> Option<VcpuRef> {
        let local = self.best_queued(cpu, yielder);
        let local_pri = local.map(|(_, p)| p);
        if local_pri != Some(Priority::Boost) {
            let n = self.cpus.len();
            let mut steal: Option<(usize, usize, Priority)> = None;
            for other in (1..n).map(|i| (cpu + i) % n) {
                if let Some((i, p)) = self.best_queued(other, None)
                    && local_pri.is_none_or(|lp| p > lp)
                    && steal.is_none_or(|(_, _, sp)| p > sp)
                {
                    steal = Some((other, i, p));
                }
            }
            if let Some((other, i, _)) = steal {
                let r = self.cpus.get_mut(other).and_then(|c| c.queue.remove(i));
                if let Some(r) = r {
                    if let Some(vc) = self.vcpus.get_mut(&r) {
                        vc.cpu = cpu;
                    }
                    return Some(r);
                }
            }
        }
        let c = self.cpus.get_mut(cpu)?;
        match local {
            Some((i, _)) => c.queue.remove(i),
            None => {
                // Only the yielder (if anyone) is left: it runs again.
                let i = c.queue.iter().position(|&q| Some(q) == yielder)?;
                c.queue.remove(i)
            }
        }
    }

    /// When `cpu`, running `r` from `now`, must be revisited: the end of its slice (or of the
    /// rate limit if a higher priority waits), the next accounting, and whichever of these
    /// could change the decision: credit running out while an UNDER vCPU waits, the boost
    /// ending while anyone waits, the cap budget running out.
    fn until(&self, cpu: usize, r: VcpuRef, now: u64) -> u64 {
        let (Some(c), Some(vc)) = (self.cpus.get(cpu), self.vcpus.get(&r)) else {
            return now.saturating_add(MIN_TIMER_NS);
        };
        let p = &self.params;
        let pri = priority(vc);
        let best = self.best_queued(cpu, None).map(|(_, b)| b);
        let mut until = c.picked_at.saturating_add(p.slice_ns).min(self.next_acct);
        if best.is_some_and(|b| b > pri) {
            until = until.min(c.picked_at.saturating_add(p.ratelimit_ns));
        }
        if pri == Priority::Under && best == Some(Priority::Under) {
            // The first instant its credit is overdrawn.
            let left = u64::try_from(vc.credit).unwrap_or(0).saturating_add(1);
            until = until.min(now.saturating_add(left));
        }
        if vc.boosted && best.is_some() {
            until = until.min(now.saturating_add(p.tick_ns.saturating_sub(vc.boost_run)));
        }
        if let Some(d) = self.doms.get(&r.dom)
            && d.params.cap != 0
        {
            // Shared by every CPU running the domain, each of which may not have been charged
            // for a while.
            let mut running = 0u64;
            let mut left = d.budget;
            for c in self
                .cpus
                .iter()
                .filter(|c| c.current.is_some_and(|x| x.dom == r.dom))
            {
                running = running.saturating_add(1);
                left = left.saturating_sub(signed(now.saturating_sub(c.charged_to)));
            }
            let left = u64::try_from(left).unwrap_or(0) / running.max(1);
            until = until.min(now.saturating_add(left));
        }
        until.max(now.saturating_add(MIN_TIMER_NS))
    }

    /// An idle decision at `now`: wake up for the next accounting if a parked domain waits
    /// for it, otherwise only on an event.
    fn idle(&self, now: u64) -> Decision {
        let parked = self.doms.values().any(|d| d.parked);
        Decision {
            next: None,
            until: if parked {
                self.next_acct.max(now.saturating_add(MIN_TIMER_NS))
            } else {
                u64::MAX
            },
        }
    }

    /// Sets a domain's parameters (already validated) and adjusts its cap state.
    fn apply_params(&mut self, dom: DomId, params: DomParams, now: u64) {
        let now = self.clock(now);
        let period = self.params.period_ns;
        // Time run so far is paid for under the old parameters.
        for cpu in 0..self.cpus.len() {
            if self.current(cpu).is_some_and(|r| r.dom == dom) {
                self.charge(cpu, now);
            }
        }
        let Some(d) = self.doms.get_mut(&dom) else {
            return;
        };
        let old_cap = d.params.cap;
        d.params = params;
        if params.cap != 0 {
            let amount = signed(cap_amount(params.cap, period));
            d.budget = if old_cap == 0 {
                amount
            } else {
                d.budget.min(amount)
            };
        }
        let unpark = d.parked && (params.cap == 0 || d.budget > 0);
        if unpark {
            d.parked = false;
            self.settle_domain(dom, now, false);
        } else {
            self.enforce_cap(dom, now);
        }
        // CPUs running the domain revisit their decision under the new parameters.
        for c in &mut self.cpus {
            if c.current.is_some_and(|r| r.dom == dom) {
                c.resched = true;
            }
        }
    }
}

/// A vCPU's priority from its boost and credit.
fn priority(vc: &Vcpu) -> Priority {
    if vc.boosted {
        Priority::Boost
    } else if vc.credit >= 0 {
        Priority::Under
    } else {
        Priority::Over
    }
}

/// `cap`% of `period`: a capped domain's budget per period.
fn cap_amount(cap: u16, period: u64) -> u64 {
    let ns = u128::from(cap) * u128::from(period) / 100;
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// A new domain's state with `params`.
fn new_dom(params: DomParams, period: u64) -> Dom {
    Dom {
        params,
        paused: 0,
        parked: false,
        budget: signed(cap_amount(params.cap, period)),
    }
}

/// The toolstack's checks of a domain's parameters for a domain with `nr_vcpus` vCPUs.
fn check_params(params: DomParams, nr_vcpus: usize) -> Result<(), SchedError> {
    if params.weight == 0 {
        return Err(SchedError::BadWeight);
    }
    let max_cap = u64::try_from(nr_vcpus.max(1))
        .unwrap_or(u64::MAX)
        .saturating_mul(100);
    if u64::from(params.cap) > max_cap {
        return Err(SchedError::BadCap);
    }
    Ok(())
}
