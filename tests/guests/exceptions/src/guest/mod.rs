//! The checks. Each exception is raised by a probe (see [`probe`]) with a recording handler on
//! its vector; the check compares the frame with what Xen 4.17 delivers:
//!
//! - the vector, delivered exactly once, and the error code (0 where the CPU pushes none);
//! - RIP at the faulting instruction for faults, after the instruction for traps and
//!   software interrupts;
//! - CS = `0xe030` (Xen clears the RPL when guest kernel mode was interrupted) with the
//!   pre-delivery `evtchn_upcall_mask` in bits 32–39, RFLAGS.IF = !mask, SS = `0xe02b` and RSP =
//!   the stack pointer at the instruction;
//! - execution continuing after the handler returns through the `iret` hypercall.

#[allow(
    unsafe_code,
    reason = "vCPU 1's code, segment loads and the GDT set-up"
)]
mod failsafe;
#[allow(unsafe_code, reason = "the instructions under test")]
mod probe;

use guest_support::{Checks, Name, info};
use pv_guest_kit::abi::segments::FLAT_KERNEL_SS;
use pv_guest_kit::arch::cpu;
use pv_guest_kit::arch::shared::{self, VcpuInfo};
use pv_guest_kit::frame::rflags;
use pv_guest_kit::{StartInfo, hypercall, println, traps};

use probe::{Probe, Taken};

pv_guest_kit::guest_kernel!(main);

/// The code selector in the frame when guest kernel mode was interrupted.
const KERNEL_CS_IN_FRAME: u16 = 0xe030;

/// An address in the guest half of the address space that nothing maps.
const UNMAPPED: u64 = 0x0000_1234_5678_9abc;

/// Virtual CR0.TS.
const CR0_TS: u64 = 1 << 3;
/// CR0.AM (alignment mask).
const CR0_AM: u64 = 1 << 18;
/// DR6.BS: single-step.
const DR6_BS: u64 = 1 << 14;
/// MXCSR.ZE: a zero-divide was flagged.
const MXCSR_ZE: u32 = 1 << 2;

/// Where the handler's RIP must point.
#[derive(Clone, Copy)]
enum At {
    /// At the instruction (a fault).
    Start,
    /// After it (a trap or software interrupt).
    End,
}

fn main(si: StartInfo) -> ! {
    println!("exceptions: trap table, bounce frames and iret on a PV guest");
    let mut c = Checks::new();

    c.eq(
        "set_trap_table installs the kit's stubs",
        traps::init(),
        Ok(0),
    );
    for vector in 0..=255u8 {
        traps::set_handler(vector, probe::record);
    }
    let vcpu = match shared::vcpu0() {
        Ok(vcpu) => vcpu,
        Err(err) => {
            c.fail(
                "map shared_info",
                format_args!("update_va_mapping: {err:?}"),
            );
            c.finish();
        }
    };
    c.eq("evtchn_upcall_mask is 1 at boot", vcpu.upcall_mask(), 1);
    info(format_args!(
        "evtchn_upcall_pending at boot: {}",
        vcpu.upcall_pending()
    ));

    faults(&mut c, &si);
    software_interrupts(&mut c);
    fpu(&mut c);
    event_mask(&mut c, &vcpu);
    if si.cmdline().split(' ').any(|word| word == "failsafe") {
        failsafe::run(&mut c);
    } else {
        info(format_args!(
            "failsafe callback: not tested (boot with the argument 'failsafe' and Xen's dom0_max_vcpus=2)"
        ));
    }
    c.finish()
}

/// Runs `probe` with the handler armed (resuming at `3:` if `resume`), and returns the last
/// exception taken.
fn run(resume: bool, probe: impl FnOnce() -> Probe) -> (Probe, Option<(Taken, u32)>) {
    probe::arm(resume);
    let p = probe();
    (p, probe::taken())
}

/// Checks that exactly one exception `vector` was taken with the expected frame.
fn expect(
    c: &mut Checks,
    name: &str,
    (p, taken): (Probe, Option<(Taken, u32)>),
    vector: u8,
    at: At,
    error_code: u64,
    mask_before: u8,
) -> Option<Taken> {
    let Some((t, count)) = taken else {
        c.fail(name, format_args!("no exception delivered"));
        return None;
    };
    let f = &t.frame;
    let rip = match at {
        At::Start => p.start,
        At::End => p.end,
    };
    let if_set = f.rflags & rflags::IF != 0;
    let ok = f.vector == u64::from(vector)
        && count == 1
        && f.error_code == error_code
        && f.rip == rip
        && f.selector() == KERNEL_CS_IN_FRAME
        && f.cs >> 40 == 0
        && f.saved_upcall_mask() == mask_before
        && if_set == (mask_before == 0)
        && f.ss & 0xffff == u64::from(FLAT_KERNEL_SS)
        && f.rsp == p.rsp;
    c.check(
        name,
        ok,
        format_args!(
            "vector {} taken {count}x (want {vector} once), error {:#x} (want {error_code:#x}), \
             rip {:#x} (want {rip:#x}), cs {:#x} (want {KERNEL_CS_IN_FRAME:#x} with mask \
             {mask_before} in bits 32-39), rflags {:#x}, ss {:#x}, rsp {:#x} (want {:#x})",
            f.vector, f.error_code, f.rip, f.cs, f.rflags, f.ss, f.rsp, p.rsp
        ),
    );
    Some(t)
}

fn faults(c: &mut Checks, si: &StartInfo) {
    expect(
        c,
        "#DE from div by zero: fault frame, resumed",
        run(true, probe::divide_error),
        0,
        At::Start,
        0,
        1,
    );

    // The single-step trap follows the instruction after popf on hardware; QEMU's TCG takes it
    // before that instruction runs. Either way the frame's RIP must say which happened.
    probe::arm(true);
    let (step, ran) = probe::single_step();
    let step_at = if ran { At::End } else { At::Start };
    info(format_args!(
        "single-step after popf: the next instruction ran before the trap: {ran}"
    ));
    if let Some(t) = expect(
        c,
        "#DB from single-step (popf TF): trap frame, RIP consistent with what ran",
        (step, probe::taken()),
        1,
        step_at,
        0,
        1,
    ) {
        c.check(
            "#DB single-step: RFLAGS.TF set in the frame",
            t.frame.rflags & rflags::TF != 0,
            format_args!("rflags {:#x}", t.frame.rflags),
        );
        c.check(
            "#DB single-step: DR6.BS set (get_debugreg(6))",
            t.dr6 & DR6_BS != 0,
            format_args!("dr6 {:#x}", t.dr6),
        );
    }
    expect(
        c,
        "#DB from icebp (int1): trap frame after the instruction",
        run(true, probe::icebp),
        1,
        At::End,
        0,
        1,
    );
    expect(
        c,
        "#BP from int3 (DPL-3 gate): trap frame after int3",
        run(false, probe::int3),
        3,
        At::End,
        0,
        1,
    );
    expect(
        c,
        "#UD from ud2: fault frame, resumed",
        run(true, probe::ud2),
        6,
        At::Start,
        0,
        1,
    );
    expect(
        c,
        "#GP(0) from hlt (not emulated for PV)",
        run(true, probe::hlt),
        13,
        At::Start,
        0,
        1,
    );
    expect(
        c,
        "#GP(0) from a non-canonical read",
        run(true, probe::non_canonical_read),
        13,
        At::Start,
        0,
        1,
    );

    if let Some(t) = expect(
        c,
        "#PF from a read of an unmapped address: error 0",
        run(true, || probe::read_at(UNMAPPED)),
        14,
        At::Start,
        0,
        1,
    ) {
        c.eq_hex(
            "#PF read: vcpu_info.arch.cr2 is the address",
            t.cr2_vcpu_info,
            UNMAPPED,
        );
        c.eq_hex(
            "#PF read: mov %cr2 in the handler is the address",
            t.cr2_register,
            UNMAPPED,
        );
    }
    if let Some(t) = expect(
        c,
        "#PF from a write to an unmapped address: error 2 (W)",
        run(true, || probe::write_at(UNMAPPED + 8)),
        14,
        At::Start,
        2,
        1,
    ) {
        c.eq_hex(
            "#PF write: vcpu_info.arch.cr2",
            t.cr2_vcpu_info,
            UNMAPPED + 8,
        );
    }
    if let Some(t) = expect(
        c,
        "#PF from a write to the read-only L4: error 3 (P|W)",
        run(true, || probe::write_at(si.pt_base)),
        14,
        At::Start,
        3,
        1,
    ) {
        c.eq_hex(
            "#PF write to L4: cr2 is pt_base",
            t.cr2_vcpu_info,
            si.pt_base,
        );
    }
    match si.initial_mapping(pv_guest_kit::arch::virt_base()) {
        Some(m) => {
            let inside = run(true, || probe::read_at(m.end - 8));
            c.check(
                "the initial mapping reaches its 4 MiB boundary (last word readable)",
                inside.1.is_none(),
                format_args!(
                    "end {:#x}: {:x?}",
                    m.end,
                    inside.1.map(|(t, _)| t.frame.vector)
                ),
            );
            expect(
                c,
                "the initial mapping ends at its 4 MiB boundary (#PF after it)",
                run(true, || probe::read_at(m.end)),
                14,
                At::Start,
                0,
                1,
            );
            info(format_args!(
                "initial mapping {:#x}..{:#x}, heap {:#x}..{:#x}",
                m.virt_base, m.end, m.stack_end, m.end
            ));
        }
        None => c.fail(
            "initial mapping",
            format_args!("inconsistent start_info: {si:?}"),
        ),
    }

    // #AC needs CR0.AM (the virtual CR0 reports it set) and a CPU that checks alignment at
    // CPL 3; QEMU's TCG never raises #AC. Either it is delivered with a fault frame, or nothing
    // is raised at all.
    let cr0 = cpu::read_cr0();
    info(format_args!(
        "virtual CR0 {cr0:#x} (AM {})",
        u8::from(cr0 & CR0_AM != 0)
    ));
    let ac = run(true, probe::misaligned_with_ac);
    match ac.1 {
        None => {
            info(format_args!(
                "#AC: not raised by this CPU (QEMU TCG does not check alignment)"
            ));
            c.pass("#AC from a misaligned read with RFLAGS.AC: not raised here, and nothing else delivered");
        }
        Some(_) => {
            expect(
                c,
                "#AC from a misaligned read with RFLAGS.AC: fault frame, error 0",
                ac,
                17,
                At::Start,
                0,
                1,
            );
        }
    }
    expect(
        c,
        "#UD from the forced-emulation prefix before a non-cpuid instruction",
        run(true, probe::forced_prefix_nop),
        6,
        At::Start,
        0,
        1,
    );
    c.check(
        "RFLAGS.AC clear again",
        cpu::rflags() & rflags::AC == 0,
        format_args!("rflags {:#x}", cpu::rflags()),
    );
}

fn software_interrupts(c: &mut Checks) {
    c.eq(
        "set_trap_table: int $0x80 gate with DPL 3",
        traps::set_gate(0x80, 3, false),
        Ok(0),
    );
    expect(
        c,
        "int $0x80 through a DPL-3 gate: vector 0x80, rip after the 2-byte int",
        run(false, probe::int_0x80),
        0x80,
        At::End,
        0,
        1,
    );
    c.eq(
        "set_trap_table: int $0x81 gate with DPL 0",
        traps::set_gate(0x81, 0, false),
        Ok(0),
    );
    expect(
        c,
        "int $0x81 through a DPL-0 gate: #GP((0x81 << 3) | 2)",
        run(true, probe::int_0x81),
        13,
        At::Start,
        (0x81 << 3) | 2,
        1,
    );
    expect(
        c,
        "int $0x82 with no gate: #GP((0x82 << 3) | 2)",
        run(true, probe::int_0x82),
        13,
        At::Start,
        (0x82 << 3) | 2,
        1,
    );
    // Xen delivers #BP without checking the virtual DPL, for both encodings of int3.
    c.eq(
        "set_trap_table: #BP gate with DPL 0",
        traps::set_gate(3, 0, false),
        Ok(0),
    );
    expect(
        c,
        "int3 (CC) through a DPL-0 gate: still #BP, rip after it",
        run(false, probe::int3),
        3,
        At::End,
        0,
        1,
    );
    expect(
        c,
        "int $3 (CD 03) through a DPL-0 gate: still #BP, rip after it",
        run(false, probe::int_3),
        3,
        At::End,
        0,
        1,
    );
    c.eq(
        "set_trap_table: #BP gate back to DPL 3",
        traps::set_gate(3, 3, false),
        Ok(0),
    );
}

fn fpu(c: &mut Checks) {
    c.eq(
        "fpu_taskswitch(1)",
        hypercall::traps::fpu_taskswitch(true),
        Ok(0),
    );
    c.check(
        "fpu_taskswitch(1) sets the virtual CR0.TS",
        cpu::read_cr0() & CR0_TS != 0,
        format_args!("cr0 {:#x}", cpu::read_cr0()),
    );
    // The handler does not touch TS: Xen clears the virtual CR0.TS itself when it delivers #NM,
    // so the retried instruction runs.
    if let Some(t) = expect(
        c,
        "#NM from fninit with TS set: fault frame, then the retry runs",
        run(false, probe::x87_instruction_retried),
        7,
        At::Start,
        0,
        1,
    ) {
        c.check(
            "#NM: virtual CR0.TS already clear in the handler (Xen clears it on delivery)",
            t.cr0 & CR0_TS == 0,
            format_args!("cr0 {:#x}", t.cr0),
        );
    }
    c.check(
        "TS clear after the #NM handler",
        cpu::read_cr0() & CR0_TS == 0,
        format_args!("cr0 {:#x}", cpu::read_cr0()),
    );
    c.eq(
        "fpu_taskswitch(1) again",
        hypercall::traps::fpu_taskswitch(true),
        Ok(0),
    );
    probe::clts();
    c.check(
        "clts (emulated) clears the virtual CR0.TS",
        cpu::read_cr0() & CR0_TS == 0,
        format_args!("cr0 {:#x}", cpu::read_cr0()),
    );
    let no_nm = run(true, probe::x87_instruction);
    c.check(
        "x87 instruction after clts: no #NM",
        no_nm.1.is_none(),
        format_args!("{:x?}", no_nm.1.map(|(t, _)| t.frame.vector)),
    );
    c.eq(
        "fpu_taskswitch(0)",
        hypercall::traps::fpu_taskswitch(false),
        Ok(0),
    );

    expect(
        c,
        "#MF from an unmasked x87 divide by zero, at the fwait",
        run(true, probe::x87_divide_by_zero),
        16,
        At::Start,
        0,
        1,
    );
    // Like #AC, #XM depends on the CPU: QEMU's TCG flags the exception in MXCSR but never
    // raises it (CR4.OSXMMEXCPT, bit 10, is set in the virtual CR4).
    let xm = run(true, probe::sse_divide_by_zero);
    let mxcsr = probe::mxcsr();
    info(format_args!(
        "SSE divide by zero: MXCSR after {mxcsr:#x}, virtual CR4 {:#x}",
        cpu::read_cr4()
    ));
    probe::restore_mxcsr();
    match xm.1 {
        None => c.check(
            "#XM from an unmasked SSE divide by zero: not raised here, MXCSR.ZE set",
            mxcsr & MXCSR_ZE != 0,
            format_args!("mxcsr {mxcsr:#x}"),
        ),
        Some(_) => {
            expect(
                c,
                "#XM from an unmasked SSE divide by zero: fault frame",
                xm,
                19,
                At::Start,
                0,
                1,
            );
        }
    }
}

fn event_mask(c: &mut Checks, vcpu: &VcpuInfo) {
    // Each case: the gate's interrupt flag, the mask before, then the frame's view, the mask in
    // the handler, and the mask after the iret hypercall.
    for (gate_masks, mask_before) in [(false, 0u8), (true, 0), (false, 1), (true, 1)] {
        let name_gate = if gate_masks {
            "interrupt gate (flag 4)"
        } else {
            "trap gate"
        };
        if traps::set_gate(3, 3, gate_masks) != Ok(0) {
            c.fail(
                "set_trap_table for the mask checks",
                format_args!("refused"),
            );
            return;
        }
        vcpu.set_upcall_mask(mask_before);
        let taken = run(false, probe::int3);
        let after = vcpu.upcall_mask();
        vcpu.set_upcall_mask(1);
        let name = Name::of(format_args!(
            "int3 via a {name_gate} with upcall mask {mask_before}: frame mask {mask_before}, IF {}",
            u8::from(mask_before == 0)
        ));
        if let Some(t) = expect(c, name.as_str(), taken, 3, At::End, 0, mask_before) {
            let want_in_handler = u8::from(gate_masks) | mask_before;
            let name = Name::of(format_args!(
                "int3 via a {name_gate} with upcall mask {mask_before}: mask {want_in_handler} in the handler, {mask_before} after iret"
            ));
            c.check(
                name.as_str(),
                t.mask_in_handler == want_in_handler && after == mask_before,
                format_args!("in handler {}, after {after}", t.mask_in_handler),
            );
        }
    }
    c.eq(
        "set_trap_table: #BP gate restored",
        traps::set_gate(3, 3, false),
        Ok(0),
    );
}
