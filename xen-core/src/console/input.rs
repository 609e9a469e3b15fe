//! Console input (portable): where typed characters go.
//!
//! As in Xen, input belongs to dom0 (which reads it with `CONSOLEIO_read` when
//! `VIRQ_CONSOLE` tells it there is some) until Ctrl-A is typed three times in a row; then it
//! belongs to the hypervisor, whose *debug keys* print state (`h` lists them). Three more
//! Ctrl-As give it back to dom0.

use alloc::collections::VecDeque;

/// Ctrl-A.
pub const CTRL_A: u8 = 0x01;
/// Ctrl-As in a row that switch the input's owner.
pub const SWITCH_RUN: u8 = 3;
/// Bytes of dom0 input kept until dom0 reads them (older bytes are dropped).
pub const RING_BYTES: usize = 1024;

/// Who gets typed characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Focus {
    /// dom0 (the default).
    Dom0,
    /// The hypervisor's debug keys.
    Hypervisor,
}

/// What a typed byte amounts to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// Queued for dom0 (raise `VIRQ_CONSOLE`).
    ForDom0,
    /// A debug key for the hypervisor.
    DebugKey(u8),
    /// The input changed owner.
    Switched(Focus),
    /// Nothing to do (a Ctrl-A that may start a switch).
    Nothing,
}

/// The console input state.
#[derive(Debug)]
pub struct ConsoleInput {
    focus: Focus,
    ctrl_a: u8,
    ring: VecDeque<u8>,
    dropped: u64,
}

impl Default for ConsoleInput {
    fn default() -> Self {
        Self::new()
    }
}

impl ConsoleInput {
    /// Input for dom0, nothing queued.
    pub const fn new() -> ConsoleInput {
        ConsoleInput {
            focus: Focus::Dom0,
            ctrl_a: 0,
            ring: VecDeque::new(),
            dropped: 0,
        }
    }

    /// Who gets input now.
    pub fn focus(&self) -> Focus {
        self.focus
    }

    /// Bytes dropped because dom0 did not read them in time.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Takes one typed byte.
    pub fn feed(&mut self, b: u8) -> Input {
        if b == CTRL_A {
            self.ctrl_a += 1;
            if self.ctrl_a >= SWITCH_RUN {
                self.ctrl_a = 0;
                self.focus = match self.focus {
                    Focus::Dom0 => Focus::Hypervisor,
                    Focus::Hypervisor => Focus::Dom0,
                };
                return Input::Switched(self.focus);
            }
            return Input::Nothing;
        }
        // Ctrl-As that did not complete a switch are ordinary input.
        let pending = core::mem::take(&mut self.ctrl_a);
        match self.focus {
            Focus::Hypervisor => Input::DebugKey(b),
            Focus::Dom0 => {
                for _ in 0..pending {
                    self.push(CTRL_A);
                }
                self.push(b);
                Input::ForDom0
            }
        }
    }

    fn push(&mut self, b: u8) {
        if self.ring.len() >= RING_BYTES {
            self.ring.pop_front();
            self.dropped += 1;
        }
        self.ring.push_back(b);
    }

    /// Copies queued dom0 input into `buf` without consuming it; returns how many bytes.
    pub fn peek(&self, buf: &mut [u8]) -> usize {
        let mut n = 0;
        for (slot, b) in buf.iter_mut().zip(self.ring.iter()) {
            *slot = *b;
            n += 1;
        }
        n
    }

    /// Drops the first `n` queued bytes (after a successful [`ConsoleInput::peek`]).
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.ring.len());
        self.ring.drain(..n);
    }

    /// Moves queued dom0 input into `buf`; returns how many bytes.
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        let mut n = 0;
        for slot in buf.iter_mut() {
            match self.ring.pop_front() {
                Some(b) => {
                    *slot = b;
                    n += 1;
                }
                None => break,
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_goes_to_dom0_and_is_read_in_order() {
        let mut c = ConsoleInput::new();
        assert_eq!(c.feed(b'h'), Input::ForDom0);
        assert_eq!(c.feed(b'i'), Input::ForDom0);
        let mut buf = [0u8; 8];
        assert_eq!(c.read(&mut buf), 2);
        assert_eq!(&buf[..2], b"hi");
        assert_eq!(c.read(&mut buf), 0);
    }

    #[test]
    fn peek_then_consume() {
        let mut c = ConsoleInput::new();
        for b in b"abc" {
            c.feed(*b);
        }
        let mut buf = [0u8; 2];
        assert_eq!(c.peek(&mut buf), 2);
        assert_eq!(c.peek(&mut buf), 2);
        c.consume(2);
        assert_eq!(c.read(&mut buf), 1);
        assert_eq!(buf[0], b'c');
    }

    #[test]
    fn three_ctrl_a_switch_to_debug_keys_and_back() {
        let mut c = ConsoleInput::new();
        assert_eq!(c.feed(CTRL_A), Input::Nothing);
        assert_eq!(c.feed(CTRL_A), Input::Nothing);
        assert_eq!(c.feed(CTRL_A), Input::Switched(Focus::Hypervisor));
        assert_eq!(c.feed(b'q'), Input::DebugKey(b'q'));
        for _ in 0..2 {
            assert_eq!(c.feed(CTRL_A), Input::Nothing);
        }
        assert_eq!(c.feed(CTRL_A), Input::Switched(Focus::Dom0));
        assert_eq!(c.focus(), Focus::Dom0);
    }

    #[test]
    fn a_short_ctrl_a_run_is_ordinary_input() {
        let mut c = ConsoleInput::new();
        c.feed(CTRL_A);
        assert_eq!(c.feed(b'x'), Input::ForDom0);
        let mut buf = [0u8; 4];
        assert_eq!(c.read(&mut buf), 2);
        assert_eq!(&buf[..2], &[CTRL_A, b'x']);
    }

    #[test]
    fn the_ring_keeps_the_newest_bytes() {
        let mut c = ConsoleInput::new();
        for i in 0..RING_BYTES + 10 {
            c.feed(b'a' + (i % 26) as u8);
        }
        assert_eq!(c.dropped(), 10);
        let mut buf = vec![0u8; RING_BYTES + 10];
        assert_eq!(c.read(&mut buf), RING_BYTES);
        assert_eq!(buf[0], b'a' + 10);
    }
}
