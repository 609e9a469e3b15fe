//! Making sure the machine has what `run` and `test` need (QEMU 10), so the README's two
//! commands work on a fresh Debian machine: when QEMU is missing or too old and we run as
//! root, `.ci/setup` installs it; otherwise the error says what to run.

use std::process::Command;

use anyhow::{Result, bail};

use crate::{describe, run_checked};

/// The QEMU major version the tests need (see `docs/testing.md`).
const QEMU_MAJOR: u32 = 10;

/// The major version `qemu-system-x86_64 --version` reports, if it runs.
fn qemu_major() -> Option<u32> {
    let out =
        Command::new(std::env::var_os("OXEN_QEMU").unwrap_or_else(|| "qemu-system-x86_64".into()))
            .arg("--version")
            .output()
            .ok()?;
    parse_qemu_major(&String::from_utf8_lossy(&out.stdout))
}

/// `QEMU emulator version 10.0.2 (...)` → 10.
fn parse_qemu_major(version: &str) -> Option<u32> {
    let rest = version.lines().next()?.split("version ").nth(1)?;
    rest.split('.').next()?.trim().parse().ok()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Ensures QEMU 10 or later is installed, installing it with `.ci/setup` when possible.
///
/// # Errors
/// QEMU is missing or old and cannot be installed from here.
pub fn ensure_qemu() -> Result<()> {
    if qemu_major().is_some_and(|m| m >= QEMU_MAJOR) {
        return Ok(());
    }
    let setup = oxen_tests::paths::workspace_root().join(".ci/setup");
    if is_root() && setup.is_file() {
        eprintln!("xtask: QEMU {QEMU_MAJOR} not found: installing it with .ci/setup");
        let mut cmd = Command::new(&setup);
        run_checked(&mut cmd, "installing the build and test dependencies")?;
        if qemu_major().is_some_and(|m| m >= QEMU_MAJOR) {
            return Ok(());
        }
        bail!(
            "`{}` ran but QEMU {QEMU_MAJOR} is still missing",
            describe(&cmd)
        );
    }
    bail!(
        "QEMU {QEMU_MAJOR} or later is needed (qemu-system-x86_64 from Debian's \
         bookworm-backports); run `sudo .ci/setup` once to install it"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(
            parse_qemu_major("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2)\nCopyright"),
            Some(10)
        );
        assert_eq!(parse_qemu_major("QEMU emulator version 7.2.15"), Some(7));
        assert_eq!(parse_qemu_major("bash: qemu: command not found"), None);
        assert_eq!(parse_qemu_major(""), None);
    }
}
