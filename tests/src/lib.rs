//! Oxen's integration-test harness: boot an image under QEMU, capture the serial console,
//! decode how the run ended.
//!
//! ```no_run
//! use std::time::Duration;
//! use oxen_tests::{Boot, DebugExit};
//!
//! let out = Boot::hypervisor()               // target/oxen/xen-core, built by `cargo xtask build`
//!     .append("loglvl=all dom0_mem=64M")     // hypervisor command line (after console=com1)
//!     .module("target/oxen/hello", "hello arg1") // multiboot module: path + its string
//!     .memory_mib(256)
//!     .timeout(Duration::from_secs(20))
//!     .run()?;
//! out.assert_contains("Oxen").assert_exit(DebugExit::Dom0Poweroff);
//! println!("booted in {:?}", out.elapsed);
//! # Ok::<(), oxen_tests::HarnessError>(())
//! ```
//!
//! Each [`Boot::run`] spawns its own `qemu-system-x86_64` with the serial console on a pipe
//! (read on a thread), polls it until it exits, prints an end marker, or times out, and kills
//! only that child, by its pid, on timeout and on drop. Nothing is global, so tests run in
//! parallel. QEMU runs under TCG with `-cpu max` (`OXEN_TEST_ACCEL=kvm` overrides it, which
//! this project's machines do not support). See `docs/testing.md`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod capture;
pub mod domains;
pub mod exit;
pub mod guests;
pub mod paths;
pub mod qemu;
pub mod xen;

use std::ffi::OsString;
use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

pub use capture::normalise;
pub use exit::{DebugExit, Exit};
pub use qemu::{Accel, Module, QemuArgsError, QemuConfig};

use capture::Capture;
use qemu::{Medium, Serial};

/// The hypervisor image's name in `target/oxen/`.
pub const HYPERVISOR_IMAGE: &str = "xen-core";

/// The option the harness always puts first on Oxen's command line.
pub const HYPERVISOR_BASE_CMDLINE: &str = "console=com1";

/// A boot's timeout when the test sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the harness lets QEMU run on after an end marker, so the lines after it arrive.
const END_MARKER_GRACE: Duration = Duration::from_millis(300);

/// How often the harness checks on QEMU.
const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// Environment variables the harness reads.
pub mod env {
    /// `tcg` (default) or `kvm`: the accelerator of every boot that does not choose one.
    pub const ACCEL: &str = "OXEN_TEST_ACCEL";
    /// A factor (e.g. `2.5`) applied to every boot's timeout, for slow machines.
    pub const TIMEOUT_SCALE: &str = "OXEN_TEST_TIMEOUT_SCALE";
    /// When set to anything but `0`, every serial line is echoed to stderr as it arrives
    /// (see it with `cargo test -- --nocapture`).
    pub const ECHO: &str = "OXEN_TEST_ECHO";
    /// The QEMU binary to run instead of `qemu-system-x86_64` from `PATH`.
    pub const QEMU: &str = "OXEN_QEMU";
}

/// Why a boot could not be run (a boot that ran and failed is an [`Outcome`], not an error).
#[derive(Debug)]
pub enum HarnessError {
    /// The image to boot is not there.
    MissingImage {
        /// The image's path.
        path: PathBuf,
        /// What to do about it.
        hint: &'static str,
    },
    /// A module file is not there.
    MissingModule(PathBuf),
    /// No QEMU binary was found.
    QemuNotFound,
    /// An environment variable has a value the harness does not understand.
    BadEnv {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What it may be.
        expected: &'static str,
    },
    /// The configuration cannot be written as a QEMU command line.
    Args(QemuArgsError),
    /// QEMU could not be started.
    Spawn(io::Error),
    /// Waiting for or killing QEMU failed.
    Wait(io::Error),
}

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HarnessError::MissingImage { path, hint } => {
                write!(f, "{} missing: {hint}", paths::display(path))
            }
            HarnessError::MissingModule(path) => {
                write!(f, "module {} missing", paths::display(path))
            }
            HarnessError::QemuNotFound => write!(
                f,
                "{} not found on PATH: install QEMU 10, see .ci/run",
                qemu::QEMU_BINARY
            ),
            HarnessError::BadEnv {
                var,
                value,
                expected,
            } => write!(f, "{var}={value:?}: expected {expected}"),
            HarnessError::Args(err) => write!(f, "bad QEMU configuration: {err}"),
            HarnessError::Spawn(err) => write!(f, "cannot start QEMU: {err}"),
            HarnessError::Wait(err) => write!(f, "cannot wait for QEMU: {err}"),
        }
    }
}

impl std::error::Error for HarnessError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HarnessError::Args(err) => Some(err),
            HarnessError::Spawn(err) | HarnessError::Wait(err) => Some(err),
            _ => None,
        }
    }
}

impl From<QemuArgsError> for HarnessError {
    fn from(err: QemuArgsError) -> HarnessError {
        HarnessError::Args(err)
    }
}

/// A QEMU boot to run: what to boot, with which command line and modules, for how long.
#[derive(Clone, Debug)]
#[must_use = "a Boot does nothing until `run` is called"]
pub struct Boot {
    /// The image, or `None` for QEMU with nothing to boot.
    image: Option<PathBuf>,
    /// What to do when the image is missing.
    missing_hint: &'static str,
    /// The command line's fixed start.
    base_cmdline: &'static str,
    /// The test's options, in order.
    append: Vec<String>,
    modules: Vec<Module>,
    memory_mib: u32,
    timeout: Duration,
    accel: Option<Accel>,
    cpu: Option<String>,
    end_markers: Vec<String>,
    extra_args: Vec<OsString>,
    /// A stand-in for QEMU and the arguments put before QEMU's (the harness's own tests).
    program: Option<(PathBuf, Vec<OsString>)>,
    /// Bytes typed on the serial console once the transcript holds a text, in order.
    typed: Vec<(String, Vec<u8>)>,
    /// Run with no other QEMU of this test process at the same time (timing measurements).
    alone: bool,
}

/// Boots of one test process share the host; a boot that measures time runs alone (its
/// QEMU's clock would otherwise stretch with the host's load). Every boot takes this lock:
/// shared for ordinary boots, exclusive for [`Boot::alone`] ones.
static HOST: std::sync::RwLock<()> = std::sync::RwLock::new(());

impl Boot {
    fn new(image: Option<PathBuf>, missing_hint: &'static str, base_cmdline: &'static str) -> Boot {
        Boot {
            image,
            missing_hint,
            base_cmdline,
            append: Vec::new(),
            modules: Vec::new(),
            memory_mib: qemu::DEFAULT_MEMORY_MIB,
            timeout: DEFAULT_TIMEOUT,
            accel: None,
            cpu: None,
            end_markers: Vec::new(),
            extra_args: Vec::new(),
            program: None,
            typed: Vec::new(),
            alone: false,
        }
    }

    /// Oxen: `target/oxen/xen-core`, command line `console=com1` + [`Boot::append`].
    pub fn hypervisor() -> Boot {
        Boot::new(
            Some(paths::image_dir().join(HYPERVISOR_IMAGE)),
            "run `cargo xtask build` (or `cargo xtask test`)",
            HYPERVISOR_BASE_CMDLINE,
        )
    }

    /// Real Xen 4.17 (`target/oxen/xen-4.17`), command line
    /// `console=com1 loglvl=all noreboot dom0=pv` + [`Boot::append`], stopped at Xen's
    /// [`xen::END_MARKERS`]. Check [`xen::skip_if_missing`] first.
    pub fn xen() -> Boot {
        let mut boot = Boot::new(
            Some(xen::image_path()),
            "run `cargo xtask build`, which fetches it with apt-get",
            xen::BASE_CMDLINE,
        );
        boot.end_markers = xen::END_MARKERS.iter().map(|m| (*m).to_owned()).collect();
        boot
    }

    /// Any multiboot image (a path relative to the workspace root, or absolute), with an empty
    /// base command line.
    pub fn image(path: impl AsRef<Path>) -> Boot {
        Boot::new(Some(paths::from_root(path.as_ref())), "build it first", "")
    }

    /// QEMU with nothing to boot: SeaBIOS finds no boot device and QEMU runs until it is
    /// killed. Only for testing the harness itself.
    pub fn no_image() -> Boot {
        Boot::new(None, "", "")
    }

    /// Adds options to the command line (after the base options and earlier appends).
    pub fn append(mut self, options: &str) -> Boot {
        self.append.push(options.to_owned());
        self
    }

    /// Adds a multiboot module: a file (relative to the workspace root, or absolute) and the
    /// string after its name. QEMU passes `"<path> <args>"` as the module's string; neither
    /// may contain a comma.
    pub fn module(mut self, path: impl AsRef<Path>, args: &str) -> Boot {
        self.modules
            .push(Module::new(paths::from_root(path.as_ref()), args));
        self
    }

    /// Guest RAM (`-m`), in MiB. Default 256.
    pub fn memory_mib(mut self, mib: u32) -> Boot {
        self.memory_mib = mib;
        self
    }

    /// Runs this boot with no other boot of the same test process at the same time: for
    /// guests that measure time (timer accuracy, CPU shares), whose results a loaded host
    /// would distort.
    pub fn alone(mut self) -> Boot {
        self.alone = true;
        self
    }

    /// Types `bytes` on the serial console (QEMU's standard input) once the transcript
    /// contains `after`. Several calls type in order, each waiting for its own text.
    pub fn type_after(mut self, after: &str, bytes: &[u8]) -> Boot {
        self.typed.push((after.to_owned(), bytes.to_vec()));
        self
    }

    /// How long QEMU may run before the harness kills it (scaled by
    /// `OXEN_TEST_TIMEOUT_SCALE`). Default 30 s.
    pub fn timeout(mut self, timeout: Duration) -> Boot {
        self.timeout = timeout;
        self
    }

    /// The accelerator, overriding `OXEN_TEST_ACCEL`.
    pub fn accel(mut self, accel: Accel) -> Boot {
        self.accel = Some(accel);
        self
    }

    /// The `-cpu` model, instead of the accelerator's default.
    pub fn cpu(mut self, model: &str) -> Boot {
        self.cpu = Some(model.to_owned());
        self
    }

    /// Stops QEMU (after a short grace period) once `text` appears on the serial console,
    /// reporting [`Exit::EndMarker`].
    pub fn end_marker(mut self, text: &str) -> Boot {
        self.end_markers.push(text.to_owned());
        self
    }

    /// Appends raw QEMU arguments.
    pub fn qemu_args<I, S>(mut self, args: I) -> Boot
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.extra_args.extend(args.into_iter().map(Into::into));
        self
    }

    /// The full command line the image will get.
    pub fn cmdline(&self) -> String {
        qemu::join_cmdline(
            std::iter::once(self.base_cmdline).chain(self.append.iter().map(String::as_str)),
        )
    }

    /// The QEMU configuration this boot runs with (the accelerator resolved from the
    /// environment), without checking that files exist.
    ///
    /// # Errors
    /// `OXEN_TEST_ACCEL` holds something other than `tcg` or `kvm`.
    pub fn qemu_config(&self) -> Result<QemuConfig, HarnessError> {
        let medium = match &self.image {
            None => Medium::None,
            Some(image) => Medium::Kernel {
                image: image.clone(),
                cmdline: self.cmdline(),
                modules: self.modules.clone(),
            },
        };
        let mut config = QemuConfig::new(medium);
        config.accel = match self.accel {
            Some(accel) => accel,
            None => accel_from_env()?,
        };
        config.cpu.clone_from(&self.cpu);
        config.memory_mib = self.memory_mib;
        config.serial = Serial::Stdio;
        config.extra_args.clone_from(&self.extra_args);
        Ok(config)
    }

    /// Boots: runs QEMU until it exits, an end marker appears, or the timeout passes.
    ///
    /// # Errors
    /// The image, a module or QEMU is missing, the configuration cannot be expressed, or QEMU
    /// cannot be started or waited for. A boot that fails or hangs is not an error: it is an
    /// [`Outcome`] whose [`Outcome::exit`] says so.
    pub fn run(&self) -> Result<Outcome, HarnessError> {
        // Held until QEMU is gone. (A test that panicked poisons nothing: no data behind it.)
        let (_exclusive, _shared);
        if self.alone {
            _exclusive = HOST.write().unwrap_or_else(PoisonError::into_inner);
        } else {
            _shared = HOST.read().unwrap_or_else(PoisonError::into_inner);
        }
        if let Some(image) = &self.image
            && !image.is_file()
        {
            return Err(HarnessError::MissingImage {
                path: image.clone(),
                hint: self.missing_hint,
            });
        }
        if let Some(module) = self.modules.iter().find(|m| !m.path.is_file()) {
            return Err(HarnessError::MissingModule(module.path.clone()));
        }
        let config = self.qemu_config()?;
        let args = qemu::qemu_args(&config)?;
        let (qemu, lead_args) = match &self.program {
            Some((program, lead_args)) => (program.clone(), lead_args.clone()),
            None => (find_qemu()?, Vec::new()),
        };
        let timeout = scaled_timeout(self.timeout)?;
        let echo = std::env::var_os(env::ECHO).is_some_and(|v| v != "0");

        let command_line = describe_command(&qemu, &args);
        let mut command = Command::new(&qemu);
        command
            .args(&lead_args)
            .args(&args)
            .current_dir(paths::workspace_root())
            .stdin(if self.typed.is_empty() {
                Stdio::null()
            } else {
                Stdio::piped()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let start = Instant::now();
        let mut child = QemuChild(command.spawn().map_err(HarnessError::Spawn)?);
        let qemu_pid = child.0.id();

        let capture = Arc::new(Mutex::new(Capture::new(self.end_markers.clone(), echo)));
        let stdout = child.0.stdout.take().map(|mut stdout| {
            let capture = Arc::clone(&capture);
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                // A read error ends the capture like end of file: QEMU is gone.
                while let Ok(n @ 1..) = stdout.read(&mut buf) {
                    let at = start.elapsed();
                    lock(&capture).feed(buf.get(..n).unwrap_or_default(), at);
                }
            })
        });
        let stderr = child.0.stderr.take().map(|mut stderr| {
            thread::spawn(move || {
                let mut text = Vec::new();
                // Whatever was read before an error is kept.
                let _ = stderr.read_to_end(&mut text);
                normalise(&text)
            })
        });

        let mut stdin = child.0.stdin.take();
        let mut typed = self.typed.iter();
        let mut next_typed = typed.next();
        let exit = loop {
            if let Some(status) = child.0.try_wait().map_err(HarnessError::Wait)? {
                break Exit::from_exit_status(status);
            }
            if let Some((after, bytes)) = next_typed
                && lock(&capture).contains(after)
            {
                if let Some(input) = stdin.as_mut() {
                    // A QEMU that stopped reading is found by the exit check above.
                    let _ = input.write_all(bytes).and_then(|()| input.flush());
                }
                next_typed = typed.next();
            }
            let now = start.elapsed();
            let marker = lock(&capture).hit().cloned();
            if let Some((marker, at)) = marker
                && now >= at + END_MARKER_GRACE
            {
                child.kill().map_err(HarnessError::Wait)?;
                break Exit::EndMarker(marker);
            }
            if now >= timeout {
                child.kill().map_err(HarnessError::Wait)?;
                break Exit::Timeout;
            }
            thread::sleep(POLL_INTERVAL);
        };
        let elapsed = start.elapsed();

        // QEMU is gone, so its pipes are closed and both readers finish.
        if let Some(reader) = stdout {
            let _ = reader.join();
        }
        let qemu_stderr = stderr
            .and_then(|reader| reader.join().ok())
            .unwrap_or_default();
        let capture = std::mem::take(&mut *lock(&capture));
        let (transcript, line_times) = capture.finish(elapsed);

        Ok(Outcome {
            transcript,
            exit,
            elapsed,
            line_times,
            qemu_stderr,
            qemu_pid,
            command_line,
        })
    }
}

/// Locks the capture, ignoring poisoning (a panicking reader leaves a usable transcript).
fn lock(capture: &Mutex<Capture>) -> std::sync::MutexGuard<'_, Capture> {
    capture.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The QEMU child process: killed (by its own pid) and reaped when dropped, so a test that
/// panics or returns early leaves no QEMU behind.
#[derive(Debug)]
struct QemuChild(Child);

impl QemuChild {
    /// Kills QEMU and reaps it.
    fn kill(&mut self) -> io::Result<()> {
        match self.0.kill() {
            Ok(()) => {}
            // Already exited between the last poll and the kill: reaping it is enough.
            Err(err) if err.kind() == io::ErrorKind::InvalidInput => {}
            Err(err) => return Err(err),
        }
        self.0.wait().map(drop)
    }
}

impl Drop for QemuChild {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The accelerator from `OXEN_TEST_ACCEL` (default TCG).
fn accel_from_env() -> Result<Accel, HarnessError> {
    match std::env::var(env::ACCEL) {
        Err(_) => Ok(Accel::Tcg),
        Ok(value) if value.is_empty() => Ok(Accel::Tcg),
        Ok(value) => Accel::parse(&value).ok_or(HarnessError::BadEnv {
            var: env::ACCEL,
            value,
            expected: "tcg or kvm",
        }),
    }
}

/// `timeout` scaled by `OXEN_TEST_TIMEOUT_SCALE`.
fn scaled_timeout(timeout: Duration) -> Result<Duration, HarnessError> {
    match std::env::var(env::TIMEOUT_SCALE) {
        Err(_) => Ok(timeout),
        Ok(value) => match value.parse::<f64>() {
            Ok(scale) if scale.is_finite() && scale > 0.0 => Ok(timeout.mul_f64(scale)),
            _ => Err(HarnessError::BadEnv {
                var: env::TIMEOUT_SCALE,
                value,
                expected: "a positive number",
            }),
        },
    }
}

/// The QEMU binary: `$OXEN_QEMU`, else `qemu-system-x86_64` from `PATH`.
pub fn find_qemu() -> Result<PathBuf, HarnessError> {
    if let Some(path) = std::env::var_os(env::QEMU).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    find_on_path(qemu::QEMU_BINARY).ok_or(HarnessError::QemuNotFound)
}

/// The first executable file called `name` in `PATH`.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        path.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

/// The command as a shell-like line, for reports.
pub fn describe_command(program: &Path, args: &[OsString]) -> String {
    let quote = |arg: &str| {
        if !arg.is_empty()
            && arg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_=.,:/+@%".contains(c))
        {
            arg.to_owned()
        } else {
            format!("'{}'", arg.replace('\'', r"'\''"))
        }
    };
    std::iter::once(program.as_os_str())
        .chain(args.iter().map(OsString::as_os_str))
        .map(|arg| quote(&arg.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a boot produced.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Everything the serial console printed, `\r` removed.
    pub transcript: String,
    /// How the run ended.
    pub exit: Exit,
    /// Wall-clock time from starting QEMU to its end.
    pub elapsed: Duration,
    /// When each line of [`Outcome::transcript`] (in `lines()` order) was complete.
    pub line_times: Vec<Duration>,
    /// What QEMU printed on stderr.
    pub qemu_stderr: String,
    /// QEMU's process id (the process is gone when [`Boot::run`] returns).
    pub qemu_pid: u32,
    /// The QEMU command, for reports and for running it by hand.
    pub command_line: String,
}

impl Outcome {
    /// Whether the transcript contains `needle`.
    pub fn contains(&self, needle: &str) -> bool {
        self.transcript.contains(needle)
    }

    /// The first line containing `needle`.
    pub fn line_matching(&self, needle: &str) -> Option<&str> {
        self.transcript.lines().find(|line| line.contains(needle))
    }

    /// Every line containing `needle`.
    pub fn lines_matching<'a>(&'a self, needle: &'a str) -> impl Iterator<Item = &'a str> {
        self.transcript
            .lines()
            .filter(move |line| line.contains(needle))
    }

    /// The text after the first occurrence of `prefix` up to the end of its line.
    pub fn after(&self, prefix: &str) -> Option<&str> {
        let start = self.transcript.find(prefix)? + prefix.len();
        let rest = self.transcript.get(start..)?;
        Some(rest.split('\n').next().unwrap_or(rest))
    }

    /// When the first line containing `needle` was complete, since QEMU started.
    pub fn time_to_first_line(&self, needle: &str) -> Option<Duration> {
        let index = self
            .transcript
            .lines()
            .position(|line| line.contains(needle))?;
        self.line_times.get(index).copied()
    }

    /// Panics, with the full report, unless the transcript contains `needle`.
    #[track_caller]
    pub fn assert_contains(&self, needle: &str) -> &Outcome {
        if !self.contains(needle) {
            self.fail(&format!("the transcript does not contain {needle:?}"));
        }
        self
    }

    /// Panics, with the full report, if the transcript contains `needle`.
    #[track_caller]
    pub fn assert_not_contains(&self, needle: &str) -> &Outcome {
        if let Some(line) = self.line_matching(needle) {
            self.fail(&format!(
                "the transcript contains {needle:?}, in the line {line:?}"
            ));
        }
        self
    }

    /// Panics, with the full report, unless the run ended with `expected`
    /// (an [`Exit`] or a [`DebugExit`]).
    #[track_caller]
    pub fn assert_exit(&self, expected: impl Into<Exit>) -> &Outcome {
        let expected = expected.into();
        if self.exit != expected {
            self.fail(&format!(
                "expected the run to end with {expected:?} ({expected}), but it ended with {:?} ({})",
                self.exit, self.exit
            ));
        }
        self
    }

    /// Panics with `message` and the full report.
    #[track_caller]
    pub fn fail(&self, message: &str) -> ! {
        panic!("{message}\n{self}")
    }
}

impl fmt::Display for Outcome {
    /// The report printed when an assertion fails: exit, time, command, transcript, stderr.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "--- exit: {} ({:?})", self.exit, self.exit)?;
        writeln!(f, "--- elapsed: {:.3} s", self.elapsed.as_secs_f64())?;
        writeln!(f, "--- command: {}", self.command_line)?;
        writeln!(f, "--- serial transcript:")?;
        f.write_str(&self.transcript)?;
        if !self.transcript.ends_with('\n') {
            writeln!(f)?;
        }
        if !self.qemu_stderr.is_empty() {
            writeln!(f, "--- QEMU stderr:")?;
            f.write_str(&self.qemu_stderr)?;
        }
        writeln!(f, "--- end")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(transcript: &str) -> Outcome {
        Outcome {
            transcript: transcript.to_owned(),
            exit: Exit::Code(0x21),
            elapsed: Duration::from_millis(120),
            line_times: (1..=transcript.lines().count())
                .map(|i| Duration::from_millis(10 * u64::try_from(i).unwrap_or(0)))
                .collect(),
            qemu_stderr: String::new(),
            qemu_pid: 0,
            command_line: "qemu-system-x86_64".into(),
        }
    }

    #[test]
    fn hypervisor_boot_arguments() {
        let boot = Boot::hypervisor()
            .append("loglvl=all dom0_mem=64M")
            .append("noreboot")
            .module("target/oxen/hello", "hello arg1")
            .memory_mib(512)
            .accel(Accel::Tcg);
        assert_eq!(
            boot.cmdline(),
            "console=com1 loglvl=all dom0_mem=64M noreboot"
        );
        let args = qemu::qemu_args(&boot.qemu_config().expect("config")).expect("args");
        let args: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let root = paths::workspace_root();
        let image = paths::image_dir().join("xen-core");
        let find = |flag: &str| {
            args.iter()
                .position(|a| a == flag)
                .and_then(|i| args.get(i + 1))
                .map(String::as_str)
        };
        assert_eq!(find("-kernel"), image.to_str());
        assert_eq!(
            find("-append"),
            Some("console=com1 loglvl=all dom0_mem=64M noreboot")
        );
        assert_eq!(
            find("-initrd").map(str::to_owned),
            Some(format!("{}/target/oxen/hello hello arg1", root.display()))
        );
        assert_eq!(find("-m"), Some("512"));
        assert_eq!(find("-accel"), Some("tcg"));
        assert_eq!(find("-cpu"), Some("max"));
        assert_eq!(find("-monitor"), Some("none"));
        assert_eq!(find("-serial"), Some("stdio"));
        assert!(args.iter().any(|a| a == "-no-reboot"));
    }

    #[test]
    fn xen_boot_arguments() {
        let boot = Boot::xen().append("dom0_mem=64M");
        assert_eq!(
            boot.cmdline(),
            "console=com1 loglvl=all noreboot dom0=pv dom0_mem=64M"
        );
        assert_eq!(boot.end_markers.len(), xen::END_MARKERS.len());
        assert!(
            boot.image
                .as_deref()
                .is_some_and(|p| p.ends_with("oxen/xen-4.17"))
        );
    }

    #[test]
    fn missing_image_is_a_clear_error() {
        let err = Boot::image("target/oxen/does-not-exist")
            .run()
            .expect_err("the image does not exist");
        assert!(matches!(err, HarnessError::MissingImage { .. }));
        assert!(
            err.to_string()
                .starts_with("target/oxen/does-not-exist missing: ")
        );
        let msg = HarnessError::MissingImage {
            path: paths::image_dir().join(HYPERVISOR_IMAGE),
            hint: Boot::hypervisor().missing_hint,
        }
        .to_string();
        if std::env::var_os("CARGO_TARGET_DIR").is_none() {
            assert_eq!(
                msg,
                "target/oxen/xen-core missing: run `cargo xtask build` (or `cargo xtask test`)"
            );
        }
    }

    #[test]
    fn missing_module_is_a_clear_error() {
        let err = Boot::no_image()
            .module("/nonexistent/module", "")
            .run()
            .expect_err("the module does not exist");
        assert_eq!(err.to_string(), "module /nonexistent/module missing");
    }

    #[test]
    fn outcome_queries() {
        let out = outcome("Oxen 0.1.0\nRAM: 255 MiB usable of 256 MiB\nCommand line: a b\n");
        assert!(out.contains("Oxen"));
        assert_eq!(
            out.line_matching("RAM"),
            Some("RAM: 255 MiB usable of 256 MiB")
        );
        assert_eq!(out.after("Command line: "), Some("a b"));
        assert_eq!(out.after("nothing"), None);
        assert_eq!(
            out.time_to_first_line("RAM"),
            Some(Duration::from_millis(20))
        );
        assert_eq!(out.lines_matching("MiB").count(), 1);
        out.assert_contains("RAM")
            .assert_not_contains("panic")
            .assert_exit(DebugExit::BootError)
            .assert_exit(Exit::Code(0x21));
    }

    #[test]
    #[should_panic(expected = "does not contain \"FATAL\"")]
    fn failed_assertion_reports_the_transcript() {
        outcome("Oxen\n").assert_contains("FATAL");
    }

    #[test]
    fn report_includes_transcript_and_exit() {
        let report = outcome("line one\nline two").to_string();
        assert!(report.contains("hypervisor stopped on a boot error (exit code 0x21)"));
        assert!(report.contains("line one\nline two\n--- end"));
    }

    #[test]
    fn command_description_quotes_arguments() {
        let line = describe_command(
            Path::new("qemu"),
            &["-append".into(), "console=com1 a='b'".into(), "-m".into()],
        );
        assert_eq!(line, r"qemu -append 'console=com1 a='\''b'\''' -m");
    }

    /// A stand-in for QEMU: `sh -c script` (QEMU's arguments become the script's `$0...`).
    fn fake_qemu(script: &str) -> Boot {
        let mut boot = Boot::no_image().accel(Accel::Tcg);
        boot.program = Some(("/bin/sh".into(), vec!["-c".into(), script.into()]));
        boot
    }

    #[test]
    fn debug_exit_status_is_decoded() {
        let out = fake_qemu(r"printf 'Oxen\r\nbye\r\n'; exit 33")
            .run()
            .expect("sh runs");
        assert_eq!(out.exit, Exit::debug(DebugExit::Dom0Poweroff), "{out}");
        assert_eq!(out.transcript, "Oxen\nbye\n");
        assert_eq!(out.line_times.len(), 2);
    }

    #[test]
    fn end_marker_stops_a_running_machine() {
        let out = fake_qemu(
            r"printf '(XEN) a\r\r\n(XEN) Hardware Dom0 halted: halting machine\r\r\n'; exec sleep 30",
        )
        .end_marker(xen::DOM0_HALTED)
        .timeout(Duration::from_secs(20))
        .run()
        .expect("sh runs");
        assert_eq!(out.exit, Exit::EndMarker(xen::DOM0_HALTED.into()), "{out}");
        assert_eq!(
            out.transcript,
            "(XEN) a\n(XEN) Hardware Dom0 halted: halting machine\n"
        );
        assert!(out.elapsed < Duration::from_secs(10), "{out}");
        assert!(!Path::new(&format!("/proc/{}", out.qemu_pid)).exists());
    }

    #[test]
    fn stderr_and_own_status_are_reported() {
        let out = fake_qemu("echo 'qemu: could not load kernel' >&2; exit 1")
            .run()
            .expect("sh runs");
        assert_eq!(out.exit, Exit::QemuStatus(1));
        assert!(!out.exit.is_clean());
        assert_eq!(out.qemu_stderr, "qemu: could not load kernel\n");
    }

    /// A real QEMU that never exits (nothing to boot, CPU stopped by `-S`) is killed at the
    /// timeout, and is gone afterwards.
    #[test]
    fn timeout_kills_qemu() {
        let out = Boot::no_image()
            .accel(Accel::Tcg)
            .qemu_args(["-S"])
            .timeout(Duration::from_secs(1))
            .run()
            .expect("QEMU runs (install QEMU 10, see .ci/run)");
        assert_eq!(out.exit, Exit::Timeout, "{out}");
        assert!(out.elapsed >= Duration::from_secs(1));
        assert!(
            !Path::new(&format!("/proc/{}", out.qemu_pid)).exists(),
            "QEMU (pid {}) is still there",
            out.qemu_pid
        );
    }
}
