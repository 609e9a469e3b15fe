//! The CPUID a PV guest sees (reference §8.10): the host's leaves with the features a PV guest
//! cannot use removed and the hypervisor bit set, plus Xen's leaves at 0x40000000.

use crate::cpuinfo::CpuidResult;
use hypercall_abi::cpuid as xc;

/// Facts about the platform the policy needs.
#[derive(Clone, Copy, Debug)]
pub struct PolicyInput {
    /// The domain is the hardware domain (dom0): keeps MTRR/MCA details.
    pub hardware_domain: bool,
    /// TSC frequency in kHz (reported in the time leaf).
    pub tsc_khz: u32,
    /// Machine address width in bits (reported in leaf 0x40000005).
    pub maddr_bits: u32,
}

/// Bit `n`.
const fn bit(n: u32) -> u32 {
    1 << n
}

/// Leaf 1 ECX bits hidden from PV guests: MONITOR, DS-CPL, VMX, SMX, EST, TM2, PDCM, PCID,
/// x2APIC, TSC-deadline, XSAVE, OSXSAVE, AVX, F16C (the hypervisor does not enable XSAVE state
/// for guests, so the XSAVE family is hidden with it).
const LEAF1_ECX_HIDE: u32 = bit(3)
    | bit(4)
    | bit(5)
    | bit(6)
    | bit(7)
    | bit(8)
    | bit(15)
    | bit(17)
    | bit(21)
    | bit(24)
    | bit(26)
    | bit(27)
    | bit(28)
    | bit(29);
/// Leaf 1 EDX bits hidden: VME, PSE, PSE-36, ACPI, TM, PBE (no superpages, no virtual-8086).
const LEAF1_EDX_HIDE: u32 = bit(1) | bit(3) | bit(17) | bit(22) | bit(29) | bit(31);
/// Leaf 1 EDX bits hidden from all but the hardware domain: MCE, MTRR, MCA.
const LEAF1_EDX_HIDE_DOMU: u32 = bit(7) | bit(12) | bit(14);
/// Leaf 7.0 EBX bits kept: plain user-mode instruction-set features only — BMI1, BMI2, ERMS,
/// RDSEED, ADX, CLFLUSHOPT, SHA.
const LEAF7_EBX_KEEP: u32 = bit(3) | bit(8) | bit(9) | bit(18) | bit(19) | bit(23) | bit(29);
/// Leaf 0x80000001 ECX bits hidden: SVM, and the monitor extensions.
const EXT1_ECX_HIDE: u32 = bit(2) | bit(29);
/// Leaf 0x80000001 EDX bits hidden: 1 GiB pages.
const EXT1_EDX_HIDE: u32 = bit(26);

/// The guest's view of `cpuid(leaf, subleaf)`; `host` executes the real instruction.
pub fn guest_cpuid(
    leaf: u32,
    subleaf: u32,
    input: &PolicyInput,
    host: &dyn Fn(u32, u32) -> CpuidResult,
) -> CpuidResult {
    if (xc::XEN_CPUID_FIRST_LEAF..xc::XEN_CPUID_FIRST_LEAF + 0x100).contains(&leaf) {
        return xen_leaf(leaf, subleaf, input);
    }
    let max = host(leaf & 0x8000_0000, 0).eax;
    if leaf > max && !(leaf & 0x8000_0000 == 0 && leaf <= 1) {
        return CpuidResult::default();
    }
    let mut r = host(leaf, subleaf);
    match leaf {
        0 => r.eax = r.eax.min(0xd),
        1 => {
            r.ecx = (r.ecx & !LEAF1_ECX_HIDE) | xc::CPUID1_ECX_HYPERVISOR;
            r.edx &= !LEAF1_EDX_HIDE;
            if !input.hardware_domain {
                r.edx &= !LEAF1_EDX_HIDE_DOMU;
            }
        }
        // Monitor/mwait, thermal/power, and perf monitoring leaves: nothing.
        5 | 6 | 0xa => r = CpuidResult::default(),
        7 => {
            if subleaf == 0 {
                r.ebx &= LEAF7_EBX_KEEP;
                r.eax = 0;
            } else {
                r.ebx = 0;
                r.eax = 0;
            }
            r.ecx = 0;
            r.edx = 0;
        }
        0xd => r = CpuidResult::default(),
        0x8000_0001 => {
            r.ecx &= !EXT1_ECX_HIDE;
            r.edx &= !EXT1_EDX_HIDE;
        }
        _ if leaf > 0xd && leaf < 0x8000_0000 => r = CpuidResult::default(),
        _ => {}
    }
    r
}

fn xen_leaf(leaf: u32, subleaf: u32, input: &PolicyInput) -> CpuidResult {
    let r = |[eax, ebx, ecx, edx]: [u32; 4]| CpuidResult { eax, ebx, ecx, edx };
    match leaf {
        xc::XEN_CPUID_LEAF_SIGNATURE => r(xc::signature_leaf(xc::XEN_CPUID_MAX_LEAF)),
        xc::XEN_CPUID_LEAF_VERSION => r(xc::version_leaf(
            hypercall_abi::XEN_VERSION_MAJOR,
            hypercall_abi::XEN_VERSION_MINOR,
        )),
        xc::XEN_CPUID_LEAF_HYPERCALL => r([
            xc::XEN_CPUID_HYPERCALL_PAGES,
            xc::XEN_HYPERCALL_MSR,
            xc::XEN_CPUID_FEAT1_MMU_PT_UPDATE_PRESERVE_AD,
            0,
        ]),
        xc::XEN_CPUID_LEAF_TIME => match subleaf {
            0 => r([xc::XEN_CPUID_HOST_TSC_RELIABLE, 0, input.tsc_khz, 0]),
            2 => r([input.tsc_khz, 0, 0, 0]),
            _ => r([0; 4]),
        },
        xc::XEN_CPUID_LEAF_PV if subleaf == 0 => r([0, input.maddr_bits, 0, 0]),
        _ => r([0; 4]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(leaf: u32, _sub: u32) -> CpuidResult {
        match leaf {
            0 => CpuidResult {
                eax: 0x16,
                ebx: 1,
                ecx: 2,
                edx: 3,
            },
            1 => CpuidResult {
                eax: 0x806f8,
                ebx: 0,
                ecx: 0xffff_ffff,
                edx: 0xffff_ffff,
            },
            7 => CpuidResult {
                eax: 2,
                ebx: 0xffff_ffff,
                ecx: 0xffff_ffff,
                edx: 0xffff_ffff,
            },
            0x8000_0000 => CpuidResult {
                eax: 0x8000_0008,
                ..Default::default()
            },
            0x8000_0001 => CpuidResult {
                ecx: 0xffff_ffff,
                edx: 0xffff_ffff,
                ..Default::default()
            },
            _ => CpuidResult {
                eax: leaf,
                ebx: 0x1234,
                ecx: 0,
                edx: 0,
            },
        }
    }

    const DOMU: PolicyInput = PolicyInput {
        hardware_domain: false,
        tsc_khz: 2_500_000,
        maddr_bits: 40,
    };

    #[test]
    fn xen_leaves() {
        let c = guest_cpuid(0x4000_0000, 0, &DOMU, &host);
        assert_eq!(
            hypercall_abi::cpuid::signature_bytes(c.ebx, c.ecx, c.edx),
            *b"XenVMMXenVMM"
        );
        assert_eq!(c.eax, 0x4000_0005);
        assert_eq!(guest_cpuid(0x4000_0001, 0, &DOMU, &host).eax, 0x0004_0011);
        let h = guest_cpuid(0x4000_0002, 0, &DOMU, &host);
        assert_eq!((h.eax, h.ebx, h.ecx), (1, 0x4000_0000, 1));
        assert_eq!(guest_cpuid(0x4000_0005, 0, &DOMU, &host).ebx, 40);
        assert_eq!(guest_cpuid(0x4000_0003, 0, &DOMU, &host).ecx, 2_500_000);
        assert_eq!(
            guest_cpuid(0x4000_0042, 0, &DOMU, &host),
            CpuidResult::default()
        );
    }

    #[test]
    fn features_a_pv_guest_cannot_use_are_hidden() {
        let l1 = guest_cpuid(1, 0, &DOMU, &host);
        assert_ne!(l1.ecx & (1 << 31), 0, "hypervisor bit");
        for b in [5u32, 17, 21, 26, 27, 28] {
            assert_eq!(l1.ecx & (1 << b), 0, "leaf 1 ecx bit {b}");
        }
        assert_eq!(l1.edx & (1 << 3), 0, "no PSE");
        assert_eq!(l1.edx & (1 << 12), 0, "no MTRR for a domU");
        let dom0 = PolicyInput {
            hardware_domain: true,
            ..DOMU
        };
        assert_ne!(guest_cpuid(1, 0, &dom0, &host).edx & (1 << 12), 0);
        let e1 = guest_cpuid(0x8000_0001, 0, &DOMU, &host);
        assert_eq!(e1.ecx & (1 << 2), 0, "no SVM");
        assert_eq!(e1.edx & (1 << 26), 0, "no 1 GiB pages");
        assert_ne!(e1.edx & (1 << 20), 0, "NX stays");
        let l7 = guest_cpuid(7, 0, &DOMU, &host);
        assert_eq!(l7.ebx & 1, 0, "no FSGSBASE");
        assert_eq!(l7.ebx & (1 << 7), 0, "no SMEP");
        assert_eq!(l7.ebx, LEAF7_EBX_KEEP);
        assert_eq!((l7.ecx, l7.edx), (0, 0));
        assert_eq!(guest_cpuid(0xd, 0, &DOMU, &host), CpuidResult::default());
        assert_eq!(guest_cpuid(0, 0, &DOMU, &host).eax, 0xd);
        assert_eq!(guest_cpuid(0x15, 0, &DOMU, &host), CpuidResult::default());
        assert_eq!(
            guest_cpuid(0x8000_0009, 0, &DOMU, &host),
            CpuidResult::default()
        );
    }
}
