//! Malformed and hostile dom0 images: each is refused with a clear message, and the
//! hypervisor stops with a boot error instead of crashing (exit code 0x21, never 0x30).
//!
//! The images are variants of `target/oxen/indep-c` (a valid PV kernel built by
//! `cargo xtask build`), patched in memory and written to a temporary file per test.

use std::path::PathBuf;
use std::time::Duration;

use oxen_tests::{Boot, DebugExit, Outcome, paths};

const TIMEOUT: Duration = Duration::from_secs(30);

fn kernel() -> Vec<u8> {
    let p = paths::image_dir().join("indep-c");
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e} (run `cargo xtask build`)", p.display()))
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Offsets of the program headers of type `ty`.
fn phdrs(b: &[u8], ty: u32) -> Vec<usize> {
    let phoff = usize::try_from(u64_at(b, 32)).expect("phoff");
    let size = usize::from(u16_at(b, 54));
    (0..usize::from(u16_at(b, 56)))
        .map(|i| phoff + i * size)
        .filter(|&p| u32_at(b, p) == ty)
        .collect()
}

/// The file offset of the descriptor of the Xen note of type `ty`, and its size.
fn note(b: &[u8], ty: u32) -> (usize, usize) {
    for ph in phdrs(b, 4) {
        let off = usize::try_from(u64_at(b, ph + 8)).expect("offset");
        let size = usize::try_from(u64_at(b, ph + 32)).expect("size");
        let mut at = off;
        while at + 12 <= off + size {
            let namesz = u32_at(b, at) as usize;
            let descsz = u32_at(b, at + 4) as usize;
            let desc = at + 12 + namesz.div_ceil(4) * 4;
            if u32_at(b, at + 8) == ty && &b[at + 12..at + 15] == b"Xen" {
                return (desc, descsz);
            }
            at = desc + descsz.div_ceil(4) * 4;
        }
    }
    panic!("no Xen note of type {ty}");
}

fn write_temp(name: &str, bytes: &[u8]) -> PathBuf {
    let p = std::env::temp_dir().join(format!("oxen-image-{}-{name}", std::process::id()));
    std::fs::write(&p, bytes).expect("temp file");
    p
}

/// Boots `bytes` as dom0 and checks that it is refused with `message` as a boot error.
fn refused(name: &str, bytes: &[u8], message: &str) -> Outcome {
    let path = write_temp(name, bytes);
    let out = Boot::hypervisor()
        .append("dom0_mem=16M")
        .module(&path, "dom0")
        .timeout(TIMEOUT)
        .run()
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let _ = std::fs::remove_file(&path);
    println!("{name}: {} in {:.3} s", out.exit, out.elapsed.as_secs_f64());
    out.assert_contains("cannot build dom0")
        .assert_contains(message)
        .assert_not_contains("FATAL")
        .assert_exit(DebugExit::BootError);
    out
}

#[test]
fn not_an_elf() {
    refused(
        "not-elf",
        b"#!/bin/sh\necho this is not a kernel\n",
        "not an ELF image",
    );
}

#[test]
fn truncated_image() {
    let k = kernel();
    refused("truncated", &k[..k.len() / 3], "truncated image");
}

#[test]
fn program_header_count_beyond_the_file() {
    let mut k = kernel();
    k[56..58].copy_from_slice(&0xffffu16.to_le_bytes());
    refused("huge-phnum", &k, "truncated image: program headers");
}

#[test]
fn overlapping_segments() {
    let mut k = kernel();
    let loads = phdrs(&k, 1);
    assert!(loads.len() >= 2, "indep-c has two PT_LOADs");
    // Move the second segment's physical address into the first one.
    let first = u64_at(&k, loads[0] + 24);
    put64(&mut k, loads[1] + 24, first + 0x1000);
    refused("overlap", &k, "overlap");
}

#[test]
fn entry_outside_the_image() {
    let mut k = kernel();
    let (desc, _) = note(&k, 1); // XEN_ELFNOTE_ENTRY
    put64(&mut k, desc, 0xffff_ffff_9000_0000);
    refused(
        "entry",
        &k,
        "entry point 0xffffffff90000000 outside the image",
    );
}

#[test]
fn wrong_xen_version_note() {
    let mut k = kernel();
    let (desc, _) = note(&k, 5); // XEN_ELFNOTE_XEN_VERSION
    k[desc..desc + 7].copy_from_slice(b"xen-2.0");
    refused(
        "xen-version",
        &k,
        "XEN_VERSION note missing or not for xen-3.0",
    );
}

#[test]
fn wrong_loader_note() {
    let mut k = kernel();
    let (desc, _) = note(&k, 8); // XEN_ELFNOTE_LOADER
    k[desc..desc + 7].copy_from_slice(b"elfboot");
    refused("loader", &k, "LOADER note missing or not 'generic'");
}

#[test]
fn unknown_required_feature() {
    let mut k = kernel();
    let (desc, size) = note(&k, 10); // XEN_ELFNOTE_FEATURES: "dom0"
    assert!(size >= 5);
    k[desc..desc + 5].copy_from_slice(b"!zap\0");
    refused("feature", &k, "requires feature 'zap'");
}

#[test]
fn hypercall_page_outside_the_image() {
    let mut k = kernel();
    let (desc, _) = note(&k, 2); // XEN_ELFNOTE_HYPERCALL_PAGE
    put64(&mut k, desc, 0xffff_ffff_8800_0000);
    refused(
        "hypercall-page",
        &k,
        "hypercall page 0xffffffff88000000 outside the image",
    );
}

#[test]
fn too_big_for_its_memory() {
    let path = paths::image_dir().join("indep-c");
    let out = Boot::hypervisor()
        .append("dom0_mem=2M")
        .module(&path, "dom0")
        .timeout(TIMEOUT)
        .run()
        .unwrap_or_else(|e| panic!("{e}"));
    out.assert_contains("cannot build dom0: kernel does not fit: the initial mapping needs")
        .assert_exit(DebugExit::BootError);
}
