//! The hypervisor command line, parsed with Xen's option names and value syntax.
//!
//! Options are whitespace-separated `name`, `name=value` or `no-name` tokens (a value may be
//! double-quoted to contain spaces). Booleans accept Xen's spellings (`1/0`, `yes/no`,
//! `on/off`, `true/false`, `enable/disable`), and `no-<name>` negates. Sizes take a `B`, `K`,
//! `M`, `G` or `T` suffix and default to KiB, as in Xen. Unknown options and bad values are
//! collected as warnings: they never stop the boot.

use arrayvec::{ArrayString, ArrayVec};
use log::LevelFilter;

/// Longest option name or value kept in a warning.
const WARN_TEXT: usize = 48;
/// Most warnings kept; later ones are counted in [`Options::dropped_warnings`].
const MAX_WARNINGS: usize = 16;

/// A serial console the hypervisor can print on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleDevice {
    /// The first 16550 UART (I/O port 0x3f8).
    Com1,
    /// The second 16550 UART (I/O port 0x2f8).
    Com2,
}

/// Line settings of a UART (`com1=` / `com2=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UartConfig {
    /// Baud rate; 0 means "leave the firmware's setting" (`auto`).
    pub baud: u32,
    /// Data bits, 5–8.
    pub data_bits: u8,
    /// Parity: `n`, `o`, `e`, `m` or `s`.
    pub parity: u8,
    /// Stop bits, 1 or 2.
    pub stop_bits: u8,
}

impl Default for UartConfig {
    fn default() -> Self {
        Self {
            baud: 115_200,
            data_bits: 8,
            parity: b'n',
            stop_bits: 1,
        }
    }
}

impl UartConfig {
    /// The 16550 line-control register value for these settings.
    pub fn line_control(&self) -> u8 {
        let bits = self.data_bits.clamp(5, 8) - 5;
        let stop = if self.stop_bits == 2 { 1 << 2 } else { 0 };
        let parity = match self.parity {
            b'o' => 0x08,
            b'e' => 0x18,
            b'm' => 0x28,
            b's' => 0x38,
            _ => 0,
        };
        bits | stop | parity
    }
}

/// An amount of memory in a `dom0_mem=` clause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemAmount {
    /// Exactly this many bytes.
    Bytes(u64),
    /// All available memory except this many bytes (`-<size>`).
    AllBut(u64),
    /// This percentage of the available memory (`<n>%`).
    Percent(u8),
}

impl MemAmount {
    /// The amount in bytes, given the memory available to dom0.
    pub fn resolve(self, available: u64) -> u64 {
        match self {
            MemAmount::Bytes(b) => b,
            MemAmount::AllBut(b) => available.saturating_sub(b),
            MemAmount::Percent(p) => {
                let p = u128::from(p.min(100));
                u64::try_from(u128::from(available) * p / 100).unwrap_or(u64::MAX)
            }
        }
    }
}

/// dom0's memory size: `dom0_mem=[min:<amount>,][max:<amount>,][<amount>]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dom0Mem {
    /// The initial allocation, if given.
    pub amount: Option<MemAmount>,
    /// The lower bound, if given.
    pub min: Option<MemAmount>,
    /// The upper bound, if given.
    pub max: Option<MemAmount>,
}

impl Dom0Mem {
    /// dom0's initial size in bytes out of `available`, when nothing was asked for taking
    /// `default` (itself capped by `available`), and clamped to `[min, max]` as Xen does.
    pub fn resolve(&self, available: u64, default: u64) -> u64 {
        let mut size = self.amount.map_or(default, |a| a.resolve(available));
        if let Some(max) = self.max {
            size = size.min(max.resolve(available));
        }
        if let Some(min) = self.min {
            size = size.max(min.resolve(available));
        }
        size.min(available)
    }
}

/// A deliberate hypervisor fault, for testing the fault-reporting path (`test_fault=`).
///
/// This option exists only so that tests can check that a fault inside the hypervisor is
/// reported with its vector and registers; it must never be used otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestFault {
    /// `ud2`: invalid opcode (#UD, vector 6).
    InvalidOpcode,
    /// A read of an unmapped address (#PF, vector 14).
    PageFault,
    /// A non-canonical memory access (#GP, vector 13).
    GeneralProtection,
    /// Integer division by zero (#DE, vector 0).
    DivideError,
    /// `int3` (#BP, vector 3).
    Breakpoint,
    /// Unbounded recursion into the stack guard page, ending in a double fault (#DF, vector 8)
    /// taken on its own IST stack.
    StackOverflow,
    /// A Rust `panic!`.
    Panic,
}

impl TestFault {
    fn parse(s: &str) -> Option<TestFault> {
        Some(match s {
            "ud" => TestFault::InvalidOpcode,
            "pf" => TestFault::PageFault,
            "gp" => TestFault::GeneralProtection,
            "de" => TestFault::DivideError,
            "bp" => TestFault::Breakpoint,
            "df" | "stack" => TestFault::StackOverflow,
            "panic" => TestFault::Panic,
            _ => return None,
        })
    }
}

/// What went wrong with one option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WarningKind {
    /// The option name is not known; it is ignored.
    UnknownOption,
    /// The option is known but its value is not valid; the default is kept.
    BadValue,
    /// The option is known but asks for something Oxen does not support; it is ignored.
    Unsupported,
}

/// A problem with one command-line option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// What kind of problem.
    pub kind: WarningKind,
    /// The option name as written (truncated).
    pub name: ArrayString<WARN_TEXT>,
    /// The value as written, if any (truncated).
    pub value: ArrayString<WARN_TEXT>,
}

impl core::fmt::Display for Warning {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.kind {
            WarningKind::UnknownOption => write!(f, "unknown option '{}' ignored", self.name),
            WarningKind::BadValue => {
                write!(
                    f,
                    "bad value '{}' for option '{}' ignored",
                    self.value, self.name
                )
            }
            WarningKind::Unsupported => {
                write!(
                    f,
                    "option '{}={}' is not supported; ignored",
                    self.name, self.value
                )
            }
        }
    }
}

/// The credit scheduler's default time slice (Xen's `sched_credit_tslice_ms` default).
pub const DEFAULT_TSLICE_MS: u32 = 30;

/// Most boot-time domains besides dom0 (`domU=` options).
pub const MAX_BOOT_DOMUS: usize = 8;

/// A boot-time unprivileged domain (`domU=<module>[,mem=<size>][,vcpus=<n>][,weight=<n>]
/// [,cap=<percent>]`): multiboot module `module` (1-based, as in the boot contract; module 1
/// is dom0's kernel) is its kernel, and the module's string after the file name is its command
/// line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomUSpec {
    /// The kernel's multiboot module number (1-based; at least 2).
    pub module: u32,
    /// Memory in bytes.
    pub mem: u64,
    /// vCPUs (vCPU 0 starts; the guest brings up the others).
    pub vcpus: u32,
    /// Scheduler weight (1–65535).
    pub weight: u16,
    /// Scheduler cap in percent of one CPU (0: none).
    pub cap: u16,
}

/// A boot-time domain's memory when `mem=` is not given.
pub const DEFAULT_DOMU_MEM: u64 = 32 << 20;
/// Most vCPUs a boot-time domain (or dom0) may have.
pub const MAX_BOOT_VCPUS: u32 = 32;

impl DomUSpec {
    /// Parses the value of a `domU=` option.
    pub fn parse(v: &str) -> Option<DomUSpec> {
        let mut parts = v.split(',');
        let module = parse_u64(parts.next()?).and_then(|m| u32::try_from(m).ok())?;
        if module < 2 {
            return None;
        }
        let mut spec = DomUSpec {
            module,
            mem: DEFAULT_DOMU_MEM,
            vcpus: 1,
            weight: 256,
            cap: 0,
        };
        for p in parts {
            let (k, val) = p.split_once('=')?;
            match k {
                "mem" => spec.mem = parse_size(val).filter(|&m| m >= 1 << 20)?,
                "vcpus" => {
                    spec.vcpus = parse_u64(val)
                        .and_then(|n| u32::try_from(n).ok())
                        .filter(|n| (1..=MAX_BOOT_VCPUS).contains(n))?;
                }
                "weight" => {
                    spec.weight = parse_u64(val)
                        .and_then(|n| u16::try_from(n).ok())
                        .filter(|&n| n > 0)?;
                }
                "cap" => {
                    spec.cap = parse_u64(val).and_then(|n| u16::try_from(n).ok())?;
                }
                _ => return None,
            }
        }
        // A cap is a percentage of one CPU: at most 100 per vCPU (the toolstack's rule).
        (u32::from(spec.cap) <= 100 * spec.vcpus).then_some(spec)
    }
}

/// The hypervisor's settings, from its command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Where the console goes (`console=`); the first entry is used. Empty = `console=none`.
    pub console: ArrayVec<ConsoleDevice, 2>,
    /// COM1 line settings (`com1=`).
    pub com1: UartConfig,
    /// COM2 line settings (`com2=`).
    pub com2: UartConfig,
    /// Hypervisor log level (`loglvl=`).
    pub loglvl: LevelFilter,
    /// Log level for guest console output (`guest_loglvl=`).
    pub guest_loglvl: LevelFilter,
    /// Do not reboot the machine when the hypervisor stops (`noreboot`).
    pub noreboot: bool,
    /// dom0's memory (`dom0_mem=`).
    pub dom0_mem: Dom0Mem,
    /// A deliberate fault to test the fault path (`test_fault=`, testing only).
    pub test_fault: Option<TestFault>,
    /// Check the frame table's invariants regularly and tear dom0 down at its end, counting
    /// leaked frames (`mmu_audit`, testing and debugging).
    pub mmu_audit: bool,
    /// dom0's vCPUs (`dom0_max_vcpus=`; vCPU 0 starts, the guest brings up the others).
    pub dom0_max_vcpus: u32,
    /// Boot-time unprivileged domains (`domU=`, repeatable), in the order given.
    pub domus: ArrayVec<DomUSpec, MAX_BOOT_DOMUS>,
    /// The scheduler's time slice in ms (`sched_credit_tslice_ms=`, as in Xen).
    pub tslice_ms: u32,
    /// Problems found while parsing.
    pub warnings: ArrayVec<Warning, MAX_WARNINGS>,
    /// Problems beyond the first [`MAX_WARNINGS`].
    pub dropped_warnings: usize,
}

impl Default for Options {
    fn default() -> Self {
        let mut console = ArrayVec::new();
        console.push(ConsoleDevice::Com1);
        Self {
            console,
            com1: UartConfig::default(),
            com2: UartConfig::default(),
            loglvl: LevelFilter::Info,
            guest_loglvl: LevelFilter::Info,
            noreboot: false,
            dom0_mem: Dom0Mem::default(),
            test_fault: None,
            mmu_audit: false,
            dom0_max_vcpus: 1,
            domus: ArrayVec::new(),
            tslice_ms: DEFAULT_TSLICE_MS,
            warnings: ArrayVec::new(),
            dropped_warnings: 0,
        }
    }
}

/// One `name[=value]` token of a command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token<'a> {
    /// The option name.
    pub name: &'a str,
    /// The value after `=`, without surrounding quotes.
    pub value: Option<&'a str>,
}

/// Splits a command line into tokens: whitespace separated, values may be double-quoted.
pub fn tokens(line: &str) -> impl Iterator<Item = Token<'_>> {
    let mut rest = line;
    core::iter::from_fn(move || {
        rest = rest.trim_start();
        if rest.is_empty() {
            return None;
        }
        // The token ends at the first whitespace outside double quotes.
        let mut in_quotes = false;
        let mut end = rest.len();
        for (i, c) in rest.char_indices() {
            if c == '"' {
                in_quotes = !in_quotes;
            } else if c.is_whitespace() && !in_quotes {
                end = i;
                break;
            }
        }
        let (tok, tail) = rest.split_at(end);
        rest = tail;
        Some(match tok.split_once('=') {
            Some((name, value)) => Token {
                name,
                value: Some(strip_quotes(value)),
            },
            None => Token {
                name: tok,
                value: None,
            },
        })
    })
}

fn strip_quotes(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
}

/// The remainder of a multiboot command line after its first word, which for most loaders
/// is the image's file name (QEMU, GRUB legacy).
pub fn skip_first_word(line: &str) -> &str {
    let line = line.trim_start();
    match line.find(char::is_whitespace) {
        Some(i) => line[i..].trim_start(),
        None => "",
    }
}

/// Parses a Xen boolean value.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "yes" | "on" | "true" | "enable" => Some(true),
        "0" | "no" | "off" | "false" | "disable" => Some(false),
        _ => None,
    }
}

/// Parses an unsigned integer, decimal or `0x` hexadecimal.
pub fn parse_u64(s: &str) -> Option<u64> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else {
        s.parse().ok()
    }
}

/// Parses a size with an optional `B/K/M/G/T` suffix; no suffix means KiB (Xen's rule).
pub fn parse_size(s: &str) -> Option<u64> {
    let (digits, shift) = match s.as_bytes().last()? {
        b'b' | b'B' => (&s[..s.len() - 1], 0),
        b'k' | b'K' => (&s[..s.len() - 1], 10),
        b'm' | b'M' => (&s[..s.len() - 1], 20),
        b'g' | b'G' => (&s[..s.len() - 1], 30),
        b't' | b'T' => (&s[..s.len() - 1], 40),
        _ => (s, 10),
    };
    let n = parse_u64(digits)?;
    let bytes = n.checked_mul(1u64 << shift)?;
    Some(bytes)
}

fn parse_amount(s: &str) -> Option<MemAmount> {
    if let Some(neg) = s.strip_prefix('-') {
        return parse_size(neg).map(MemAmount::AllBut);
    }
    if let Some(pct) = s.strip_suffix('%') {
        let p: u8 = pct.parse().ok()?;
        return (p <= 100).then_some(MemAmount::Percent(p));
    }
    parse_size(s).map(MemAmount::Bytes)
}

fn parse_dom0_mem(s: &str) -> Option<Dom0Mem> {
    let mut out = Dom0Mem::default();
    for part in s.split(',') {
        if let Some(v) = part.strip_prefix("min:") {
            out.min = Some(parse_amount(v)?);
        } else if let Some(v) = part.strip_prefix("max:") {
            out.max = Some(parse_amount(v)?);
        } else {
            out.amount = Some(parse_amount(part)?);
        }
    }
    Some(out)
}

/// Parses a Xen log level name (`none`, `error`, `warning`, `info`, `debug`, `all`), also
/// accepting `<level>/<rate-limited level>` (Oxen does not rate-limit its own messages).
pub fn parse_loglvl(s: &str) -> Option<LevelFilter> {
    let level = s.split_once('/').map_or(s, |(a, _)| a);
    Some(match level {
        "none" => LevelFilter::Off,
        "error" => LevelFilter::Error,
        "warning" => LevelFilter::Warn,
        "info" => LevelFilter::Info,
        "debug" => LevelFilter::Debug,
        "all" => LevelFilter::Trace,
        _ => return None,
    })
}

/// Parses `com1=<baud>|auto[/<clock>][,<DPS>][,...]`; returns the settings and whether parts
/// Oxen ignores (clock, I/O base, IRQ, ...) were present.
fn parse_uart(s: &str) -> Option<(UartConfig, bool)> {
    let mut cfg = UartConfig::default();
    let mut parts = s.split(',');
    let baud_part = parts.next()?;
    let (baud, clock) = match baud_part.split_once('/') {
        Some((b, c)) => (b, Some(c)),
        None => (baud_part, None),
    };
    cfg.baud = match baud {
        "auto" | "" => 0,
        b => u32::try_from(parse_u64(b)?).ok().filter(|&b| b > 0)?,
    };
    let mut ignored = clock.is_some();
    if let Some(dps) = parts.next().filter(|p| !p.is_empty()) {
        let d = dps.as_bytes();
        if d.len() != 3 {
            return None;
        }
        let data_bits = d[0].wrapping_sub(b'0');
        let parity = d[1].to_ascii_lowercase();
        let stop_bits = d[2].wrapping_sub(b'0');
        if !(5..=8).contains(&data_bits)
            || !matches!(parity, b'n' | b'o' | b'e' | b'm' | b's')
            || !(1..=2).contains(&stop_bits)
        {
            return None;
        }
        cfg.data_bits = data_bits;
        cfg.parity = parity;
        cfg.stop_bits = stop_bits;
    }
    if parts.any(|p| !p.is_empty()) {
        ignored = true;
    }
    Some((cfg, ignored))
}

fn text(s: &str) -> ArrayString<WARN_TEXT> {
    let mut out = ArrayString::new();
    for c in s.chars() {
        if out.try_push(c).is_err() {
            break;
        }
    }
    out
}

impl Options {
    /// Parses a hypervisor command line (without the image name).
    pub fn parse(line: &str) -> Options {
        let mut opts = Options::default();
        for tok in tokens(line) {
            opts.apply(tok);
        }
        opts
    }

    fn warn(&mut self, kind: WarningKind, tok: Token<'_>) {
        let w = Warning {
            kind,
            name: text(tok.name),
            value: text(tok.value.unwrap_or("")),
        };
        if self.warnings.try_push(w).is_err() {
            self.dropped_warnings = self.dropped_warnings.saturating_add(1);
        }
    }

    /// A boolean option: `name`, `name=<bool>` or `no-name`.
    fn boolean(&mut self, tok: Token<'_>, negated: bool) -> Option<bool> {
        let v = match tok.value {
            None => Some(true),
            Some(v) => parse_bool(v),
        };
        match v {
            Some(v) => Some(v != negated),
            None => {
                self.warn(WarningKind::BadValue, tok);
                None
            }
        }
    }

    fn apply(&mut self, tok: Token<'_>) {
        let (name, negated) = match tok.name.strip_prefix("no-") {
            Some(n) => (n, true),
            None => (tok.name, false),
        };
        match name {
            "noreboot" => {
                if let Some(v) = self.boolean(tok, negated) {
                    self.noreboot = v;
                }
            }
            "mmu_audit" => {
                if let Some(v) = self.boolean(tok, negated) {
                    self.mmu_audit = v;
                }
            }
            // Oxen's console is always synchronous; Xen's switch is accepted.
            "sync_console" => {
                self.boolean(tok, negated);
            }
            _ if negated => self.warn(WarningKind::UnknownOption, tok),
            "console" => self.apply_console(tok),
            "com1" | "com2" => match tok.value.and_then(parse_uart) {
                Some((cfg, ignored)) => {
                    if name == "com1" {
                        self.com1 = cfg;
                    } else {
                        self.com2 = cfg;
                    }
                    if ignored {
                        self.warn(WarningKind::Unsupported, tok);
                    }
                }
                None => self.warn(WarningKind::BadValue, tok),
            },
            "loglvl" | "guest_loglvl" => match tok.value.and_then(parse_loglvl) {
                Some(l) if name == "loglvl" => self.loglvl = l,
                Some(l) => self.guest_loglvl = l,
                None => self.warn(WarningKind::BadValue, tok),
            },
            "dom0_mem" => match tok.value.and_then(parse_dom0_mem) {
                Some(m) => self.dom0_mem = m,
                None => self.warn(WarningKind::BadValue, tok),
            },
            // Xen's dom0 mode: Oxen builds PV dom0s only.
            "dom0" => match tok.value {
                Some("pv") => {}
                Some(_) => self.warn(WarningKind::Unsupported, tok),
                None => self.warn(WarningKind::BadValue, tok),
            },
            "dom0_max_vcpus" => match tok
                .value
                .and_then(parse_u64)
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| (1..=MAX_BOOT_VCPUS).contains(n))
            {
                Some(n) => self.dom0_max_vcpus = n,
                None => self.warn(WarningKind::BadValue, tok),
            },
            "domU" => match tok.value.and_then(DomUSpec::parse) {
                Some(d) if self.domus.iter().any(|o| o.module == d.module) => {
                    self.warn(WarningKind::BadValue, tok);
                }
                Some(d) => {
                    if self.domus.try_push(d).is_err() {
                        self.warn(WarningKind::Unsupported, tok);
                    }
                }
                None => self.warn(WarningKind::BadValue, tok),
            },
            "sched_credit_tslice_ms" => match tok
                .value
                .and_then(parse_u64)
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| (1..=1000).contains(n))
            {
                Some(n) => self.tslice_ms = n,
                None => self.warn(WarningKind::BadValue, tok),
            },
            "test_fault" => match tok.value.and_then(TestFault::parse) {
                Some(f) => self.test_fault = Some(f),
                None => self.warn(WarningKind::BadValue, tok),
            },
            _ => self.warn(WarningKind::UnknownOption, tok),
        }
    }

    fn apply_console(&mut self, tok: Token<'_>) {
        let Some(value) = tok.value else {
            self.warn(WarningKind::BadValue, tok);
            return;
        };
        self.console.clear();
        for dev in value.split(',') {
            let d = match dev {
                "com1" => ConsoleDevice::Com1,
                "com2" => ConsoleDevice::Com2,
                "none" | "" => continue,
                other => {
                    self.warn(
                        WarningKind::Unsupported,
                        Token {
                            name: tok.name,
                            value: Some(other),
                        },
                    );
                    continue;
                }
            };
            if !self.console.contains(&d) {
                // Capacity equals the number of devices, and duplicates are skipped.
                let _ = self.console.try_push(d);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<(String, Option<String>)> {
        tokens(s)
            .map(|t| (t.name.to_string(), t.value.map(str::to_string)))
            .collect()
    }

    #[test]
    fn tokenizer_handles_values_quotes_and_spacing() {
        assert_eq!(
            toks("  a b=1  c=\"x y\" d= "),
            vec![
                ("a".into(), None),
                ("b".into(), Some("1".into())),
                ("c".into(), Some("x y".into())),
                ("d".into(), Some("".into())),
            ]
        );
        assert!(toks("").is_empty());
        assert!(toks(" \t ").is_empty());
        assert_eq!(toks("k=a=b"), vec![("k".into(), Some("a=b".into()))]);
    }

    #[test]
    fn first_word_is_the_image_name() {
        assert_eq!(
            skip_first_word("/boot/xen console=com1  x"),
            "console=com1  x"
        );
        assert_eq!(skip_first_word("xen"), "");
        assert_eq!(skip_first_word("  xen   a"), "a");
        assert_eq!(skip_first_word(""), "");
    }

    #[test]
    fn sizes_default_to_kib() {
        assert_eq!(parse_size("512"), Some(512 << 10));
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("2g"), Some(2 << 30));
        assert_eq!(parse_size("1T"), Some(1 << 40));
        assert_eq!(parse_size("4096B"), Some(4096));
        assert_eq!(parse_size("0x10M"), Some(16 << 20));
        assert_eq!(parse_size("M"), None);
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("12x"), None);
        assert_eq!(
            parse_size("99999999999999999T"),
            None,
            "overflow is an error"
        );
    }

    #[test]
    fn dom0_mem_clauses() {
        let o = Options::parse("dom0_mem=min:64M,max:1G,512M");
        assert_eq!(o.dom0_mem.amount, Some(MemAmount::Bytes(512 << 20)));
        assert_eq!(o.dom0_mem.min, Some(MemAmount::Bytes(64 << 20)));
        assert_eq!(o.dom0_mem.max, Some(MemAmount::Bytes(1 << 30)));
        assert!(o.warnings.is_empty());

        let o = Options::parse("dom0_mem=-256M");
        assert_eq!(o.dom0_mem.amount, Some(MemAmount::AllBut(256 << 20)));
        assert_eq!(o.dom0_mem.resolve(1 << 30, 0), 768 << 20);

        let o = Options::parse("dom0_mem=25%");
        assert_eq!(o.dom0_mem.resolve(1 << 30, 0), 256 << 20);

        let o = Options::parse("dom0_mem=max:128M");
        assert_eq!(o.dom0_mem.resolve(1 << 30, 512 << 20), 128 << 20);
        let o = Options::parse("dom0_mem=min:600M,256M");
        assert_eq!(o.dom0_mem.resolve(1 << 30, 0), 600 << 20);
        // Never more than there is.
        let o = Options::parse("dom0_mem=4G");
        assert_eq!(o.dom0_mem.resolve(1 << 30, 0), 1 << 30);

        let o = Options::parse("dom0_mem=lots");
        assert_eq!(o.dom0_mem, Dom0Mem::default());
        assert_eq!(o.warnings[0].kind, WarningKind::BadValue);
        assert_eq!(Options::parse("dom0_mem=101%").warnings.len(), 1);
    }

    #[test]
    fn booleans_and_negation() {
        assert!(Options::parse("noreboot").noreboot);
        assert!(Options::parse("noreboot=yes").noreboot);
        assert!(!Options::parse("noreboot=0").noreboot);
        assert!(!Options::parse("noreboot no-noreboot").noreboot);
        let o = Options::parse("noreboot=maybe");
        assert!(!o.noreboot);
        assert_eq!(o.warnings[0].kind, WarningKind::BadValue);
        // `no-` on a non-boolean is not an option.
        assert_eq!(
            Options::parse("no-loglvl").warnings[0].kind,
            WarningKind::UnknownOption
        );
    }

    #[test]
    fn log_levels() {
        assert_eq!(Options::parse("loglvl=all").loglvl, LevelFilter::Trace);
        assert_eq!(
            Options::parse("loglvl=warning/error").loglvl,
            LevelFilter::Warn
        );
        assert_eq!(Options::parse("loglvl=none").loglvl, LevelFilter::Off);
        assert_eq!(
            Options::parse("guest_loglvl=debug").guest_loglvl,
            LevelFilter::Debug
        );
        let o = Options::parse("loglvl=loud");
        assert_eq!(o.loglvl, LevelFilter::Info);
        assert_eq!(o.warnings.len(), 1);
    }

    #[test]
    fn console_selection() {
        assert_eq!(
            Options::parse("").console.as_slice(),
            &[ConsoleDevice::Com1]
        );
        assert_eq!(
            Options::parse("console=com2").console.as_slice(),
            &[ConsoleDevice::Com2]
        );
        let o = Options::parse("console=com1,vga");
        assert_eq!(o.console.as_slice(), &[ConsoleDevice::Com1]);
        assert_eq!(o.warnings[0].kind, WarningKind::Unsupported);
        assert!(Options::parse("console=none").console.is_empty());
        assert_eq!(
            Options::parse("console=com1,com1").console.as_slice(),
            &[ConsoleDevice::Com1]
        );
    }

    #[test]
    fn uart_settings() {
        let o = Options::parse("com1=9600,7e2");
        assert_eq!(
            o.com1,
            UartConfig {
                baud: 9600,
                data_bits: 7,
                parity: b'e',
                stop_bits: 2
            }
        );
        assert_eq!(o.com1.line_control(), 0x02 | 0x04 | 0x18);
        assert_eq!(UartConfig::default().line_control(), 0x03);
        assert_eq!(Options::parse("com1=auto").com1.baud, 0);
        let o = Options::parse("com1=115200/1843200,8n1,0x3f8,4");
        assert_eq!(o.com1.baud, 115_200);
        assert_eq!(o.warnings[0].kind, WarningKind::Unsupported);
        assert_eq!(
            Options::parse("com1=fast").warnings[0].kind,
            WarningKind::BadValue
        );
        assert_eq!(
            Options::parse("com1=9600,9n1").warnings[0].kind,
            WarningKind::BadValue
        );
        assert_eq!(
            Options::parse("com1=0").warnings[0].kind,
            WarningKind::BadValue
        );
    }

    #[test]
    fn unknown_options_warn_and_continue() {
        let o = Options::parse("loglvl=all frobnicate=1 dom0_mem=128M noreboot");
        assert_eq!(o.loglvl, LevelFilter::Trace);
        assert!(o.noreboot);
        assert_eq!(o.dom0_mem.amount, Some(MemAmount::Bytes(128 << 20)));
        assert_eq!(o.warnings.len(), 1);
        assert_eq!(
            o.warnings[0].to_string(),
            "unknown option 'frobnicate' ignored"
        );
    }

    #[test]
    fn warnings_are_bounded() {
        let line: String = (0..40).map(|i| format!("opt{i} ")).collect();
        let o = Options::parse(&line);
        assert_eq!(o.warnings.len(), MAX_WARNINGS);
        assert_eq!(o.dropped_warnings, 40 - MAX_WARNINGS);
        let long = "x".repeat(500);
        let o = Options::parse(&long);
        assert_eq!(o.warnings[0].name.len(), WARN_TEXT);
    }

    #[test]
    fn xen_dom0_mode_and_test_faults() {
        assert!(Options::parse("dom0=pv").warnings.is_empty());
        assert_eq!(
            Options::parse("dom0=pvh").warnings[0].kind,
            WarningKind::Unsupported
        );
        assert_eq!(
            Options::parse("test_fault=pf").test_fault,
            Some(TestFault::PageFault)
        );
        assert_eq!(
            Options::parse("test_fault=df").test_fault,
            Some(TestFault::StackOverflow)
        );
        assert_eq!(Options::parse("test_fault=zz").test_fault, None);
        assert!(Options::parse("mmu_audit").mmu_audit);
        assert!(!Options::parse("mmu_audit=no").mmu_audit);
    }

    #[test]
    fn boot_time_domains() {
        let o = Options::parse(
            "domU=2 domU=3,mem=64M,vcpus=2,weight=512,cap=50 dom0_max_vcpus=4 sched_credit_tslice_ms=5",
        );
        assert!(o.warnings.is_empty(), "{:?}", o.warnings);
        assert_eq!(o.dom0_max_vcpus, 4);
        assert_eq!(o.tslice_ms, 5);
        assert_eq!(
            o.domus.as_slice(),
            &[
                DomUSpec {
                    module: 2,
                    mem: DEFAULT_DOMU_MEM,
                    vcpus: 1,
                    weight: 256,
                    cap: 0
                },
                DomUSpec {
                    module: 3,
                    mem: 64 << 20,
                    vcpus: 2,
                    weight: 512,
                    cap: 50
                },
            ]
        );
        for bad in [
            "domU=1",
            "domU=0",
            "domU=x",
            "domU=2,mem=1K",
            "domU=2,vcpus=0",
            "domU=2,vcpus=33",
            "domU=2,weight=0",
            "domU=2,weight=65536",
            "domU=2,cap=101",
            "domU=2,cap=201,vcpus=2",
            "domU=2,colour=red",
            "domU=2,mem",
            "dom0_max_vcpus=0",
            "sched_credit_tslice_ms=0",
        ] {
            let o = Options::parse(bad);
            assert_eq!(o.warnings.len(), 1, "{bad}");
            assert_eq!(o.warnings[0].kind, WarningKind::BadValue, "{bad}");
        }
        // Two vCPUs may have a cap up to 200%, whatever the order of the clauses.
        assert_eq!(
            DomUSpec::parse("2,cap=150,vcpus=2").map(|d| d.cap),
            Some(150)
        );
        // The same module twice is refused the second time.
        let o = Options::parse("domU=2 domU=2,mem=64M");
        assert_eq!(o.domus.len(), 1);
        assert_eq!(o.warnings.len(), 1);
        // More than MAX_BOOT_DOMUS.
        let many: String = (2..2 + MAX_BOOT_DOMUS as u32 + 1)
            .map(|m| format!("domU={m} "))
            .collect();
        let o = Options::parse(&many);
        assert_eq!(o.domus.len(), MAX_BOOT_DOMUS);
        assert_eq!(o.warnings[0].kind, WarningKind::Unsupported);
    }
}
