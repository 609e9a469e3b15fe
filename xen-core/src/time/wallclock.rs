//! The wallclock: decoding the CMOS real-time clock's registers into Unix time, and the
//! arithmetic of `shared_info`'s wallclock fields (the time of day at system time 0).

/// The CMOS clock's registers as read (before decoding).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RtcRegs {
    /// Register 0x00.
    pub sec: u8,
    /// Register 0x02.
    pub min: u8,
    /// Register 0x04 (bit 7 is PM in 12-hour mode).
    pub hour: u8,
    /// Register 0x07.
    pub day: u8,
    /// Register 0x08.
    pub month: u8,
    /// Register 0x09 (two digits).
    pub year: u8,
    /// Register 0x32 (the century, where the firmware keeps it; 0 if unknown).
    pub century: u8,
    /// Status register B (bit 1: 24-hour mode, bit 2: binary rather than BCD).
    pub status_b: u8,
}

/// Status B: the registers hold binary, not BCD.
const STATUS_B_BINARY: u8 = 1 << 2;
/// Status B: 24-hour mode.
const STATUS_B_24H: u8 = 1 << 1;

/// A BCD byte's value, `None` if a nibble is not a decimal digit.
fn from_bcd(v: u8) -> Option<u8> {
    let (hi, lo) = (v >> 4, v & 0xf);
    (hi < 10 && lo < 10).then_some(hi * 10 + lo)
}

/// Days from 1970-01-01 to `year-month-day` (proleptic Gregorian), for years from 1970.
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    // Shift the year to start in March, so the leap day is the last day of the year.
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).saturating_sub(719_468)
}

/// The Unix time (seconds) the registers show, `None` if they hold nonsense.
pub fn rtc_to_unix(r: RtcRegs) -> Option<u64> {
    let binary = r.status_b & STATUS_B_BINARY != 0;
    let dec = |v: u8| if binary { Some(v) } else { from_bcd(v) };
    let pm = r.status_b & STATUS_B_24H == 0 && r.hour & 0x80 != 0;
    let sec = dec(r.sec)?;
    let min = dec(r.min)?;
    let mut hour = dec(r.hour & 0x7f)?;
    if r.status_b & STATUS_B_24H == 0 {
        // 12-hour mode: 12 AM is 0, 12 PM is 12.
        hour %= 12;
        if pm {
            hour += 12;
        }
    }
    let day = dec(r.day)?;
    let month = dec(r.month)?;
    let year = dec(r.year)?;
    let century = match dec(r.century) {
        Some(c) if (19..=30).contains(&c) => u64::from(c),
        // No century register: two-digit years below 70 are 20xx.
        _ if year < 70 => 20,
        _ => 19,
    };
    if sec > 59 || min > 59 || hour > 23 || !(1..=31).contains(&day) || !(1..=12).contains(&month) {
        return None;
    }
    let full_year = century * 100 + u64::from(year);
    if full_year < 1970 {
        return None;
    }
    let days = days_from_civil(full_year, u64::from(month), u64::from(day));
    Some(days * 86_400 + u64::from(hour) * 3600 + u64::from(min) * 60 + u64::from(sec))
}

/// The wallclock at system time 0, `(seconds, nanoseconds)`, from a reading of `unix_secs`
/// taken at system time `system_ns` (what `shared_info.wc_sec`/`wc_nsec` hold).
pub fn boot_wallclock(unix_secs: u64, system_ns: u64) -> (u64, u32) {
    let total = u128::from(unix_secs) * 1_000_000_000;
    let at_zero = total.saturating_sub(u128::from(system_ns));
    let secs = u64::try_from(at_zero / 1_000_000_000).unwrap_or(u64::MAX);
    let nsec = u32::try_from(at_zero % 1_000_000_000).unwrap_or(0);
    (secs, nsec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bcd(v: u8) -> u8 {
        (v / 10) << 4 | (v % 10)
    }

    #[test]
    fn epoch_and_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        // 2026-11-28 00:00:00 UTC.
        assert_eq!(days_from_civil(2026, 11, 28) * 86_400, 1_795_824_000);
    }

    #[test]
    fn bcd_24_hour() {
        let r = RtcRegs {
            sec: bcd(30),
            min: bcd(15),
            hour: bcd(7),
            day: bcd(28),
            month: bcd(11),
            year: bcd(26),
            century: bcd(20),
            status_b: STATUS_B_24H,
        };
        assert_eq!(
            rtc_to_unix(r),
            Some(1_795_824_000 + 7 * 3600 + 15 * 60 + 30)
        );
    }

    #[test]
    fn binary_12_hour_and_missing_century() {
        let r = RtcRegs {
            sec: 0,
            min: 0,
            hour: 0x80 | 12, // 12 PM
            day: 1,
            month: 1,
            year: 24,
            century: 0,
            status_b: STATUS_B_BINARY,
        };
        let noon = days_from_civil(2024, 1, 1) * 86_400 + 12 * 3600;
        assert_eq!(rtc_to_unix(r), Some(noon));
        let midnight = RtcRegs { hour: 12, ..r };
        assert_eq!(rtc_to_unix(midnight), Some(noon - 12 * 3600));
    }

    #[test]
    fn nonsense_is_refused() {
        let good = RtcRegs {
            sec: 0,
            min: 0,
            hour: 0,
            day: 1,
            month: 1,
            year: bcd(24),
            century: bcd(20),
            status_b: STATUS_B_24H,
        };
        assert!(rtc_to_unix(good).is_some());
        assert_eq!(
            rtc_to_unix(RtcRegs {
                month: 0x13,
                ..good
            }),
            None
        );
        assert_eq!(rtc_to_unix(RtcRegs { sec: 0x5a, ..good }), None);
        assert_eq!(rtc_to_unix(RtcRegs { day: 0, ..good }), None);
        assert_eq!(
            rtc_to_unix(RtcRegs {
                year: bcd(60),
                century: bcd(19),
                ..good
            }),
            None
        );
    }

    #[test]
    fn wallclock_at_system_time_zero() {
        assert_eq!(boot_wallclock(1000, 2_500_000_000), (997, 500_000_000));
        assert_eq!(boot_wallclock(1, 5_000_000_000), (0, 0));
    }
}
