//! What Xen emulates for a PV guest: forced-emulation CPUID, control registers, MSRs, port
//! I/O, and `cli`/`sti` (reference §8.9–§8.10).

use guest_support::catch::catch;
use guest_support::{Checks, info};
use pv_guest_kit::StartInfo;
use pv_guest_kit::abi::cpuid::{
    CPUID1_ECX_HYPERVISOR, XEN_CPUID_FEAT1_MMU_PT_UPDATE_PRESERVE_AD, XEN_CPUID_LEAF_HYPERCALL,
    XEN_CPUID_LEAF_SIGNATURE, XEN_CPUID_LEAF_VERSION, XEN_CPUID_SIGNATURE, XEN_HYPERCALL_MSR,
    signature_bytes,
};
use pv_guest_kit::arch::{cpu, mm, shared};
use pv_guest_kit::hypercall::physdev::set_iopl;

use super::raw;

const MSR_EFER: u32 = 0xc000_0080;
const MSR_FS_BASE: u32 = 0xc000_0100;
const MSR_GS_BASE: u32 = 0xc000_0101;
/// An MSR index no CPU implements.
const MSR_UNKNOWN: u32 = 0x0000_1234;

pub fn cpuid(c: &mut Checks) {
    let sig = cpu::xen_cpuid(XEN_CPUID_LEAF_SIGNATURE, 0);
    info(format_args!("cpuid 0x40000000: {sig:x?}"));
    c.check(
        "forced cpuid 0x40000000: signature XenVMMXenVMM",
        &signature_bytes(sig.ebx, sig.ecx, sig.edx) == XEN_CPUID_SIGNATURE,
        format_args!("{sig:x?}"),
    );
    c.check(
        "forced cpuid 0x40000000: max leaf 0x40000002..0x400000ff",
        (0x4000_0002..0x4000_0100).contains(&sig.eax),
        format_args!("{:#x}", sig.eax),
    );
    c.eq_hex(
        "forced cpuid 0x40000001: version 0x00040011",
        u64::from(cpu::xen_cpuid(XEN_CPUID_LEAF_VERSION, 0).eax),
        0x0004_0011,
    );
    let hc = cpu::xen_cpuid(XEN_CPUID_LEAF_HYPERCALL, 0);
    info(format_args!("cpuid 0x40000002: {hc:x?}"));
    c.check(
        "forced cpuid 0x40000002: 1 hypercall page, MSR 0x40000000",
        hc.eax == 1 && hc.ebx == XEN_HYPERCALL_MSR,
        format_args!("{hc:x?}"),
    );
    c.check(
        "forced cpuid 0x40000002: ECX bit 0 (MMU_PT_UPDATE_PRESERVE_AD)",
        hc.ecx & XEN_CPUID_FEAT1_MMU_PT_UPDATE_PRESERVE_AD != 0,
        format_args!("{:#x}", hc.ecx),
    );
    for leaf in 3..=5 {
        info(format_args!(
            "cpuid {:#x}: {:x?}",
            0x4000_0000 + leaf,
            cpu::xen_cpuid(0x4000_0000 + leaf, 0)
        ));
    }
    let one = cpu::xen_cpuid(1, 0);
    c.check(
        "forced cpuid 1: the hypervisor bit (ECX bit 31)",
        one.ecx & CPUID1_ECX_HYPERVISOR != 0,
        format_args!("{one:x?}"),
    );
    info(format_args!(
        "native cpuid 1: {:x?}, 0x40000000: {:x?}",
        cpu::cpuid(1, 0),
        cpu::cpuid(0x4000_0000, 0)
    ));
}

pub fn control_registers(c: &mut Checks, si: &StartInfo) {
    let cr0 = cpu::read_cr0();
    info(format_args!(
        "cr0 {cr0:#x} cr4 {:#x} cr2 {:#x}",
        cpu::read_cr4(),
        cpu::read_cr2()
    ));
    c.check(
        "mov %cr0 (emulated): PE, ET and PG set, TS clear",
        cr0 & 0x8000_0011 == 0x8000_0011 && cr0 & 8 == 0,
        format_args!("{cr0:#x}"),
    );
    let cr3 = cpu::read_cr3();
    let want = mm::virt_to_machine(si.pt_base);
    c.check(
        "mov %cr3 (emulated): pt_base's machine address (mfn_list translation)",
        Some(cr3) == want,
        format_args!("cr3 {cr3:#x}, pt_base {:#x} -> {want:x?}", si.pt_base),
    );
    let cr4 = cpu::read_cr4();
    c.check(
        "mov %cr4 (emulated): OSFXSR and OSXMMEXCPT set",
        cr4 & 0x600 == 0x600,
        format_args!("{cr4:#x}"),
    );
}

pub fn msrs(c: &mut Checks) {
    let page = raw::leak_page(|i| 0xf500_0000_0000_0000 | i as u64);
    let (_, fault) = catch(2, || raw::wrmsr(MSR_FS_BASE, page));
    c.check(
        "wrmsr(FS_BASE) (emulated): no fault",
        fault.is_none(),
        format_args!("{fault:x?}"),
    );
    c.eq_hex(
        "wrmsr(FS_BASE): %fs:16 reads the page's word 2",
        raw::read_fs(16),
        0xf500_0000_0000_0002,
    );
    let (fs, fault) = catch(2, || raw::rdmsr(MSR_FS_BASE));
    c.check(
        "rdmsr(FS_BASE) (emulated) reads it back",
        fault.is_none() && fs == page,
        format_args!("{fs:#x} {fault:x?}"),
    );
    let (_, fault) = catch(2, || raw::wrmsr(MSR_GS_BASE, page + 24));
    let (gs, fault2) = catch(2, || raw::rdmsr(MSR_GS_BASE));
    c.check(
        "wrmsr/rdmsr(GS_BASE) (emulated)",
        fault.is_none()
            && fault2.is_none()
            && gs == page + 24
            && raw::read_gs(0) == 0xf500_0000_0000_0003,
        format_args!("{gs:#x} {fault:x?} {fault2:x?}"),
    );
    let _ = catch(2, || raw::wrmsr(MSR_FS_BASE, 0));
    let _ = catch(2, || raw::wrmsr(MSR_GS_BASE, 0));
    let (efer, fault) = catch(2, || raw::rdmsr(MSR_EFER));
    info(format_args!("rdmsr(EFER) {efer:#x} {fault:x?}"));
    c.check(
        "rdmsr(EFER) (emulated): LME/LMA set",
        fault.is_none() && efer & 0x500 == 0x500,
        format_args!("{efer:#x} {fault:x?}"),
    );
    let (_, fault) = catch(2, || raw::rdmsr(MSR_UNKNOWN));
    c.check(
        "rdmsr of an unknown MSR: #GP(0) delivered to the guest",
        fault.is_some_and(|f| f.vector == 13 && f.error_code == 0),
        format_args!("{fault:x?}"),
    );
    let (_, fault) = catch(2, || raw::wrmsr(MSR_UNKNOWN, 1));
    c.check(
        "wrmsr of an unknown MSR: #GP(0) delivered to the guest",
        fault.is_some_and(|f| f.vector == 13 && f.error_code == 0),
        format_args!("{fault:x?}"),
    );
}

pub fn port_io(c: &mut Checks) {
    let mask = shared::vcpu0().map(|v| v.upcall_mask());
    let _ = set_iopl(0);
    let (_, fault) = catch(2, raw::in_port_0x80);
    c.check(
        "in from port 0x80 with IOPL 0: #GP(0)",
        fault.is_some_and(|f| f.vector == 13 && f.error_code == 0),
        format_args!("{fault:x?}"),
    );
    let (_, cli) = catch(1, raw::cli);
    let (_, sti) = catch(1, raw::sti);
    info(format_args!("IOPL 0: cli {cli:x?}, sti {sti:x?}"));
    c.check(
        "cli and sti with IOPL 0: #GP(0)",
        cli.is_some_and(|f| f.vector == 13) && sti.is_some_and(|f| f.vector == 13),
        format_args!("cli {cli:x?} sti {sti:x?}"),
    );

    c.eq("physdev_op(set_iopl, 3)", set_iopl(3), Ok(0));
    let (value, fault) = catch(2, raw::in_port_0x80);
    info(format_args!(
        "IOPL 3: in port 0x80 -> {value:#x} {fault:x?}"
    ));
    c.check(
        "in from port 0x80 with IOPL 3: emulated, no fault",
        fault.is_none(),
        format_args!("{fault:x?}"),
    );
    let (lsr, fault) = catch(1, || raw::in_port(0x3fd));
    info(format_args!(
        "IOPL 3: in COM1 LSR (0x3fd, Xen's console) -> {lsr:#x} {fault:x?}"
    ));
    c.check(
        "in from COM1 (Xen's own port) with IOPL 3: all ones",
        fault.is_none() && lsr == 0xff,
        format_args!("{lsr:#x} {fault:x?}"),
    );
    let (_, cli) = catch(1, raw::cli);
    let (_, sti) = catch(1, raw::sti);
    let after = shared::vcpu0().map(|v| v.upcall_mask());
    info(format_args!(
        "IOPL 3: cli {cli:x?}, sti {sti:x?}, mask before {mask:?} after {after:?}"
    ));
    c.check(
        "cli and sti with IOPL 3: no fault, evtchn_upcall_mask unchanged",
        cli.is_none() && sti.is_none() && after == mask,
        format_args!("cli {cli:x?} sti {sti:x?} mask {mask:?} -> {after:?}"),
    );
    let _ = set_iopl(0);
}
