//! vCPU operations with ids and arguments Xen refuses.

use guest_support::{Checks, Name, info};
use pv_guest_kit::abi::errno::Errno;
use pv_guest_kit::abi::vcpu::{VCPUOP_INITIALISE, VCPUOP_REGISTER_VCPU_INFO};
use pv_guest_kit::hypercall::vcpu;
use pv_guest_kit::vcpus;

/// `vcpu_op(cmd, id, arg)` with a raw argument.
fn op(cmd: u32, id: u32, arg: u64) -> Result<u64, Errno> {
    // SAFETY: used only where Xen must refuse before it uses the argument (a vCPU the domain
    // does not have, an unknown command) or with an argument that names no memory of ours.
    unsafe { vcpu::vcpu_op(cmd, id, arg) }
}

pub fn hostile(c: &mut Checks, n: u32) {
    for id in [n, 31, 32, 9999, 1 << 31] {
        c.eq(
            Name::of(format_args!("VCPUOP_is_up({id:#x}, none such): -ENOENT")).as_str(),
            vcpus::is_up(id),
            Err(Errno::Enoent),
        );
        c.eq(
            Name::of(format_args!("VCPUOP_up({id:#x}): -ENOENT")).as_str(),
            vcpus::up(id),
            Err(Errno::Enoent),
        );
        c.eq(
            Name::of(format_args!("VCPUOP_down({id:#x}): -ENOENT")).as_str(),
            vcpus::down(id),
            Err(Errno::Enoent),
        );
        c.eq(
            Name::of(format_args!("VCPUOP_initialise({id:#x}): -ENOENT")).as_str(),
            op(VCPUOP_INITIALISE, id, 0),
            Err(Errno::Enoent),
        );
        c.eq(
            Name::of(format_args!("VCPUOP_get_runstate_info({id:#x}): -ENOENT")).as_str(),
            vcpus::runstate(id).map(|r| r.state),
            Err(Errno::Enoent),
        );
    }
    let unknown = op(14, 0, 0);
    info(format_args!(
        "vcpu_op(unknown command 14, vCPU 0): {unknown:?}"
    ));
    c.eq(
        "vcpu_op(unknown command 14, vCPU 0): -ENOSYS",
        unknown,
        Err(Errno::Enosys),
    );
    // A vcpu_info that would cross the end of its page: refused (with -ENXIO, where the
    // public header's comment suggests -EINVAL) before Xen looks at the frame.
    let arg = pv_guest_kit::abi::vcpu::VcpuRegisterVcpuInfo {
        mfn: u64::MAX,
        offset: 4090,
        rsvd: 0,
    };
    let crossing = op(
        VCPUOP_REGISTER_VCPU_INFO,
        1,
        core::ptr::from_ref(&arg) as u64,
    );
    info(format_args!(
        "VCPUOP_register_vcpu_info(offset 4090, crossing the page end): {crossing:?}"
    ));
    c.eq(
        "VCPUOP_register_vcpu_info(offset 4090, crossing the page end): -ENXIO",
        crossing,
        Err(Errno::Enxio),
    );
}
