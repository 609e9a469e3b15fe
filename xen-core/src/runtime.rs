//! The running hypervisor: the domains, the vCPU on this CPU, every entry from a guest, the
//! scheduler's decisions and the way back. Safe code over the architecture layer's interface.
//!
//! Every entry (hypercall, exception, interrupt) takes the runtime lock, handles the entry for
//! the current vCPU, then runs the *exit path*: domains that shut down or crashed are taken
//! apart, expired timers fire, the scheduler is asked what runs next if anything changed (a
//! context switch swaps the trap frame and the vCPU's CPU state), a pending NMI or event
//! upcall is delivered, and the local APIC timer is armed for the next deadline. With nothing
//! to run, the CPU halts in the idle loop until an interrupt brings work.

use crate::arch;
use crate::cpuinfo::CpuidResult;
use crate::domain::build::Built;
use crate::domain::{Domain, Domains, RunState};
use crate::event::EventMemory;
use crate::exit::ExitCode;
use crate::guest::bounce::Delivery;
use crate::guest::deliver;
use crate::guest::frame::{Frame, VECTOR_SYSCALL, VECTOR_SYSCALL32};
use crate::hypercall::{self, Completion, Ctx, GuestMemory, Platform};
use crate::mm::frame_table::{FrameTable, PageType};
use crate::mm::pagetable::{MmEnv, PtContext};
use crate::sched::{DomParams, SchedParams};
use crate::system::{System, TimerKey};
use crate::types::{DomId, Mfn, Paddr, VcpuRef};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use hypercall_abi::errno::Errno;
use hypercall_abi::evtchn::{VIRQ_CONSOLE, VIRQ_DEBUG, VIRQ_DOM_EXC, VIRQ_TIMER};
use hypercall_abi::segments::{FLAT_KERNEL_CS, FLAT_KERNEL_SS};
use spin::{Mutex, MutexGuard};

/// This CPU's number (one CPU runs guests for now).
const CPU: usize = 0;

/// Byte offset of `time` (the `vcpu_time_info`) in `vcpu_info`.
const VCPU_INFO_TIME: u64 = 32;

/// The hypervisor's state once domains run.
struct Runtime {
    /// All domains.
    domains: Domains,
    /// Event channels, scheduler, timers.
    sys: System,
    /// The vCPU whose registers are in this CPU's trap frame.
    current: Option<VcpuRef>,
    /// When the scheduler wants to be asked again at the latest.
    sched_until: u64,
    /// The deadline the APIC timer is armed for (`u64::MAX`: not armed).
    armed_for: u64,
    /// Some domain other than the current one may have shut down (remote shutdown).
    reap_others: bool,
    /// The scheduler's change counter when it last decided (see `Scheduler::changes`).
    sched_seen: u64,
    /// The current vCPU's `vcpu_info` (machine address; 0: none), for the upcall check.
    cur_vcpu_info: Paddr,
    /// The timer queue's change counter when the APIC timer was last armed.
    timers_seen: u64,
    /// Below this TSC value no timer or scheduling deadline has come (see `arm_timer`).
    quiet_until_tsc: u64,
    /// Some vCPU may have a virtual NMI waiting (`VCPUOP_send_nmi` was used).
    nmi_waiting: bool,
}

/// Facts fixed at boot that hypercalls report.
struct BootFacts {
    /// The hypervisor command line (for `XENVER_commandline`).
    cmdline: String,
    /// The host memory map (for `XENMEM_machine_memory_map`).
    memory_map: Vec<hypercall_abi::memory::E820Entry>,
    /// The CPUID policy's platform facts.
    cpuid: crate::guest::cpuid::PolicyInput,
    /// `mmu_audit`: audit the frame table regularly and count leaks at the end.
    mmu_audit: bool,
    /// Free frames before the boot domains were built, plus the boot-module frames given back.
    free_before_domains: u64,
    /// The MXCSR bits this CPU supports.
    mxcsr_mask: u32,
    /// The wallclock at system time 0 (seconds, nanoseconds).
    wallclock: (u64, u32),
}

/// Memory hypercalls handled, for the periodic audit.
static MMU_CALLS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
/// Audit after this many memory hypercalls (with `mmu_audit`).
const AUDIT_EVERY: u64 = 4096;

static FACTS: spin::Once<BootFacts> = spin::Once::new();

static RUNTIME: Mutex<Option<Runtime>> = Mutex::new(None);

/// Guest memory through the current page tables, every access checked.
struct HwGuestMemory;

impl GuestMemory for HwGuestMemory {
    fn read(&mut self, va: u64, buf: &mut [u8]) -> Result<(), Errno> {
        arch::guest::copy_from_guest(va, buf).map_err(|_| Errno::Efault)
    }
    fn write(&mut self, va: u64, buf: &[u8]) -> Result<(), Errno> {
        arch::guest::copy_to_guest(va, buf).map_err(|_| Errno::Efault)
    }
}

/// Event bitmaps in guest-shared machine memory, with locked bit instructions.
struct HwEventMemory;

impl EventMemory for HwEventMemory {
    fn test_and_set_bit(&mut self, word: Paddr, bit: u32) -> bool {
        arch::mm::machine_bit(word, bit, arch::mm::BitOp::TestAndSet).unwrap_or(true)
    }
    fn test_and_clear_bit(&mut self, word: Paddr, bit: u32) -> bool {
        arch::mm::machine_bit(word, bit, arch::mm::BitOp::TestAndClear).unwrap_or(false)
    }
    fn test_bit(&self, word: Paddr, bit: u32) -> bool {
        arch::mm::machine_bit(word, bit, arch::mm::BitOp::Test).unwrap_or(false)
    }
    fn read_u8(&self, at: Paddr) -> u8 {
        let mut b = [0u8];
        arch::mm::read_machine(at, &mut b);
        b[0]
    }
}
/// The machine services hypercalls use.
struct HwPlatform {
    facts: &'static BootFacts,
}

impl Platform for HwPlatform {
    fn console_write(&mut self, bytes: &[u8]) {
        arch::console::write_bytes(bytes);
    }
    fn hypervisor_cmdline(&self) -> &str {
        &self.facts.cmdline
    }
    fn mm(&mut self, f: &mut dyn FnMut(&mut FrameTable<'_>, &mut dyn MmEnv)) {
        arch::mm::with_frame_table(|t, e| f(t, e));
    }
    fn read_machine(&mut self, pa: Paddr, buf: &mut [u8]) -> bool {
        arch::mm::read_machine(pa, buf)
    }
    fn write_machine(&mut self, pa: Paddr, buf: &[u8]) -> bool {
        arch::mm::write_machine(pa, buf)
    }
    fn set_m2p(&mut self, mfn: Mfn, pfn: u64) {
        arch::mm::set_m2p(mfn, crate::types::Pfn(pfn));
    }
    fn max_mfn(&self) -> u64 {
        arch::mm::max_mfn()
    }
    fn m2p_chunks(&self) -> Vec<Mfn> {
        arch::mm::m2p_chunks()
    }
    fn xen_l4(&self) -> [u64; 16] {
        arch::mm::xen_l4_slots()
    }
    fn io_limit(&self) -> u64 {
        io_limit()
    }
    fn load_cr3(&mut self, cr3: u64, flush_global: bool) {
        arch::guest::load_cr3(cr3, flush_global);
    }
    fn flush_tlb(&mut self, global: bool) {
        if global {
            arch::guest::load_cr3(arch::cpu::read_cr3(), true);
        } else {
            arch::guest::flush_tlb();
        }
    }
    fn invlpg(&mut self, va: u64) {
        arch::guest::invlpg(va);
    }
    fn load_gdt(&mut self, frames: &[Mfn]) {
        if let Err(e) = arch::gdt_load_guest_frames(frames) {
            log::error!("cannot map GDT frames: {e:?}");
        }
    }
    fn ldt_area(&self) -> u64 {
        arch::ldt_area()
    }
    fn map_ldt_page(&mut self, page: usize, mfn: Option<Mfn>) {
        if let Err(e) = arch::map_ldt_page(page, mfn) {
            log::error!("cannot map LDT page {page}: {e:?}");
        }
    }
    fn load_ldt(&mut self, entries: u32) {
        arch::load_ldt(entries);
    }
    fn seg_bases(&self) -> (u64, u64) {
        (
            arch::guest::guest_active_gs_base(),
            arch::guest::guest_fs_base(),
        )
    }
    fn set_active_gs_base(&mut self, v: u64) {
        arch::guest::set_guest_active_gs_base(v);
    }
    fn set_fs_base(&mut self, v: u64) {
        arch::guest::set_guest_fs_base(v);
    }
    fn set_ts(&mut self, on: bool) {
        arch::guest::set_ts(on);
    }
    fn host_cpuid(&self, leaf: u32, subleaf: u32) -> CpuidResult {
        arch::cpu::cpuid(leaf, subleaf)
    }
    fn cpuid_input(&self, hardware_domain: bool) -> crate::guest::cpuid::PolicyInput {
        crate::guest::cpuid::PolicyInput {
            hardware_domain,
            ..self.facts.cpuid
        }
    }
    fn host_msr(&self, index: u32) -> Option<u64> {
        arch::guest::host_msr(index)
    }
    fn rdtsc(&self) -> u64 {
        arch::cpu::rdtsc()
    }
    fn host_cr0_cr4(&self) -> (u64, u64) {
        (arch::cpu::read_cr0(), arch::cpu::read_cr4())
    }
    fn port_in(&mut self, port: u16, size: u8) -> u32 {
        arch::guest::port_in(port, size)
    }
    fn port_out(&mut self, port: u16, size: u8, value: u32) {
        arch::guest::port_out(port, size, value);
    }
    fn alloc_frames(&mut self, order: u32) -> Option<Mfn> {
        arch::mm::alloc_frames(order)
    }
    fn zero_frame(&mut self, mfn: Mfn) -> bool {
        arch::mm::zero_machine_frame(mfn)
    }
    fn copy_frame(&mut self, src: Mfn, dst: Mfn) -> bool {
        arch::mm::copy_machine_frame(src, dst)
    }
    fn machine_memory_map(&self) -> Vec<hypercall_abi::memory::E820Entry> {
        self.facts.memory_map.clone()
    }
    fn now_ns(&self) -> u64 {
        arch::time::now_ns()
    }
    fn cpu(&self) -> usize {
        CPU
    }
    fn mxcsr_mask(&self) -> u32 {
        self.facts.mxcsr_mask
    }
    fn update_time_info(&mut self, vcpu_info: Paddr) {
        update_time_info(vcpu_info);
    }
}

/// A domain built at boot, ready to start.
#[derive(Debug)]
pub struct BootDomain<'a> {
    /// What the builder made.
    pub built: &'a Built,
    /// Its id.
    pub id: DomId,
    /// Whether it is dom0 (privileged, owns the hardware).
    pub dom0: bool,
    /// Pages it owns (and may have at most).
    pub nr_pages: u64,
    /// vCPUs (vCPU 0 starts; the guest brings up the others).
    pub vcpus: u32,
    /// Scheduler weight and cap.
    pub sched: DomParams,
}

/// What the runtime needs to know from boot.
#[derive(Debug)]
pub struct BootInfo<'a> {
    /// The hypervisor command line.
    pub cmdline: &'a str,
    /// The host memory map.
    pub memory_map: Vec<hypercall_abi::memory::E820Entry>,
    /// `mmu_audit`, and the free frames before the domains were built.
    pub audit: (bool, u64),
    /// The scheduler's time slice.
    pub tslice_ns: u64,
    /// The wallclock at system time 0.
    pub wallclock: (u64, u32),
}

/// Starts the boot domains (already built) on this CPU; never returns.
pub fn start(domains: &[BootDomain<'_>], boot: BootInfo<'_>) -> ! {
    FACTS.call_once(|| BootFacts {
        cmdline: String::from(boot.cmdline),
        memory_map: boot.memory_map,
        cpuid: crate::guest::cpuid::PolicyInput {
            hardware_domain: false,
            tsc_khz: u32::try_from(arch::time::tsc_hz() / 1000).unwrap_or(u32::MAX),
            maddr_bits: u32::from(arch::cpu::identify().phys_addr_bits),
        },
        mmu_audit: boot.audit.0,
        free_before_domains: boot.audit.1,
        mxcsr_mask: arch::context::mxcsr_mask(),
        wallclock: boot.wallclock,
    });
    let params = SchedParams {
        slice_ns: boot.tslice_ns,
        ..SchedParams::default()
    };
    let mut rt = Runtime {
        domains: Domains::new(),
        sys: System::new(1, params),
        current: None,
        sched_until: u64::MAX,
        armed_for: u64::MAX,
        reap_others: false,
        sched_seen: u64::MAX,
        cur_vcpu_info: Paddr(0),
        timers_seen: u64::MAX,
        quiet_until_tsc: 0,
        nmi_waiting: false,
    };
    let now = arch::time::now_ns();
    for b in domains {
        if let Err(why) = rt.add_domain(b, now) {
            stop_with(ExitCode::BootError, &alloc::format!("{}: {why}", b.id));
        }
    }
    rt.sys
        .timers
        .set(TimerKey::ConsolePoll, now.saturating_add(CONSOLE_POLL_NS));
    *RUNTIME.lock() = Some(rt);
    let mut frame = Frame::default();
    let guard = RUNTIME.lock();
    // Pick the first vCPU and put its registers in the frame, then go there.
    let guard = exit_path(guard, &mut frame, true);
    drop(guard);
    arch::guest::enter(&frame)
}

impl Runtime {
    /// Registers a built domain with everything: its vCPU 0 ready to run at the entry point.
    fn add_domain(&mut self, b: &BootDomain<'_>, now: u64) -> Result<(), &'static str> {
        let built = b.built;
        let mut dom = Box::new(Domain::new(b.id, b.dom0, b.vcpus.max(1), built.shared_info));
        dom.tot_pages = b.nr_pages;
        dom.max_pages = b.nr_pages;
        let ctx = PtContext {
            dom: b.id,
            privileged: b.dom0,
            io: b.dom0,
            io_limit: io_limit(),
            xen_l4: arch::mm::xen_l4_slots(),
        };
        // The vCPU's reference on its page-table root (the builder's pin is the guest's own),
        // and the hypervisor's own reference on shared_info: a writable type reference for
        // the domain's lifetime, as Xen holds, so the frame the hypervisor writes behind the
        // guest's back can never be validated as a page table or descriptor page.
        let took = arch::mm::with_frame_table(|t, e| {
            t.get_page_and_type(e, &ctx, built.l4, b.id, PageType::L4)?;
            t.get_page_and_type(e, &ctx, built.shared_info, b.id, PageType::Writable)
        });
        if !matches!(took, Some(Ok(()))) {
            return Err("its page tables could not be referenced");
        }
        let v = &mut dom.vcpus[0];
        v.online = true;
        v.initialised = true;
        v.kernel_root = Some(built.l4);
        v.kernel_ss = u64::from(FLAT_KERNEL_SS);
        v.kernel_sp = built.stack_top;
        v.frame = Frame {
            rip: built.entry,
            cs: u64::from(FLAT_KERNEL_CS),
            rflags: 0x202,
            rsp: built.stack_top,
            ss: u64::from(FLAT_KERNEL_SS),
            rsi: built.start_info_va,
            ..Frame::default()
        };
        write_wallclock(&dom);
        let cfg = crate::event::EventDomainConfig {
            nr_vcpus: u32::try_from(dom.vcpus.len()).unwrap_or(1),
            max_port: crate::event::MAX_PORT_2L,
            shared_info: built.shared_info.paddr(),
            privileged: b.dom0,
        };
        self.sys
            .events
            .add_domain(b.id, cfg)
            .map_err(|_| "its event channels could not be set up")?;
        self.sys
            .sched
            .add_domain(b.id, b.sched)
            .map_err(|_| "the scheduler refused its weight or cap")?;
        for i in 0..dom.vcpus.len() {
            let r = dom.vcpu_ref(u32::try_from(i).unwrap_or(0));
            let _ = self.sys.sched.add_vcpu(r, CPU, now);
        }
        let _ = self.sys.sched.vcpu_up(dom.vcpu_ref(0), now);
        log::info!(
            "{}: {}, {} MiB, {} vCPU(s), weight {}{}; entry {:#x}, start_info {:#x}",
            b.id,
            if b.dom0 { "dom0" } else { "domU" },
            b.nr_pages / 256,
            dom.vcpus.len(),
            b.sched.weight,
            if b.sched.cap != 0 {
                alloc::format!(", cap {}%", b.sched.cap)
            } else {
                String::new()
            },
            built.entry,
            built.start_info_va
        );
        self.domains.insert(dom);
        Ok(())
    }
}

/// One past the highest frame of the machine's physical address space.
pub fn io_limit() -> u64 {
    static LIMIT: spin::Once<u64> = spin::Once::new();
    *LIMIT.call_once(|| {
        let bits = u32::from(arch::cpu::identify().phys_addr_bits).clamp(32, 52);
        1u64 << (bits - 12)
    })
}

/// Writes the wallclock into `dom`'s shared_info with the version protocol.
fn write_wallclock(dom: &Domain) {
    let Some(facts) = FACTS.get() else { return };
    let (sec, nsec) = facts.wallclock;
    let base = dom.shared_info.paddr().0;
    let mut version = [0u8; 4];
    arch::mm::read_machine(Paddr(base + WC_VERSION), &mut version);
    let v = u32::from_le_bytes(version).wrapping_add(1) | 1;
    arch::mm::write_machine(Paddr(base + WC_VERSION), &v.to_le_bytes());
    let lo = (sec & 0xffff_ffff) as u32;
    let hi = (sec >> 32) as u32;
    arch::mm::write_machine(Paddr(base + WC_VERSION + 4), &lo.to_le_bytes());
    arch::mm::write_machine(Paddr(base + WC_VERSION + 8), &nsec.to_le_bytes());
    arch::mm::write_machine(Paddr(base + WC_VERSION + 12), &hi.to_le_bytes());
    arch::mm::write_machine(Paddr(base + WC_VERSION), &v.wrapping_add(1).to_le_bytes());
}

/// Byte offset of `wc_version` in shared_info (then `wc_sec`, `wc_nsec`, `wc_sec_hi`).
const WC_VERSION: u64 = 3072;

/// Stops the machine after an error line.
fn stop_with(code: ExitCode, why: &str) -> ! {
    arch::console::emergency(format_args!("ERROR: {why}\n"));
    arch::panic::stop(code)
}

/// Runs `f` on vCPU `v`'s domain with `frame` as the vCPU's registers (the domain is taken out
/// of the table while `f` runs, so the others stay reachable).
fn with_vcpu<R>(
    rt: &mut Runtime,
    v: VcpuRef,
    frame: &mut Frame,
    f: impl FnOnce(&mut Ctx<'_>) -> R,
) -> Option<R> {
    let facts = FACTS.get()?;
    let mut dom = rt.domains.take(v.dom)?;
    let mut mem = HwGuestMemory;
    let mut emem = HwEventMemory;
    let mut plat = HwPlatform { facts };
    let mut cx = Ctx {
        dom: &mut dom,
        others: &mut rt.domains,
        sys: &mut rt.sys,
        emem: &mut emem,
        vcpu: usize::try_from(v.vcpu).unwrap_or(0),
        frame,
        mem: &mut mem,
        plat: &mut plat,
        continuation: false,
        in_multicall: false,
        others_stopped: false,
    };
    let r = f(&mut cx);
    if cx.dom.state != RunState::Running || cx.others_stopped {
        rt.reap_others = true;
    }
    if dom.vcpus.iter().any(|vc| vc.nmi_pending) {
        rt.nmi_waiting = true;
    }
    if rt.current == Some(v) {
        // `VCPUOP_register_vcpu_info` may have moved it.
        rt.cur_vcpu_info = dom
            .vcpus
            .get(v.vcpu as usize)
            .map_or(Paddr(0), |vc| vc.vcpu_info);
    }
    rt.domains.insert(dom);
    Some(r)
}

/// Takes the lock and the current vCPU, or stops the machine: an entry from guest context
/// with no vCPU running is a hypervisor bug.
fn lock_current() -> (MutexGuard<'static, Option<Runtime>>, VcpuRef) {
    let guard = RUNTIME.lock();
    let cur = guard.as_ref().and_then(|rt| rt.current);
    match cur {
        Some(v) => (guard, v),
        None => {
            drop(guard);
            stop_with(ExitCode::Panic, "guest entry with no vCPU running")
        }
    }
}

/// An exception or `syscall` from guest context (interrupts off).
pub fn guest_trap(frame: &mut Frame) {
    let vector = frame.vector;
    let error = frame.error_code;
    let cr2 = if vector == 14 {
        arch::cpu::read_cr2()
    } else {
        0
    };
    let (mut guard, cur) = lock_current();
    if let Some(rt) = guard.as_mut() {
        let audit = with_vcpu(rt, cur, frame, |cx| match vector {
            VECTOR_SYSCALL | VECTOR_SYSCALL32 => {
                if cx.v().in_kernel && vector == VECTOR_SYSCALL {
                    let (nr, args) = (cx.frame.rax, cx.frame.hypercall_args());
                    if let Completion::Value(v) = hypercall::dispatch(cx, nr, args) {
                        cx.frame.rax = v;
                    }
                    audit_due(nr)
                } else {
                    deliver::user_syscall(cx, vector == VECTOR_SYSCALL32);
                    false
                }
            }
            v => {
                deliver::exception(cx, (v & 0xff) as u8, error, cr2);
                false
            }
        });
        if audit == Some(true) {
            audit_all(rt, "periodic");
        }
    }
    let guard = exit_path(guard, frame, false);
    drop(guard);
    check_sysret(frame);
}

/// Only a plain hypercall return may leave through `sysret` (the architecture layer takes
/// the syscall vector as the sign): flat 64-bit selectors and a canonical rip, which sysret
/// cannot check safely itself. Anything else returns with `iretq`.
#[inline(always)]
fn check_sysret(frame: &mut Frame) {
    if frame.vector == VECTOR_SYSCALL
        && !(frame.cs == u64::from(FLAT_KERNEL_CS)
            && frame.ss == u64::from(FLAT_KERNEL_SS)
            && hypercall::canonical(frame.rip))
    {
        frame.vector = 0;
    }
}

/// A timer (or other device) interrupt taken in guest context: run the exit path, which
/// fires timers and may switch vCPUs.
pub fn guest_interrupt(frame: &mut Frame) {
    let (mut guard, _) = lock_current();
    // The one-shot timer fired (possibly a little before the deadline by our clock): it
    // must be armed again.
    if let Some(rt) = guard.as_mut() {
        rt.armed_for = u64::MAX;
    }
    // Never the fast exit: the timer must be looked at and armed again.
    let guard = exit_path(guard, frame, true);
    drop(guard);
    // The frame is an interrupt frame (or another vCPU's saved hypercall frame).
    check_sysret(frame);
}

/// Last checks before returning to guest context after an interrupt that needs no scheduling.
pub fn before_guest_return(_frame: &mut Frame) {}

/// The guest-return `iretq` faulted: the guest's CS or SS (from the iret hypercall) cannot be
/// loaded, or its descriptor sits in an LDT page not yet in the shadow. Map that page and
/// return again, or deliver the failsafe callback, as Xen does.
pub fn guest_return_faulted(frame: &mut Frame) {
    let mut ctx = arch::failed_iret_context(frame);
    let ldt_offset = (frame.vector == 14)
        .then(|| arch::cpu::read_cr2().wrapping_sub(arch::ldt_area()))
        .filter(|&o| o < crate::guest::ldt::LDT_BYTES);
    let (mut guard, cur) = lock_current();
    if let Some(rt) = guard.as_mut() {
        with_vcpu(rt, cur, &mut ctx, |cx| {
            if ldt_offset.is_some_and(|o| crate::guest::ldt::map_shadow(cx, o)) {
                // The selector's descriptor is mapped now: return again.
                return;
            }
            let failsafe = cx.v().callbacks.failsafe;
            // The interrupted selectors cannot be reloaded; the data selectors are reported
            // as 0. Without a failsafe callback, `bounce` crashes the domain.
            deliver::bounce(cx, Delivery::Failsafe([0; 4]), failsafe, 0);
        });
    }
    let guard = exit_path(guard, &mut ctx, false);
    drop(guard);
    *frame = ctx;
}

/// The exit path, run with the lock held before every return to guest context: reap stopped
/// domains, fire timers, reschedule if needed (idling until something can run), deliver a
/// pending NMI or event upcall, arm the timer. `first` forces a scheduling decision.
#[inline(always)]
fn exit_path(
    mut guard: MutexGuard<'static, Option<Runtime>>,
    frame: &mut Frame,
    first: bool,
) -> MutexGuard<'static, Option<Runtime>> {
    // The fast case (most hypercalls): nothing changed and no deadline came; at most an
    // upcall (or a virtual NMI) is due.
    if let Some(rt) = guard.as_mut()
        && !first
        && !rt.reap_others
        && rt.current.is_some()
        && rt.sys.sched.changes() == rt.sched_seen
        && rt.sys.timers.changes() == rt.timers_seen
        && arch::cpu::rdtsc() < rt.quiet_until_tsc
    {
        if !upcall_due(rt.cur_vcpu_info) && !rt.nmi_waiting {
            return guard;
        }
        deliver_pending(rt, frame);
        if !rt.reap_others {
            return guard;
        }
    }
    exit_path_slow(guard, frame, first)
}

/// Whether the `vcpu_info` at `at` has an upcall pending with events unmasked.
#[inline(always)]
fn upcall_due(at: Paddr) -> bool {
    let word = arch::mm::read_machine_u16(at).unwrap_or(0x100);
    word & 0xff != 0 && word >> 8 == 0
}

/// The exit path's general case (see [`exit_path`]).
#[inline(never)]
fn exit_path_slow(
    mut guard: MutexGuard<'static, Option<Runtime>>,
    frame: &mut Frame,
    first: bool,
) -> MutexGuard<'static, Option<Runtime>> {
    let mut force = first;
    loop {
        let Some(rt) = guard.as_mut() else {
            return guard;
        };
        let now = arch::time::now_ns();
        if rt.reap_others {
            reap(rt, frame);
        }
        if rt.sys.timers.next_deadline().unwrap_or(u64::MAX) <= now {
            fire_timers(rt, now);
        }
        // The last decision stands unless a deadline passed or something changed since.
        let resched = force
            || now >= rt.sched_until
            || rt.current.is_none()
            || (rt.sys.sched.changes() != rt.sched_seen && rt.sys.sched.should_preempt(CPU, now));
        force = false;
        if resched {
            let d = rt.sys.sched.schedule(CPU, now);
            rt.sched_until = d.until;
            if d.next != rt.current {
                if let Some(prev) = rt.current.take() {
                    switch_out(rt, prev, frame);
                }
                if let Some(next) = d.next {
                    switch_in(rt, next, frame, now);
                }
            }
        }
        rt.sched_seen = rt.sys.sched.changes();
        if rt.current.is_some() {
            deliver_pending(rt, frame);
            if rt.reap_others {
                // Delivery crashed the domain: take it down before returning anywhere.
                continue;
            }
            arm_timer(rt, now);
            return guard;
        }
        if rt.reap_others {
            // A domain stopped while choosing (it could not be switched to): take it down first.
            force = true;
            continue;
        }
        // Nothing to run: halt until an interrupt, then look again.
        arm_timer(rt, now);
        drop(guard);
        arch::idle_wait();
        guard = RUNTIME.lock();
        if let Some(rt) = guard.as_mut() {
            rt.armed_for = u64::MAX;
        }
        force = true;
    }
}

/// Arms the APIC timer for the next timer or scheduling deadline (if it changed).
fn arm_timer(rt: &mut Runtime, now: u64) {
    let next = rt
        .sys
        .timers
        .next_deadline()
        .unwrap_or(u64::MAX)
        .min(rt.sched_until);
    rt.timers_seen = rt.sys.timers.changes();
    rt.quiet_until_tsc = arch::time::tsc_before(next);
    // Reprogramming the APIC is costly (and very much so under emulation): if it is already
    // armed for this deadline or an earlier one still ahead, its interrupt will look again.
    if rt.armed_for <= next && rt.armed_for > now {
        return;
    }
    rt.armed_for = next;
    if next == u64::MAX {
        arch::apic::arm_oneshot_ns(0);
    } else {
        arch::apic::arm_oneshot_ns(next.saturating_sub(now).max(MIN_TIMER_NS));
    }
}

/// The shortest APIC timer interval armed (a deadline already passed fires this soon).
const MIN_TIMER_NS: u64 = 2_000;

/// Fires every timer due at `now`.
fn fire_timers(rt: &mut Runtime, now: u64) {
    while let Some((key, _)) = rt.sys.timers.pop_expired(now) {
        match key {
            TimerKey::Singleshot(v) => send_virq(rt, v, VIRQ_TIMER, now),
            TimerKey::Periodic(v) => {
                // Only while the vCPU runs (a descheduled vCPU's periodic timer is stopped).
                if rt.current == Some(v) {
                    let period = rt
                        .domains
                        .get_mut(v.dom)
                        .and_then(|d| d.vcpus.get_mut(v.vcpu as usize))
                        .map_or(0, |vc| {
                            vc.periodic_last = now;
                            vc.periodic_period
                        });
                    if period != 0 {
                        send_virq(rt, v, VIRQ_TIMER, now);
                        rt.sys
                            .timers
                            .set(TimerKey::Periodic(v), now.saturating_add(period));
                    }
                }
            }
            TimerKey::Poll(v) => rt.sys.wake(v, now),
            TimerKey::ConsolePoll => {
                poll_console(rt, now);
                rt.sys
                    .timers
                    .set(TimerKey::ConsolePoll, now.saturating_add(CONSOLE_POLL_NS));
            }
        }
    }
}

/// How often the console is looked at for typed input (there is no UART interrupt).
const CONSOLE_POLL_NS: u64 = 20_000_000;

/// Takes typed input: dom0's goes to its ring (and `VIRQ_CONSOLE`), debug keys run.
fn poll_console(rt: &mut Runtime, now: u64) {
    use crate::console::input::{Focus, Input};
    let mut for_dom0 = false;
    for _ in 0..256 {
        let Some(b) = arch::console::try_read() else {
            break;
        };
        match rt.sys.console_in.feed(b) {
            Input::ForDom0 => for_dom0 = true,
            Input::DebugKey(k) => debug_key(rt, k, now),
            Input::Switched(Focus::Hypervisor) => log::info!(
                "*** console input now goes to the hypervisor: debug keys ('h' for help; Ctrl-A three times to give it back to dom0)"
            ),
            Input::Switched(Focus::Dom0) => log::info!("*** console input now goes to dom0"),
            Input::Nothing => {}
        }
    }
    if for_dom0 {
        let mut emem = HwEventMemory;
        let (hub, mut wake) = rt.sys.split(now);
        hub.send_global_virq(DomId::DOM0, VIRQ_CONSOLE, &mut emem, &mut wake);
    }
}

/// Runs a debug key typed on the console.
fn debug_key(rt: &mut Runtime, key: u8, now: u64) {
    match key {
        b'h' => {
            log::info!("debug keys:");
            log::info!("  'q' dump domains and vCPUs (and send VIRQ_DEBUG to every vCPU)");
            log::info!("  'r' dump the scheduler's view of every vCPU");
            log::info!("  'e' dump event channels");
            log::info!("  'm' dump memory use");
        }
        b'q' => {
            for d in rt.domains.iter() {
                log::info!(
                    "{}: {:?}, {} pages (max {}), {} vCPU(s), shared_info {}",
                    d.id,
                    d.state,
                    d.tot_pages,
                    d.max_pages,
                    d.vcpus.len(),
                    d.shared_info
                );
                for v in &d.vcpus {
                    log::info!(
                        "  v{}: {}, {} mode, rip {:#x}, upcall {}",
                        v.id,
                        if v.online { "up" } else { "down" },
                        if v.in_kernel { "kernel" } else { "user" },
                        v.frame.rip,
                        read_upcall_word(v.vcpu_info)
                    );
                }
            }
            let refs: Vec<VcpuRef> = rt
                .domains
                .iter()
                .flat_map(|d| d.vcpus.iter().map(|v| d.vcpu_ref(v.id)))
                .collect();
            for v in refs {
                send_virq(rt, v, VIRQ_DEBUG, now);
            }
        }
        b'r' => {
            for d in rt.domains.iter() {
                let p = rt.sys.sched.domain_params(d.id).unwrap_or_default();
                log::info!("{}: weight {}, cap {}%", d.id, p.weight, p.cap);
                for v in &d.vcpus {
                    let (i, r) = (v.id, d.vcpu_ref(v.id));
                    let rs = rt.sys.sched.runstate(r, now).unwrap_or_default();
                    let state = match rs.state {
                        0 => "running",
                        1 => "runnable",
                        2 => "blocked",
                        _ => "offline",
                    };
                    let priority = rt
                        .sys
                        .sched
                        .priority(r)
                        .map_or(alloc::string::String::from("-"), |p| {
                            alloc::format!("{p:?}")
                        });
                    log::info!(
                        "  v{i}: {state}, priority {priority}, credit {} us, running {} ms, runnable {} ms, blocked {} ms",
                        rt.sys.sched.credit(r).unwrap_or(0) / 1000,
                        rs.time[0] / 1_000_000,
                        rs.time[1] / 1_000_000,
                        rs.time[2] / 1_000_000
                    );
                }
            }
        }
        b'e' => {
            for d in rt.domains.iter() {
                let n = rt.sys.events.valid_ports(d.id).unwrap_or(0);
                let used: Vec<alloc::string::String> = (1..n)
                    .filter_map(|p| {
                        let port = crate::types::Port(p);
                        let st = rt.sys.events.port_state(d.id, port)?;
                        (!matches!(
                            st,
                            crate::event::PortState::Free | crate::event::PortState::Reserved
                        ))
                        .then(|| alloc::format!("{p}:{st:?}"))
                    })
                    .collect();
                log::info!("{}: {} ports in use: {}", d.id, used.len(), used.join(" "));
            }
        }
        b'm' => {
            let free = arch::mm::free_frame_count();
            log::info!("{free} frames free ({} MiB)", free / 256);
            for d in rt.domains.iter() {
                log::info!("{}: {} pages", d.id, d.tot_pages);
            }
        }
        other => log::info!("no debug key '{}' ('h' lists them)", char::from(other)),
    }
}

/// The `evtchn_upcall_pending`/`evtchn_upcall_mask` pair at `vcpu_info`, for dumps.
fn read_upcall_word(vcpu_info: Paddr) -> alloc::string::String {
    let mut w = [0u8; 2];
    if vcpu_info.0 != 0 {
        arch::mm::read_machine(vcpu_info, &mut w);
    }
    alloc::format!("pending {} mask {}", w[0], w[1])
}

/// Raises per-vCPU VIRQ `virq` on `v`.
fn send_virq(rt: &mut Runtime, v: VcpuRef, virq: u32, now: u64) {
    let mut emem = HwEventMemory;
    let (hub, mut wake) = rt.sys.split(now);
    hub.send_virq(v, virq, &mut emem, &mut wake);
}

/// Saves vCPU `prev`'s CPU state (registers from `frame`, FPU, selectors, segment bases) and
/// lets go of its per-CPU state (LDT shadow, periodic timer).
fn switch_out(rt: &mut Runtime, prev: VcpuRef, frame: &Frame) {
    rt.sys.timers.cancel(TimerKey::Periodic(prev));
    let Some(facts) = FACTS.get() else { return };
    let Some(dom) = rt.domains.get_mut(prev.dom) else {
        return;
    };
    let Some(v) = dom.vcpus.get_mut(prev.vcpu as usize) else {
        return;
    };
    v.frame = *frame;
    arch::context::save_fpu(&mut v.fpu);
    v.selectors = arch::context::data_selectors();
    v.fs_base = arch::guest::guest_fs_base();
    let active = arch::guest::guest_active_gs_base();
    if v.in_kernel {
        v.gs_base_kernel = active;
    } else {
        v.gs_base_user = active;
    }
    let mut plat = HwPlatform { facts };
    crate::guest::ldt::release_shadow(v, &mut plat, true);
    arch::load_ldt(0);
    // Its runstate area, while its page tables are still loaded.
    if let Some(area) = v.runstate_area {
        let now = arch::time::now_ns();
        if let Some(info) = rt.sys.sched.runstate(prev, now) {
            let info = hypercall::vcpu::as_of_last_change(info, now);
            let _ = arch::guest::copy_to_guest(area, crate::arch::pod::bytes_of(&info));
        }
    }
}

/// Loads vCPU `next`'s state into the CPU and its registers into `frame`.
fn switch_in(rt: &mut Runtime, next: VcpuRef, frame: &mut Frame, now: u64) {
    let Some(dom) = rt.domains.get_mut(next.dom) else {
        return;
    };
    let Some(v) = dom.vcpus.get_mut(next.vcpu as usize) else {
        return;
    };
    let Some(root) = v.current_root() else {
        // A vCPU with no page tables for its mode cannot run; crash the domain.
        dom.state = RunState::Crashed;
        dom.crash_reason = Some("a vCPU was scheduled with no page tables");
        rt.reap_others = true;
        return;
    };
    // Another address space: guest user mappings are global, so flush those too. The same
    // one (another vCPU of the domain on the same tables): nothing to flush.
    if arch::cpu::read_cr3() & !0xfff != root.paddr().0 {
        arch::guest::load_cr3(root.paddr().0, true);
    }
    if let Err(e) = arch::gdt_load_guest_frames(&v.gdt_frames) {
        log::error!("cannot map GDT frames: {e:?}");
    }
    arch::load_ldt(v.ldt.1);
    arch::context::restore_fpu(&v.fpu);
    arch::guest::set_ts(v.ts);
    *frame = v.frame;
    let selectors = v.selectors;
    let (fs_base, gs_active) = (v.fs_base, v.active_gs_base());
    let vcpu_info = v.vcpu_info;
    let runstate_area = v.runstate_area;
    let (period, last) = (v.periodic_period, v.periodic_last);
    rt.current = Some(next);
    rt.cur_vcpu_info = vcpu_info;
    update_time_info(vcpu_info);

    // Data selectors: descriptors in the LDT are mapped into the shadow first; a selector
    // that still cannot be loaded sends the vCPU to its failsafe callback.
    let failed = with_vcpu(rt, next, frame, |cx| {
        for sel in selectors {
            if sel & 4 != 0 {
                let _ = crate::guest::ldt::map_shadow(cx, u64::from(sel & !7));
            }
        }
        let failed = arch::context::load_data_selectors(selectors);
        arch::guest::set_guest_fs_base(fs_base);
        arch::guest::set_guest_active_gs_base(gs_active);
        if failed.iter().any(|&f| f) {
            let failsafe = cx.v().callbacks.failsafe;
            let sels = selectors.map(u64::from);
            deliver::bounce(cx, Delivery::Failsafe(sels), failsafe, 0);
        }
    });
    let _ = failed;

    if let Some(area) = runstate_area
        && let Some(info) = rt.sys.sched.runstate(next, now)
    {
        let info = hypercall::vcpu::as_of_last_change(info, now);
        let _ = arch::guest::copy_to_guest(area, crate::arch::pod::bytes_of(&info));
    }
    // The periodic timer runs while the vCPU does; a period that passed while it was away
    // is delivered now, as Xen does.
    if period != 0 {
        let mut last = last;
        if now >= last.saturating_add(period) {
            send_virq(rt, next, VIRQ_TIMER, now);
            last = now;
            if let Some(vc) = rt
                .domains
                .get_mut(next.dom)
                .and_then(|d| d.vcpus.get_mut(next.vcpu as usize))
            {
                vc.periodic_last = now;
            }
        }
        rt.sys
            .timers
            .set(TimerKey::Periodic(next), last.saturating_add(period));
    }
}

/// Refreshes the `vcpu_time_info` at `vcpu_info` (0: none) with the version protocol.
fn update_time_info(vcpu_info: Paddr) {
    if vcpu_info.0 == 0 {
        return;
    }
    let at = Paddr(vcpu_info.0 + VCPU_INFO_TIME);
    let mut t = hypercall_abi::shared_info::VcpuTimeInfo::default();
    arch::mm::read_machine(at, crate::arch::pod::bytes_of_mut(&mut t));
    let version = t.version.wrapping_add(1) | 1;
    arch::mm::write_machine(at, &version.to_le_bytes());
    let tsc = arch::cpu::rdtsc();
    t.version = version;
    t.tsc_timestamp = tsc;
    t.system_time = arch::time::system_time_at(tsc);
    t.set_scale(arch::time::pvclock_scale());
    t.flags = 0;
    arch::mm::write_machine(at, crate::arch::pod::bytes_of(&t));
    arch::mm::write_machine(at, &version.wrapping_add(1).to_le_bytes());
}

/// Delivers what is due to the current vCPU on its way back: a virtual NMI first, else the
/// event upcall if one is pending and events are unmasked.
fn deliver_pending(rt: &mut Runtime, frame: &mut Frame) {
    let Some(cur) = rt.current else { return };
    // The common case, cheaply: no upcall due (one 2-byte read) and no NMI waiting.
    if !upcall_due(rt.cur_vcpu_info) && !rt.nmi_waiting {
        return;
    }
    with_vcpu(rt, cur, frame, |cx| {
        let nmi = {
            let v = cx.v();
            v.nmi_pending && !v.nmi_masked && v.callbacks.nmi != 0
        };
        if nmi {
            let handler = cx.v().callbacks.nmi;
            cx.v().nmi_pending = false;
            cx.v().nmi_masked = true;
            deliver::bounce(cx, Delivery::Nmi, handler, 0);
            return;
        }
        // (The vCPU's own `vcpu_info` word says whether an upcall is due.)
        if upcall_due(
            cx.dom
                .vcpus
                .get(cur.vcpu as usize)
                .map_or(Paddr(0), |v| v.vcpu_info),
        ) {
            let handler = cx.v().callbacks.event;
            deliver::bounce(cx, Delivery::Event, handler, 0);
        }
    });
    if rt.nmi_waiting {
        rt.nmi_waiting = rt
            .domains
            .iter()
            .any(|d| d.vcpus.iter().any(|v| v.nmi_pending));
    }
}

/// Takes down every domain that shut down or crashed: dom0's end stops the machine.
fn reap(rt: &mut Runtime, frame: &mut Frame) {
    rt.reap_others = false;
    let stopped: Vec<DomId> = rt
        .domains
        .iter()
        .filter(|d| d.state != RunState::Running)
        .map(|d| d.id)
        .collect();
    for id in stopped {
        let current = rt.current.filter(|c| c.dom == id);
        if current.is_some() {
            rt.current = None;
            // Back on the hypervisor's own page tables: the domain's are about to go.
            arch::guest::load_cr3(arch::mm::hypervisor_root(), true);
        }
        let Some(dom) = rt.domains.take(id) else {
            continue;
        };
        // The registers to report: the trap frame's if the domain was running here, else
        // those its first vCPU saved.
        let regs = match current {
            Some(_) => *frame,
            None => dom.vcpus.first().map(|v| v.frame).unwrap_or_default(),
        };
        if dom.id == DomId::DOM0 {
            machine_stop(rt, dom, &regs);
        }
        destroy(rt, dom, &regs, current.is_some());
    }
}

/// Reports a domain's end on the console: the reason, and for a crash its registers.
fn report_end(dom: &Domain, regs: &Frame) {
    match dom.state {
        RunState::Shutdown(r) => log::info!("{} shut down: {}", dom.id, shutdown_name(r)),
        RunState::Crashed => {
            let e = |a: core::fmt::Arguments<'_>| arch::console::emergency(a);
            e(format_args!(
                "Domain {} crashed: {}\n",
                dom.id.0,
                dom.crash_reason.unwrap_or("unknown reason")
            ));
            e(format_args!(
                "RIP: {:04x}:{:016x}   RFLAGS: {:016x}\n",
                regs.cs, regs.rip, regs.rflags
            ));
            e(format_args!(
                "RSP: {:04x}:{:016x}   vector {} error {:#x}\n",
                regs.ss, regs.rsp, regs.vector, regs.error_code
            ));
            regs.dump_gprs(&mut |a| arch::console::emergency(a));
        }
        RunState::Running => {}
    }
}

/// Destroys an unprivileged domain: its event channels (remote ends become unbound), its
/// scheduling and timers, every frame; dom0 hears of it through `VIRQ_DOM_EXC`.
fn destroy(rt: &mut Runtime, mut dom: Box<Domain>, regs: &Frame, loaded: bool) {
    // A last line without its newline is shown all the same.
    let now_ns = arch::time::now_ns();
    dom.console
        .flush_partial(now_ns, &mut |line| arch::console::write_bytes(line));
    report_end(&dom, regs);
    let id = dom.id;
    let mut emem = HwEventMemory;
    let _ = rt.sys.events.remove_domain(id, &mut emem);
    rt.sys.forget_domain(id);
    let audit = FACTS.get().is_some_and(|f| f.mmu_audit);
    if audit {
        audit_all_with(rt, Some(&dom), "before a domain's teardown");
    }
    let owned = arch::mm::with_frame_table(|t, _| t.frames_of(id).count() as u64).unwrap_or(0);
    let released = teardown(&mut dom, loaded);
    let still = arch::mm::with_frame_table(|t, _| t.frames_of(id).count() as u64).unwrap_or(0);
    log::info!("{id} destroyed: {released} of its {owned} frames freed, {still} still owned");
    if audit && still != 0 {
        stop_with(
            ExitCode::Panic,
            &alloc::format!("{id}'s teardown left {still} frames owned"),
        );
    }
    let now = arch::time::now_ns();
    let (hub, mut wake) = rt.sys.split(now);
    hub.send_global_virq(DomId::DOM0, VIRQ_DOM_EXC, &mut emem, &mut wake);
}

/// dom0 stopped: report it, and (with `mmu_audit`) take every domain apart counting leaks;
/// then stop the machine with dom0's reason as the exit code.
fn machine_stop(rt: &mut Runtime, mut dom0: Box<Domain>, regs: &Frame) -> ! {
    report_end(&dom0, regs);
    let exit = match dom0.state {
        RunState::Shutdown(r) => ExitCode::for_dom0_shutdown_code(r),
        _ => ExitCode::for_dom0_shutdown_code(
            dom0.shutdown_code
                .unwrap_or(hypercall_abi::sched::ShutdownReason::Crash as u8),
        ),
    };
    if let Some(facts) = FACTS.get().filter(|f| f.mmu_audit) {
        audit_all_with(rt, Some(&dom0), "at shutdown");
        arch::guest::load_cr3(arch::mm::hypervisor_root(), true);
        let mut released = teardown(&mut dom0, true);
        for id in rt.domains.ids() {
            if let Some(mut d) = rt.domains.take(id) {
                released += teardown(&mut d, false);
            }
        }
        let free = arch::mm::free_frame_count();
        let leaked = facts.free_before_domains.saturating_sub(free);
        log::info!(
            "teardown: {released} frames given back; {free} frames free, {} before the domains were built: {leaked} leaked",
            facts.free_before_domains
        );
        let audit = arch::mm::with_frame_table(|t, e| crate::mm::audit::audit(t, e, &|_| (0, 0)));
        if !matches!(audit, Some(Ok(_))) || leaked != 0 {
            stop_with(
                ExitCode::Panic,
                &alloc::format!(
                    "teardown left the frame table inconsistent or leaked frames: {audit:?}"
                ),
            );
        }
        log::info!("mmu_audit (after teardown): OK, no frame leaked");
    }
    log::info!(
        "Hardware dom0 {}: stopping the machine",
        match exit {
            ExitCode::Dom0Poweroff => "halted",
            ExitCode::Dom0Reboot => "rebooting",
            ExitCode::Dom0Crash => "crashed",
            _ => "shut down",
        }
    );
    arch::panic::stop(exit)
}

/// Whether hypercall `nr` changes memory and a periodic audit is due after it.
fn audit_due(nr: u64) -> bool {
    use hypercall_abi::hypercall as h;
    let mmu = [
        h::HYPERVISOR_MMU_UPDATE,
        h::HYPERVISOR_MMUEXT_OP,
        h::HYPERVISOR_UPDATE_VA_MAPPING,
        h::HYPERVISOR_MEMORY_OP,
        h::HYPERVISOR_MULTICALL,
    ];
    if !FACTS.get().is_some_and(|f| f.mmu_audit) || !mmu.iter().any(|&m| u64::from(m) == nr) {
        return false;
    }
    MMU_CALLS.fetch_add(1, core::sync::atomic::Ordering::Relaxed) % AUDIT_EVERY == AUDIT_EVERY - 1
}

/// The references the hypervisor itself holds on `dom`'s frames: page-table roots, GDT and
/// LDT-shadow frames, registered `vcpu_info` frames of every vCPU and shared_info (a general
/// and a type reference each).
fn held_refs(dom: &Domain) -> Vec<Mfn> {
    let mut held = alloc::vec![dom.shared_info];
    for v in &dom.vcpus {
        for m in v
            .kernel_root
            .iter()
            .chain(v.user_root.iter())
            .chain(v.gdt_frames.iter())
            .chain(v.ldt_frames.iter().flatten())
            .chain(v.vcpu_info_frame.iter())
        {
            held.push(*m);
        }
    }
    held
}

/// Checks the frame table's invariants over every domain; a violation stops the machine (it
/// is a hypervisor bug).
fn audit_all(rt: &Runtime, when: &str) {
    audit_all_with(rt, None, when);
}

/// [`audit_all`], counting also `extra` (a domain taken out of the table).
fn audit_all_with(rt: &Runtime, extra: Option<&Domain>, when: &str) {
    let mut held = Vec::new();
    for d in rt.domains.iter().chain(extra) {
        held.extend(held_refs(d));
    }
    let lookup = |m: Mfn| {
        let n = held.iter().filter(|&&h| h == m).count();
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        (n, n)
    };
    let result = arch::mm::with_frame_table(|t, e| crate::mm::audit::audit(t, e, &lookup));
    match result {
        Some(Ok(s)) => log::info!(
            "mmu_audit ({when}): OK: {} domain frames, {} page tables, {} free",
            s.domain_frames,
            s.page_tables,
            s.free_frames
        ),
        Some(Err(v)) => stop_with(
            ExitCode::Panic,
            &alloc::format!("mmu_audit ({when}): frame table invariant broken: {v:?}"),
        ),
        None => {}
    }
}

/// Takes `dom` apart: drops the hypervisor's references, then every frame the domain holds;
/// `loaded`: this CPU's GDT and LDT areas show its frames and are cleared too. Returns the
/// frames that went back to the allocator.
fn teardown(dom: &mut Domain, loaded: bool) -> u64 {
    let before = arch::mm::free_frame_count();
    let id = dom.id;
    let held = held_refs(dom);
    arch::mm::with_frame_table(|t, e| {
        for m in &held {
            t.put_page_and_type(&mut *e, *m);
        }
        t.relinquish(&mut *e, id);
    });
    for v in &mut dom.vcpus {
        v.kernel_root = None;
        v.user_root = None;
        v.gdt_frames.clear();
        v.ldt_frames = [None; crate::guest::ldt::LDT_PAGES];
        v.vcpu_info_frame = None;
    }
    if loaded {
        // This CPU no longer shows the domain's descriptor pages.
        arch::load_ldt(0);
        for page in 0..crate::guest::ldt::LDT_PAGES {
            let _ = arch::map_ldt_page(page, None);
        }
        let _ = arch::gdt_load_guest_frames(&[]);
    }
    arch::mm::free_frame_count().saturating_sub(before)
}

/// The name of a shutdown code (`SHUTDOWN_*`), or "unknown reason N".
fn shutdown_name(code: u8) -> alloc::borrow::Cow<'static, str> {
    match hypercall_abi::sched::ShutdownReason::try_from(u32::from(code)) {
        Ok(r) => alloc::borrow::Cow::Borrowed(r.name()),
        Err(_) => alloc::borrow::Cow::Owned(alloc::format!("unknown reason {code}")),
    }
}
