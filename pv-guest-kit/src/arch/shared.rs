//! The `shared_info` page, `vcpu_info` and the pvclock (reference §6).
//!
//! The kit reserves one page-aligned page of `.bss` (`pv_guest_kit_shared_info`) and, on first
//! use, maps the domain's `shared_info` frame there with `update_va_mapping` (the machine
//! address is `start_info.shared_info`). The frame that backed that `.bss` page is simply no
//! longer mapped. The page is written by the hypervisor at any time, so every access here is
//! a volatile read or write of one field; nothing hands out references into it.

use core::ptr::{addr_of, addr_of_mut};
use core::sync::atomic::{Ordering, compiler_fence, fence};

use hypercall_abi::mm::{_PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_PRESENT, _PAGE_RW, UVMF_INVLPG};
use hypercall_abi::shared_info::{SharedInfo as AbiSharedInfo, VcpuInfo as AbiVcpuInfo};
use hypercall_abi::shared_info::{VcpuTimeInfo, XEN_LEGACY_MAX_VCPUS};

use crate::errno::{Errno, HypercallResult};

core::arch::global_asm!(
    ".pushsection .bss.pv_guest_kit.shared_info, \"aw\", @nobits",
    ".balign 4096",
    ".globl pv_guest_kit_shared_info",
    "pv_guest_kit_shared_info:",
    ".skip 4096",
    ".popsection",
);

unsafe extern "C" {
    /// The page reserved for the shared_info mapping (only its address is used).
    static pv_guest_kit_shared_info: u8;
}

static MAPPED: spin::Once<Result<SharedInfo, Errno>> = spin::Once::new();

/// The virtual address the kit maps `shared_info` at.
pub fn shared_info_address() -> u64 {
    addr_of!(pv_guest_kit_shared_info) as u64
}

/// The mapped `shared_info` page, mapping it on the first call.
///
/// # Errors
/// The `update_va_mapping` error if the hypervisor refused the mapping (the same error on
/// every later call).
pub fn shared_info() -> HypercallResult<SharedInfo> {
    *MAPPED.call_once(|| {
        let boot = super::boot_info().ok_or(Errno::Einval)?;
        let va = shared_info_address();
        let pte = boot.shared_info | _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY;
        // SAFETY: the page at `va` is the kit's reserved .bss page, which no Rust code reads or
        // writes through references; replacing its mapping changes no memory Rust relies on.
        unsafe { crate::hypercall::mm::update_va_mapping(va, pte, UVMF_INVLPG)? };
        Ok(SharedInfo { base: va })
    })
}

/// Handle to the mapped `shared_info` page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedInfo {
    base: u64,
}

impl SharedInfo {
    fn raw(self) -> *mut AbiSharedInfo {
        self.base as *mut AbiSharedInfo
    }

    /// The `vcpu_info` slot of vCPU `id` (0–31) in this page.
    pub fn vcpu(self, id: usize) -> Option<VcpuInfo> {
        (id < XEN_LEGACY_MAX_VCPUS).then(|| {
            // SAFETY: the index is in bounds, so the address lies inside the mapped page; only
            // the address is computed.
            let slot = unsafe { addr_of_mut!((*self.raw()).vcpu_info[id]) };
            VcpuInfo { base: slot as u64 }
        })
    }

    /// The wall-clock time at system time 0: `(seconds, nanoseconds)`, read consistently with
    /// `wc_version` (reference §6.5).
    pub fn wallclock(self) -> (u64, u32) {
        let s = self.raw();
        loop {
            // SAFETY: the page is mapped while the domain lives; fields are read volatile
            // because the hypervisor updates them.
            unsafe {
                let version = addr_of!((*s).wc_version).read_volatile();
                fence(Ordering::Acquire);
                let lo = addr_of!((*s).wc_sec).read_volatile();
                let hi = addr_of!((*s).wc_sec_hi).read_volatile();
                let nsec = addr_of!((*s).wc_nsec).read_volatile();
                fence(Ordering::Acquire);
                if version & 1 == 0 && version == addr_of!((*s).wc_version).read_volatile() {
                    return (u64::from(hi) << 32 | u64::from(lo), nsec);
                }
            }
        }
    }
}

/// Handle to one `vcpu_info` slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuInfo {
    base: u64,
}

impl VcpuInfo {
    fn raw(self) -> *mut AbiVcpuInfo {
        self.base as *mut AbiVcpuInfo
    }

    /// `evtchn_upcall_mask`: non-zero while events are masked (the virtual "IF = 0").
    pub fn upcall_mask(self) -> u8 {
        // SAFETY: the slot lies in the mapped shared_info page.
        unsafe { addr_of!((*self.raw()).evtchn_upcall_mask).read_volatile() }
    }

    /// Sets `evtchn_upcall_mask` (a plain store, as guests do on their own vCPU). Unmasking does
    /// not deliver pending events by itself: follow it with a hypercall (e.g.
    /// `xen_version(0)`) if [`VcpuInfo::upcall_pending`] is set.
    pub fn set_upcall_mask(self, mask: u8) {
        compiler_fence(Ordering::SeqCst);
        // SAFETY: the slot lies in the mapped shared_info page; the guest owns this byte.
        unsafe { addr_of_mut!((*self.raw()).evtchn_upcall_mask).write_volatile(mask) };
        compiler_fence(Ordering::SeqCst);
    }

    /// `evtchn_upcall_pending`.
    pub fn upcall_pending(self) -> u8 {
        // SAFETY: as `upcall_mask`.
        unsafe { addr_of!((*self.raw()).evtchn_upcall_pending).read_volatile() }
    }

    /// `arch.cr2`: the address of the last page fault delivered to this vCPU.
    pub fn cr2(self) -> u64 {
        // SAFETY: as `upcall_mask`.
        unsafe { addr_of!((*self.raw()).arch.cr2).read_volatile() }
    }

    /// A consistent copy of this vCPU's `vcpu_time_info` (the version protocol of reference
    /// §6.4: retry while the version is odd or changes).
    pub fn time(self) -> VcpuTimeInfo {
        // SAFETY: only the address of the record inside the mapped slot is computed.
        let t = unsafe { addr_of!((*self.raw_const()).time) };
        loop {
            // SAFETY: the record lies in the mapped page; each field is read volatile.
            unsafe {
                let version = addr_of!((*t).version).read_volatile();
                fence(Ordering::Acquire);
                let copy = VcpuTimeInfo {
                    version,
                    _pad0: 0,
                    tsc_timestamp: addr_of!((*t).tsc_timestamp).read_volatile(),
                    system_time: addr_of!((*t).system_time).read_volatile(),
                    tsc_to_system_mul: addr_of!((*t).tsc_to_system_mul).read_volatile(),
                    tsc_shift: addr_of!((*t).tsc_shift).read_volatile(),
                    flags: addr_of!((*t).flags).read_volatile(),
                    _pad1: [0; 2],
                };
                fence(Ordering::Acquire);
                if version & 1 == 0 && version == addr_of!((*t).version).read_volatile() {
                    return copy;
                }
            }
            super::cpu::pause();
        }
    }

    fn raw_const(self) -> *const AbiVcpuInfo {
        self.raw()
    }

    /// The current Xen system time in nanoseconds (pvclock: the time record plus the TSC).
    pub fn system_time_ns(self) -> u64 {
        let record = self.time();
        record.system_time_at(super::cpu::rdtsc())
    }
}

/// `vcpu_info` of vCPU 0 in the mapped `shared_info`.
///
/// # Errors
/// As [`shared_info`].
pub fn vcpu0() -> HypercallResult<VcpuInfo> {
    shared_info()?.vcpu(0).ok_or(Errno::Einval)
}
