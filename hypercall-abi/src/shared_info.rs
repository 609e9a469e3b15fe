//! The shared_info page, per-vCPU `vcpu_info`, and pvclock time (reference §6).
//!
//! The shared_info page is one hypervisor-owned frame the guest maps writable at the machine
//! address given in `start_info.shared_info`. It carries the legacy `vcpu_info` slots, the
//! 2-level event-channel bitmaps, the wallclock and `arch_shared_info`.

use core::fmt;

/// `XEN_LEGACY_MAX_VCPUS`: `vcpu_info` slots in shared_info.
pub const XEN_LEGACY_MAX_VCPUS: usize = 32;
/// Number of 64-bit words in each 2-level event bitmap (`evtchn_pending`, `evtchn_mask`).
pub const EVTCHN_2L_WORDS: usize = 64;

/// `XEN_PVCLOCK_TSC_STABLE_BIT`: TSC is invariant and synchronised across vCPUs.
pub const XEN_PVCLOCK_TSC_STABLE_BIT: u8 = 1 << 0;
/// `XEN_PVCLOCK_GUEST_STOPPED`: the guest was stopped by the hypervisor.
pub const XEN_PVCLOCK_GUEST_STOPPED: u8 = 1 << 1;

/// `XEN_NMIREASON_io_error` bit in `arch_shared_info.nmi_reason`.
pub const XEN_NMIREASON_IO_ERROR: u64 = 1 << 0;
/// `XEN_NMIREASON_pci_serr` (a.k.a. parity error) bit in `nmi_reason`.
pub const XEN_NMIREASON_PCI_SERR: u64 = 1 << 1;
/// `XEN_NMIREASON_unknown` bit in `nmi_reason`.
pub const XEN_NMIREASON_UNKNOWN: u64 = 1 << 2;

/// Nanoseconds per second: the unit of Xen system time.
pub const NS_PER_SEC: u64 = 1_000_000_000;

/// `vcpu_time_info` (32 bytes; reference §6.4): one vCPU's view of system time.
///
/// The hypervisor updates it as: `version += 1` (odd), write barrier, fields, write barrier,
/// `version += 1` (even). Readers retry while the version is odd or changed.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuTimeInfo {
    /// Odd while an update is in progress.
    pub version: u32,
    /// Padding; zero.
    pub _pad0: u32,
    /// TSC value when `system_time` was sampled.
    pub tsc_timestamp: u64,
    /// Xen system time (ns since boot) at `tsc_timestamp`.
    pub system_time: u64,
    /// 32.32 fixed-point multiplier from shifted TSC ticks to ns.
    pub tsc_to_system_mul: u32,
    /// Signed shift applied to the TSC delta before multiplying.
    pub tsc_shift: i8,
    /// `XEN_PVCLOCK_*` flags.
    pub flags: u8,
    /// Padding; zero.
    pub _pad1: [u8; 2],
}

assert_layout!(VcpuTimeInfo, size = 32, align = 8, {
    version: u32 = 0,
    _pad0: u32 = 4,
    tsc_timestamp: u64 = 8,
    system_time: u64 = 16,
    tsc_to_system_mul: u32 = 24,
    tsc_shift: i8 = 28,
    flags: u8 = 29,
    _pad1: [u8; 2] = 30,
});

impl VcpuTimeInfo {
    /// The TSC → ns scale stored in this record.
    #[must_use]
    pub const fn scale(&self) -> PvclockScale {
        PvclockScale {
            mul: self.tsc_to_system_mul,
            shift: self.tsc_shift,
        }
    }

    /// Stores a TSC → ns scale.
    pub const fn set_scale(&mut self, scale: PvclockScale) {
        self.tsc_to_system_mul = scale.mul;
        self.tsc_shift = scale.shift;
    }

    /// System time (ns) at TSC value `tsc`: `system_time + scale(tsc - tsc_timestamp)`.
    ///
    /// All arithmetic wraps like the guest-side C code; a `tsc` before `tsc_timestamp` therefore
    /// yields a huge delta, exactly as it would for a guest.
    #[must_use]
    pub fn system_time_at(&self, tsc: u64) -> u64 {
        let delta = tsc.wrapping_sub(self.tsc_timestamp);
        self.system_time
            .wrapping_add(self.scale().ticks_to_ns(delta))
    }

    /// True when `version` is even, i.e. no update is in progress.
    #[must_use]
    pub const fn is_stable(&self) -> bool {
        self.version & 1 == 0
    }
}

/// A TSC-to-nanoseconds scale as stored in `vcpu_time_info`: `ns = ((ticks <<> shift) * mul) >> 32`
/// where a positive `shift` shifts left and a negative one shifts right.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PvclockScale {
    /// `tsc_to_system_mul`: 32.32 fixed-point multiplier.
    pub mul: u32,
    /// `tsc_shift`: signed pre-shift.
    pub shift: i8,
}

/// [`PvclockScale::from_tsc_hz`] was given a frequency of 0 Hz.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ZeroFrequency;

impl fmt::Display for ZeroFrequency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a TSC frequency of 0 Hz has no pvclock scale")
    }
}

impl core::error::Error for ZeroFrequency {}

/// Shifts `value` left (`shift > 0`) or right (`shift < 0`), like the guest's pvclock reader.
///
/// High bits shifted out on the left are lost, as in C; a shift of 64 or more yields 0
/// (undefined in C, but no real scale uses one).
const fn apply_shift(value: u64, shift: i8) -> u64 {
    let amount = shift.unsigned_abs() as u32;
    let shifted = if shift >= 0 {
        value.checked_shl(amount)
    } else {
        value.checked_shr(amount)
    };
    match shifted {
        Some(v) => v,
        None => 0,
    }
}

impl PvclockScale {
    /// Converts a TSC delta to nanoseconds: pre-shift, then `(delta * mul) >> 32` with a 128-bit
    /// intermediate product (reference §6.4 step 4–5).
    #[must_use]
    pub fn ticks_to_ns(self, ticks: u64) -> u64 {
        let product = u128::from(apply_shift(ticks, self.shift)) * u128::from(self.mul);
        // shifted < 2^64 and mul < 2^32, so product >> 32 < 2^64: the conversion cannot fail.
        u64::try_from(product >> 32).unwrap_or(u64::MAX)
    }

    /// Computes the scale a hypervisor stores for a TSC running at `tsc_hz`.
    ///
    /// The frequency is normalised by powers of two into `(1 GHz, 2 GHz]` — the exponent is the
    /// shift — and `mul = floor(10^9 * 2^32 / (tsc_hz * 2^shift))`, which then lies in
    /// `[2^31, 2^32)`. The division uses the exact frequency (128-bit arithmetic) rather than a
    /// truncated, shifted one, so the result is the most precise scale for that shift.
    ///
    /// # Errors
    ///
    /// [`ZeroFrequency`] when `tsc_hz` is 0.
    pub fn from_tsc_hz(tsc_hz: u64) -> Result<Self, ZeroFrequency> {
        if tsc_hz == 0 {
            return Err(ZeroFrequency);
        }
        // Find the shift with 1e9 < tsc_hz * 2^shift <= 2e9, comparing exactly: for a negative
        // shift the bounds are scaled up instead of the frequency being truncated down.
        // The shift ends in [-34, 30] for any u64 frequency, so every value below fits in u128.
        let hz = tsc_hz as u128;
        let lower = NS_PER_SEC as u128;
        let upper = 2 * NS_PER_SEC as u128;
        let mut shift: i32 = 0;
        loop {
            let amount = shift.unsigned_abs();
            let (value, lo, hi) = if shift >= 0 {
                (hz << amount, lower, upper)
            } else {
                (hz, lower << amount, upper << amount)
            };
            if value > hi {
                shift -= 1;
            } else if value <= lo {
                shift += 1;
            } else {
                break;
            }
        }
        // mul = floor(1e9 * 2^32 / (tsc_hz * 2^shift)), computed without truncating tsc_hz.
        let amount = shift.unsigned_abs();
        let mul = if shift >= 0 {
            ((NS_PER_SEC as u128) << 32) / (hz << amount)
        } else {
            ((NS_PER_SEC as u128) << (32 + amount)) / hz
        };
        // The normalised frequency is > 1e9, so mul < 2^32, and <= 2e9, so mul >= 2^31; the
        // shift lies in [-34, 30]. Neither conversion can fail.
        match (u32::try_from(mul), i8::try_from(shift)) {
            (Ok(mul), Ok(shift)) => Ok(Self { mul, shift }),
            _ => Err(ZeroFrequency),
        }
    }

    /// The TSC frequency this scale implies: `((10^9 << 32) / mul) >>> shift`.
    ///
    /// Returns 0 for a zero multiplier.
    #[must_use]
    pub fn implied_hz(self) -> u64 {
        if self.mul == 0 {
            return 0;
        }
        let base = ((NS_PER_SEC as u128) << 32) / self.mul as u128;
        let amount = self.shift.unsigned_abs() as u32;
        // Inverse direction of ticks_to_ns: a left pre-shift means a slower clock.
        let hz = if self.shift >= 0 {
            base >> amount
        } else {
            base << amount
        };
        u64::try_from(hz).unwrap_or(u64::MAX)
    }
}

/// `arch_vcpu_info` (16 bytes at offset 16 of `vcpu_info`; offsets from reference §6.2).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArchVcpuInfo {
    /// Faulting linear address of the latest #PF bounced to this vCPU.
    pub cr2: u64,
    /// Padding (`pad` in Xen); zero.
    pub _pad0: u64,
}

assert_layout!(ArchVcpuInfo, size = 16, align = 8, {
    cr2: u64 = 0,
    _pad0: u64 = 8,
});

/// `vcpu_info` (64 bytes; reference §6.2): per-vCPU event and time state.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuInfo {
    /// Non-zero: event work may be pending (hypervisor sets, guest clears).
    pub evtchn_upcall_pending: u8,
    /// Non-zero: do not deliver upcalls (the guest's virtual "IF = 0").
    pub evtchn_upcall_mask: u8,
    /// Padding; zero.
    pub _pad0: [u8; 6],
    /// Selector: bit `w` set ⇒ word `w` of `evtchn_pending` may hold work for this vCPU.
    pub evtchn_pending_sel: u64,
    /// Architecture part (CR2).
    pub arch: ArchVcpuInfo,
    /// This vCPU's time record.
    pub time: VcpuTimeInfo,
}

assert_layout!(VcpuInfo, size = 64, align = 8, {
    evtchn_upcall_pending: u8 = 0,
    evtchn_upcall_mask: u8 = 1,
    _pad0: [u8; 6] = 2,
    evtchn_pending_sel: u64 = 8,
    arch: ArchVcpuInfo = 16,
    time: VcpuTimeInfo = 32,
});

const _: () = {
    assert!(core::mem::offset_of!(VcpuInfo, arch.cr2) == 16);
    assert!(core::mem::offset_of!(VcpuInfo, arch._pad0) == 24);
};

/// True when an event upcall must be delivered: pending set and mask clear (reference §8.4:
/// the 16-bit word at offset 0 lies in `0x0001..=0x00FF`).
#[must_use]
pub const fn upcall_deliverable(evtchn_upcall_pending: u8, evtchn_upcall_mask: u8) -> bool {
    evtchn_upcall_pending != 0 && evtchn_upcall_mask == 0
}

/// `arch_shared_info` (48 bytes; reference §6.1).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArchSharedInfo {
    /// Guest-written number of valid P2M entries.
    pub max_pfn: u64,
    /// Guest-written MFN of the top of the 3-level P2M frame tree (0 unset, !0 invalid).
    pub pfn_to_mfn_frame_list_list: u64,
    /// Hypervisor-written NMI reason bits (`XEN_NMIREASON_*`).
    pub nmi_reason: u64,
    /// Guest: CR3 (MFN << 12) of the address space holding the linear P2M; 0 = unused.
    pub p2m_cr3: u64,
    /// Guest: virtual address of the linear P2M.
    pub p2m_vaddr: u64,
    /// Guest: bumped before and after each P2M mapping change (odd = in progress).
    pub p2m_generation: u64,
}

assert_layout!(ArchSharedInfo, size = 48, align = 8, {
    max_pfn: u64 = 0,
    pfn_to_mfn_frame_list_list: u64 = 8,
    nmi_reason: u64 = 16,
    p2m_cr3: u64 = 24,
    p2m_vaddr: u64 = 32,
    p2m_generation: u64 = 40,
});

/// `shared_info` (3136 bytes; reference §6.1). The rest of its page is unused.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedInfo {
    /// Legacy per-vCPU slots; slot `n` at offset `64 * n`.
    pub vcpu_info: [VcpuInfo; XEN_LEGACY_MAX_VCPUS],
    /// 2-level pending bitmap: bit `p` of the array = port `p`.
    pub evtchn_pending: [u64; EVTCHN_2L_WORDS],
    /// 2-level mask bitmap (guest-owned).
    pub evtchn_mask: [u64; EVTCHN_2L_WORDS],
    /// Wallclock update version (odd while updating).
    pub wc_version: u32,
    /// Low 32 bits of wallclock seconds at system time 0.
    pub wc_sec: u32,
    /// Nanoseconds part of the wallclock at system time 0.
    pub wc_nsec: u32,
    /// High 32 bits of wallclock seconds.
    pub wc_sec_hi: u32,
    /// Architecture part.
    pub arch: ArchSharedInfo,
}

impl Default for SharedInfo {
    fn default() -> Self {
        Self {
            vcpu_info: [VcpuInfo::default(); XEN_LEGACY_MAX_VCPUS],
            evtchn_pending: [0; EVTCHN_2L_WORDS],
            evtchn_mask: [0; EVTCHN_2L_WORDS],
            wc_version: 0,
            wc_sec: 0,
            wc_nsec: 0,
            wc_sec_hi: 0,
            arch: ArchSharedInfo::default(),
        }
    }
}

impl SharedInfo {
    /// The initial state a domain builder writes: all zero except every vCPU slot's
    /// `evtchn_upcall_mask = 1` (events masked until the guest enables them; reference §4.6).
    #[must_use]
    pub fn initial() -> Self {
        let mut si = Self::default();
        for v in &mut si.vcpu_info {
            v.evtchn_upcall_mask = 1;
        }
        si
    }

    /// Wallclock seconds at system time 0: `wc_sec_hi << 32 | wc_sec`.
    #[must_use]
    pub const fn wallclock_sec(&self) -> u64 {
        (self.wc_sec_hi as u64) << 32 | self.wc_sec as u64
    }

    /// Stores wallclock seconds, splitting them into `wc_sec` / `wc_sec_hi`.
    pub const fn set_wallclock_sec(&mut self, sec: u64) {
        let bytes = sec.to_le_bytes();
        self.wc_sec = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        self.wc_sec_hi = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    }
}

assert_layout!(SharedInfo, size = 3136, align = 8, {
    vcpu_info: [VcpuInfo; 32] = 0,
    evtchn_pending: [u64; 64] = 2048,
    evtchn_mask: [u64; 64] = 2560,
    wc_version: u32 = 3072,
    wc_sec: u32 = 3076,
    wc_nsec: u32 = 3080,
    wc_sec_hi: u32 = 3084,
    arch: ArchSharedInfo = 3088,
});

// Absolute offsets of arch_shared_info fields (reference §6.1, in parentheses there).
const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(SharedInfo, arch.max_pfn) == 3088);
    assert!(offset_of!(SharedInfo, arch.pfn_to_mfn_frame_list_list) == 3096);
    assert!(offset_of!(SharedInfo, arch.nmi_reason) == 3104);
    assert!(offset_of!(SharedInfo, arch.p2m_cr3) == 3112);
    assert!(offset_of!(SharedInfo, arch.p2m_vaddr) == 3120);
    assert!(offset_of!(SharedInfo, arch.p2m_generation) == 3128);
    assert!(core::mem::size_of::<SharedInfo>() <= crate::PAGE_SIZE);
};

#[cfg(test)]
mod tests {
    use super::*;

    fn scale(hz: u64) -> PvclockScale {
        PvclockScale::from_tsc_hz(hz).expect("non-zero frequency")
    }

    #[test]
    fn two_ghz_hand_computed() {
        // 2 GHz already lies in (1e9, 2e9]: shift 0, mul = 1e9 * 2^32 / 2e9 = 2^31.
        let s = scale(2_000_000_000);
        assert_eq!(
            s,
            PvclockScale {
                mul: 0x8000_0000,
                shift: 0
            }
        );
        // 1,000,000 ticks at 2 GHz = 500,000 ns.
        assert_eq!(s.ticks_to_ns(1_000_000), 500_000);
        assert_eq!(s.implied_hz(), 2_000_000_000);
    }

    #[test]
    fn three_point_one_ghz_negative_shift() {
        // 3.1e9 > 2e9 → shift -1 (1.55e9); mul = floor(1e9 * 2^32 / 3.1e9 * 2)
        //   = floor(4294967296 * 2 / 3.1) = floor(2770946642.58...) = 2770946642.
        let s = scale(3_100_000_000);
        assert_eq!(
            s,
            PvclockScale {
                mul: 2_770_946_642,
                shift: -1
            }
        );
        // 3.1e9 ticks = 1 s; the scale is a floor, so it may be at most 1 ns short.
        let one_second = s.ticks_to_ns(3_100_000_000);
        assert!((999_999_999..=1_000_000_000).contains(&one_second));
        // 31 ticks = 10 ns: (31 >> 1) = 15; 15 * 2770946642 >> 32 = 9 (the shift drops a tick).
        assert_eq!(s.ticks_to_ns(31), 9);
        assert_eq!(s.ticks_to_ns(3_100), 999);
    }

    #[test]
    fn one_ghz_positive_shift() {
        // 1e9 is not > 1e9 → shift +1 (2e9); mul = 1e9 * 2^32 / 2e9 = 2^31.
        let s = scale(1_000_000_000);
        assert_eq!(
            s,
            PvclockScale {
                mul: 0x8000_0000,
                shift: 1
            }
        );
        assert_eq!(s.ticks_to_ns(1_000), 1_000);
        assert_eq!(s.ticks_to_ns(1_000_000_000), 1_000_000_000);
        assert_eq!(s.implied_hz(), 1_000_000_000);
    }

    #[test]
    fn extreme_frequencies() {
        // 1 Hz: shift 30 (2^30 > 1e9), one tick is one second.
        let slow = scale(1);
        assert_eq!(slow.shift, 30);
        let one = slow.ticks_to_ns(1);
        assert!((999_999_999..=1_000_000_000).contains(&one), "{one}");
        let fast = scale(u64::MAX);
        assert!(fast.shift < 0 && fast.mul >= 0x8000_0000);
        assert_eq!(PvclockScale::from_tsc_hz(0), Err(ZeroFrequency));
        for hz in [
            1u64,
            999_999_999,
            1_000_000_001,
            2_000_000_001,
            4_000_000_000,
        ] {
            let s = scale(hz);
            assert!(s.mul >= 0x8000_0000, "mul normalised for {hz}");
        }
    }

    #[test]
    fn shift_rules() {
        let s = PvclockScale {
            mul: u32::MAX,
            shift: 0,
        };
        // (2^64-1) * (2^32-1) >> 32 still fits in u64.
        assert_eq!(s.ticks_to_ns(u64::MAX), 0xFFFF_FFFE_FFFF_FFFF);
        let left = PvclockScale {
            mul: 0x8000_0000,
            shift: 2,
        };
        assert_eq!(left.ticks_to_ns(10), 20);
        let right = PvclockScale {
            mul: 0x8000_0000,
            shift: -2,
        };
        assert_eq!(right.ticks_to_ns(10), 1);
        let huge = PvclockScale {
            mul: 0x8000_0000,
            shift: 64,
        };
        assert_eq!(huge.ticks_to_ns(10), 0);
    }

    #[test]
    fn system_time_at_tsc() {
        let mut t = VcpuTimeInfo {
            tsc_timestamp: 1_000,
            system_time: 5_000,
            ..VcpuTimeInfo::default()
        };
        t.set_scale(scale(2_000_000_000));
        assert_eq!(t.system_time_at(1_000), 5_000);
        assert_eq!(t.system_time_at(3_000), 6_000);
        assert!(t.is_stable());
    }

    #[test]
    fn initial_shared_info_masks_events_and_wallclock_splits() {
        let mut si = SharedInfo::initial();
        assert!(si.vcpu_info.iter().all(|v| v.evtchn_upcall_mask == 1));
        si.set_wallclock_sec(0x1_2345_6789);
        assert_eq!((si.wc_sec_hi, si.wc_sec), (1, 0x2345_6789));
        assert_eq!(si.wallclock_sec(), 0x1_2345_6789);
        assert!(upcall_deliverable(1, 0));
        assert!(!upcall_deliverable(1, 1) && !upcall_deliverable(0, 0));
    }
}
