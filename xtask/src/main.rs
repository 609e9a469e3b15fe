//! `cargo xtask`: Oxen's only build entry point.
//!
//! - `cargo xtask build [--debug]`: the hypervisor (and later the guest images) in `target/oxen/`.
//! - `cargo xtask run [...] [-- <qemu args>]`: build, then boot under QEMU on this terminal.
//! - `cargo xtask test [-- <cargo test args>]`: fmt, clippy, bare-metal builds, images, every test.
//! - `cargo xtask iso [...]`: a GRUB (multiboot2) ISO, `target/oxen/oxen.iso`.
//! - `cargo xtask bench`: benchmark guests on Oxen and real Xen, into `docs/benchmarks.md`.
//!
//! See `docs/testing.md`.

#![forbid(unsafe_code)]

mod bench;
mod c_guests;
mod deps;
mod elf32;
mod images;
mod iso;
mod qemu;
mod run;
mod test;

use std::ffi::OsStr;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Oxen's build tool.
#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    about = "Oxen's build tool: the only build entry point"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Build the hypervisor into target/oxen/xen-core (32-bit multiboot ELF) and
    /// target/oxen/xen-core-syms (64-bit ELF with symbols); fetch real Xen for the
    /// differential tests.
    Build(BuildArgs),
    /// Build, then boot the hypervisor under QEMU with the serial console on this terminal
    /// (Ctrl-A x quits, Ctrl-A c switches to the QEMU monitor).
    Run(RunArgs),
    /// The project's test command: cargo fmt --check, clippy (host and bare metal), the
    /// bare-metal builds and images, then cargo test --workspace (unit and QEMU tests).
    Test(TestArgs),
    /// Build target/oxen/oxen.iso: GRUB booting the hypervisor with multiboot2.
    Iso(IsoArgs),
    /// Run the benchmark guests on Oxen and on real Xen 4.17 and write docs/benchmarks.md.
    Bench,
}

#[derive(Debug, Args)]
struct BuildArgs {
    /// Build with the dev profile instead of --release.
    #[arg(long)]
    debug: bool,
}

impl BuildArgs {
    fn profile(&self) -> images::Profile {
        if self.debug {
            images::Profile::Debug
        } else {
            images::Profile::Release
        }
    }
}

/// The hypervisor's command line and modules.
#[derive(Debug, Args)]
struct BootArgs {
    /// Hypervisor command line, after `console=com1`.
    #[arg(long, value_name = "CMDLINE", default_value = "")]
    append: String,
    /// A multiboot module: "path args..." (modules count from 1: the first is dom0's kernel; no commas). Repeatable.
    #[arg(long = "module", value_name = "PATH ARGS")]
    modules: Vec<String>,
}

/// `--accel`.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum AccelArg {
    /// Software emulation, `-cpu max` (the default, and what the tests use).
    Tcg,
    /// `-accel kvm -cpu host,-arch-capabilities` (not usable on this project's machines).
    Kvm,
}

impl From<AccelArg> for oxen_tests::Accel {
    fn from(accel: AccelArg) -> oxen_tests::Accel {
        match accel {
            AccelArg::Tcg => oxen_tests::Accel::Tcg,
            AccelArg::Kvm => oxen_tests::Accel::Kvm,
        }
    }
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    build: BuildArgs,
    #[command(flatten)]
    boot: BootArgs,
    /// QEMU accelerator.
    #[arg(long, value_enum, default_value = "tcg")]
    accel: AccelArg,
    /// Guest RAM in MiB.
    #[arg(long, short = 'm', value_name = "MiB", default_value_t = oxen_tests::qemu::DEFAULT_MEMORY_MIB)]
    memory: u32,
    /// QEMU CPU model (default: max with TCG, host,-arch-capabilities with KVM).
    #[arg(long, value_name = "MODEL")]
    cpu: Option<String>,
    /// Start a gdb stub on tcp::1234 and wait for gdb (-s -S); load target/oxen/xen-core-syms.
    #[arg(long)]
    gdb: bool,
    /// Boot target/oxen/oxen.iso (GRUB, multiboot2) with -cdrom instead of -kernel.
    #[arg(long)]
    iso: bool,
    /// Extra QEMU arguments (after `--`).
    #[arg(last = true, value_name = "QEMU ARGS")]
    qemu_args: Vec<String>,
}

#[derive(Debug, Args)]
struct TestArgs {
    /// Arguments for `cargo test --workspace` (after `--`), e.g. a test name filter.
    #[arg(last = true, value_name = "CARGO TEST ARGS")]
    cargo_test_args: Vec<String>,
}

#[derive(Debug, Args)]
struct IsoArgs {
    #[command(flatten)]
    build: BuildArgs,
    #[command(flatten)]
    boot: BootArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Build(args) => images::build(args.profile()).map(|()| ExitCode::SUCCESS),
        Cmd::Run(args) => deps::ensure_qemu().and_then(|()| run::run(&args)),
        Cmd::Test(args) => deps::ensure_qemu().and_then(|()| test::test(&args.cargo_test_args)),
        Cmd::Bench => deps::ensure_qemu()
            .and_then(|()| images::build(images::Profile::Release))
            .and_then(|()| bench::bench())
            .map(|()| ExitCode::SUCCESS),
        Cmd::Iso(args) => images::build(args.build.profile())
            .and_then(|()| iso::make_iso(&args.boot))
            .map(|_| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `cargo`, the one running this xtask (`$CARGO`), in the workspace root.
fn cargo() -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(program);
    command.current_dir(oxen_tests::paths::workspace_root());
    command
}

/// Runs `command` with its output on the terminal; fails if it fails.
fn run_checked(command: &mut Command, what: &str) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("{what}: cannot run {}", describe(command)))?;
    if !status.success() {
        bail!("{what}: `{}` failed ({status})", describe(command));
    }
    Ok(())
}

/// A command as a line, for messages (the program by its file name).
fn describe(command: &Command) -> String {
    let program = command.get_program();
    let program = std::path::Path::new(program).file_name().unwrap_or(program);
    std::iter::once(program)
        .chain(command.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether `name` is an executable on `PATH`.
fn tool_exists(name: &str) -> bool {
    oxen_tests::find_on_path(name).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_arguments_parse() {
        let cli = Cli::try_parse_from([
            "xtask",
            "run",
            "--accel",
            "kvm",
            "-m",
            "1024",
            "--append",
            "loglvl=all",
            "--module",
            "target/oxen/hello hello arg1",
            "--module",
            "ramdisk",
            "--gdb",
            "--",
            "-smp",
            "2",
        ])
        .expect("valid arguments");
        let Cmd::Run(args) = cli.command else {
            panic!("not a run command");
        };
        assert!(matches!(args.accel, AccelArg::Kvm));
        assert_eq!(args.memory, 1024);
        assert_eq!(args.boot.append, "loglvl=all");
        assert_eq!(
            args.boot.modules,
            ["target/oxen/hello hello arg1", "ramdisk"]
        );
        assert!(args.gdb && !args.iso && !args.build.debug);
        assert_eq!(args.qemu_args, ["-smp", "2"]);
    }

    #[test]
    fn test_arguments_pass_through() {
        let cli = Cli::try_parse_from(["xtask", "test", "--", "boot", "--nocapture"])
            .expect("valid arguments");
        let Cmd::Test(args) = cli.command else {
            panic!("not a test command");
        };
        assert_eq!(args.cargo_test_args, ["boot", "--nocapture"]);
    }
}
