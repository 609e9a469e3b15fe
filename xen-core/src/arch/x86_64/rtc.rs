//! The CMOS real-time clock, read once at boot for the wallclock.

use crate::time::wallclock::RtcRegs;
use x86_64::instructions::port::Port;

/// Reads CMOS register `reg` (NMIs stay enabled: bit 7 of the index is clear).
fn cmos(reg: u8) -> u8 {
    let mut index = Port::<u8>::new(0x70);
    let mut data = Port::<u8>::new(0x71);
    // SAFETY: the CMOS index/data ports belong to the hypervisor; reading a clock register
    // has no side effects.
    unsafe {
        index.write(reg & 0x7f);
        data.read()
    }
}

/// Whether an update of the clock is in progress (status A bit 7).
fn updating() -> bool {
    cmos(0x0a) & 0x80 != 0
}

fn snapshot() -> RtcRegs {
    RtcRegs {
        sec: cmos(0x00),
        min: cmos(0x02),
        hour: cmos(0x04),
        day: cmos(0x07),
        month: cmos(0x08),
        year: cmos(0x09),
        century: cmos(0x32),
        status_b: cmos(0x0b),
    }
}

/// The clock's registers, read outside an update and twice the same (so no field was read
/// across a seconds tick). Bounded: a clock stuck updating still yields a reading.
pub fn read() -> RtcRegs {
    let mut last = snapshot();
    for _ in 0..1000 {
        for _ in 0..100_000 {
            if !updating() {
                break;
            }
        }
        let now = snapshot();
        if now == last {
            return now;
        }
        last = now;
    }
    last
}
