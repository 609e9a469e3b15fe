//! `cargo xtask bench`: runs the benchmark guests on Oxen and on real Xen 4.17 in the same
//! session and writes `docs/benchmarks.md`.
//!
//! Each benchmark guest prints `BENCH <name> <median cycles> (min <cycles>, <n> runs)` lines.
//! Every guest is booted several times on each hypervisor; the table reports the median of the
//! per-boot medians and the Oxen/Xen ratio. Under QEMU's TCG the TSC counts emulated path
//! length, so only ratios taken in one session on the same QEMU mean anything.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use oxen_tests::{Boot, paths};

/// Boots per guest and hypervisor.
const BOOTS: usize = 3;

/// The benchmark guests: image name and module arguments.
const GUESTS: &[(&str, &str)] = &[("bench", "bench")];

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

fn run(boot: Boot, what: &str, into: &mut Samples) -> Result<()> {
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
    if parse(&out.transcript, into) == 0 {
        bail!(
            "{what}: no BENCH lines in the transcript:\n{}",
            out.transcript
        );
    }
    Ok(())
}

/// Runs the benchmarks and writes `docs/benchmarks.md`.
///
/// # Errors
/// A guest is missing, fails its checks, or prints no results.
pub fn bench() -> Result<()> {
    let images = paths::image_dir();
    let xen = images.join(oxen_tests::xen::IMAGE_NAME);
    let mut oxen_s = Samples::default();
    let mut xen_s = Samples::default();
    for (guest, args) in GUESTS {
        let image = images.join(guest);
        if !image.is_file() {
            bail!(
                "{} missing: run `cargo xtask build`",
                paths::display(&image)
            );
        }
        for i in 0..BOOTS {
            eprintln!("bench: {guest} on Oxen ({}/{BOOTS})", i + 1);
            run(
                Boot::hypervisor()
                    .append("dom0_mem=32M")
                    .module(&image, args),
                "Oxen",
                &mut oxen_s,
            )?;
            if xen.is_file() {
                eprintln!("bench: {guest} on Xen 4.17 ({}/{BOOTS})", i + 1);
                run(
                    Boot::xen().append("dom0_mem=32M").module(&image, args),
                    "Xen",
                    &mut xen_s,
                )?;
            }
        }
    }
    let qemu = std::process::Command::new(oxen_tests::find_qemu()?)
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();

    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Written by `cargo xtask bench`: the benchmark guests (`tests/guests/bench`) booted {BOOTS} times \
         each on Oxen and on real Xen 4.17 as dom0, in one session, under {qemu} (TCG, `-cpu max`) on \
         a host with {cpu}.\n"
    );
    let _ = writeln!(
        md,
        "Numbers are TSC cycles measured inside the guest: the median of each boot's median over 2000 \
         runs. Under TCG they count emulated work, not real hardware time, so compare only the \
         ratios, and only between columns of one run. Lower is better; a ratio below 1.00 means \
         Oxen's path is shorter than Xen's.\n"
    );
    let _ = writeln!(
        md,
        "| Path | Oxen | Xen 4.17 | Oxen / Xen |\n|---|---:|---:|---:|"
    );
    for (name, samples) in &oxen_s.0 {
        let o = median(samples).unwrap_or(0);
        let x = xen_s.get(name).and_then(|s| median(s));
        let (xs, ratio) = match x {
            Some(x) if x > 0 => (x.to_string(), format!("{:.2}", o as f64 / x as f64)),
            _ => ("-".to_owned(), "-".to_owned()),
        };
        let _ = writeln!(md, "| {name} | {o} | {xs} | {ratio} |");
    }
    let _ = writeln!(
        md,
        "\n`rdtsc` is the cost of the measurement itself (two fenced TSC reads); the other rows \
         include it."
    );
    let path = paths::workspace_root().join("docs/benchmarks.md");
    std::fs::write(&path, &md).with_context(|| format!("writing {}", path.display()))?;
    println!("{md}");
    println!("written to {}", paths::display(&path));
    Ok(())
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
}
