//! `vcpu_op` (hypercall 24): bringing vCPUs up and down, their timers, runstate and
//! `vcpu_info` placement (reference §12.3).

use super::{Ctx, HcResult, canonical, lo32, read_guest, write_guest};
use crate::domain::vcpu::{FxArea, MAX_GDT_FRAMES};
use crate::mm::frame_table::{MmError, PageType};
use crate::system::TimerKey;
use crate::types::{Mfn, Paddr, VcpuRef};
use alloc::boxed::Box;
use hypercall_abi::errno::Errno;
use hypercall_abi::traps::TrapInfo;
use hypercall_abi::vcpu::{
    self as hv, VcpuGuestContext, VcpuRegisterRunstateMemoryArea, VcpuRegisterVcpuInfo,
    VcpuSetPeriodicTimer, VcpuSetSingleshotTimer,
};

/// `vcpu_op(cmd, vcpuid, arg)`.
pub fn vcpu_op(cx: &mut Ctx<'_>, args: [u64; 5]) -> HcResult {
    let cmd = lo32(args[0]);
    let id = lo32(args[1]);
    let arg = args[2];
    let Some(idx) = usize::try_from(id).ok().filter(|&i| i < cx.dom.vcpus.len()) else {
        return Err(Errno::Enoent);
    };
    let target = cx.dom.vcpu_ref(id);
    let now = cx.plat.now_ns();
    match cmd {
        hv::VCPUOP_INITIALISE => {
            if cx.dom.vcpus[idx].vcpu_info.0 == 0 {
                return Err(Errno::Einval);
            }
            let mut ctxt: Box<VcpuGuestContext> = Box::default();
            cx.mem
                .read(arg, crate::arch::pod::bytes_of_mut(&mut *ctxt))?;
            if cx.dom.vcpus[idx].initialised {
                return Err(Errno::Eexist);
            }
            initialise(cx, idx, &ctxt)?;
            if ctxt.flags & hv::VGCF_ONLINE != 0 {
                cx.dom.vcpus[idx].online = true;
                let _ = cx.sys.sched.vcpu_up(target, now);
            }
            Ok(0)
        }
        hv::VCPUOP_UP => {
            if !cx.dom.vcpus[idx].initialised {
                return Err(Errno::Einval);
            }
            cx.dom.vcpus[idx].online = true;
            let _ = cx.sys.sched.vcpu_up(target, now);
            Ok(0)
        }
        hv::VCPUOP_DOWN => {
            let others_up = cx.dom.vcpus.iter().any(|v| v.id != id && v.online);
            if !others_up {
                // The last vCPU going down powers the domain off, as in Xen.
                if cx.dom.state == crate::domain::RunState::Running {
                    let code = *cx
                        .dom
                        .shutdown_code
                        .get_or_insert(hypercall_abi::sched::ShutdownReason::Poweroff as u8);
                    cx.dom.state = crate::domain::RunState::Shutdown(code);
                }
                return Ok(0);
            }
            cx.dom.vcpus[idx].online = false;
            let _ = cx.sys.sched.vcpu_down(target, now);
            Ok(0)
        }
        hv::VCPUOP_IS_UP => Ok(u64::from(cx.dom.vcpus[idx].online)),
        hv::VCPUOP_GET_RUNSTATE_INFO => {
            let info = cx.sys.sched.runstate(target, now).unwrap_or_default();
            write_guest(cx.mem, arg, &info)?;
            Ok(0)
        }
        hv::VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA => {
            let a: VcpuRegisterRunstateMemoryArea = read_guest(cx.mem, arg)?;
            cx.dom.vcpus[idx].runstate_area = (a.addr != 0).then_some(a.addr);
            // The caller's own area is filled at once (others when they next change state),
            // with the times as of its last state change, as Xen does.
            if target == cx.me() && a.addr != 0 {
                let info = cx.sys.sched.runstate(target, now).unwrap_or_default();
                let _ = write_guest(cx.mem, a.addr, &as_of_last_change(info, now));
            }
            Ok(0)
        }
        hv::VCPUOP_SET_PERIODIC_TIMER => {
            let a: VcpuSetPeriodicTimer = read_guest(cx.mem, arg)?;
            let period = crate::time::timers::periodic_period(a.period_ns)?;
            set_periodic(cx, idx, target, period, now);
            Ok(0)
        }
        hv::VCPUOP_STOP_PERIODIC_TIMER => {
            set_periodic(cx, idx, target, 0, now);
            Ok(0)
        }
        hv::VCPUOP_SET_SINGLESHOT_TIMER => {
            if target != cx.me() {
                return Err(Errno::Einval);
            }
            let a: VcpuSetSingleshotTimer = read_guest(cx.mem, arg)?;
            let at = crate::time::timers::singleshot_deadline(a.timeout_abs_ns, a.flags, now)?;
            cx.sys.timers.set(TimerKey::Singleshot(target), at);
            Ok(0)
        }
        hv::VCPUOP_STOP_SINGLESHOT_TIMER => {
            if target != cx.me() {
                return Err(Errno::Einval);
            }
            cx.sys.timers.cancel(TimerKey::Singleshot(target));
            Ok(0)
        }
        hv::VCPUOP_REGISTER_VCPU_INFO => {
            let a: VcpuRegisterVcpuInfo = read_guest(cx.mem, arg)?;
            register_vcpu_info(cx, idx, target, a)
        }
        hv::VCPUOP_SEND_NMI => {
            if arg != 0 {
                return Err(Errno::Einval);
            }
            if !cx.dom.vcpus[idx].nmi_pending {
                cx.dom.vcpus[idx].nmi_pending = true;
                cx.sys.wake(target, now);
            }
            Ok(0)
        }
        // Only vCPUs pinned to a physical CPU have a physical id; Oxen pins none.
        hv::VCPUOP_GET_PHYSID => Err(Errno::Einval),
        _ => Err(Errno::Enosys),
    }
}

/// Sets vCPU `idx`'s periodic timer period (0 stops it). It runs while the vCPU runs: for the
/// running vCPU the new period takes effect at once, and (as in Xen) a tick more than a
/// period overdue is sent right away.
fn set_periodic(cx: &mut Ctx<'_>, idx: usize, target: VcpuRef, period: u64, now: u64) {
    cx.dom.vcpus[idx].periodic_period = period;
    let key = TimerKey::Periodic(target);
    if period == 0 {
        cx.sys.timers.cancel(key);
        return;
    }
    if cx.sys.sched.current(cx.plat.cpu()) != Some(target) {
        return;
    }
    let mut last = cx.dom.vcpus[idx].periodic_last;
    if now >= last.saturating_add(period) {
        let (hub, mut wake) = cx.sys.split(now);
        hub.send_virq(
            target,
            hypercall_abi::evtchn::VIRQ_TIMER,
            cx.emem,
            &mut wake,
        );
        last = now;
        cx.dom.vcpus[idx].periodic_last = now;
    }
    cx.sys.timers.set(key, last.saturating_add(period));
}

/// `VCPUOP_register_vcpu_info`: moves vCPU `idx`'s `vcpu_info` into a page of the domain's
/// (held writable by the hypervisor from then on), copying the current contents.
fn register_vcpu_info(
    cx: &mut Ctx<'_>,
    idx: usize,
    target: VcpuRef,
    a: VcpuRegisterVcpuInfo,
) -> HcResult {
    const SIZE: usize = 64;
    // Xen's order: the offset, then a second registration, then "yourself or a vCPU that is
    // down".
    // Inside the page and naturally aligned (Xen's checks since XSA-327).
    if usize::try_from(a.offset).map_or(true, |o| o > 4096 - SIZE || o % 8 != 0) {
        return Err(Errno::Enxio);
    }
    if cx.dom.vcpus[idx].vcpu_info_registered || (target != cx.me() && cx.dom.vcpus[idx].online) {
        return Err(Errno::Einval);
    }
    let mfn = Mfn(a.mfn);
    let dom = cx.dom.id;
    let ctx = super::mm::pt_ctx(cx);
    let mut took = Err(Errno::Einval);
    cx.plat.mm(&mut |t, e| {
        took = t
            .get_page_and_type(&mut &mut *e, &ctx, mfn, dom, PageType::Writable)
            .map_err(|_| Errno::Einval);
    });
    took?;
    let new = Paddr(mfn.paddr().0 + u64::from(a.offset));
    if !cx.sys.events.contains(cx.dom.id) {
        cx.plat
            .mm(&mut |t, e| t.put_page_and_type(&mut &mut *e, mfn));
        return Err(Errno::Einval);
    }
    let old = cx.dom.vcpus[idx].vcpu_info;
    let mut bytes = [0u8; SIZE];
    if old.0 != 0 {
        cx.plat.read_machine(old, &mut bytes);
    } else {
        bytes[1] = 1; // no previous copy: events masked
    }
    cx.plat.write_machine(new, &bytes);
    let v = &mut cx.dom.vcpus[idx];
    v.vcpu_info = new;
    v.vcpu_info_registered = true;
    v.vcpu_info_frame = Some(mfn);
    let now = cx.plat.now_ns();
    let (hub, mut wake) = cx.sys.split(now);
    let _ = hub.set_vcpu_info(target, new, cx.emem, &mut wake);
    cx.plat.update_time_info(new);
    Ok(0)
}

/// Whether `va` may be named as a guest linear address (Xen's `__addr_ok`).
fn addr_ok(va: u64) -> bool {
    crate::guest::ldt::addr_ok(va)
}

/// `VCPUOP_initialise`: gives never-run vCPU `idx` the context `c`, with the checks of Xen's
/// `arch_set_info_guest` for a 64-bit PV guest. On error nothing changes.
fn initialise(cx: &mut Ctx<'_>, idx: usize, c: &VcpuGuestContext) -> Result<(), Errno> {
    let r = &c.user_regs;
    let flags = c.flags;
    let addresses = [
        r.rip,
        r.rsp,
        c.kernel_sp,
        c.fs_base,
        c.gs_base_kernel,
        c.gs_base_user,
        c.event_callback_eip,
        c.syscall_callback_eip,
        c.failsafe_callback_eip,
    ];
    if addresses.iter().any(|&a| !canonical(a))
        || (c.ldt_ents != 0 && !canonical(c.ldt_base))
        || c.trap_ctxt.iter().any(|t| !canonical(t.address))
        || !addr_ok(c.ldt_base)
        || c.ldt_ents > u64::from(crate::guest::ldt::MAX_LDT_ENTRIES)
        // (Xen does not insist on a page-aligned base here, but its LDT shadow, like
        // Oxen's, only works with one, as MMUEXT_SET_LDT demands.)
        || (c.ldt_ents != 0 && c.ldt_base & 0xfff != 0)
        || c.debugreg[..4].iter().any(|&d| !addr_ok(d))
        || c.gdt_ents > hypercall_abi::segments::FIRST_RESERVED_GDT_ENTRY as u64
    {
        return Err(Errno::Einval);
    }
    // A vCPU starting in user mode needs user page tables.
    if flags & hv::VGCF_IN_KERNEL == 0 && c.ctrlreg[1] == 0 {
        return Err(Errno::Einval);
    }
    let kernel_root = Mfn(hv::xen_cr3_to_pfn(c.ctrlreg[3]));
    let user_root = (c.ctrlreg[1] != 0).then(|| Mfn(hv::xen_cr3_to_pfn(c.ctrlreg[1])));
    let nr_gdt = usize::try_from(c.gdt_ents.div_ceil(512)).unwrap_or(usize::MAX);
    if nr_gdt > MAX_GDT_FRAMES {
        return Err(Errno::Einval);
    }
    let gdt: arrayvec::ArrayVec<Mfn, MAX_GDT_FRAMES> =
        c.gdt_frames[..nr_gdt].iter().map(|&f| Mfn(f)).collect();

    // Take every reference, or none.
    let dom = cx.dom.id;
    let ctx = super::mm::pt_ctx(cx);
    let mut taken: Result<(), MmError> = Ok(());
    cx.plat.mm(&mut |t, e| {
        let mut held: arrayvec::ArrayVec<Mfn, { MAX_GDT_FRAMES + 2 }> = arrayvec::ArrayVec::new();
        let wanted = core::iter::once((kernel_root, PageType::L4))
            .chain(user_root.map(|u| (u, PageType::L4)))
            .chain(gdt.iter().map(|&g| (g, PageType::SegDesc)));
        for (m, ty) in wanted {
            if let Err(err) = t.get_page_and_type(&mut &mut *e, &ctx, m, dom, ty) {
                for &h in &held {
                    t.put_page_and_type(&mut &mut *e, h);
                }
                taken = Err(err);
                return;
            }
            let _ = held.try_push(m);
        }
    });
    taken.map_err(|_| Errno::Einval)?;

    let mxcsr_mask = cx.plat.mxcsr_mask();
    let v = &mut cx.dom.vcpus[idx];
    v.frame = crate::guest::frame::Frame {
        r15: r.r15,
        r14: r.r14,
        r13: r.r13,
        r12: r.r12,
        rbp: r.rbp,
        rbx: r.rbx,
        r11: r.r11,
        r10: r.r10,
        r9: r.r9,
        r8: r.r8,
        rax: r.rax,
        rcx: r.rcx,
        rdx: r.rdx,
        rsi: r.rsi,
        rdi: r.rdi,
        vector: 0,
        error_code: 0,
        rip: r.rip,
        cs: u64::from(r.cs | 3),
        // IOPL and VM cleared, interrupts on (the guest's "IF" is its upcall mask).
        rflags: (r.rflags & !((3 << 12) | (1 << 17))) | (1 << 9) | 2,
        rsp: r.rsp,
        ss: u64::from(r.ss | 3),
    };
    v.selectors = [r.ds, r.es, r.fs, r.gs];
    for (slot, t) in v.trap_table.iter_mut().zip(c.trap_ctxt.iter()) {
        *slot = TrapInfo { cs: t.cs | 3, ..*t };
    }
    v.callbacks.event = c.event_callback_eip;
    v.callbacks.failsafe = c.failsafe_callback_eip;
    v.callbacks.failsafe_masks = flags & hv::VGCF_FAILSAFE_DISABLES_EVENTS != 0;
    v.callbacks.syscall = c.syscall_callback_eip;
    v.callbacks.syscall_masks = flags & hv::VGCF_SYSCALL_DISABLES_EVENTS != 0;
    v.kernel_ss = c.kernel_ss | 3;
    v.kernel_sp = c.kernel_sp;
    v.in_kernel = flags & hv::VGCF_IN_KERNEL != 0;
    v.kernel_root = Some(kernel_root);
    v.user_root = user_root;
    v.fs_base = c.fs_base;
    v.gs_base_kernel = c.gs_base_kernel;
    v.gs_base_user = c.gs_base_user;
    v.ldt = crate::guest::ldt::check_set_ldt(c.ldt_base, u32::try_from(c.ldt_ents).unwrap_or(0))
        .unwrap_or((0, 0));
    v.gdt_frames = gdt;
    v.gdt_entries = u32::try_from(c.gdt_ents).unwrap_or(0);
    v.debugreg[..4].copy_from_slice(&c.debugreg[..4]);
    let mut fpu = FxArea::initial();
    if flags & hv::VGCF_I387_VALID != 0 {
        fpu.0.copy_from_slice(&c.fpu_ctxt);
        fpu.sanitise(mxcsr_mask);
    }
    *v.fpu = fpu;
    v.initialised = true;
    Ok(())
}

/// `info` (read at `now`) without the time spent in the current state since it began: what
/// a runstate area holds between state changes.
pub fn as_of_last_change(
    mut info: hypercall_abi::vcpu::VcpuRunstateInfo,
    now: u64,
) -> hypercall_abi::vcpu::VcpuRunstateInfo {
    let since = now.saturating_sub(info.state_entry_time & !(1 << 63));
    if let Some(t) = usize::try_from(info.state)
        .ok()
        .and_then(|s| info.time.get_mut(s))
    {
        *t = t.saturating_sub(since);
    }
    info
}
