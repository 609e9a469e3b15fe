//! Per-vCPU data: which vCPU is running this code.
//!
//! Each vCPU's kernel GS base points at its slot of a static array of [`MAX_VCPUS`] small
//! records; `mov %gs:8` then reads the running vCPU's id, in any context (upcalls and trap
//! handlers included) and without a hypercall. vCPU 0 sets its GS base with
//! `set_segment_base(SEGBASE_GS_KERNEL)` in [`init_boot_vcpu`] (the event layer's `init`
//! calls it); the kit starts secondary vCPUs with `gs_base_kernel` already pointing at their
//! slot ([`area_address`]). Xen keeps the kernel GS base across context switches and swaps it
//! with the user one on kernel/user transitions (reference §7.5).
//!
//! Until [`init_boot_vcpu`] has run, [`current`] answers 0 without touching GS (only vCPU 0
//! runs then). Afterwards the kernel GS base belongs to the kit: a kernel that changes it
//! (`set_segment_base`, `wrmsr` to `GS_BASE`) must put it back to [`area_address`] of the
//! vCPU before the kit's code runs there again, and a vCPU started outside
//! [`crate::vcpus`] must be given its slot's address as `gs_base_kernel`.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use hypercall_abi::segments::SegBase;

use crate::errno::{Errno, HypercallResult};

/// The number of vCPUs the kit supports (ids 0–31, the legacy `vcpu_info` slots of
/// `shared_info`).
pub const MAX_VCPUS: usize = hypercall_abi::shared_info::XEN_LEGACY_MAX_VCPUS;

/// One vCPU's record; the GS base points at it.
#[repr(C, align(64))]
#[derive(Debug)]
struct PerCpu {
    /// Offset 0: the record's own address.
    self_address: AtomicU64,
    /// Offset 8: the vCPU id.
    id: AtomicU32,
}

/// Offset of [`PerCpu::id`], which [`current`]'s assembly reads.
const ID_OFFSET: usize = 8;
const _: () = assert!(core::mem::offset_of!(PerCpu, id) == ID_OFFSET);

static AREAS: [PerCpu; MAX_VCPUS] = {
    let mut areas = [const {
        PerCpu {
            self_address: AtomicU64::new(0),
            id: AtomicU32::new(0),
        }
    }; MAX_VCPUS];
    let mut id = 0u32;
    while (id as usize) < MAX_VCPUS {
        areas[id as usize].id = AtomicU32::new(id);
        id += 1;
    }
    areas
};

/// Set once vCPU 0's GS base points at its record.
static READY: AtomicBool = AtomicBool::new(false);

/// The address of vCPU `id`'s record (the value its kernel GS base must hold), `None` past
/// [`MAX_VCPUS`].
pub fn area_address(id: u32) -> Option<u64> {
    let area = AREAS.get(usize::try_from(id).ok()?)?;
    let address = core::ptr::from_ref(area) as u64;
    area.self_address.store(address, Ordering::Relaxed);
    Some(address)
}

/// Points vCPU 0's kernel GS base at its record (once; later calls do nothing). Call it on
/// vCPU 0.
///
/// # Errors
/// The `set_segment_base` error.
pub fn init_boot_vcpu() -> HypercallResult<()> {
    if READY.load(Ordering::Acquire) {
        return Ok(());
    }
    let address = area_address(0).ok_or(Errno::Einval)?;
    crate::hypercall::segments::set_segment_base(SegBase::GsKernel, address)?;
    READY.store(true, Ordering::Release);
    Ok(())
}

/// Whether [`init_boot_vcpu`] has run.
pub fn ready() -> bool {
    READY.load(Ordering::Acquire)
}

/// The id of the vCPU running this code.
#[inline]
pub fn current() -> u32 {
    if !READY.load(Ordering::Acquire) {
        return 0;
    }
    let id: u32;
    // SAFETY: once READY is set, every vCPU the kit runs on has its kernel GS base pointing at
    // its record (vCPU 0 by `init_boot_vcpu`, the others from their first instruction); the
    // read is a plain load from that static record.
    unsafe {
        core::arch::asm!(
            "mov {id:e}, gs:[{offset}]",
            id = out(reg) id,
            offset = const ID_OFFSET,
            options(nostack, readonly, preserves_flags),
        );
    }
    id
}

/// Puts the running vCPU's kernel GS base back after something may have cleared it: loading a
/// null selector into `%gs` clears the base on CPUs (and QEMU's TCG) that follow AMD's rule.
/// The kit's failsafe entry calls it after it loads null selectors. Does nothing before
/// [`init_boot_vcpu`]; `id` is the vCPU the caller knows it runs on.
pub(crate) fn restore_gs_base(id: u32) {
    if !READY.load(Ordering::Acquire) {
        return;
    }
    if let Some(address) = area_address(id) {
        // Nothing better to do if it fails: the next `current` would fault and say so.
        let _ = crate::hypercall::segments::set_segment_base(SegBase::GsKernel, address);
    }
}
