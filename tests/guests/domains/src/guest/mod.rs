//! The roles, chosen by the command line's first word after the program name, and what they
//! share.
//!
//! | command line | domain | what it does |
//! |---|---|---|
//! | `domains dom0 d1=<role>[:<n>] d2=...` | dom0 | the orchestrator ([`dom0`]) |
//! | `domains pingpong [peer=<d>] rounds=<n>` | domU | `n` strict round trips with dom0 or domU `d` ([`pingpong`]) |
//! | `domains pong peer=<d> rounds=<n>` | domU | offers domU `d` a port and answers its pings ([`pingpong`]) |
//! | `domains timers` | domU | 10 ms sleeps, a wake-up by dom0 ([`timers`]) |
//! | `domains spin [ms=<n>]` | domU | CPU-bound, measures its share of the CPU ([`spin`]) |
//! | `domains hostile [sends=<n>]` | domU | abuses event channels, then a send storm ([`hostile`]) |
//! | `domains crash` | domU | says hello to dom0, then `ud2` with no trap table ([`crash`]) |
//! | `domains remote-shutdown [self]` | domU | `SCHEDOP_remote_shutdown`'s refusals, in Xen's order; of itself ([`remote`]) |
//!
//! # How a domU finds dom0's port
//!
//! Nothing is configured: dom0 allocates, for each domU `d` it serves, one port with
//! `EVTCHNOP_alloc_unbound(remote_dom = d)`; the domU tries `EVTCHNOP_bind_interdomain(0, p)`
//! for `p = 1..=`[`channel::MAX_PROBE`]. Only the port unbound for that domU binds; every other
//! port is `-EINVAL` (bound, closed, offered to another domain, or beyond dom0's table). Until
//! dom0 has allocated it, the domU sleeps a millisecond and tries again ([`channel::connect`]).
//! Two domUs pair up the same way (`pong peer=1` offers, `pingpong peer=2` probes d2's ports).
//! The new port is pending at once (Xen covers notifications sent before the bind): the domU
//! checks that and clears it before counting.
//!
//! # Messages
//!
//! Events carry no data, so each role's protocol is a count: the `n`th event on the channel
//! means a fixed thing (see each role). Every side counts every event its handler receives;
//! the counts are printed and checked exactly where nothing may coalesce.
//!
//! # Output
//!
//! Every domain prints `PASS:`/`FAIL:` lines and a verdict through [`guest_support::Checks`]
//! (a domU's lines appear as `(dN) ...` on the console), and lines for the host to parse:
//! `PINGPONG ...`, `PONG ...`, `SHARE ...`, `STORM ...`, `EXHAUST ...`. A domU ends with poweroff when its
//! checks passed, crash otherwise; dom0 waits for every domU to be gone before it judges and
//! shuts down (which stops the machine).

mod channel;
mod crash;
mod dom0;
mod hostile;
mod pingpong;
#[allow(
    unsafe_code,
    reason = "SCHEDOP_remote_shutdown has no wrapper in the kit: a raw sched_op with its argument"
)]
mod remote;
mod spin;
mod timers;

use guest_support::Checks;
use pv_guest_kit::{StartInfo, events, println, time, traps};

pv_guest_kit::guest_kernel!(main);

/// One millisecond in ns.
pub const MS: u64 = 1_000_000;

/// One second in ns.
pub const SECOND: u64 = 1_000 * MS;

/// The command line (`<program> <role> <args...>`), for the words after the role.
#[derive(Clone, Copy, Debug)]
pub struct Args(&'static str);

impl Args {
    /// Every word after the role.
    pub fn words(self) -> impl Iterator<Item = &'static str> {
        self.0.split_whitespace().skip(2)
    }

    /// The value of `key=value`, if given.
    pub fn value(self, key: &str) -> Option<&'static str> {
        self.words()
            .filter_map(|word| word.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    /// The number given as `key=<n>` (decimal), or `default`.
    pub fn number(self, key: &str, default: u64) -> u64 {
        self.value(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }
}

/// The current system time (0 if it cannot be read).
pub fn now() -> u64 {
    time::now_ns().unwrap_or(0)
}

/// Busy-waits (events as they are) until `done()` or `ns` of system time passed; returns
/// whether `done()` held.
pub fn spin_until(ns: u64, mut done: impl FnMut() -> bool) -> bool {
    let start = now();
    loop {
        if done() {
            return true;
        }
        if now().saturating_sub(start) >= ns {
            return done();
        }
        core::hint::spin_loop();
    }
}

/// What every role but `crash` sets up first: the kit's trap table, the event layer,
/// `VIRQ_TIMER` on vCPU 0, then events enabled.
pub fn setup(c: &mut Checks) {
    c.eq("set_trap_table with the kit's stubs", traps::init(), Ok(0));
    c.eq("events::init", events::init(), Ok(()));
    let timer = time::init();
    c.check(
        "time::init binds VIRQ_TIMER on vCPU 0",
        timer.is_ok(),
        format_args!("{timer:?}"),
    );
    events::enable();
}

fn main(si: StartInfo) -> ! {
    let cmdline = si.cmdline();
    let mut words = cmdline.split_whitespace();
    let _program = words.next();
    let role = words.next().unwrap_or("");
    let args = Args(cmdline);
    match role {
        "dom0" => dom0::run(args),
        "pingpong" => pingpong::run(args),
        "pong" => pingpong::pong(args),
        "timers" => timers::run(),
        "spin" => spin::run(args),
        "hostile" => hostile::run(args),
        "crash" => crash::run(),
        "remote-shutdown" => remote::run(args),
        _ => {
            println!("domains: unknown role {role:?} (command line {cmdline:?})");
            let mut c = Checks::new();
            c.fail(
                "the command line names a role",
                format_args!(
                    "{cmdline:?}: expected dom0, pingpong, timers, spin, hostile or crash"
                ),
            );
            c.finish()
        }
    }
}
