//! `vcpu_op` (hypercall 24), `vcpu_runstate_info`, and the full vCPU context
//! (`vcpu_guest_context`, `cpu_user_regs`) (reference §12.3–§12.4).

use crate::traps::{TRAP_TABLE_ENTRIES, TrapInfo};

/// `VCPUOP_initialise`: set the initial context of an offline vCPU (`vcpu_guest_context`).
pub const VCPUOP_INITIALISE: u32 = 0;
/// `VCPUOP_up`: start an initialised vCPU.
pub const VCPUOP_UP: u32 = 1;
/// `VCPUOP_down`: take a vCPU offline.
pub const VCPUOP_DOWN: u32 = 2;
/// `VCPUOP_is_up`: 1 if running, 0 if down.
pub const VCPUOP_IS_UP: u32 = 3;
/// `VCPUOP_get_runstate_info`: copy out `vcpu_runstate_info`.
pub const VCPUOP_GET_RUNSTATE_INFO: u32 = 4;
/// `VCPUOP_register_runstate_memory_area`: keep a guest copy of the runstate updated.
pub const VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA: u32 = 5;
/// `VCPUOP_set_periodic_timer`: set the periodic timer (`vcpu_set_periodic_timer`).
pub const VCPUOP_SET_PERIODIC_TIMER: u32 = 6;
/// `VCPUOP_stop_periodic_timer`: stop the periodic timer.
pub const VCPUOP_STOP_PERIODIC_TIMER: u32 = 7;
/// `VCPUOP_set_singleshot_timer`: arm the single-shot timer (`vcpu_set_singleshot_timer`).
pub const VCPUOP_SET_SINGLESHOT_TIMER: u32 = 8;
/// `VCPUOP_stop_singleshot_timer`: cancel the single-shot timer.
pub const VCPUOP_STOP_SINGLESHOT_TIMER: u32 = 9;
/// `VCPUOP_register_vcpu_info`: move `vcpu_info` (`vcpu_register_vcpu_info`).
pub const VCPUOP_REGISTER_VCPU_INFO: u32 = 10;
/// `VCPUOP_send_nmi`: send a virtual NMI.
pub const VCPUOP_SEND_NMI: u32 = 11;
/// `VCPUOP_get_physid`: physical id (privileged; `vcpu_get_physid`).
pub const VCPUOP_GET_PHYSID: u32 = 12;
/// `VCPUOP_register_vcpu_time_memory_area`: secondary `vcpu_time_info` copy.
pub const VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA: u32 = 13;

code_enum! {
    /// `vcpu_op` commands.
    pub enum VcpuCmd: u32 ["vcpu_op command"] {
        /// Initialise.
        Initialise = VCPUOP_INITIALISE => "VCPUOP_initialise",
        /// Up.
        Up = VCPUOP_UP => "VCPUOP_up",
        /// Down.
        Down = VCPUOP_DOWN => "VCPUOP_down",
        /// Is up.
        IsUp = VCPUOP_IS_UP => "VCPUOP_is_up",
        /// Runstate.
        GetRunstateInfo = VCPUOP_GET_RUNSTATE_INFO => "VCPUOP_get_runstate_info",
        /// Runstate area.
        RegisterRunstateMemoryArea = VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA => "VCPUOP_register_runstate_memory_area",
        /// Periodic timer.
        SetPeriodicTimer = VCPUOP_SET_PERIODIC_TIMER => "VCPUOP_set_periodic_timer",
        /// Stop periodic timer.
        StopPeriodicTimer = VCPUOP_STOP_PERIODIC_TIMER => "VCPUOP_stop_periodic_timer",
        /// Single-shot timer.
        SetSingleshotTimer = VCPUOP_SET_SINGLESHOT_TIMER => "VCPUOP_set_singleshot_timer",
        /// Stop single-shot timer.
        StopSingleshotTimer = VCPUOP_STOP_SINGLESHOT_TIMER => "VCPUOP_stop_singleshot_timer",
        /// Move vcpu_info.
        RegisterVcpuInfo = VCPUOP_REGISTER_VCPU_INFO => "VCPUOP_register_vcpu_info",
        /// Virtual NMI.
        SendNmi = VCPUOP_SEND_NMI => "VCPUOP_send_nmi",
        /// Physical id.
        GetPhysid = VCPUOP_GET_PHYSID => "VCPUOP_get_physid",
        /// Time area.
        RegisterVcpuTimeMemoryArea = VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA => "VCPUOP_register_vcpu_time_memory_area",
    }
    try_from: [u64];
}

/// `RUNSTATE_running`.
pub const RUNSTATE_RUNNING: i32 = 0;
/// `RUNSTATE_runnable`.
pub const RUNSTATE_RUNNABLE: i32 = 1;
/// `RUNSTATE_blocked`.
pub const RUNSTATE_BLOCKED: i32 = 2;
/// `RUNSTATE_offline`.
pub const RUNSTATE_OFFLINE: i32 = 3;
/// `XEN_RUNSTATE_UPDATE`: bit 63 of `state_entry_time`, set while the area is being updated.
pub const XEN_RUNSTATE_UPDATE: u64 = 1 << 63;

code_enum! {
    /// `vcpu_runstate_info.state` values.
    pub enum Runstate: i32 ["runstate"] {
        /// Running.
        Running = RUNSTATE_RUNNING => "RUNSTATE_running",
        /// Runnable, waiting for a CPU.
        Runnable = RUNSTATE_RUNNABLE => "RUNSTATE_runnable",
        /// Blocked.
        Blocked = RUNSTATE_BLOCKED => "RUNSTATE_blocked",
        /// Offline.
        Offline = RUNSTATE_OFFLINE => "RUNSTATE_offline",
    }
    try_from: [i64];
}

/// `vcpu_runstate_info` (48 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuRunstateInfo {
    /// `RUNSTATE_*`.
    pub state: i32,
    /// Padding; zero.
    pub _pad0: u32,
    /// System time of the last state change (bit 63 = update in progress).
    pub state_entry_time: u64,
    /// Cumulative ns spent in each state.
    pub time: [u64; 4],
}

assert_layout!(VcpuRunstateInfo, size = 48, align = 8, {
    state: i32 = 0,
    _pad0: u32 = 4,
    state_entry_time: u64 = 8,
    time: [u64; 4] = 16,
});

/// `vcpu_register_runstate_memory_area` (8 bytes): guest virtual address of the area.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuRegisterRunstateMemoryArea {
    /// Guest virtual address of a `vcpu_runstate_info`.
    pub addr: u64,
}

assert_layout!(VcpuRegisterRunstateMemoryArea, size = 8, align = 8, { addr: u64 = 0 });

/// Smallest period `VCPUOP_set_periodic_timer` accepts (1 ms; less → `-EINVAL`).
pub const VCPU_PERIODIC_TIMER_MIN_NS: u64 = 1_000_000;
/// Default period of a PV vCPU's periodic timer (10 ms).
pub const VCPU_PERIODIC_TIMER_DEFAULT_NS: u64 = 10_000_000;

/// `vcpu_set_periodic_timer` (8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuSetPeriodicTimer {
    /// Period in ns (≥ 1 ms).
    pub period_ns: u64,
}

assert_layout!(VcpuSetPeriodicTimer, size = 8, align = 8, { period_ns: u64 = 0 });

/// `VCPU_SSHOTTMR_future`: fail with `-ETIME` if the deadline already passed.
pub const VCPU_SSHOTTMR_FUTURE: u32 = 1 << 0;

/// `vcpu_set_singleshot_timer` (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuSetSingleshotTimer {
    /// Absolute system-time deadline in ns.
    pub timeout_abs_ns: u64,
    /// `VCPU_SSHOTTMR_*`.
    pub flags: u32,
    /// Padding; zero.
    pub _pad0: u32,
}

assert_layout!(VcpuSetSingleshotTimer, size = 16, align = 8, {
    timeout_abs_ns: u64 = 0,
    flags: u32 = 8,
    _pad0: u32 = 12,
});

/// `vcpu_register_vcpu_info` (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuRegisterVcpuInfo {
    /// Machine frame for the new `vcpu_info`.
    pub mfn: u64,
    /// Byte offset in the frame (the 64 bytes must not cross the page end).
    pub offset: u32,
    /// Reserved; zero.
    pub rsvd: u32,
}

assert_layout!(VcpuRegisterVcpuInfo, size = 16, align = 8, {
    mfn: u64 = 0,
    offset: u32 = 8,
    rsvd: u32 = 12,
});

/// `vcpu_get_physid` (8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuGetPhysid {
    /// OUT: physical APIC/ACPI id.
    pub phys_id: u64,
}

assert_layout!(VcpuGetPhysid, size = 8, align = 8, { phys_id: u64 = 0 });

/// `vcpu_register_time_memory_area` (8 bytes): guest virtual address of a `vcpu_time_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuRegisterTimeMemoryArea {
    /// Guest virtual address.
    pub addr: u64,
}

assert_layout!(VcpuRegisterTimeMemoryArea, size = 8, align = 8, { addr: u64 = 0 });

// ---------------------------------------------------------------------------------------------
// vcpu_guest_context (reference §12.4)

/// `VGCF_i387_valid`: `fpu_ctxt` holds a valid FXSAVE image.
pub const VGCF_I387_VALID: u64 = 1 << 0;
/// `VGCF_in_kernel`: the vCPU is in guest kernel mode.
pub const VGCF_IN_KERNEL: u64 = 1 << 2;
/// `VGCF_failsafe_disables_events`: mask events on failsafe entry.
pub const VGCF_FAILSAFE_DISABLES_EVENTS: u64 = 1 << 3;
/// `VGCF_syscall_disables_events`: mask events on syscall entry.
pub const VGCF_SYSCALL_DISABLES_EVENTS: u64 = 1 << 4;
/// `VGCF_online`: the vCPU is online.
pub const VGCF_ONLINE: u64 = 1 << 5;
/// `VGCF_in_syscall`: `iret` frame flag — return via `sysret`, discarding `rcx`/`r11`.
pub const VGCF_IN_SYSCALL: u64 = 1 << 8;

bitflags::bitflags! {
    /// `VGCF_*` as a typed set.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct VgcfFlags: u64 {
        /// FPU image valid.
        const I387_VALID = VGCF_I387_VALID;
        /// Kernel mode.
        const IN_KERNEL = VGCF_IN_KERNEL;
        /// Failsafe masks events.
        const FAILSAFE_DISABLES_EVENTS = VGCF_FAILSAFE_DISABLES_EVENTS;
        /// Syscall masks events.
        const SYSCALL_DISABLES_EVENTS = VGCF_SYSCALL_DISABLES_EVENTS;
        /// Online.
        const ONLINE = VGCF_ONLINE;
        /// iret: came from syscall.
        const IN_SYSCALL = VGCF_IN_SYSCALL;
    }
}

/// `cpu_user_regs` for x86-64 (200 bytes; reference §12.4). Selector fields are 16 bits wide
/// followed by explicit padding to 8 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuUserRegs {
    /// r15.
    pub r15: u64,
    /// r14.
    pub r14: u64,
    /// r13.
    pub r13: u64,
    /// r12.
    pub r12: u64,
    /// rbp.
    pub rbp: u64,
    /// rbx.
    pub rbx: u64,
    /// r11.
    pub r11: u64,
    /// r10.
    pub r10: u64,
    /// r9.
    pub r9: u64,
    /// r8.
    pub r8: u64,
    /// rax.
    pub rax: u64,
    /// rcx.
    pub rcx: u64,
    /// rdx.
    pub rdx: u64,
    /// rsi.
    pub rsi: u64,
    /// rdi.
    pub rdi: u64,
    /// Error code (hypervisor-private).
    pub error_code: u32,
    /// Entry vector (hypervisor-private).
    pub entry_vector: u32,
    /// rip.
    pub rip: u64,
    /// cs.
    pub cs: u16,
    /// Padding; zero.
    pub _pad0: u16,
    /// Upcall mask saved by the hypervisor.
    pub saved_upcall_mask: u8,
    /// Padding; zero.
    pub _pad1: [u8; 3],
    /// rflags.
    pub rflags: u64,
    /// rsp.
    pub rsp: u64,
    /// ss.
    pub ss: u16,
    /// Padding; zero.
    pub _pad2: [u16; 3],
    /// es.
    pub es: u16,
    /// Padding; zero.
    pub _pad3: [u16; 3],
    /// ds.
    pub ds: u16,
    /// Padding; zero.
    pub _pad4: [u16; 3],
    /// fs.
    pub fs: u16,
    /// Padding; zero.
    pub _pad5: [u16; 3],
    /// gs.
    pub gs: u16,
    /// Padding; zero.
    pub _pad6: [u16; 3],
}

// Register offsets from reference §12.4; the `_pad*` offsets between them are derived, not
// measured (they fill the gaps the measured register offsets leave).
assert_layout!(CpuUserRegs, size = 200, align = 8, {
    r15: u64 = 0,
    r14: u64 = 8,
    r13: u64 = 16,
    r12: u64 = 24,
    rbp: u64 = 32,
    rbx: u64 = 40,
    r11: u64 = 48,
    r10: u64 = 56,
    r9: u64 = 64,
    r8: u64 = 72,
    rax: u64 = 80,
    rcx: u64 = 88,
    rdx: u64 = 96,
    rsi: u64 = 104,
    rdi: u64 = 112,
    error_code: u32 = 120,
    entry_vector: u32 = 124,
    rip: u64 = 128,
    cs: u16 = 136,
    _pad0: u16 = 138,
    saved_upcall_mask: u8 = 140,
    _pad1: [u8; 3] = 141,
    rflags: u64 = 144,
    rsp: u64 = 152,
    ss: u16 = 160,
    _pad2: [u16; 3] = 162,
    es: u16 = 168,
    _pad3: [u16; 3] = 170,
    ds: u16 = 176,
    _pad4: [u16; 3] = 178,
    fs: u16 = 184,
    _pad5: [u16; 3] = 186,
    gs: u16 = 192,
    _pad6: [u16; 3] = 194,
});

/// Size of the FXSAVE image in `vcpu_guest_context`.
pub const FPU_CTXT_SIZE: usize = 512;
/// Number of GDT frame slots in `vcpu_guest_context`.
pub const VGC_GDT_FRAMES: usize = 16;

/// `vcpu_guest_context` for x86-64 (5168 bytes; reference §12.4).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuGuestContext {
    /// FXSAVE image (valid with `VGCF_i387_valid`).
    pub fpu_ctxt: [u8; FPU_CTXT_SIZE],
    /// `VGCF_*`.
    pub flags: u64,
    /// General registers.
    pub user_regs: CpuUserRegs,
    /// Virtual IDT.
    pub trap_ctxt: [TrapInfo; TRAP_TABLE_ENTRIES],
    /// LDT linear address.
    pub ldt_base: u64,
    /// LDT entries.
    pub ldt_ents: u64,
    /// GDT MFNs.
    pub gdt_frames: [u64; VGC_GDT_FRAMES],
    /// GDT entries.
    pub gdt_ents: u64,
    /// Kernel stack segment.
    pub kernel_ss: u64,
    /// Kernel stack pointer.
    pub kernel_sp: u64,
    /// CR0–CR7: `ctrlreg[3]` = kernel L4 as `MFN << 12`, `ctrlreg[1]` = user L4 (0 = none).
    pub ctrlreg: [u64; 8],
    /// DR0–DR7.
    pub debugreg: [u64; 8],
    /// Event callback address.
    pub event_callback_eip: u64,
    /// Failsafe callback address.
    pub failsafe_callback_eip: u64,
    /// Syscall callback address.
    pub syscall_callback_eip: u64,
    /// `VMASST_TYPE_*` bitmap (domain-wide).
    pub vm_assist: u64,
    /// FS base.
    pub fs_base: u64,
    /// Kernel GS base.
    pub gs_base_kernel: u64,
    /// User GS base.
    pub gs_base_user: u64,
}

impl Default for VcpuGuestContext {
    fn default() -> Self {
        Self {
            fpu_ctxt: [0; FPU_CTXT_SIZE],
            flags: 0,
            user_regs: CpuUserRegs::default(),
            trap_ctxt: [TrapInfo::default(); TRAP_TABLE_ENTRIES],
            ldt_base: 0,
            ldt_ents: 0,
            gdt_frames: [0; VGC_GDT_FRAMES],
            gdt_ents: 0,
            kernel_ss: 0,
            kernel_sp: 0,
            ctrlreg: [0; 8],
            debugreg: [0; 8],
            event_callback_eip: 0,
            failsafe_callback_eip: 0,
            syscall_callback_eip: 0,
            vm_assist: 0,
            fs_base: 0,
            gs_base_kernel: 0,
            gs_base_user: 0,
        }
    }
}

assert_layout!(VcpuGuestContext, size = 5168, align = 8, {
    fpu_ctxt: [u8; 512] = 0,
    flags: u64 = 512,
    user_regs: CpuUserRegs = 520,
    trap_ctxt: [TrapInfo; 256] = 720,
    ldt_base: u64 = 4816,
    ldt_ents: u64 = 4824,
    gdt_frames: [u64; 16] = 4832,
    gdt_ents: u64 = 4960,
    kernel_ss: u64 = 4968,
    kernel_sp: u64 = 4976,
    ctrlreg: [u64; 8] = 4984,
    debugreg: [u64; 8] = 5048,
    event_callback_eip: u64 = 5112,
    failsafe_callback_eip: u64 = 5120,
    syscall_callback_eip: u64 = 5128,
    vm_assist: u64 = 5136,
    fs_base: u64 = 5144,
    gs_base_kernel: u64 = 5152,
    gs_base_user: u64 = 5160,
});

const _: () = {
    use core::mem::offset_of;
    // "add 520 inside vcpu_guest_context" (reference §12.4).
    assert!(offset_of!(VcpuGuestContext, user_regs.rip) == 520 + 128);
    assert!(offset_of!(VcpuGuestContext, user_regs.gs) == 520 + 192);
};

/// `xen_pfn_to_cr3`: CR3 value for an L4 at `mfn` (x86-64: `mfn << 12`).
#[must_use]
pub const fn xen_pfn_to_cr3(mfn: u64) -> u64 {
    mfn << crate::PAGE_SHIFT
}

/// `xen_cr3_to_pfn`: L4 MFN of a CR3 value (x86-64: `cr3 >> 12`).
#[must_use]
pub const fn xen_cr3_to_pfn(cr3: u64) -> u64 {
    cr3 >> crate::PAGE_SHIFT
}

/// Index of the kernel page-table root in [`VcpuGuestContext::ctrlreg`].
pub const CTRLREG_KERNEL_ROOT: usize = 3;
/// Index of the user page-table root in [`VcpuGuestContext::ctrlreg`].
pub const CTRLREG_USER_ROOT: usize = 1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(VcpuCmd::try_from(10u64), Ok(VcpuCmd::RegisterVcpuInfo));
        assert!(VcpuCmd::try_from(14u32).is_err());
        assert_eq!(Runstate::try_from(3i32), Ok(Runstate::Offline));
        assert!(Runstate::try_from(-1i64).is_err());
    }

    #[test]
    fn cr3_helpers_and_flags() {
        assert_eq!(xen_pfn_to_cr3(0x1234), 0x123_4000);
        assert_eq!(xen_cr3_to_pfn(0x123_4000), 0x1234);
        let f = VgcfFlags::IN_KERNEL | VgcfFlags::ONLINE;
        assert_eq!(f.bits(), 0x24);
        assert_eq!(VGCF_IN_SYSCALL, 0x100);
    }
}
