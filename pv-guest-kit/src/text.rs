//! Small text helpers that need no allocator: C strings and a line buffer for console output.

use core::fmt;

/// The bytes of `field` up to its first NUL, as text; non-UTF-8 text is cut at the first bad
/// byte.
///
/// ```
/// assert_eq!(pv_guest_kit::text::cstr(b"xen-3.0-x86_64\0\0"), "xen-3.0-x86_64");
/// assert_eq!(pv_guest_kit::text::cstr(b"ok\xffno"), "ok");
/// ```
pub fn cstr(field: &[u8]) -> &str {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    let bytes = field.get(..end).unwrap_or_default();
    match core::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(err) => bytes
            .get(..err.valid_up_to())
            .and_then(|valid| core::str::from_utf8(valid).ok())
            .unwrap_or_default(),
    }
}

/// `byte` if it is printable ASCII (or a space), else `.`: for echoing untrusted text.
///
/// ```
/// assert_eq!(pv_guest_kit::text::printable(b'a'), b'a');
/// assert_eq!(pv_guest_kit::text::printable(0x1b), b'.');
/// ```
pub const fn printable(byte: u8) -> u8 {
    if byte.is_ascii_graphic() || byte == b' ' {
        byte
    } else {
        b'.'
    }
}

/// A fixed-size output buffer that hands its bytes to `sink` whenever it fills up and when it is
/// flushed (or dropped), so formatted output costs one console write per line rather than one
/// per fragment. It needs no lock and no allocator, so it can be used anywhere, including in
/// trap handlers and the panic handler.
pub struct LineBuffer<F: FnMut(&[u8]), const N: usize = 256> {
    buf: [u8; N],
    len: usize,
    sink: F,
}

impl<F: FnMut(&[u8]), const N: usize> fmt::Debug for LineBuffer<F, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineBuffer")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<F: FnMut(&[u8]), const N: usize> LineBuffer<F, N> {
    /// An empty buffer writing to `sink`.
    pub const fn new(sink: F) -> Self {
        LineBuffer {
            buf: [0; N],
            len: 0,
            sink,
        }
    }

    /// Appends bytes, flushing as the buffer fills.
    pub fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.len == N {
                self.flush();
            }
            let room = N - self.len;
            let (now, later) = bytes.split_at(room.min(bytes.len()));
            if let Some(dst) = self.buf.get_mut(self.len..self.len + now.len()) {
                dst.copy_from_slice(now);
            }
            self.len += now.len();
            bytes = later;
        }
    }

    /// Hands the buffered bytes to the sink.
    pub fn flush(&mut self) {
        if self.len > 0 {
            (self.sink)(self.buf.get(..self.len).unwrap_or_default());
            self.len = 0;
        }
    }
}

impl<F: FnMut(&[u8]), const N: usize> fmt::Write for LineBuffer<F, N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push(s.as_bytes());
        Ok(())
    }
}

impl<F: FnMut(&[u8]), const N: usize> Drop for LineBuffer<F, N> {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    #[test]
    fn lines_are_written_whole_and_long_ones_in_pieces() {
        let mut out: Vec<Vec<u8>> = Vec::new();
        {
            let mut line = LineBuffer::<_, 8>::new(|b: &[u8]| out.push(b.to_vec()));
            write!(line, "ab{}", 12).expect("infallible");
            line.flush();
            write!(line, "0123456789").expect("infallible");
        }
        assert_eq!(
            out,
            [b"ab12".to_vec(), b"01234567".to_vec(), b"89".to_vec()]
        );
    }

    #[test]
    fn c_strings() {
        assert_eq!(cstr(b""), "");
        assert_eq!(cstr(b"abc"), "abc");
        assert_eq!(cstr(b"a\0b"), "a");
    }
}
