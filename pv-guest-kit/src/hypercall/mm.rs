//! Page tables: `update_va_mapping` (14), `mmu_update` (1), `mmuext_op` (26), and `vm_assist`
//! (21) (reference §9.4–§9.7, §15.3).

use hypercall_abi::domid::DOMID_SELF;
use hypercall_abi::hypercall::{
    HYPERVISOR_MMU_UPDATE, HYPERVISOR_MMUEXT_OP, HYPERVISOR_UPDATE_VA_MAPPING, HYPERVISOR_VM_ASSIST,
};
use hypercall_abi::mm::{MmuUpdate, MmuextOp};
use hypercall_abi::vm_assist::{VmAssistCmd, VmAssistType};

use super::{HypercallResult, hypercall2, hypercall3, hypercall4, result_from_ret};

/// `update_va_mapping(va, pte, flags)`: sets the L1 entry mapping `va` in the current page
/// tables to `pte` (a machine PTE, validated by the hypervisor), then flushes per `flags`
/// (`UVMF_*`).
///
/// # Safety
/// Remapping or unmapping `va` must not invalidate memory that Rust code still uses (the
/// kit's image, stacks, heap, or live references).
///
/// # Errors
/// `-EINVAL` for an entry Xen refuses or a `va` without an L1 table.
pub unsafe fn update_va_mapping(va: u64, pte: u64, flags: u64) -> HypercallResult {
    // SAFETY: forwarded to the caller.
    result_from_ret(unsafe { hypercall3(HYPERVISOR_UPDATE_VA_MAPPING, va, pte, flags) })
}

/// `mmu_update(reqs, count, &done, DOMID_SELF)`. Returns the number of requests done.
///
/// # Safety
/// Each request writes a page-table entry or an M2P entry by machine address: the caller must
/// make sure the resulting mappings do not invalidate memory Rust code uses.
///
/// # Errors
/// The first failing request's error (processing stops there).
pub unsafe fn mmu_update(reqs: &[MmuUpdate]) -> HypercallResult<u32> {
    // SAFETY: the `DOMID_SELF` case of `mmu_update_foreign`; its contract is the caller's.
    unsafe { mmu_update_foreign(reqs, u32::from(DOMID_SELF)) }.done_or_error()
}

/// `mmuext_op(ops, count, &done, DOMID_SELF)`. Returns the number of operations done.
///
/// # Safety
/// Operations change page-table roots, pins, LDTs or frames' contents: the caller must make
/// sure memory Rust code uses stays mapped and unchanged.
///
/// # Errors
/// The first failing operation's error.
pub unsafe fn mmuext_op(ops: &[MmuextOp]) -> HypercallResult<u32> {
    // SAFETY: the `DOMID_SELF` case of `mmuext_op_foreign`; its contract is the caller's.
    unsafe { mmuext_op_foreign(ops, u32::from(DOMID_SELF)) }.done_or_error()
}

/// `vm_assist(cmd, type)`: enables or disables an assist.
///
/// # Errors
/// `-EINVAL` for a type the domain may not use.
pub fn vm_assist(cmd: VmAssistCmd, kind: VmAssistType) -> HypercallResult {
    // Assists change how the hypervisor treats later guest actions; the kit performs none.
    // SAFETY: no memory argument.
    result_from_ret(unsafe {
        hypercall2(
            HYPERVISOR_VM_ASSIST,
            u64::from(cmd.raw()),
            u64::from(kind.raw()),
        )
    })
}

/// What a batched `mmu_update` or `mmuext_op` call did: the call's result and how many
/// requests completed (`*done`). On an error, processing stopped at request `done`, which is the
/// one that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchOutcome {
    /// `Ok(0)` when every request completed, else the first failing request's error.
    pub result: HypercallResult,
    /// The number of requests completed before the call returned.
    pub done: u32,
}

impl BatchOutcome {
    /// The number of requests done, or the first failing request's error.
    fn done_or_error(self) -> HypercallResult<u32> {
        self.result.map(|_| self.done)
    }
}

/// `mmu_update(reqs, count, &done, foreigndom)` with any `foreigndom` (bits 15:0: the owner of
/// the frames new L1 entries map; bits 31:16: one more than the owner of the tables written,
/// 0 for the caller). Reports how many requests completed even when one fails.
///
/// # Safety
/// As [`mmu_update`]: the caller vouches for every request's effect on the mappings Rust code
/// uses.
pub unsafe fn mmu_update_foreign(reqs: &[MmuUpdate], foreigndom: u32) -> BatchOutcome {
    // SAFETY: `mmu_update` takes `MmuUpdate` requests; the caller vouches for their effects.
    unsafe { batch(HYPERVISOR_MMU_UPDATE, reqs, foreigndom) }
}

/// `mmuext_op(ops, count, &done, foreigndom)` with any `foreigndom`, reporting how many
/// operations completed even when one fails.
///
/// # Safety
/// As [`mmuext_op`].
pub unsafe fn mmuext_op_foreign(ops: &[MmuextOp], foreigndom: u32) -> BatchOutcome {
    // SAFETY: `mmuext_op` takes `MmuextOp` operations; the caller vouches for their effects.
    unsafe { batch(HYPERVISOR_MMUEXT_OP, ops, foreigndom) }
}

/// `nr(items, count, &done, foreigndom)`, the call both batched page-table hypercalls make.
///
/// # Safety
/// `nr` is a hypercall that takes an array of `T` in this form (`mmu_update` with
/// [`MmuUpdate`], `mmuext_op` with [`MmuextOp`]), and the caller vouches for the items' effects
/// on the mappings and memory Rust code uses.
unsafe fn batch<T>(nr: u32, items: &[T], foreigndom: u32) -> BatchOutcome {
    let mut done: u32 = 0;
    // The caller vouches for the items' effects.
    // SAFETY: the hypervisor reads `items.len()` items of the type `nr` takes, writes `done`.
    let ret = unsafe {
        hypercall4(
            nr,
            items.as_ptr() as u64,
            items.len() as u64,
            core::ptr::from_mut(&mut done) as u64,
            u64::from(foreigndom),
        )
    };
    BatchOutcome {
        result: result_from_ret(ret),
        done,
    }
}

/// `mmuext_op(MMUEXT_INVLPG_LOCAL, va)`: drops this vCPU's TLB entry for `va` (global entries
/// included, so it also serves for user mappings).
///
/// # Errors
/// The hypervisor's error.
pub fn invlpg(va: u64) -> HypercallResult<u32> {
    use hypercall_abi::mm::MmuextCmd;
    // SAFETY: a TLB invalidation changes no mapping.
    unsafe { mmuext_op(&[MmuextOp::new(MmuextCmd::InvlpgLocal, va, 0)]) }
}

/// `mmuext_op(MMUEXT_TLB_FLUSH_LOCAL)`: flushes this vCPU's TLB.
///
/// # Errors
/// The hypervisor's error.
pub fn flush_tlb() -> HypercallResult<u32> {
    use hypercall_abi::mm::MmuextCmd;
    // SAFETY: a TLB flush changes no mapping.
    unsafe { mmuext_op(&[MmuextOp::new(MmuextCmd::TlbFlushLocal, 0, 0)]) }
}

/// A batch of `mmu_update` requests, sent in one hypercall when full or on [`flush`].
///
/// ```ignore
/// let mut batch = MmuBatch::<512>::new();
/// for (i, frame) in frames.iter().enumerate() {
///     // SAFETY: the L1 maps only a lower-half window nothing else uses.
///     unsafe { batch.push(MmuUpdate::new(MmuCmd::NormalPtUpdate, l1.entry_maddr(i), frame.pte(RW)))? };
/// }
/// batch.flush()?;
/// ```
///
/// A failing request stops its hypercall (reference §9.4): the requests before it are done, it
/// and the ones after it are dropped from the batch and the error is returned. Requests still
/// queued when the batch is dropped are flushed then, their error ignored: call [`flush`] to see
/// it.
///
/// [`flush`]: MmuBatch::flush
#[derive(Debug)]
pub struct MmuBatch<const N: usize = 128> {
    reqs: [MmuUpdate; N],
    len: usize,
    foreigndom: u32,
    calls: u64,
    completed: u64,
}

impl<const N: usize> Default for MmuBatch<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> MmuBatch<N> {
    /// An empty batch for the caller's own frames (`DOMID_SELF`).
    pub const fn new() -> Self {
        Self::with_foreigndom(DOMID_SELF as u32)
    }

    /// An empty batch sent with `foreigndom` (see [`mmu_update_foreign`]).
    pub const fn with_foreigndom(foreigndom: u32) -> Self {
        MmuBatch {
            reqs: [MmuUpdate { ptr: 0, val: 0 }; N],
            len: 0,
            foreigndom,
            calls: 0,
            completed: 0,
        }
    }

    /// Queues `req`, sending the batch first if it is full.
    ///
    /// # Safety
    /// As [`mmu_update`] for `req`: when it is sent, its effect must not invalidate memory Rust
    /// code uses.
    ///
    /// # Errors
    /// The error of the flush this push caused (the new request is then not queued).
    pub unsafe fn push(&mut self, req: MmuUpdate) -> HypercallResult<()> {
        if self.len == N {
            self.flush()?;
        }
        if let Some(slot) = self.reqs.get_mut(self.len) {
            *slot = req;
            self.len += 1;
        }
        Ok(())
    }

    /// Sends the queued requests in one `mmu_update`. Returns how many were sent.
    ///
    /// # Errors
    /// The first failing request's error; the batch is empty afterwards either way.
    pub fn flush(&mut self) -> HypercallResult<u32> {
        let queued = self.reqs.get(..self.len).unwrap_or_default();
        if queued.is_empty() {
            return Ok(0);
        }
        // SAFETY: every queued request was vouched for by its `push` caller.
        let outcome = unsafe { mmu_update_foreign(queued, self.foreigndom) };
        self.calls += 1;
        self.completed += u64::from(outcome.done);
        let sent = u32::try_from(self.len).unwrap_or(u32::MAX);
        self.len = 0;
        outcome.result.map(|_| sent)
    }

    /// The number of queued requests.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is queued.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `(hypercalls made, requests completed)` since the batch was created.
    pub const fn stats(&self) -> (u64, u64) {
        (self.calls, self.completed)
    }
}

impl<const N: usize> Drop for MmuBatch<N> {
    fn drop(&mut self) {
        // Queued requests were promised to the hypervisor; their error is the caller's to see
        // with `flush`.
        let _ = self.flush();
    }
}
