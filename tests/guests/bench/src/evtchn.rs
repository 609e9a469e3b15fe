//! Event channels within one domain (`bench events`), on a loopback pair: port `b`, bound
//! with `EVTCHNOP_bind_interdomain(DOMID_SELF, a)` to the unbound port `a`, so that
//! `EVTCHNOP_send(b)` makes `a` pending on vCPU 0, the sending vCPU:
//!
//! - `evtchn-send`: the hypercall alone, with events masked (`evtchn_upcall_mask` set): the
//!   hypervisor sets `a`'s pending bit, the selector bit and `upcall_pending`, and returns
//!   without an upcall. Between runs (untimed) the guest clears the three again, so every run
//!   takes the full path;
//! - `evtchn-upcall-latency`: events enabled, from just before the send to the first
//!   instructions of the event callback (a two-instruction stub of this guest that reads the
//!   TSC, then jumps to the kit's upcall entry);
//! - `evtchn-send-upcall-round-trip`: events enabled, the send with its upcall: the kit's
//!   entry and dispatcher, an empty handler, the `iret` hypercall, back after the send.
//!
//! Then, with dom0's second vCPU, the ping-pong of `pingpong.rs` between vCPU 0 and vCPU 1:
//! `vcpu-event-round-trip` and `vcpu-yield-round-trip`.

use core::sync::atomic::{AtomicU64, Ordering};

use guest_support::{Checks, info};
use pv_guest_kit::abi::domid::DOMID_SELF;
use pv_guest_kit::arch::shared;
use pv_guest_kit::events::{self, Port};
use pv_guest_kit::hypercall::evtchn as raw;
use pv_guest_kit::time;

use crate::guest::{RUNS, WARMUP, bench, report, stamp, time as time_op};

/// Handler runs on port `a`.
static HANDLED: AtomicU64 = AtomicU64::new(0);

fn on_a(_: Port) {
    HANDLED.fetch_add(1, Ordering::Relaxed);
}

fn ignore(_: Port) {}

#[allow(
    unsafe_code,
    reason = "the event callback stub that stamps the TSC, and its registration"
)]
mod stub {
    use core::arch::global_asm;
    use core::sync::atomic::{AtomicU64, Ordering};

    use pv_guest_kit::abi::traps::CallbackType;
    use pv_guest_kit::errno::HypercallResult;
    use pv_guest_kit::hypercall::traps::callback_register;

    /// The TSC the stub read at its last entry.
    pub static UPCALL_TSC: AtomicU64 = AtomicU64::new(0);
    /// Where the stub continues: the kit's upcall entry.
    static KIT_ENTRY: AtomicU64 = AtomicU64::new(0);

    // Xen enters the callback with [rcx, r11, rip, cs, rflags, rsp, ss] on the stack; the stub
    // reads the TSC with RAX and RDX saved below that frame, and leaves it as it found it.
    global_asm!(
        ".pushsection .text.bench_upcall_stamp, \"ax\", @progbits",
        ".balign 16",
        ".globl bench_upcall_stamp_entry",
        "bench_upcall_stamp_entry:",
        "    push %rax",
        "    push %rdx",
        "    lfence",
        "    rdtsc",
        "    shl $32, %rdx",
        "    or %rdx, %rax",
        "    mov %rax, {tsc}(%rip)",
        "    pop %rdx",
        "    pop %rax",
        "    jmp *{kit}(%rip)",
        ".popsection",
        tsc = sym UPCALL_TSC,
        kit = sym KIT_ENTRY,
        options(att_syntax)
    );

    unsafe extern "C" {
        static bench_upcall_stamp_entry: u8;
    }

    /// Makes the stub the running vCPU's event callback (the kit's entry behind it).
    pub fn register() -> HypercallResult {
        KIT_ENTRY.store(
            pv_guest_kit::arch::upcall::entry_address(),
            Ordering::SeqCst,
        );
        let stub = core::ptr::addr_of!(bench_upcall_stamp_entry) as u64;
        // SAFETY: the stub preserves every register and the stack, and continues at the kit's
        // upcall entry, which takes any upcall frame.
        unsafe { callback_register(CallbackType::Event, 0, stub) }
    }
}

/// Runs the event-channel and vCPU benchmarks.
pub fn run(c: &mut Checks) {
    c.eq("events::init", events::init(), Ok(()));
    let pair = events::alloc_unbound(DOMID_SELF, on_a)
        .and_then(|a| Ok((a, raw::bind_interdomain(DOMID_SELF, a)?)));
    let Ok((a, b)) = pair else {
        c.fail("a loopback pair", format_args!("{pair:?}"));
        return;
    };
    // The new port `b` is pending at once (Xen's rule); nothing handles it.
    events::clear_pending(b);
    let _ = events::attach(b, 0, ignore);
    info(format_args!(
        "loopback pair: send on port {b} notifies port {a}"
    ));
    // The 10 ms periodic timer would raise VIRQ_TIMER in the middle of runs.
    let _ = time::stop_periodic(0);

    send_alone(c, a, b);
    upcall_latency(c, b);
    events::enable();
    HANDLED.store(0, Ordering::SeqCst);
    let _ = bench("evtchn-send-upcall-round-trip", || {
        let _ = events::send(b);
    });
    c.eq(
        "evtchn-send-upcall-round-trip: the handler ran once per send",
        HANDLED.load(Ordering::SeqCst),
        (WARMUP + RUNS) as u64,
    );
    crate::pingpong::vcpus(c);
}

/// `evtchn-send`: the send with events masked, the pending state cleared between runs.
fn send_alone(c: &mut Checks, a: Port, b: Port) {
    let Ok(vcpu) = shared::vcpu_info(0) else {
        c.fail("vCPU 0's vcpu_info", format_args!("not mapped"));
        return;
    };
    let was_enabled = events::disable();
    let mut samples = alloc::vec![0u64; RUNS];
    let mut refused = 0u32;
    let mut marked = 0usize;
    for i in 0..WARMUP + RUNS {
        let mut result = Ok(0);
        let cycles = time_op(&mut || result = raw::send(b));
        if result.is_err() {
            refused += 1;
        }
        let pending = events::clear_pending(a);
        let selector = vcpu.take_pending_sel() != 0;
        let upcall = vcpu.upcall_pending() != 0;
        vcpu.set_upcall_pending(0);
        if pending && selector && upcall {
            marked += 1;
        }
        if let Some(sample) = i.checked_sub(WARMUP).and_then(|j| samples.get_mut(j)) {
            *sample = cycles;
        }
    }
    c.eq("evtchn-send: every send returned 0", refused, 0);
    c.eq(
        "evtchn-send: every send set the pending bit, the selector and upcall_pending",
        marked,
        WARMUP + RUNS,
    );
    c.eq(
        "evtchn-send: no upcall with events masked",
        HANDLED.load(Ordering::SeqCst),
        0,
    );
    report("evtchn-send", &mut samples);
    events::restore(was_enabled);
}

/// `evtchn-upcall-latency`: send → the first instructions of the event callback.
fn upcall_latency(c: &mut Checks, b: Port) {
    c.eq(
        "the TSC-stamping stub registered as the event callback",
        stub::register(),
        Ok(0),
    );
    events::enable();
    let mut samples = alloc::vec![0u64; RUNS];
    let mut missed = 0u32;
    for i in 0..WARMUP + RUNS {
        stub::UPCALL_TSC.store(0, Ordering::SeqCst);
        let start = stamp();
        let _ = events::send(b);
        let entered = stub::UPCALL_TSC.load(Ordering::SeqCst);
        if entered == 0 {
            missed += 1;
        }
        if let Some(sample) = i.checked_sub(WARMUP).and_then(|j| samples.get_mut(j)) {
            *sample = entered.wrapping_sub(start);
        }
    }
    let _ = events::disable();
    c.eq(
        "evtchn-upcall-latency: every send entered the callback before returning",
        missed,
        0,
    );
    report("evtchn-upcall-latency", &mut samples);
    // Back to the kit's own entry (events::init only re-registers it now).
    c.eq(
        "the kit's upcall entry registered again",
        events::init(),
        Ok(()),
    );
}
