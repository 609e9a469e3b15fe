//! vCPU 0's runstate (reference §12.3).

use guest_support::{Checks, info};
use pv_guest_kit::abi::errno::Errno;
use pv_guest_kit::abi::vcpu::{RUNSTATE_BLOCKED, RUNSTATE_RUNNING, VcpuRunstateInfo};
use pv_guest_kit::time;
use pv_guest_kit::vcpus::{self, RunstateArea};

use super::{ATTEMPTS, MS, now, spin};

static AREA: RunstateArea = RunstateArea::new();

fn show(what: &str, r: &VcpuRunstateInfo) {
    info(format_args!(
        "runstate {what}: state {} entered at {} ns; running {} runnable {} blocked {} offline {}",
        r.state, r.state_entry_time, r.time[0], r.time[1], r.time[2], r.time[3]
    ));
}

pub fn runstate(c: &mut Checks) {
    let Ok(r1) = vcpus::runstate(0) else {
        c.fail("VCPUOP_get_runstate_info(0)", format_args!("failed"));
        return;
    };
    show("at start", &r1);
    c.eq(
        "VCPUOP_get_runstate_info(0): vCPU 0 is running",
        r1.state,
        RUNSTATE_RUNNING,
    );
    c.check(
        "... it entered that state in the past",
        r1.state_entry_time <= now(),
        format_args!("{} > now", r1.state_entry_time),
    );
    let r2 = c.timed(
        "running time (up to now, for the calling vCPU) grows by the 20 ms spun (20-21 ms)",
        ATTEMPTS,
        || {
            let before = vcpus::runstate(0).unwrap_or_default();
            let _ = spin(20 * MS);
            let after = vcpus::runstate(0).unwrap_or_default();
            let running = after.time[0].saturating_sub(before.time[0]);
            ((20 * MS..21 * MS).contains(&running), after)
        },
    );
    let slept = c.timed(
        "blocked time grows by the 30 ms slept (30-31 ms)",
        ATTEMPTS,
        || {
            let before = vcpus::runstate(0).unwrap_or_default();
            let _ = time::sleep_ns(30 * MS);
            let after = vcpus::runstate(0).unwrap_or_default();
            let blocked = after.time[2].saturating_sub(before.time[2]);
            ((30 * MS..31 * MS).contains(&blocked), blocked)
        },
    );
    info(format_args!(
        "blocked time across a 30 ms sleep: +{slept} ns"
    ));
    let r3 = vcpus::runstate(0).unwrap_or_default();
    show("after a 30 ms sleep", &r3);
    c.check(
        "running time only grows",
        r3.time[0] >= r2.time[0],
        format_args!("{} < {}", r3.time[0], r2.time[0]),
    );
    c.eq(
        "the runstate says running when read by the running vCPU",
        r3.state,
        RUNSTATE_RUNNING,
    );
    c.eq(
        "VCPUOP_get_runstate_info(vCPU 9999): -ENOENT",
        vcpus::runstate(9999).map(|r| r.state),
        Err(Errno::Enoent),
    );
    c.eq(
        "VCPUOP_get_runstate_info(vCPU 1, none such): -ENOENT",
        vcpus::runstate(1).map(|r| r.state),
        Err(Errno::Enoent),
    );

    c.eq(
        "VCPUOP_register_runstate_memory_area(0): 0",
        vcpus::register_runstate_area(0, &AREA),
        Ok(()),
    );
    let a1 = AREA.read();
    show("in the registered area", &a1);
    c.eq(
        "the area is filled at once: running",
        a1.state,
        RUNSTATE_RUNNING,
    );
    c.check(
        "the area holds the times as of the last state change (the hypercall adds the time \
         in the current state)",
        a1.state_entry_time == r3.state_entry_time
            && a1.time[2] == r3.time[2]
            && a1.time[0] <= r3.time[0],
        format_args!("{a1:?} vs {r3:?}"),
    );
    let _ = time::sleep_ns(10 * MS);
    let a2 = AREA.read();
    let blocked = a2.time[2].saturating_sub(a1.time[2]);
    c.check(
        "Xen keeps the area up to date: blocked time grew by the 10 ms slept",
        blocked >= 10 * MS,
        format_args!("+{blocked} ns"),
    );
    c.check(
        "the area matches VCPUOP_get_runstate_info",
        vcpus::runstate(0).is_ok_and(|r| r.time[2] == a2.time[2]),
        format_args!("{:?}", a2.time),
    );
    c.check(
        "a blocked state never shows in the area read while running",
        a2.state != RUNSTATE_BLOCKED,
        format_args!("state {}", a2.state),
    );
}
