//! Decoding the CPUID leaves that matter to the hypervisor (portable: the caller executes
//! `cpuid`, this module only interprets register values).

use arrayvec::ArrayString;
use bitflags::bitflags;

/// The four registers one `cpuid` returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuidResult {
    /// EAX.
    pub eax: u32,
    /// EBX.
    pub ebx: u32,
    /// ECX.
    pub ecx: u32,
    /// EDX.
    pub edx: u32,
}

bitflags! {
    /// CPU features the hypervisor uses or reports.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct CpuFeatures: u64 {
        /// No-execute page protection (EFER.NXE).
        const NX = 1 << 0;
        /// Process-context identifiers.
        const PCID = 1 << 1;
        /// The INVPCID instruction.
        const INVPCID = 1 << 2;
        /// XSAVE/XRSTOR.
        const XSAVE = 1 << 3;
        /// Intel VT-x.
        const VMX = 1 << 4;
        /// AMD-V.
        const SVM = 1 << 5;
        /// x2APIC mode.
        const X2APIC = 1 << 6;
        /// 1 GiB pages.
        const PDPE1GB = 1 << 7;
        /// The TSC runs at a constant rate in all power states.
        const INVARIANT_TSC = 1 << 8;
        /// Supervisor-mode execution prevention.
        const SMEP = 1 << 9;
        /// Supervisor-mode access prevention.
        const SMAP = 1 << 10;
        /// RDFSBASE/WRFSBASE and friends.
        const FSGSBASE = 1 << 11;
        /// TSC-deadline mode of the local APIC timer.
        const TSC_DEADLINE = 1 << 12;
        /// Running under a hypervisor (CPUID.1:ECX[31]).
        const HYPERVISOR = 1 << 13;
        /// Global pages (CR4.PGE).
        const PGE = 1 << 14;
        /// FXSAVE/FXRSTOR.
        const FXSR = 1 << 15;
        /// The local APIC.
        const APIC = 1 << 16;
        /// RDTSCP.
        const RDTSCP = 1 << 17;
        /// SYSCALL/SYSRET in long mode.
        const SYSCALL = 1 << 18;
        /// A time-stamp counter.
        const TSC = 1 << 19;
        /// The XSAVEOPT instruction.
        const XSAVEOPT = 1 << 20;
        /// User-mode instruction prevention.
        const UMIP = 1 << 21;
    }
}

/// Names of the features shown in the banner, in display order.
pub const FEATURE_NAMES: &[(CpuFeatures, &str)] = &[
    (CpuFeatures::NX, "nx"),
    (CpuFeatures::PCID, "pcid"),
    (CpuFeatures::INVPCID, "invpcid"),
    (CpuFeatures::XSAVE, "xsave"),
    (CpuFeatures::VMX, "vmx"),
    (CpuFeatures::SVM, "svm"),
    (CpuFeatures::X2APIC, "x2apic"),
    (CpuFeatures::PDPE1GB, "pdpe1gb"),
    (CpuFeatures::INVARIANT_TSC, "invtsc"),
    (CpuFeatures::TSC_DEADLINE, "tsc-deadline"),
    (CpuFeatures::SMEP, "smep"),
    (CpuFeatures::SMAP, "smap"),
    (CpuFeatures::UMIP, "umip"),
    (CpuFeatures::FSGSBASE, "fsgsbase"),
    (CpuFeatures::HYPERVISOR, "hypervisor"),
];

/// What the hypervisor knows about the boot CPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuInfo {
    /// Vendor string, e.g. `GenuineIntel`, `AuthenticAMD`.
    pub vendor: ArrayString<12>,
    /// Brand string, if the CPU has one.
    pub brand: ArrayString<48>,
    /// Display family (base + extended).
    pub family: u32,
    /// Display model (base + extended).
    pub model: u32,
    /// Stepping.
    pub stepping: u32,
    /// Highest basic leaf.
    pub max_leaf: u32,
    /// Highest extended leaf.
    pub max_ext_leaf: u32,
    /// Physical address width in bits.
    pub phys_addr_bits: u8,
    /// Features found.
    pub features: CpuFeatures,
    /// The local APIC id of this CPU.
    pub apic_id: u32,
}

fn regs_to_str<const N: usize>(out: &mut ArrayString<N>, regs: &[u32]) {
    for r in regs {
        for b in r.to_le_bytes() {
            if b == 0 {
                continue;
            }
            let c = if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            };
            let _ = out.try_push(c);
        }
    }
}

impl CpuInfo {
    /// Decodes the CPU from `cpuid(leaf, subleaf)`.
    pub fn decode(cpuid: impl Fn(u32, u32) -> CpuidResult) -> CpuInfo {
        let l0 = cpuid(0, 0);
        let mut vendor = ArrayString::new();
        regs_to_str(&mut vendor, &[l0.ebx, l0.edx, l0.ecx]);
        let max_leaf = l0.eax;
        let l1 = if max_leaf >= 1 {
            cpuid(1, 0)
        } else {
            CpuidResult::default()
        };
        let l7 = if max_leaf >= 7 {
            cpuid(7, 0)
        } else {
            CpuidResult::default()
        };
        let e0 = cpuid(0x8000_0000, 0);
        let max_ext_leaf = if e0.eax >= 0x8000_0000 && e0.eax < 0x8001_0000 {
            e0.eax
        } else {
            0
        };
        let ext = |leaf: u32| {
            if max_ext_leaf >= leaf {
                cpuid(leaf, 0)
            } else {
                CpuidResult::default()
            }
        };
        let e1 = ext(0x8000_0001);
        let e7 = ext(0x8000_0007);
        let e8 = ext(0x8000_0008);

        let base_family = (l1.eax >> 8) & 0xf;
        let base_model = (l1.eax >> 4) & 0xf;
        let family = if base_family == 0xf {
            base_family + ((l1.eax >> 20) & 0xff)
        } else {
            base_family
        };
        let model = if base_family == 0x6 || base_family == 0xf {
            base_model | (((l1.eax >> 16) & 0xf) << 4)
        } else {
            base_model
        };

        let mut brand = ArrayString::<48>::new();
        if max_ext_leaf >= 0x8000_0004 {
            let mut regs = [0u32; 12];
            for (i, leaf) in (0x8000_0002u32..=0x8000_0004).enumerate() {
                let r = cpuid(leaf, 0);
                regs[i * 4..i * 4 + 4].copy_from_slice(&[r.eax, r.ebx, r.ecx, r.edx]);
            }
            regs_to_str(&mut brand, &regs);
        }
        let trimmed = ArrayString::<48>::from(brand.trim()).unwrap_or_default();

        let bit = |reg: u32, n: u32| reg & (1 << n) != 0;
        let mut f = CpuFeatures::empty();
        let checks = [
            (bit(e1.edx, 20), CpuFeatures::NX),
            (bit(l1.ecx, 17), CpuFeatures::PCID),
            (bit(l7.ebx, 10), CpuFeatures::INVPCID),
            (bit(l1.ecx, 26), CpuFeatures::XSAVE),
            (bit(l1.ecx, 5), CpuFeatures::VMX),
            (bit(e1.ecx, 2), CpuFeatures::SVM),
            (bit(l1.ecx, 21), CpuFeatures::X2APIC),
            (bit(e1.edx, 26), CpuFeatures::PDPE1GB),
            (bit(e7.edx, 8), CpuFeatures::INVARIANT_TSC),
            (bit(l7.ebx, 7), CpuFeatures::SMEP),
            (bit(l7.ebx, 20), CpuFeatures::SMAP),
            (bit(l7.ecx, 2), CpuFeatures::UMIP),
            (bit(l7.ebx, 0), CpuFeatures::FSGSBASE),
            (bit(l1.ecx, 24), CpuFeatures::TSC_DEADLINE),
            (bit(l1.ecx, 31), CpuFeatures::HYPERVISOR),
            (bit(l1.edx, 13), CpuFeatures::PGE),
            (bit(l1.edx, 24), CpuFeatures::FXSR),
            (bit(l1.edx, 9), CpuFeatures::APIC),
            (bit(e1.edx, 27), CpuFeatures::RDTSCP),
            (bit(e1.edx, 11), CpuFeatures::SYSCALL),
            (bit(l1.edx, 4), CpuFeatures::TSC),
        ];
        for (present, flag) in checks {
            if present {
                f |= flag;
            }
        }
        if max_leaf >= 0xd && f.contains(CpuFeatures::XSAVE) && bit(cpuid(0xd, 1).eax, 0) {
            f |= CpuFeatures::XSAVEOPT;
        }
        let phys_addr_bits = if max_ext_leaf >= 0x8000_0008 {
            (e8.eax & 0xff) as u8
        } else {
            36
        };

        CpuInfo {
            vendor,
            brand: trimmed,
            family,
            model,
            stepping: l1.eax & 0xf,
            max_leaf,
            max_ext_leaf,
            phys_addr_bits,
            features: f,
            apic_id: l1.ebx >> 24,
        }
    }

    /// Whether `f` is present.
    pub fn has(&self, f: CpuFeatures) -> bool {
        self.features.contains(f)
    }
}

/// Writes the banner feature names present in `f`, space separated.
pub fn write_feature_names(out: &mut impl core::fmt::Write, f: CpuFeatures) -> core::fmt::Result {
    let mut first = true;
    for (flag, name) in FEATURE_NAMES {
        if f.contains(*flag) {
            if !first {
                out.write_char(' ')?;
            }
            out.write_str(name)?;
            first = false;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(leaf: u32, _sub: u32) -> CpuidResult {
        let s = |b: &[u8; 4]| u32::from_le_bytes(*b);
        match leaf {
            0 => CpuidResult {
                eax: 0xd,
                ebx: s(b"Auth"),
                edx: s(b"enti"),
                ecx: s(b"cAMD"),
            },
            // Family 0x17 (0xf + 8), model 0x31, stepping 0, APIC id 3.
            1 => CpuidResult {
                eax: 0x0083_0f10,
                ebx: 3 << 24,
                ecx: (1 << 17) | (1 << 26) | (1 << 31),
                edx: (1 << 4) | (1 << 9) | (1 << 13) | (1 << 24),
            },
            7 => CpuidResult {
                ebx: (1 << 0) | (1 << 7),
                ..Default::default()
            },
            0xd => CpuidResult {
                eax: 1,
                ..Default::default()
            },
            0x8000_0000 => CpuidResult {
                eax: 0x8000_0008,
                ..Default::default()
            },
            0x8000_0001 => CpuidResult {
                ecx: 1 << 2,
                edx: (1 << 20) | (1 << 11) | (1 << 26),
                ..Default::default()
            },
            0x8000_0002 => CpuidResult {
                eax: s(b"  Fa"),
                ebx: s(b"ke E"),
                ecx: s(b"PYC "),
                edx: s(b"CPU\0"),
            },
            0x8000_0003 | 0x8000_0004 => CpuidResult::default(),
            0x8000_0008 => CpuidResult {
                eax: 48,
                ..Default::default()
            },
            _ => CpuidResult::default(),
        }
    }

    #[test]
    fn decodes_vendor_model_features() {
        let c = CpuInfo::decode(fake);
        assert_eq!(c.vendor.as_str(), "AuthenticAMD");
        assert_eq!(c.brand.as_str(), "Fake EPYC CPU");
        assert_eq!((c.family, c.model, c.stepping), (0x17, 0x31, 0));
        assert_eq!(c.apic_id, 3);
        assert_eq!(c.phys_addr_bits, 48);
        for f in [
            CpuFeatures::NX,
            CpuFeatures::PCID,
            CpuFeatures::XSAVE,
            CpuFeatures::XSAVEOPT,
            CpuFeatures::SVM,
            CpuFeatures::PDPE1GB,
            CpuFeatures::SMEP,
            CpuFeatures::FSGSBASE,
            CpuFeatures::HYPERVISOR,
            CpuFeatures::SYSCALL,
            CpuFeatures::APIC,
        ] {
            assert!(c.has(f), "{f:?} missing");
        }
        assert!(!c.has(CpuFeatures::VMX));
        assert!(!c.has(CpuFeatures::SMAP));
        let mut s = String::new();
        write_feature_names(&mut s, c.features).unwrap();
        assert_eq!(s, "nx pcid xsave svm pdpe1gb smep fsgsbase hypervisor");
    }

    #[test]
    fn ancient_cpu_without_extended_leaves() {
        let c = CpuInfo::decode(|leaf, _| match leaf {
            0 => CpuidResult {
                eax: 1,
                ..Default::default()
            },
            1 => CpuidResult {
                eax: 0x0000_0633,
                ..Default::default()
            },
            0x8000_0000 => CpuidResult {
                eax: 0x1234,
                ..Default::default()
            },
            _ => CpuidResult {
                eax: 0xffff_ffff,
                ebx: 0xffff_ffff,
                ecx: 0xffff_ffff,
                edx: 0xffff_ffff,
            },
        });
        assert_eq!(c.max_ext_leaf, 0);
        assert_eq!((c.family, c.model, c.stepping), (6, 3, 3));
        assert!(!c.has(CpuFeatures::NX));
        assert_eq!(c.brand.as_str(), "");
        assert_eq!(c.phys_addr_bits, 36);
    }
}
