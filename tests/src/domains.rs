//! Boots with several domains at once (Oxen only: real Xen here has no toolstack to start
//! domUs): the scenarios of `tests/tests/domains.rs`, and how to read their transcripts.
//!
//! Every domain runs the `domains` test guest (`tests/guests/domains`) in a role its command
//! line chooses, or another checking guest. dom0 is the orchestrator: it offers each domU an
//! event channel, serves it, waits until every domU is gone and judges, then shuts down, which
//! stops the machine with dom0's reason as the exit code. Oxen prints a domU's console lines
//! as `(dN) <line>`; [`domain_lines`] takes one domain's lines back out of the transcript and
//! [`check_domain_verdict`] judges them as [`crate::guests::check_verdict`] judges dom0's.
//!
//! The boot-time domains come from the hypervisor's `domU=<module>[,...]` options: module 1 is
//! dom0's kernel, and the `n`th [`DomU`] of a [`Scenario`] is module `n + 1`, domain `n`.

use std::time::Duration;

use crate::{Boot, Outcome};

/// The image of the multi-domain test guest in `target/oxen/`.
pub const IMAGE: &str = "domains";

/// One boot-time domU of a [`Scenario`].
#[derive(Clone, Copy, Debug)]
pub struct DomU {
    /// The image in `target/oxen/`.
    pub image: &'static str,
    /// Its command line.
    pub args: &'static str,
    /// What follows the module number in its `domU=` option (`",vcpus=2"`, `",weight=512"`,
    /// or empty).
    pub config: &'static str,
    /// The least number of checks a complete run makes (0: a domain that prints no verdict).
    pub min_checks: usize,
}

/// A multi-domain boot: dom0's command line, the domUs, extra hypervisor options.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    /// dom0's command line (it runs [`IMAGE`]).
    pub dom0_args: &'static str,
    /// The least number of checks dom0 makes.
    pub dom0_min_checks: usize,
    /// The domUs: the first is domain 1.
    pub domus: &'static [DomU],
    /// Hypervisor options besides `dom0_mem` and the `domU=` ones.
    pub options: &'static str,
    /// How long the boot may take.
    pub timeout: Duration,
}

/// dom0's memory in every scenario (each domU gets the hypervisor's default, 32 MiB).
pub const DOM0_MEM: &str = "dom0_mem=32M";

/// Round trips of [`PINGPONG`].
pub const PINGPONG_ROUNDS: u64 = 100_000;

/// Two domains exchange [`PINGPONG_ROUNDS`] strict round trips over one interdomain channel
/// (dom0 answers in its event handler); each side counts what it receives and prints it.
/// Under TCG a round trip costs two domain switches, about 100-200 µs.
pub const PINGPONG: Scenario = Scenario {
    dom0_args: "domains dom0 d1=pingpong:100000",
    dom0_min_checks: 14,
    domus: &[DomU {
        image: IMAGE,
        args: "domains pingpong rounds=100000",
        config: "",
        min_checks: 13,
    }],
    options: "",
    timeout: Duration::from_secs(180),
};

/// Round trips of [`DOMU_PINGPONG`].
pub const DOMU_ROUNDS: u64 = 20_000;

/// Two domUs exchange [`DOMU_ROUNDS`] strict round trips: d2 offers d1 a port
/// (`alloc_unbound` by an unprivileged domain), d1 finds and binds it, d2 answers in its
/// handler; both count. Then d2 ends and d1 finds its end unbound. dom0 only waits.
pub const DOMU_PINGPONG: Scenario = Scenario {
    dom0_args: "domains dom0 d1=none d2=none",
    dom0_min_checks: 8,
    domus: &[
        DomU {
            image: IMAGE,
            args: "domains pingpong peer=2 rounds=20000",
            config: "",
            min_checks: 16,
        },
        DomU {
            image: IMAGE,
            args: "domains pong peer=1 rounds=20000",
            config: "",
            min_checks: 7,
        },
    ],
    options: "",
    timeout: Duration::from_secs(120),
};

/// A domU sleeps 10 ms with `set_timer_op` + `SCHEDOP_block` while dom0 is blocked and while
/// it spins, then blocks with no timer until dom0 wakes it with an event.
pub const TIMERS: Scenario = Scenario {
    dom0_args: "domains dom0 d1=timers",
    dom0_min_checks: 14,
    domus: &[DomU {
        image: IMAGE,
        args: "domains timers",
        config: "",
        min_checks: 21,
    }],
    options: "",
    timeout: Duration::from_secs(60),
};

/// The weights of [`FAIRNESS`]'s two CPU-bound domUs.
pub const FAIRNESS_WEIGHTS: [u32; 2] = [256, 512];

/// Two CPU-bound domUs with weights 256 and 512 (dom0 blocked) each measure their running
/// time over 2 s of system time while both compete.
pub const FAIRNESS: Scenario = Scenario {
    dom0_args: "domains dom0 d1=spin d2=spin",
    dom0_min_checks: 19,
    domus: &[
        DomU {
            image: IMAGE,
            args: "domains spin",
            config: ",weight=256",
            min_checks: 17,
        },
        DomU {
            image: IMAGE,
            args: "domains spin",
            config: ",weight=512",
            min_checks: 17,
        },
    ],
    options: "",
    timeout: Duration::from_secs(60),
};

/// The cap of [`CAP`]'s domU, in percent of one CPU.
pub const CAP_PERCENT: u32 = 25;

/// One CPU-bound domU capped at [`CAP_PERCENT`]% measures its share over 2 s while everything
/// else idles.
pub const CAP: Scenario = Scenario {
    dom0_args: "domains dom0 d1=spin",
    dom0_min_checks: 14,
    domus: &[DomU {
        image: IMAGE,
        args: "domains spin",
        config: ",cap=25",
        min_checks: 17,
    }],
    options: "",
    timeout: Duration::from_secs(60),
};

/// Sends of [`HOSTILE`]'s storm.
pub const STORM_SENDS: u64 = 100_000;

/// Round trips of the well-behaved domU next to the hostile ones.
pub const WORKER_ROUNDS: u64 = 10_000;

/// d1 abuses event channels, storms dom0 with [`STORM_SENDS`] sends, takes every port and
/// powers off; d2 says hello and crashes itself (`ud2` with no trap table); d3 does
/// [`WORKER_ROUNDS`] round trips with dom0 meanwhile. With `mmu_audit`: every frame comes
/// back.
pub const HOSTILE: Scenario = Scenario {
    dom0_args: "domains dom0 d1=hostile:100000 d2=crash d3=pingpong:10000",
    dom0_min_checks: 24,
    domus: &[
        DomU {
            image: IMAGE,
            args: "domains hostile sends=100000",
            config: "",
            min_checks: 103,
        },
        DomU {
            image: IMAGE,
            args: "domains crash",
            config: "",
            min_checks: 0,
        },
        DomU {
            image: IMAGE,
            args: "domains pingpong rounds=10000",
            config: "",
            min_checks: 13,
        },
    ],
    options: "mmu_audit",
    timeout: Duration::from_secs(120),
};

/// What the crashing domU of [`HOSTILE`] prints just before its `ud2`.
pub const CRASH_ANNOUNCE: &str = "domains: crash: executing ud2 with no trap table";

/// The `vcpus` guest as a domU with two vCPUs (its IPI ping-pong, timers, down/up and
/// runstate checks), dom0 only waiting for it to end. With `mmu_audit`.
pub const SMP_DOMU: Scenario = Scenario {
    dom0_args: "domains dom0 d1=none",
    dom0_min_checks: 8,
    domus: &[DomU {
        image: crate::guests::VCPUS.image,
        args: crate::guests::VCPUS.args,
        config: ",vcpus=2",
        min_checks: crate::guests::VCPUS.min_checks,
    }],
    options: "mmu_audit",
    timeout: Duration::from_secs(120),
};

/// A domU's `SCHEDOP_remote_shutdown` refused in Xen's order: the argument is copied in
/// (`-EFAULT`), the domain looked up (`-ESRCH`), and only then the permission checked
/// (`-EPERM`). dom0 only waits.
pub const REMOTE_SHUTDOWN_ORDER: Scenario = Scenario {
    dom0_args: "domains dom0 d1=none",
    dom0_min_checks: 8,
    domus: &[DomU {
        image: IMAGE,
        args: "domains remote-shutdown",
        config: "",
        min_checks: 4,
    }],
    options: "",
    timeout: Duration::from_secs(60),
};

/// A domU asks `SCHEDOP_remote_shutdown` to shut down itself: Xen refuses (`-EPERM`: the
/// default XSM policy's `XSM_DM_PRIV` accepts only the control domain or the target's device
/// model, never the caller as such) and the domain goes on. dom0 only waits.
pub const REMOTE_SHUTDOWN_SELF: Scenario = Scenario {
    dom0_args: "domains dom0 d1=none",
    dom0_min_checks: 8,
    domus: &[DomU {
        image: IMAGE,
        args: "domains remote-shutdown self",
        config: "",
        min_checks: 2,
    }],
    options: "",
    timeout: Duration::from_secs(60),
};

impl Scenario {
    /// The hypervisor options: `dom0_mem`, one `domU=` per domU, then [`Scenario::options`].
    pub fn hypervisor_options(&self) -> String {
        let mut options = vec![DOM0_MEM.to_owned()];
        for (i, domu) in self.domus.iter().enumerate() {
            options.push(format!("domU={}{}", i + 2, domu.config));
        }
        if !self.options.is_empty() {
            options.push(self.options.to_owned());
        }
        options.join(" ")
    }

    /// The boot: Oxen with [`Scenario::hypervisor_options`], dom0 as module 1 and the domUs
    /// after it, and the scenario's timeout.
    pub fn boot(&self) -> Boot {
        let dir = crate::paths::image_dir();
        let mut boot = Boot::hypervisor()
            .append(&self.hypervisor_options())
            .module(dir.join(IMAGE), self.dom0_args)
            .timeout(self.timeout);
        for domu in self.domus {
            boot = boot.module(dir.join(domu.image), domu.args);
        }
        boot
    }

    /// Runs [`Scenario::boot`] and reports how it ended and how long it took.
    ///
    /// # Panics
    /// If an image, the hypervisor or QEMU is missing.
    pub fn run(&self, name: &str) -> Outcome {
        self.run_boot(name, self.boot())
    }

    /// [`Scenario::run`] with no other boot of the test process at the same time
    /// ([`Boot::alone`]): for scenarios that measure time or CPU shares.
    ///
    /// # Panics
    /// If an image, the hypervisor or QEMU is missing.
    pub fn run_alone(&self, name: &str) -> Outcome {
        self.run_boot(name, self.boot().alone())
    }

    fn run_boot(&self, name: &str, boot: Boot) -> Outcome {
        let out = boot.run().unwrap_or_else(|err| panic!("{err}"));
        println!("{name}: {} in {:.3} s", out.exit, out.elapsed.as_secs_f64());
        out
    }

    /// Judges every domain's checks ([`check_domain_verdict`]): dom0 and each domU with a
    /// verdict. Returns the number of checks each passed, dom0 first.
    #[track_caller]
    pub fn check_verdicts(&self, out: &Outcome) -> Vec<usize> {
        let mut counts = vec![check_domain_verdict(out, 0, self.dom0_min_checks)];
        for (i, domu) in self.domus.iter().enumerate() {
            if domu.min_checks > 0 {
                let dom = u16::try_from(i + 1).unwrap_or(u16::MAX);
                counts.push(check_domain_verdict(out, dom, domu.min_checks));
            }
        }
        counts
    }
}

/// The console prefix of domain `dom`'s lines (`"(d1) "`); dom0's lines have none.
pub fn prefix(dom: u16) -> String {
    format!("(d{dom}) ")
}

/// Domain `dom`'s console lines, prefix removed. For dom0: every line that is neither the
/// hypervisor's (`(XEN) `) nor another domain's (`(dN) `).
pub fn domain_lines(transcript: &str, dom: u16) -> Vec<&str> {
    if dom == 0 {
        transcript
            .lines()
            .filter(|line| !line.starts_with("(XEN) ") && !is_domu_line(line))
            .collect()
    } else {
        let prefix = prefix(dom);
        transcript
            .lines()
            .filter_map(|line| line.strip_prefix(prefix.as_str()))
            .collect()
    }
}

fn is_domu_line(line: &str) -> bool {
    line.strip_prefix("(d")
        .and_then(|rest| rest.split_once(") "))
        .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// How one domain's checks went: its `PASS:` and `FAIL:` lines and its verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainVerdict {
    /// `PASS:` lines.
    pub passed: usize,
    /// `FAIL:` lines, whole.
    pub failed: Vec<String>,
    /// `n` of `RESULT: PASS (n checks)`, if that line is there.
    pub result_pass: Option<usize>,
}

/// Reads domain `dom`'s verdict out of a transcript.
pub fn domain_verdict(transcript: &str, dom: u16) -> DomainVerdict {
    let lines = domain_lines(transcript, dom);
    DomainVerdict {
        passed: lines.iter().filter(|l| l.starts_with("PASS: ")).count(),
        failed: lines
            .iter()
            .filter(|l| l.starts_with("FAIL: "))
            .map(|l| (*l).to_owned())
            .collect(),
        result_pass: lines.iter().find_map(|l| {
            l.strip_prefix("RESULT: PASS (")?
                .strip_suffix(" checks)")?
                .parse()
                .ok()
        }),
    }
}

/// Asserts that domain `dom` ran its checks to the end with every one passed: no `FAIL:`
/// line, a `RESULT: PASS (n checks)` line whose `n` is its number of `PASS:` lines, and
/// `n >= min_checks`. Returns `n`.
#[track_caller]
pub fn check_domain_verdict(out: &Outcome, dom: u16, min_checks: usize) -> usize {
    let v = domain_verdict(&out.transcript, dom);
    if !v.failed.is_empty() {
        out.fail(&format!(
            "d{dom} failed {} check(s):\n{}",
            v.failed.len(),
            v.failed.join("\n")
        ));
    }
    let Some(n) = v.result_pass else {
        out.fail(&format!("d{dom}: no `RESULT: PASS (n checks)` line"));
    };
    if n != v.passed {
        out.fail(&format!(
            "d{dom}: RESULT says {n} checks but {} PASS lines were printed",
            v.passed
        ));
    }
    if n < min_checks {
        out.fail(&format!(
            "d{dom}: only {n} checks ran, expected at least {min_checks}"
        ));
    }
    n
}

/// The `key=value` words of a line, values as numbers (words that are not are skipped).
fn numbers(line: &str) -> impl Iterator<Item = (&str, u64)> {
    line.split_whitespace().filter_map(|word| {
        let (key, value) = word.split_once('=')?;
        Some((key, value.parse().ok()?))
    })
}

/// The value of `key=<n>` on the first line of domain `dom` that starts with `tag`.
pub fn field(transcript: &str, dom: u16, tag: &str, key: &str) -> Option<u64> {
    domain_lines(transcript, dom)
        .into_iter()
        .find(|line| line.starts_with(tag))
        .and_then(|line| numbers(line).find(|(k, _)| *k == key).map(|(_, v)| v))
}

/// A domU's `PINGPONG sent=<n> received=<n> elapsed_ns=<t>` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PingPong {
    /// Pings sent.
    pub sent: u64,
    /// Pongs received.
    pub received: u64,
    /// System time the round trips took.
    pub elapsed_ns: u64,
}

/// Domain `dom`'s `PINGPONG` line.
pub fn pingpong(transcript: &str, dom: u16) -> Option<PingPong> {
    let f = |key| field(transcript, dom, "PINGPONG ", key);
    Some(PingPong {
        sent: f("sent")?,
        received: f("received")?,
        elapsed_ns: f("elapsed_ns")?,
    })
}

/// dom0's `PINGPONG d<N> received=<n> sent=<n> unexpected=<n>` line about domain `dom`:
/// `(received, sent, unexpected)`.
pub fn dom0_pingpong(transcript: &str, dom: u16) -> Option<(u64, u64, u64)> {
    let tag = format!("PINGPONG d{dom} ");
    let f = |key| field(transcript, 0, &tag, key);
    Some((f("received")?, f("sent")?, f("unexpected")?))
}

/// A `pong` domU's `PONG received=<n> sent=<n> unexpected=<n>` line:
/// `(received, sent, unexpected)`.
pub fn pong(transcript: &str, dom: u16) -> Option<(u64, u64, u64)> {
    let f = |key| field(transcript, dom, "PONG ", key);
    Some((f("received")?, f("sent")?, f("unexpected")?))
}

/// A spinner's `SHARE running_ns=.. runnable_ns=.. blocked_ns=.. offline_ns=.. elapsed_ns=..
/// gaps_ns=.. longest_gap_ns=.. unseen_ns=..` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Share {
    /// Time running during the window.
    pub running_ns: u64,
    /// Time runnable (waiting for the CPU).
    pub runnable_ns: u64,
    /// Time blocked.
    pub blocked_ns: u64,
    /// Time offline (a capped domain's parked time).
    pub offline_ns: u64,
    /// System time the window lasted.
    pub elapsed_ns: u64,
    /// Time the spin loop saw itself not run (its clock reads more than 20 µs apart).
    pub gaps_ns: u64,
    /// The part of the gaps the runstate counts as running: the hypervisor's work, and the
    /// host not running QEMU (0 if the line does not say).
    pub unseen_ns: u64,
}

impl Share {
    /// The fraction of the window it ran.
    #[expect(
        clippy::cast_precision_loss,
        reason = "nanosecond counts of seconds fit an f64 exactly enough"
    )]
    pub fn fraction(&self) -> f64 {
        self.running_ns as f64 / self.elapsed_ns.max(1) as f64
    }
}

/// Domain `dom`'s `SHARE` line.
pub fn share(transcript: &str, dom: u16) -> Option<Share> {
    let f = |key| field(transcript, dom, "SHARE ", key);
    Some(Share {
        running_ns: f("running_ns")?,
        runnable_ns: f("runnable_ns")?,
        blocked_ns: f("blocked_ns")?,
        offline_ns: f("offline_ns")?,
        elapsed_ns: f("elapsed_ns")?,
        gaps_ns: f("gaps_ns").unwrap_or(0),
        unseen_ns: f("unseen_ns").unwrap_or(0),
    })
}

/// The hostile domU's `STORM sends=<n> errors=<k> elapsed_ns=<t>` line: `(sends, errors,
/// elapsed_ns)`.
pub fn storm(transcript: &str, dom: u16) -> Option<(u64, u64, u64)> {
    let f = |key| field(transcript, dom, "STORM ", key);
    Some((f("sends")?, f("errors")?, f("elapsed_ns")?))
}

/// dom0's `STORM d<N> received=<n>` line about domain `dom`.
pub fn dom0_storm(transcript: &str, dom: u16) -> Option<u64> {
    field(transcript, 0, &format!("STORM d{dom} "), "received")
}

/// The hostile domU's `EXHAUST allocated=<n> first=<p> last=<q> open_before=<m>` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exhaust {
    /// Ports `alloc_unbound` handed out before `-ENOSPC`.
    pub allocated: u64,
    /// The first of them.
    pub first: u64,
    /// The last of them.
    pub last: u64,
    /// Ports open before.
    pub open_before: u64,
}

/// Domain `dom`'s `EXHAUST` line.
pub fn exhaust(transcript: &str, dom: u16) -> Option<Exhaust> {
    let f = |key| field(transcript, dom, "EXHAUST ", key);
    Some(Exhaust {
        allocated: f("allocated")?,
        first: f("first")?,
        last: f("last")?,
        open_before: f("open_before")?,
    })
}

/// The `dN destroyed: <freed> of its <owned> frames freed, <still> still owned` line about
/// domain `dom`: `(freed, owned, still)`.
pub fn destroyed(transcript: &str, dom: u16) -> Option<(u64, u64, u64)> {
    let needle = format!("d{dom} destroyed: ");
    let line = transcript.lines().find(|l| l.contains(&needle))?;
    let rest = line.split_once(&needle)?.1;
    let mut words = rest.split_whitespace();
    let freed = words.next()?.parse().ok()?;
    let owned = words.nth(2)?.parse().ok()?;
    let still = words.nth(2)?.parse().ok()?;
    Some((freed, owned, still))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRANSCRIPT: &str = "\
(XEN) [    0.1] d1: domU, 32 MiB
domains: dom0, the orchestrator
PASS: one
(d1) PASS: a
(d12) PASS: b
(d1) PINGPONG sent=10 received=9 elapsed_ns=1234
(d12) PONG received=5 sent=5 unexpected=1
(d1) SHARE running_ns=1 runnable_ns=2 blocked_ns=0 offline_ns=3 elapsed_ns=6 gaps_ns=5 longest_gap_ns=2 unseen_ns=1
(d1) STORM sends=100 errors=0 elapsed_ns=7
(d1) EXHAUST allocated=4093 first=3 last=4095 open_before=2
(d1) RESULT: PASS (1 checks)
(XEN) [    1.2] d1 destroyed: 8193 of its 8193 frames freed, 0 still owned
PINGPONG d1 received=10 sent=10 unexpected=0
STORM d1 received=45
RESULT: PASS (1 checks)
";

    #[test]
    fn lines_by_domain() {
        assert_eq!(
            domain_lines(TRANSCRIPT, 0),
            [
                "domains: dom0, the orchestrator",
                "PASS: one",
                "PINGPONG d1 received=10 sent=10 unexpected=0",
                "STORM d1 received=45",
                "RESULT: PASS (1 checks)"
            ]
        );
        assert_eq!(
            domain_lines(TRANSCRIPT, 12),
            ["PASS: b", "PONG received=5 sent=5 unexpected=1"]
        );
        assert_eq!(domain_lines(TRANSCRIPT, 1).len(), 6);
        assert!(domain_lines(TRANSCRIPT, 2).is_empty());
    }

    #[test]
    fn verdicts() {
        let v = domain_verdict(TRANSCRIPT, 1);
        assert_eq!((v.passed, v.result_pass), (1, Some(1)));
        assert!(v.failed.is_empty());
        let v = domain_verdict(TRANSCRIPT, 12);
        assert_eq!((v.passed, v.result_pass), (1, None));
        let v = domain_verdict(
            "(d3) FAIL: x: got 1\n(d3) RESULT: FAIL (1 of 1 failed)\n",
            3,
        );
        assert_eq!(v.failed, ["FAIL: x: got 1"]);
        assert_eq!(v.result_pass, None);
    }

    #[test]
    fn parsers() {
        assert_eq!(
            pingpong(TRANSCRIPT, 1),
            Some(PingPong {
                sent: 10,
                received: 9,
                elapsed_ns: 1234
            })
        );
        assert_eq!(pingpong(TRANSCRIPT, 2), None);
        assert_eq!(dom0_pingpong(TRANSCRIPT, 1), Some((10, 10, 0)));
        assert_eq!(pong(TRANSCRIPT, 12), Some((5, 5, 1)));
        assert_eq!(pong(TRANSCRIPT, 1), None);
        let s = share(TRANSCRIPT, 1).expect("share");
        assert_eq!((s.running_ns, s.offline_ns, s.elapsed_ns), (1, 3, 6));
        assert_eq!((s.gaps_ns, s.unseen_ns), (5, 1));
        assert!((s.fraction() - 1.0 / 6.0).abs() < 1e-9);
        assert_eq!(storm(TRANSCRIPT, 1), Some((100, 0, 7)));
        assert_eq!(dom0_storm(TRANSCRIPT, 1), Some(45));
        assert_eq!(
            exhaust(TRANSCRIPT, 1),
            Some(Exhaust {
                allocated: 4093,
                first: 3,
                last: 4095,
                open_before: 2
            })
        );
        assert_eq!(destroyed(TRANSCRIPT, 1), Some((8193, 8193, 0)));
        assert_eq!(destroyed(TRANSCRIPT, 2), None);
    }

    #[test]
    fn numbers_agree_with_command_lines() {
        let pingpong = format!("pingpong:{PINGPONG_ROUNDS}");
        assert!(PINGPONG.dom0_args.ends_with(&pingpong));
        assert!(
            PINGPONG.domus[0]
                .args
                .ends_with(&format!("rounds={PINGPONG_ROUNDS}"))
        );
        assert!(
            HOSTILE
                .dom0_args
                .contains(&format!("d1=hostile:{STORM_SENDS} "))
        );
        assert!(
            HOSTILE.domus[0]
                .args
                .ends_with(&format!("sends={STORM_SENDS}"))
        );
        assert!(
            HOSTILE
                .dom0_args
                .ends_with(&format!("d3=pingpong:{WORKER_ROUNDS}"))
        );
        assert!(
            HOSTILE.domus[2]
                .args
                .ends_with(&format!("rounds={WORKER_ROUNDS}"))
        );
        for (domu, weight) in FAIRNESS.domus.iter().zip(FAIRNESS_WEIGHTS) {
            assert_eq!(domu.config, format!(",weight={weight}"));
        }
        assert_eq!(CAP.domus[0].config, format!(",cap={CAP_PERCENT}"));
    }

    #[test]
    fn options_and_modules() {
        assert_eq!(
            FAIRNESS.hypervisor_options(),
            "dom0_mem=32M domU=2,weight=256 domU=3,weight=512"
        );
        assert_eq!(
            HOSTILE.hypervisor_options(),
            "dom0_mem=32M domU=2 domU=3 domU=4 mmu_audit"
        );
        assert_eq!(
            SMP_DOMU.hypervisor_options(),
            "dom0_mem=32M domU=2,vcpus=2 mmu_audit"
        );
        let boot = HOSTILE.boot();
        assert!(boot.cmdline().ends_with("domU=4 mmu_audit"));
    }
}
