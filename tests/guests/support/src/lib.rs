//! What Oxen's test guests share: one line per check and a final verdict.
//!
//! Every test guest prints `PASS: <name>` or `FAIL: <name>: <detail>` for each check, then
//! `RESULT: PASS (<n> checks)` or `RESULT: FAIL (<k> of <n> failed)`, and shuts down with
//! `SHUTDOWN_poweroff` on success and `SHUTDOWN_crash` on failure. The host side
//! (`tests/tests/guests_xen.rs`) judges the transcript. Informational lines start with `INFO:`
//! and benchmark lines with `BENCH`.
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

use core::fmt::{self, Debug, Display};

#[cfg(target_os = "none")]
pub mod catch;

/// The prefix of a passed check's line.
pub const PASS: &str = "PASS: ";
/// The prefix of a failed check's line.
pub const FAIL: &str = "FAIL: ";
/// The prefix of the verdict line.
pub const RESULT: &str = "RESULT: ";

/// The verdict line for `failed` failures out of `total` checks.
pub fn verdict(total: u32, failed: u32) -> Verdict {
    Verdict { total, failed }
}

/// The final line, as [`Display`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    total: u32,
    failed: u32,
}

impl Verdict {
    /// Whether every check passed (and there was at least one).
    pub const fn passed(&self) -> bool {
        self.failed == 0 && self.total > 0
    }
}

impl Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.passed() {
            write!(f, "{RESULT}PASS ({} checks)", self.total)
        } else {
            write!(f, "{RESULT}FAIL ({} of {} failed)", self.failed, self.total)
        }
    }
}

/// Counts checks and prints their lines.
#[derive(Debug, Default)]
pub struct Checks {
    total: u32,
    failed: u32,
}

impl Checks {
    /// No checks yet.
    pub const fn new() -> Checks {
        Checks {
            total: 0,
            failed: 0,
        }
    }

    /// Records a passed check.
    pub fn pass(&mut self, name: &str) {
        self.total += 1;
        emit(format_args!("{PASS}{name}"));
    }

    /// Records a failed check with what went wrong.
    pub fn fail(&mut self, name: &str, detail: fmt::Arguments<'_>) {
        self.total += 1;
        self.failed += 1;
        emit(format_args!("{FAIL}{name}: {detail}"));
    }

    /// Passes if `ok`, else fails with `detail`.
    pub fn check(&mut self, name: &str, ok: bool, detail: fmt::Arguments<'_>) {
        if ok {
            self.pass(name);
        } else {
            self.fail(name, detail);
        }
    }

    /// Passes if `got == want`, else fails saying both.
    pub fn eq<T: PartialEq + Debug>(&mut self, name: &str, got: T, want: T) {
        if got == want {
            self.pass(name);
        } else {
            self.fail(name, format_args!("got {got:?}, expected {want:?}"));
        }
    }

    /// Passes if `got == want`, comparing and printing numbers in hex.
    pub fn eq_hex(&mut self, name: &str, got: u64, want: u64) {
        if got == want {
            self.pass(name);
        } else {
            self.fail(name, format_args!("got {got:#x}, expected {want:#x}"));
        }
    }

    /// A timing check: runs `measure` up to `attempts` times and passes on the first attempt
    /// that says so. Timing under QEMU TCG follows the host's load (the guest's clock runs on
    /// while QEMU is descheduled), so a bound real Xen meets on a quiet machine can be missed
    /// now and then; a bound missed `attempts` times in a row fails with the last attempt's
    /// detail. Returns the detail of the attempt that decided.
    pub fn timed<D: Debug>(
        &mut self,
        name: &str,
        attempts: u32,
        mut measure: impl FnMut() -> (bool, D),
    ) -> D {
        let mut attempt = 1;
        loop {
            let (ok, detail) = measure();
            if ok {
                if attempt > 1 {
                    info(format_args!("{name}: passed on attempt {attempt}"));
                }
                self.pass(name);
                return detail;
            }
            if attempt >= attempts.max(1) {
                self.fail(
                    name,
                    format_args!("{detail:?} (attempt {attempt} of {attempts})"),
                );
                return detail;
            }
            info(format_args!("{name}: attempt {attempt} missed: {detail:?}"));
            attempt += 1;
        }
    }

    /// Number of checks so far.
    pub const fn total(&self) -> u32 {
        self.total
    }

    /// Number of failed checks so far.
    pub const fn failed(&self) -> u32 {
        self.failed
    }

    /// The verdict so far.
    pub const fn verdict(&self) -> Verdict {
        Verdict {
            total: self.total,
            failed: self.failed,
        }
    }

    /// Prints the verdict and shuts down: poweroff if every check passed, else crash.
    #[cfg(target_os = "none")]
    pub fn finish(self) -> ! {
        use pv_guest_kit::abi::sched::ShutdownReason;
        let verdict = self.verdict();
        emit(format_args!("{verdict}"));
        pv_guest_kit::shutdown(if verdict.passed() {
            ShutdownReason::Poweroff
        } else {
            ShutdownReason::Crash
        })
    }
}

/// A check name formatted at run time (up to 160 bytes; longer names are cut).
pub struct Name {
    buf: [u8; 160],
    len: usize,
}

impl Name {
    /// The formatted name.
    pub fn of(args: fmt::Arguments<'_>) -> Name {
        let mut name = Name {
            buf: [0; 160],
            len: 0,
        };
        let _ = fmt::Write::write_fmt(&mut name, args);
        name
    }

    /// As text.
    pub fn as_str(&self) -> &str {
        let bytes = self.buf.get(..self.len).unwrap_or_default();
        match core::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(err) => bytes
                .get(..err.valid_up_to())
                .and_then(|b| core::str::from_utf8(b).ok())
                .unwrap_or_default(),
        }
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Write for Name {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
        }
        Ok(())
    }
}

/// Prints an informational line (`INFO: ...`): a value the hypervisor returned, for the record.
pub fn info(args: fmt::Arguments<'_>) {
    emit(format_args!("INFO: {args}"));
}

#[cfg(target_os = "none")]
fn emit(args: fmt::Arguments<'_>) {
    pv_guest_kit::println!("{args}");
}

#[cfg(not(target_os = "none"))]
fn emit(args: fmt::Arguments<'_>) {
    // Host builds (unit tests) have no console; the lines are not needed there.
    let _ = args;
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;

    #[test]
    fn verdict_lines() {
        assert_eq!(verdict(3, 0).to_string(), "RESULT: PASS (3 checks)");
        assert_eq!(verdict(3, 1).to_string(), "RESULT: FAIL (1 of 3 failed)");
        assert_eq!(verdict(0, 0).to_string(), "RESULT: FAIL (0 of 0 failed)");
    }

    #[test]
    fn names() {
        assert_eq!(Name::of(format_args!("a {} c", 1)).as_str(), "a 1 c");
        let long = Name::of(format_args!("{:>200}", "x"));
        assert_eq!(long.as_str().len(), 160);
    }

    #[test]
    fn timed_checks_retry() {
        let mut checks = Checks::new();
        let mut n = 0;
        let got = checks.timed("third time lucky", 3, || {
            n += 1;
            (n == 3, n)
        });
        assert_eq!((got, checks.total(), checks.failed()), (3, 1, 0));
        let got = checks.timed("never", 2, || (false, 7));
        assert_eq!((got, checks.total(), checks.failed()), (7, 2, 1));
    }

    #[test]
    fn counting() {
        let mut checks = Checks::new();
        checks.pass("a");
        checks.eq("b", 1, 2);
        checks.eq_hex("c", 3, 3);
        checks.check("d", false, format_args!("no"));
        assert_eq!((checks.total(), checks.failed()), (4, 2));
        assert!(!checks.verdict().passed());
    }
}
