//! Moments on the command line: when a `latest` spec is asked for "as it
//! was then". Pure: the current time is given.

use crate::error::{Error, Result};
use chrono::{DateTime, Duration, FixedOffset, Local, NaiveDateTime, TimeZone};

/// Parses a moment: an RFC 3339 time (`2026-12-05T14:02:07.5Z`), a local
/// time (`2026-12-05 14:02:07`, seconds and their fraction optional),
/// `now`, or an age (`90 s ago`, `10 minutes ago`, `2 hours ago`,
/// `1 day ago`; units s, sec, second, m, min, minute, h, hour, d, day,
/// and their plurals; the count may have a fraction).
pub fn parse_moment(text: &str, now: DateTime<FixedOffset>) -> Result<DateTime<FixedOffset>> {
    let t = text.trim();
    if t == "now" {
        return Ok(now);
    }
    if let Ok(m) = DateTime::parse_from_rfc3339(t) {
        return Ok(m);
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(t, format) {
            if let Some(local) = Local.from_local_datetime(&naive).earliest() {
                return Ok(local.fixed_offset());
            }
        }
    }
    if let Some(age) = t.strip_suffix("ago").map(str::trim) {
        if let Some(d) = age_of(age) {
            return Ok(now - d);
        }
    }
    Err(Error::Invalid(format!(
        "{text:?} is not a moment: give an RFC 3339 time (2026-12-05T14:02:07Z), a local time \
         (2026-12-05 14:02:07), or an age (10 minutes ago)"
    )))
}

/// "10 minutes", "1.5 h", "90s".
fn age_of(age: &str) -> Option<Duration> {
    let split = age
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(age.len());
    let (count, unit) = age.split_at(split);
    let count: f64 = count
        .parse()
        .ok()
        .filter(|c: &f64| c.is_finite() && *c >= 0.0)?;
    let seconds = match unit.trim().trim_end_matches('s') {
        "" | "sec" | "second" => 1.0,
        "m" | "min" | "minute" => 60.0,
        "h" | "hour" => 3600.0,
        "d" | "day" => 86400.0,
        _ => return None,
    };
    Duration::try_milliseconds((count * seconds * 1000.0).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_in_every_form() {
        let now = DateTime::parse_from_rfc3339("2026-12-05T14:00:00Z").unwrap();
        let at = |t: &str| parse_moment(t, now).unwrap().to_rfc3339();
        assert_eq!(at("now"), "2026-12-05T14:00:00+00:00");
        assert_eq!(at("10 minutes ago"), "2026-12-05T13:50:00+00:00");
        assert_eq!(at("90s ago"), "2026-12-05T13:58:30+00:00");
        assert_eq!(at("1.5 h ago"), "2026-12-05T12:30:00+00:00");
        assert_eq!(at("2 days ago"), "2026-12-03T14:00:00+00:00");
        assert_eq!(
            at("2026-12-05T14:02:07.5Z"),
            "2026-12-05T14:02:07.500+00:00"
        );
        assert!(parse_moment("2026-12-05 14:02:07", now).is_ok());
        assert!(parse_moment("2026-12-05 14:02", now).is_ok());
        for bad in ["yesterday", "10 fortnights ago", "-3 s ago", "", "ago"] {
            assert!(parse_moment(bad, now).is_err(), "{bad}");
        }
    }
}
