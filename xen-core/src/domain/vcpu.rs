//! A virtual CPU's paravirtual state: everything the hypervisor keeps per vCPU besides its
//! registers (trap table, callbacks, kernel stack, page-table roots, segment bases, virtual
//! IOPL and CR0.TS, GDT frames, ...).
//!
//! Hypercall handlers change this state and load what the hardware holds at once (CR3, segment
//! bases, CR0.TS, GDT frames); a context switch saves and reloads it (see the runtime).

use crate::guest::frame::Frame;
use crate::types::Mfn;
use alloc::boxed::Box;
use arrayvec::ArrayVec;
use hypercall_abi::traps::TrapInfo;

/// GDT frames a guest can install (pages 0–13 of the 16-page GDT).
pub const MAX_GDT_FRAMES: usize = 14;
/// A PV vCPU's periodic timer period until the guest changes it (10 ms, as in Xen).
pub const DEFAULT_PERIODIC_NS: u64 = 10_000_000;

/// An FXSAVE image: the x87 and SSE state (what `vcpu_guest_context.fpu_ctxt` holds).
#[repr(C, align(16))]
#[derive(Clone, PartialEq, Eq)]
pub struct FxArea(pub [u8; 512]);

/// Offset of the x87 control word in an FXSAVE image.
const FX_FCW: usize = 0;
/// Offset of MXCSR.
const FX_MXCSR: usize = 24;
/// Offset of MXCSR_MASK.
const FX_MXCSR_MASK: usize = 28;

impl FxArea {
    /// All zeros.
    pub const fn zeroed() -> FxArea {
        FxArea([0; 512])
    }

    /// The state a fresh vCPU starts with: x87 after `fninit` (control word 0x37f, all
    /// registers empty) and SSE with MXCSR 0x1f80 (all exceptions masked).
    pub fn initial() -> FxArea {
        let mut a = FxArea::zeroed();
        a.0[FX_FCW..FX_FCW + 2].copy_from_slice(&0x037f_u16.to_le_bytes());
        a.set_mxcsr(0x1f80);
        a
    }

    /// MXCSR.
    pub fn mxcsr(&self) -> u32 {
        read_u32(&self.0, FX_MXCSR)
    }

    /// Sets MXCSR.
    pub fn set_mxcsr(&mut self, v: u32) {
        self.0[FX_MXCSR..FX_MXCSR + 4].copy_from_slice(&v.to_le_bytes());
    }

    /// MXCSR_MASK as the CPU stored it (0: the CPU did not report one).
    pub fn mxcsr_mask(&self) -> u32 {
        read_u32(&self.0, FX_MXCSR_MASK)
    }

    /// Makes a guest-supplied image safe to load on a CPU supporting the MXCSR bits `mask`:
    /// unsupported bits (which would make `fxrstor` fault) are cleared.
    pub fn sanitise(&mut self, mask: u32) {
        let m = self.mxcsr() & mask;
        self.set_mxcsr(m);
    }
}

impl core::fmt::Debug for FxArea {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "FxArea {{ mxcsr: {:#x}, .. }}", self.mxcsr())
    }
}

/// The little-endian u32 at `at` in `b` (0 if out of range).
fn read_u32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map_or(0, u32::from_le_bytes)
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
    /// The x87/SSE state while the vCPU is not running.
    pub fpu: Box<FxArea>,
    /// The data selectors `[ds, es, fs, gs]` while the vCPU is not running.
    pub selectors: [u16; 4],
    /// Machine address of this vCPU's `vcpu_info` (its shared_info slot, or where
    /// `VCPUOP_register_vcpu_info` moved it).
    pub vcpu_info: crate::types::Paddr,
    /// `VCPUOP_register_vcpu_info` was used (it may be used once).
    pub vcpu_info_registered: bool,
    /// The vCPU has a context (it was built, or `VCPUOP_initialise` gave it one).
    pub initialised: bool,
    /// Guest virtual address of the area `VCPUOP_register_runstate_memory_area` registered.
    pub runstate_area: Option<u64>,
    /// Period of the periodic timer in ns (0: stopped).
    pub periodic_period: u64,
    /// When the periodic timer last fired (system time).
    pub periodic_last: u64,
    /// The frame `VCPUOP_register_vcpu_info` put `vcpu_info` in (a general and a writable type
    /// reference held).
    pub vcpu_info_frame: Option<Mfn>,
    /// A virtual NMI is waiting (`VCPUOP_send_nmi`).
    pub nmi_pending: bool,
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
            fpu: Box::new(FxArea::initial()),
            selectors: [0; 4],
            vcpu_info: crate::types::Paddr(0),
            vcpu_info_registered: false,
            initialised: false,
            runstate_area: None,
            periodic_period: DEFAULT_PERIODIC_NS,
            periodic_last: 0,
            vcpu_info_frame: None,
            nmi_pending: false,
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

    #[test]
    fn fx_area_initial_and_sanitise() {
        let mut a = FxArea::initial();
        assert_eq!(a.mxcsr(), 0x1f80);
        assert_eq!(u16::from_le_bytes([a.0[0], a.0[1]]), 0x037f);
        a.set_mxcsr(0xffff_ffff);
        a.sanitise(0xffbf);
        assert_eq!(a.mxcsr(), 0xffbf);
        assert_eq!(a.mxcsr_mask(), 0);
        assert_eq!(core::mem::align_of::<FxArea>(), 16);
    }
}
