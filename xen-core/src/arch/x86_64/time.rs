//! The TSC as the hypervisor's clock, calibrated at boot.

use super::cpu::{self, rdtsc};
use crate::time::{TscSource, ns_to_ticks, tsc_hz_from_cpuid};
use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::instructions::port::Port;

static BOOT_TSC: AtomicU64 = AtomicU64::new(0);
static TSC_HZ: AtomicU64 = AtomicU64::new(0);

/// The PIT's input clock.
const PIT_HZ: u64 = 1_193_182;

/// Records the TSC value taken at the first instruction.
pub fn set_boot_tsc(tsc: u64) {
    BOOT_TSC.store(tsc, Ordering::Relaxed);
}

/// The TSC value at the first instruction.
pub fn boot_tsc() -> u64 {
    BOOT_TSC.load(Ordering::Relaxed)
}

/// The TSC frequency in Hz (0 before calibration).
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// The TSC → ns scale (`tsc_to_system_mul` in the low 32 bits, `tsc_shift` above), set at
/// calibration. System time and every guest's `vcpu_time_info` use this same scale, so
/// hypervisor and guests agree on the time to the nanosecond.
static SCALE: AtomicU64 = AtomicU64::new(0);

/// The TSC → ns scale guests get in `vcpu_time_info`.
pub fn pvclock_scale() -> hypercall_abi::shared_info::PvclockScale {
    let v = SCALE.load(Ordering::Relaxed);
    hypercall_abi::shared_info::PvclockScale {
        mul: (v & 0xffff_ffff) as u32,
        shift: ((v >> 32) & 0xff) as u8 as i8,
    }
}

/// System time at TSC value `tsc`: nanoseconds since the first instruction.
pub fn system_time_at(tsc: u64) -> u64 {
    pvclock_scale().ticks_to_ns(tsc.wrapping_sub(boot_tsc()))
}

/// A TSC value reached no later than system time `ns` (a little earlier, never later): below
/// it, `ns` has certainly not come yet. `u64::MAX` for `u64::MAX`.
pub fn tsc_before(ns: u64) -> u64 {
    if ns == u64::MAX {
        return u64::MAX;
    }
    let ticks = ns_to_ticks(ns, tsc_hz());
    // The scale's rounding is far below this margin.
    boot_tsc()
        .saturating_add(ticks)
        .saturating_sub(ticks / 1_000_000 + 64)
}

/// Nanoseconds since the first instruction (0 before calibration).
pub fn now_ns() -> u64 {
    system_time_at(rdtsc())
}

/// Busy-waits `ns` nanoseconds (needs a calibrated TSC).
pub fn delay_ns(ns: u64) {
    cpu::spin_tsc(ns_to_ticks(ns, tsc_hz()));
}

/// Measures the TSC against PIT channel 2 counting down `ms` milliseconds.
fn pit_measure(ms: u64) -> u64 {
    let count = PIT_HZ * ms / 1000;
    let mut ctl = Port::<u8>::new(0x61);
    let mut cmd = Port::<u8>::new(0x43);
    let mut ch2 = Port::<u8>::new(0x42);
    // SAFETY: PIT channel 2 and the speaker-control port belong to the hypervisor; the
    // speaker output stays off (bit 1 clear) and the gate (bit 0) is opened.
    unsafe {
        let v = ctl.read();
        ctl.write((v & !0x02) | 0x01);
        cmd.write(0xb0); // channel 2, lobyte/hibyte, mode 0, binary
        let [lo, hi] = u16::try_from(count).unwrap_or(u16::MAX).to_le_bytes();
        ch2.write(lo);
        ch2.write(hi);
    }
    let start = rdtsc();
    // Bounded: a PIT that never counts out must not hang the boot (~4 s at 1 GHz worth).
    let mut spins = 0u64;
    // SAFETY: reading the speaker-control port has no side effects.
    while unsafe { ctl.read() } & 0x20 == 0 {
        spins += 1;
        if spins > 50_000_000 {
            break;
        }
    }
    let ticks = rdtsc().wrapping_sub(start);
    u64::try_from(u128::from(ticks) * u128::from(PIT_HZ) / u128::from(count)).unwrap_or(0)
}

/// Finds the TSC frequency: from CPUID when it reports one, else by measuring against the PIT.
pub fn calibrate() -> (u64, TscSource) {
    let (hz, src) = tsc_hz_from_cpuid(cpu::cpuid).unwrap_or_else(|| {
        // Two short runs; keep the lower (an interrupted run only measures too much).
        let a = pit_measure(10);
        let b = pit_measure(10);
        (a.min(b), TscSource::Pit)
    });
    TSC_HZ.store(hz.max(1), Ordering::Relaxed);
    if let Ok(scale) = hypercall_abi::shared_info::PvclockScale::from_tsc_hz(hz.max(1)) {
        let packed = u64::from(scale.mul) | (u64::from(scale.shift as u8) << 32);
        SCALE.store(packed, Ordering::Relaxed);
    }
    (hz, src)
}
