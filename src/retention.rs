//! Retention policy: pure code that turns snapshots and a policy into a plan
//! (keep or forget each snapshot, with the reasons). No I/O; time zone and
//! "now" are parameters, so golden tests pin them.
//!
//! Rules, applied per group (by default the set of paths, so two databases
//! never thin each other), newest first, as restic does:
//! - `last N`: the N newest;
//! - `hourly/daily/weekly/monthly/yearly N`: the newest snapshot of each of
//!   the N newest calendar buckets (local time; ISO weeks) that hold one;
//! - `within D`: every snapshot within D of the group's newest;
//! - `tag T`: every snapshot tagged T.
//!
//! Undo snapshots (tagged `pre-restore` or `pre-recover`: what snap saved
//! before it replaced something) are groups of their own, so they never
//! crowd the snapshots they protect out of `last N`: each is kept while it
//! is younger than `keep_undo_within` (default `UNDO_WITHIN`), the newest of
//! each group always, and any a `tag` rule names.
//!
//! Invariants: the newest snapshot of every group is kept; a snapshot dated
//! after `now` is never forgotten; a policy with no rule is refused; every
//! decision says why (a forgotten one, which rules did not keep it).

use crate::error::{Error, Result};
use chrono::{DateTime, Datelike, FixedOffset, TimeZone, Timelike};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Retention rules of one tier; a snapshot any rule keeps is kept.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Policy {
    /// The N newest snapshots of each group.
    pub keep_last: Option<u32>,
    /// The newest snapshot of each of the N newest hours that have one.
    pub keep_hourly: Option<u32>,
    /// Likewise per day (local time).
    pub keep_daily: Option<u32>,
    /// Likewise per ISO week.
    pub keep_weekly: Option<u32>,
    /// Likewise per month.
    pub keep_monthly: Option<u32>,
    /// Likewise per year.
    pub keep_yearly: Option<u32>,
    /// A duration such as `30d`, `12h`, `1y`.
    pub keep_within: Option<String>,
    /// Every snapshot with one of these tags.
    pub keep_tags: Vec<String>,
    /// How long undo snapshots are kept (`UNDO_WITHIN` when unset).
    pub keep_undo_within: Option<String>,
    /// Keep every snapshot (gc with no policy: it frees only what no
    /// snapshot uses, after `forget`).
    pub keep_all: bool,
    /// The rules for points (`watch`; each database a group of its own):
    /// `points_default()` when unset.
    pub points: Option<Box<Policy>>,
}

/// The points' rules when a tier names none: every point of the last 24
/// hours, then the newest of each hour for a week and of each day for 30.
pub(crate) fn points_default() -> Policy {
    Policy {
        keep_within: Some("24h".into()),
        keep_hourly: Some(168),
        keep_daily: Some(30),
        ..Default::default()
    }
}

/// How long undo snapshots are kept by default.
pub(crate) const UNDO_WITHIN: &str = "30d";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
/// What makes snapshots one group, thinned together.
pub enum GroupBy {
    /// The same set of paths (the default: two databases never thin each other).
    #[default]
    Paths,
    /// The same host.
    Host,
    /// The same host and paths.
    HostPaths,
}

/// A snapshot as the policy sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// Its id.
    pub id: String,
    /// When it was taken.
    pub time: DateTime<FixedOffset>,
    /// Where it was taken.
    #[serde(default)]
    pub host: String,
    /// What it holds.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Its tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// A point (`watch`), thinned by the points' rules.
    #[serde(default)]
    pub point: bool,
}

/// Keep or forget one snapshot, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The snapshot.
    pub id: String,
    /// When it was taken.
    pub time: DateTime<FixedOffset>,
    /// Its group's key.
    pub group: String,
    /// Kept (else forgotten).
    pub keep: bool,
    /// The rules that keep it (`last`, `daily 2026-11-20`, …), or, when
    /// forgotten, why no rule does.
    pub reasons: Vec<String>,
}

/// Every candidate with keep or forget and why, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// One per candidate.
    pub decisions: Vec<Decision>,
}

impl Plan {
    /// The snapshots to forget.
    pub fn forget(&self) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(|d| !d.keep)
    }

    /// The snapshots to keep.
    pub fn keep(&self) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(|d| d.keep)
    }
}

impl Policy {
    /// No rule at all (refused by `plan`: it would forget everything).
    pub fn is_empty(&self) -> bool {
        Policy {
            keep_undo_within: None,
            points: None,
            ..self.clone()
        } == Policy::default()
    }

    /// The rules, as a forgotten snapshot's reason names them.
    fn describe(&self) -> String {
        let mut rules = Vec::new();
        let counts = [
            ("last", self.keep_last),
            ("hourly", self.keep_hourly),
            ("daily", self.keep_daily),
            ("weekly", self.keep_weekly),
            ("monthly", self.keep_monthly),
            ("yearly", self.keep_yearly),
        ];
        for (name, n) in counts {
            if let Some(n) = n {
                rules.push(format!("{name} {n}"));
            }
        }
        if let Some(w) = &self.keep_within {
            rules.push(format!("within {w}"));
        }
        for t in &self.keep_tags {
            rules.push(format!("tag {t}"));
        }
        rules.join(", ")
    }

    /// `keep_within` parsed.
    pub fn within(&self) -> Result<Option<chrono::Duration>> {
        self.keep_within
            .as_deref()
            .map(|s| {
                humantime::parse_duration(s)
                    .map_err(|e| Error::Invalid(format!("keep-within {s:?}: {e}")))
                    .and_then(|d| {
                        chrono::Duration::from_std(d).map_err(|e| Error::Invalid(e.to_string()))
                    })
            })
            .transpose()
    }
}

fn group_key(c: &Candidate, by: GroupBy) -> String {
    let mut paths = c.paths.clone();
    paths.sort();
    let key = match by {
        GroupBy::Paths => paths.join(" "),
        GroupBy::Host => c.host.clone(),
        GroupBy::HostPaths => format!("{} {}", c.host, paths.join(" ")),
    };
    match (crate::format::record::is_undo(&c.tags), c.point) {
        (true, _) => format!("undo: {key}"),
        (false, true) => format!("{POINTS}{key}"),
        (false, false) => key,
    }
}

/// The prefix of a group of points.
const POINTS: &str = "points: ";

/// Calendar bucket rules: name, count, and the bucket label of a local time.
type Bucket<Tz> = (&'static str, Option<u32>, fn(&DateTime<Tz>) -> String);

fn buckets<Tz: TimeZone>(p: &Policy) -> Vec<Bucket<Tz>> {
    vec![
        ("hourly", p.keep_hourly, |t| {
            format!(
                "{:04}-{:02}-{:02} {:02}h",
                t.year(),
                t.month(),
                t.day(),
                t.hour()
            )
        }),
        ("daily", p.keep_daily, |t| {
            format!("{:04}-{:02}-{:02}", t.year(), t.month(), t.day())
        }),
        ("weekly", p.keep_weekly, |t| {
            let w = t.iso_week();
            format!("{:04}-W{:02}", w.year(), w.week())
        }),
        ("monthly", p.keep_monthly, |t| {
            format!("{:04}-{:02}", t.year(), t.month())
        }),
        ("yearly", p.keep_yearly, |t| format!("{:04}", t.year())),
    ]
}

/// The undo window: as written, and as a duration.
fn undo_within(policy: &Policy) -> Result<(String, chrono::Duration)> {
    let text = policy.keep_undo_within.as_deref().unwrap_or(UNDO_WITHIN);
    let d = humantime::parse_duration(text)
        .map_err(|e| Error::Invalid(format!("keep-undo-within {text:?}: {e}")))?;
    Ok((
        text.to_string(),
        chrono::Duration::from_std(d).map_err(|e| Error::Invalid(e.to_string()))?,
    ))
}

/// The count and calendar rules' reasons to keep the `i`-th newest
/// snapshot of a group; `state` carries each rule's count and last bucket.
fn keep_by_rules<Tz: TimeZone>(
    policy: &Policy,
    rules: &[Bucket<Tz>],
    (i, c): (usize, &Candidate),
    tz: &Tz,
    (used, last_label): (&mut [u32], &mut [Option<String>]),
    reasons: &mut Vec<String>,
) {
    if policy.keep_last.is_some_and(|n| (i as u32) < n) {
        reasons.push(format!("last {}", i + 1));
    }
    let local = c.time.with_timezone(tz);
    for (r, (name, count, label)) in rules.iter().enumerate() {
        let Some(n) = count else { continue };
        let l = label(&local);
        if used[r] < *n && last_label[r].as_ref() != Some(&l) {
            used[r] += 1;
            reasons.push(format!("{name} {l}"));
        }
        last_label[r] = Some(l);
    }
}

/// The reasons to keep the `i`-th newest of a group whatever the rules:
/// the newest, one dated in the future, no policy, a kept tag.
fn always((i, c): (usize, &Candidate), now: DateTime<FixedOffset>, policy: &Policy) -> Vec<String> {
    let mut reasons = Vec::new();
    if i == 0 {
        reasons.push("newest".to_string());
    }
    if c.time > now {
        reasons.push("in the future".to_string());
    }
    if policy.keep_all {
        reasons.push("no policy: every snapshot is kept".to_string());
    }
    for t in policy.keep_tags.iter().filter(|t| c.tags.contains(t)) {
        reasons.push(format!("tag {t}"));
    }
    reasons
}

/// The rules for points under `policy`: its `points`, or `points_default()`.
/// No policy keeps every point too, and a kept tag keeps a point.
fn points_policy(policy: &Policy) -> Result<Policy> {
    let mut p = policy
        .points
        .as_deref()
        .cloned()
        .unwrap_or_else(points_default);
    p.keep_all |= policy.keep_all;
    p.keep_tags.extend(policy.keep_tags.iter().cloned());
    if p.is_empty() {
        return Err(Error::Invalid(
            "the points' policy has no keep rule, so it would forget every point but the newest"
                .into(),
        ));
    }
    Ok(p)
}

/// Applies `policy` to `snapshots` at `now`, bucketing calendar rules in `tz`.
pub fn plan<Tz: TimeZone>(
    policy: &Policy,
    snapshots: &[Candidate],
    group_by: GroupBy,
    now: DateTime<FixedOffset>,
    tz: &Tz,
) -> Result<Plan> {
    if policy.is_empty() {
        return Err(Error::Invalid(
            "the policy has no keep rule, so it would forget everything; give it at least one keep rule".into(),
        ));
    }
    let points_policy = points_policy(policy)?;
    let mut groups: BTreeMap<String, Vec<&Candidate>> = BTreeMap::new();
    for c in snapshots {
        groups.entry(group_key(c, group_by)).or_default().push(c);
    }
    let undo_within = undo_within(policy)?;
    let mut decisions = Vec::new();
    for (group, mut members) in groups {
        let policy = match group.starts_with(POINTS) {
            true => &points_policy,
            false => policy,
        };
        let within = policy.within()?;
        let rules = buckets::<Tz>(policy);
        // Newest first; ties broken by id so the plan is deterministic.
        members.sort_by(|a, b| b.time.cmp(&a.time).then(b.id.cmp(&a.id)));
        let undo = group.starts_with("undo: ");
        let newest = members[0].time;
        let mut used = vec![0u32; rules.len()];
        let mut last_label: Vec<Option<String>> = vec![None; rules.len()];
        for (i, c) in members.iter().enumerate() {
            let mut reasons = always((i, c), now, policy);
            if undo {
                if c.time >= now - undo_within.1 {
                    reasons.push(format!("undo, younger than {}", undo_within.0));
                }
            } else {
                keep_by_rules(
                    policy,
                    &rules,
                    (i, c),
                    tz,
                    (&mut used, &mut last_label),
                    &mut reasons,
                );
                if within.is_some_and(|d| c.time >= newest - d) {
                    let w = policy.keep_within.as_deref().unwrap_or("");
                    reasons.push(format!("within {w}"));
                }
            }
            let keep = !reasons.is_empty();
            if !keep {
                reasons.push(match undo {
                    true => format!("an undo snapshot older than {}", undo_within.0),
                    false => format!("no rule keeps it ({})", policy.describe()),
                });
            }
            decisions.push(Decision {
                id: c.id.clone(),
                time: c.time,
                group: group.clone(),
                keep,
                reasons,
            });
        }
    }
    decisions.sort_by(|a, b| a.time.cmp(&b.time).then(a.id.cmp(&b.id)));
    Ok(Plan { decisions })
}

#[cfg(test)]
mod tests;
