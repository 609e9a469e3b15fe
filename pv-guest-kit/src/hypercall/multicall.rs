//! `multicall` (13): several hypercalls in one entry into the hypervisor (reference §9.9).

use hypercall_abi::hypercall::HYPERVISOR_MULTICALL;
use hypercall_abi::multicall::{MULTICALL_ARG_SLOTS, MulticallEntry};

use super::{HypercallResult, hypercall2, result_from_ret};

/// `multicall(entries, count)`: runs each entry as hypercall `entry.op` with `entry.args` and
/// stores its return value in `entry.result`. Returns 0 once every entry ran; individual
/// failures are only visible in the results.
///
/// # Safety
/// Every entry is a hypercall made on the caller's behalf: each must satisfy the `# Safety`
/// section of that hypercall's wrapper, and the memory its arguments point to must stay valid
/// for the call.
///
/// # Errors
/// `-EFAULT` if the list cannot be read or written; `-EINVAL` for a bad count.
pub unsafe fn multicall(entries: &mut [MulticallEntry]) -> HypercallResult {
    // The caller vouches for each entry's hypercall.
    // SAFETY: the hypervisor reads and writes only the `entries.len()` entries of `entries`.
    result_from_ret(unsafe {
        hypercall2(
            HYPERVISOR_MULTICALL,
            entries.as_mut_ptr() as u64,
            entries.len() as u64,
        )
    })
}

/// A batch of hypercalls sent in one `multicall` when [`flush`](MulticallBatch::flush)ed.
///
/// ```ignore
/// let mut mc = MulticallBatch::<16>::new();
/// // SAFETY: lower-half window pages nothing else uses.
/// unsafe {
///     mc.push(HYPERVISOR_UPDATE_VA_MAPPING, [va, pte, UVMF_INVLPG, 0, 0])?;
/// }
/// for entry in mc.flush()? {
///     assert_eq!(entry.result_signed(), 0);
/// }
/// ```
#[derive(Debug)]
pub struct MulticallBatch<const N: usize = 16> {
    entries: [MulticallEntry; N],
    len: usize,
}

/// [`MulticallBatch::push`] on a full batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchFull;

impl<const N: usize> Default for MulticallBatch<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> MulticallBatch<N> {
    /// An empty batch.
    pub const fn new() -> Self {
        MulticallBatch {
            entries: [MulticallEntry {
                op: 0,
                result: 0,
                args: [0; MULTICALL_ARG_SLOTS],
            }; N],
            len: 0,
        }
    }

    /// Queues hypercall `op` with `args` (in register order). Returns its index in the batch.
    ///
    /// # Safety
    /// As [`multicall`] for this entry: its arguments (and any memory they point to) must be
    /// valid until the batch is flushed, and its effect must not break memory safety.
    ///
    /// # Errors
    /// [`BatchFull`] if `N` entries are queued already.
    pub unsafe fn push(&mut self, op: u32, args: [u64; 5]) -> Result<usize, BatchFull> {
        let index = self.len;
        let slot = self.entries.get_mut(index).ok_or(BatchFull)?;
        *slot = MulticallEntry {
            op: u64::from(op),
            result: 0,
            args: [args[0], args[1], args[2], args[3], args[4], 0],
        };
        self.len += 1;
        Ok(index)
    }

    /// Sends the queued entries; returns them with their results. The batch is empty
    /// afterwards.
    ///
    /// # Errors
    /// The `multicall` hypercall's own error (`-EFAULT`, ...).
    pub fn flush(&mut self) -> HypercallResult<&[MulticallEntry]> {
        let len = self.len;
        self.len = 0;
        let Some(queued) = self.entries.get_mut(..len) else {
            return Ok(&[]);
        };
        if queued.is_empty() {
            return Ok(&[]);
        }
        // SAFETY: every queued entry was vouched for by its `push` caller.
        unsafe { multicall(queued)? };
        Ok(self.entries.get(..len).unwrap_or_default())
    }

    /// The number of queued entries.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is queued.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }
}
