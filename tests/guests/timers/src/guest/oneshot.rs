//! The single-shot timer: `set_timer_op` and `VCPUOP_set_singleshot_timer`, and
//! `SCHEDOP_block` (reference §12.1–§12.3).

use core::sync::atomic::{AtomicU32, Ordering};

use guest_support::{Checks, Name, info};
use pv_guest_kit::abi::errno::Errno;
use pv_guest_kit::abi::vcpu::VCPU_SSHOTTMR_FUTURE;
use pv_guest_kit::events::{self, Port};
use pv_guest_kit::hypercall::{evtchn as raw, sched, vcpu};
use pv_guest_kit::time;

use super::{ATTEMPTS, MS, arm_and_block, arm_and_wait, median, now, spin, ticks};

/// Runs of the accuracy measurement.
const RUNS: usize = 5;

/// Five `set_timer_op(now + 10 ms)` + block, by system time and by wallclock.
fn five_runs() -> ([u64; RUNS], [u64; RUNS]) {
    let mut by_system = [0u64; RUNS];
    let mut by_wall = [0u64; RUNS];
    for (sys, wall) in by_system.iter_mut().zip(by_wall.iter_mut()) {
        let mut w0 = time::wallclock().unwrap_or_default();
        let (t0, t1) = arm_and_block(|t0| {
            w0 = time::wallclock().unwrap_or_default();
            let _ = time::set_timer(t0 + 10 * MS);
        });
        let w1 = time::wallclock().unwrap_or_default();
        *sys = t1 - t0;
        *wall = w1.ns_since(w0);
    }
    (by_system, by_wall)
}

pub fn accuracy(c: &mut Checks) {
    let _ = time::stop_periodic(0);
    let mut early = 0;
    let (sys, wall) = c.timed(
        "set_timer_op(now + 10 ms) + SCHEDOP_block: woken after 10 ± 1 ms by system time and by \
         wallclock (medians of 5)",
        ATTEMPTS,
        || {
            let (mut by_system, mut by_wall) = five_runs();
            info(format_args!(
                "set_timer_op(now + 10 ms) + block, woken after (system time, ns): {by_system:?}"
            ));
            info(format_args!("the same by wallclock (ns): {by_wall:?}"));
            early += by_system.iter().filter(|&&t| t < 10 * MS).count();
            let sys = median(&mut by_system);
            let wall = median(&mut by_wall);
            let ok = (9 * MS..=11 * MS).contains(&sys) && (9 * MS..=11 * MS).contains(&wall);
            (ok, (sys, wall))
        },
    );
    info(format_args!(
        "timer accuracy: median {sys} ns by system time, {wall} ns by wallclock"
    ));
    c.eq("the timer never fired before its deadline", early, 0);
}

pub fn set_timer_op(c: &mut Checks) {
    let _ = time::stop_periodic(0);
    let before = ticks();
    c.eq(
        "set_timer_op(now + 5 ms): 0",
        time::set_timer(now() + 5 * MS),
        Ok(()),
    );
    c.eq("set_timer_op(0): 0", time::set_timer(0), Ok(()));
    c.eq(
        "set_timer_op(0) cancels the armed timer: no tick in 20 ms",
        {
            let _ = spin(20 * MS);
            ticks() - before
        },
        0,
    );

    let mut set = Ok(());
    let _ = c.timed(
        "set_timer_op(a deadline 1 ms past): 0, fires at once (< 2 ms)",
        ATTEMPTS,
        || {
            let (t0, t1) = arm_and_wait(|t0| set = time::set_timer(t0 - MS));
            (set.is_ok() && t1 - t0 < 2 * MS, (set, t1 - t0))
        },
    );

    for (deadline, what) in [
        (u64::MAX, "-1 (negative as s64)"),
        (1 << 51, "now + 2^51 ns"),
    ] {
        let mut set = Ok(());
        let (_, took) = c.timed(
            Name::of(format_args!(
                "set_timer_op({what}): 0, treated as a guest bug: fires after 100 ms (100-110 ms)"
            ))
            .as_str(),
            ATTEMPTS,
            || {
                let (t0, t1) = arm_and_wait(|t0| {
                    let deadline = if deadline == u64::MAX {
                        deadline
                    } else {
                        t0 + deadline
                    };
                    set = time::set_timer(deadline);
                });
                (
                    set.is_ok() && (100 * MS..110 * MS).contains(&(t1 - t0)),
                    (set, t1 - t0),
                )
            },
        );
        info(format_args!("set_timer_op({what}): tick after {took} ns"));
    }
}

pub fn singleshot(c: &mut Checks) {
    let _ = time::stop_periodic(0);
    let mut set = Ok(0);
    let (_, took) = c.timed(
        "VCPUOP_set_singleshot_timer(now + 10 ms, no flags): 0, fires after 10-11 ms",
        ATTEMPTS,
        || {
            let (t0, t1) = arm_and_wait(|t0| set = vcpu::set_singleshot_timer(0, t0 + 10 * MS, 0));
            (
                set == Ok(0) && (10 * MS..=11 * MS).contains(&(t1 - t0)),
                (set, t1 - t0),
            )
        },
    );
    info(format_args!(
        "VCPUOP_set_singleshot_timer(now + 10 ms): tick after {took} ns"
    ));
    let _ = c.timed(
        "VCPUOP_set_singleshot_timer(now + 5 ms, VCPU_SSHOTTMR_future): 0, fires after 5-6 ms",
        ATTEMPTS,
        || {
            let (t0, t1) = arm_and_wait(|t0| {
                set = vcpu::set_singleshot_timer(0, t0 + 5 * MS, VCPU_SSHOTTMR_FUTURE);
            });
            (
                set == Ok(0) && (5 * MS..6 * MS).contains(&(t1 - t0)),
                (set, t1 - t0),
            )
        },
    );
    // The public header says a past deadline with VCPU_SSHOTTMR_future fails with -ETIME;
    // Xen 4.17.2 and later ignore the flag (Linux used it wrongly) and fire at once.
    for (deadline, what) in [(1u64, "system time 1 ns"), (0, "now - 1 ms")] {
        let (_, took) = c.timed(
            Name::of(format_args!(
                "VCPUOP_set_singleshot_timer({what}, VCPU_SSHOTTMR_future): 0 (the flag is \
                 ignored), fires at once"
            ))
            .as_str(),
            ATTEMPTS,
            || {
                let (t0, t1) = arm_and_wait(|t0| {
                    let deadline = if deadline == 0 { t0 - MS } else { deadline };
                    set = vcpu::set_singleshot_timer(0, deadline, VCPU_SSHOTTMR_FUTURE);
                });
                (set == Ok(0) && t1 - t0 < 2 * MS, (set, t1 - t0))
            },
        );
        info(format_args!(
            "VCPUOP_set_singleshot_timer({what}, VCPU_SSHOTTMR_future): tick after {took} ns"
        ));
    }
    let _ = c.timed(
        "VCPUOP_set_singleshot_timer(1 ms past, no flags): 0, fires at once",
        ATTEMPTS,
        || {
            let (t0, t1) = arm_and_wait(|t0| set = vcpu::set_singleshot_timer(0, t0 - MS, 0));
            (set == Ok(0) && t1 - t0 < 2 * MS, (set, t1 - t0))
        },
    );
    let before = ticks();
    c.eq(
        "VCPUOP_set_singleshot_timer(now + 5 ms) then VCPUOP_stop_singleshot_timer: 0, 0",
        (
            time::set_singleshot(now() + 5 * MS, false),
            time::stop_singleshot(),
        ),
        (Ok(()), Ok(())),
    );
    c.eq(
        "stop_singleshot_timer cancels it: no tick in 15 ms",
        {
            let _ = spin(15 * MS);
            ticks() - before
        },
        0,
    );
    let before = ticks();
    let _ = time::set_singleshot(now() + 5 * MS, false);
    c.eq(
        "set_timer_op(0) also cancels a VCPUOP single-shot timer (they are one timer)",
        time::set_timer(0),
        Ok(()),
    );
    c.eq(
        "... no tick in 15 ms",
        {
            let _ = spin(15 * MS);
            ticks() - before
        },
        0,
    );
    let before = ticks();
    let _ = time::set_timer(now() + 5 * MS);
    c.eq(
        "VCPUOP_stop_singleshot_timer cancels a set_timer_op timer: 0",
        time::stop_singleshot(),
        Ok(()),
    );
    c.eq(
        "... no tick in 15 ms",
        {
            let _ = spin(15 * MS);
            ticks() - before
        },
        0,
    );
    for vcpu_id in [1u32, 9999] {
        let r = vcpu::set_singleshot_timer(vcpu_id, now() + MS, 0);
        info(format_args!(
            "VCPUOP_set_singleshot_timer(vCPU {vcpu_id}, none such): {r:?}"
        ));
        c.eq(
            Name::of(format_args!(
                "VCPUOP_set_singleshot_timer(vCPU {vcpu_id}, none such): -ENOENT"
            ))
            .as_str(),
            r,
            Err(Errno::Enoent),
        );
        c.eq(
            Name::of(format_args!(
                "VCPUOP_stop_singleshot_timer(vCPU {vcpu_id}, none such): -ENOENT"
            ))
            .as_str(),
            vcpu::stop_singleshot_timer(vcpu_id),
            Err(Errno::Enoent),
        );
    }
}

static IPI: AtomicU32 = AtomicU32::new(0);

fn on_ipi(_: Port) {
    IPI.fetch_add(1, Ordering::SeqCst);
}

pub fn block(c: &mut Checks) {
    let _ = time::stop_periodic(0);
    let Ok(ipi) = events::bind_ipi(0, on_ipi) else {
        c.fail("block: bind_ipi(0)", format_args!("failed"));
        return;
    };
    let was_enabled = events::disable();
    let _ = c.timed(
        "SCHEDOP_block with an event pending: 0 at once (< 1 ms), its handler run on the way out, \
         events enabled",
        ATTEMPTS,
        || {
            let calls = IPI.load(Ordering::SeqCst);
            let _ = events::disable();
            let _ = raw::send(ipi);
            let t0 = now();
            let blocked = sched::block();
            let t1 = now();
            let enabled = events::are_enabled();
            let ran = IPI.load(Ordering::SeqCst) - calls;
            (
                blocked == Ok(0) && t1 - t0 < MS && ran == 1 && enabled,
                (blocked, t1 - t0, ran, enabled),
            )
        },
    );
    let _ = c.timed(
        "SCHEDOP_block with events masked and a timer 5 ms ahead: 0, sleeps 5-6 ms, woken by \
         the tick",
        ATTEMPTS,
        || {
            let _ = events::disable();
            let before = ticks();
            let t0 = now();
            let _ = time::set_timer(t0 + 5 * MS);
            let blocked = sched::block();
            let t1 = now();
            let got = ticks() - before;
            (
                blocked == Ok(0) && (5 * MS..6 * MS).contains(&(t1 - t0)) && got == 1,
                (blocked, t1 - t0, got),
            )
        },
    );
    events::restore(was_enabled);

    let (_, took) = c.timed("time::sleep_ns(20 ms): 20-21 ms", ATTEMPTS, || {
        let t0 = now();
        let slept = time::sleep_ns(20 * MS);
        let took = now() - t0;
        (
            slept.is_ok() && (20 * MS..21 * MS).contains(&took),
            (slept, took),
        )
    });
    info(format_args!("time::sleep_ns(20 ms) took {took} ns"));
    let _ = c.timed(
        "time::wait_until(a condition already true): true at once",
        ATTEMPTS,
        || {
            let t0 = now();
            let met = time::wait_until(|| true, Some(t0 + 50 * MS));
            (met == Ok(true) && now() - t0 < MS, (met, now() - t0))
        },
    );
    let _ = c.timed(
        "time::wait_until(never true, 5 ms): false after 5-6 ms",
        ATTEMPTS,
        || {
            let t0 = now();
            let met = time::wait_until(|| false, Some(t0 + 5 * MS));
            let took = now() - t0;
            (
                met == Ok(false) && (5 * MS..6 * MS).contains(&took),
                (met, took),
            )
        },
    );
    let _ = events::close(ipi);
}
