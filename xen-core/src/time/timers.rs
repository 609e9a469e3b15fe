//! Software timers (portable): a queue of deadlines keyed by what they are for, and the
//! deadline rules of the guest timer hypercalls.
//!
//! The queue holds at most one deadline per key: setting a key that is already armed moves its
//! deadline. The caller owns the clock; every operation takes the current Xen system time
//! (nanoseconds since boot) as an argument, so the queue is tested without hardware. The runtime
//! programs the local APIC timer for [`TimerQueue::next_deadline`] and, when it fires, drains
//! [`TimerQueue::pop_expired`].
//!
//! The policy helpers turn guest arguments into deadlines the way Xen 4.17 does:
//! - [`set_timer_op_action`]: `set_timer_op` (hypercall 15), with Xen's workaround for Linux
//!   jiffies wrap (`do_set_timer_op` in `xen/common/sched/core.c`);
//! - [`singleshot_deadline`]: `VCPUOP_set_singleshot_timer` (its `VCPU_SSHOTTMR_future` flag is ignored, as in Xen 4.17.7);
//! - [`periodic_period`]: `VCPUOP_set_periodic_timer`'s accepted periods;
//! - [`PeriodicTimer`]: the periodic timer's deadlines, which keep their phase and skip missed
//!   periods rather than firing a burst after a long gap.

use alloc::collections::{BTreeMap, BTreeSet};
use hypercall_abi::errno::Errno;
use hypercall_abi::vcpu::VCPU_PERIODIC_TIMER_MIN_NS;

/// A queue of timers, at most one per key, ordered by deadline.
///
/// Timers with equal deadlines expire in the order they were set.
#[derive(Clone, Debug)]
pub struct TimerQueue<K: Ord + Copy> {
    /// Each armed key's deadline and arming sequence number.
    by_key: BTreeMap<K, (u64, u64)>,
    /// The same timers ordered by `(deadline, sequence)`.
    by_deadline: BTreeSet<(u64, u64, K)>,
    /// The next arming sequence number.
    seq: u64,
    /// The earliest deadline (`u64::MAX` if none), kept current by every change so that the
    /// question asked on every return to a guest costs nothing.
    first: u64,
    /// Changes so far (see [`TimerQueue::changes`]).
    changes: u64,
}

impl<K: Ord + Copy> Default for TimerQueue<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Ord + Copy> TimerQueue<K> {
    /// An empty queue.
    pub const fn new() -> Self {
        Self {
            by_key: BTreeMap::new(),
            by_deadline: BTreeSet::new(),
            seq: 0,
            first: u64::MAX,
            changes: 0,
        }
    }

    /// Arms `key` for `deadline` (ns of system time), replacing its previous deadline if any.
    /// Returns the previous deadline.
    pub fn set(&mut self, key: K, deadline: u64) -> Option<u64> {
        let old = self.cancel(key);
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        self.by_key.insert(key, (deadline, seq));
        self.by_deadline.insert((deadline, seq, key));
        self.first = self.first.min(deadline);
        self.changes = self.changes.wrapping_add(1);
        old
    }

    /// A counter that moves whenever a timer is armed, disarmed or expires: while it stands
    /// still, [`TimerQueue::next_deadline`] has not changed.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Recomputes the cached earliest deadline.
    fn refresh_first(&mut self) {
        self.changes = self.changes.wrapping_add(1);
        self.first = self
            .by_deadline
            .first()
            .map_or(u64::MAX, |&(deadline, _, _)| deadline);
    }

    /// Disarms `key`; returns the deadline it had, or `None` if it was not armed.
    pub fn cancel(&mut self, key: K) -> Option<u64> {
        let (deadline, seq) = self.by_key.remove(&key)?;
        self.by_deadline.remove(&(deadline, seq, key));
        if deadline <= self.first {
            self.refresh_first();
        }
        Some(deadline)
    }

    /// The deadline `key` is armed for, if it is armed.
    pub fn deadline(&self, key: K) -> Option<u64> {
        self.by_key.get(&key).map(|&(deadline, _)| deadline)
    }

    /// The earliest deadline of all armed timers, if any.
    pub fn next_deadline(&self) -> Option<u64> {
        (self.first != u64::MAX || !self.by_deadline.is_empty()).then_some(self.first)
    }

    /// Removes and returns the earliest timer whose deadline is at or before `now`, with its
    /// deadline; `None` if no timer has expired. Call it in a loop to drain every expired timer.
    pub fn pop_expired(&mut self, now: u64) -> Option<(K, u64)> {
        let &(deadline, seq, key) = self.by_deadline.first()?;
        if deadline > now {
            return None;
        }
        self.by_deadline.remove(&(deadline, seq, key));
        self.by_key.remove(&key);
        self.refresh_first();
        Some((key, deadline))
    }

    /// Disarms every timer whose key does not satisfy `keep` (for example all the timers of a
    /// domain being destroyed). Returns how many were disarmed.
    pub fn retain(&mut self, mut keep: impl FnMut(K) -> bool) -> usize {
        let before = self.by_key.len();
        self.by_key.retain(|&key, _| keep(key));
        let by_key = &self.by_key;
        self.by_deadline
            .retain(|&(_, seq, key)| by_key.get(&key).is_some_and(|&(_, s)| s == seq));
        self.refresh_first();
        before.saturating_sub(self.by_key.len())
    }

    /// Number of armed timers.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether no timer is armed.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

/// How far ahead (ns) a `set_timer_op` deadline may lie before Xen treats it as a Linux
/// jiffies-wrap bug: 2^50 ns, about 13 days. A deadline this far ahead or further is replaced.
pub const SET_TIMER_OP_MAX_AHEAD_NS: u64 = 1 << 50;

/// What Xen arms instead of an implausible `set_timer_op` deadline: now + 100 ms.
pub const SET_TIMER_OP_FALLBACK_NS: u64 = 100_000_000;

/// Longest period `VCPUOP_set_periodic_timer` accepts: Xen's `STIME_DELTA_MAX`, 2^62 − 1 ns
/// (chosen so that `now + period` cannot overflow).
pub const PERIODIC_TIMER_MAX_NS: u64 = (1 << 62) - 1;

/// What a timer hypercall asks of the vCPU's single-shot timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerAction {
    /// Disarm the timer.
    Cancel,
    /// Arm the timer for this absolute deadline (a deadline in the past fires at once).
    Arm(u64),
}

/// The effect of `set_timer_op(timeout)` at system time `now`, as Xen 4.17's
/// `do_set_timer_op` decides it:
/// - `0` cancels the single-shot timer;
/// - a negative timeout (bit 63 set, as the hypercall's argument is signed), or one at least
///   2^50 ns ahead of `now`, arms it for `now + 100 ms` instead (Xen's workaround for Linux
///   jiffies wrap, which also keeps old guests that pass "never" from spinning);
/// - anything else, including a time in the past, arms it for `timeout` as given.
pub fn set_timer_op_action(timeout: u64, now: u64) -> TimerAction {
    if timeout == 0 {
        return TimerAction::Cancel;
    }
    let negative = i64::try_from(timeout).is_err();
    let too_far = timeout.saturating_sub(now) >= SET_TIMER_OP_MAX_AHEAD_NS;
    if negative || too_far {
        TimerAction::Arm(now.saturating_add(SET_TIMER_OP_FALLBACK_NS))
    } else {
        TimerAction::Arm(timeout)
    }
}

/// The deadline `VCPUOP_set_singleshot_timer` arms, as Xen 4.17 (since 4.17.2, which took
/// upstream's change) decides it: the deadline is used as given, and a past one fires at once.
/// `VCPU_SSHOTTMR_future` no longer makes a past deadline fail with `-ETIME` (real Xen 4.17.7
/// returns 0 and fires), and `0` is just a time in the past, not a cancel.
///
/// # Errors
///
/// None today; the `Result` keeps the hypercall's shape.
pub fn singleshot_deadline(timeout_abs_ns: u64, _flags: u32, _now: u64) -> Result<u64, Errno> {
    Ok(timeout_abs_ns)
}

/// Checks a `VCPUOP_set_periodic_timer` period the way Xen does: at least 1 ms and at most
/// [`PERIODIC_TIMER_MAX_NS`].
///
/// # Errors
///
/// [`Errno::Einval`] for a period outside that range (including 0).
pub fn periodic_period(period_ns: u64) -> Result<u64, Errno> {
    if (VCPU_PERIODIC_TIMER_MIN_NS..=PERIODIC_TIMER_MAX_NS).contains(&period_ns) {
        Ok(period_ns)
    } else {
        Err(Errno::Einval)
    }
}

/// The first deadline of the grid `last + k * period` (k ≥ 1) that lies strictly after `now`:
/// a periodic timer's next deadline, skipping every period missed during a gap (one event
/// for the whole gap instead of a burst), without drifting from its original phase. Saturates
/// at `u64::MAX`; a zero period yields `u64::MAX` (never).
pub fn next_periodic_deadline(last: u64, period: u64, now: u64) -> u64 {
    if period == 0 {
        return u64::MAX;
    }
    let first = last.saturating_add(period);
    if first > now {
        return first;
    }
    // `now >= first > last`: the number of whole periods from `last` to `now`, plus one.
    let periods = (now - last) / period + 1;
    let offset = u128::from(periods) * u128::from(period);
    u64::try_from(u128::from(last) + offset).unwrap_or(u64::MAX)
}

/// A vCPU's periodic timer: its period and the deadline it is armed for.
///
/// Xen 4.17 re-anchors the period on the time the event was delivered (`now + period`), so
/// late deliveries make it drift; this one keeps the phase it was started with and skips the
/// periods it missed (see [`next_periodic_deadline`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeriodicTimer {
    /// The period in ns; 0 = stopped.
    period: u64,
    /// The next deadline (meaningless while stopped).
    next: u64,
}

impl PeriodicTimer {
    /// A stopped timer.
    pub const fn stopped() -> Self {
        Self { period: 0, next: 0 }
    }

    /// A timer started at `now` with `period` (validate it with [`periodic_period`] first):
    /// its first deadline is `now + period`, as in Xen. A zero period gives a stopped timer.
    pub fn start(period: u64, now: u64) -> Self {
        if period == 0 {
            return Self::stopped();
        }
        Self {
            period,
            next: now.saturating_add(period),
        }
    }

    /// The period in ns, 0 when stopped.
    pub fn period(&self) -> u64 {
        self.period
    }

    /// Whether the timer is running.
    pub fn is_running(&self) -> bool {
        self.period != 0
    }

    /// The deadline the timer is armed for, `None` when stopped.
    pub fn next_deadline(&self) -> Option<u64> {
        self.is_running().then_some(self.next)
    }

    /// If the deadline has been reached at `now`, advances it past `now` (skipping missed
    /// periods) and returns `true`: the caller delivers one timer event and re-arms for
    /// [`Self::next_deadline`]. Returns `false` if stopped or not yet due.
    pub fn expire(&mut self, now: u64) -> bool {
        if !self.is_running() || self.next > now {
            return false;
        }
        self.next = next_periodic_deadline(self.next, self.period, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    enum Key {
        Singleshot(u32),
        Periodic(u32),
        Sched(usize),
    }

    fn drain(q: &mut TimerQueue<Key>, now: u64) -> alloc::vec::Vec<(Key, u64)> {
        core::iter::from_fn(|| q.pop_expired(now)).collect()
    }

    #[test]
    fn empty_queue() {
        let mut q = TimerQueue::<Key>::new();
        assert!(q.is_empty());
        assert_eq!(q.len(), 0);
        assert_eq!(q.next_deadline(), None);
        assert_eq!(q.pop_expired(u64::MAX), None);
        assert_eq!(q.cancel(Key::Sched(0)), None);
        assert_eq!(q.deadline(Key::Sched(0)), None);
    }

    #[test]
    fn expires_in_deadline_order() {
        let mut q = TimerQueue::new();
        q.set(Key::Sched(0), 30);
        q.set(Key::Singleshot(1), 10);
        q.set(Key::Periodic(1), 20);
        q.set(Key::Singleshot(2), 40);
        assert_eq!(q.len(), 4);
        assert_eq!(q.next_deadline(), Some(10));
        assert_eq!(q.pop_expired(9), None);
        assert_eq!(
            drain(&mut q, 30),
            [
                (Key::Singleshot(1), 10),
                (Key::Periodic(1), 20),
                (Key::Sched(0), 30)
            ]
        );
        assert_eq!(q.next_deadline(), Some(40));
        assert_eq!(q.deadline(Key::Singleshot(2)), Some(40));
        assert_eq!(q.deadline(Key::Sched(0)), None);
    }

    #[test]
    fn equal_deadlines_expire_in_arming_order() {
        let mut q = TimerQueue::new();
        q.set(Key::Sched(3), 5);
        q.set(Key::Singleshot(0), 5);
        q.set(Key::Periodic(9), 5);
        assert_eq!(
            drain(&mut q, 5),
            [
                (Key::Sched(3), 5),
                (Key::Singleshot(0), 5),
                (Key::Periodic(9), 5)
            ]
        );
    }

    #[test]
    fn set_replaces_the_same_key() {
        let mut q = TimerQueue::new();
        assert_eq!(q.set(Key::Singleshot(1), 100), None);
        assert_eq!(q.set(Key::Singleshot(1), 50), Some(100));
        assert_eq!(q.len(), 1);
        assert_eq!(q.deadline(Key::Singleshot(1)), Some(50));
        // Moved later again: the old (earlier) entry must not linger.
        assert_eq!(q.set(Key::Singleshot(1), 200), Some(50));
        assert_eq!(q.next_deadline(), Some(200));
        assert_eq!(q.pop_expired(199), None);
        assert_eq!(drain(&mut q, 1000), [(Key::Singleshot(1), 200)]);
        assert!(q.is_empty());
    }

    #[test]
    fn cancel_removes_only_that_key() {
        let mut q = TimerQueue::new();
        q.set(Key::Singleshot(1), 10);
        q.set(Key::Singleshot(2), 10);
        assert_eq!(q.cancel(Key::Singleshot(1)), Some(10));
        assert_eq!(q.cancel(Key::Singleshot(1)), None);
        assert_eq!(drain(&mut q, 10), [(Key::Singleshot(2), 10)]);
    }

    #[test]
    fn retain_drops_a_group_of_keys() {
        let mut q = TimerQueue::new();
        for v in 0..4 {
            q.set(Key::Singleshot(v), u64::from(v));
            q.set(Key::Periodic(v), 100 + u64::from(v));
        }
        q.set(Key::Sched(0), 50);
        let dropped = q.retain(|k| !matches!(k, Key::Singleshot(v) | Key::Periodic(v) if v >= 2));
        assert_eq!(dropped, 4);
        assert_eq!(q.len(), 5);
        let keys: alloc::vec::Vec<Key> = drain(&mut q, u64::MAX).into_iter().map(|e| e.0).collect();
        assert_eq!(
            keys,
            [
                Key::Singleshot(0),
                Key::Singleshot(1),
                Key::Sched(0),
                Key::Periodic(0),
                Key::Periodic(1)
            ]
        );
    }

    #[test]
    fn extreme_deadlines() {
        let mut q = TimerQueue::new();
        q.set(Key::Sched(0), u64::MAX);
        q.set(Key::Sched(1), 0);
        assert_eq!(q.pop_expired(0), Some((Key::Sched(1), 0)));
        assert_eq!(q.pop_expired(u64::MAX - 1), None);
        assert_eq!(q.pop_expired(u64::MAX), Some((Key::Sched(0), u64::MAX)));
    }

    #[test]
    fn many_timers_stay_consistent() {
        let mut q = TimerQueue::new();
        // A deterministic shuffle of deadlines, then re-arm half of them.
        for i in 0..1000u32 {
            q.set(Key::Singleshot(i), u64::from(i.wrapping_mul(7919) % 1000));
        }
        for i in (0..1000u32).step_by(2) {
            q.set(Key::Singleshot(i), 5000 + u64::from(i));
        }
        assert_eq!(q.len(), 1000);
        let all = drain(&mut q, u64::MAX);
        assert_eq!(all.len(), 1000);
        assert!(all.windows(2).all(|w| w[0].1 <= w[1].1));
        assert!(q.is_empty());
    }

    #[test]
    fn set_timer_op_zero_cancels() {
        assert_eq!(set_timer_op_action(0, 123), TimerAction::Cancel);
    }

    #[test]
    fn set_timer_op_plain_and_past_deadlines() {
        let now = 5_000 * MS;
        assert_eq!(
            set_timer_op_action(now + MS, now),
            TimerAction::Arm(now + MS)
        );
        // The past fires at once: Xen arms it as given.
        assert_eq!(set_timer_op_action(1, now), TimerAction::Arm(1));
        assert_eq!(set_timer_op_action(now, now), TimerAction::Arm(now));
    }

    #[test]
    fn set_timer_op_negative_and_far_future() {
        let now = 5_000 * MS;
        let fallback = TimerAction::Arm(now + 100 * MS);
        assert_eq!(set_timer_op_action(u64::MAX, now), fallback); // -1
        assert_eq!(set_timer_op_action(1 << 63, now), fallback); // i64::MIN
        // Exactly 2^50 ahead is already "too far" (Xen tests `offset >> 50 != 0`).
        assert_eq!(set_timer_op_action(now + (1 << 50), now), fallback);
        assert_eq!(
            set_timer_op_action(now + (1 << 50) - 1, now),
            TimerAction::Arm(now + (1 << 50) - 1)
        );
        // Largest positive s_time_t.
        assert_eq!(set_timer_op_action(i64::MAX as u64, now), fallback);
        // A `now` near the end of time does not overflow.
        assert_eq!(
            set_timer_op_action(u64::MAX, u64::MAX - 1),
            TimerAction::Arm(u64::MAX)
        );
    }

    #[test]
    fn singleshot_future_flag_is_ignored() {
        use hypercall_abi::vcpu::VCPU_SSHOTTMR_FUTURE;
        let now = 1_000;
        // Xen 4.17.7 ignores VCPU_SSHOTTMR_future: a past deadline fires at once.
        assert_eq!(singleshot_deadline(999, VCPU_SSHOTTMR_FUTURE, now), Ok(999));
        assert_eq!(singleshot_deadline(0, VCPU_SSHOTTMR_FUTURE, now), Ok(0));
        assert_eq!(
            singleshot_deadline(2_000, VCPU_SSHOTTMR_FUTURE, now),
            Ok(2_000)
        );
        assert_eq!(singleshot_deadline(999, 0, now), Ok(999));
        assert_eq!(singleshot_deadline(u64::MAX, u32::MAX, now), Ok(u64::MAX));
    }

    #[test]
    fn periodic_period_limits() {
        assert_eq!(periodic_period(0), Err(Errno::Einval));
        assert_eq!(periodic_period(MS - 1), Err(Errno::Einval));
        assert_eq!(periodic_period(MS), Ok(MS));
        assert_eq!(periodic_period(10 * MS), Ok(10 * MS));
        assert_eq!(
            periodic_period(PERIODIC_TIMER_MAX_NS),
            Ok(PERIODIC_TIMER_MAX_NS)
        );
        assert_eq!(
            periodic_period(PERIODIC_TIMER_MAX_NS + 1),
            Err(Errno::Einval)
        );
        assert_eq!(periodic_period(u64::MAX), Err(Errno::Einval));
    }

    #[test]
    fn periodic_next_deadline_keeps_phase() {
        // On time.
        assert_eq!(next_periodic_deadline(100, 10, 105), 110);
        // Exactly at a grid point: strictly after now.
        assert_eq!(next_periodic_deadline(100, 10, 110), 120);
        // Late by a fraction of a period: same grid, no drift.
        assert_eq!(next_periodic_deadline(100, 10, 113), 120);
        // A long gap: skip the missed periods, stay on the grid.
        assert_eq!(next_periodic_deadline(100, 10, 1_000_005), 1_000_010);
        // Time went backwards: the next grid point after `last`.
        assert_eq!(next_periodic_deadline(100, 10, 50), 110);
        // Degenerate inputs.
        assert_eq!(next_periodic_deadline(100, 0, 5), u64::MAX);
        assert_eq!(next_periodic_deadline(u64::MAX - 5, 10, u64::MAX), u64::MAX);
        assert_eq!(next_periodic_deadline(0, u64::MAX, u64::MAX - 1), u64::MAX);
        assert_eq!(
            next_periodic_deadline(0, u64::MAX / 2 + 1, u64::MAX - 1),
            u64::MAX
        );
    }

    #[test]
    fn periodic_timer_catches_up_without_a_storm() {
        let period = 10 * MS;
        let mut t = PeriodicTimer::start(period, 1_000 * MS);
        assert!(t.is_running());
        assert_eq!(t.period(), period);
        assert_eq!(t.next_deadline(), Some(1_010 * MS));
        assert!(!t.expire(1_009 * MS));

        // Delivered 3 ms late: the next deadline stays on the 10 ms grid.
        assert!(t.expire(1_013 * MS));
        assert_eq!(t.next_deadline(), Some(1_020 * MS));

        // A 5-second gap (vCPU descheduled): one event, then back on the grid.
        let mut events = 0;
        let now = 6_021 * MS;
        while t.expire(now) {
            events += 1;
        }
        assert_eq!(events, 1);
        assert_eq!(t.next_deadline(), Some(6_030 * MS));

        // Simulated run: a timer serviced with up to 2 ms of jitter fires once per period and
        // never drifts.
        let mut t = PeriodicTimer::start(period, 0);
        let mut fired = 0u64;
        let mut now = 0;
        while now < 1_000 * MS {
            let d = t.next_deadline().unwrap();
            now = d + (d / period % 3) * MS; // 0, 1 or 2 ms late
            if t.expire(now) {
                fired += 1;
            }
            assert_eq!(t.next_deadline().unwrap() % period, 0);
        }
        assert_eq!(fired, 100);
    }

    #[test]
    fn stopped_periodic_timer() {
        let mut t = PeriodicTimer::stopped();
        assert!(!t.is_running());
        assert_eq!(t.next_deadline(), None);
        assert!(!t.expire(u64::MAX));
        assert_eq!(PeriodicTimer::start(0, 5), PeriodicTimer::stopped());
        let mut t = PeriodicTimer::start(10, u64::MAX - 3);
        assert_eq!(t.next_deadline(), Some(u64::MAX));
        assert!(t.expire(u64::MAX));
        assert_eq!(t.next_deadline(), Some(u64::MAX));
    }
}
