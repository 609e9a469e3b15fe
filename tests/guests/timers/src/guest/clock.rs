//! `vcpu_time_info` and the wallclock (reference §6.4–§6.5).

use guest_support::{Checks, info};
use pv_guest_kit::abi::shared_info::{NS_PER_SEC, XEN_PVCLOCK_TSC_STABLE_BIT};
use pv_guest_kit::arch::shared;
use pv_guest_kit::pvclock::UNIX_2020;
use pv_guest_kit::time;

use super::{MS, now};

pub fn records(c: &mut Checks) {
    let Ok(vcpu) = shared::vcpu0() else {
        c.fail("vcpu_info of vCPU 0", format_args!("no shared_info"));
        return;
    };
    let (first, _) = vcpu.time_sample_counted();
    let r = first.record;
    let scale = r.scale();
    info(format_args!(
        "vcpu_time_info: version {} tsc_timestamp {} system_time {} mul {:#x} shift {} flags {:#x} \
         (TSC {} Hz)",
        r.version,
        r.tsc_timestamp,
        r.system_time,
        r.tsc_to_system_mul,
        r.tsc_shift,
        r.flags,
        scale.implied_hz()
    ));
    c.check(
        "vcpu_time_info: a non-zero TSC scale",
        r.tsc_to_system_mul != 0,
        format_args!("mul 0"),
    );
    c.check(
        "system time is positive and under an hour since boot",
        first.system_time_ns() > 0 && first.system_time_ns() < 3600 * NS_PER_SEC,
        format_args!("{} ns", first.system_time_ns()),
    );
    info(format_args!(
        "TSC_STABLE flag: {}",
        r.flags & XEN_PVCLOCK_TSC_STABLE_BIT != 0
    ));

    const READS: u32 = 100_000;
    let mut odd = 0u32;
    let mut retries = 0u32;
    let mut backwards = 0u32;
    let mut worst = 0u64;
    let mut versions = (u32::MAX, 0u32);
    let mut last = 0u64;
    for _ in 0..READS {
        let (sample, tries) = vcpu.time_sample_counted();
        retries += tries;
        if sample.record.version & 1 != 0 {
            odd += 1;
        }
        versions = (
            versions.0.min(sample.record.version),
            versions.1.max(sample.record.version),
        );
        let t = sample.system_time_ns();
        if t < last {
            backwards += 1;
            worst = worst.max(last - t);
        }
        last = t;
    }
    info(format_args!(
        "{READS} time reads: versions {}..={}, {retries} retried, {backwards} went backwards \
         (worst {worst} ns)",
        versions.0, versions.1
    ));
    c.eq(
        "100,000 consistent reads of vcpu_time_info: the version always even",
        odd,
        0,
    );
    c.eq(
        "system time never goes backwards over 100,000 reads",
        backwards,
        0,
    );
    c.check(
        "system time advanced over the reads",
        last > first.system_time_ns(),
        format_args!("{last} <= {}", first.system_time_ns()),
    );
}

pub fn wallclock(c: &mut Checks) {
    let (Ok(base), Ok(w)) = (time::wallclock_base(), time::wallclock()) else {
        c.fail("wallclock", format_args!("no shared_info"));
        return;
    };
    info(format_args!(
        "wallclock base (system time 0): {}.{:09} s; now {}.{:09} s since 1970",
        base.sec, base.nsec, w.sec, w.nsec
    ));
    c.check(
        "wallclock is after 2020-01-01",
        w.sec > UNIX_2020,
        format_args!("{} s", w.sec),
    );
    c.check(
        "wallclock is before 2100-01-01",
        w.sec < 4_102_444_800,
        format_args!("{} s", w.sec),
    );
    c.check(
        "wc_nsec below 10^9",
        base.nsec < 1_000_000_000,
        format_args!("{}", base.nsec),
    );
    let t0 = now();
    let w0 = time::wallclock().unwrap_or(w);
    let _ = time::sleep_ns(50 * MS);
    let t1 = now();
    let w1 = time::wallclock().unwrap_or(w);
    let sys = t1 - t0;
    let wall = w1.ns_since(w0);
    info(format_args!(
        "over a 50 ms sleep: system time +{sys} ns, wallclock +{wall} ns"
    ));
    c.check(
        "wallclock advances with system time (50 ms sleep: the two agree within 0.1 ms)",
        sys >= 50 * MS && wall.abs_diff(sys) < MS / 10,
        format_args!("system {sys} ns, wall {wall} ns"),
    );
    c.eq(
        "the wallclock base did not move",
        time::wallclock_base().ok(),
        Some(base),
    );
}
