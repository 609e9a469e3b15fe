//! The local APIC (xAPIC, memory-mapped) and its timer; the legacy 8259 PICs are silenced.

use super::{cpu, mm, percpu, time};
use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::instructions::port::Port;

/// Vector of the local APIC timer.
pub const TIMER_VECTOR: u8 = 0xf0;
/// Vector of APIC internal errors.
pub const ERROR_VECTOR: u8 = 0xfe;
/// Spurious-interrupt vector.
pub const SPURIOUS_VECTOR: u8 = 0xff;

mod reg {
    pub const ID: usize = 0x20;
    pub const VERSION: usize = 0x30;
    pub const TPR: usize = 0x80;
    pub const EOI: usize = 0xb0;
    pub const SVR: usize = 0xf0;
    pub const ESR: usize = 0x280;
    pub const LVT_TIMER: usize = 0x320;
    pub const LVT_LINT0: usize = 0x350;
    pub const LVT_ERROR: usize = 0x370;
    pub const TIMER_INITIAL: usize = 0x380;
    pub const TIMER_CURRENT: usize = 0x390;
    pub const TIMER_DIVIDE: usize = 0x3e0;
}

const LVT_MASKED: u32 = 1 << 16;
/// Divide configuration value for "divide by 16".
const DIVIDE_BY_16: u32 = 0x3;

static MMIO: AtomicU64 = AtomicU64::new(0);
/// Timer ticks per second (after the divider).
static TIMER_HZ: AtomicU64 = AtomicU64::new(0);

fn read(r: usize) -> u32 {
    let base = MMIO.load(Ordering::Relaxed);
    if base == 0 {
        return 0;
    }
    // SAFETY: `base` maps the 4 KiB APIC register page uncached (set in `init`), and `r` is
    // one of the 16-byte-aligned register offsets in this module.
    unsafe { core::ptr::read_volatile((base + r as u64) as *const u32) }
}

fn write(r: usize, v: u32) {
    let base = MMIO.load(Ordering::Relaxed);
    if base == 0 {
        return;
    }
    // SAFETY: as in `read`.
    unsafe { core::ptr::write_volatile((base + r as u64) as *mut u32, v) }
}

/// Remaps the two 8259 PICs away from the exception vectors and masks every line.
fn silence_legacy_pics() {
    let mut m_cmd = Port::<u8>::new(0x20);
    let mut m_data = Port::<u8>::new(0x21);
    let mut s_cmd = Port::<u8>::new(0xa0);
    let mut s_data = Port::<u8>::new(0xa1);
    // SAFETY: standard 8259 initialisation sequence; the PICs belong to the hypervisor and
    // end up fully masked at vectors 0x20-0x2f, where a stray interrupt cannot pose as an
    // exception.
    unsafe {
        m_cmd.write(0x11);
        s_cmd.write(0x11);
        m_data.write(0x20);
        s_data.write(0x28);
        m_data.write(0x04);
        s_data.write(0x02);
        m_data.write(0x01);
        s_data.write(0x01);
        m_data.write(0xff);
        s_data.write(0xff);
    }
}

/// What [`init`] found.
#[derive(Debug, Clone, Copy)]
pub struct ApicInfo {
    /// Physical base of the register page.
    pub base: u64,
    /// This CPU's APIC id.
    pub id: u32,
    /// Version register (low byte: version; bits 16-23: max LVT entry).
    pub version: u32,
    /// Timer ticks per second with the divide-by-16 setting.
    pub timer_hz: u64,
}

/// Enables this CPU's local APIC, maps its registers, calibrates its timer against the TSC.
pub fn init() -> Result<ApicInfo, mm::MapError> {
    silence_legacy_pics();
    // SAFETY: IA32_APIC_BASE exists on every CPU with an APIC (checked by the caller).
    let msr = unsafe { cpu::rdmsr(cpu::msr::IA32_APIC_BASE) };
    let base = msr & 0x000f_ffff_ffff_f000;
    // SAFETY: setting the global-enable bit (11) keeps the APIC in xAPIC mode at its base.
    unsafe { cpu::wrmsr(cpu::msr::IA32_APIC_BASE, msr | (1 << 11)) };
    let va = mm::map_mmio(crate::types::Paddr(base), 4096)?;
    MMIO.store(va, Ordering::Relaxed);

    write(reg::TPR, 0);
    write(reg::SVR, 0x100 | u32::from(SPURIOUS_VECTOR));
    write(reg::LVT_LINT0, LVT_MASKED);
    write(reg::LVT_ERROR, u32::from(ERROR_VECTOR));
    write(reg::ESR, 0);
    write(reg::TIMER_DIVIDE, DIVIDE_BY_16);
    write(reg::LVT_TIMER, LVT_MASKED | u32::from(TIMER_VECTOR));

    // Calibrate: let the timer count down from the top for 10 ms of TSC time.
    write(reg::TIMER_INITIAL, u32::MAX);
    time::delay_ns(10_000_000);
    let elapsed = u64::from(u32::MAX - read(reg::TIMER_CURRENT));
    write(reg::TIMER_INITIAL, 0);
    let hz = elapsed * 100;
    TIMER_HZ.store(hz, Ordering::Relaxed);

    let id = read(reg::ID) >> 24;
    percpu::current().apic_id.store(id, Ordering::Relaxed);
    Ok(ApicInfo {
        base,
        id,
        version: read(reg::VERSION),
        timer_hz: hz,
    })
}

/// Signals end of interrupt.
pub fn eoi() {
    write(reg::EOI, 0);
}

/// Arms the one-shot timer to fire in `ns` nanoseconds (0 disarms).
pub fn arm_oneshot_ns(ns: u64) {
    let hz = TIMER_HZ.load(Ordering::Relaxed);
    let ticks = crate::time::ns_to_ticks(ns, hz).clamp(1, u64::from(u32::MAX));
    write(reg::LVT_TIMER, u32::from(TIMER_VECTOR));
    write(
        reg::TIMER_INITIAL,
        if ns == 0 {
            0
        } else {
            u32::try_from(ticks).unwrap_or(u32::MAX)
        },
    );
}

/// The timer interrupt handler.
pub fn timer_interrupt() {
    percpu::current()
        .timer_ticks
        .fetch_add(1, Ordering::Relaxed);
    eoi();
}

/// The APIC error interrupt handler.
pub fn error_interrupt() {
    write(reg::ESR, 0);
    let esr = read(reg::ESR);
    log::error!("local APIC error, ESR={esr:#x}");
    eoi();
}

/// Checks that the timer really interrupts: arms it for 1 ms, waits with interrupts on, and
/// returns how long the first tick took (None if none came within 100 ms).
pub fn check_timer_fires() -> Option<u64> {
    let ticks = &percpu::current().timer_ticks;
    let before = ticks.load(Ordering::Relaxed);
    let start = time::now_ns();
    arm_oneshot_ns(1_000_000);
    let deadline = start + 100_000_000;
    // Poll with interrupts on rather than `hlt`: a timer that never fires must not hang us.
    x86_64::instructions::interrupts::enable();
    let result = loop {
        if ticks.load(Ordering::Relaxed) != before {
            break Some(time::now_ns().saturating_sub(start));
        }
        if time::now_ns() > deadline {
            break None;
        }
        core::hint::spin_loop();
    };
    x86_64::instructions::interrupts::disable();
    if result.is_none() {
        arm_oneshot_ns(0);
    }
    result
}
