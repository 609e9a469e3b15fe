//! Hypercall numbers, the x86-64 PV calling convention, and the hypercall page.
//!
//! # Calling convention (reference §1.2)
//!
//! A guest kernel issues `syscall` with the hypercall number in `rax` and up to five arguments
//! in `rdi`, `rsi`, `rdx`, `r10`, `r8` (in that order; `rcx` is unusable because `syscall`
//! overwrites it, and the fifth argument is `r8`, not `r9`). The result comes back in `rax` as a
//! signed 64-bit value: non-negative on success, `-errno` in `[-4095, -1]` on failure
//! (see [`crate::errno`]). `rcx`/`r11` are destroyed by `syscall`/`sysret`, which is why the
//! hypercall-page stubs save and restore them. The argument registers a call uses may be
//! clobbered; every other register is preserved.
//!
//! # The hypercall page (reference §1.3)
//!
//! The guest names one page of its image with the `HYPERCALL_PAGE` ELF note; the builder fills it
//! with [`render_hypercall_page`] and the guest calls hypercall *N* with
//! `call hypercall_page + N * 32`. The page holds 128 stubs of 32 bytes, so numbers ≥ 128 are
//! unreachable through it.

/// `__HYPERVISOR_set_trap_table`: `(const trap_info_t *traps)` — load the virtual IDT.
pub const HYPERVISOR_SET_TRAP_TABLE: u32 = 0;
/// `__HYPERVISOR_mmu_update`: `(mmu_update_t *reqs, uint count, uint *done, uint foreigndom)`.
pub const HYPERVISOR_MMU_UPDATE: u32 = 1;
/// `__HYPERVISOR_set_gdt`: `(xen_ulong_t *frame_list, uint entries)`.
pub const HYPERVISOR_SET_GDT: u32 = 2;
/// `__HYPERVISOR_stack_switch`: `(ulong ss, ulong rsp)` — record the guest kernel stack.
pub const HYPERVISOR_STACK_SWITCH: u32 = 3;
/// `__HYPERVISOR_set_callbacks`: `(ulong event_addr, ulong failsafe_addr, ulong syscall_addr)`.
pub const HYPERVISOR_SET_CALLBACKS: u32 = 4;
/// `__HYPERVISOR_fpu_taskswitch`: `(int set)` — set or clear the virtual CR0.TS.
pub const HYPERVISOR_FPU_TASKSWITCH: u32 = 5;
/// `__HYPERVISOR_sched_op_compat`: `(int cmd, ulong arg)` — old sched_op, `arg` is a value.
pub const HYPERVISOR_SCHED_OP_COMPAT: u32 = 6;
/// `__HYPERVISOR_platform_op`: `(xen_platform_op_t *op)` — dom0 platform management.
pub const HYPERVISOR_PLATFORM_OP: u32 = 7;
/// `__HYPERVISOR_set_debugreg`: `(int reg, ulong value)`.
pub const HYPERVISOR_SET_DEBUGREG: u32 = 8;
/// `__HYPERVISOR_get_debugreg`: `(int reg)` — returns the register value.
pub const HYPERVISOR_GET_DEBUGREG: u32 = 9;
/// `__HYPERVISOR_update_descriptor`: `(u64 maddr, u64 desc)` — write one GDT/LDT descriptor.
pub const HYPERVISOR_UPDATE_DESCRIPTOR: u32 = 10;
/// `__HYPERVISOR_memory_op`: `(ulong cmd, void *arg)` — see [`crate::memory`].
pub const HYPERVISOR_MEMORY_OP: u32 = 12;
/// `__HYPERVISOR_multicall`: `(multicall_entry_t *calls, uint nr_calls)`.
pub const HYPERVISOR_MULTICALL: u32 = 13;
/// `__HYPERVISOR_update_va_mapping`: `(ulong va, u64 new_pte, ulong flags)`.
pub const HYPERVISOR_UPDATE_VA_MAPPING: u32 = 14;
/// `__HYPERVISOR_set_timer_op`: `(s64 timeout_abs_ns)` — 0 cancels the single-shot timer.
pub const HYPERVISOR_SET_TIMER_OP: u32 = 15;
/// `__HYPERVISOR_event_channel_op_compat`: `(evtchn_op_t *op)` — old event-channel form.
pub const HYPERVISOR_EVENT_CHANNEL_OP_COMPAT: u32 = 16;
/// `__HYPERVISOR_xen_version`: `(int cmd, void *arg)` — see [`crate::version`].
pub const HYPERVISOR_XEN_VERSION: u32 = 17;
/// `__HYPERVISOR_console_io`: `(uint cmd, uint count, char *buf)`.
pub const HYPERVISOR_CONSOLE_IO: u32 = 18;
/// `__HYPERVISOR_physdev_op_compat`: `(physdev_op_t *op)` — old physdev form.
pub const HYPERVISOR_PHYSDEV_OP_COMPAT: u32 = 19;
/// `__HYPERVISOR_grant_table_op`: `(uint cmd, void *uop, uint count)`.
pub const HYPERVISOR_GRANT_TABLE_OP: u32 = 20;
/// `__HYPERVISOR_vm_assist`: `(uint cmd, uint type)`.
pub const HYPERVISOR_VM_ASSIST: u32 = 21;
/// `__HYPERVISOR_update_va_mapping_otherdomain`: `(ulong va, u64 new_pte, ulong flags, domid_t dom)`.
pub const HYPERVISOR_UPDATE_VA_MAPPING_OTHERDOMAIN: u32 = 22;
/// `__HYPERVISOR_iret`: no register arguments; an `iret_context` frame is on the guest stack.
pub const HYPERVISOR_IRET: u32 = 23;
/// `__HYPERVISOR_vcpu_op`: `(int cmd, uint vcpuid, void *arg)`.
pub const HYPERVISOR_VCPU_OP: u32 = 24;
/// `__HYPERVISOR_set_segment_base`: `(uint which, ulong base)`.
pub const HYPERVISOR_SET_SEGMENT_BASE: u32 = 25;
/// `__HYPERVISOR_mmuext_op`: `(mmuext_op_t *ops, uint count, uint *done, uint foreigndom)`.
pub const HYPERVISOR_MMUEXT_OP: u32 = 26;
/// `__HYPERVISOR_xsm_op`: `(void *op)` — security-module operations.
pub const HYPERVISOR_XSM_OP: u32 = 27;
/// `__HYPERVISOR_nmi_op`: `(uint cmd, void *arg)` — old NMI callback registration.
pub const HYPERVISOR_NMI_OP: u32 = 28;
/// `__HYPERVISOR_sched_op`: `(int cmd, void *arg)` — see [`crate::sched`].
pub const HYPERVISOR_SCHED_OP: u32 = 29;
/// `__HYPERVISOR_callback_op`: `(int cmd, const void *arg)` — see [`crate::traps`].
pub const HYPERVISOR_CALLBACK_OP: u32 = 30;
/// `__HYPERVISOR_xenoprof_op`: `(int op, void *arg)` — profiling.
pub const HYPERVISOR_XENOPROF_OP: u32 = 31;
/// `__HYPERVISOR_event_channel_op`: `(int cmd, void *arg)` — see [`crate::evtchn`].
pub const HYPERVISOR_EVENT_CHANNEL_OP: u32 = 32;
/// `__HYPERVISOR_physdev_op`: `(int cmd, void *arg)` — see [`crate::physdev`].
pub const HYPERVISOR_PHYSDEV_OP: u32 = 33;
/// `__HYPERVISOR_hvm_op`: `(ulong op, void *arg)` — HVM parameters.
pub const HYPERVISOR_HVM_OP: u32 = 34;
/// `__HYPERVISOR_sysctl`: `(xen_sysctl_t *op)` — toolstack host control.
pub const HYPERVISOR_SYSCTL: u32 = 35;
/// `__HYPERVISOR_domctl`: `(xen_domctl_t *op)` — toolstack domain control.
pub const HYPERVISOR_DOMCTL: u32 = 36;
/// `__HYPERVISOR_kexec_op`: `(ulong op, void *arg)`.
pub const HYPERVISOR_KEXEC_OP: u32 = 37;
/// `__HYPERVISOR_tmem_op`: removed from Xen; always `-ENOSYS`.
pub const HYPERVISOR_TMEM_OP: u32 = 38;
/// `__HYPERVISOR_argo_op`: `(uint cmd, void *a1, void *a2, ulong a3, ulong a4)`.
pub const HYPERVISOR_ARGO_OP: u32 = 39;
/// `__HYPERVISOR_xenpmu_op`: `(uint op, xen_pmu_params_t *arg)`.
pub const HYPERVISOR_XENPMU_OP: u32 = 40;
/// `__HYPERVISOR_dm_op`: `(domid_t dom, uint nr_bufs, xen_dm_op_buf_t *bufs)`.
pub const HYPERVISOR_DM_OP: u32 = 41;
/// `__HYPERVISOR_hypfs_op`: `(uint cmd, const char *path, ulong len, void *buf, ulong buflen)`.
pub const HYPERVISOR_HYPFS_OP: u32 = 42;
/// `__HYPERVISOR_arch_0`; on x86 this is `mca`: `(xen_mc_t *mc)`.
pub const HYPERVISOR_ARCH_0: u32 = 48;
/// `__HYPERVISOR_arch_1`; on x86 Xen-internal `paging_domctl_cont`: `(xen_domctl_t *)`.
pub const HYPERVISOR_ARCH_1: u32 = 49;
/// `__HYPERVISOR_arch_2`: unallocated on x86.
pub const HYPERVISOR_ARCH_2: u32 = 50;
/// `__HYPERVISOR_arch_3`: unallocated on x86.
pub const HYPERVISOR_ARCH_3: u32 = 51;
/// `__HYPERVISOR_arch_4`: unallocated on x86.
pub const HYPERVISOR_ARCH_4: u32 = 52;
/// `__HYPERVISOR_arch_5`: unallocated on x86.
pub const HYPERVISOR_ARCH_5: u32 = 53;
/// `__HYPERVISOR_arch_6`: unallocated on x86.
pub const HYPERVISOR_ARCH_6: u32 = 54;
/// `__HYPERVISOR_arch_7`: unallocated on x86.
pub const HYPERVISOR_ARCH_7: u32 = 55;
/// `__HYPERVISOR_mca`: x86 name of `arch_0`.
pub const HYPERVISOR_MCA: u32 = HYPERVISOR_ARCH_0;
/// `__HYPERVISOR_paging_domctl_cont`: x86 name of `arch_1` (not a guest ABI).
pub const HYPERVISOR_PAGING_DOMCTL_CONT: u32 = HYPERVISOR_ARCH_1;

/// Number of slots in Xen's 64-bit PV dispatch table (0..=55); anything else is `-ENOSYS`.
pub const NR_HYPERCALLS: u32 = 56;

/// Argument registers, in argument order (reference §1.2). Names only; for documentation and
/// diagnostics.
pub const HYPERCALL_ARG_REGISTERS: [&str; 5] = ["rdi", "rsi", "rdx", "r10", "r8"];

/// Register holding the hypercall number on entry and the result on return.
pub const HYPERCALL_NUMBER_REGISTER: &str = "rax";

/// The value a debug build of Xen writes into used argument registers to show they are clobbered.
pub const HYPERCALL_CLOBBER_PATTERN: u64 = 0xdead_beef_dead_f00d;

code_enum! {
    /// Every allocated hypercall number (decoded from `rax` by the dispatcher).
    ///
    /// Numbers 11 and 43–47 are not allocated and do not decode.
    pub enum Hypercall: u32 ["hypercall"] {
        /// Load the virtual IDT.
        SetTrapTable = HYPERVISOR_SET_TRAP_TABLE => "set_trap_table",
        /// Checked page-table and M2P writes.
        MmuUpdate = HYPERVISOR_MMU_UPDATE => "mmu_update",
        /// Install guest GDT frames.
        SetGdt = HYPERVISOR_SET_GDT => "set_gdt",
        /// Record the guest kernel stack.
        StackSwitch = HYPERVISOR_STACK_SWITCH => "stack_switch",
        /// Register event, failsafe and syscall callbacks (legacy form).
        SetCallbacks = HYPERVISOR_SET_CALLBACKS => "set_callbacks",
        /// Set or clear virtual CR0.TS.
        FpuTaskswitch = HYPERVISOR_FPU_TASKSWITCH => "fpu_taskswitch",
        /// Old scheduler operation with a value argument.
        SchedOpCompat = HYPERVISOR_SCHED_OP_COMPAT => "sched_op_compat",
        /// dom0 platform management.
        PlatformOp = HYPERVISOR_PLATFORM_OP => "platform_op",
        /// Write a debug register.
        SetDebugreg = HYPERVISOR_SET_DEBUGREG => "set_debugreg",
        /// Read a debug register.
        GetDebugreg = HYPERVISOR_GET_DEBUGREG => "get_debugreg",
        /// Write one GDT/LDT descriptor.
        UpdateDescriptor = HYPERVISOR_UPDATE_DESCRIPTOR => "update_descriptor",
        /// Memory reservation and information.
        MemoryOp = HYPERVISOR_MEMORY_OP => "memory_op",
        /// Batch of hypercalls.
        Multicall = HYPERVISOR_MULTICALL => "multicall",
        /// Set one L1 entry by virtual address.
        UpdateVaMapping = HYPERVISOR_UPDATE_VA_MAPPING => "update_va_mapping",
        /// Arm or cancel the single-shot timer.
        SetTimerOp = HYPERVISOR_SET_TIMER_OP => "set_timer_op",
        /// Old event-channel operation form.
        EventChannelOpCompat = HYPERVISOR_EVENT_CHANNEL_OP_COMPAT => "event_channel_op_compat",
        /// Version and feature queries.
        XenVersion = HYPERVISOR_XEN_VERSION => "xen_version",
        /// Hypervisor console I/O.
        ConsoleIo = HYPERVISOR_CONSOLE_IO => "console_io",
        /// Old physdev operation form.
        PhysdevOpCompat = HYPERVISOR_PHYSDEV_OP_COMPAT => "physdev_op_compat",
        /// Grant-table operations.
        GrantTableOp = HYPERVISOR_GRANT_TABLE_OP => "grant_table_op",
        /// Enable or disable a VM assist.
        VmAssist = HYPERVISOR_VM_ASSIST => "vm_assist",
        /// `update_va_mapping` for a frame owned by another domain.
        UpdateVaMappingOtherdomain = HYPERVISOR_UPDATE_VA_MAPPING_OTHERDOMAIN => "update_va_mapping_otherdomain",
        /// Return from a bounce frame.
        Iret = HYPERVISOR_IRET => "iret",
        /// Per-vCPU operations.
        VcpuOp = HYPERVISOR_VCPU_OP => "vcpu_op",
        /// Set FS/GS bases.
        SetSegmentBase = HYPERVISOR_SET_SEGMENT_BASE => "set_segment_base",
        /// Extended MMU operations.
        MmuextOp = HYPERVISOR_MMUEXT_OP => "mmuext_op",
        /// Security-module operations.
        XsmOp = HYPERVISOR_XSM_OP => "xsm_op",
        /// Old NMI callback registration.
        NmiOp = HYPERVISOR_NMI_OP => "nmi_op",
        /// Scheduler operations.
        SchedOp = HYPERVISOR_SCHED_OP => "sched_op",
        /// Callback registration.
        CallbackOp = HYPERVISOR_CALLBACK_OP => "callback_op",
        /// Profiling.
        XenoprofOp = HYPERVISOR_XENOPROF_OP => "xenoprof_op",
        /// Event-channel operations.
        EventChannelOp = HYPERVISOR_EVENT_CHANNEL_OP => "event_channel_op",
        /// Physical-device operations.
        PhysdevOp = HYPERVISOR_PHYSDEV_OP => "physdev_op",
        /// HVM operations.
        HvmOp = HYPERVISOR_HVM_OP => "hvm_op",
        /// Toolstack host control.
        Sysctl = HYPERVISOR_SYSCTL => "sysctl",
        /// Toolstack domain control.
        Domctl = HYPERVISOR_DOMCTL => "domctl",
        /// kexec.
        KexecOp = HYPERVISOR_KEXEC_OP => "kexec_op",
        /// Removed transcendent-memory interface.
        TmemOp = HYPERVISOR_TMEM_OP => "tmem_op",
        /// Argo inter-domain messaging.
        ArgoOp = HYPERVISOR_ARGO_OP => "argo_op",
        /// PMU operations.
        XenpmuOp = HYPERVISOR_XENPMU_OP => "xenpmu_op",
        /// Device-model operations.
        DmOp = HYPERVISOR_DM_OP => "dm_op",
        /// Hypervisor filesystem.
        HypfsOp = HYPERVISOR_HYPFS_OP => "hypfs_op",
        /// Machine-check information (x86 `arch_0`).
        Mca = HYPERVISOR_MCA => "mca",
        /// Xen-internal paging continuation (x86 `arch_1`).
        PagingDomctlCont = HYPERVISOR_PAGING_DOMCTL_CONT => "paging_domctl_cont",
        /// Unallocated architecture slot 2.
        Arch2 = HYPERVISOR_ARCH_2 => "arch_2",
        /// Unallocated architecture slot 3.
        Arch3 = HYPERVISOR_ARCH_3 => "arch_3",
        /// Unallocated architecture slot 4.
        Arch4 = HYPERVISOR_ARCH_4 => "arch_4",
        /// Unallocated architecture slot 5.
        Arch5 = HYPERVISOR_ARCH_5 => "arch_5",
        /// Unallocated architecture slot 6.
        Arch6 = HYPERVISOR_ARCH_6 => "arch_6",
        /// Unallocated architecture slot 7.
        Arch7 = HYPERVISOR_ARCH_7 => "arch_7",
    }
    try_from: [u64, i64];
}

impl Hypercall {
    /// How many argument registers this hypercall reads (its arity in reference §2).
    ///
    /// The dispatcher uses it to know which of `rdi, rsi, rdx, r10, r8` to read (and which it may
    /// clobber). `iret` takes its arguments from the guest stack (0). For `tmem_op` and the
    /// unallocated `arch_2`..`arch_7` the reference gives no argument list; they always fail
    /// with `-ENOSYS`, so 0 is reported.
    #[must_use]
    pub const fn arg_count(self) -> usize {
        match self {
            Self::Iret | Self::TmemOp | Self::Arch2 | Self::Arch3 => 0,
            Self::Arch4 | Self::Arch5 | Self::Arch6 | Self::Arch7 => 0,
            Self::SetTrapTable
            | Self::FpuTaskswitch
            | Self::PlatformOp
            | Self::GetDebugreg
            | Self::SetTimerOp
            | Self::EventChannelOpCompat
            | Self::PhysdevOpCompat
            | Self::XsmOp
            | Self::Sysctl
            | Self::Domctl
            | Self::Mca
            | Self::PagingDomctlCont => 1,
            Self::SetGdt
            | Self::StackSwitch
            | Self::SchedOpCompat
            | Self::SetDebugreg
            | Self::UpdateDescriptor
            | Self::MemoryOp
            | Self::Multicall
            | Self::XenVersion
            | Self::VmAssist
            | Self::SetSegmentBase
            | Self::NmiOp
            | Self::SchedOp
            | Self::CallbackOp
            | Self::XenoprofOp
            | Self::EventChannelOp
            | Self::PhysdevOp
            | Self::HvmOp
            | Self::KexecOp
            | Self::XenpmuOp => 2,
            Self::SetCallbacks
            | Self::UpdateVaMapping
            | Self::ConsoleIo
            | Self::GrantTableOp
            | Self::VcpuOp
            | Self::DmOp => 3,
            Self::MmuUpdate | Self::UpdateVaMappingOtherdomain | Self::MmuextOp => 4,
            Self::ArgoOp | Self::HypfsOp => 5,
        }
    }

    /// Byte offset of this hypercall's stub inside the hypercall page (`number * 32`).
    ///
    /// `None` for numbers the 128-stub page cannot reach (none of the allocated ones today).
    #[must_use]
    pub const fn stub_offset(self) -> Option<usize> {
        let n = self.raw() as usize;
        if n < HYPERCALL_STUB_COUNT {
            Some(n * HYPERCALL_STUB_SIZE)
        } else {
            None
        }
    }
}

/// Size of the hypercall page in bytes.
pub const HYPERCALL_PAGE_SIZE: usize = 4096;
/// Size of one stub in the hypercall page.
pub const HYPERCALL_STUB_SIZE: usize = 32;
/// Number of stubs in the hypercall page (`4096 / 32`).
pub const HYPERCALL_STUB_COUNT: usize = HYPERCALL_PAGE_SIZE / HYPERCALL_STUB_SIZE;
/// Filler byte of the hypercall page: `int3`.
pub const HYPERCALL_PAGE_FILL: u8 = 0xCC;

/// x86 opcode bytes used by the stubs (reference §1.3 tables).
mod opcode {
    pub(super) const PUSH_RCX: u8 = 0x51;
    pub(super) const PUSH_R11: [u8; 2] = [0x41, 0x53];
    pub(super) const PUSH_RAX: u8 = 0x50;
    pub(super) const MOV_EAX_IMM32: u8 = 0xB8;
    pub(super) const SYSCALL: [u8; 2] = [0x0F, 0x05];
    pub(super) const POP_R11: [u8; 2] = [0x41, 0x5B];
    pub(super) const POP_RCX: u8 = 0x59;
    pub(super) const RET: u8 = 0xC3;
}

/// The 32 bytes of stub `index` exactly as reference §1.3 lays them out.
///
/// Ordinary stubs: `push %rcx; push %r11; mov $index,%eax; syscall; pop %r11; pop %rcx; ret`,
/// then `int3` padding. Stub 23 (`iret`) is entered by a jump and never returns:
/// `push %rcx; push %r11; push %rax; mov $23,%eax; syscall`, then `int3` padding.
#[must_use]
pub const fn hypercall_stub(index: u32) -> [u8; HYPERCALL_STUB_SIZE] {
    let mut stub = [HYPERCALL_PAGE_FILL; HYPERCALL_STUB_SIZE];
    let imm = index.to_le_bytes();
    stub[0] = opcode::PUSH_RCX;
    stub[1] = opcode::PUSH_R11[0];
    stub[2] = opcode::PUSH_R11[1];
    if index == HYPERVISOR_IRET {
        stub[3] = opcode::PUSH_RAX;
        stub[4] = opcode::MOV_EAX_IMM32;
        stub[5] = imm[0];
        stub[6] = imm[1];
        stub[7] = imm[2];
        stub[8] = imm[3];
        stub[9] = opcode::SYSCALL[0];
        stub[10] = opcode::SYSCALL[1];
    } else {
        stub[3] = opcode::MOV_EAX_IMM32;
        stub[4] = imm[0];
        stub[5] = imm[1];
        stub[6] = imm[2];
        stub[7] = imm[3];
        stub[8] = opcode::SYSCALL[0];
        stub[9] = opcode::SYSCALL[1];
        stub[10] = opcode::POP_R11[0];
        stub[11] = opcode::POP_R11[1];
        stub[12] = opcode::POP_RCX;
        stub[13] = opcode::RET;
    }
    stub
}

/// Renders the complete hypercall page into `page` (reference §1.3).
///
/// The page is first filled with `int3`, then every one of the 128 stubs is written, including
/// stubs for unallocated numbers (those calls return `-ENOSYS`). The domain builder copies the
/// result to the page named by the guest's `HYPERCALL_PAGE` ELF note.
pub fn render_hypercall_page(page: &mut [u8; HYPERCALL_PAGE_SIZE]) {
    page.fill(HYPERCALL_PAGE_FILL);
    for (index, slot) in (0u32..).zip(page.chunks_exact_mut(HYPERCALL_STUB_SIZE)) {
        slot.copy_from_slice(&hypercall_stub(index));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_decode_and_gaps_do_not() {
        assert_eq!(Hypercall::try_from(0u64), Ok(Hypercall::SetTrapTable));
        assert_eq!(Hypercall::try_from(23u32), Ok(Hypercall::Iret));
        assert_eq!(Hypercall::try_from(48u64), Ok(Hypercall::Mca));
        assert_eq!(Hypercall::try_from(55u64), Ok(Hypercall::Arch7));
        for gap in [11u64, 43, 44, 45, 46, 47, 56, 128, u64::MAX] {
            assert!(Hypercall::try_from(gap).is_err(), "{gap} must not decode");
        }
        assert!(Hypercall::try_from(-1i64).is_err());
        // 56 slots minus the 6 unallocated ones.
        assert_eq!(Hypercall::ALL.len(), 50);
        for h in Hypercall::ALL {
            assert!(h.raw() < NR_HYPERCALLS);
            assert_eq!(Hypercall::from_raw(h.raw()), Some(*h));
        }
    }

    #[test]
    fn arity_matches_reference_table() {
        assert_eq!(Hypercall::MmuUpdate.arg_count(), 4);
        assert_eq!(Hypercall::Iret.arg_count(), 0);
        assert_eq!(Hypercall::SetCallbacks.arg_count(), 3);
        assert_eq!(Hypercall::HypfsOp.arg_count(), 5);
        assert_eq!(Hypercall::SetTimerOp.arg_count(), 1);
        assert!(
            Hypercall::ALL
                .iter()
                .all(|h| h.arg_count() <= HYPERCALL_ARG_REGISTERS.len())
        );
    }

    /// Stub 0 byte for byte, from the first table of reference §1.3.
    const STUB_0: [u8; 32] = [
        0x51, 0x41, 0x53, 0xB8, 0x00, 0x00, 0x00, 0x00, 0x0F, 0x05, 0x41, 0x5B, 0x59, 0xC3, 0xCC,
        0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC,
        0xCC, 0xCC,
    ];
    /// Stub 17 (`xen_version`): same shape, imm32 = 0x11.
    const STUB_17: [u8; 32] = [
        0x51, 0x41, 0x53, 0xB8, 0x11, 0x00, 0x00, 0x00, 0x0F, 0x05, 0x41, 0x5B, 0x59, 0xC3, 0xCC,
        0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC,
        0xCC, 0xCC,
    ];
    /// Stub 23 (`iret`), from the second table of reference §1.3.
    const STUB_23: [u8; 32] = [
        0x51, 0x41, 0x53, 0x50, 0xB8, 0x17, 0x00, 0x00, 0x00, 0x0F, 0x05, 0xCC, 0xCC, 0xCC, 0xCC,
        0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC,
        0xCC, 0xCC,
    ];

    fn rendered() -> [u8; HYPERCALL_PAGE_SIZE] {
        // Start from a poisoned page (XTF's 0xC3) to prove every byte is written.
        let mut page = [0xC3u8; HYPERCALL_PAGE_SIZE];
        render_hypercall_page(&mut page);
        page
    }

    fn stub(page: &[u8; HYPERCALL_PAGE_SIZE], index: usize) -> &[u8] {
        let start = index * HYPERCALL_STUB_SIZE;
        page.get(start..start + HYPERCALL_STUB_SIZE)
            .expect("index < 128, so the stub lies inside the page")
    }

    #[test]
    fn page_stubs_match_reference_bytes() {
        let page = rendered();
        assert_eq!(stub(&page, 0), STUB_0);
        assert_eq!(stub(&page, 17), STUB_17);
        assert_eq!(stub(&page, 23), STUB_23);
    }

    #[test]
    fn every_other_stub_has_standard_shape_and_int3_tail() {
        let page = rendered();
        for index in 0..HYPERCALL_STUB_COUNT {
            let s = stub(&page, index);
            let n = u32::try_from(index).expect("fewer than 2^32 stubs");
            if index == 23 {
                assert!(s[11..].iter().all(|&b| b == 0xCC));
                continue;
            }
            assert_eq!(&s[..4], &[0x51, 0x41, 0x53, 0xB8]);
            assert_eq!(&s[4..8], &n.to_le_bytes());
            assert_eq!(&s[8..14], &[0x0F, 0x05, 0x41, 0x5B, 0x59, 0xC3]);
            assert!(s[14..].iter().all(|&b| b == 0xCC), "stub {index} padding");
        }
        // Byte 0 is no longer the 0xC3 poison XTF checks for.
        assert_eq!(page[0], 0x51);
    }

    #[test]
    fn stub_offsets() {
        assert_eq!(Hypercall::SetTrapTable.stub_offset(), Some(0));
        assert_eq!(Hypercall::Iret.stub_offset(), Some(23 * 32));
        assert_eq!(Hypercall::Arch7.stub_offset(), Some(55 * 32));
    }
}
