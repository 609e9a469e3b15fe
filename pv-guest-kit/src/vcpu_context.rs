//! The first context of a secondary vCPU (`vcpu_guest_context`, reference §12.4), built from
//! what a kit kernel knows: where to start, on which stack, in which address space, with
//! which trap table and callbacks.
//!
//! [`crate::vcpus`] fills a [`SecondaryContext`] with the kit's own entry point, stacks and
//! handlers; a kernel that manages its vCPUs itself can fill one directly and pass
//! [`SecondaryContext::build`]'s result to `VCPUOP_initialise`. What real Xen 4.17 needs,
//! measured (see `docs/porting-guide.md` §10):
//!
//! - `flags` = `VGCF_in_kernel` only. With `VGCF_online` Xen 4.17 clears the vCPU's "down"
//!   flag inside `VCPUOP_initialise` without waking it, and the `VCPUOP_up` that follows does
//!   nothing: the vCPU never runs.
//! - `ctrlreg[3]` = the kernel L4's machine address (what `mov %cr3` reads), `cs`/`ss` the
//!   flat kernel selectors `0xe033`/`0xe02b`, `kernel_ss`/`kernel_sp` the vCPU's stack for
//!   bounces from user mode.
//! - The trap table is per vCPU: entry *v* of `trap_ctxt` is vector *v*'s `trap_info`.
//! - The event, failsafe and syscall callbacks are per vCPU too.
//! - The new vCPU starts with the `evtchn_upcall_mask` its `vcpu_info` holds (1 in a fresh
//!   `shared_info`: events masked).
//! - `vm_assist` is domain-wide and taken from vCPU 0's context only; it is left 0 here.

use hypercall_abi::segments::{FLAT_KERNEL_CS, FLAT_KERNEL_SS};
use hypercall_abi::traps::{TRAP_TABLE_ENTRIES, TrapInfo};
use hypercall_abi::vcpu::{
    CTRLREG_KERNEL_ROOT, VGCF_FAILSAFE_DISABLES_EVENTS, VGCF_IN_KERNEL,
    VGCF_SYSCALL_DISABLES_EVENTS, VcpuGuestContext,
};

/// RFLAGS of a new vCPU: only the always-one bit 1 and IF (Xen forces IF anyway; the event
/// mask is `evtchn_upcall_mask`, not IF).
pub const INITIAL_RFLAGS: u64 = 0x202;

/// What a secondary vCPU starts with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SecondaryContext<'a> {
    /// Where it starts (guest kernel mode).
    pub rip: u64,
    /// Its initial stack pointer. For a Rust `extern "C"` function as `rip`, use a 16-byte
    /// aligned stack top minus 8 (as if a return address had been pushed).
    pub rsp: u64,
    /// Its kernel stack for bounces from guest user mode (`kernel_sp`; `kernel_ss` is the flat
    /// kernel stack selector).
    pub kernel_sp: u64,
    /// `rdi` at entry (the first argument of an `extern "C"` function).
    pub rdi: u64,
    /// `rsi` at entry (the second argument).
    pub rsi: u64,
    /// The kernel page tables: the L4's machine address, as `mov %cr3` reads it.
    pub cr3: u64,
    /// The user page tables (`ctrlreg[1]`), 0 for none.
    pub user_cr3: u64,
    /// The kernel GS base (per-vCPU data).
    pub gs_base_kernel: u64,
    /// The virtual IDT: each entry goes to `trap_ctxt[entry.vector]`.
    pub traps: &'a [TrapInfo],
    /// The event-upcall callback (0: none).
    pub event_callback: u64,
    /// The failsafe callback (0: none).
    pub failsafe_callback: u64,
    /// Whether the failsafe callback masks events (`VGCF_failsafe_disables_events`).
    pub failsafe_masks_events: bool,
    /// The callback for `syscall` from guest user mode (0: none).
    pub syscall_callback: u64,
    /// Whether the syscall callback masks events (`VGCF_syscall_disables_events`).
    pub syscall_masks_events: bool,
}

impl SecondaryContext<'_> {
    /// The `vcpu_guest_context` for `VCPUOP_initialise`.
    pub fn build(&self) -> VcpuGuestContext {
        let mut ctx = VcpuGuestContext {
            flags: VGCF_IN_KERNEL,
            ..VcpuGuestContext::default()
        };
        if self.failsafe_masks_events {
            ctx.flags |= VGCF_FAILSAFE_DISABLES_EVENTS;
        }
        if self.syscall_masks_events {
            ctx.flags |= VGCF_SYSCALL_DISABLES_EVENTS;
        }
        let regs = &mut ctx.user_regs;
        regs.rip = self.rip;
        regs.rsp = self.rsp;
        regs.rdi = self.rdi;
        regs.rsi = self.rsi;
        regs.cs = FLAT_KERNEL_CS;
        regs.ss = FLAT_KERNEL_SS;
        regs.rflags = INITIAL_RFLAGS;
        for entry in self.traps {
            if let Some(slot) = ctx.trap_ctxt.get_mut(usize::from(entry.vector)) {
                *slot = *entry;
            }
        }
        ctx.kernel_ss = u64::from(FLAT_KERNEL_SS);
        ctx.kernel_sp = self.kernel_sp;
        ctx.ctrlreg[CTRLREG_KERNEL_ROOT] = self.cr3;
        ctx.ctrlreg[hypercall_abi::vcpu::CTRLREG_USER_ROOT] = self.user_cr3;
        ctx.event_callback_eip = self.event_callback;
        ctx.failsafe_callback_eip = self.failsafe_callback;
        ctx.syscall_callback_eip = self.syscall_callback;
        ctx.gs_base_kernel = self.gs_base_kernel;
        ctx
    }
}

// trap_ctxt is indexed by vector, so it must have room for every u8.
const _: () = assert!(TRAP_TABLE_ENTRIES == 256);

#[cfg(test)]
mod tests {
    use super::*;
    use hypercall_abi::vcpu::{CTRLREG_USER_ROOT, VGCF_ONLINE};

    #[test]
    fn registers_stack_and_page_tables() {
        let ctx = SecondaryContext {
            rip: 0xffff_ffff_8000_1000,
            rsp: 0xffff_ffff_8010_0000 - 8,
            kernel_sp: 0xffff_ffff_8010_0000,
            rdi: 1,
            rsi: 2,
            cr3: 0x1234_5000,
            gs_base_kernel: 0xffff_ffff_8020_0040,
            ..SecondaryContext::default()
        }
        .build();
        assert_eq!(
            ctx.flags, VGCF_IN_KERNEL,
            "never VGCF_online (Xen 4.17 quirk)"
        );
        assert_eq!(ctx.flags & VGCF_ONLINE, 0);
        assert_eq!(ctx.user_regs.rip, 0xffff_ffff_8000_1000);
        assert_eq!(ctx.user_regs.rsp % 16, 8);
        assert_eq!((ctx.user_regs.rdi, ctx.user_regs.rsi), (1, 2));
        assert_eq!((ctx.user_regs.cs, ctx.user_regs.ss), (0xe033, 0xe02b));
        assert_eq!(ctx.user_regs.rflags, 0x202);
        assert_eq!(
            (ctx.kernel_ss, ctx.kernel_sp),
            (0xe02b, 0xffff_ffff_8010_0000)
        );
        assert_eq!(ctx.ctrlreg[3], 0x1234_5000);
        assert_eq!(ctx.ctrlreg[CTRLREG_USER_ROOT], 0);
        assert_eq!(ctx.gs_base_kernel, 0xffff_ffff_8020_0040);
        assert_eq!(ctx.vm_assist, 0);
        assert!(ctx.trap_ctxt.iter().all(|t| t.address == 0));
    }

    #[test]
    fn traps_go_to_their_vector_and_callbacks_with_flags() {
        let traps = [
            TrapInfo {
                vector: 14,
                flags: 0,
                cs: FLAT_KERNEL_CS,
                _pad0: 0,
                address: 0xffff_ffff_8000_20e0,
            },
            TrapInfo {
                vector: 3,
                flags: 3,
                cs: FLAT_KERNEL_CS,
                _pad0: 0,
                address: 0xffff_ffff_8000_2030,
            },
        ];
        let ctx = SecondaryContext {
            traps: &traps,
            event_callback: 0xaaa0,
            failsafe_callback: 0xbbb0,
            failsafe_masks_events: true,
            syscall_callback: 0xccc0,
            syscall_masks_events: true,
            user_cr3: 0x9000,
            ..SecondaryContext::default()
        }
        .build();
        assert_eq!(ctx.trap_ctxt[14], traps[0]);
        assert_eq!(ctx.trap_ctxt[3], traps[1]);
        assert_eq!(ctx.trap_ctxt[13].address, 0);
        assert_eq!(
            (
                ctx.event_callback_eip,
                ctx.failsafe_callback_eip,
                ctx.syscall_callback_eip
            ),
            (0xaaa0, 0xbbb0, 0xccc0)
        );
        assert_eq!(
            ctx.flags,
            VGCF_IN_KERNEL | VGCF_FAILSAFE_DISABLES_EVENTS | VGCF_SYSCALL_DISABLES_EVENTS
        );
        assert_eq!(ctx.ctrlreg[CTRLREG_USER_ROOT], 0x9000);
    }
}
