//! Test guest `bench`: measures, in TSC cycles, the paths a PV kernel uses most:
//!
//! - `null-hypercall`: `xen_version(XENVER_version)` through the hypercall page;
//! - `exception-round-trip`: `int3` → Xen → the kit's stub and an empty Rust handler → the
//!   `iret` hypercall → back;
//! - `forced-cpuid`: `cpuid` through Xen's forced-emulation prefix (a #UD that Xen decodes);
//! - `rdtsc`: two back-to-back TSC reads (the measurement's own cost).
//!
//! With the word `mm` on the command line (`bench mm`), also the memory-management and
//! user-mode paths (see `mm.rs`): `mmu-update-1`, `update-va-mapping-invlpg`,
//! `mmu-update-512`, `ptwr-write` and `user-syscall-round-trip`.
//!
//! With `events` (`bench events`, dom0 with two vCPUs: `dom0_max_vcpus=2`), also event
//! channels and scheduling within one domain (see `evtchn.rs` and `pingpong.rs`):
//! `evtchn-send`, `evtchn-upcall-latency`, `evtchn-send-upcall-round-trip`,
//! `vcpu-event-round-trip` and `vcpu-yield-round-trip`.
//!
//! With `ping` (`bench ping` as dom0, and the same image as domain 1 with `bench pong`:
//! hypervisor option `domU=2`), the same ping-pong between two domains:
//! `domain-event-round-trip` and `domain-yield-round-trip`. The `pong` side measures nothing
//! and prints two lines (a domU's console is rate-limited).
//!
//! Each is run many times, timed one by one; the guest prints `BENCH <name> <median> (min
//! <min>, <n> runs)` and, like every test guest, `PASS`/`FAIL` lines for the sanity of the
//! measured operations and a `RESULT` line. Under QEMU's TCG the cycles measure emulated path
//! length: compare only ratios taken in one run on the same QEMU.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]
#![deny(unsafe_code)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod evtchn;
#[cfg(target_os = "none")]
mod mm;
#[cfg(target_os = "none")]
mod pingpong;

#[cfg(target_os = "none")]
mod guest {
    use guest_support::Checks;
    use pv_guest_kit::arch::cpu;
    use pv_guest_kit::hypercall::version;
    use pv_guest_kit::traps::{self, TrapFrame};
    use pv_guest_kit::{StartInfo, println};

    pv_guest_kit::guest_kernel!(main);

    /// Timed runs per benchmark.
    pub const RUNS: usize = 2000;
    /// Untimed runs first (warm caches and translation blocks).
    pub const WARMUP: usize = 100;

    /// The TSC, fenced so that nothing before or after moves across the read.
    pub fn stamp() -> u64 {
        cpu::lfence();
        let tsc = cpu::rdtsc();
        cpu::lfence();
        tsc
    }

    /// Cycles of one run of `op`, fenced so the TSC reads bracket it.
    pub fn time(op: &mut impl FnMut()) -> u64 {
        let start = stamp();
        op();
        stamp().wrapping_sub(start)
    }

    /// Runs `op` `WARMUP + RUNS` times and prints the median and minimum of the timed runs.
    pub fn bench(name: &str, mut op: impl FnMut()) -> (u64, u64) {
        let mut samples = [0u64; RUNS];
        for _ in 0..WARMUP {
            op();
        }
        for sample in &mut samples {
            *sample = time(&mut op);
        }
        report(name, &mut samples)
    }

    /// Prints `BENCH <name> <median> (min <min>, <n> runs)` for `samples`; returns
    /// `(median, min)`.
    pub fn report(name: &str, samples: &mut [u64]) -> (u64, u64) {
        samples.sort_unstable();
        let median = samples.get(samples.len() / 2).copied().unwrap_or(0);
        let min = samples.first().copied().unwrap_or(0);
        println!("BENCH {name} {median} (min {min}, {} runs)", samples.len());
        (median, min)
    }

    fn empty_handler(_frame: &mut TrapFrame) {}

    #[allow(unsafe_code, reason = "the instruction under test")]
    fn int3() {
        // SAFETY: int3 is a trap the kit's stub and `empty_handler` return from.
        unsafe { core::arch::asm!("int3", options(nomem, nostack)) };
    }

    fn main(si: StartInfo) -> ! {
        let mode = |word: &str| si.cmdline().split_whitespace().any(|w| w == word);
        if mode("pong") {
            crate::pingpong::pong_domain();
        }
        println!("bench: TSC cycles of the hot paths (median and minimum)");
        let mut c = Checks::new();
        c.eq(
            "null hypercall: xen_version(version) = 0x00040011",
            version::version(),
            Ok(0x0004_0011),
        );
        c.eq("set_trap_table with the kit's stubs", traps::init(), Ok(0));
        traps::set_handler(3, empty_handler);
        let sig = cpu::xen_cpuid(0x4000_0000, 0);
        c.eq(
            "forced cpuid 0x40000000: Xen's signature",
            (sig.ebx, sig.ecx, sig.edx),
            (0x566e_6558, 0x6558_4d4d, 0x4d4d_566e),
        );

        let (tsc, _) = bench("rdtsc", || {});
        let (hypercall, _) = bench("null-hypercall", || {
            let _ = version::version();
        });
        let (exception, _) = bench("exception-round-trip", int3);
        let (cpuid, _) = bench("forced-cpuid", || {
            let _ = cpu::xen_cpuid(0, 0);
        });
        c.check(
            "every path costs more than two TSC reads",
            hypercall > tsc && exception > tsc && cpuid > tsc,
            format_args!(
                "rdtsc {tsc}, hypercall {hypercall}, exception {exception}, cpuid {cpuid}"
            ),
        );
        c.check(
            "an exception round trip costs more than a null hypercall",
            exception > hypercall,
            format_args!("exception {exception}, hypercall {hypercall}"),
        );
        if mode("mm") {
            crate::mm::run(&mut c, hypercall);
        }
        if mode("events") {
            crate::evtchn::run(&mut c);
        }
        if mode("ping") {
            crate::pingpong::ping_domain(&mut c);
        }
        c.finish()
    }
}

/// On a host OS there is nothing to run: the guest boots under a hypervisor.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("bench is a Xen PV guest kernel: build it with `cargo xtask build`");
    std::process::exit(2);
}
