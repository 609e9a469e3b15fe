//! Raising exceptions and recording what the handler saw.
//!
//! Every probe is one `asm!` block: optional set-up instructions, then the instruction under
//! test between the local labels `2:` and `3:`. The block stores the address of `3:` in
//! [`RESUME`] before running it, so the handler can resume after the instruction, and reports
//! both addresses and the stack pointer at the instruction, which the checks compare with the
//! frame.

use core::arch::asm;
use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use pv_guest_kit::arch::{cpu, shared};
use pv_guest_kit::frame::rflags;
use pv_guest_kit::hypercall;
use pv_guest_kit::traps::TrapFrame;

/// Where the handler resumes (`3:` of the current probe), or 0 to return to the frame's RIP.
pub static RESUME: AtomicU64 = AtomicU64::new(0);
/// Exceptions taken, per vector.
static COUNTS: [AtomicU32; 256] = [const { AtomicU32::new(0) }; 256];
/// The last frame, as the handler received it (before any change).
static LAST: spin::Mutex<Option<Taken>> = spin::Mutex::new(None);
/// Set by probes that want the handler to clear virtual CR0.TS (for #NM).
pub static CLEAR_TS: AtomicU8 = AtomicU8::new(0);

/// What the handler observed.
#[derive(Clone, Copy, Debug)]
pub struct Taken {
    /// The frame as delivered.
    pub frame: TrapFrame,
    /// `evtchn_upcall_mask` inside the handler.
    pub mask_in_handler: u8,
    /// `vcpu_info.arch.cr2` inside the handler.
    pub cr2_vcpu_info: u64,
    /// `mov %cr2` inside the handler (emulated).
    pub cr2_register: u64,
    /// `mov %cr0` inside the handler (emulated; TS is bit 3).
    pub cr0: u64,
    /// DR6 through `get_debugreg(6)` inside the handler.
    pub dr6: u64,
}

/// The addresses of a probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The instruction under test (`2:`).
    pub start: u64,
    /// Just after it (`3:`).
    pub end: u64,
    /// `rsp` when the instruction ran.
    pub rsp: u64,
}

/// The handler installed for every vector the guest tests.
pub fn record(frame: &mut TrapFrame) {
    let vector = usize::try_from(frame.vector).unwrap_or(0);
    let count = COUNTS
        .get(vector)
        .map_or(0, |c| c.fetch_add(1, Ordering::SeqCst) + 1);
    let vcpu = shared::vcpu0().ok();
    let mut taken = Taken {
        frame: *frame,
        mask_in_handler: vcpu.map_or(0xff, |v| v.upcall_mask()),
        cr2_vcpu_info: vcpu.map_or(0, |v| v.cr2()),
        cr2_register: 0,
        cr0: cpu::read_cr0(),
        dr6: 0,
    };
    match frame.vector {
        1 => {
            taken.dr6 = get_debugreg(6);
            frame.rflags &= !rflags::TF;
        }
        7 if CLEAR_TS.load(Ordering::SeqCst) != 0 || count > 3 => {
            // Clear TS so that the FPU instruction can run when it is retried.
            let _ = hypercall::traps::fpu_taskswitch(false);
        }
        14 => taken.cr2_register = cpu::read_cr2(),
        16 => clear_x87_exception(),
        17 => frame.rflags &= !rflags::AC,
        19 => clear_sse_exception(),
        _ => {}
    }
    *LAST.lock() = Some(taken);
    let resume = RESUME.load(Ordering::SeqCst);
    if resume != 0 {
        frame.rip = resume;
    } else if count > 3 {
        // A fault that keeps coming back: give up on it rather than loop.
        frame.rip = END_OF_LOOP.load(Ordering::SeqCst);
    }
}

/// Where a probe that retries its instruction goes if the retry keeps faulting.
pub static END_OF_LOOP: AtomicU64 = AtomicU64::new(0);

/// Forgets the last exception and the counts, and sets where the handler resumes.
pub fn arm(resume_after: bool) {
    *LAST.lock() = None;
    for count in &COUNTS {
        count.store(0, Ordering::SeqCst);
    }
    RESUME.store(u64::from(resume_after), Ordering::SeqCst);
}

/// The last exception taken since [`arm`], and how many were taken of its vector.
pub fn taken() -> Option<(Taken, u32)> {
    let last = (*LAST.lock())?;
    let vector = usize::try_from(last.frame.vector).ok()?;
    Some((last, COUNTS.get(vector)?.load(Ordering::SeqCst)))
}

/// `get_debugreg(reg)` (hypercall 9): returns the value itself.
fn get_debugreg(reg: u64) -> u64 {
    // SAFETY: get_debugreg reads a virtual debug register; no memory argument.
    let ret = unsafe { hypercall::hypercall1(hypercall_abi_nr::GET_DEBUGREG, reg) };
    ret.cast_unsigned()
}

mod hypercall_abi_nr {
    pub const GET_DEBUGREG: u32 = pv_guest_kit::abi::hypercall::HYPERVISOR_GET_DEBUGREG;
}

/// The x87 control word with every exception masked (the value after `fninit`).
static FPU_CW_MASKED: u16 = 0x037f;
/// The x87 control word with only the zero-divide exception (ZM, bit 2) unmasked.
static FPU_CW_UNMASK_ZE: u16 = 0x037b;
/// MXCSR with every exception masked (the reset value).
static MXCSR_MASKED: u32 = 0x1f80;
/// MXCSR with only the zero-divide exception (ZM, bit 9) unmasked.
static MXCSR_UNMASK_ZE: u32 = 0x1d80;
/// 0.0f32 and 1.0f32 as bits.
static F32_ZERO: u32 = 0;
static F32_ONE: u32 = 0x3f80_0000;

fn clear_x87_exception() {
    // SAFETY: clears the x87 exception flags and masks them again; the FPU is the guest's own
    // and nothing else of the kit uses it.
    unsafe {
        asm!("fnclex", "fldcw word ptr [rip + {cw}]", cw = sym FPU_CW_MASKED, options(nostack))
    };
}

fn clear_sse_exception() {
    // SAFETY: restores the reset MXCSR (all exceptions masked, flags clear).
    unsafe { asm!("ldmxcsr dword ptr [rip + {m}]", m = sym MXCSR_MASKED, options(nostack)) };
}

/// Runs `$pre` set-up instructions, then `$insn` between the labels `2:` and `3:`, with
/// [`RESUME`] set to `3:` if it was armed non-zero.
macro_rules! probe {
    ([$($pre:literal),*], [$($insn:literal),+] $(, $($ops:tt)*)?) => {{
        let start: u64;
        let end: u64;
        let rsp: u64;
        // SAFETY: the instruction under test raises an exception that the guest's handler takes
        // and returns from (at `3:` or retrying it); every register it changes is declared.
        unsafe {
            asm!(
                "lea {s}, [rip + 2f]",
                "lea {e}, [rip + 3f]",
                "cmp qword ptr [rip + {resume}], 0",
                "je 4f",
                "mov qword ptr [rip + {resume}], {e}",
                "4:",
                $($pre,)*
                "mov {sp}, rsp",
                "2:",
                $($insn,)+
                "3:",
                s = out(reg) start,
                e = out(reg) end,
                sp = out(reg) rsp,
                resume = sym RESUME,
                $($($ops)*)?
            );
        }
        Probe { start, end, rsp }
    }};
}

/// `div ecx` with ecx = 0: #DE.
pub fn divide_error() -> Probe {
    probe!([], ["div ecx"], inout("eax") 1u32 => _, inout("edx") 0u32 => _, in("ecx") 0u32)
}

/// `popf` with TF set, then `inc rcx`: #DB. Returns whether the `inc` ran before the trap.
pub fn single_step() -> (Probe, bool) {
    let mut counter: u64 = 0;
    let probe = probe!(
        ["pushfq", "or qword ptr [rsp], 0x100", "popfq"],
        ["inc rcx"],
        inout("rcx") counter
    );
    (probe, counter == 1)
}

/// The MXCSR value now.
pub fn mxcsr() -> u32 {
    let mut value: u32 = 0;
    // SAFETY: stmxcsr stores MXCSR into `value`.
    unsafe { asm!("stmxcsr dword ptr [{v}]", v = in(reg) &raw mut value, options(nostack)) };
    value
}

/// `icebp` (`int1`, opcode F1).
pub fn icebp() -> Probe {
    probe!([], [".byte 0xf1"])
}

/// `int3` (CC).
pub fn int3() -> Probe {
    probe!([], ["int3"])
}

/// `int $3` (CD 03).
pub fn int_3() -> Probe {
    probe!([], [".byte 0xcd, 0x03"])
}

/// `ud2`.
pub fn ud2() -> Probe {
    probe!([], ["ud2"])
}

/// `hlt`, which Xen does not emulate for PV guests.
pub fn hlt() -> Probe {
    probe!([], ["hlt"])
}

/// A read of a non-canonical address: #GP(0).
pub fn non_canonical_read() -> Probe {
    probe!([], ["mov rax, qword ptr [rax]"], inout("rax") 0x8000_0000_0000_0000u64 => _)
}

/// A read of `address`.
pub fn read_at(address: u64) -> Probe {
    probe!([], ["mov rax, qword ptr [rax]"], inout("rax") address => _)
}

/// A write to `address`.
pub fn write_at(address: u64) -> Probe {
    probe!([], ["mov qword ptr [rax], rcx"], in("rax") address, in("rcx") 0u64)
}

/// An x87 instruction (`fninit`) while virtual CR0.TS may be set.
pub fn x87_instruction() -> Probe {
    probe!([], ["fninit"])
}

/// 1.0 / 0.0 on the x87 with zero-divide unmasked, then `fwait`: #MF at the `fwait`.
pub fn x87_divide_by_zero() -> Probe {
    probe!(
        [
            "fninit",
            "fldcw word ptr [rip + {cw}]",
            "fld1",
            "fdiv dword ptr [rip + {zero}]"
        ],
        ["fwait"],
        cw = sym FPU_CW_UNMASK_ZE,
        zero = sym F32_ZERO
    )
}

/// 1.0 / 0.0 with SSE and zero-divide unmasked in MXCSR: #XM at the `divss`.
pub fn sse_divide_by_zero() -> Probe {
    probe!(
        [
            "ldmxcsr dword ptr [rip + {unmask}]",
            "movss xmm0, dword ptr [rip + {one}]",
            "xorps xmm1, xmm1"
        ],
        ["divss xmm0, xmm1"],
        unmask = sym MXCSR_UNMASK_ZE,
        one = sym F32_ONE,
        out("xmm0") _,
        out("xmm1") _
    )
}

/// RFLAGS.AC set, then a misaligned 4-byte read; AC is cleared again afterwards.
pub fn misaligned_with_ac() -> Probe {
    let probe = probe!(
        ["pushfq", "or qword ptr [rsp], 0x40000", "popfq"],
        ["mov eax, dword ptr [rsp + 1]"],
        out("eax") _
    );
    clear_ac();
    probe
}

fn clear_ac() {
    // SAFETY: clears RFLAGS.AC on the stack and reloads the flags.
    unsafe { asm!("pushfq", "and qword ptr [rsp], {mask}", "popfq", mask = in(reg) !rflags::AC) };
}

/// `ud2; .ascii "xen"; nop`: the forced-emulation prefix before something other than `cpuid`.
pub fn forced_prefix_nop() -> Probe {
    probe!([], [".byte 0x0f, 0x0b, 0x78, 0x65, 0x6e", "nop"])
}

/// `clts` (emulated by Xen: clears the virtual CR0.TS).
pub fn clts() {
    // SAFETY: clts only clears CR0.TS (virtual, for a PV guest).
    unsafe { asm!("clts", options(nomem, nostack)) };
}

/// Restores the reset MXCSR.
pub fn restore_mxcsr() {
    clear_sse_exception();
}

/// `int $0x80`.
pub fn int_0x80() -> Probe {
    probe!([], ["int 0x80"])
}

/// `int $0x81`.
pub fn int_0x81() -> Probe {
    probe!([], ["int 0x81"])
}

/// `int $0x82`.
pub fn int_0x82() -> Probe {
    probe!([], ["int 0x82"])
}

/// Retries `fninit` after #NM: the handler leaves RIP alone (or gives up after 3 faults).
pub fn x87_instruction_retried() -> Probe {
    probe!(
        ["lea {eol}, [rip + 3f]", "mov qword ptr [rip + {end_of_loop}], {eol}"],
        ["fninit"],
        eol = out(reg) _,
        end_of_loop = sym END_OF_LOOP
    )
}
