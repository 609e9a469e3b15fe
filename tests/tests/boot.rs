//! The hypervisor's boot: banner, memory, command line, modules, fatal faults.
//!
//! Each test boots `target/oxen/xen-core` (built by `cargo xtask build`) under QEMU/TCG and
//! asserts on the serial transcript and the isa-debug-exit code. Boots take well under 2 s;
//! the elapsed time is printed (see it with `--nocapture`) but never asserted.

use std::time::Duration;

use oxen_tests::{Boot, DebugExit, Outcome, paths};

/// Generous: a boot takes well under 2 s, but tests run in parallel on a 2-core machine.
const TIMEOUT: Duration = Duration::from_secs(30);

fn boot() -> Boot {
    Boot::hypervisor().timeout(TIMEOUT)
}

#[track_caller]
fn run(test: &str, boot: Boot) -> Outcome {
    let out = boot.run().unwrap_or_else(|err| panic!("{test}: {err}"));
    println!(
        "{test}: {} in {:.3} s (banner after {})",
        out.exit,
        out.elapsed.as_secs_f64(),
        out.time_to_first_line("Oxen")
            .map_or_else(|| "-".to_owned(), |t| format!("{:.3} s", t.as_secs_f64()))
    );
    out
}

/// `RAM: <usable> MiB usable of <total> MiB`: (usable, total).
fn ram_line(out: &Outcome) -> (u64, u64) {
    let Some(rest) = out.after("RAM: ") else {
        out.fail("no `RAM: ` line");
    };
    let words: Vec<&str> = rest.split_whitespace().collect();
    match words.as_slice() {
        [usable, "MiB", "usable", "of", total, "MiB", ..] => {
            match (usable.parse(), total.parse()) {
                (Ok(usable), Ok(total)) => (usable, total),
                _ => out.fail(&format!("unparsable RAM line: {rest:?}")),
            }
        }
        _ => out.fail(&format!(
            "RAM line {rest:?} is not `RAM: <usable> MiB usable of <total> MiB`"
        )),
    }
}

fn banner_and_memory(test: &str, memory_mib: u64) {
    let out = run(
        test,
        boot().memory_mib(u32::try_from(memory_mib).expect("small")),
    );
    out.assert_contains("Oxen");
    let (usable, total) = ram_line(&out);
    // QEMU's `-m` minus the BIOS areas below 1 MiB and the firmware's reservations.
    if total * 100 < memory_mib * 97 || total > memory_mib {
        out.fail(&format!(
            "total RAM {total} MiB is not within 97%..100% of -m {memory_mib}"
        ));
    }
    if usable > total || usable * 100 < memory_mib * 95 {
        out.fail(&format!(
            "usable RAM {usable} MiB is not within 95% of -m {memory_mib} and at most the total {total} MiB"
        ));
    }
    out.assert_exit(DebugExit::BootError);
}

#[test]
fn banner_and_memory_256m() {
    banner_and_memory("banner_and_memory_256m", 256);
}

#[test]
fn banner_and_memory_1024m() {
    banner_and_memory("banner_and_memory_1024m", 1024);
}

#[test]
fn command_line_is_echoed_and_unknown_options_warned() {
    let out = run(
        "command_line",
        boot().append("loglvl=all dom0_mem=128M noreboot frobnicate=1"),
    );
    out.assert_contains(
        "Command line: console=com1 loglvl=all dom0_mem=128M noreboot frobnicate=1",
    );
    let Some(warning) = out.line_matching("unknown option 'frobnicate'") else {
        out.fail("no warning about the unknown option 'frobnicate'");
    };
    if !warning.to_lowercase().contains("warn") {
        out.fail(&format!("{warning:?} is not a warning line"));
    }
    for known in ["console", "loglvl", "dom0_mem", "noreboot"] {
        out.assert_not_contains(&format!("unknown option '{known}'"));
    }
    // An unknown option does not stop the boot.
    out.assert_contains("no dom0 kernel module")
        .assert_exit(DebugExit::BootError);
}

#[test]
fn no_dom0_module_is_a_boot_error() {
    let out = run("no_dom0_module", boot());
    out.assert_contains("no dom0 kernel module")
        .assert_exit(DebugExit::BootError);
}

/// Parses a hex number with or without `0x`.
fn hex(text: &str) -> Option<u64> {
    u64::from_str_radix(text.trim().trim_start_matches("0x"), 16).ok()
}

#[test]
fn dom0_module_is_found() {
    // Any file will do: the hypervisor's own symbols are an ELF, but no PV kernel.
    let module = paths::image_dir().join("xen-core-syms");
    let size = std::fs::metadata(&module)
        .unwrap_or_else(|err| panic!("{}: {err} (run `cargo xtask build`)", module.display()))
        .len();
    let out = run("dom0_module", boot().module(&module, "dom0 console=hvc0"));
    // `module 1: <start>-<end> (<size> KiB) '<string>'` (modules count from 1)
    let Some(line) = out.after("module 1: ") else {
        out.fail("no `module 1: ` line");
    };
    let parsed = line.split_once('-').and_then(|(start, rest)| {
        let (end, rest) = rest.split_once(" (")?;
        let (kib, rest) = rest.split_once(" KiB) '")?;
        let string = rest.strip_suffix('\'')?;
        Some((
            hex(start)?,
            hex(end)?,
            kib.trim().parse::<u64>().ok()?,
            string,
        ))
    });
    let Some((start, end, kib, string)) = parsed else {
        out.fail(&format!(
            "module line {line:?} is not `<start>-<end> (<size> KiB) '<string>'`"
        ));
    };
    if start % 4096 != 0 {
        out.fail(&format!("module 1 starts at {start:#x}, not page aligned"));
    }
    // The end may be exclusive or inclusive; the size rounded either way.
    if end
        .checked_sub(start)
        .is_none_or(|len| len != size && len + 1 != size)
    {
        out.fail(&format!(
            "module 1 spans {start:#x}-{end:#x}, but the file has {size} bytes"
        ));
    }
    if kib != size / 1024 && kib != size.div_ceil(1024) {
        out.fail(&format!(
            "module 1 is {kib} KiB, but the file has {size} bytes"
        ));
    }
    if !string.ends_with("dom0 console=hvc0") {
        out.fail(&format!(
            "module 1's string {string:?} does not end with its arguments"
        ));
    }
    out.assert_contains("cannot build dom0: kernel image refused: no Xen ELF notes")
        .assert_exit(DebugExit::BootError);
}

fn fatal_fault(kind: &str, vector: &str) -> Outcome {
    let test = format!("fault_{kind}");
    let out = run(&test, boot().append(&format!("test_fault={kind}")));
    out.assert_contains("FATAL")
        .assert_contains(vector)
        .assert_exit(DebugExit::Panic);
    out
}

#[test]
fn invalid_opcode_is_fatal() {
    fatal_fault("ud", "vector 6 (#UD)");
}

#[test]
fn page_fault_is_fatal_and_reports_cr2() {
    let out = fatal_fault("pf", "vector 14 (#PF)");
    out.assert_contains("CR2");
}

#[test]
fn general_protection_fault_is_fatal() {
    fatal_fault("gp", "vector 13 (#GP)");
}
