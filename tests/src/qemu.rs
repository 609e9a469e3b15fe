//! The QEMU command line, in one place for the harness and for `cargo xtask run`.
//!
//! [`qemu_args`] turns a [`QemuConfig`] into the argument list of `qemu-system-x86_64`:
//!
//! ```text
//! -accel tcg -cpu max -m 256
//! -kernel <image> -append "<command line>" -initrd "<module> <args>,<module> <args>"
//! -serial stdio -display none -no-reboot -net none
//! -device isa-debug-exit,iobase=0xf4,iosize=0x04 -monitor none [-s -S] [extra...]
//! ```
//!
//! QEMU's default machine (`pc`: i440FX, SeaBIOS) loads a multiboot image given with `-kernel`
//! when it is a 32-bit ELF, and passes `-initrd`'s comma-separated entries as multiboot
//! modules, each with its whole string (file name included) as the module's command line.
//! A comma cannot be written inside a module string, so [`qemu_args`] refuses one.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

/// The QEMU binary the harness and xtask run, found on `PATH`.
pub const QEMU_BINARY: &str = "qemu-system-x86_64";

/// Guest RAM when nothing else is asked for, in MiB.
pub const DEFAULT_MEMORY_MIB: u32 = 256;

/// The `isa-debug-exit` device at the port Oxen writes its verdict to (0xf4).
pub const DEBUG_EXIT_DEVICE: &str = "isa-debug-exit,iobase=0xf4,iosize=0x04";

/// QEMU's accelerator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Accel {
    /// Software emulation (`-accel tcg`): the default, and the only one supported on this
    /// project's machines.
    #[default]
    Tcg,
    /// `-accel kvm`. On this project's machines KVM emulates ring 0 without VT-x/AMD-V and
    /// cannot run a ring-0 hypervisor correctly (see `docs/testing.md`); use it only on a host
    /// whose KVM has real hardware virtualization.
    Kvm,
}

impl Accel {
    /// The accelerator's name for `-accel`.
    pub const fn name(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }

    /// The `-cpu` model used with this accelerator unless one is given.
    pub const fn default_cpu(self) -> &'static str {
        match self {
            Accel::Tcg => "max",
            // Plain `host` fails on the project's KVM (unsupported MSR 0x10a).
            Accel::Kvm => "host,-arch-capabilities",
        }
    }

    /// Parses `tcg` or `kvm`.
    pub fn parse(name: &str) -> Option<Accel> {
        match name {
            "tcg" => Some(Accel::Tcg),
            "kvm" => Some(Accel::Kvm),
            _ => None,
        }
    }
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One multiboot module: a file and the arguments after its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    /// The file QEMU loads.
    pub path: PathBuf,
    /// The rest of the module's string (for dom0's kernel, dom0's command line).
    pub args: String,
}

impl Module {
    /// A module from a path and its arguments.
    pub fn new(path: impl Into<PathBuf>, args: impl Into<String>) -> Module {
        Module {
            path: path.into(),
            args: args.into(),
        }
    }

    /// Parses `"path args..."`: the path is everything up to the first whitespace.
    pub fn parse(spec: &str) -> Module {
        let spec = spec.trim();
        match spec.split_once(char::is_whitespace) {
            Some((path, args)) => Module::new(path, args.trim_start()),
            None => Module::new(spec, ""),
        }
    }

    /// The module's string as QEMU's `-initrd` wants it: `"path args"`.
    ///
    /// # Errors
    /// The path is not UTF-8 or contains whitespace or a comma, or the arguments contain a
    /// comma (QEMU splits `-initrd` on commas).
    pub fn initrd_entry(&self) -> Result<String, QemuArgsError> {
        let path = self
            .path
            .to_str()
            .ok_or_else(|| QemuArgsError::NonUtf8Path(self.path.clone()))?;
        if path.contains(',') || path.contains(char::is_whitespace) {
            return Err(QemuArgsError::BadModulePath(self.path.clone()));
        }
        if self.args.contains(',') {
            return Err(QemuArgsError::CommaInModule(self.args.clone()));
        }
        Ok(if self.args.is_empty() {
            path.to_owned()
        } else {
            format!("{path} {}", self.args)
        })
    }
}

/// What QEMU boots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Medium {
    /// Nothing: SeaBIOS finds no boot device and waits (useful only to test the harness).
    None,
    /// A multiboot image through `-kernel`, with its command line and modules.
    Kernel {
        /// The 32-bit multiboot ELF.
        image: PathBuf,
        /// The whole `-append` string.
        cmdline: String,
        /// The `-initrd` modules, in order (module 0 is dom0's kernel).
        modules: Vec<Module>,
    },
    /// A bootable ISO through `-cdrom` (GRUB carries the command line and the modules).
    Cdrom(PathBuf),
}

/// Where the serial console goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Serial {
    /// `-serial stdio -monitor none`: the console on QEMU's stdin/stdout, no monitor.
    Stdio,
    /// `-serial mon:stdio`: the console and, after Ctrl-A c, the QEMU monitor on the terminal
    /// (Ctrl-A x quits). For interactive runs.
    StdioWithMonitor,
    /// `-serial file:PATH -monitor none`.
    File(PathBuf),
}

/// Everything that decides QEMU's command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QemuConfig {
    /// What to boot.
    pub medium: Medium,
    /// The accelerator.
    pub accel: Accel,
    /// The `-cpu` model; `None` = the accelerator's default ([`Accel::default_cpu`]).
    pub cpu: Option<String>,
    /// Guest RAM in MiB.
    pub memory_mib: u32,
    /// The serial console.
    pub serial: Serial,
    /// `-s -S`: a gdb stub on tcp::1234, CPU stopped until gdb continues it.
    pub gdb: bool,
    /// More arguments, appended last.
    pub extra_args: Vec<OsString>,
}

impl QemuConfig {
    /// TCG, `-cpu max`, [`DEFAULT_MEMORY_MIB`], serial on stdio, booting `medium`.
    pub fn new(medium: Medium) -> QemuConfig {
        QemuConfig {
            medium,
            accel: Accel::Tcg,
            cpu: None,
            memory_mib: DEFAULT_MEMORY_MIB,
            serial: Serial::Stdio,
            gdb: false,
            extra_args: Vec::new(),
        }
    }
}

/// Joins command-line pieces with single spaces, skipping empty ones.
pub fn join_cmdline<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    let mut line = String::new();
    for part in parts.into_iter().map(str::trim).filter(|p| !p.is_empty()) {
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(part);
    }
    line
}

/// A configuration QEMU's command line cannot express.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QemuArgsError {
    /// A module's arguments contain a comma, which QEMU's `-initrd` takes as a separator.
    CommaInModule(String),
    /// A module path contains a comma or whitespace (`-initrd` splits on both).
    BadModulePath(PathBuf),
    /// A path given to QEMU as part of an option string contains a comma.
    CommaInPath(PathBuf),
    /// A module path is not UTF-8.
    NonUtf8Path(PathBuf),
}

impl fmt::Display for QemuArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QemuArgsError::CommaInModule(args) => write!(
                f,
                "module string {args:?} contains a comma: QEMU's -initrd splits modules on commas"
            ),
            QemuArgsError::BadModulePath(path) => write!(
                f,
                "module path {} contains a comma or whitespace, which QEMU's -initrd cannot pass",
                path.display()
            ),
            QemuArgsError::CommaInPath(path) => write!(
                f,
                "path {} contains a comma, which QEMU's option syntax cannot pass",
                path.display()
            ),
            QemuArgsError::NonUtf8Path(path) => {
                write!(f, "path {} is not UTF-8", path.display())
            }
        }
    }
}

impl std::error::Error for QemuArgsError {}

fn option_path(prefix: &str, path: &Path) -> Result<OsString, QemuArgsError> {
    if path.as_os_str().as_encoded_bytes().contains(&b',') {
        return Err(QemuArgsError::CommaInPath(path.to_path_buf()));
    }
    let mut arg = OsString::from(prefix);
    arg.push(path.as_os_str());
    Ok(arg)
}

/// The argument list for `qemu-system-x86_64` (without the program name).
///
/// # Errors
/// A module string or a path that QEMU's syntax cannot carry ([`QemuArgsError`]).
pub fn qemu_args(config: &QemuConfig) -> Result<Vec<OsString>, QemuArgsError> {
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
    let cpu = config.cpu.as_deref().unwrap_or(config.accel.default_cpu());
    let memory = config.memory_mib.to_string();
    push(&["-accel", config.accel.name(), "-cpu", cpu, "-m", &memory]);

    match &config.medium {
        Medium::None => {}
        Medium::Kernel {
            image,
            cmdline,
            modules,
        } => {
            args.push("-kernel".into());
            args.push(image.into());
            args.push("-append".into());
            args.push(cmdline.into());
            if !modules.is_empty() {
                let entries = modules
                    .iter()
                    .map(Module::initrd_entry)
                    .collect::<Result<Vec<_>, _>>()?;
                args.push("-initrd".into());
                args.push(entries.join(",").into());
            }
        }
        Medium::Cdrom(iso) => {
            if iso.as_os_str().as_encoded_bytes().contains(&b',') {
                return Err(QemuArgsError::CommaInPath(iso.clone()));
            }
            args.push("-cdrom".into());
            args.push(iso.into());
        }
    }

    match &config.serial {
        Serial::Stdio => args.extend(["-serial", "stdio"].map(OsString::from)),
        Serial::StdioWithMonitor => args.extend(["-serial", "mon:stdio"].map(OsString::from)),
        Serial::File(path) => {
            args.push("-serial".into());
            args.push(option_path("file:", path)?);
        }
    }
    args.extend(
        [
            "-display",
            "none",
            "-no-reboot",
            "-net",
            "none",
            "-device",
            DEBUG_EXIT_DEVICE,
        ]
        .map(OsString::from),
    );
    if config.serial != Serial::StdioWithMonitor {
        args.extend(["-monitor", "none"].map(OsString::from));
    }
    if config.gdb {
        args.extend(["-s", "-S"].map(OsString::from));
    }
    args.extend(config.extra_args.iter().cloned());
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[OsString]) -> Vec<&str> {
        args.iter()
            .map(|a| a.to_str().expect("test arguments are UTF-8"))
            .collect()
    }

    #[test]
    fn kernel_boot_command_line() {
        let config = QemuConfig::new(Medium::Kernel {
            image: "/t/xen-core".into(),
            cmdline: "console=com1 loglvl=all".into(),
            modules: vec![
                Module::new("/t/dom0", "dom0 console=hvc0"),
                Module::new("/t/ramdisk", ""),
            ],
        });
        let args = qemu_args(&config).expect("valid config");
        assert_eq!(
            strings(&args),
            [
                "-accel",
                "tcg",
                "-cpu",
                "max",
                "-m",
                "256",
                "-kernel",
                "/t/xen-core",
                "-append",
                "console=com1 loglvl=all",
                "-initrd",
                "/t/dom0 dom0 console=hvc0,/t/ramdisk",
                "-serial",
                "stdio",
                "-display",
                "none",
                "-no-reboot",
                "-net",
                "none",
                "-device",
                "isa-debug-exit,iobase=0xf4,iosize=0x04",
                "-monitor",
                "none",
            ]
        );
    }

    #[test]
    fn no_modules_means_no_initrd() {
        let config = QemuConfig::new(Medium::Kernel {
            image: "/k".into(),
            cmdline: "console=com1".into(),
            modules: vec![],
        });
        let args = qemu_args(&config).expect("valid config");
        assert!(!strings(&args).contains(&"-initrd"));
    }

    #[test]
    fn kvm_gdb_serial_file_and_extras() {
        let mut config = QemuConfig::new(Medium::None);
        config.accel = Accel::Kvm;
        config.memory_mib = 1024;
        config.serial = Serial::File("/tmp/serial.log".into());
        config.gdb = true;
        config.extra_args = vec!["-smp".into(), "2".into()];
        let args = qemu_args(&config).expect("valid config");
        let args = strings(&args);
        assert_eq!(
            args[..6],
            [
                "-accel",
                "kvm",
                "-cpu",
                "host,-arch-capabilities",
                "-m",
                "1024"
            ]
        );
        assert!(!args.contains(&"-kernel") && !args.contains(&"-append"));
        assert!(
            args.windows(2)
                .any(|w| w == ["-serial", "file:/tmp/serial.log"])
        );
        assert!(args.windows(2).any(|w| w == ["-s", "-S"]));
        assert_eq!(args[args.len() - 2..], ["-smp", "2"]);
    }

    #[test]
    fn explicit_cpu_and_monitor_on_stdio() {
        let mut config = QemuConfig::new(Medium::Cdrom("/t/oxen.iso".into()));
        config.cpu = Some("Skylake-Server".into());
        config.serial = Serial::StdioWithMonitor;
        let args = qemu_args(&config).expect("valid config");
        let args = strings(&args);
        assert_eq!(args[3], "Skylake-Server");
        assert!(args.windows(2).any(|w| w == ["-cdrom", "/t/oxen.iso"]));
        assert!(args.windows(2).any(|w| w == ["-serial", "mon:stdio"]));
        assert!(!args.contains(&"-monitor"));
    }

    #[test]
    fn commas_are_refused() {
        let config = QemuConfig::new(Medium::Kernel {
            image: "/k".into(),
            cmdline: String::new(),
            modules: vec![Module::new("/m", "a,b")],
        });
        assert_eq!(
            qemu_args(&config),
            Err(QemuArgsError::CommaInModule("a,b".into()))
        );
        let config = QemuConfig::new(Medium::Kernel {
            image: "/k".into(),
            cmdline: String::new(),
            modules: vec![Module::new("/a,b", "")],
        });
        assert!(matches!(
            qemu_args(&config),
            Err(QemuArgsError::BadModulePath(_))
        ));
        let mut config = QemuConfig::new(Medium::None);
        config.serial = Serial::File("/tmp/a,b".into());
        assert!(matches!(
            qemu_args(&config),
            Err(QemuArgsError::CommaInPath(_))
        ));
    }

    #[test]
    fn module_specs() {
        assert_eq!(
            Module::parse("target/oxen/hello  hello arg1"),
            Module::new("target/oxen/hello", "hello arg1")
        );
        assert_eq!(Module::parse(" /m "), Module::new("/m", ""));
    }

    #[test]
    fn cmdline_joining() {
        assert_eq!(
            join_cmdline(["console=com1", "", " a=1 "]),
            "console=com1 a=1"
        );
        assert_eq!(join_cmdline([]), "");
    }
}
