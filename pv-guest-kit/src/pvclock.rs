//! Reading Xen's clocks: the version protocol and the arithmetic (reference §6.4–§6.5).
//!
//! The hypervisor publishes time in two records it may rewrite at any moment: each vCPU's
//! `vcpu_time_info` (system time) and `shared_info`'s wallclock. Both follow the same protocol:
//! the writer makes the version odd, updates the fields, and makes it even again. A reader
//! ([`read_consistent`]) reads the version, the fields, and the version again, and retries
//! while the version was odd or changed. The bare-metal side ([`crate::time`]) supplies the
//! volatile reads; everything here is plain arithmetic, tested on the host.
//!
//! - System time (ns since Xen booted) = `system_time + scale(tsc - tsc_timestamp)`
//!   ([`VcpuTimeInfo::system_time_at`], from the ABI crate).
//! - Wall time = the wallclock base (the Unix time at system time 0) + system time
//!   ([`Wallclock::add_ns`]).

use hypercall_abi::shared_info::{NS_PER_SEC, VcpuTimeInfo};

/// A value read under the version protocol, and how many times the read was retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Consistent<T> {
    /// The value, read while the version stayed even and unchanged.
    pub value: T,
    /// The version it was read at.
    pub version: u32,
    /// How many reads were thrown away (the version was odd or changed under the reader).
    pub retries: u32,
}

/// Reads a record protected by a version counter (reference §6.4, §6.5): `version` reads the
/// counter (with whatever barrier the platform needs after it), `read` reads the fields. The
/// read is retried until the version was even before it and unchanged after it.
///
/// ```
/// use core::cell::Cell;
/// use pv_guest_kit::pvclock::read_consistent;
///
/// // The writer is half-way through an update the first time (version 3), done the second.
/// let versions = [3, 4, 4];
/// let i = Cell::new(0);
/// let got = read_consistent(
///     || { let v = versions[i.get()]; i.set(i.get() + 1); v },
///     || "fields",
/// );
/// assert_eq!((got.value, got.version, got.retries), ("fields", 4, 1));
/// ```
pub fn read_consistent<T>(
    mut version: impl FnMut() -> u32,
    mut read: impl FnMut() -> T,
) -> Consistent<T> {
    let mut retries = 0u32;
    loop {
        let before = version();
        if before & 1 == 0 {
            let value = read();
            if version() == before {
                return Consistent {
                    value,
                    version: before,
                    retries,
                };
            }
        }
        retries = retries.saturating_add(1);
    }
}

/// A `vcpu_time_info` snapshot together with the TSC read inside the same consistent read,
/// which is what system time is computed from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeSample {
    /// The record.
    pub record: VcpuTimeInfo,
    /// The TSC, read after the record's fields and before the version was checked again.
    pub tsc: u64,
}

impl TimeSample {
    /// The system time this sample names, in ns.
    pub fn system_time_ns(&self) -> u64 {
        self.record.system_time_at(self.tsc)
    }
}

/// A point in wall-clock time: seconds and nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Wallclock {
    /// Whole seconds since 1970-01-01 00:00:00 UTC.
    pub sec: u64,
    /// Nanoseconds, below 10^9 once [normalised](Wallclock::new).
    pub nsec: u32,
}

impl Wallclock {
    /// A wallclock value, carrying surplus nanoseconds into the seconds.
    pub fn new(sec: u64, nsec: u32) -> Wallclock {
        let nsec = u64::from(nsec);
        Wallclock {
            sec: sec.saturating_add(nsec / NS_PER_SEC),
            nsec: u32::try_from(nsec % NS_PER_SEC).unwrap_or(0),
        }
    }

    /// The `shared_info` fields as Xen stores them: `wc_sec` (low 32 bits), `wc_sec_hi` (high
    /// 32 bits) and `wc_nsec`.
    pub fn from_shared_info(wc_sec: u32, wc_sec_hi: u32, wc_nsec: u32) -> Wallclock {
        Wallclock::new(u64::from(wc_sec_hi) << 32 | u64::from(wc_sec), wc_nsec)
    }

    /// This time plus `ns` nanoseconds (saturating at the end of `u64` seconds).
    #[must_use]
    pub fn add_ns(self, ns: u64) -> Wallclock {
        let total = u64::from(self.nsec) + ns % NS_PER_SEC;
        Wallclock {
            sec: self
                .sec
                .saturating_add(ns / NS_PER_SEC)
                .saturating_add(total / NS_PER_SEC),
            nsec: u32::try_from(total % NS_PER_SEC).unwrap_or(0),
        }
    }

    /// Nanoseconds since the epoch (wide enough for any `sec`).
    pub fn as_ns(self) -> u128 {
        u128::from(self.sec) * u128::from(NS_PER_SEC) + u128::from(self.nsec)
    }

    /// Nanoseconds from `earlier` to `self`, 0 if `earlier` is later (saturating at `u64`).
    pub fn ns_since(self, earlier: Wallclock) -> u64 {
        u64::try_from(self.as_ns().saturating_sub(earlier.as_ns())).unwrap_or(u64::MAX)
    }
}

/// Seconds from the epoch to 2020-01-01 00:00:00 UTC: a lower bound for a plausible wallclock.
pub const UNIX_2020: u64 = 1_577_836_800;

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::Cell;

    /// A version counter that replays a script, and counts field reads.
    struct Script<'a> {
        versions: &'a [u32],
        at: Cell<usize>,
        reads: Cell<u32>,
    }

    impl<'a> Script<'a> {
        fn new(versions: &'a [u32]) -> Self {
            Script {
                versions,
                at: Cell::new(0),
                reads: Cell::new(0),
            }
        }

        fn version(&self) -> u32 {
            let v = self.versions[self.at.get()];
            self.at.set(self.at.get() + 1);
            v
        }

        fn read(&self) -> u32 {
            self.reads.set(self.reads.get() + 1);
            // The value read is the version seen just before it, so the test can tell which
            // attempt's fields were kept.
            self.versions[self.at.get() - 1]
        }
    }

    #[test]
    fn stable_record_is_read_once() {
        let s = Script::new(&[6, 6]);
        let got = read_consistent(|| s.version(), || s.read());
        assert_eq!((got.value, got.version, got.retries), (6, 6, 0));
        assert_eq!(s.reads.get(), 1);
    }

    #[test]
    fn odd_version_is_skipped_without_reading() {
        // Odd twice (writer busy), then stable at 8.
        let s = Script::new(&[7, 7, 8, 8]);
        let got = read_consistent(|| s.version(), || s.read());
        assert_eq!((got.value, got.version, got.retries), (8, 8, 2));
        assert_eq!(s.reads.get(), 1, "fields are not read under an odd version");
    }

    #[test]
    fn changed_version_discards_the_read() {
        // Even at 2 but 4 afterwards (a whole update slipped in), then 4 twice.
        let s = Script::new(&[2, 4, 4, 4]);
        let got = read_consistent(|| s.version(), || s.read());
        assert_eq!((got.value, got.version, got.retries), (4, 4, 1));
        assert_eq!(s.reads.get(), 2);
    }

    #[test]
    fn update_starting_during_the_read_is_caught() {
        // Even before, odd after (the writer started), then a clean read at 10.
        let s = Script::new(&[8, 9, 10, 10]);
        let got = read_consistent(|| s.version(), || s.read());
        assert_eq!((got.version, got.retries), (10, 1));
    }

    #[test]
    fn system_time_from_a_sample() {
        // 2 GHz: shift 0, mul 2^31 (half a ns per tick).
        let record = VcpuTimeInfo {
            version: 2,
            tsc_timestamp: 1_000_000,
            system_time: 5_000_000_000,
            tsc_to_system_mul: 1 << 31,
            tsc_shift: 0,
            ..VcpuTimeInfo::default()
        };
        let sample = TimeSample {
            record,
            tsc: 1_000_000 + 20_000_000,
        };
        assert_eq!(sample.system_time_ns(), 5_010_000_000);
        // A negative shift halves the delta first: 1 GHz TSC as (shift -1, mul 2^32 - 1).
        let record = VcpuTimeInfo {
            tsc_to_system_mul: u32::MAX,
            tsc_shift: -1,
            ..record
        };
        let sample = TimeSample {
            record,
            tsc: 1_000_000 + 2_000_000,
        };
        // 2e6 ticks >> 1 = 1e6, times (2^32-1)/2^32 = 999_999 (floor).
        assert_eq!(sample.system_time_ns(), 5_000_000_000 + 999_999);
    }

    #[test]
    fn wallclock_arithmetic() {
        let base = Wallclock::from_shared_info(0x6000_0000, 0, 900_000_000);
        assert_eq!(base.sec, 0x6000_0000);
        let later = base.add_ns(250_000_000);
        assert_eq!((later.sec, later.nsec), (0x6000_0001, 150_000_000));
        let much_later = base.add_ns(3 * NS_PER_SEC + 100_000_000);
        assert_eq!((much_later.sec, much_later.nsec), (0x6000_0004, 0));
        assert_eq!(much_later.ns_since(base), 3_100_000_000);
        assert_eq!(base.ns_since(much_later), 0);
        // The high word of the seconds.
        let hi = Wallclock::from_shared_info(5, 1, 0);
        assert_eq!(hi.sec, (1 << 32) + 5);
        // Surplus nanoseconds are carried.
        assert_eq!(
            Wallclock::new(1, 2_500_000_000),
            Wallclock::new(3, 500_000_000)
        );
        // Saturation instead of overflow.
        assert_eq!(Wallclock::new(u64::MAX, 0).add_ns(u64::MAX).sec, u64::MAX);
        assert!(Wallclock::new(UNIX_2020, 0) > Wallclock::new(UNIX_2020 - 1, 999_999_999));
    }
}
