//! `cargo xtask build`, second part: guest kernels written in C and built with the system
//! `gcc`.
//!
//! The Rust guests share Oxen's crates (`pv-guest-kit`, `hypercall-abi`), so they cannot
//! show that the hypervisor implements the ABI as written rather than as our crates read
//! it. The C guests share no code with the project: each follows `shared/xen-pv-abi.md`
//! alone. Every C guest is one line of [`C_GUESTS`]: a directory under `tests/guests/`, its
//! sources, its linker script and its `-D` defines, linked into `target/oxen/<name>`.
//! `gcc` (Debian's 12.2 on the project's machines) is the only tool needed; the build fails
//! with a clear message without it.

use std::ffi::OsString;
use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use oxen_tests::paths;

use crate::{run_checked, tool_exists};

/// The compiler, found on `PATH`.
pub const GCC: &str = "gcc";

/// One C guest kernel.
#[derive(Clone, Copy, Debug)]
pub struct CGuest {
    /// The file name in `target/oxen/`.
    pub name: &'static str,
    /// Its directory, relative to the workspace root.
    pub dir: &'static str,
    /// C (`.c`) and assembly (`.S`, preprocessed) sources in `dir`, compiled and linked in
    /// one `gcc` run.
    pub sources: &'static [&'static str],
    /// The linker script in `dir`.
    pub linker_script: &'static str,
    /// `-DNAME=VALUE` definitions.
    pub defines: &'static [(&'static str, &'static str)],
}

/// Every C guest `cargo xtask build` makes.
pub const C_GUESTS: &[CGuest] = &[CGuest {
    name: "indep-c",
    dir: "tests/guests/indep-c",
    sources: &["entry.S", "kernel.c"],
    linker_script: "indep.ld",
    // xen_version(XENVER_version) of Xen 4.17, which Oxen reports too.
    defines: &[("EXPECTED_XEN_VERSION", "0x00040011")],
}];

/// Flags for a freestanding 64-bit PV kernel linked in the top 2 GiB: no libc, no start
/// files, no red zone (the hypervisor's bounce frames land below `rsp`), no SSE (nothing
/// depends on the FPU state), no PIE, no stack protector, no unwind tables.
pub const CFLAGS: &[&str] = &[
    "-std=gnu11",
    "-O2",
    "-g",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-ffreestanding",
    "-fno-builtin",
    "-nostdlib",
    "-nostartfiles",
    "-static",
    "-no-pie",
    "-fno-pic",
    "-mcmodel=kernel",
    "-mno-red-zone",
    "-mgeneral-regs-only",
    "-fno-stack-protector",
    "-fno-asynchronous-unwind-tables",
    "-fno-unwind-tables",
    "-Wl,-z,max-page-size=4096",
    "-Wl,-z,noexecstack",
    "-Wl,--build-id=none",
];

/// `gcc`'s arguments for `guest` (sources under `root`), writing `output`.
pub fn gcc_args(guest: &CGuest, root: &Path, output: &Path) -> Vec<OsString> {
    let dir = root.join(guest.dir);
    let mut args: Vec<OsString> = CFLAGS.iter().map(OsString::from).collect();
    args.extend(
        guest
            .defines
            .iter()
            .map(|(name, value)| OsString::from(format!("-D{name}={value}"))),
    );
    let mut script = OsString::from("-Wl,-T,");
    script.push(dir.join(guest.linker_script));
    args.push(script);
    args.push("-o".into());
    args.push(output.into());
    args.extend(
        guest
            .sources
            .iter()
            .map(|src| dir.join(src).into_os_string()),
    );
    args
}

/// Builds every C guest of [`C_GUESTS`] into `out_dir`.
///
/// # Errors
/// `gcc` is missing or fails (its messages are on the terminal), or the result is not a
/// 64-bit x86 ELF executable.
pub fn build(out_dir: &Path) -> Result<()> {
    if C_GUESTS.is_empty() {
        return Ok(());
    }
    if !tool_exists(GCC) {
        let dirs: Vec<&str> = C_GUESTS.iter().map(|g| g.dir).collect();
        bail!(
            "`{GCC}` not found on PATH: the C test guests ({}) are built with the system C \
             compiler; install it (Debian: apt-get install gcc)",
            dirs.join(", ")
        );
    }
    let root = paths::workspace_root();
    for guest in C_GUESTS {
        let output = out_dir.join(guest.name);
        let partial = out_dir.join(format!("{}.partial", guest.name));
        let mut command = Command::new(GCC);
        command
            .args(gcc_args(guest, &root, &partial))
            .current_dir(&root);
        run_checked(
            &mut command,
            &format!("building the C guest {}", guest.name),
        )?;
        let bytes =
            fs::read(&partial).with_context(|| format!("cannot read {}", partial.display()))?;
        if !is_x86_64_executable(&bytes) {
            bail!(
                "{}: gcc did not produce a 64-bit x86 ELF executable",
                partial.display()
            );
        }
        fs::rename(&partial, &output)
            .with_context(|| format!("cannot write {}", output.display()))?;
        println!(
            "{}: {} KiB (C guest from {}, built with {GCC})",
            paths::display(&output),
            bytes.len().div_ceil(1024),
            guest.dir
        );
    }
    Ok(())
}

/// ELF64, little endian, `ET_EXEC`, `EM_X86_64`.
fn is_x86_64_executable(bytes: &[u8]) -> bool {
    const ET_EXEC: u16 = 2;
    const EM_X86_64: u16 = 62;
    let half = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    bytes.starts_with(b"\x7fELF\x02\x01")
        && half(16) == Some(ET_EXEC)
        && half(18) == Some(EM_X86_64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_in_the_tree() {
        let root = paths::workspace_root();
        for guest in C_GUESTS {
            let dir = root.join(guest.dir);
            for file in guest.sources.iter().chain([&guest.linker_script]) {
                assert!(dir.join(file).is_file(), "{}/{file} missing", guest.dir);
            }
            assert!(!guest.name.ends_with("-syms") && guest.name != oxen_tests::xen::IMAGE_NAME);
            assert!(crate::images::IMAGES.iter().all(|i| i.name != guest.name));
        }
    }

    #[test]
    fn gcc_command_line() {
        let guest = CGuest {
            name: "t",
            dir: "tests/guests/t",
            sources: &["a.S", "b.c"],
            linker_script: "t.ld",
            defines: &[("X", "0x1")],
        };
        let args = gcc_args(&guest, Path::new("/w"), Path::new("/o/t.partial"));
        let args: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        for flag in [
            "-ffreestanding",
            "-nostdlib",
            "-mno-red-zone",
            "-mcmodel=kernel",
        ] {
            assert!(args.iter().any(|a| a == flag), "{flag} missing");
        }
        let tail = &args[args.len() - 6..];
        assert_eq!(
            tail,
            [
                "-DX=0x1",
                "-Wl,-T,/w/tests/guests/t/t.ld",
                "-o",
                "/o/t.partial",
                "/w/tests/guests/t/a.S",
                "/w/tests/guests/t/b.c",
            ]
        );
    }

    #[test]
    fn elf_header_check() {
        let mut header = vec![0u8; 64];
        header[..6].copy_from_slice(b"\x7fELF\x02\x01");
        header[16] = 2;
        header[18] = 62;
        assert!(is_x86_64_executable(&header));
        header[18] = 3;
        assert!(!is_x86_64_executable(&header));
        assert!(!is_x86_64_executable(b"\x7fELF"));
    }
}
