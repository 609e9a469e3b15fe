//! A virtual CPU's paravirtual state: everything the hypervisor keeps per vCPU besides its
//! registers (trap table, callbacks, kernel stack, page-table roots, segment bases, virtual
//! IOPL and CR0.TS, GDT frames, ...).
//!
//! Hypercall handlers change this state; the architecture layer applies it to the hardware on
//! the way back to the guest, guided by [`HwDirty`].

use crate::guest::frame::Frame;
use crate::types::Mfn;
use alloc::boxed::Box;
use arrayvec::ArrayVec;
use bitflags::bitflags;
use hypercall_abi::traps::TrapInfo;

/// GDT frames a guest can install (pages 0–13 of the 16-page GDT).
pub const MAX_GDT_FRAMES: usize = 14;

bitflags! {
    /// Parts of a vCPU's state that must be loaded into the hardware before it runs again.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct HwDirty: u32 {
        /// CR3 (page-table root for the current mode).
        const CR3 = 1 << 0;
        /// FS base.
        const FS_BASE = 1 << 1;
        /// GS base and the shadow GS base.
        const GS_BASES = 1 << 2;
        /// The GDT frames.
        const GDT = 1 << 3;
        /// CR0.TS.
        const TS = 1 << 4;
        /// The LDT.
        const LDT = 1 << 5;
        /// Flush the whole TLB, global entries included.
        const FLUSH_ALL = 1 << 6;
        /// Flush the non-global TLB.
        const FLUSH = 1 << 7;
    }
}

/// Callback addresses (reference §8.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Callbacks {
    /// Event upcall entry.
    pub event: u64,
    /// Failsafe entry (segment state could not be restored).
    pub failsafe: u64,
    /// Mask events on failsafe entry.
    pub failsafe_masks: bool,
    /// `syscall` from 64-bit guest user mode.
    pub syscall: u64,
    /// Mask events on syscall entry.
    pub syscall_masks: bool,
    /// `syscall` from 32-bit guest user code.
    pub syscall32: u64,
    /// `sysenter` from 32-bit guest user code.
    pub sysenter: u64,
    /// NMI entry.
    pub nmi: u64,
}

/// A vCPU's guest-visible paravirtual state.
#[derive(Debug)]
pub struct Vcpu {
    /// vCPU number.
    pub id: u32,
    /// Whether the vCPU is up.
    pub online: bool,
    /// Saved registers while the vCPU is not running.
    pub frame: Frame,
    /// The virtual IDT.
    pub trap_table: Box<[TrapInfo; 256]>,
    /// Callbacks.
    pub callbacks: Callbacks,
    /// Kernel stack segment for user→kernel bounces.
    pub kernel_ss: u64,
    /// Kernel stack pointer for user→kernel bounces.
    pub kernel_sp: u64,
    /// Guest kernel mode (as opposed to guest user mode).
    pub in_kernel: bool,
    /// Kernel page-table root (the vCPU holds a general and an L4 type reference).
    pub kernel_root: Option<Mfn>,
    /// User page-table root (same references), if set.
    pub user_root: Option<Mfn>,
    /// FS base (shared by both modes).
    pub fs_base: u64,
    /// GS base in kernel mode.
    pub gs_base_kernel: u64,
    /// GS base in user mode.
    pub gs_base_user: u64,
    /// Virtual I/O privilege level.
    pub iopl: u8,
    /// Virtual CR0.TS.
    pub ts: bool,
    /// Virtual CR2 (last page-fault address delivered).
    pub cr2: u64,
    /// Guest-controlled CR4 bits (TSD, DE).
    pub cr4_guest: u64,
    /// GDT frames (each holds a general and a descriptor-page type reference).
    pub gdt_frames: ArrayVec<Mfn, MAX_GDT_FRAMES>,
    /// GDT entries in use.
    pub gdt_entries: u32,
    /// LDT linear address and entry count.
    pub ldt: (u64, u32),
    /// Guest frames shown in the LDT shadow, by shadow page (each holds a general and a
    /// descriptor-page type reference).
    pub ldt_frames: [Option<Mfn>; crate::guest::ldt::LDT_PAGES],
    /// Debug registers DR0–DR7.
    pub debugreg: [u64; 8],
    /// An NMI is being handled (further NMIs held until the `iret` hypercall).
    pub nmi_masked: bool,
    /// State to load before running again.
    pub dirty: HwDirty,
}

impl Vcpu {
    /// A fresh vCPU: kernel mode, nothing registered, DR6/DR7 at their reset values.
    pub fn new(id: u32) -> Vcpu {
        let mut debugreg = [0; 8];
        debugreg[6] = 0xffff_0ff0;
        debugreg[7] = 0x400;
        Vcpu {
            id,
            online: false,
            frame: Frame::default(),
            trap_table: Box::new([TrapInfo::default(); 256]),
            callbacks: Callbacks::default(),
            kernel_ss: 0,
            kernel_sp: 0,
            in_kernel: true,
            kernel_root: None,
            user_root: None,
            fs_base: 0,
            gs_base_kernel: 0,
            gs_base_user: 0,
            iopl: 0,
            ts: false,
            cr2: 0,
            cr4_guest: 0,
            gdt_frames: ArrayVec::new(),
            gdt_entries: 0,
            ldt: (0, 0),
            ldt_frames: [None; crate::guest::ldt::LDT_PAGES],
            debugreg,
            nmi_masked: false,
            dirty: HwDirty::all() - HwDirty::FLUSH,
        }
    }

    /// The page-table root for the current mode.
    pub fn current_root(&self) -> Option<Mfn> {
        if self.in_kernel {
            self.kernel_root
        } else {
            self.user_root
        }
    }

    /// The GS base active in the current mode.
    pub fn active_gs_base(&self) -> u64 {
        if self.in_kernel {
            self.gs_base_kernel
        } else {
            self.gs_base_user
        }
    }

    /// The GS base held in the shadow register (`swapgs` brings it in) in the current mode.
    pub fn shadow_gs_base(&self) -> u64 {
        if self.in_kernel {
            self.gs_base_user
        } else {
            self.gs_base_kernel
        }
    }

    /// The virtual CPL I/O-privilege checks compare against: kernel 1, user 3.
    pub fn virtual_cpl(&self) -> u8 {
        if self.in_kernel { 1 } else { 3 }
    }

    /// Whether the virtual IOPL allows `in`/`out`/`cli`/`sti` in the current mode.
    pub fn iopl_allows(&self) -> bool {
        self.iopl >= self.virtual_cpl()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_vcpu_defaults() {
        let v = Vcpu::new(0);
        assert!(v.in_kernel);
        assert_eq!(v.debugreg[6], 0xffff_0ff0);
        assert_eq!(v.debugreg[7], 0x400);
        assert!(v.trap_table.iter().all(|t| t.address == 0));
        assert!(!v.iopl_allows());
    }

    #[test]
    fn mode_dependent_views() {
        let mut v = Vcpu::new(1);
        v.gs_base_kernel = 0x1000;
        v.gs_base_user = 0x2000;
        v.kernel_root = Some(Mfn(5));
        v.iopl = 1;
        assert_eq!((v.active_gs_base(), v.shadow_gs_base()), (0x1000, 0x2000));
        assert!(v.iopl_allows());
        v.in_kernel = false;
        assert_eq!((v.active_gs_base(), v.shadow_gs_base()), (0x2000, 0x1000));
        assert_eq!(v.current_root(), None);
        assert!(!v.iopl_allows());
        v.iopl = 3;
        assert!(v.iopl_allows());
    }
}
