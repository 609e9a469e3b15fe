//! The running hypervisor: the domains, the vCPU on this CPU, every entry from a guest, and the
//! way back. Safe code over the architecture layer's interface.

use crate::arch;
use crate::cpuinfo::CpuidResult;
use crate::domain::build::Built;
use crate::domain::{Domain, RunState};
use crate::exit::ExitCode;
use crate::guest::deliver;
use crate::guest::frame::{Frame, VECTOR_SYSCALL, VECTOR_SYSCALL32};
use crate::hypercall::{self, Completion, Ctx, GuestMemory, Platform};
use crate::mm::frame_table::{FrameTable, PageType};
use crate::mm::pagetable::{MmEnv, PtContext};
use crate::types::{DomId, Mfn, Paddr};
use alloc::string::String;
use alloc::vec::Vec;
use hypercall_abi::errno::Errno;
use hypercall_abi::segments::{FLAT_KERNEL_CS, FLAT_KERNEL_SS};
use spin::Mutex;

/// The hypervisor's state once domains run.
struct Runtime {
    /// All domains (just dom0 until the toolstack creates more).
    domains: Vec<Domain>,
    /// The domain and vCPU running on this CPU.
    current: (usize, usize),
}

/// Facts fixed at boot that hypercalls report.
struct BootFacts {
    /// The hypervisor command line (for `XENVER_commandline`).
    cmdline: String,
    /// The host memory map (for `XENMEM_machine_memory_map`).
    memory_map: Vec<hypercall_abi::memory::E820Entry>,
    /// The CPUID policy's platform facts.
    cpuid: crate::guest::cpuid::PolicyInput,
    /// `mmu_audit`: audit the frame table regularly and count leaks at dom0's end.
    mmu_audit: bool,
    /// Free frames before dom0 was built, plus the boot-module frames given back after.
    free_before_dom0: u64,
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

/// The machine services hypercalls use.
struct HwPlatform {
    facts: &'static BootFacts,
}

impl Platform for HwPlatform {
    fn console_write(&mut self, dom: &Domain, bytes: &[u8]) {
        if dom.privileged {
            arch::console::write_bytes(bytes);
        } else {
            // Other domains: printable characters only (issue 7 adds the prefix and limit).
            let mut clean = [0u8; 256];
            let n = bytes.len().min(clean.len());
            for (d, &s) in clean.iter_mut().zip(&bytes[..n]) {
                *d = if s == b'\n' || (0x20..0x7f).contains(&s) {
                    s
                } else {
                    b'?'
                };
            }
            arch::console::write_bytes(&clean[..n]);
        }
    }
    fn console_read(&mut self, buf: &mut [u8]) -> usize {
        let mut n = 0;
        while n < buf.len() {
            match arch::console::try_read() {
                Some(b) => {
                    buf[n] = b;
                    n += 1;
                }
                None => break,
            }
        }
        n
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
    fn zero_frame(&mut self, mfn: Mfn) {
        arch::mm::write_machine(mfn.paddr(), &[0u8; 4096]);
    }
    fn machine_memory_map(&self) -> Vec<hypercall_abi::memory::E820Entry> {
        self.facts.memory_map.clone()
    }
}

/// Starts dom0 (already built) on this CPU; never returns.
pub fn start_dom0(
    built: &Built,
    nr_pages: u64,
    audit: (bool, u64),
    cmdline: &str,
    memory_map: Vec<hypercall_abi::memory::E820Entry>,
) -> ! {
    let dom_id = DomId::DOM0;
    let mut dom = Domain::new(dom_id, true, 1, built.shared_info);
    dom.tot_pages = nr_pages;
    dom.max_pages = nr_pages;
    // The vCPU's reference on its page-table root (the builder's pin is the guest's own).
    let ctx = PtContext {
        dom: dom_id,
        privileged: true,
        io: true,
        xen_l4: arch::mm::xen_l4_slots(),
    };
    let took = arch::mm::with_frame_table(|t, e| {
        t.get_page_and_type(e, &ctx, built.l4, dom_id, PageType::L4)?;
        // The hypervisor's own reference on shared_info.
        t.get_page(built.shared_info, dom_id)
    });
    if !matches!(took, Some(Ok(()))) {
        stop_with(
            ExitCode::BootError,
            "dom0's page tables could not be referenced",
        );
    }
    let v = &mut dom.vcpus[0];
    v.online = true;
    v.kernel_root = Some(built.l4);
    v.kernel_ss = u64::from(FLAT_KERNEL_SS);
    v.kernel_sp = built.stack_top;
    let frame = Frame {
        rip: built.entry,
        cs: u64::from(FLAT_KERNEL_CS),
        rflags: 0x202,
        rsp: built.stack_top,
        ss: u64::from(FLAT_KERNEL_SS),
        rsi: built.start_info_va,
        ..Frame::default()
    };
    arch::guest::load_cr3(built.l4.paddr().0, true);
    arch::guest::set_guest_fs_base(0);
    arch::guest::set_guest_active_gs_base(0);
    FACTS.call_once(|| BootFacts {
        cmdline: String::from(cmdline),
        memory_map,
        cpuid: crate::guest::cpuid::PolicyInput {
            hardware_domain: false,
            tsc_khz: u32::try_from(arch::time::tsc_hz() / 1000).unwrap_or(u32::MAX),
            maddr_bits: u32::from(arch::cpu::identify().phys_addr_bits),
        },
        mmu_audit: audit.0,
        free_before_dom0: audit.1,
    });
    *RUNTIME.lock() = Some(Runtime {
        domains: alloc::vec![dom],
        current: (0, 0),
    });
    log::info!(
        "dom0: starting at {:#x}, start_info at {:#x}, stack {:#x}",
        built.entry,
        built.start_info_va,
        built.stack_top
    );
    arch::guest::enter(&frame)
}

/// Stops the machine after an error line.
fn stop_with(code: ExitCode, why: &str) -> ! {
    arch::console::emergency(format_args!("ERROR: {why}\n"));
    arch::panic::stop(code)
}

/// What to do after handling an entry.
enum After {
    /// Return to the guest.
    Return,
    /// Wait for an event, then return.
    Block,
}

/// Runs `f` on the current domain and vCPU with the guest frame.
fn with_current(frame: &mut Frame, f: impl FnOnce(&mut Ctx<'_>)) -> After {
    let mut guard = RUNTIME.lock();
    let Some(rt) = guard.as_mut() else {
        drop(guard);
        stop_with(ExitCode::Panic, "guest entry with no domain running");
    };
    let (d, v) = rt.current;
    let Some(facts) = FACTS.get() else {
        drop(guard);
        stop_with(ExitCode::Panic, "guest entry before boot finished");
    };
    let Some(dom) = rt.domains.get_mut(d) else {
        drop(guard);
        stop_with(ExitCode::Panic, "the current domain is gone");
    };
    let mut mem = HwGuestMemory;
    let mut plat = HwPlatform { facts };
    let mut cx = Ctx {
        dom,
        vcpu: v,
        frame,
        mem: &mut mem,
        plat: &mut plat,
        continuation: false,
        block: false,
        in_multicall: false,
    };
    f(&mut cx);
    let block = cx.block;
    let state = cx.dom.state;
    if state != RunState::Running {
        audit_teardown(cx.dom);
        let dom_id = cx.dom.id;
        let reason = cx.dom.crash_reason;
        let code = cx.dom.shutdown_code;
        let frame_copy = *cx.frame;
        drop(guard);
        domain_stopped(dom_id, state, reason, code, &frame_copy);
    }
    if block { After::Block } else { After::Return }
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
/// LDT-shadow frames of every vCPU (a general and a type reference each), shared_info (general).
fn held_refs(dom: &Domain) -> Vec<(Mfn, u32, u32)> {
    let mut held = alloc::vec![(dom.shared_info, 1, 0)];
    for v in &dom.vcpus {
        for m in v
            .kernel_root
            .iter()
            .chain(v.user_root.iter())
            .chain(v.gdt_frames.iter())
            .chain(v.ldt_frames.iter().flatten())
        {
            held.push((*m, 1, 1));
        }
    }
    held
}

/// Checks the frame table's invariants; a violation stops the machine (it is a hypervisor bug).
fn audit_domain(dom: &Domain, when: &str) {
    let held = held_refs(dom);
    let lookup = |m: Mfn| {
        held.iter()
            .filter(|(h, ..)| *h == m)
            .fold((0, 0), |(g, t), (_, hg, ht)| (g + hg, t + ht))
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

/// Takes `dom` apart: drops the hypervisor's references, then every frame the domain holds.
/// Returns the frames that went back to the allocator.
fn teardown(dom: &mut Domain) -> u64 {
    let before = arch::mm::free_frame_count();
    let id = dom.id;
    let held = held_refs(dom);
    arch::mm::with_frame_table(|t, e| {
        for (m, _, typed) in &held {
            if *typed > 0 {
                t.put_page_and_type(&mut *e, *m);
            } else {
                t.put_page_env(&mut *e, *m);
            }
        }
        t.relinquish(&mut *e, id);
    });
    for v in &mut dom.vcpus {
        v.kernel_root = None;
        v.user_root = None;
        v.gdt_frames.clear();
        v.ldt_frames = [None; crate::guest::ldt::LDT_PAGES];
    }
    // This CPU no longer shows the domain's descriptor pages.
    arch::load_ldt(0);
    for page in 0..crate::guest::ldt::LDT_PAGES {
        let _ = arch::map_ldt_page(page, None);
    }
    let _ = arch::gdt_load_guest_frames(&[]);
    arch::mm::free_frame_count().saturating_sub(before)
}

/// With `mmu_audit`: audits dom0 at its end, tears it down, and reports leaked frames.
fn audit_teardown(dom: &mut Domain) {
    let Some(facts) = FACTS.get().filter(|f| f.mmu_audit) else {
        return;
    };
    audit_domain(dom, "at shutdown");
    // Back on the hypervisor's own page tables: the domain's are about to go.
    arch::guest::load_cr3(arch::mm::hypervisor_root(), true);
    let owned = arch::mm::with_frame_table(|t, _| t.frames_of(dom.id).count() as u64).unwrap_or(0);
    let released = teardown(dom);
    let still = arch::mm::with_frame_table(|t, _| t.frames_of(dom.id).count() as u64).unwrap_or(0);
    let free = arch::mm::free_frame_count();
    let leaked = facts.free_before_dom0.saturating_sub(free);
    log::info!(
        "teardown: {} gave back {released} of its {owned} frames ({still} still owned); {free} frames free, {} before it was built: {leaked} leaked",
        dom.id,
        facts.free_before_dom0
    );
    let audit = arch::mm::with_frame_table(|t, e| crate::mm::audit::audit(t, e, &|_| (0, 0)));
    if !matches!(audit, Some(Ok(_))) || leaked != 0 || still != 0 {
        stop_with(
            ExitCode::Panic,
            &alloc::format!(
                "teardown left the frame table inconsistent or leaked frames: {audit:?}"
            ),
        );
    }
    log::info!("mmu_audit (after teardown): OK, no frame leaked");
}

/// The name of a shutdown code (`SHUTDOWN_*`), or "unknown reason N".
fn shutdown_name(code: u8) -> alloc::borrow::Cow<'static, str> {
    match hypercall_abi::sched::ShutdownReason::try_from(u32::from(code)) {
        Ok(r) => alloc::borrow::Cow::Borrowed(r.name()),
        Err(_) => alloc::borrow::Cow::Owned(alloc::format!("unknown reason {code}")),
    }
}

/// A domain stopped running. dom0's end ends the machine, with the exit code for its reason.
fn domain_stopped(
    dom: DomId,
    state: RunState,
    reason: Option<&'static str>,
    code: Option<u8>,
    frame: &Frame,
) -> ! {
    let exit = match state {
        RunState::Shutdown(r) => {
            log::info!("{dom} shut down: {}", shutdown_name(r));
            ExitCode::for_dom0_shutdown_code(r)
        }
        RunState::Crashed => {
            let e = |a: core::fmt::Arguments<'_>| arch::console::emergency(a);
            e(format_args!(
                "Domain {} crashed: {}\n",
                dom.0,
                reason.unwrap_or("unknown reason")
            ));
            e(format_args!(
                "RIP: {:04x}:{:016x}   RFLAGS: {:016x}\n",
                frame.cs, frame.rip, frame.rflags
            ));
            e(format_args!(
                "RSP: {:04x}:{:016x}   vector {} error {:#x}\n",
                frame.ss, frame.rsp, frame.vector, frame.error_code
            ));
            e(format_args!(
                "rax: {:016x}   rbx: {:016x}   rcx: {:016x}\n",
                frame.rax, frame.rbx, frame.rcx
            ));
            e(format_args!(
                "rdx: {:016x}   rsi: {:016x}   rdi: {:016x}\n",
                frame.rdx, frame.rsi, frame.rdi
            ));
            e(format_args!(
                "rbp: {:016x}   r8:  {:016x}   r9:  {:016x}\n",
                frame.rbp, frame.r8, frame.r9
            ));
            e(format_args!(
                "r10: {:016x}   r11: {:016x}   r12: {:016x}\n",
                frame.r10, frame.r11, frame.r12
            ));
            e(format_args!(
                "r13: {:016x}   r14: {:016x}   r15: {:016x}\n",
                frame.r13, frame.r14, frame.r15
            ));
            // A domain that recorded a shutdown code reports it instead of plain "crash".
            ExitCode::for_dom0_shutdown_code(
                code.unwrap_or(hypercall_abi::sched::ShutdownReason::Crash as u8),
            )
        }
        RunState::Running => ExitCode::Panic,
    };
    if dom == DomId::DOM0 {
        log::info!(
            "Hardware dom0 {}: stopping the machine",
            match exit {
                ExitCode::Dom0Poweroff => "halted",
                ExitCode::Dom0Reboot => "rebooting",
                ExitCode::Dom0Crash => "crashed",
                _ => "shut down",
            }
        );
    }
    arch::panic::stop(exit)
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
    let after = with_current(frame, |cx| match vector {
        VECTOR_SYSCALL | VECTOR_SYSCALL32 => {
            if cx.v().in_kernel && vector == VECTOR_SYSCALL {
                let (nr, args) = (cx.frame.rax, cx.frame.hypercall_args());
                if let Completion::Value(v) = hypercall::dispatch(cx, nr, args) {
                    cx.frame.rax = v;
                }
                if audit_due(nr) {
                    audit_domain(cx.dom, "periodic");
                }
            } else {
                deliver::user_syscall(cx, vector == VECTOR_SYSCALL32);
            }
        }
        v => deliver::exception(cx, (v & 0xff) as u8, error, cr2),
    });
    if let After::Block = after {
        block_current();
    }
    before_guest_return(frame);
    // Only a plain hypercall return may leave through `sysret` (the architecture layer takes
    // the syscall vector as the sign): flat 64-bit selectors and a canonical rip, which sysret
    // cannot check safely itself.
    if frame.vector == VECTOR_SYSCALL
        && !(frame.cs == u64::from(FLAT_KERNEL_CS)
            && frame.ss == u64::from(FLAT_KERNEL_SS)
            && hypercall::canonical(frame.rip))
    {
        frame.vector = 0;
    }
}

/// Waits (interrupts on) until an event is pending for the current vCPU.
fn block_current() {
    loop {
        let pending = {
            let guard = RUNTIME.lock();
            guard.as_ref().and_then(|rt| {
                let dom = rt.domains.get(rt.current.0)?;
                let mut b = [0u8];
                arch::mm::read_machine(Paddr(dom.vcpu_info_addr(0)), &mut b);
                Some(b[0] != 0)
            })
        };
        if pending != Some(false) {
            return;
        }
        arch::idle_wait();
    }
}

/// Last checks before returning to guest context (after interrupts, too): a domain that
/// stopped does not run again.
pub fn before_guest_return(_frame: &mut Frame) {}

/// The guest-return `iretq` faulted: the guest's CS or SS (from the iret hypercall) cannot be
/// loaded. Deliver the failsafe callback, as Xen does.
pub fn guest_return_faulted(frame: &mut Frame) {
    let mut ctx = arch::failed_iret_context(frame);
    // The CPU may fault reading the guest's CS or SS descriptor from an LDT page not yet in
    // the shadow.
    let ldt_offset = (frame.vector == 14)
        .then(|| arch::cpu::read_cr2().wrapping_sub(arch::ldt_area()))
        .filter(|&o| o < crate::guest::ldt::LDT_BYTES);
    let after = with_current(&mut ctx, |cx| {
        if ldt_offset.is_some_and(|o| crate::guest::ldt::map_shadow(cx, o)) {
            // The selector's descriptor is mapped now: return again.
            return;
        }
        let failsafe = cx.v().callbacks.failsafe;
        // The interrupted selectors cannot be reloaded; the data selectors are reported as 0.
        if !deliver::bounce(
            cx,
            crate::guest::bounce::Delivery::Failsafe([0; 4]),
            failsafe,
            0,
        ) {
            crate::hypercall::traps::crash(
                cx,
                "bad segment state on return, and no failsafe callback",
            );
        }
    });
    let _ = after;
    *frame = ctx;
}
