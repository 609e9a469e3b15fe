//! The trap and CPU-state hypercalls: `set_trap_table`, `callback_op`, `set_callbacks`,
//! `nmi_op`, `stack_switch`, `fpu_taskswitch`, `set_segment_base`, `vm_assist`,
//! `physdev_op` (set_iopl), and `iret`.

use super::{Ctx, HcResult, Platform, canonical, read_guest};
use crate::domain::RunState;
use crate::domain::vcpu::Vcpu;
use crate::guest::bounce::rflags;
use crate::hypercall::sched::{VCPU_INFO_MASK, set_vcpu_info_byte};
use hypercall_abi::errno::Errno;
use hypercall_abi::traps::{
    self as t, CallbackRegister, CallbackUnregister, IretContext, TrapInfo, XennmiCallback,
};
use hypercall_abi::vcpu::VGCF_IN_SYSCALL;
use hypercall_abi::vm_assist as va;

/// Most entries `set_trap_table` reads before giving up on an unterminated table.
const MAX_TRAP_TABLE_ENTRIES: u64 = 1 << 16;

/// `VMASST_TYPE_*` values a 64-bit PV domain may use.
const VALID_ASSISTS: u64 = (1 << va::VMASST_TYPE_4GB_SEGMENTS)
    | (1 << va::VMASST_TYPE_4GB_SEGMENTS_NOTIFY)
    | (1 << va::VMASST_TYPE_WRITABLE_PAGETABLES)
    | (1 << va::VMASST_TYPE_PAE_EXTENDED_CR3)
    | (1 << va::VMASST_TYPE_ARCHITECTURAL_IOPL)
    | (1 << va::VMASST_TYPE_RUNSTATE_UPDATE_FLAG)
    | (1 << va::VMASST_TYPE_M2P_STRICT);

/// Marks the calling domain crashed, with a reason for the console.
pub fn crash(cx: &mut Ctx<'_>, why: &'static str) {
    if cx.dom.state == RunState::Running {
        cx.dom.state = RunState::Crashed;
        cx.dom.crash_reason = Some(why);
    }
}

/// The mode a vCPU was to switch to has no page tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoPageTables;

/// The guest did something that crashed it (the domain's state says so).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crashed;

/// Switches a vCPU between guest kernel and guest user mode: page-table root, and the two GS
/// bases (the active one lives in the hardware, the other in the vCPU). Fails if the target
/// mode has no page tables.
pub fn switch_mode(
    v: &mut Vcpu,
    plat: &mut dyn Platform,
    to_kernel: bool,
) -> Result<(), NoPageTables> {
    if v.in_kernel == to_kernel {
        return Ok(());
    }
    let root = if to_kernel {
        v.kernel_root
    } else {
        v.user_root
    }
    .ok_or(NoPageTables)?;
    let (active_gs, _) = plat.seg_bases();
    if to_kernel {
        v.gs_base_user = active_gs;
        plat.set_active_gs_base(v.gs_base_kernel);
    } else {
        v.gs_base_kernel = active_gs;
        plat.set_active_gs_base(v.gs_base_user);
    }
    v.in_kernel = to_kernel;
    plat.load_cr3(root.paddr().0, false);
    Ok(())
}

/// `set_trap_table(traps)`: entries until one with address 0; NULL clears the table.
pub fn set_trap_table(cx: &mut Ctx<'_>, args: [u64; 5]) -> HcResult {
    let mut va = args[0];
    if va == 0 {
        *cx.v().trap_table = [TrapInfo::default(); 256];
        return Ok(0);
    }
    for _ in 0..MAX_TRAP_TABLE_ENTRIES {
        let mut ti: TrapInfo = read_guest(cx.mem, va)?;
        if ti.address == 0 {
            return Ok(0);
        }
        if !canonical(ti.address) {
            return Err(Errno::Einval);
        }
        ti.cs |= 3;
        cx.v().trap_table[usize::from(ti.vector)] = ti;
        va = va.checked_add(16).ok_or(Errno::Efault)?;
    }
    Err(Errno::Einval)
}

fn register(cx: &mut Ctx<'_>, ty: u16, flags: u16, address: u64) -> HcResult {
    if !canonical(address) {
        return Err(Errno::Einval);
    }
    let masks = flags & t::CALLBACKF_MASK_EVENTS != 0;
    let cb = &mut cx.v().callbacks;
    match ty {
        t::CALLBACKTYPE_EVENT => cb.event = address,
        t::CALLBACKTYPE_FAILSAFE => {
            cb.failsafe = address;
            cb.failsafe_masks = masks;
        }
        t::CALLBACKTYPE_SYSCALL => {
            cb.syscall = address;
            cb.syscall_masks = masks;
        }
        t::CALLBACKTYPE_SYSCALL32 => cb.syscall32 = address,
        t::CALLBACKTYPE_SYSENTER => cb.sysenter = address,
        t::CALLBACKTYPE_NMI => cb.nmi = address,
        _ => return Err(Errno::Enosys),
    }
    Ok(0)
}

/// `callback_op(cmd, arg)`.
pub fn callback_op(cx: &mut Ctx<'_>, args: [u64; 5]) -> HcResult {
    match super::lo32(args[0]) {
        t::CALLBACKOP_REGISTER => {
            let r: CallbackRegister = read_guest(cx.mem, args[1])?;
            register(cx, r.type_, r.flags, r.address)
        }
        t::CALLBACKOP_UNREGISTER => {
            let u: CallbackUnregister = read_guest(cx.mem, args[1])?;
            match u.type_ {
                t::CALLBACKTYPE_NMI => {
                    cx.v().callbacks.nmi = 0;
                    Ok(0)
                }
                t::CALLBACKTYPE_EVENT
                | t::CALLBACKTYPE_FAILSAFE
                | t::CALLBACKTYPE_SYSCALL
                | t::CALLBACKTYPE_SYSCALL32
                | t::CALLBACKTYPE_SYSENTER => Err(Errno::Einval),
                _ => Err(Errno::Enosys),
            }
        }
        _ => Err(Errno::Enosys),
    }
}

/// `set_callbacks(event, failsafe, syscall)`: the legacy form, flags 0, always succeeds
/// (non-canonical addresses are ignored, as in Xen).
pub fn set_callbacks(cx: &mut Ctx<'_>, args: [u64; 5]) -> HcResult {
    let _ = register(cx, t::CALLBACKTYPE_EVENT, 0, args[0]);
    let _ = register(cx, t::CALLBACKTYPE_FAILSAFE, 0, args[1]);
    let _ = register(cx, t::CALLBACKTYPE_SYSCALL, 0, args[2]);
    Ok(0)
}

/// `nmi_op(cmd, arg)`: the old NMI callback registration.
pub fn nmi_op(cx: &mut Ctx<'_>, args: [u64; 5]) -> HcResult {
    match super::lo32(args[0]) {
        t::XENNMI_REGISTER_CALLBACK => {
            let cb: XennmiCallback = read_guest(cx.mem, args[1])?;
            if cb._pad0 != 0 {
                return Err(Errno::Einval);
            }
            register(cx, t::CALLBACKTYPE_NMI, 0, cb.handler_address)
        }
        t::XENNMI_UNREGISTER_CALLBACK => {
            cx.v().callbacks.nmi = 0;
            Ok(0)
        }
        _ => Err(Errno::Enosys),
    }
}

/// `stack_switch(ss, rsp)`: the kernel stack for bounces from user mode.
pub fn stack_switch(cx: &mut Ctx<'_>, args: [u64; 5]) -> HcResult {
    let v = cx.v();
    v.kernel_ss = args[0] | 3;
    v.kernel_sp = args[1];
    Ok(0)
}

/// `fpu_taskswitch(set)`: the virtual CR0.TS.
pub fn fpu_taskswitch(cx: &mut Ctx<'_>, args: [u64; 5]) -> HcResult {
    let on = args[0] & 0xffff_ffff != 0;
    cx.v().ts = on;
    cx.plat.set_ts(on);
    Ok(0)
}

/// The base of the data segment `sel` names in the vCPU's GDT, if it is a usable one.
fn selector_base(cx: &mut Ctx<'_>, sel: u16) -> Option<u64> {
    if sel & !3 == 0 {
        return Some(0);
    }
    if sel & 4 != 0 {
        // LDT selectors: no LDT support yet.
        return None;
    }
    let index = usize::from(sel >> 3);
    if index >= hypercall_abi::segments::FIRST_RESERVED_GDT_ENTRY {
        // The hypervisor's flat selectors all have base 0.
        return matches!(sel | 3, 0xe02b | 0xe023 | 0xe033).then_some(0);
    }
    let v = cx.v();
    if index >= v.gdt_entries as usize {
        return None;
    }
    let frame = *v.gdt_frames.get(index / 512)?;
    let mut d = [0u8; 8];
    let pa = crate::types::Paddr(frame.paddr().0 + (index % 512) as u64 * 8);
    if !cx.plat.read_machine(pa, &mut d) {
        return None;
    }
    let d = u64::from_le_bytes(d);
    let present = d & (1 << 47) != 0;
    let code_or_data = d & (1 << 44) != 0;
    if !present || !code_or_data {
        return None;
    }
    Some(((d >> 16) & 0xff_ffff) | (((d >> 56) & 0xff) << 24))
}

/// `set_segment_base(which, base)`.
pub fn set_segment_base(cx: &mut Ctx<'_>, args: [u64; 5]) -> HcResult {
    use hypercall_abi::segments::{
        SEGBASE_FS, SEGBASE_GS_KERNEL, SEGBASE_GS_USER, SEGBASE_GS_USER_SEL,
    };
    let base = args[1];
    match super::lo32(args[0]) {
        SEGBASE_FS => {
            if !canonical(base) {
                return Err(Errno::Einval);
            }
            cx.v().fs_base = base;
            cx.plat.set_fs_base(base);
            Ok(0)
        }
        SEGBASE_GS_USER => {
            if !canonical(base) {
                return Err(Errno::Einval);
            }
            cx.v().gs_base_user = base;
            Ok(0)
        }
        SEGBASE_GS_KERNEL => {
            if !canonical(base) {
                return Err(Errno::Einval);
            }
            cx.v().gs_base_kernel = base;
            cx.plat.set_active_gs_base(base);
            Ok(0)
        }
        SEGBASE_GS_USER_SEL => {
            let sel = (base & 0xffff) as u16;
            let sel = if sel & !3 != 0 { sel | 3 } else { sel };
            // A selector that cannot be loaded becomes the null selector (no error).
            let b = selector_base(cx, sel).unwrap_or(0);
            cx.v().gs_base_user = b;
            Ok(0)
        }
        _ => Err(Errno::Einval),
    }
}

/// `vm_assist(cmd, type)`.
pub fn vm_assist(cx: &mut Ctx<'_>, args: [u64; 5]) -> HcResult {
    let cmd = super::lo32(args[0]);
    let ty = args[1];
    if cmd != va::VMASST_CMD_ENABLE && cmd != va::VMASST_CMD_DISABLE {
        return Err(Errno::Enosys);
    }
    if ty >= 64 || VALID_ASSISTS & (1 << ty) == 0 {
        return Err(Errno::Einval);
    }
    if cmd == va::VMASST_CMD_ENABLE {
        cx.dom.vm_assist |= 1 << ty;
    } else {
        cx.dom.vm_assist &= !(1 << ty);
    }
    Ok(0)
}

/// `physdev_op(cmd, arg)`: `PHYSDEVOP_set_iopl`; device operations come with device support.
pub fn physdev_op(cx: &mut Ctx<'_>, args: [u64; 5]) -> HcResult {
    use hypercall_abi::physdev::{PHYSDEVOP_SET_IOPL, PhysdevSetIopl};
    match super::lo32(args[0]) {
        PHYSDEVOP_SET_IOPL => {
            let a: PhysdevSetIopl = read_guest(cx.mem, args[1])?;
            if a.iopl > 3 {
                return Err(Errno::Einval);
            }
            cx.v().iopl = u8::try_from(a.iopl).map_err(|_| Errno::Einval)?;
            Ok(0)
        }
        _ => Err(Errno::Enosys),
    }
}

/// The `iret` hypercall: return from a bounce frame (reference §8.5). A frame that cannot be
/// read, or a return to user mode without user page tables, crashes the domain.
pub fn iret(cx: &mut Ctx<'_>) -> Result<(), Crashed> {
    let ctx: IretContext = match read_guest(cx.mem, cx.frame.rsp) {
        Ok(c) => c,
        Err(_) => {
            crash(cx, "iret: the iret frame on the guest stack cannot be read");
            return Err(Crashed);
        }
    };
    if ctx.cs & 3 == 3 {
        let i = cx.vcpu.min(cx.dom.vcpus.len().saturating_sub(1));
        let (v, plat) = (&mut cx.dom.vcpus[i], &mut *cx.plat);
        if switch_mode(v, plat, false).is_err() {
            crash(cx, "iret: return to user mode without user page tables");
            return Err(Crashed);
        }
    }
    if cx.dom.assist(va::VMASST_TYPE_ARCHITECTURAL_IOPL) {
        cx.v().iopl = ((ctx.rflags & rflags::IOPL) >> 12) as u8;
    }
    let f = &mut *cx.frame;
    f.rip = ctx.rip;
    f.cs = ctx.cs | 3;
    f.rflags = (ctx.rflags & !(rflags::IOPL | rflags::VM)) | rflags::IF;
    f.rsp = ctx.rsp;
    f.ss = ctx.ss | 3;
    if ctx.flags & VGCF_IN_SYSCALL == 0 {
        f.r11 = ctx.r11;
        f.rcx = ctx.rcx;
        // Every register must come back exactly: not through `sysret`.
        f.vector = 0;
    } else {
        // Returning from a system call: the return is a `sysret`, which leaves the return
        // RIP in rcx and the flags in r11 (as on Xen).
        f.rcx = f.rip;
        f.r11 = f.rflags;
    }
    f.rax = ctx.rax;
    let mask = u8::from(ctx.rflags & rflags::IF == 0);
    set_vcpu_info_byte(cx, VCPU_INFO_MASK, mask);
    cx.v().nmi_masked = false;
    Ok(())
}
