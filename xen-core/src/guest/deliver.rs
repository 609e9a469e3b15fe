//! What happens when a guest traps into the hypervisor other than by a hypercall: exceptions
//! are emulated (privileged instructions, forced-emulation CPUID, software interrupts) or
//! bounced to the guest kernel's handlers with Xen's frame; `syscall` from guest user mode goes
//! to the kernel's syscall callback. Anything that cannot be delivered crashes the *domain*.

use super::bounce::{self, Delivery};
use super::emulate::{self, IoSize, Op, Port};
use crate::hypercall::sched::{VCPU_INFO_MASK, set_vcpu_info_byte, vcpu_info_byte};
use crate::hypercall::traps::{crash, switch_mode};
use crate::hypercall::{Ctx, canonical};
use crate::types::Paddr;
use hypercall_abi::traps::vector_has_error_code;
use hypercall_abi::vm_assist::VMASST_TYPE_ARCHITECTURAL_IOPL;

/// Offset of `arch.cr2` in `vcpu_info`.
const VCPU_INFO_CR2: u64 = 16;

/// I/O ports the hypervisor drives itself; guests never reach them.
const HYPERVISOR_PORTS: &[(u16, u16)] = &[
    (0x20, 0x21),   // master PIC
    (0xa0, 0xa1),   // slave PIC
    (0x40, 0x43),   // PIT
    (0x61, 0x61),   // PIT gate / speaker
    (0xf4, 0xf7),   // QEMU's isa-debug-exit
    (0x3f8, 0x3ff), // COM1 (the console)
    (0x2f8, 0x2ff), // COM2
    (0xcf9, 0xcf9), // reset control
];

/// Enters the guest kernel's handler for `what`, building the bounce frame on the right
/// stack. Crashes the domain (and returns `false`) if that is impossible.
pub fn bounce(cx: &mut Ctx<'_>, what: Delivery, handler: u64, gate_flags: u8) -> bool {
    if handler == 0 {
        crash(
            cx,
            "an exception or event arrived with no guest handler registered",
        );
        return false;
    }
    let was_user = !cx.v().in_kernel;
    if was_user {
        let i = cx.vcpu.min(cx.dom.vcpus.len().saturating_sub(1));
        if switch_mode(&mut cx.dom.vcpus[i], cx.plat, true).is_err() {
            crash(cx, "no kernel page tables to deliver into");
            return false;
        }
    }
    let stack = if was_user {
        cx.v().kernel_sp
    } else {
        cx.frame.rsp
    };
    let old_mask = vcpu_info_byte(cx, VCPU_INFO_MASK);
    let iopl = if cx.dom.assist(VMASST_TYPE_ARCHITECTURAL_IOPL) {
        cx.v().iopl
    } else {
        0
    };
    let b = match bounce::bounce(cx.frame, what, stack, was_user, old_mask, iopl) {
        Ok(b) => b,
        Err(_) => {
            crash(
                cx,
                "the guest stack for a bounce frame lies in the hypervisor's area",
            );
            return false;
        }
    };
    if cx
        .mem
        .write(b.rsp, crate::arch::pod::u64s_as_bytes(b.words()))
        .is_err()
    {
        crash(
            cx,
            "fault while writing a bounce frame to the guest kernel stack",
        );
        return false;
    }
    let cb = cx.v().callbacks;
    let cb_masks = match what {
        Delivery::Syscall => cb.syscall_masks,
        Delivery::Failsafe(_) => cb.failsafe_masks,
        _ => false,
    };
    if bounce::masks_events(what, gate_flags, cb_masks) {
        set_vcpu_info_byte(cx, VCPU_INFO_MASK, 1);
    }
    bounce::enter_handler(cx.frame, handler, &b);
    true
}

/// Delivers exception `vector` through the guest's virtual IDT.
pub fn deliver_exception(cx: &mut Ctx<'_>, vector: u8, error_code: Option<u32>) -> bool {
    let ti = cx.v().trap_table[usize::from(vector)];
    bounce(
        cx,
        Delivery::Exception { vector, error_code },
        ti.address,
        ti.flags,
    )
}

/// Reads up to 15 instruction bytes at `rip` (fewer if the next page is unmapped).
fn fetch(cx: &mut Ctx<'_>, rip: u64) -> ([u8; emulate::MAX_INSN], usize) {
    let mut buf = [0u8; emulate::MAX_INSN];
    if cx.mem.read(rip, &mut buf).is_ok() {
        return (buf, buf.len());
    }
    let mut n = 0;
    while n < buf.len() {
        let mut b = [0u8];
        if cx.mem.read(rip.wrapping_add(n as u64), &mut b).is_err() {
            break;
        }
        buf[n] = b[0];
        n += 1;
    }
    (buf, n)
}

/// Handles an exception the guest took (`cr2` is the fault address for #PF).
pub fn exception(cx: &mut Ctx<'_>, vector: u8, error: u64, cr2: u64) {
    let err32 = (error & 0xffff_ffff) as u32;
    match vector {
        6 => {
            let (bytes, n) = fetch(cx, cx.frame.rip);
            if hypercall_abi::cpuid::is_forced_cpuid(&bytes[..n]) {
                emulate_cpuid(cx);
                cx.frame.rip = cx
                    .frame
                    .rip
                    .wrapping_add(hypercall_abi::cpuid::XEN_FORCED_CPUID.len() as u64);
            } else {
                deliver_exception(cx, 6, None);
            }
        }
        13 => general_protection(cx, err32),
        14 if super::ldt::guest_fault(cx, cr2, error) => {}
        14 if error & 3 == 3
            && cx.v().in_kernel
            && cx
                .dom
                .assist(hypercall_abi::vm_assist::VMASST_TYPE_WRITABLE_PAGETABLES)
            && emulate_pte_write(cx, cr2) => {}
        14 => page_fault(cx, cr2, error),
        7 => {
            // The guest's virtual CR0.TS was set: it gets #NM, and TS is cleared as it is
            // delivered (as Xen does, saving the guest a `clts`).
            if cx.v().ts {
                cx.v().ts = false;
                cx.plat.set_ts(false);
            }
            deliver_exception(cx, 7, None);
        }
        v => {
            let code = vector_has_error_code(v).then_some(err32);
            deliver_exception(cx, v, code);
        }
    }
}

/// Sets the vCPU's virtual CR2, also in its `vcpu_info` (if it has one).
fn set_cr2(cx: &mut Ctx<'_>, cr2: u64) {
    cx.v().cr2 = cr2;
    let id = cx.v().id;
    let base = cx.dom.vcpu_info_addr(id);
    if base != 0 {
        cx.plat
            .write_machine(Paddr(base + VCPU_INFO_CR2), &cr2.to_le_bytes());
    }
}

/// Delivers a page fault at `cr2` to the guest: the user bit of the error code says whether
/// the guest was in user mode (not the hardware's view), and the virtual CR2 (also in the
/// vCPU's `vcpu_info`) holds the address.
pub fn page_fault(cx: &mut Ctx<'_>, cr2: u64, error: u64) {
    let user = !cx.v().in_kernel;
    let err = ((error & 0xffff_ffff) as u32 & !4) | if user { 4 } else { 0 };
    set_cr2(cx, cr2);
    deliver_exception(cx, 14, Some(err));
}

/// `syscall` from guest user mode (or compatibility mode): to the kernel's callback, or #UD
/// at the `syscall` instruction if none is registered.
pub fn user_syscall(cx: &mut Ctx<'_>, compat: bool) {
    let cb = cx.v().callbacks;
    let handler = if compat { cb.syscall32 } else { cb.syscall };
    if handler == 0 {
        cx.frame.rip = cx.frame.rip.wrapping_sub(2);
        deliver_exception(cx, 6, None);
        return;
    }
    bounce(cx, Delivery::Syscall, handler, 0);
}

fn general_protection(cx: &mut Ctx<'_>, error: u32) {
    let (bytes, n) = fetch(cx, cx.frame.rip);
    let insn = emulate::decode(&bytes[..n]);
    // `int $n` through a gate the guest may not use raises #GP with the vector in the error
    // code; check that the instruction really is `int $n` before believing it.
    if error & 3 == 2 {
        let vector = (error >> 3).to_le_bytes()[0];
        if let Some(i) = insn.filter(|i| i.op == Op::IntN(vector)) {
            let ti = cx.v().trap_table[usize::from(vector)];
            let dpl = ti.flags & 3;
            let allowed = if cx.v().in_kernel { dpl >= 1 } else { dpl == 3 };
            if allowed {
                cx.frame.rip = cx.frame.rip.wrapping_add(i.len as u64);
                bounce(
                    cx,
                    Delivery::SoftwareInterrupt(vector),
                    ti.address,
                    ti.flags,
                );
            } else {
                deliver_exception(cx, 13, Some((u32::from(vector) << 3) | 2));
            }
            return;
        }
    }
    if error == 0
        && let Some(i) = insn
        && emulate_insn(cx, i.op)
    {
        cx.frame.rip = cx.frame.rip.wrapping_add(i.len as u64);
        return;
    }
    deliver_exception(cx, 13, Some(error));
}

fn emulate_cpuid(cx: &mut Ctx<'_>) {
    let (leaf, sub) = (
        (cx.frame.rax & 0xffff_ffff) as u32,
        (cx.frame.rcx & 0xffff_ffff) as u32,
    );
    let input = cx.plat.cpuid_input(cx.dom.hardware);
    let plat = &*cx.plat;
    let r = super::cpuid::guest_cpuid(leaf, sub, &input, &|l, s| plat.host_cpuid(l, s));
    cx.frame.rax = u64::from(r.eax);
    cx.frame.rbx = u64::from(r.ebx);
    cx.frame.rcx = u64::from(r.ecx);
    cx.frame.rdx = u64::from(r.edx);
}

/// Virtual CR0: the host's with the guest's TS.
fn virtual_cr0(cx: &mut Ctx<'_>) -> u64 {
    const TS: u64 = 1 << 3;
    let (cr0, _) = cx.plat.host_cr0_cr4();
    (cr0 & !TS) | if cx.v().ts { TS } else { 0 }
}

/// Virtual CR4: paging and FPU bits as the hypervisor runs them, plus the guest's TSD/DE.
fn virtual_cr4(cx: &mut Ctx<'_>) -> u64 {
    const KEEP: u64 = (1 << 5) | (1 << 7) | (1 << 9) | (1 << 10); // PAE, PGE, OSFXSR, OSXMMEXCPT
    let (_, cr4) = cx.plat.host_cr0_cr4();
    (cr4 & KEEP) | cx.v().cr4_guest
}

/// Emulates one privileged instruction; `false` if it must be forwarded as #GP.
fn emulate_insn(cx: &mut Ctx<'_>, op: Op) -> bool {
    let kernel = cx.v().in_kernel;
    match op {
        Op::Cpuid => {
            emulate_cpuid(cx);
            true
        }
        Op::Cli | Op::Sti => io_allowed(cx),
        Op::In(size, port) | Op::Out(size, port) => {
            if !io_allowed(cx) {
                return false;
            }
            let port = match port {
                Port::Imm(p) => u16::from(p),
                Port::Dx => (cx.frame.rdx & 0xffff) as u16,
            };
            port_io(cx, matches!(op, Op::In(..)), size, port);
            true
        }
        _ if !kernel => false,
        Op::Clts => {
            cx.v().ts = false;
            cx.plat.set_ts(false);
            true
        }
        Op::Wbinvd => true,
        Op::MovFromCr { cr, gpr } => {
            let v = match cr {
                0 => virtual_cr0(cx),
                2 => cx.v().cr2,
                3 => cx.v().current_root().map_or(0, |m| m.paddr().0),
                4 => virtual_cr4(cx),
                _ => return false,
            };
            cx.frame.set_gpr(gpr, v);
            true
        }
        Op::MovToCr { cr, gpr } => {
            let v = cx.frame.gpr(gpr);
            match cr {
                0 => {
                    const TS: u64 = 1 << 3;
                    if (v ^ virtual_cr0(cx)) & !TS != 0 {
                        return false;
                    }
                    cx.v().ts = v & TS != 0;
                    cx.plat.set_ts(v & TS != 0);
                    true
                }
                2 => {
                    set_cr2(cx, v);
                    true
                }
                3 => new_baseptr(cx, v >> 12),
                4 => {
                    // Writes never fault; only TSD (bit 2) and DE (bit 3) are the guest's.
                    cx.v().cr4_guest = v & ((1 << 2) | (1 << 3));
                    true
                }
                _ => false,
            }
        }
        Op::Rdmsr => {
            let idx = (cx.frame.rcx & 0xffff_ffff) as u32;
            match read_msr(cx, idx) {
                Some(v) => {
                    cx.frame.rax = v & 0xffff_ffff;
                    cx.frame.rdx = v >> 32;
                    true
                }
                None => false,
            }
        }
        Op::Wrmsr => {
            let idx = (cx.frame.rcx & 0xffff_ffff) as u32;
            let v = (cx.frame.rdx << 32) | (cx.frame.rax & 0xffff_ffff);
            write_msr(cx, idx, v)
        }
        _ => false,
    }
}

/// `mov %reg, %cr3`: the same as `MMUEXT_NEW_BASEPTR`.
fn new_baseptr(cx: &mut Ctx<'_>, mfn: u64) -> bool {
    crate::hypercall::mm::set_kernel_root(cx, crate::types::Mfn(mfn)).is_ok()
}

/// Whether port I/O is allowed at all: the virtual IOPL (or, with the architectural-IOPL
/// assist, a kernel counting as CPL 0).
fn io_allowed(cx: &mut Ctx<'_>) -> bool {
    let arch_iopl = cx.dom.assist(VMASST_TYPE_ARCHITECTURAL_IOPL);
    let v = cx.v();
    let cpl = if v.in_kernel && arch_iopl {
        0
    } else {
        v.virtual_cpl()
    };
    v.iopl >= cpl
}

/// Emulated port I/O: real hardware for the hardware domain outside the hypervisor's ports;
/// otherwise reads give all ones and writes are dropped.
fn port_io(cx: &mut Ctx<'_>, input: bool, size: IoSize, port: u16) {
    let n = size.bytes();
    let last = port.saturating_add(u16::from(n) - 1);
    let permitted = cx.dom.hardware
        && !HYPERVISOR_PORTS
            .iter()
            .any(|&(a, b)| port <= b && last >= a);
    let mask = match size {
        IoSize::Byte => 0xff,
        IoSize::Word => 0xffff,
        IoSize::Dword => 0xffff_ffff,
    };
    if input {
        let v = if permitted {
            cx.plat.port_in(port, n)
        } else {
            u32::MAX
        };
        let v = u64::from(v) & mask;
        // 8/16-bit inputs replace only the low bits; 32-bit inputs zero-extend.
        cx.frame.rax = match size {
            IoSize::Dword => v,
            _ => (cx.frame.rax & !mask) | v,
        };
    } else if permitted {
        cx.plat.port_out(
            port,
            n,
            u32::try_from(cx.frame.rax & mask).unwrap_or(u32::MAX),
        );
    }
}

/// MSR numbers the emulator knows.
mod msr {
    pub const TSC: u32 = 0x10;
    pub const APIC_BASE: u32 = 0x1b;
    pub const PLATFORM_INFO: u32 = 0xce;
    pub const MISC_FEATURES_ENABLES: u32 = 0x140;
    pub const MISC_ENABLE: u32 = 0x1a0;
    pub const PAT: u32 = 0x277;
    pub const EFER: u32 = 0xc000_0080;
    pub const FS_BASE: u32 = 0xc000_0100;
    pub const GS_BASE: u32 = 0xc000_0101;
    pub const SHADOW_GS_BASE: u32 = 0xc000_0102;
}

fn read_msr(cx: &mut Ctx<'_>, idx: u32) -> Option<u64> {
    let (gs, fs) = cx.plat.seg_bases();
    Some(match idx {
        msr::FS_BASE => fs,
        msr::GS_BASE => gs,
        msr::SHADOW_GS_BASE => cx.v().gs_base_user,
        msr::EFER | msr::PAT => cx.plat.host_msr(idx)?,
        msr::TSC => cx.plat.rdtsc(),
        // Fast strings on; BTS and PEBS unavailable.
        msr::MISC_ENABLE => (1 << 0) | (1 << 11) | (1 << 12),
        msr::APIC_BASE => {
            let bsp = if cx.v().id == 0 { 1 << 8 } else { 0 };
            0xfee0_0000 | (1 << 11) | bsp
        }
        msr::PLATFORM_INFO | msr::MISC_FEATURES_ENABLES => 0,
        _ => return None,
    })
}

fn write_msr(cx: &mut Ctx<'_>, idx: u32, v: u64) -> bool {
    match idx {
        msr::FS_BASE | msr::GS_BASE | msr::SHADOW_GS_BASE if !canonical(v) => false,
        msr::FS_BASE => {
            cx.v().fs_base = v;
            cx.plat.set_fs_base(v);
            true
        }
        msr::GS_BASE => {
            cx.v().gs_base_kernel = v;
            cx.plat.set_active_gs_base(v);
            true
        }
        msr::SHADOW_GS_BASE => {
            cx.v().gs_base_user = v;
            true
        }
        // Writes that change nothing are tolerated.
        msr::EFER | msr::PAT => cx.plat.host_msr(idx) == Some(v),
        msr::MISC_FEATURES_ENABLES => v == 0,
        _ => false,
    }
}

/// Writable page tables: the guest kernel wrote to a read-only mapping of one of its L1 page
/// tables. If the instruction is a plain page-table write and the new entry validates, perform
/// it and step over the instruction; otherwise the #PF goes to the guest and memory is
/// untouched.
fn emulate_pte_write(cx: &mut Ctx<'_>, cr2: u64) -> bool {
    use super::ptwr::{self, WriteKind};
    use crate::mm::frame_table::{Owner, PageType};
    // The entry that maps the faulting address must be a present, read-only mapping of an L1
    // table of this domain.
    let Some((l1, idx)) = crate::hypercall::mm::l1_slot(cx, cr2) else {
        return false;
    };
    let mut e = [0u8; 8];
    if !cx
        .plat
        .read_machine(Paddr(l1.paddr().0 + idx as u64 * 8), &mut e)
    {
        return false;
    }
    let mapping = u64::from_le_bytes(e);
    if mapping & hypercall_abi::mm::_PAGE_PRESENT == 0 || mapping & hypercall_abi::mm::_PAGE_RW != 0
    {
        return false;
    }
    let table = crate::types::Mfn(hypercall_abi::mm::pte_mfn(mapping));
    let dom = cx.dom.id;
    let mut is_l1 = false;
    cx.plat.mm(&mut |t, _| {
        is_l1 = t
            .info(table)
            .is_ok_and(|f| f.owner == Owner::Dom(dom) && f.ty == PageType::L1 && f.type_count > 0);
    });
    if !is_l1 {
        return false;
    }
    let (bytes, n) = fetch(cx, cx.frame.rip);
    let Some(w) = ptwr::decode(&bytes[..n]) else {
        return false;
    };
    let offset = cr2 & 0xfff;
    if !offset.is_multiple_of(u64::from(w.size)) {
        return false;
    }
    let index = usize::try_from(offset / 8).unwrap_or(0);
    let mut old = [0u8; 8];
    if !cx
        .plat
        .read_machine(Paddr(table.paddr().0 + (offset & !7)), &mut old)
    {
        return false;
    }
    let old = u64::from_le_bytes(old);
    let cur = ptwr::part(old, offset, w.size);
    let size_mask = if w.size == 8 { u64::MAX } else { 0xffff_ffff };
    let (value, after): (Option<u64>, Option<(u8, u64)>) = match w.kind {
        WriteKind::Reg(r) => (Some(cx.frame.gpr(r) & size_mask), None),
        WriteKind::Imm(v) => (Some(v & size_mask), None),
        WriteKind::Xchg(r) => (Some(cx.frame.gpr(r) & size_mask), Some((r, cur))),
        WriteKind::Cmpxchg(r) => {
            if cx.frame.rax & size_mask == cur {
                (Some(cx.frame.gpr(r) & size_mask), None)
            } else {
                (None, Some((0, cur)))
            }
        }
    };
    if let Some(v) = value {
        let new = ptwr::merge(old, offset, w.size, v);
        let ctx = crate::hypercall::mm::pt_ctx(cx);
        let mut ok = false;
        cx.plat.mm(&mut |t, e| {
            ok = t
                .update_entry(&mut &mut *e, &ctx, table, index, new, dom)
                .is_ok();
        });
        if !ok {
            return false;
        }
    }
    if let Some((r, v)) = after {
        cx.frame.set_gpr(r, v);
    }
    if let WriteKind::Cmpxchg(_) = w.kind {
        const ZF: u64 = 1 << 6;
        if value.is_some() {
            cx.frame.rflags |= ZF
        } else {
            cx.frame.rflags &= !ZF
        }
    }
    cx.frame.rip = cx.frame.rip.wrapping_add(w.len as u64);
    true
}
