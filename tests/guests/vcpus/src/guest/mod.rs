//! The checks. Expected values are what real Xen 4.17 (Debian's 4.17.7 release build, under
//! QEMU 10 TCG, one physical CPU) does for a PV dom0 booted with `dom0_max_vcpus=2` (or more:
//! every vCPU past 0 is brought up and runs [`secondary::entry`]; the IPI ping-pong is between
//! vCPUs 0 and 1). Measured numbers are printed as `INFO:` lines. Sleeps are checked for
//! working (at least as long as asked), not for accuracy: the `timers` guest does that.

mod pingpong;
#[allow(
    unsafe_code,
    reason = "vcpu_op with arguments Xen must refuse before reading them"
)]
mod raw;
mod secondary;

use core::sync::atomic::Ordering;

use guest_support::{Checks, Name, info};
use pv_guest_kit::abi::errno::Errno;
use pv_guest_kit::abi::vcpu::{RUNSTATE_BLOCKED, RUNSTATE_OFFLINE, RUNSTATE_RUNNING};
use pv_guest_kit::arch::shared;
use pv_guest_kit::events::{self, Port};
use pv_guest_kit::vcpus::{self, VcpuInfoArea};
use pv_guest_kit::{StartInfo, println, time, traps};

use secondary::{Command, INCREMENTS, NOTIFY, SHARED, state};

pv_guest_kit::guest_kernel!(main);

const MS: u64 = 1_000_000;

/// The vCPUs the domain has: `VCPUOP_is_up` answers for each, `-ENOENT` past the last.
fn count_vcpus() -> u32 {
    (0..32u32)
        .take_while(|&id| vcpus::is_up(id) != Err(Errno::Enoent))
        .count()
        .try_into()
        .unwrap_or(0)
}

/// Blocks vCPU 0 until `done()` or `ms` milliseconds passed; returns whether `done()` held.
fn wait(ms: u64, done: impl FnMut() -> bool) -> bool {
    let deadline = time::now_ns().unwrap_or(0) + ms * MS;
    time::wait_until(done, Some(deadline)).unwrap_or(false)
}

fn main(_si: StartInfo) -> ! {
    println!("vcpus: secondary vCPUs, IPIs between them, their timers and runstate");
    let mut c = Checks::new();
    c.eq("set_trap_table with the kit's stubs", traps::init(), Ok(0));
    c.eq("events::init", events::init(), Ok(()));
    c.check(
        "time::init on vCPU 0",
        time::init().is_ok(),
        format_args!("failed"),
    );
    events::enable();
    let n = count_vcpus();
    info(format_args!("dom0 has {n} vCPU(s)"));
    if n < 2 {
        c.fail(
            "dom0 has a second vCPU",
            format_args!("{n} vCPU(s): boot Xen with dom0_max_vcpus=2"),
        );
        c.finish();
    }
    before_start(&mut c, n);
    move_vcpu_info(&mut c);
    let kick1 = bring_up(&mut c, n);
    pingpong::run(&mut c);
    counting(&mut c, kick1);
    down_and_up(&mut c);
    move_own_vcpu_info(&mut c);
    raw::hostile(&mut c, n);
    for id in 1..n {
        let _ = vcpus::down(id);
    }
    c.finish()
}

fn before_start(c: &mut Checks, n: u32) {
    for id in 1..n {
        c.eq(
            Name::of(format_args!("VCPUOP_is_up({id}) before it was started: 0")).as_str(),
            vcpus::is_up(id),
            Ok(false),
        );
        c.eq(
            Name::of(format_args!(
                "runstate of vCPU {id} before it was started: offline"
            ))
            .as_str(),
            vcpus::runstate(id).map(|r| r.state),
            Ok(RUNSTATE_OFFLINE),
        );
    }
    c.eq(
        "VCPUOP_up(1) before VCPUOP_initialise: -EINVAL",
        vcpus::up(1),
        Err(Errno::Einval),
    );
    c.eq("VCPUOP_down(1), never started: 0", vcpus::down(1), Ok(()));
}

/// Moves vCPU 1's `vcpu_info` out of `shared_info` before it starts.
fn move_vcpu_info(c: &mut Checks) {
    extern crate alloc;
    let area: &'static mut VcpuInfoArea =
        alloc::boxed::Box::leak(alloc::boxed::Box::new(VcpuInfoArea::new()));
    let address = core::ptr::from_ref(area) as u64;
    let slot_mask = shared::vcpu_info(1).map(|v| v.upcall_mask());
    c.eq(
        "VCPUOP_register_vcpu_info(1) into a heap page while vCPU 1 is down: 0",
        vcpus::register_vcpu_info(1, area),
        Ok(()),
    );
    let moved = shared::vcpu_info(1);
    c.eq(
        "the kit now uses the new place for vCPU 1",
        moved.map(|v| v.address()),
        Ok(address),
    );
    if let Ok(v) = moved {
        info(format_args!(
            "moved vcpu_info of vCPU 1: mask {} pending {} selector {:#x} (slot mask was {slot_mask:?})",
            v.upcall_mask(),
            v.upcall_pending(),
            v.pending_sel()
        ));
        c.check(
            "Xen copied the slot (mask 1) and marked every selector bit and upcall_pending",
            v.upcall_mask() == 1 && v.upcall_pending() == 1 && v.pending_sel() == u64::MAX,
            format_args!(
                "mask {} pending {} sel {:#x}",
                v.upcall_mask(),
                v.upcall_pending(),
                v.pending_sel()
            ),
        );
        c.check(
            "the moved vcpu_info carries vCPU 1's time record",
            v.time().tsc_to_system_mul != 0,
            format_args!("{:?}", v.time()),
        );
    }
    let again: &'static mut VcpuInfoArea =
        alloc::boxed::Box::leak(alloc::boxed::Box::new(VcpuInfoArea::new()));
    c.eq(
        "VCPUOP_register_vcpu_info(1) a second time: -EINVAL",
        vcpus::register_vcpu_info(1, again),
        Err(Errno::Einval),
    );
}

/// Brings every secondary vCPU up; returns vCPU 1's kick port.
fn bring_up(c: &mut Checks, n: u32) -> Port {
    let kick1 = events::bind_ipi(1, secondary::on_kick).unwrap_or(0);
    let notify = events::bind_ipi(0, secondary::on_kick).unwrap_or(0);
    NOTIFY.store(notify, Ordering::SeqCst);
    for id in 1..n {
        c.eq(
            Name::of(format_args!(
                "vcpus::start({id}): VCPUOP_initialise + VCPUOP_up"
            ))
            .as_str(),
            vcpus::start(id, secondary::entry, vcpus::DEFAULT_STACK_SIZE),
            Ok(()),
        );
        c.eq(
            Name::of(format_args!("VCPUOP_is_up({id}) after VCPUOP_up: 1")).as_str(),
            vcpus::is_up(id),
            Ok(true),
        );
    }
    let all_started = wait(2000, || {
        (1..n).all(|id| state(id).slept_ns.load(Ordering::SeqCst) != 0)
    });
    c.check(
        "every secondary vCPU ran its entry function and slept on its own timer",
        all_started,
        format_args!("not within 2 s"),
    );
    for id in 1..n {
        let s = state(id);
        c.eq(
            Name::of(format_args!(
                "vCPU {id} knows its id (vcpus::current, GS base)"
            ))
            .as_str(),
            s.started.load(Ordering::SeqCst),
            id + 1,
        );
        let slept = s.slept_ns.load(Ordering::SeqCst);
        info(format_args!(
            "vCPU {id}: 5 ms sleep took {slept} ns, {} tick(s), VIRQ_TIMER port {}",
            s.sleep_ticks.load(Ordering::SeqCst),
            s.timer_port.load(Ordering::SeqCst)
        ));
        c.check(
            Name::of(format_args!(
                "vCPU {id}: a 5 ms sleep on its own VIRQ_TIMER (at least 5 ms, woken by a tick)"
            ))
            .as_str(),
            (5 * MS..100 * MS).contains(&slept) && s.sleep_ticks.load(Ordering::SeqCst) >= 1,
            format_args!("{slept} ns"),
        );
        let port = s.timer_port.load(Ordering::SeqCst);
        c.eq(
            Name::of(format_args!(
                "vCPU {id}'s VIRQ_TIMER port notifies vCPU {id}"
            ))
            .as_str(),
            events::status(port).map(|st| st.vcpu),
            Ok(id),
        );
        c.check(
            Name::of(format_args!("runstate of vCPU {id}: not offline")).as_str(),
            vcpus::runstate(id).is_ok_and(|r| r.state != RUNSTATE_OFFLINE),
            format_args!("{:?}", vcpus::runstate(id)),
        );
    }
    c.eq(
        "vCPU 0 still runs as vCPU 0",
        (vcpus::current(), vcpus::runstate(0).map(|r| r.state)),
        (0, Ok(RUNSTATE_RUNNING)),
    );
    let reinit = vcpus::initialise(1, secondary::entry, vcpus::DEFAULT_STACK_SIZE);
    c.eq(
        "VCPUOP_initialise(1) while it runs: -EEXIST",
        reinit,
        Err(Errno::Eexist),
    );
    c.eq("VCPUOP_up(1) while it runs: 0", vcpus::up(1), Ok(()));
    kick1
}

fn counting(c: &mut Checks, kick1: Port) {
    SHARED.store(0, Ordering::SeqCst);
    let s1 = state(1);
    let done = s1.done.load(Ordering::SeqCst);
    s1.command.store(Command::Count as u32, Ordering::SeqCst);
    let _ = events::send(kick1);
    for _ in 0..INCREMENTS {
        SHARED.fetch_add(1, Ordering::SeqCst);
    }
    let finished = wait(5000, || s1.done.load(Ordering::SeqCst) > done);
    c.check(
        "vCPU 1 ran the counting command",
        finished,
        format_args!("not within 5 s"),
    );
    c.eq(
        "vCPU 0 and vCPU 1 each added 100,000 to one atomic counter: 200,000",
        SHARED.load(Ordering::SeqCst),
        2 * INCREMENTS,
    );
    c.eq(
        "no handler ran on a vCPU other than its port's",
        (
            state(0).misrouted.load(Ordering::SeqCst),
            s1.misrouted.load(Ordering::SeqCst),
        ),
        (0, 0),
    );
}

fn down_and_up(c: &mut Checks) {
    // vCPU 1 is idle: blocked in SCHEDOP_block, waiting for a command.
    let blocked = wait(500, || {
        vcpus::runstate(1).is_ok_and(|r| r.state == RUNSTATE_BLOCKED)
    });
    c.check(
        "runstate of the idle vCPU 1: blocked",
        blocked,
        format_args!("{:?}", vcpus::runstate(1)),
    );
    c.eq(
        "VCPUOP_down(1) while it is blocked: 0",
        vcpus::down(1),
        Ok(()),
    );
    c.eq(
        "VCPUOP_is_up(1) after VCPUOP_down: 0",
        vcpus::is_up(1),
        Ok(false),
    );
    let _ = time::sleep_ns(10 * MS);
    c.eq(
        "runstate of a vCPU downed while blocked: still blocked (Xen marks it offline only \
         when it is woken)",
        vcpus::runstate(1).map(|r| r.state),
        Ok(RUNSTATE_BLOCKED),
    );
    let pings = pingpong::pings();
    let _ = pingpong::ping_once();
    let _ = time::sleep_ns(10 * MS);
    c.check(
        "an IPI to a down vCPU stays pending: no handler runs",
        pingpong::pings() == pings && pingpong::ping_pending(),
        format_args!("pings {} -> {}", pings, pingpong::pings()),
    );
    c.eq(
        "the event woke the down vCPU out of blocked: runstate offline",
        vcpus::runstate(1).map(|r| r.state),
        Ok(RUNSTATE_OFFLINE),
    );
    let r1 = vcpus::runstate(1).unwrap_or_default();
    let _ = time::sleep_ns(20 * MS);
    let r2 = vcpus::runstate(1).unwrap_or_default();
    info(format_args!(
        "runstate of the down vCPU 1 over 20 ms: {:?} -> {:?}",
        r1.time, r2.time
    ));
    c.check(
        "a down vCPU's offline time grows, its running time does not",
        r2.time[3] > r1.time[3] && r2.time[0] == r1.time[0],
        format_args!("{:?} -> {:?}", r1.time, r2.time),
    );
    c.eq("VCPUOP_up(1) after VCPUOP_down: 0", vcpus::up(1), Ok(()));
    c.eq("VCPUOP_is_up(1) again: 1", vcpus::is_up(1), Ok(true));
    let handled = wait(1000, || pingpong::pings() > pings);
    c.check(
        "vCPU 1 resumes where it stopped and takes the pending IPI",
        handled,
        format_args!("pings still {}", pingpong::pings()),
    );
    c.check(
        "runstate of vCPU 1 after VCPUOP_up: no longer offline",
        vcpus::runstate(1).is_ok_and(|r| r.state != RUNSTATE_OFFLINE),
        format_args!("{:?}", vcpus::runstate(1)),
    );
}

fn move_own_vcpu_info(c: &mut Checks) {
    extern crate alloc;
    let area: &'static mut VcpuInfoArea =
        alloc::boxed::Box::leak(alloc::boxed::Box::new(VcpuInfoArea::new()));
    let address = core::ptr::from_ref(area) as u64;
    c.eq(
        "VCPUOP_register_vcpu_info(0) on vCPU 0 itself: 0",
        vcpus::register_vcpu_info(0, area),
        Ok(()),
    );
    c.eq(
        "vCPU 0's vcpu_info is the new one",
        shared::vcpu_info(0).map(|v| v.address()),
        Ok(address),
    );
    let t0 = time::now_ns().unwrap_or(0);
    let _ = time::sleep_ns(5 * MS);
    let slept = time::now_ns().unwrap_or(0).saturating_sub(t0);
    c.check(
        "time and timer events keep working through the moved vcpu_info (a 5 ms sleep)",
        (5 * MS..100 * MS).contains(&slept),
        format_args!("{slept} ns"),
    );
    let pongs = pingpong::pongs();
    let round = pingpong::round_trip();
    c.check(
        "an IPI round trip with vCPU 1 works through both moved vcpu_infos",
        round && pingpong::pongs() > pongs,
        format_args!("no pong"),
    );
}
