//! Time keeping arithmetic (portable): TSC frequency discovery from CPUID and tick/ns
//! conversion.

pub mod timers;
pub mod wallclock;

use crate::cpuinfo::CpuidResult;

/// Where the TSC frequency came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TscSource {
    /// The hypervisor timing leaf 0x40000010 (when running virtualised).
    HypervisorLeaf,
    /// CPUID leaf 0x15 (TSC/crystal ratio and crystal frequency).
    Cpuid15,
    /// CPUID leaf 0x16 (processor base frequency).
    Cpuid16,
    /// Measured against the PIT.
    Pit,
}

impl core::fmt::Display for TscSource {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            TscSource::HypervisorLeaf => "CPUID 0x40000010",
            TscSource::Cpuid15 => "CPUID 0x15",
            TscSource::Cpuid16 => "CPUID 0x16",
            TscSource::Pit => "PIT calibration",
        })
    }
}

/// The TSC frequency in Hz as CPUID reports it, if it does: the hypervisor timing leaf when
/// present, else leaf 0x15 with an enumerated crystal, else leaf 0x16's base frequency.
pub fn tsc_hz_from_cpuid(cpuid: impl Fn(u32, u32) -> CpuidResult) -> Option<(u64, TscSource)> {
    let l1 = cpuid(1, 0);
    if l1.ecx & (1 << 31) != 0 {
        let hv = cpuid(0x4000_0000, 0);
        if (0x4000_0010..0x4001_0000).contains(&hv.eax) {
            let khz = cpuid(0x4000_0010, 0).eax;
            if khz != 0 {
                return Some((u64::from(khz) * 1000, TscSource::HypervisorLeaf));
            }
        }
    }
    let max = cpuid(0, 0).eax;
    if max >= 0x15 {
        let l15 = cpuid(0x15, 0);
        if l15.eax != 0 && l15.ebx != 0 && l15.ecx != 0 {
            let hz = u64::from(l15.ecx) * u64::from(l15.ebx) / u64::from(l15.eax);
            return Some((hz, TscSource::Cpuid15));
        }
    }
    if max >= 0x16 {
        let mhz = cpuid(0x16, 0).eax & 0xffff;
        if mhz != 0 {
            return Some((u64::from(mhz) * 1_000_000, TscSource::Cpuid16));
        }
    }
    None
}

/// `ticks` of a clock running at `hz`, in nanoseconds (saturating; 0 if `hz` is 0).
pub fn ticks_to_ns(ticks: u64, hz: u64) -> u64 {
    if hz == 0 {
        return 0;
    }
    u64::try_from(u128::from(ticks) * 1_000_000_000 / u128::from(hz)).unwrap_or(u64::MAX)
}

/// Nanoseconds as ticks of a clock running at `hz` (saturating).
pub fn ns_to_ticks(ns: u64, hz: u64) -> u64 {
    u64::try_from(u128::from(ns) * u128::from(hz) / 1_000_000_000).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(entries: &[(u32, CpuidResult)]) -> impl Fn(u32, u32) -> CpuidResult + '_ {
        move |leaf, _| {
            entries
                .iter()
                .find(|e| e.0 == leaf)
                .map(|e| e.1)
                .unwrap_or_default()
        }
    }
    const fn r(eax: u32, ebx: u32, ecx: u32) -> CpuidResult {
        CpuidResult {
            eax,
            ebx,
            ecx,
            edx: 0,
        }
    }

    #[test]
    fn hypervisor_leaf_wins_when_present() {
        let t = [
            (0, r(0x16, 0, 0)),
            (1, r(0, 0, 1 << 31)),
            (0x4000_0000, r(0x4000_0010, 0, 0)),
            (0x4000_0010, r(2_500_000, 0, 0)),
            (0x16, r(3000, 0, 0)),
        ];
        let f = leaves(&t);
        assert_eq!(
            tsc_hz_from_cpuid(f),
            Some((2_500_000_000, TscSource::HypervisorLeaf))
        );
    }

    #[test]
    fn crystal_ratio_then_base_frequency() {
        // 24 MHz crystal times 250/2 = 3 GHz.
        let t = [
            (0, r(0x16, 0, 0)),
            (0x15, r(2, 250, 24_000_000)),
            (0x16, r(2900, 0, 0)),
        ];
        let f = leaves(&t);
        assert_eq!(
            tsc_hz_from_cpuid(f),
            Some((3_000_000_000, TscSource::Cpuid15))
        );
        // No crystal frequency: fall back to leaf 0x16.
        let t = [
            (0, r(0x16, 0, 0)),
            (0x15, r(2, 250, 0)),
            (0x16, r(2900, 0, 0)),
        ];
        let f = leaves(&t);
        assert_eq!(
            tsc_hz_from_cpuid(f),
            Some((2_900_000_000, TscSource::Cpuid16))
        );
        // The leaf 0x40000010 needs the hypervisor bit.
        let t = [
            (0, r(1, 0, 0)),
            (0x4000_0000, r(0x4000_0010, 0, 0)),
            (0x4000_0010, r(1, 0, 0)),
        ];
        let f = leaves(&t);
        assert_eq!(tsc_hz_from_cpuid(f), None);
    }

    #[test]
    fn conversions() {
        assert_eq!(ticks_to_ns(3_000_000_000, 3_000_000_000), 1_000_000_000);
        assert_eq!(ticks_to_ns(1, 2_000_000_000), 0);
        assert_eq!(ticks_to_ns(u64::MAX, 1), u64::MAX);
        assert_eq!(ticks_to_ns(5, 0), 0);
        assert_eq!(ns_to_ticks(1_000, 2_000_000_000), 2_000);
        assert_eq!(ns_to_ticks(u64::MAX, u64::MAX), u64::MAX);
    }
}
