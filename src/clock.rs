//! Wall-clock formatting in the wire profile's form (ISO-8601 UTC with milliseconds), and a
//! sleep on an optional monotonic deadline for `select!` loops.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `2022-04-26T13:15:00.000Z`.
pub fn iso8601(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Milliseconds since the epoch of `2022-04-26T13:15:00.000Z` (fraction optional, `Z` or
/// `+00:00`); None for anything else.
pub fn parse_iso8601_ms(text: &str) -> Option<u64> {
    let text = text.trim();
    let body = text
        .strip_suffix('Z')
        .or_else(|| text.strip_suffix("+00:00"))?;
    let (date, time) = body.split_once('T')?;
    let mut date_parts = date.split('-');
    let year: i64 = date_parts.next()?.parse().ok()?;
    let month: u32 = date_parts.next()?.parse().ok()?;
    let day: u32 = date_parts.next()?.parse().ok()?;
    if date_parts.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let (hms, fraction) = match time.split_once('.') {
        Some((hms, fraction)) => (hms, fraction),
        None => (time, ""),
    };
    let mut hms_parts = hms.split(':');
    let hour: u64 = hms_parts.next()?.parse().ok()?;
    let minute: u64 = hms_parts.next()?.parse().ok()?;
    let second: u64 = hms_parts.next()?.parse().ok()?;
    if hms_parts.next().is_some() || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    if !fraction.chars().all(|c| c.is_ascii_digit()) || fraction.len() > 9 {
        return None;
    }
    let millis: u64 = format!("{fraction:0<3}")[..3].parse().ok()?;
    let days = days_from_civil(year, month, day);
    if days < 0 {
        return None;
    }
    Some(((days as u64 * 86_400 + hour * 3600 + minute * 60 + second) * 1000) + millis)
}

fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Sleeps until `at`; never wakes when there is no deadline (a disabled `select!` timer).
pub async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_650_978_900_000 + 7);
        assert_eq!(iso8601(t), "2022-04-26T13:15:00.007Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(iso8601(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn parses_what_it_formats() {
        assert_eq!(
            parse_iso8601_ms("2022-04-26T13:15:00.007Z"),
            Some(1_650_978_900_007)
        );
        assert_eq!(
            parse_iso8601_ms("2022-04-26T13:15:00Z"),
            Some(1_650_978_900_000)
        );
        assert_eq!(
            parse_iso8601_ms("2000-02-29T00:00:00.5+00:00"),
            Some(951_782_400_500)
        );
        for bad in [
            "2022-13-01T00:00:00Z",
            "yesterday",
            "2022-04-26 13:15:00Z",
            "2022-04-26T13:15:00.x7Z",
            "",
        ] {
            assert_eq!(parse_iso8601_ms(bad), None, "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn round_trips(ms in 0u64..4_102_444_800_000) {
            let t = UNIX_EPOCH + Duration::from_millis(ms);
            proptest::prop_assert_eq!(parse_iso8601_ms(&iso8601(t)), Some(ms));
        }
    }
}
