//! Runstate bookkeeping: which of Xen's four states a vCPU is in, since when, and how long it
//! has spent in each, exactly as Xen reports them in `vcpu_runstate_info`.

use hypercall_abi::vcpu::{Runstate, VcpuRunstateInfo};

/// A vCPU's runstate record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct RunstateRecord {
    /// The current state.
    state: Runstate,
    /// System time of the last state change that moved time forward.
    entry: u64,
    /// Cumulative ns per state, indexed by [`index`].
    time: [u64; 4],
}

/// The slot of `state` in `time[]` (its `RUNSTATE_*` number).
const fn index(state: Runstate) -> usize {
    match state {
        Runstate::Running => 0,
        Runstate::Runnable => 1,
        Runstate::Blocked => 2,
        Runstate::Offline => 3,
    }
}

impl RunstateRecord {
    /// A record that entered `state` at `now`, with no time accumulated.
    pub(super) const fn new(state: Runstate, now: u64) -> Self {
        Self {
            state,
            entry: now,
            time: [0; 4],
        }
    }

    /// Moves to `new` at `now`, crediting the time since the last change to the old state.
    ///
    /// As in Xen's `vcpu_runstate_change`, the entry time only moves forward: a change at or
    /// before the recorded entry time switches the state without accounting any time.
    pub(super) fn change(&mut self, new: Runstate, now: u64) {
        if self.state == new {
            return;
        }
        if now > self.entry {
            let slot = &mut self.time[index(self.state)];
            *slot = slot.saturating_add(now - self.entry);
            self.entry = now;
        }
        self.state = new;
    }

    /// The guest-visible record at `now`: the current state's time includes the time spent in
    /// it up to `now` (Xen's `vcpu_runstate_get`), without changing the record.
    pub(super) fn info(&self, now: u64) -> VcpuRunstateInfo {
        let mut time = self.time;
        if now > self.entry {
            let slot = &mut time[index(self.state)];
            *slot = slot.saturating_add(now - self.entry);
        }
        VcpuRunstateInfo {
            state: self.state.raw(),
            _pad0: 0,
            state_entry_time: self.entry,
            time,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hypercall_abi::vcpu::{RUNSTATE_BLOCKED, RUNSTATE_OFFLINE, RUNSTATE_RUNNING};

    #[test]
    fn slots_match_the_abi_numbers() {
        for &s in Runstate::ALL {
            assert_eq!(index(s), usize::try_from(s.raw()).unwrap());
        }
    }

    #[test]
    fn accumulates_per_state() {
        let mut r = RunstateRecord::new(Runstate::Offline, 100);
        r.change(Runstate::Runnable, 150);
        r.change(Runstate::Running, 170);
        r.change(Runstate::Blocked, 200);
        let info = r.info(260);
        assert_eq!(info.state, RUNSTATE_BLOCKED);
        assert_eq!(info.state_entry_time, 200);
        assert_eq!(info.time, [30, 20, 60, 50]);
        assert_eq!(info.time.iter().sum::<u64>(), 260 - 100);
        // Reading does not change the record.
        assert_eq!(r.info(200).time, [30, 20, 0, 50]);
    }

    #[test]
    fn same_state_is_a_no_op() {
        let mut r = RunstateRecord::new(Runstate::Running, 10);
        r.change(Runstate::Running, 50);
        let info = r.info(50);
        assert_eq!(info.state_entry_time, 10);
        assert_eq!(info.time[0], 40);
    }

    #[test]
    fn time_going_backwards_accounts_nothing() {
        let mut r = RunstateRecord::new(Runstate::Running, 1_000);
        r.change(Runstate::Offline, 900);
        let info = r.info(800);
        assert_eq!(info.state, RUNSTATE_OFFLINE);
        assert_eq!(info.state_entry_time, 1_000);
        assert_eq!(info.time, [0; 4]);
        r.change(Runstate::Running, 1_100);
        let info = r.info(1_100);
        assert_eq!(info.state, RUNSTATE_RUNNING);
        assert_eq!(info.time, [0, 0, 0, 100]);
    }

    #[test]
    fn saturates_at_the_end_of_time() {
        let mut r = RunstateRecord::new(Runstate::Running, 0);
        r.change(Runstate::Blocked, u64::MAX);
        r.change(Runstate::Running, u64::MAX);
        assert_eq!(r.info(u64::MAX).time[0], u64::MAX);
    }
}
