//! Dates for `Retry-After` and cookie `Expires`: the lenient algorithm of RFC 6265
//! §5.1.1, which reads all three HTTP-date forms of RFC 9110 §5.6.7 (IMF-fixdate,
//! RFC 850 with two-digit years, asctime) and the `Wed, 21-Oct-2015 07:28:00 GMT` form
//! cookies often use. Times are taken as UTC whatever zone name follows. No clock here:
//! the caller passes `now_unix_s`.

use super::trim_ows;

/// Seconds since the Unix epoch of an HTTP-date or cookie date; dates before 1970 give
/// 0. `None` when the text holds no valid date.
pub fn parse_http_date(text: &[u8]) -> Option<u64> {
    let mut time = None;
    let mut day = None;
    let mut month = None;
    let mut year = None;
    for token in text.split(|&b| is_delimiter(b)).filter(|t| !t.is_empty()) {
        if time.is_none()
            && let Some(t) = parse_time(token)
        {
            time = Some(t);
        } else if day.is_none()
            && let Some(d) = leading_digits(token, 1, 2)
        {
            day = Some(d);
        } else if month.is_none()
            && let Some(m) = parse_month(token)
        {
            month = Some(m);
        } else if year.is_none()
            && let Some(y) = leading_digits(token, 2, 4)
        {
            year = Some(y);
        }
    }
    let ((hour, minute, second), day, month, mut year) = (time?, day?, month?, year?);
    if (70..=99).contains(&year) {
        year += 1900;
    } else if year <= 69 {
        year += 2000;
    }
    if year < 1601 || hour > 23 || minute > 59 || second > 59 || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
    Some(u64::try_from(secs).unwrap_or(0))
}

/// The delay in seconds a `Retry-After` value asks for (RFC 9110 §10.2.3): delta-seconds
/// as given (capped at 2³¹ like an overflowing cache age), or the seconds from
/// `now_unix_s` until an HTTP-date (0 when it has passed). `None` when the value is
/// neither.
pub fn retry_after_delay(value: &[u8], now_unix_s: u64) -> Option<u64> {
    const CAP: u64 = 1 << 31;
    let value = trim_ows(value);
    if !value.is_empty() && value.iter().all(u8::is_ascii_digit) {
        let secs = value.iter().try_fold(0u64, |acc, &b| acc.checked_mul(10)?.checked_add(u64::from(b - b'0')));
        return Some(secs.map_or(CAP, |s| s.min(CAP)));
    }
    parse_http_date(value).map(|at| at.saturating_sub(now_unix_s))
}

/// RFC 6265 §5.1.1 delimiter: HTAB, SP through '/', ';' through '@', '[' through '`',
/// '{' through '~'.
fn is_delimiter(b: u8) -> bool {
    matches!(b, 0x09 | 0x20..=0x2f | 0x3b..=0x40 | 0x5b..=0x60 | 0x7b..=0x7e)
}

/// `min..=max` digits at the start of `token`, followed by nothing or a non-digit.
fn leading_digits(token: &[u8], min: usize, max: usize) -> Option<u32> {
    let n = token.iter().take_while(|b| b.is_ascii_digit()).count();
    if n < min || n > max {
        return None;
    }
    Some(token[..n].iter().fold(0, |acc, &b| acc * 10 + u32::from(b - b'0')))
}

/// `hh:mm:ss` with one or two digits each, followed by nothing or a non-digit.
fn parse_time(token: &[u8]) -> Option<(u32, u32, u32)> {
    let mut fields = [0u32; 3];
    let mut rest = token;
    for (i, field) in fields.iter_mut().enumerate() {
        let n = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if !(1..=2).contains(&n) {
            return None;
        }
        *field = leading_digits(rest, 1, 2)?;
        rest = &rest[n..];
        if i < 2 {
            rest = rest.strip_prefix(b":")?;
        }
    }
    Some((fields[0], fields[1], fields[2]))
}

fn parse_month(token: &[u8]) -> Option<u32> {
    const MONTHS: [&[u8; 3]; 12] =
        [b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec"];
    let prefix = token.get(..3)?;
    MONTHS.iter().position(|m| prefix.eq_ignore_ascii_case(&m[..])).map(|i| i as u32 + 1)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1994-11-06T08:49:37Z, the example of RFC 9110 §5.6.7.
    const RFC_EXAMPLE: u64 = 784_111_777;

    #[test]
    fn the_three_http_date_forms_agree() {
        assert_eq!(parse_http_date(b"Sun, 06 Nov 1994 08:49:37 GMT"), Some(RFC_EXAMPLE));
        assert_eq!(parse_http_date(b"Sunday, 06-Nov-94 08:49:37 GMT"), Some(RFC_EXAMPLE));
        assert_eq!(parse_http_date(b"Sun Nov  6 08:49:37 1994"), Some(RFC_EXAMPLE));
        assert_eq!(parse_http_date(b"Sun, 06-Nov-1994 08:49:37 GMT"), Some(RFC_EXAMPLE));
    }

    #[test]
    fn epoch_leap_days_and_limits() {
        assert_eq!(parse_http_date(b"Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(parse_http_date(b"Wed, 31 Dec 1969 23:59:59 GMT"), Some(0), "before the epoch clamps");
        assert_eq!(parse_http_date(b"Tue, 29 Feb 2000 00:00:00 GMT"), Some(951_782_400));
        assert_eq!(parse_http_date(b"Fri, 31 Dec 9999 23:59:59 GMT"), Some(253_402_300_799));
        assert_eq!(parse_http_date(b"Mon, 29 Feb 2100 00:00:00 GMT"), None, "2100 is not a leap year");
        assert_eq!(parse_http_date(b"Sun, 31 Apr 2024 00:00:00 GMT"), None);
        assert_eq!(parse_http_date(b"Sun, 06 Nov 1994 24:00:00 GMT"), None);
        assert_eq!(parse_http_date(b"Sun, 06 Nov 1994 08:60:00 GMT"), None);
        assert_eq!(parse_http_date(b"Sun, 00 Nov 1994 08:49:37 GMT"), None);
        assert_eq!(parse_http_date(b"Sun, 06 Nov 1500 08:49:37 GMT"), None);
        for junk in [&b""[..], b"soon", b"06 Nov 1994", b"Sun, 06 Nov 1994 08:49 GMT", b"\xff\xfe", b"99999:1:1"] {
            assert_eq!(parse_http_date(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn retry_after_in_both_forms() {
        assert_eq!(retry_after_delay(b"120", 0), Some(120));
        assert_eq!(retry_after_delay(b" 0 ", 0), Some(0));
        assert_eq!(retry_after_delay(b"99999999999999999999999", 0), Some(1 << 31));
        assert_eq!(retry_after_delay(b"Sun, 06 Nov 1994 08:49:37 GMT", RFC_EXAMPLE - 30), Some(30));
        assert_eq!(retry_after_delay(b"Sun, 06 Nov 1994 08:49:37 GMT", RFC_EXAMPLE + 30), Some(0));
        assert_eq!(retry_after_delay(b"-5", 0), None);
        assert_eq!(retry_after_delay(b"1.5", 0), None);
        assert_eq!(retry_after_delay(b"", 0), None);
    }
}
