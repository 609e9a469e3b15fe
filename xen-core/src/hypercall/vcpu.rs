//! `vcpu_op` (hypercall 24): per-vCPU operations. The SMP, timer and runstate commands come
//! with the scheduler; until then they answer `-ENOSYS`.

use super::{Ctx, HcResult, lo32};
use hypercall_abi::errno::Errno;
use hypercall_abi::vcpu as hv;

/// `vcpu_op(cmd, vcpuid, arg)`.
pub fn vcpu_op(cx: &mut Ctx<'_>, args: [u64; 5]) -> HcResult {
    let cmd = lo32(args[0]);
    let id = usize::try_from(lo32(args[1])).unwrap_or(usize::MAX);
    let Some(v) = cx.dom.vcpus.get(id) else {
        return Err(Errno::Enoent);
    };
    match cmd {
        hv::VCPUOP_IS_UP => Ok(u64::from(v.online)),
        _ => Err(Errno::Enosys),
    }
}
