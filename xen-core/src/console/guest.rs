//! Console output of unprivileged domains through `console_io` (portable).
//!
//! dom0 writes straight to the console. Other domains' bytes are collected into lines, shown
//! as `(d<N>) <line>` with anything unprintable replaced, and rate-limited per domain (a
//! token bucket over bytes), as Xen's debug builds do for guests' early output: a domain
//! printing in a loop cannot flood the console or slow the machine. Suppressed output is
//! counted and reported once output is allowed again.

use alloc::vec::Vec;

/// Longest line kept before it is flushed anyway.
pub const MAX_LINE: usize = 256;
/// Bytes a domain may print in a burst.
pub const BURST_BYTES: u64 = 64 * 1024;
/// Bytes per second the allowance refills at.
pub const REFILL_BYTES_PER_SEC: u64 = 16 * 1024;

/// One domain's console state.
#[derive(Debug, Clone)]
pub struct GuestConsole {
    /// The domain number shown in the prefix.
    dom: u16,
    /// The line being collected.
    line: Vec<u8>,
    /// Bytes the domain may still print now.
    tokens: u64,
    /// When `tokens` was last refilled (ns).
    refilled_at: u64,
    /// Bytes dropped since the last line shown.
    suppressed: u64,
}

impl GuestConsole {
    /// A console for domain `dom` with a full allowance.
    pub fn new(dom: u16) -> GuestConsole {
        GuestConsole {
            dom,
            line: Vec::new(),
            tokens: BURST_BYTES,
            refilled_at: 0,
            suppressed: 0,
        }
    }

    /// Bytes dropped so far and not yet reported.
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }

    fn refill(&mut self, now: u64) {
        let elapsed = now.saturating_sub(self.refilled_at);
        let add =
            u64::try_from(u128::from(elapsed) * u128::from(REFILL_BYTES_PER_SEC) / 1_000_000_000)
                .unwrap_or(u64::MAX);
        if add > 0 {
            self.tokens = self.tokens.saturating_add(add).min(BURST_BYTES);
            self.refilled_at = now;
        }
    }

    /// Takes `bytes` written by the domain at time `now`; each complete line that may be shown
    /// goes to `out` (already prefixed, ending in `\n`).
    pub fn write(&mut self, bytes: &[u8], now: u64, out: &mut dyn FnMut(&[u8])) {
        for &b in bytes {
            match b {
                b'\n' => self.flush(now, out),
                b'\r' => {}
                b'\t' | 0x20..=0x7e => self.line.push(b),
                _ => self.line.push(b'?'),
            }
            if self.line.len() >= MAX_LINE {
                self.flush(now, out);
            }
        }
    }

    /// Shows a partly collected line (the domain is going away), if there is one.
    pub fn flush_partial(&mut self, now: u64, out: &mut dyn FnMut(&[u8])) {
        if !self.line.is_empty() {
            self.flush(now, out);
        }
    }

    /// Shows the collected line (if the allowance permits) and starts a new one.
    pub fn flush(&mut self, now: u64, out: &mut dyn FnMut(&[u8])) {
        self.refill(now);
        let line = core::mem::take(&mut self.line);
        let cost = line.len() as u64 + 1;
        if self.tokens < cost {
            self.suppressed = self.suppressed.saturating_add(cost);
            return;
        }
        self.tokens -= cost;
        let mut text = Vec::with_capacity(line.len() + 48);
        if self.suppressed > 0 {
            let note = alloc::format!(
                "(d{}) [{} bytes of console output suppressed]\n",
                self.dom,
                self.suppressed
            );
            out(note.as_bytes());
            self.suppressed = 0;
        }
        text.extend_from_slice(alloc::format!("(d{}) ", self.dom).as_bytes());
        text.extend_from_slice(&line);
        text.push(b'\n');
        out(&text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(c: &mut GuestConsole, bytes: &[u8], now: u64) -> Vec<String> {
        let mut lines = Vec::new();
        c.write(bytes, now, &mut |l| {
            lines.push(String::from_utf8(l.to_vec()).unwrap_or_default())
        });
        lines
    }

    #[test]
    fn lines_are_prefixed_and_cleaned() {
        let mut c = GuestConsole::new(3);
        assert!(run(&mut c, b"hello", 0).is_empty());
        assert_eq!(
            run(&mut c, b" world\r\nx\x1b[0m\n", 0),
            ["(d3) hello world\n", "(d3) x?[0m\n"]
        );
    }

    #[test]
    fn long_lines_are_split() {
        let mut c = GuestConsole::new(1);
        let lines = run(&mut c, &[b'a'; MAX_LINE + 10], 0);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].len(), "(d1) ".len() + MAX_LINE + 1);
    }

    #[test]
    fn floods_are_limited_and_reported() {
        let mut c = GuestConsole::new(2);
        let line = [b'x'; 99];
        let mut shown = 0u64;
        for _ in 0..2000 {
            let mut bytes = line.to_vec();
            bytes.push(b'\n');
            shown += run(&mut c, &bytes, 0).len() as u64;
        }
        // 64 KiB of 100-byte lines get through at once; the rest is dropped.
        assert_eq!(shown, BURST_BYTES / 100);
        assert!(c.suppressed() > 0);
        // A second later the allowance has refilled a little, and the drop is reported.
        let later = run(&mut c, b"after\n", 1_000_000_000);
        assert_eq!(later.len(), 2);
        assert!(later[0].contains("bytes of console output suppressed"));
        assert_eq!(later[1], "(d2) after\n");
        assert_eq!(c.suppressed(), 0);
    }
}
