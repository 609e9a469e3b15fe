//! Differential tests: the same QEMU command line on real Xen 4.17 and on Oxen.
//!
//! Real Xen (`target/oxen/xen-4.17`, fetched by `cargo xtask build`) never exits QEMU: the
//! harness stops it at one of `oxen_tests::xen::END_MARKERS`. These tests skip, printing
//! `skipped: ...`, only when the Xen image could not be obtained.

use std::time::Duration;

use oxen_tests::{Boot, DebugExit, Exit, xen};

const TIMEOUT: Duration = Duration::from_secs(30);

/// Without a dom0 kernel, both hypervisors refuse to go on: Xen panics, Oxen stops with a
/// boot error.
#[test]
fn no_dom0_module_stops_both() {
    if xen::skip_if_missing() {
        return;
    }
    let reference = Boot::xen()
        .timeout(TIMEOUT)
        .run()
        .unwrap_or_else(|err| panic!("{err}"));
    println!(
        "xen: {} in {:.3} s",
        reference.exit,
        reference.elapsed.as_secs_f64()
    );
    reference
        .assert_contains("Xen version 4.17")
        .assert_contains("Command line: console=com1 loglvl=all noreboot dom0=pv")
        .assert_contains("dom0 kernel not specified")
        .assert_exit(Exit::EndMarker(xen::PANIC_HALTED.into()));
    // Xen's `\r\r\n` line ends are normalised.
    assert!(!reference.transcript.contains('\r'));

    let oxen = Boot::hypervisor()
        .timeout(TIMEOUT)
        .run()
        .unwrap_or_else(|err| panic!("{err}"));
    println!("oxen: {} in {:.3} s", oxen.exit, oxen.elapsed.as_secs_f64());
    oxen.assert_contains("no dom0 kernel module")
        .assert_exit(DebugExit::BootError);
}

/// A dom0 module that is not an ELF image: Xen refuses it while building dom0.
#[test]
fn xen_refuses_a_non_elf_dom0() {
    if xen::skip_if_missing() {
        return;
    }
    let not_elf = oxen_tests::paths::workspace_root().join("Cargo.toml");
    let out = Boot::xen()
        .module(&not_elf, "dom0 console=hvc0")
        .timeout(TIMEOUT)
        .run()
        .unwrap_or_else(|err| panic!("{err}"));
    println!("xen: {} in {:.3} s", out.exit, out.elapsed.as_secs_f64());
    out.assert_contains("*** Building a PV Dom0 ***")
        .assert_contains("ELF: not an ELF binary")
        .assert_contains("Could not construct domain 0")
        .assert_exit(Exit::EndMarker(xen::PANIC_HALTED.into()));
}
