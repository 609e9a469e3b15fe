//! `cargo xtask bench`: runs the benchmark guests on Oxen and on real Xen 4.17 in the same
//! session and writes `docs/benchmarks.md`.
//!
//! Each benchmark guest prints `BENCH <name> <median cycles> (min <cycles>, <n> runs)` lines.
//! Every configuration ([`CONFIGS`]) is booted several times on each hypervisor that can run
//! it; the table reports the median of the per-boot medians and the Oxen/Xen ratio. Under
//! QEMU's TCG the TSC counts emulated path length, so only ratios taken in one session on the
//! same QEMU mean anything.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use oxen_tests::guests::{
    BENCH, BENCH_DOMAINS_NAMES, BENCH_EVENTS, BENCH_EVENTS_NAMES, BENCH_EVENTS_OPTIONS, BENCH_MM,
    BENCH_MM_NAMES, BENCH_NAMES, Guest, bench_domains,
};
use oxen_tests::{Boot, paths};

/// Boots per configuration and hypervisor.
const BOOTS: usize = 3;

/// dom0's memory in every boot.
const DOM0_MEM: &str = "dom0_mem=32M";

/// Real Xen's scheduler: credit1, the design Oxen's scheduler follows (Xen 4.17's default is
/// credit2), so that the scheduling rows compare the same algorithm.
const XEN_SCHEDULER: &str = "sched=credit";

/// One benchmark boot: what runs, with which options, and the rows taken from it.
#[derive(Debug)]
struct Config {
    /// What the progress lines call it.
    label: &'static str,
    /// The boot on Oxen, given the hypervisor with [`DOM0_MEM`].
    oxen: fn(Boot) -> Boot,
    /// The boot on Xen, given Xen with [`DOM0_MEM`] and [`XEN_SCHEDULER`]; `None` where one
    /// domain cannot show it (real Xen has no toolstack here to start a second domain).
    xen: Option<fn(Boot) -> Boot>,
    /// The rows this boot contributes, in order (the guest prints others too).
    rows: &'static [&'static str],
}

/// `boot` with the bench guest as dom0.
fn dom0(boot: Boot, guest: &Guest) -> Boot {
    boot.module(paths::image_dir().join(guest.image), guest.args)
}

/// The benchmark boots, in the table's order.
const CONFIGS: &[Config] = &[
    Config {
        label: "bench",
        oxen: |b| dom0(b, &BENCH),
        xen: Some(|b| dom0(b, &BENCH)),
        rows: &BENCH_NAMES,
    },
    Config {
        label: "bench mm",
        oxen: |b| dom0(b, &BENCH_MM),
        xen: Some(|b| dom0(b, &BENCH_MM)),
        rows: &BENCH_MM_NAMES,
    },
    Config {
        label: "bench events (dom0 with 2 vCPUs)",
        oxen: |b| dom0(b.append(BENCH_EVENTS_OPTIONS), &BENCH_EVENTS),
        xen: Some(|b| dom0(b.append(BENCH_EVENTS_OPTIONS), &BENCH_EVENTS)),
        rows: &BENCH_EVENTS_NAMES,
    },
    Config {
        label: "bench ping (dom0) + bench pong (domain 1)",
        oxen: bench_domains,
        xen: None,
        rows: &BENCH_DOMAINS_NAMES,
    },
];

/// What each row measures, for the notes under the table.
const ROW_NOTES: &[(&str, &str)] = &[
    (
        "rdtsc",
        "two fenced TSC reads back to back: the measurement's own cost, included in every \
         other row.",
    ),
    (
        "null-hypercall",
        "`xen_version(XENVER_version)` through the hypercall page: guest → hypervisor → guest.",
    ),
    (
        "exception-round-trip",
        "`int3` → the hypervisor → the guest's trap stub and an empty Rust handler → the `iret` \
         hypercall → back.",
    ),
    (
        "forced-cpuid",
        "`cpuid` behind Xen's forced-emulation prefix: a `#UD` the hypervisor decodes and \
         emulates.",
    ),
    (
        "mmu-update-1",
        "one `mmu_update` request rewriting an L1 entry (validated like every page-table \
         write).",
    ),
    (
        "update-va-mapping-invlpg",
        "`update_va_mapping` of one page with `UVMF_INVLPG`.",
    ),
    (
        "mmu-update-512",
        "one `mmu_update` call carrying 512 requests (a whole L1's worth).",
    ),
    (
        "ptwr-write",
        "a plain store into an L1 page-table page the guest maps read-only: the #PF is \
         decoded and emulated as a validated update (writable page tables).",
    ),
    (
        "user-syscall-round-trip",
        "`syscall` from guest user mode → the hypervisor → the guest kernel's syscall callback \
         → `iret` with `VGCF_in_syscall` back to user mode (a change of page tables each way).",
    ),
    (
        "evtchn-send",
        "`EVTCHNOP_send` on a loopback interdomain port that notifies the sending vCPU, with \
         events masked: the hypercall alone (it sets the port's pending bit, the selector bit \
         and `upcall_pending`, and returns without an upcall; the guest clears them, untimed, \
         between runs).",
    ),
    (
        "evtchn-upcall-latency",
        "the same send with events enabled, from just before the send to the first \
         instructions of the guest's event callback (a stub that reads the TSC, then enters \
         the kit's upcall code): the hypercall and the upcall's delivery on its way out.",
    ),
    (
        "evtchn-send-upcall-round-trip",
        "the same send, events enabled, timed until it returns: the upcall, the kit's entry \
         and dispatcher, an empty handler, the `iret` hypercall back.",
    ),
    (
        "vcpu-event-round-trip",
        "dom0 with two vCPUs on one CPU: vCPU 0 sends an IPI to the blocked vCPU 1 and blocks \
         (`SCHEDOP_block`); vCPU 1's handler replies, it blocks again, vCPU 0 runs on. Two \
         sends, two wake-ups, two blocks, two context switches and two upcalls.",
    ),
    (
        "vcpu-yield-round-trip",
        "vCPU 0 calls `SCHEDOP_yield` while vCPU 1 loops on `SCHEDOP_yield`: a context switch \
         there and one back (one switch is about half of it). Only yields that let the other \
         vCPU run are kept (vCPU 0's runnable time grew across them).",
    ),
    (
        "domain-event-round-trip",
        "`vcpu-event-round-trip` between dom0 and domain 1 (booted with `domU=`) over an \
         interdomain channel: every switch also changes address space. Oxen only.",
    ),
    (
        "domain-yield-round-trip",
        "`vcpu-yield-round-trip` between dom0 and domain 1: two switches between domains. \
         Oxen only.",
    ),
];

/// `(name, per-boot medians)` for one hypervisor, in the order the guest reports them.
#[derive(Debug, Default)]
struct Samples(Vec<(String, Vec<u64>)>);

impl Samples {
    fn push(&mut self, name: &str, v: u64) {
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some((_, vs)) => vs.push(v),
            None => self.0.push((name.to_owned(), vec![v])),
        }
    }
    fn get(&self, name: &str) -> Option<&Vec<u64>> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

/// Parses `BENCH <name> <median> ...` lines.
fn parse(transcript: &str, into: &mut Samples) -> usize {
    let mut n = 0;
    for line in transcript.lines() {
        let mut w = line.split_whitespace();
        if w.next() != Some("BENCH") {
            continue;
        }
        let (Some(name), Some(Ok(median))) = (w.next(), w.next().map(str::parse::<u64>)) else {
            continue;
        };
        into.push(name, median);
        n += 1;
    }
    n
}

fn median(v: &[u64]) -> Option<u64> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}

/// Boots `boot` once and adds the medians of `rows` to `into`.
fn run(boot: Boot, what: &str, rows: &[&str], into: &mut Samples) -> Result<()> {
    let out = boot
        .timeout(Duration::from_secs(120))
        .run()
        .with_context(|| format!("booting {what}"))?;
    if !out.contains("RESULT: PASS") {
        bail!(
            "{what}: the benchmark guest did not pass its checks:\n{}",
            out.transcript
        );
    }
    let mut found = Samples::default();
    parse(&out.transcript, &mut found);
    for row in rows {
        let Some(&[median]) = found.get(row).map(Vec::as_slice) else {
            bail!(
                "{what}: expected one `BENCH {row}` line in the transcript:\n{}",
                out.transcript
            );
        };
        into.push(row, median);
    }
    Ok(())
}

/// The first line of `qemu-system-x86_64 --version`.
fn qemu_version() -> Result<String> {
    Ok(std::process::Command::new(oxen_tests::find_qemu()?)
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .unwrap_or_default())
}

/// The host CPU's model name.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default()
}

/// Runs the benchmarks and writes `docs/benchmarks.md`.
///
/// # Errors
/// A guest is missing, fails its checks, or does not print every row of its configuration.
pub fn bench() -> Result<()> {
    let images = paths::image_dir();
    let image = images.join(BENCH.image);
    if !image.is_file() {
        bail!(
            "{} missing: run `cargo xtask build`",
            paths::display(&image)
        );
    }
    let have_xen = images.join(oxen_tests::xen::IMAGE_NAME).is_file();
    let mut oxen_s = Samples::default();
    let mut xen_s = Samples::default();
    for config in CONFIGS {
        for i in 0..BOOTS {
            eprintln!("bench: {} on Oxen ({}/{BOOTS})", config.label, i + 1);
            run(
                (config.oxen)(Boot::hypervisor().append(DOM0_MEM)),
                "Oxen",
                config.rows,
                &mut oxen_s,
            )?;
            if let Some(xen) = config.xen.filter(|_| have_xen) {
                eprintln!("bench: {} on Xen 4.17 ({}/{BOOTS})", config.label, i + 1);
                run(
                    xen(Boot::xen().append(DOM0_MEM).append(XEN_SCHEDULER)),
                    "Xen",
                    config.rows,
                    &mut xen_s,
                )?;
            }
        }
    }
    let md = markdown(&oxen_s, &xen_s, &qemu_version()?, &cpu_model());
    let path = paths::workspace_root().join("docs/benchmarks.md");
    std::fs::write(&path, &md).with_context(|| format!("writing {}", path.display()))?;
    println!("{md}");
    println!("written to {}", paths::display(&path));
    Ok(())
}

/// `docs/benchmarks.md`: the table of every configuration's rows, and what they measure.
fn markdown(oxen_s: &Samples, xen_s: &Samples, qemu: &str, cpu: &str) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Written by `cargo xtask bench`: the benchmark guest (`tests/guests/bench`) booted \
         {BOOTS} times per configuration on Oxen and on real Xen 4.17 as dom0, in one session, \
         under {qemu} (TCG, `-cpu max`, one CPU) on a host with {cpu}. The `evtchn-*` and \
         `vcpu-*` rows come from `bench events` with `{BENCH_EVENTS_OPTIONS}`; the `domain-*` \
         rows from `bench ping` as dom0 with the same image as domain 1 (`bench pong`, \
         hypervisor option `domU=2`), which real Xen cannot show here (no toolstack to start a \
         second domain). Xen runs with `{XEN_SCHEDULER}` (credit1, the design Oxen's scheduler \
         follows; Xen 4.17's default is credit2).\n"
    );
    let _ = writeln!(
        md,
        "Numbers are TSC cycles measured inside the guest: the median of each boot's median over \
         2000 runs. Under TCG they count emulated work, not real hardware time, so compare only \
         the ratios, and only between columns of one run. Lower is better; a ratio below 1.00 \
         means Oxen's path is shorter than Xen's.\n"
    );
    let _ = writeln!(
        md,
        "| Path | Oxen | Xen 4.17 | Oxen / Xen |\n|---|---:|---:|---:|"
    );
    for name in CONFIGS.iter().flat_map(|c| c.rows.iter()) {
        let Some(o) = oxen_s.get(name).and_then(|s| median(s)) else {
            continue;
        };
        let x = xen_s.get(name).and_then(|s| median(s));
        let (xs, ratio) = match x {
            Some(x) if x > 0 => (x.to_string(), format!("{:.2}", o as f64 / x as f64)),
            _ => ("-".to_owned(), "-".to_owned()),
        };
        let _ = writeln!(md, "| {name} | {o} | {xs} | {ratio} |");
    }
    let _ = writeln!(
        md,
        "\nWhat each row measures (every row includes `rdtsc`):\n"
    );
    for (name, note) in ROW_NOTES {
        let _ = writeln!(md, "- `{name}`: {note}");
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bench_lines() {
        let mut s = Samples::default();
        let t = "x\nBENCH null-hypercall 1200 (min 1100, 2000 runs)\nBENCH rdtsc 40 (min 38, 2000 runs)\nBENCH broken\n";
        assert_eq!(parse(t, &mut s), 2);
        assert_eq!(s.get("null-hypercall"), Some(&vec![1200]));
        assert_eq!(s.0[1].0, "rdtsc", "order of appearance is kept");
        assert_eq!(median(&[5, 1, 3]), Some(3));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn every_row_has_a_note() {
        for row in CONFIGS.iter().flat_map(|c| c.rows.iter()) {
            assert!(
                ROW_NOTES.iter().any(|(name, _)| name == row),
                "no note for {row}"
            );
        }
        assert_eq!(
            ROW_NOTES.len(),
            CONFIGS.iter().map(|c| c.rows.len()).sum::<usize>()
        );
    }

    #[test]
    fn table_has_every_row_and_dashes_where_xen_cannot_run() {
        let mut oxen_s = Samples::default();
        let mut xen_s = Samples::default();
        for name in CONFIGS.iter().flat_map(|c| c.rows.iter()) {
            oxen_s.push(name, 200);
            if !name.starts_with("domain-") {
                xen_s.push(name, 100);
            }
        }
        let md = markdown(&oxen_s, &xen_s, "QEMU", "a CPU");
        assert!(md.contains("| evtchn-send | 200 | 100 | 2.00 |"), "{md}");
        assert!(
            md.contains("| domain-yield-round-trip | 200 | - | - |"),
            "{md}"
        );
    }
}
