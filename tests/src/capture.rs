//! The serial transcript: bytes from QEMU's stdout cut into lines, `\r` removed, each line
//! stamped with the time it completed, and watched for end markers.

use std::time::Duration;

/// Removes every `\r` and decodes the rest as UTF-8 (invalid bytes become U+FFFD).
///
/// Oxen ends serial lines in `\r\n` and Xen in `\r\r\n`; both become `\n`.
pub fn normalise(bytes: &[u8]) -> String {
    let kept: Vec<u8> = bytes.iter().copied().filter(|&b| b != b'\r').collect();
    String::from_utf8_lossy(&kept).into_owned()
}

/// The transcript as it is being received.
#[derive(Debug, Default)]
pub(crate) struct Capture {
    /// Completed lines (without their `\n`) and when each completed, since the boot started.
    lines: Vec<(Duration, String)>,
    /// The line being received, `\r` already dropped.
    partial: Vec<u8>,
    /// Texts that end the run when they appear.
    markers: Vec<String>,
    /// The first marker seen, and when.
    hit: Option<(String, Duration)>,
    /// Echo each completed line to stderr as it arrives.
    echo: bool,
}

impl Capture {
    pub(crate) fn new(markers: Vec<String>, echo: bool) -> Capture {
        Capture {
            markers,
            echo,
            ..Capture::default()
        }
    }

    /// Whether a completed line, or the line being received, contains `needle`.
    pub(crate) fn contains(&self, needle: &str) -> bool {
        self.lines.iter().any(|(_, line)| line.contains(needle))
            || String::from_utf8_lossy(&self.partial).contains(needle)
    }

    /// Adds bytes received `at` after the start.
    pub(crate) fn feed(&mut self, bytes: &[u8], at: Duration) {
        for &byte in bytes {
            match byte {
                b'\r' => {}
                b'\n' => {
                    let line = String::from_utf8_lossy(&self.partial).into_owned();
                    self.partial.clear();
                    if self.echo {
                        eprintln!("[serial {:>7.3}s] {line}", at.as_secs_f64());
                    }
                    self.check_markers(&line, at);
                    self.lines.push((at, line));
                }
                _ => self.partial.push(byte),
            }
        }
        // A marker may sit on a line the guest never ends (Xen's last words have no newline).
        if self.hit.is_none() && !self.partial.is_empty() {
            let partial = String::from_utf8_lossy(&self.partial).into_owned();
            self.check_markers(&partial, at);
        }
    }

    fn check_markers(&mut self, text: &str, at: Duration) {
        if self.hit.is_none()
            && let Some(marker) = self.markers.iter().find(|m| text.contains(m.as_str()))
        {
            self.hit = Some((marker.clone(), at));
        }
    }

    /// The first end marker seen, and when.
    pub(crate) fn hit(&self) -> Option<&(String, Duration)> {
        self.hit.as_ref()
    }

    /// The finished transcript and the completion time of each of its lines (in the order of
    /// `transcript.lines()`; an unterminated last line is stamped `end`).
    pub(crate) fn finish(mut self, end: Duration) -> (String, Vec<Duration>) {
        let terminated = self.partial.is_empty();
        if !terminated {
            let line = String::from_utf8_lossy(&self.partial).into_owned();
            self.lines.push((end, line));
        }
        let mut transcript = self
            .lines
            .iter()
            .map(|(_, line)| line.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        if terminated && !self.lines.is_empty() {
            transcript.push('\n');
        }
        let times = self.lines.into_iter().map(|(at, _)| at).collect();
        (transcript, times)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: Duration = Duration::from_millis(1);
    const T2: Duration = Duration::from_millis(2);
    const T3: Duration = Duration::from_millis(3);

    #[test]
    fn normalise_removes_carriage_returns() {
        assert_eq!(normalise(b"(XEN) a\r\r\n(XEN) b\r\n"), "(XEN) a\n(XEN) b\n");
        assert_eq!(normalise(b"x\ry"), "xy");
        assert_eq!(normalise(b"bad \xff byte"), "bad \u{fffd} byte");
    }

    #[test]
    fn lines_are_split_across_reads_and_stamped() {
        let mut capture = Capture::new(vec![], false);
        capture.feed(b"Oxen 0.1\r\nRAM: 25", T1);
        capture.feed(b"5 MiB\r\r\n", T2);
        capture.feed(b"tail", T3);
        let (transcript, times) = capture.finish(Duration::from_millis(4));
        assert_eq!(transcript, "Oxen 0.1\nRAM: 255 MiB\ntail");
        assert_eq!(transcript.lines().count(), times.len());
        assert_eq!(times, [T1, T2, Duration::from_millis(4)]);
    }

    #[test]
    fn terminated_transcript_keeps_its_final_newline() {
        let mut capture = Capture::new(vec![], false);
        capture.feed(b"a\r\nb\r\n", T1);
        let (transcript, times) = capture.finish(T2);
        assert_eq!(transcript, "a\nb\n");
        assert_eq!(times, [T1, T1]);
    }

    #[test]
    fn markers_are_found_in_whole_and_partial_lines() {
        let mut capture = Capture::new(vec!["Dom0 halted".into(), "Manual reset".into()], false);
        capture.feed(b"(XEN) Hardware Dom0 ha", T1);
        assert!(capture.hit().is_none());
        capture.feed(b"lted: halting machine\r\r\n", T2);
        assert_eq!(capture.hit(), Some(&("Dom0 halted".to_owned(), T2)));
        // The first marker wins.
        capture.feed(b"Manual reset required", T3);
        assert_eq!(capture.hit().map(|h| h.0.as_str()), Some("Dom0 halted"));

        let mut capture = Capture::new(vec!["Manual reset".into()], false);
        capture.feed(b"(XEN) Manual reset required ('noreboot' specified)", T3);
        assert_eq!(capture.hit().map(|h| h.1), Some(T3));
    }
}
