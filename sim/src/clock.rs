//! Wall-clock helpers: milliseconds since the epoch and the wire profile's ISO-8601 UTC format.
//!
//! Formatted by hand (civil-from-days) so the simulator needs no date crate for one format.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the UNIX epoch (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    millis_since_epoch(SystemTime::now())
}

fn millis_since_epoch(t: SystemTime) -> u64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `2022-04-26T13:15:00.000Z`: ISO-8601 UTC with milliseconds, as every time on the wire.
pub fn iso8601_millis(t: SystemTime) -> String {
    let ms = millis_since_epoch(t);
    let secs = ms / 1000;
    let millis = ms % 1000;
    // `secs / 86_400` fits i64 for any u64 input.
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX);
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both are range-bounded above, so the casts cannot truncate.
    (year, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn formats_epoch() {
        assert_eq!(iso8601_millis(at(0)), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn formats_seed_timestamp() {
        // 2022-04-22T15:38:10.322Z, the seed's GDS `lastUpdated`.
        assert_eq!(
            iso8601_millis(at(1_650_641_890_322)),
            "2022-04-22T15:38:10.322Z"
        );
    }

    #[test]
    fn formats_leap_day_and_year_end() {
        assert_eq!(
            iso8601_millis(at(951_782_400_000)),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            iso8601_millis(at(1_704_067_199_999)),
            "2023-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn before_epoch_clamps() {
        let t = UNIX_EPOCH - Duration::from_secs(5);
        assert_eq!(iso8601_millis(t), "1970-01-01T00:00:00.000Z");
    }
}
