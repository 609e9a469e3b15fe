//! `multicall` (hypercall 13): a batch of hypercalls in one entry (reference §9.9).
//!
//! Each entry runs as hypercall `op` with `args[0..5]`; its return value lands in `result`.
//! The hypercall itself returns 0 once all entries ran (or `-EFAULT` if the list is unreadable).
//! A nested `multicall` entry fails with `-EINVAL`; an `iret` entry ends the batch.

/// Argument slots in a `multicall_entry` (`args[6]`).
pub const MULTICALL_ARG_SLOTS: usize = 6;
/// Argument slots actually used on x86-64 (`args[5]` is ignored).
pub const MULTICALL_USED_ARGS: usize = 5;

/// `multicall_entry` (64 bytes; reference §9.9).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MulticallEntry {
    /// Hypercall number.
    pub op: u64,
    /// Output: the entry's return value.
    pub result: u64,
    /// Arguments in register order (`rdi, rsi, rdx, r10, r8`, unused).
    pub args: [u64; MULTICALL_ARG_SLOTS],
}

assert_layout!(MulticallEntry, size = 64, align = 8, {
    op: u64 = 0,
    result: u64 = 8,
    args: [u64; 6] = 16,
});

impl MulticallEntry {
    /// An entry for hypercall `op` with up to five arguments (the rest zero).
    #[must_use]
    pub const fn new(op: crate::hypercall::Hypercall, args: [u64; MULTICALL_USED_ARGS]) -> Self {
        Self {
            op: op.raw() as u64,
            result: 0,
            args: [args[0], args[1], args[2], args[3], args[4], 0],
        }
    }

    /// The result as a signed hypercall return value.
    #[must_use]
    pub const fn result_signed(&self) -> i64 {
        self.result.cast_signed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypercall::Hypercall;

    #[test]
    fn entry_construction() {
        let e = MulticallEntry::new(Hypercall::UpdateVaMapping, [0x1000, 0x2003, 2, 0, 0]);
        assert_eq!(e.op, 14);
        assert_eq!(e.args, [0x1000, 0x2003, 2, 0, 0, 0]);
        let failed = MulticallEntry {
            result: crate::errno::Errno::Einval.as_rax(),
            ..e
        };
        assert_eq!(failed.result_signed(), -22);
    }
}
