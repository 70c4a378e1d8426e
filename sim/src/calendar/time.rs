//! ISO-8601 for the calendar: parsing the query's `fromDate`/`toDate` and scenario `start`s, and
//! formatting booking times (always UTC with milliseconds, as every time on the wire).

use std::time::{Duration, UNIX_EPOCH};

use crate::clock::iso8601_millis;

/// Earliest instant a booking may have: 1970-01-01T00:00:00.000Z.
pub(crate) const MIN_MS: i64 = 0;
/// Latest instant a booking may have: 9999-12-31T23:59:59.999Z.
pub(crate) const MAX_MS: i64 = 253_402_300_799_999;

/// `2022-04-26T13:15:00.000Z`. Instants outside [`MIN_MS`, `MAX_MS`] are clamped.
pub(crate) fn format_ms(ms: i64) -> String {
    let ms = u64::try_from(ms.clamp(MIN_MS, MAX_MS)).unwrap_or(0);
    iso8601_millis(UNIX_EPOCH + Duration::from_millis(ms))
}

/// Milliseconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM|±HHMM)`. The fraction
/// may have 1 to 9 digits (truncated to milliseconds); `T` and `Z` may be lower case; a space where
/// the offset's sign belongs is read as `+` (an unencoded `+` in a query string decodes to a space).
pub(crate) fn parse_iso8601(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        part.iter().all(u8::is_ascii_digit).then(|| {
            part.iter()
                .fold(0_i64, |acc, d| acc * 10 + i64::from(d - b'0'))
        })
    };
    let year = num(0, 4)?;
    let month = num(5, 2)?;
    let day = num(8, 2)?;
    let hour = num(11, 2)?;
    let minute = num(14, 2)?;
    let second = num(17, 2)?;
    if b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || !matches!(b.get(10), Some(b'T' | b't'))
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
    {
        return None;
    }
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let digits = i - start;
        if !(1..=9).contains(&digits) {
            return None;
        }
        for k in 0..3 {
            millis = millis * 10
                + b.get(start + k)
                    .filter(|_| k < digits)
                    .map_or(0, |d| i64::from(d - b'0'));
        }
    }
    let offset_mins = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-' | b' ') => {
            let oh = num(i + 1, 2)?;
            let (om, end) = if b.get(i + 3) == Some(&b':') {
                (num(i + 4, 2)?, i + 6)
            } else {
                (num(i + 3, 2)?, i + 5)
            };
            if end != b.len() || oh > 23 || om > 59 {
                return None;
            }
            let m = oh * 60 + om;
            if *sign == b'-' { -m } else { m }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_mins * 60;
    Some(secs * 1000 + millis)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_the_seed_times() {
        for s in [
            "2022-04-26T13:15:00.000Z",
            "2022-04-23T18:58:17.284Z",
            "2000-02-29T00:00:00.000Z",
            "1970-01-01T00:00:00.000Z",
            "2023-12-31T23:59:59.999Z",
        ] {
            let ms = parse_iso8601(s).expect(s);
            assert_eq!(format_ms(ms), s);
        }
        assert_eq!(
            parse_iso8601("2022-04-22T15:38:10.322Z"),
            Some(1_650_641_890_322)
        );
    }

    #[test]
    fn offsets_fractions_and_case() {
        let z = parse_iso8601("2022-04-26T13:15:00Z");
        assert_eq!(z, parse_iso8601("2022-04-26T13:15:00.000Z"));
        assert_eq!(z, parse_iso8601("2022-04-26t13:15:00z"));
        assert_eq!(z, parse_iso8601("2022-04-26T15:15:00+02:00"));
        assert_eq!(z, parse_iso8601("2022-04-26T15:15:00 02:00"));
        assert_eq!(z, parse_iso8601("2022-04-26T08:15:00-0500"));
        assert_eq!(
            parse_iso8601("2022-04-26T13:15:00.123456789Z"),
            z.map(|v| v + 123)
        );
        assert_eq!(parse_iso8601("2022-04-26T13:15:00.5Z"), z.map(|v| v + 500));
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "",
            "yesterday",
            "2022-04-26",
            "2022-04-26T13:15:00",
            "2022-02-29T00:00:00Z",
            "2022-13-01T00:00:00Z",
            "2022-04-26T24:00:00Z",
            "2022-04-26T13:15:00.Z",
            "2022-04-26T13:15:00.0000000000Z",
            "2022-04-26T13:15:00Zjunk",
            "2022-04-26T13:15:00+2:00",
            "2022-04-26 13:15:00Z",
            "+022-04-26T13:15:00Z",
        ] {
            assert_eq!(parse_iso8601(s), None, "{s}");
        }
    }
}
