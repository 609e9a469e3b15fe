//! `cargo xtask run`: build, boot under QEMU on this terminal, report how it ended.

use std::process::{Command, ExitCode};

use anyhow::{Context, Result};
use oxen_tests::qemu::{Accel, qemu_args};
use oxen_tests::{Exit, describe_command, find_qemu, paths};

use crate::{RunArgs, images, iso, qemu};

/// Runs QEMU with the serial console (and, after Ctrl-A c, the monitor) on the terminal.
///
/// Exits 0 when the run ended cleanly (dom0 powered off, or the hypervisor halted with
/// nothing left to run); otherwise with QEMU's own status (`2v + 1` for a debug-exit code
/// `v`, 1 when QEMU ended by itself with 0, 128 + n for a signal).
///
/// # Errors
/// The build fails, a module is missing or malformed, or QEMU cannot be started.
pub fn run(args: &RunArgs) -> Result<ExitCode> {
    images::build(args.build.profile())?;
    let iso = if args.iso {
        Some(iso::make_iso(&args.boot)?)
    } else {
        None
    };
    let mut config = qemu::run_config(&args.boot, iso)?;
    config.accel = args.accel.into();
    config.cpu.clone_from(&args.cpu);
    config.memory_mib = args.memory;
    config.gdb = args.gdb;
    config.extra_args = args.qemu_args.iter().map(Into::into).collect();

    if config.accel == Accel::Kvm {
        eprintln!(
            "oxen: warning: on this project's machines KVM has no VT-x/AMD-V and emulates \
             ring 0: a ring-0 hypervisor cannot run correctly there (see docs/testing.md). \
             Use it only on a host with hardware virtualization."
        );
    }
    let program = find_qemu()?;
    let argv = qemu_args(&config)?;
    eprintln!("oxen: {}", describe_command(&program, &argv));
    if config.gdb {
        let syms = paths::image_dir().join(format!("{}-syms", oxen_tests::HYPERVISOR_IMAGE));
        eprintln!(
            "oxen: QEMU waits for gdb: gdb {} -ex 'target remote :1234'",
            paths::display(&syms)
        );
    }
    eprintln!(
        "oxen: serial console follows (Ctrl-A x quits, Ctrl-A c switches to the QEMU monitor)"
    );

    let status = Command::new(&program)
        .args(&argv)
        .status()
        .with_context(|| format!("cannot run {}", program.display()))?;
    let exit = Exit::from_exit_status(status);
    eprintln!("oxen: {exit}");
    Ok(exit_code(&exit, status.code()))
}

/// The process exit code for a run that ended with `exit` (QEMU's own status `status`).
fn exit_code(exit: &Exit, status: Option<i32>) -> ExitCode {
    if exit.is_clean() {
        return ExitCode::SUCCESS;
    }
    let code = match exit {
        Exit::Signal(signal) => 128 + signal,
        _ => status.unwrap_or(1),
    };
    match u8::try_from(code) {
        Ok(0) | Err(_) => ExitCode::FAILURE,
        Ok(code) => ExitCode::from(code),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxen_tests::DebugExit;

    #[test]
    fn exit_codes() {
        let poweroff = Exit::debug(DebugExit::Dom0Poweroff);
        assert_eq!(exit_code(&poweroff, Some(33)), ExitCode::SUCCESS);
        let boot_error = Exit::debug(DebugExit::BootError);
        assert_eq!(exit_code(&boot_error, Some(0x43)), ExitCode::from(0x43));
        assert_eq!(exit_code(&Exit::QemuStatus(0), Some(0)), ExitCode::FAILURE);
        assert_eq!(exit_code(&Exit::Signal(9), None), ExitCode::from(137));
    }
}
