//! Several domains at once on Oxen: event channels between domains (dom0 and a domU, two
//! domUs), timers in a domU, the credit scheduler's weights and caps, hostile domUs, a domU
//! with two vCPUs. Oxen only: real
//! Xen here has no toolstack to start domUs. The scenarios and the transcript parsers are in
//! `oxen_tests::domains`; every domain runs a checking guest, and each test judges every
//! domain's verdict, then asserts the numbers the domains print.

use oxen_tests::DebugExit;
use oxen_tests::domains::{
    CAP, CAP_PERCENT, CRASH_ANNOUNCE, DOMU_PINGPONG, DOMU_ROUNDS, FAIRNESS, FAIRNESS_WEIGHTS,
    HOSTILE, PINGPONG, PINGPONG_ROUNDS, PingPong, REMOTE_SHUTDOWN_ORDER, REMOTE_SHUTDOWN_SELF,
    SMP_DOMU, STORM_SENDS, Scenario, TIMERS, WORKER_ROUNDS, destroyed, dom0_pingpong, dom0_storm,
    exhaust, pingpong, pong, share, storm,
};
use oxen_tests::{Outcome, domains};

/// Asserts that domain `dom` powered off and that destroying it gave back every frame it had.
#[track_caller]
fn ended_cleanly(out: &Outcome, dom: u16) {
    out.assert_contains(&format!("d{dom} shut down: SHUTDOWN_poweroff"));
    freed_everything(out, dom);
}

/// Asserts the `dN destroyed: <n> of its <n> frames freed, 0 still owned` line.
#[track_caller]
fn freed_everything(out: &Outcome, dom: u16) {
    let Some((freed, owned, still)) = destroyed(&out.transcript, dom) else {
        out.fail(&format!("no `d{dom} destroyed: ...` line"));
    };
    if freed != owned || still != 0 || owned == 0 {
        out.fail(&format!(
            "d{dom} destroyed: {freed} of its {owned} frames freed, {still} still owned"
        ));
    }
}

/// Runs a scenario, judges every domain's checks, and asserts dom0 powered off.
fn passes(scenario: &Scenario, name: &str) -> Outcome {
    judge(scenario, name, scenario.run(name))
}

/// [`passes`] for a scenario that measures time or CPU shares: its boot runs alone.
fn passes_alone(scenario: &Scenario, name: &str) -> Outcome {
    judge(scenario, name, scenario.run_alone(name))
}

/// Judges every domain's verdict and dom0's poweroff.
fn judge(scenario: &Scenario, name: &str, out: Outcome) -> Outcome {
    let checks = scenario.check_verdicts(&out);
    println!("{name}: checks passed per domain (dom0 first): {checks:?}");
    out.assert_not_contains("FATAL")
        .assert_exit(DebugExit::Dom0Poweroff);
    out
}

/// Prints a ping-pong run of test `name` and asserts its counts: d1 sent `rounds` pings and
/// received as many pongs, and its peer `peer` printed that it received and sent as many,
/// none unexpected.
#[track_caller]
fn round_trips(
    out: &Outcome,
    name: &str,
    d1: &PingPong,
    peer: &str,
    (received, sent, unexpected): (u64, u64, u64),
    rounds: u64,
) {
    println!(
        "{name}: {} round trips in {} ms ({} ns each); {peer} received {received}, sent \
         {sent}, {unexpected} unexpected",
        d1.sent,
        d1.elapsed_ns / 1_000_000,
        d1.elapsed_ns / d1.sent.max(1)
    );
    assert_eq!(
        (d1.sent, d1.received),
        (rounds, rounds),
        "d1's counts\n{out}"
    );
    assert_eq!(
        (received, sent, unexpected),
        (rounds, rounds, 0),
        "{peer}'s counts\n{out}"
    );
}

/// 100,000 strict round trips between dom0 and d1 over one interdomain channel: both sides
/// counted every event, none lost (a pong missing for a second fails), none duplicated (an
/// event when none was due fails), and both report exactly 100,000.
#[test]
fn pingpong_between_dom0_and_a_domu() {
    let out = passes(&PINGPONG, "pingpong");
    let Some(d1) = pingpong(&out.transcript, 1) else {
        out.fail("no `(d1) PINGPONG sent=.. received=.. elapsed_ns=..` line");
    };
    let Some(dom0_counts) = dom0_pingpong(&out.transcript, 1) else {
        out.fail("no `PINGPONG d1 received=.. sent=.. unexpected=..` line from dom0");
    };
    round_trips(&out, "pingpong", &d1, "dom0", dom0_counts, PINGPONG_ROUNDS);
    ended_cleanly(&out, 1);
}

/// 20,000 strict round trips between two domUs over a channel one of them offered: both
/// count exactly, and the one that ends first leaves the other's end unbound.
#[test]
fn pingpong_between_two_domus() {
    let out = passes(&DOMU_PINGPONG, "domu-pingpong");
    let Some(d1) = pingpong(&out.transcript, 1) else {
        out.fail("no `(d1) PINGPONG ...` line");
    };
    let Some(d2_counts) = pong(&out.transcript, 2) else {
        out.fail("no `(d2) PONG received=.. sent=.. unexpected=..` line");
    };
    round_trips(&out, "domu-pingpong", &d1, "d2", d2_counts, DOMU_ROUNDS);
    ended_cleanly(&out, 1);
    ended_cleanly(&out, 2);
}

/// Timers in a domU: 10 ms sleeps are 10 ± 1 ms by system time and by wallclock with dom0
/// idle and with dom0 spinning, and a domU blocked with no timer wakes on dom0's event.
#[test]
fn timers_in_a_domu() {
    let out = passes_alone(&TIMERS, "timers");
    for line in domains::domain_lines(&out.transcript, 1)
        .into_iter()
        .filter(|l| l.starts_with("INFO: "))
    {
        println!("d1 {line}");
    }
    ended_cleanly(&out, 1);
}

/// Two CPU-bound domUs with weights 256 and 512, dom0 blocked: over 2 s of system time each,
/// their shares of the CPU are 1:2 within 10%, and together they use it all.
#[test]
fn fairness_follows_the_weights() {
    let out = passes_alone(&FAIRNESS, "fairness");
    let (Some(a), Some(b)) = (share(&out.transcript, 1), share(&out.transcript, 2)) else {
        out.fail("no `SHARE ...` line from d1 and d2");
    };
    let ratio = b.fraction() / a.fraction().max(f64::MIN_POSITIVE);
    let expected = f64::from(FAIRNESS_WEIGHTS[1]) / f64::from(FAIRNESS_WEIGHTS[0]);
    println!(
        "fairness: d1 (weight {}) ran {:.1}% of {} ms, d2 (weight {}) {:.1}% of {} ms: ratio \
         {ratio:.3} (expected {expected})",
        FAIRNESS_WEIGHTS[0],
        a.fraction() * 100.0,
        a.elapsed_ns / 1_000_000,
        FAIRNESS_WEIGHTS[1],
        b.fraction() * 100.0,
        b.elapsed_ns / 1_000_000
    );
    println!(
        "fairness: time counted as running that the spinners did not see run (hypervisor work, \
         host not running QEMU): d1 {} ms, d2 {} ms",
        a.unseen_ns / 1_000_000,
        b.unseen_ns / 1_000_000
    );
    assert!(
        (ratio - expected).abs() <= expected * 0.1,
        "the shares' ratio {ratio:.3} is not {expected} within 10%: {a:?} {b:?}\n{out}"
    );
    let total = a.fraction() + b.fraction();
    assert!(
        total >= 0.95,
        "the two spinners used only {:.1}% of the CPU together\n{out}",
        total * 100.0
    );
    ended_cleanly(&out, 1);
    ended_cleanly(&out, 2);
}

/// A lone CPU-bound domU capped at 25%, everything else idle: it runs 25% (± 3 points) of
/// the time, and is parked (offline, as Xen reports a parked vCPU) the rest.
#[test]
fn cap_limits_a_lone_domu() {
    let out = passes_alone(&CAP, "cap");
    let Some(s) = share(&out.transcript, 1) else {
        out.fail("no `SHARE ...` line from d1");
    };
    let cap = f64::from(CAP_PERCENT) / 100.0;
    println!(
        "cap: d1 capped at {CAP_PERCENT}% ran {:.2}% of {} ms (runnable {} ms, offline {} ms)",
        s.fraction() * 100.0,
        s.elapsed_ns / 1_000_000,
        s.runnable_ns / 1_000_000,
        s.offline_ns / 1_000_000
    );
    assert!(
        (s.fraction() - cap).abs() <= 0.03,
        "d1 ran {:.2}% of the time, not {CAP_PERCENT}% ± 3: {s:?}\n{out}",
        s.fraction() * 100.0
    );
    ended_cleanly(&out, 1);
}

/// d1 abuses event channels (every refusal Xen's errno), storms dom0 with 100,000 sends and
/// takes every port before it powers off; d2 crashes itself; d3 and dom0 meanwhile finish
/// their own round trips exactly. Every domain's destruction frees all its frames, and with
/// `mmu_audit` nothing leaks.
#[test]
fn hostile_domus_do_not_disturb_the_others() {
    let out = passes(&HOSTILE, "hostile");
    let t = &out.transcript;

    let Some((sends, errors, elapsed)) = storm(t, 1) else {
        out.fail("no `(d1) STORM sends=.. errors=.. elapsed_ns=..` line");
    };
    let Some(received) = dom0_storm(t, 1) else {
        out.fail("no `STORM d1 received=..` line from dom0");
    };
    println!(
        "hostile: storm of {sends} sends in {} ms, {errors} errors; dom0 received {received} \
         event(s)",
        elapsed / 1_000_000
    );
    assert_eq!((sends, errors), (STORM_SENDS, 0), "d1's storm\n{out}");
    // Coalescing is allowed; d1 also sends once before the storm and once after it.
    assert!(
        (1..=STORM_SENDS + 2).contains(&received),
        "dom0 received {received} events of the storm\n{out}"
    );

    let Some(ex) = exhaust(t, 1) else {
        out.fail("no `(d1) EXHAUST ...` line");
    };
    println!(
        "hostile: d1 took {} ports ({}..={}) with {} open before, then -ENOSPC",
        ex.allocated, ex.first, ex.last, ex.open_before
    );
    // Oxen gives every boot-time domain the whole 2-level space (ports 1-4095); Xen's
    // toolstack would usually set a domU's max_evtchn_port to 1023.
    assert_eq!(ex.last, 4095, "{ex:?}\n{out}");
    assert_eq!(ex.allocated + ex.open_before, ex.last, "{ex:?}\n{out}");

    let Some(d3) = pingpong(t, 3) else {
        out.fail("no `(d3) PINGPONG ...` line");
    };
    assert_eq!(
        (d3.sent, d3.received),
        (WORKER_ROUNDS, WORKER_ROUNDS),
        "d3's round trips\n{out}"
    );
    assert_eq!(
        dom0_pingpong(t, 3),
        Some((WORKER_ROUNDS, WORKER_ROUNDS, 0)),
        "dom0's side of d3's round trips\n{out}"
    );
    println!(
        "hostile: d3's {} round trips took {} ms meanwhile",
        d3.sent,
        d3.elapsed_ns / 1_000_000
    );

    out.assert_contains(&format!("(d2) {CRASH_ANNOUNCE}"))
        .assert_contains("Domain 2 crashed: ")
        .assert_not_contains("(d2) RESULT:")
        .assert_not_contains("d2 shut down: ")
        .assert_contains("mmu_audit (after teardown): OK, no frame leaked");
    ended_cleanly(&out, 1);
    freed_everything(&out, 2);
    ended_cleanly(&out, 3);
}

/// The `vcpus` guest as a domU with two vCPUs (`domU=2,vcpus=2`): IPI ping-pong between its
/// vCPUs, their timers, down/up and runstate, all as on a dom0 with two vCPUs, while dom0
/// waits for it to end. With `mmu_audit`: nothing leaks.
#[test]
fn a_domu_with_two_vcpus() {
    let out = passes(&SMP_DOMU, "smp-domu");
    out.assert_contains("mmu_audit (after teardown): OK, no frame leaked");
    ended_cleanly(&out, 1);
}

/// `SCHEDOP_remote_shutdown` from a domU is refused in Xen's order: `-EFAULT` for an
/// unreadable argument, `-ESRCH` for a domain that does not exist (and for `DOMID_SELF`),
/// `-EPERM` only for one that does (dom0).
#[test]
fn remote_shutdown_refusals_in_xens_order() {
    let out = passes(&REMOTE_SHUTDOWN_ORDER, "remote-shutdown");
    ended_cleanly(&out, 1);
}

/// `SCHEDOP_remote_shutdown` of the caller itself from a domU: `-EPERM` as on Xen (only
/// `SCHEDOP_shutdown` ends one's own domain), and the domain finishes its checks.
#[test]
fn remote_shutdown_of_itself_is_refused() {
    let out = passes(&REMOTE_SHUTDOWN_SELF, "remote-shutdown-self");
    ended_cleanly(&out, 1);
}
