//! Schedules and the daemon loop. A schedule is `hourly [:MM]`, `daily HH:MM`,
//! `weekly DAY HH:MM`, `monthly D HH:MM`, or a 5-field cron expression, in
//! local time. The daemon runs due jobs one after another (never overlapping),
//! runs a job missed while the machine was off once on start, and stops
//! cleanly between jobs on SIGTERM. Time comes from a `Clock`, so tests run
//! months of schedule in seconds with a virtual one.

use crate::error::{Error, Result};
use chrono::{DateTime, Duration, Local};
use croner::Cron;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};

/// A job's schedule, as a cron expression.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// The equivalent 5-field cron expression.
    pub cron: String,
    parsed: Cron,
}

const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn hhmm(s: &str) -> std::result::Result<(u32, u32), String> {
    let (h, m) = s.split_once(':').ok_or(format!("{s:?} is not HH:MM"))?;
    let (h, m): (u32, u32) = (
        h.parse().map_err(|_| format!("bad hour in {s:?}"))?,
        m.parse().map_err(|_| format!("bad minute in {s:?}"))?,
    );
    if h > 23 || m > 59 {
        return Err(format!("{s:?} is not a time of day"));
    }
    Ok((h, m))
}

impl Schedule {
    /// Parses `hourly [:MM]`, `daily HH:MM`, `weekly DAY HH:MM`, `monthly D HH:MM` or a cron expression.
    pub fn parse(s: &str) -> std::result::Result<Schedule, String> {
        let words: Vec<&str> = s.split_whitespace().collect();
        let cron = match words.as_slice() {
            ["hourly"] => "0 * * * *".to_string(),
            ["hourly", m] => {
                let m: u32 = m.trim_start_matches(':').parse().map_err(|_| format!("bad minute {m:?}"))?;
                if m > 59 {
                    return Err(format!("bad minute {m}"));
                }
                format!("{m} * * * *")
            }
            ["daily", t] => {
                let (h, m) = hhmm(t)?;
                format!("{m} {h} * * *")
            }
            ["weekly", d, t] => {
                let (h, m) = hhmm(t)?;
                let day = DAYS
                    .iter()
                    .position(|x| d.to_ascii_lowercase().starts_with(x))
                    .ok_or(format!("bad day {d:?} (sun, mon, ...)"))?;
                format!("{m} {h} * * {day}")
            }
            ["monthly", d, t] => {
                let (h, m) = hhmm(t)?;
                let d: u32 = d.parse().map_err(|_| format!("bad day of month {d:?}"))?;
                if !(1..=28).contains(&d) {
                    return Err("monthly takes a day from 1 to 28".into());
                }
                format!("{m} {h} {d} * *")
            }
            fields if fields.len() == 5 => s.trim().to_string(),
            _ => return Err(format!("schedule {s:?}: use `daily HH:MM`, `weekly DAY HH:MM`, `hourly`, `monthly D HH:MM` or a 5-field cron expression")),
        };
        let parsed = Cron::from_str(&cron).map_err(|e| format!("schedule {s:?}: {e}"))?;
        Ok(Schedule { cron, parsed })
    }

    /// The first scheduled time strictly after `t`.
    pub fn next_after(&self, t: DateTime<Local>) -> DateTime<Local> {
        self.parsed
            .find_next_occurrence(&t, false)
            .unwrap_or_else(|_| t + Duration::days(365))
    }

    /// The last scheduled time at or before `t`.
    pub fn last_at_or_before(&self, t: DateTime<Local>) -> Option<DateTime<Local>> {
        self.parsed.find_previous_occurrence(&t, true).ok()
    }

    /// The same times as a systemd `OnCalendar=` value.
    pub fn on_calendar(&self) -> Result<String> {
        let f: Vec<&str> = self.cron.split_whitespace().collect();
        let unsupported = || {
            Error::Invalid(format!(
                "schedule {:?} cannot be written as a systemd OnCalendar; schedule it with cron",
                self.cron
            ))
        };
        let part = |v: &str, width: usize| -> Result<String> {
            if v == "*" {
                return Ok("*".into());
            }
            if let Some(step) = v.strip_prefix("*/") {
                return Ok(format!("{:0width$}/{step}", 0));
            }
            v.split(',')
                .map(|x| match x.split_once('-') {
                    Some((a, b)) => Ok(format!("{a:0>width$}..{b:0>width$}")),
                    None if x.chars().all(|c| c.is_ascii_digit()) => Ok(format!("{x:0>width$}")),
                    None => Err(unsupported()),
                })
                .collect::<Result<Vec<_>>>()
                .map(|v| v.join(","))
        };
        let dow = match f[4] {
            "*" => String::new(),
            d => {
                let name = |x: &str| -> Result<String> {
                    let i: usize = x.parse().map_err(|_| unsupported())?;
                    let n = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
                        .get(i)
                        .ok_or_else(unsupported)?;
                    Ok(n.to_string())
                };
                let days = d
                    .split(',')
                    .map(|x| match x.split_once('-') {
                        Some((a, b)) => Ok(format!("{}..{}", name(a)?, name(b)?)),
                        None => name(x),
                    })
                    .collect::<Result<Vec<_>>>()?;
                format!("{} ", days.join(","))
            }
        };
        Ok(format!(
            "{dow}*-{}-{} {}:{}:00",
            part(f[3], 2)?,
            part(f[2], 2)?,
            part(f[1], 2)?,
            part(f[0], 2)?
        ))
    }
}

/// Where the daemon gets the time and how it waits.
pub trait Clock {
    /// The current time.
    fn now(&self) -> DateTime<Local>;
    /// Waits until `t` or until `stop` is set; false when stopped.
    fn sleep_until(&self, t: DateTime<Local>, stop: &AtomicBool) -> bool;
}

/// The system's clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Local> {
        Local::now()
    }

    fn sleep_until(&self, t: DateTime<Local>, stop: &AtomicBool) -> bool {
        while Local::now() < t {
            if stop.load(Ordering::Relaxed) {
                return false;
            }
            let left = (t - Local::now()).to_std().unwrap_or_default();
            std::thread::sleep(left.min(std::time::Duration::from_millis(200)));
        }
        !stop.load(Ordering::Relaxed)
    }
}

/// A clock that jumps: waiting takes no real time. For tests and dry runs of
/// a schedule ("what would 100 days of this config do?").
pub struct VirtualClock(std::sync::Mutex<DateTime<Local>>);

impl VirtualClock {
    /// A virtual clock at `t`, whose sleeps jump.
    pub fn starting_at(t: DateTime<Local>) -> Self {
        VirtualClock(std::sync::Mutex::new(t))
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> DateTime<Local> {
        *self.0.lock().expect("clock")
    }

    fn sleep_until(&self, t: DateTime<Local>, stop: &AtomicBool) -> bool {
        let mut now = self.0.lock().expect("clock");
        if t > *now {
            *now = t;
        }
        !stop.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn forms() {
        assert_eq!(Schedule::parse("daily 03:00").unwrap().cron, "0 3 * * *");
        assert_eq!(
            Schedule::parse("weekly Sunday 05:30").unwrap().cron,
            "30 5 * * 0"
        );
        assert_eq!(Schedule::parse("hourly :15").unwrap().cron, "15 * * * *");
        assert_eq!(
            Schedule::parse("*/15 * * * 1-5").unwrap().cron,
            "*/15 * * * 1-5"
        );
        for bad in ["daily 24:00", "weekly xyz 01:00", "sometimes", "1 2 3"] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn next_and_last() {
        let s = Schedule::parse("daily 03:00").unwrap();
        let t = Local.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap();
        assert_eq!(
            s.next_after(t),
            Local.with_ymd_and_hms(2026, 3, 11, 3, 0, 0).unwrap()
        );
        assert_eq!(
            s.last_at_or_before(t).unwrap(),
            Local.with_ymd_and_hms(2026, 3, 10, 3, 0, 0).unwrap()
        );
    }

    #[test]
    fn systemd_calendar() {
        let cal = |s: &str| Schedule::parse(s).unwrap().on_calendar().unwrap();
        assert_eq!(cal("daily 03:00"), "*-*-* 03:00:00");
        assert_eq!(cal("weekly sun 05:30"), "Sun *-*-* 05:30:00");
        assert_eq!(cal("*/15 * * * 1-5"), "Mon..Fri *-*-* *:00/15:00");
        assert_eq!(cal("monthly 1 04:00"), "*-*-01 04:00:00");
    }
}
