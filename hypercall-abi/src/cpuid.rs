//! The Xen CPUID leaves a PV guest sees, and the forced-emulation prefix (reference §8.9–§8.10).

/// `XEN_CPUID_FIRST_LEAF`: base of the Xen leaves.
pub const XEN_CPUID_FIRST_LEAF: u32 = 0x4000_0000;
/// Alternative base used when Viridian is enabled (HVM only).
pub const XEN_CPUID_VIRIDIAN_BASE: u32 = 0x4000_0100;
/// Offset of the highest Xen leaf (`base + 5`).
pub const XEN_CPUID_MAX_LEAF_OFFSET: u32 = 5;
/// Highest Xen leaf Oxen reports in `0x40000000.EAX`.
pub const XEN_CPUID_MAX_LEAF: u32 = XEN_CPUID_FIRST_LEAF + XEN_CPUID_MAX_LEAF_OFFSET;

/// Leaf `base + 0`: max leaf and signature.
pub const XEN_CPUID_LEAF_SIGNATURE: u32 = XEN_CPUID_FIRST_LEAF;
/// Leaf `base + 1`: version (`major << 16 | minor` in EAX).
pub const XEN_CPUID_LEAF_VERSION: u32 = XEN_CPUID_FIRST_LEAF + 1;
/// Leaf `base + 2`: hypercall-page count and MSR, feature flags.
pub const XEN_CPUID_LEAF_HYPERCALL: u32 = XEN_CPUID_FIRST_LEAF + 2;
/// Leaf `base + 3`: time (sub-leaves 0–2).
pub const XEN_CPUID_LEAF_TIME: u32 = XEN_CPUID_FIRST_LEAF + 3;
/// Leaf `base + 4`: HVM features (all 0 for PV).
pub const XEN_CPUID_LEAF_HVM: u32 = XEN_CPUID_FIRST_LEAF + 4;
/// Leaf `base + 5`: PV features (EBX = machine address width).
pub const XEN_CPUID_LEAF_PV: u32 = XEN_CPUID_FIRST_LEAF + 5;

/// `XEN_CPUID_SIGNATURE_EBX`: "XenV".
pub const XEN_CPUID_SIGNATURE_EBX: u32 = 0x566e_6558;
/// `XEN_CPUID_SIGNATURE_ECX`: "MMXe".
pub const XEN_CPUID_SIGNATURE_ECX: u32 = 0x6558_4d4d;
/// `XEN_CPUID_SIGNATURE_EDX`: "nVMM".
pub const XEN_CPUID_SIGNATURE_EDX: u32 = 0x4d4d_566e;
/// The signature spelled out by EBX, ECX, EDX.
pub const XEN_CPUID_SIGNATURE: &[u8; 12] = b"XenVMMXenVMM";

/// The 12 signature bytes as the guest assembles them from EBX, ECX, EDX.
#[must_use]
pub const fn signature_bytes(ebx: u32, ecx: u32, edx: u32) -> [u8; 12] {
    let b = ebx.to_le_bytes();
    let c = ecx.to_le_bytes();
    let d = edx.to_le_bytes();
    [
        b[0], b[1], b[2], b[3], c[0], c[1], c[2], c[3], d[0], d[1], d[2], d[3],
    ]
}

/// Number of hypercall pages reported in `0x40000002.EAX`.
pub const XEN_CPUID_HYPERCALL_PAGES: u32 = 1;
/// MSR the guest writes to install a hypercall page (`0x40000002.EBX`).
pub const XEN_HYPERCALL_MSR: u32 = 0x4000_0000;
/// `XEN_CPUID_FEAT1_MMU_PT_UPDATE_PRESERVE_AD` (`0x40000002.ECX` bit 0; set for PV).
pub const XEN_CPUID_FEAT1_MMU_PT_UPDATE_PRESERVE_AD: u32 = 1 << 0;

/// Time leaf, sub-leaf 0, EAX bit 0: TSC is emulated (vTSC active).
///
/// The `XEN_CPUID_TSC_*` names were added to Xen's headers after 4.17; the bit values are those
/// of reference §8.10.
pub const XEN_CPUID_TSC_EMULATED: u32 = 1 << 0;
/// Time leaf, sub-leaf 0, EAX bit 1: host TSC is reliable (invariant).
pub const XEN_CPUID_HOST_TSC_RELIABLE: u32 = 1 << 1;
/// Time leaf, sub-leaf 0, EAX bit 2: `RDTSCP` is available.
pub const XEN_CPUID_RDTSCP_INSTR_AVAIL: u32 = 1 << 2;

/// CPUID.1:ECX bit 31: "running under a hypervisor" (set for PV guests).
pub const CPUID1_ECX_HYPERVISOR: u32 = 1 << 31;

/// The forced-emulation prefix `ud2; .ascii "xen"` that makes the hypervisor emulate the
/// following `cpuid` with the domain's policy.
pub const XEN_EMULATE_PREFIX: [u8; 5] = [0x0F, 0x0B, 0x78, 0x65, 0x6E];
/// The opcode of `cpuid`.
pub const CPUID_OPCODE: [u8; 2] = [0x0F, 0xA2];
/// The whole 7-byte forced-emulation `cpuid` sequence.
pub const XEN_FORCED_CPUID: [u8; 7] = [0x0F, 0x0B, 0x78, 0x65, 0x6E, 0x0F, 0xA2];

/// True if `bytes` starts with the forced-emulation `cpuid` sequence (what the `#UD` handler
/// checks at the faulting RIP).
#[must_use]
pub fn is_forced_cpuid(bytes: &[u8]) -> bool {
    bytes.starts_with(&XEN_FORCED_CPUID)
}

/// The four registers of leaf `0x40000000` for a hypervisor reporting `max_leaf`.
#[must_use]
pub const fn signature_leaf(max_leaf: u32) -> [u32; 4] {
    [
        max_leaf,
        XEN_CPUID_SIGNATURE_EBX,
        XEN_CPUID_SIGNATURE_ECX,
        XEN_CPUID_SIGNATURE_EDX,
    ]
}

/// The four registers of leaf `0x40000001`: version in EAX.
#[must_use]
pub const fn version_leaf(major: u16, minor: u16) -> [u32; 4] {
    [crate::version::xen_version_value(major, minor), 0, 0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_spells_xenvmm() {
        assert_eq!(
            &signature_bytes(
                XEN_CPUID_SIGNATURE_EBX,
                XEN_CPUID_SIGNATURE_ECX,
                XEN_CPUID_SIGNATURE_EDX
            ),
            XEN_CPUID_SIGNATURE
        );
        assert_eq!(
            signature_leaf(XEN_CPUID_MAX_LEAF),
            [0x4000_0005, 0x566e_6558, 0x6558_4d4d, 0x4d4d_566e]
        );
        assert_eq!(version_leaf(4, 17)[0], 0x0004_0011);
    }

    #[test]
    fn forced_prefix() {
        assert!(is_forced_cpuid(&[
            0x0F, 0x0B, b'x', b'e', b'n', 0x0F, 0xA2, 0x90
        ]));
        assert!(!is_forced_cpuid(&[0x0F, 0x0B, b'x', b'e', b'n', 0x90]));
        assert_eq!(&XEN_FORCED_CPUID[..5], &XEN_EMULATE_PREFIX);
        assert_eq!(&XEN_FORCED_CPUID[5..], &CPUID_OPCODE);
    }
}
