//! The `shared_info` page, `vcpu_info` and the pvclock (reference §6).
//!
//! The kit reserves one page-aligned page of `.bss` (`pv_guest_kit_shared_info`) and, on first
//! use, maps the domain's `shared_info` frame there with `update_va_mapping` (the machine
//! address is `start_info.shared_info`). The frame that backed that `.bss` page is simply no
//! longer mapped. The page is written by the hypervisor at any time, so every access here is
//! a volatile read or write of one field, or an atomic read-modify-write of one word (the
//! event bitmaps and the selector, which the hypervisor and other vCPUs change concurrently);
//! nothing hands out references into it.
//!
//! Each vCPU's `vcpu_info` is its slot of `shared_info` ([`SharedInfo::vcpu`]) until it is
//! moved with `VCPUOP_register_vcpu_info`; [`vcpu_info`] knows where every vCPU's is.

use core::ptr::{addr_of, addr_of_mut};
use core::sync::atomic::{AtomicU64, Ordering, compiler_fence, fence};

use hypercall_abi::mm::{_PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_PRESENT, _PAGE_RW, UVMF_INVLPG};
use hypercall_abi::shared_info::{SharedInfo as AbiSharedInfo, VcpuInfo as AbiVcpuInfo};
use hypercall_abi::shared_info::{VcpuTimeInfo, XEN_LEGACY_MAX_VCPUS};

use crate::errno::{Errno, HypercallResult};
use crate::pvclock::{TimeSample, Wallclock, read_consistent};

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
        let base = self.wallclock_base();
        (base.sec, base.nsec)
    }

    /// The wall-clock time at system time 0, read consistently with `wc_version`
    /// (reference §6.5).
    pub fn wallclock_base(self) -> Wallclock {
        let s = self.raw();
        read_consistent(
            || {
                // SAFETY: the page is mapped while the domain lives; the hypervisor updates
                // the field, hence volatile.
                let version = unsafe { addr_of!((*s).wc_version).read_volatile() };
                fence(Ordering::Acquire);
                version
            },
            || {
                // SAFETY: as above.
                let fields = unsafe {
                    (
                        addr_of!((*s).wc_sec).read_volatile(),
                        addr_of!((*s).wc_sec_hi).read_volatile(),
                        addr_of!((*s).wc_nsec).read_volatile(),
                    )
                };
                fence(Ordering::Acquire);
                Wallclock::from_shared_info(fields.0, fields.1, fields.2)
            },
        )
        .value
    }

    /// Word `word` (0–63) of one of the 2-level bitmaps, as an atomic.
    fn bitmap_word(self, mask: bool, word: usize) -> Option<&'static AtomicU64> {
        if word >= hypercall_abi::shared_info::EVTCHN_2L_WORDS {
            return None;
        }
        // SAFETY: the index is in bounds, so the address lies inside the mapped page; only the
        // address is computed.
        let ptr = unsafe {
            if mask {
                addr_of_mut!((*self.raw()).evtchn_mask[word])
            } else {
                addr_of_mut!((*self.raw()).evtchn_pending[word])
            }
        };
        // SAFETY: the word is 8-byte aligned and stays mapped (and shared only through atomic
        // accesses by the guest; the hypervisor uses locked instructions on it) for the
        // domain's lifetime.
        Some(unsafe { AtomicU64::from_ptr(ptr) })
    }

    /// Word `word` of `evtchn_pending` (0 past the end).
    pub fn pending_word(self, word: usize) -> u64 {
        self.bitmap_word(false, word)
            .map_or(0, |w| w.load(Ordering::SeqCst))
    }

    /// Word `word` of `evtchn_mask` (0 past the end).
    pub fn mask_word(self, word: usize) -> u64 {
        self.bitmap_word(true, word)
            .map_or(0, |w| w.load(Ordering::SeqCst))
    }

    /// Atomically clears the bits `bits` of word `word` of `evtchn_pending` (`mask` false) or
    /// `evtchn_mask` (`mask` true); returns the word's old value (0 past the end).
    pub fn fetch_clear(self, mask: bool, word: usize, bits: u64) -> u64 {
        self.bitmap_word(mask, word)
            .map_or(0, |w| w.fetch_and(!bits, Ordering::SeqCst))
    }

    /// Atomically sets the bits `bits` of word `word` of `evtchn_pending` (`mask` false) or
    /// `evtchn_mask` (`mask` true); returns the word's old value (0 past the end).
    pub fn fetch_set(self, mask: bool, word: usize, bits: u64) -> u64 {
        self.bitmap_word(mask, word)
            .map_or(0, |w| w.fetch_or(bits, Ordering::SeqCst))
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

    /// Writes `evtchn_upcall_pending` (a plain store: the hypervisor sets it, the vCPU itself
    /// clears it, or sets it to get its own upcall).
    pub fn set_upcall_pending(self, pending: u8) {
        compiler_fence(Ordering::SeqCst);
        // SAFETY: the slot lies in mapped, guest-writable memory shared with the hypervisor.
        unsafe { addr_of_mut!((*self.raw()).evtchn_upcall_pending).write_volatile(pending) };
        compiler_fence(Ordering::SeqCst);
    }

    /// `evtchn_pending_sel` as an atomic.
    fn selector(self) -> &'static AtomicU64 {
        // SAFETY: the field is 8-byte aligned inside a `vcpu_info` that stays mapped for the
        // domain's lifetime, accessed by the guest only atomically (the hypervisor uses locked
        // instructions on it).
        unsafe { AtomicU64::from_ptr(addr_of_mut!((*self.raw()).evtchn_pending_sel)) }
    }

    /// `evtchn_pending_sel`.
    pub fn pending_sel(self) -> u64 {
        self.selector().load(Ordering::SeqCst)
    }

    /// Atomically exchanges `evtchn_pending_sel` with 0 and returns the old value.
    pub fn take_pending_sel(self) -> u64 {
        self.selector().swap(0, Ordering::SeqCst)
    }

    /// Atomically sets the bits `bits` of `evtchn_pending_sel`; returns the old value.
    pub fn fetch_set_pending_sel(self, bits: u64) -> u64 {
        self.selector().fetch_or(bits, Ordering::SeqCst)
    }

    /// The address of this `vcpu_info`.
    pub fn address(self) -> u64 {
        self.base
    }

    /// `arch.cr2`: the address of the last page fault delivered to this vCPU.
    pub fn cr2(self) -> u64 {
        // SAFETY: as `upcall_mask`.
        unsafe { addr_of!((*self.raw()).arch.cr2).read_volatile() }
    }

    /// A consistent copy of this vCPU's `vcpu_time_info` (the version protocol of reference
    /// §6.4: retry while the version is odd or changes).
    pub fn time(self) -> VcpuTimeInfo {
        self.time_sample().record
    }

    /// A consistent copy of this vCPU's `vcpu_time_info` with the TSC read inside the same
    /// consistent read, and how many reads were retried.
    pub fn time_sample_counted(self) -> (TimeSample, u32) {
        // SAFETY: only the address of the record inside the mapped slot is computed.
        let t = unsafe { addr_of!((*self.raw_const()).time) };
        let read = read_consistent(
            || {
                // SAFETY: the record lies in the mapped page; the hypervisor rewrites it,
                // hence volatile.
                let version = unsafe { addr_of!((*t).version).read_volatile() };
                fence(Ordering::Acquire);
                version
            },
            || {
                // SAFETY: as above, field by field.
                let record = unsafe {
                    VcpuTimeInfo {
                        version: 0,
                        _pad0: 0,
                        tsc_timestamp: addr_of!((*t).tsc_timestamp).read_volatile(),
                        system_time: addr_of!((*t).system_time).read_volatile(),
                        tsc_to_system_mul: addr_of!((*t).tsc_to_system_mul).read_volatile(),
                        tsc_shift: addr_of!((*t).tsc_shift).read_volatile(),
                        flags: addr_of!((*t).flags).read_volatile(),
                        _pad1: [0; 2],
                    }
                };
                // The TSC is read after the fields (lfence keeps rdtsc from running early)
                // and before the version is checked again.
                super::cpu::lfence();
                let tsc = super::cpu::rdtsc();
                fence(Ordering::Acquire);
                TimeSample { record, tsc }
            },
        );
        let mut sample = read.value;
        sample.record.version = read.version;
        (sample, read.retries)
    }

    /// As [`VcpuInfo::time_sample_counted`], without the count.
    pub fn time_sample(self) -> TimeSample {
        self.time_sample_counted().0
    }

    fn raw_const(self) -> *const AbiVcpuInfo {
        self.raw()
    }

    /// The current Xen system time in nanoseconds (pvclock: the time record plus the TSC).
    pub fn system_time_ns(self) -> u64 {
        self.time_sample().system_time_ns()
    }
}

/// `vcpu_info` of vCPU 0: its slot of the mapped `shared_info`, or where
/// `VCPUOP_register_vcpu_info` moved it (as [`vcpu_info`]`(0)`).
///
/// # Errors
/// As [`shared_info`].
pub fn vcpu0() -> HypercallResult<VcpuInfo> {
    vcpu_info(0)
}

/// Where each vCPU's `vcpu_info` lives when it was moved (0: its `shared_info` slot).
static MOVED: [AtomicU64; XEN_LEGACY_MAX_VCPUS] =
    [const { AtomicU64::new(0) }; XEN_LEGACY_MAX_VCPUS];

/// vCPU `id`'s `vcpu_info`: where `VCPUOP_register_vcpu_info` moved it, else its slot of
/// `shared_info` (ids 0–31).
///
/// # Errors
/// As [`shared_info`]; `-EINVAL` for an id past 31.
pub fn vcpu_info(id: u32) -> HypercallResult<VcpuInfo> {
    let index = usize::try_from(id).map_err(|_| Errno::Einval)?;
    let moved = MOVED
        .get(index)
        .ok_or(Errno::Einval)?
        .load(Ordering::Acquire);
    if moved != 0 {
        return Ok(VcpuInfo { base: moved });
    }
    shared_info()?.vcpu(index).ok_or(Errno::Einval)
}

/// Records that vCPU `id`'s `vcpu_info` now lives at `address` (after a successful
/// `VCPUOP_register_vcpu_info`).
///
/// # Safety
/// `address` must be the 64 bytes the hypervisor now uses as vCPU `id`'s `vcpu_info`, mapped
/// for the domain's lifetime and used by nothing else.
pub(super) unsafe fn set_vcpu_info_address(id: u32, address: u64) -> HypercallResult<()> {
    let index = usize::try_from(id).map_err(|_| Errno::Einval)?;
    MOVED
        .get(index)
        .ok_or(Errno::Einval)?
        .store(address, Ordering::Release);
    Ok(())
}
