//! Hypercalls: the dispatcher and one module per family.
//!
//! A hypercall arrives as `syscall` from guest kernel mode with the number in `rax` and the
//! arguments in `rdi, rsi, rdx, r10, r8`. Handlers are plain Rust over the calling domain's
//! state, guest memory ([`GuestMemory`], which checks every access) and the few machine
//! services they need ([`Platform`]), so they are host-testable. Errors are typed and become
//! Xen's negative errno values only here, at the boundary. Unknown numbers and sub-ops return
//! `-ENOSYS`.

pub mod console;
pub mod evtchn;
pub mod memory;
pub mod mm;
pub mod sched;
pub mod traps;
pub mod vcpu;
pub mod version;

use crate::arch::pod::{self, Pod};
use crate::domain::Domain;
use crate::guest::frame::Frame;
use crate::mm::frame_table::FrameTable;
use crate::mm::pagetable::MmEnv;
use crate::types::{Mfn, Paddr};
use hypercall_abi::errno::Errno;
use hypercall_abi::hypercall::Hypercall;

/// A hypercall's result: a value for `rax`, or an errno.
pub type HcResult = Result<u64, Errno>;

/// Access to the calling vCPU's guest virtual memory (its current page tables). Every access
/// is checked; a bad address is `-EFAULT`, never a hypervisor fault.
pub trait GuestMemory {
    /// Copies guest memory at `va` into `buf`.
    fn read(&mut self, va: u64, buf: &mut [u8]) -> Result<(), Errno>;
    /// Copies `buf` to guest memory at `va` (read-only guest mappings fail).
    fn write(&mut self, va: u64, buf: &[u8]) -> Result<(), Errno>;
}

/// Reads a `T` from guest memory at `va`.
pub fn read_guest<T: Pod>(mem: &mut dyn GuestMemory, va: u64) -> Result<T, Errno> {
    let mut v: T = pod::zeroed();
    mem.read(va, pod::bytes_of_mut(&mut v))?;
    Ok(v)
}

/// Writes `v` to guest memory at `va`.
pub fn write_guest<T: Pod>(mem: &mut dyn GuestMemory, va: u64, v: &T) -> Result<(), Errno> {
    mem.write(va, pod::bytes_of(v))
}

/// Machine services the handlers need.
pub trait Platform {
    /// Writes bytes to the hypervisor console.
    fn console_write(&mut self, bytes: &[u8]);
    /// The hypervisor's command line.
    fn hypervisor_cmdline(&self) -> &str;
    /// Runs `f` with the frame table and machine memory.
    fn mm(&mut self, f: &mut dyn FnMut(&mut FrameTable<'_>, &mut dyn MmEnv));
    /// Reads machine memory (RAM only).
    fn read_machine(&mut self, pa: Paddr, buf: &mut [u8]) -> bool;
    /// Writes machine memory (RAM only; the caller checked the frame may be written).
    fn write_machine(&mut self, pa: Paddr, buf: &[u8]) -> bool;
    /// Sets `m2p[mfn] = pfn`.
    fn set_m2p(&mut self, mfn: Mfn, pfn: u64);
    /// One past the highest machine frame.
    fn max_mfn(&self) -> u64;
    /// The M2P's 2 MiB chunks.
    fn m2p_chunks(&self) -> alloc::vec::Vec<Mfn>;
    /// The hypervisor's L4 slots 256–271 for guest L4s.
    fn xen_l4(&self) -> [u64; 16];
    /// One past the highest machine frame a domain with I/O rights may map.
    fn io_limit(&self) -> u64;
    /// Loads a page-table root (machine address), flushing global entries if asked.
    fn load_cr3(&mut self, cr3: u64, flush_global: bool);
    /// Flushes this CPU's TLB (`global`: global entries too).
    fn flush_tlb(&mut self, global: bool);
    /// Invalidates one page.
    fn invlpg(&mut self, va: u64);
    /// Shows GDT frames in this CPU's GDT.
    fn load_gdt(&mut self, frames: &[Mfn]);
    /// Where this CPU's LDT shadow starts.
    fn ldt_area(&self) -> u64;
    /// Shows `mfn` as page `page` of this CPU's LDT shadow (`None`: not present).
    fn map_ldt_page(&mut self, page: usize, mfn: Option<Mfn>);
    /// Loads an LDT of `entries` descriptors based at the shadow (0: no LDT).
    fn load_ldt(&mut self, entries: u32);
    /// The guest's active GS base and FS base as the hardware holds them.
    fn seg_bases(&self) -> (u64, u64);
    /// Sets the guest's active GS base.
    fn set_active_gs_base(&mut self, v: u64);
    /// Sets the guest's FS base.
    fn set_fs_base(&mut self, v: u64);
    /// Sets CR0.TS.
    fn set_ts(&mut self, on: bool);
    /// Executes `cpuid` on the host.
    fn host_cpuid(&self, leaf: u32, subleaf: u32) -> crate::cpuinfo::CpuidResult;
    /// The CPUID policy's platform facts.
    fn cpuid_input(&self, hardware_domain: bool) -> crate::guest::cpuid::PolicyInput;
    /// Reads a host MSR the emulator passes through (EFER, PAT, ...), if it may.
    fn host_msr(&self, index: u32) -> Option<u64>;
    /// The time-stamp counter.
    fn rdtsc(&self) -> u64;
    /// The host's CR0 and CR4.
    fn host_cr0_cr4(&self) -> (u64, u64);
    /// Reads an I/O port for a domain allowed to (size 1, 2 or 4).
    fn port_in(&mut self, port: u16, size: u8) -> u32;
    /// Writes an I/O port for a domain allowed to.
    fn port_out(&mut self, port: u16, size: u8, value: u32);
    /// Allocates `2^order` contiguous free frames (not yet owned, not zeroed).
    fn alloc_frames(&mut self, order: u32) -> Option<Mfn>;
    /// Fills a frame with zeros (RAM only; the caller checked the frame may be written).
    fn zero_frame(&mut self, mfn: Mfn) -> bool;
    /// Copies frame `src` over `dst` (RAM only; the caller checked both accesses).
    fn copy_frame(&mut self, src: Mfn, dst: Mfn) -> bool;
    /// The host's memory map.
    fn machine_memory_map(&self) -> alloc::vec::Vec<hypercall_abi::memory::E820Entry>;
    /// System time: nanoseconds since boot.
    fn now_ns(&self) -> u64;
    /// The physical CPU this runs on.
    fn cpu(&self) -> usize;
    /// The MXCSR bits this CPU supports (for guest-supplied FPU images).
    fn mxcsr_mask(&self) -> u32;
    /// Refreshes the `vcpu_time_info` inside the `vcpu_info` at machine address `vcpu_info`.
    fn update_time_info(&mut self, vcpu_info: Paddr);
}

/// Everything a handler works on.
pub struct Ctx<'a> {
    /// The calling domain (taken out of [`Ctx::others`] while the call runs).
    pub dom: &'a mut Domain,
    /// Every other domain.
    pub others: &'a mut crate::domain::Domains,
    /// Event channels, scheduler, timers of the whole machine.
    pub sys: &'a mut crate::system::System,
    /// Guest-shared memory for event bitmaps (atomic bit operations).
    pub emem: &'a mut dyn crate::event::EventMemory,
    /// The calling vCPU (index into `dom.vcpus`).
    pub vcpu: usize,
    /// The caller's registers (arguments in, result out; `iret` rewrites them).
    pub frame: &'a mut Frame,
    /// The caller's virtual memory.
    pub mem: &'a mut dyn GuestMemory,
    /// Machine services.
    pub plat: &'a mut dyn Platform,
    /// Set by a handler that needs the call re-executed (a continuation): the frame already
    /// holds the new arguments and the rewound `rip`.
    pub continuation: bool,
    /// Inside a `multicall` (a nested multicall is refused; a continued entry continues the
    /// multicall).
    pub in_multicall: bool,
    /// Another domain was shut down (`SCHEDOP_remote_shutdown`): the runtime takes it down.
    pub others_stopped: bool,
}

impl core::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Ctx")
            .field("dom", &self.dom.id)
            .field("vcpu", &self.vcpu)
            .finish()
    }
}

impl Ctx<'_> {
    /// The calling vCPU's reference.
    pub fn me(&self) -> crate::types::VcpuRef {
        crate::types::VcpuRef {
            dom: self.dom.id,
            vcpu: u32::try_from(self.vcpu).unwrap_or(u32::MAX),
        }
    }

    /// The calling vCPU.
    pub fn v(&mut self) -> &mut crate::domain::vcpu::Vcpu {
        let i = self.vcpu.min(self.dom.vcpus.len().saturating_sub(1));
        &mut self.dom.vcpus[i]
    }

    /// Arranges for the current hypercall to be re-executed with `args` (Xen's continuation):
    /// `rip` goes back to the `syscall`, `rax` holds the number again.
    pub fn continue_with(&mut self, nr: u32, args: [u64; 5]) {
        self.frame.rip = self.frame.rip.wrapping_sub(2);
        self.frame.rax = u64::from(nr);
        self.frame.rdi = args[0];
        self.frame.rsi = args[1];
        self.frame.rdx = args[2];
        self.frame.r10 = args[3];
        self.frame.r8 = args[4];
        self.continuation = true;
    }
}

/// How the frame's `rax` is to be treated after a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    /// Store this value in `rax`.
    Value(u64),
    /// The handler set the whole frame itself (`iret`, continuations).
    FrameSet,
}

/// The low 32 bits of an argument the ABI declares `int` or `unsigned int` (Xen ignores the
/// upper half of the register).
pub fn lo32(v: u64) -> u32 {
    u32::try_from(v & 0xffff_ffff).unwrap_or(0)
}

/// Whether `va` is canonical.
pub const fn canonical(va: u64) -> bool {
    let top = va >> 47;
    top == 0 || top == 0x1_ffff
}

/// Runs hypercall `nr` with `args` for the caller in `cx`.
pub fn dispatch(cx: &mut Ctx<'_>, nr: u64, args: [u64; 5]) -> Completion {
    let value = |r: HcResult| Completion::Value(r.unwrap_or_else(|e| e.as_rax()));
    let Some(call) = u32::try_from(nr).ok().and_then(Hypercall::from_raw) else {
        return value(Err(Errno::Enosys));
    };
    let r = match call {
        Hypercall::ConsoleIo => console::console_io(cx, args),
        Hypercall::XenVersion => version::xen_version(cx, args),
        Hypercall::SchedOp => sched::sched_op(cx, args),
        Hypercall::SchedOpCompat => sched::sched_op_compat(cx, args),
        Hypercall::SetTrapTable => traps::set_trap_table(cx, args),
        Hypercall::CallbackOp => traps::callback_op(cx, args),
        Hypercall::SetCallbacks => traps::set_callbacks(cx, args),
        Hypercall::NmiOp => traps::nmi_op(cx, args),
        Hypercall::StackSwitch => traps::stack_switch(cx, args),
        Hypercall::FpuTaskswitch => traps::fpu_taskswitch(cx, args),
        Hypercall::SetSegmentBase => traps::set_segment_base(cx, args),
        Hypercall::VmAssist => traps::vm_assist(cx, args),
        Hypercall::PhysdevOp => traps::physdev_op(cx, args),
        Hypercall::Iret => {
            return match traps::iret(cx) {
                Ok(()) => Completion::FrameSet,
                // A bad frame crashes the domain; the runtime sees it in the domain state.
                Err(_) => Completion::FrameSet,
            };
        }
        Hypercall::SetGdt => mm::set_gdt(cx, args),
        Hypercall::UpdateDescriptor => mm::update_descriptor(cx, args),
        Hypercall::UpdateVaMapping => mm::update_va_mapping(cx, args, None),
        Hypercall::UpdateVaMappingOtherdomain => {
            let dom = u16::try_from(args[3] & 0xffff).unwrap_or(u16::MAX);
            mm::update_va_mapping(cx, args, Some(dom))
        }
        Hypercall::MmuUpdate => mm::mmu_update(cx, args),
        Hypercall::MmuextOp => mm::mmuext_op(cx, args),
        Hypercall::MemoryOp => memory::memory_op(cx, args),
        Hypercall::VcpuOp => vcpu::vcpu_op(cx, args),
        Hypercall::EventChannelOp => evtchn::event_channel_op(cx, args),
        Hypercall::EventChannelOpCompat => evtchn::event_channel_op_compat(cx, args),
        Hypercall::SetTimerOp => sched::set_timer_op(cx, args),
        Hypercall::Multicall => return multicall(cx, args),
        _ => Err(Errno::Enosys),
    };
    if cx.continuation {
        return Completion::FrameSet;
    }
    value(r)
}

/// Entries a `multicall` runs before continuing itself.
pub const MULTICALL_BATCH: u64 = 128;

/// `multicall(calls, nr_calls)`: each entry runs as its own hypercall, its result stored in the
/// entry. A nested multicall entry gets `-EINVAL`; an `iret` entry ends the batch (it has
/// already set the registers). Returns 0, or `-EFAULT` if the list cannot be read or written.
fn multicall(cx: &mut Ctx<'_>, args: [u64; 5]) -> Completion {
    use hypercall_abi::multicall::MulticallEntry;
    if cx.in_multicall {
        return Completion::Value(Errno::Einval.as_rax());
    }
    let (calls, nr) = (args[0], args[1] & 0xffff_ffff);
    cx.in_multicall = true;
    let mut rax = 0;
    for i in 0..nr {
        let at = calls.wrapping_add(i * 64);
        if i > 0 && i % MULTICALL_BATCH == 0 {
            // A long list continues as a new multicall, so it cannot hold the CPU.
            cx.in_multicall = false;
            cx.continue_with(
                hypercall_abi::hypercall::HYPERVISOR_MULTICALL,
                [at, nr - i, 0, 0, 0],
            );
            return Completion::FrameSet;
        }
        let e: MulticallEntry = match read_guest(cx.mem, at) {
            Ok(e) => e,
            Err(err) => {
                rax = err.as_rax();
                break;
            }
        };
        let a = [e.args[0], e.args[1], e.args[2], e.args[3], e.args[4]];
        let nested = e.op == u64::from(hypercall_abi::hypercall::HYPERVISOR_MULTICALL);
        let result = if nested {
            Completion::Value(Errno::Einval.as_rax())
        } else {
            dispatch(cx, e.op, a)
        };
        if cx.continuation {
            // The entry was preempted (a long mmu_update batch): its new arguments go back
            // into the entry, and the multicall itself continues from this entry.
            cx.in_multicall = false;
            let f = &*cx.frame;
            let new_args = [f.rdi, f.rsi, f.rdx, f.r10, f.r8];
            let mut entry = e;
            entry.args[..5].copy_from_slice(&new_args);
            if write_guest(cx.mem, at, &entry).is_err() {
                // The list was readable a moment ago; if it is gone, fail the multicall.
                cx.continuation = false;
                cx.frame.rip = cx.frame.rip.wrapping_add(2);
                return Completion::Value(Errno::Efault.as_rax());
            }
            cx.frame.rax = u64::from(hypercall_abi::hypercall::HYPERVISOR_MULTICALL);
            cx.frame.rdi = at;
            cx.frame.rsi = nr - i;
            return Completion::FrameSet;
        }
        let Completion::Value(v) = result else {
            // iret: the frame is the guest's now; nothing more of the batch runs.
            cx.in_multicall = false;
            return Completion::FrameSet;
        };
        if write_guest(cx.mem, at + 8, &v).is_err() {
            rax = Errno::Efault.as_rax();
            break;
        }
        // A shutdown, or the caller blocking (SCHEDOP_block/poll as an entry), ends the batch.
        let me = cx.me();
        if cx.dom.state != crate::domain::RunState::Running
            || cx.sys.sched.current(cx.plat.cpu()) != Some(me)
        {
            break;
        }
    }
    cx.in_multicall = false;
    Completion::Value(rax)
}
