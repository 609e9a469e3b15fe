//! Plain-old-data views of the ABI structures the hypervisor copies to and from guest memory.
//!
//! [`Pod`] marks the `#[repr(C)]` types of `hypercall-abi` whose every byte is a field byte
//! (the crate checks at compile time that field sizes add up to the struct size, i.e. there is
//! no padding) and whose fields are plain integers (every bit pattern is valid). For those,
//! viewing a value as bytes and building one from bytes are sound, and these functions are the
//! only place that does it.

use hypercall_abi as abi;

/// A type that may be viewed as, and made from, raw bytes.
///
/// # Safety
/// The type must be `#[repr(C)]` (or transparent), contain no padding bytes, contain only
/// integer fields (or arrays/structs of them), so that any byte pattern is a valid value.
pub unsafe trait Pod: Copy + 'static {}

macro_rules! pod {
    ($($t:ty),* $(,)?) => {$(
        // SAFETY: an ABI struct from hypercall-abi: repr(C), integer fields only, and its
        // layout check asserts that the field sizes sum to its size (no padding).
        unsafe impl Pod for $t {}
    )*};
}

pod!(
    u8,
    u16,
    u32,
    u64,
    abi::start_info::StartInfo,
    abi::start_info::Dom0VgaConsoleInfo,
    abi::shared_info::SharedInfo,
    abi::shared_info::VcpuInfo,
    abi::shared_info::VcpuTimeInfo,
    abi::traps::TrapInfo,
    abi::traps::CallbackRegister,
    abi::traps::CallbackUnregister,
    abi::traps::IretContext,
    abi::traps::XennmiCallback,
    abi::mm::MmuUpdate,
    abi::mm::MmuextOp,
    abi::multicall::MulticallEntry,
    abi::sched::SchedShutdown,
    abi::sched::SchedPoll,
    abi::sched::SchedRemoteShutdown,
    abi::sched::SchedWatchdog,
    abi::version::XenCompileInfo,
    abi::version::XenPlatformParameters,
    abi::version::XenFeatureInfo,
    abi::physdev::PhysdevSetIopl,
    abi::physdev::PhysdevSetIobitmap,
    abi::memory::XenMemoryReservation,
    abi::memory::XenMachphysMfnList,
    abi::memory::XenMachphysMapping,
    abi::memory::XenAddToPhysmap,
    abi::memory::XenMemoryMap,
    abi::memory::E820Entry,
    abi::vcpu::VcpuGuestContext,
    abi::vcpu::VcpuRunstateInfo,
    abi::vcpu::VcpuRegisterVcpuInfo,
    abi::vcpu::VcpuRegisterRunstateMemoryArea,
    abi::vcpu::VcpuSetPeriodicTimer,
    abi::vcpu::VcpuSetSingleshotTimer,
    abi::evtchn::EvtchnOpCompat,
    abi::evtchn::EvtchnAllocUnbound,
    abi::evtchn::EvtchnBindInterdomain,
    abi::evtchn::EvtchnBindVirq,
    abi::evtchn::EvtchnBindIpi,
    abi::evtchn::EvtchnBindVcpu,
    abi::evtchn::EvtchnClose,
    abi::evtchn::EvtchnSend,
    abi::evtchn::EvtchnStatus,
    abi::evtchn::EvtchnUnmask,
    abi::evtchn::EvtchnReset,
);

/// The bytes of `v`.
pub fn bytes_of<T: Pod>(v: &T) -> &[u8] {
    // SAFETY: `T: Pod` has no padding, so all `size_of::<T>()` bytes are initialised; the
    // slice borrows `v` and lives no longer.
    unsafe { core::slice::from_raw_parts((v as *const T).cast::<u8>(), core::mem::size_of::<T>()) }
}

/// The bytes of a run of quadwords, in memory order (little-endian on x86-64).
pub fn u64s_as_bytes(v: &[u64]) -> &[u8] {
    // SAFETY: `u64` has no padding and any alignment of `u8` is satisfied; the slice covers
    // exactly the `8 * len` initialised bytes of `v` and borrows it.
    unsafe { core::slice::from_raw_parts(v.as_ptr().cast::<u8>(), core::mem::size_of_val(v)) }
}

/// The bytes of `v`, writable.
pub fn bytes_of_mut<T: Pod>(v: &mut T) -> &mut [u8] {
    // SAFETY: as in `bytes_of`; any bytes written leave a valid `T` because every bit
    // pattern is valid for a `Pod` type.
    unsafe {
        core::slice::from_raw_parts_mut((v as *mut T).cast::<u8>(), core::mem::size_of::<T>())
    }
}

/// A `T` read from the start of `bytes` (any alignment); `None` if `bytes` is too short.
pub fn read<T: Pod>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < core::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: `bytes` holds at least `size_of::<T>()` bytes, the read is unaligned, and every
    // bit pattern is a valid `T`.
    Some(unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// A zeroed `T` (all-zero bytes are a valid `Pod` value).
pub fn zeroed<T: Pod>() -> T {
    // SAFETY: every bit pattern, all zeros included, is a valid `Pod` value.
    unsafe { core::mem::zeroed() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = abi::traps::TrapInfo {
            vector: 14,
            flags: 4,
            cs: 0xe033,
            _pad0: 0,
            address: 0xffff_8000_1234,
        };
        let b = bytes_of(&t);
        assert_eq!(b.len(), 16);
        assert_eq!(b[0], 14);
        assert_eq!(&b[8..16], &0xffff_8000_1234u64.to_le_bytes());
        let back: abi::traps::TrapInfo = read(b).unwrap();
        assert_eq!(back.address, t.address);
        assert!(read::<abi::traps::TrapInfo>(&b[..15]).is_none());
        let z: abi::start_info::StartInfo = zeroed();
        assert_eq!(z.nr_pages, 0);
    }
}
