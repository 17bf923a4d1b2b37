//! `fleet status`: every host's newest records and last mirror, from the
//! newest catalog of each, with ages corrected for a host's clock.

use super::{decode, hosts, opener};
use crate::error::Result;
use crate::mirror::catalog::Summary;
use crate::mirror::Remote;
use age::x25519::Identity;
use chrono::{DateTime, FixedOffset, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

/// A host clock this far from the bucket's is corrected for, and said.
/// The measure is the bucket's date of the newest catalog less the time the
/// host wrote into it, so a slow upload reads as a clock behind: under ten
/// minutes apart is not trusted to be the clock (a loaded emulator took 79 s
/// to store one catalog).
const SKEW: f64 = 600.0;

/// How old a host's newest record may be.
#[derive(Clone, Debug, Default)]
pub struct FleetOptions {
    /// Every host's budget, unless it has its own.
    pub max_age: Option<Duration>,
    /// Budgets by host name or store id.
    pub budgets: BTreeMap<String, Duration>,
}

/// One path a host protects.
#[derive(Clone, Debug, Serialize)]
pub struct PathReport {
    /// The path on the host.
    pub path: String,
    /// Its newest record on the remote (hex).
    pub id: String,
    /// When it was taken, corrected for the host's clock.
    pub time: DateTime<FixedOffset>,
    /// Seconds since then.
    pub age_seconds: f64,
    /// A point of a watched database.
    pub point: bool,
    /// Every database check in it passed.
    pub check_ok: bool,
}

/// One host of the fleet.
#[derive(Clone, Debug, Serialize)]
pub struct HostReport {
    /// Its store id (its prefix: `hosts/<store id>/`).
    pub store_id: String,
    /// Its host name, as its newest catalog says.
    pub host: Option<String>,
    /// Catalog objects it has (compaction keeps this small).
    pub catalogs: usize,
    /// When its last mirror ran, corrected for its clock.
    pub last_mirror: Option<DateTime<FixedOffset>>,
    /// Seconds since its last mirror.
    pub last_mirror_age_seconds: Option<f64>,
    /// How far its clock is ahead of the bucket's (seconds), when the
    /// service dates objects; corrected for when over `SKEW`.
    pub clock_skew_seconds: Option<f64>,
    /// Its newest record per path.
    pub paths: Vec<PathReport>,
    /// Its summary: records, bytes sent, last verify.
    pub summary: Option<Summary>,
    /// Its budget (seconds), if any.
    pub budget_seconds: Option<f64>,
    /// Its newest record or its last mirror is older than its budget.
    pub over_budget: bool,
    /// What could not be read or is wrong (an unreadable catalog, a failed
    /// verify or check, no catalog at all).
    pub problems: Vec<String>,
    /// What was noticed and allowed for (a host clock off by over `SKEW`).
    pub warnings: Vec<String>,
}

/// The whole fleet.
#[derive(Clone, Debug, Serialize)]
pub struct FleetStatus {
    /// The bucket.
    pub remote: String,
    /// Per host, by store id.
    pub hosts: Vec<HostReport>,
    /// Requests made (listings and reads; a listing of over a thousand
    /// objects pages, which this does not count).
    pub requests: u64,
    /// Wall time.
    pub duration_ms: u64,
}

impl FleetStatus {
    /// No host over its budget or with a problem.
    pub fn ok(&self) -> bool {
        self.hosts
            .iter()
            .all(|h| !h.over_budget && h.problems.is_empty())
    }
}

/// Reads the newest catalog of every host: one listing of the hosts, then
/// per host one listing of its catalogs and one read.
pub fn status(root: &Remote, identities: &[Identity], opts: &FleetOptions) -> Result<FleetStatus> {
    let start = Instant::now();
    let codec = opener(identities);
    let ids = hosts(root)?;
    let listed = root.list_many(
        ids.iter()
            .map(|id| format!("hosts/{id}/catalogs/"))
            .collect(),
    );
    let mut newest = Vec::new();
    for (id, l) in ids.iter().zip(listed) {
        let mut l = l?;
        l.sort();
        newest.push((id.clone(), l.len(), l.pop()));
    }
    let reads = root.read_ranges(
        newest
            .iter()
            .filter_map(|(_, _, n)| n.as_ref().map(|(k, size, _)| (k.clone(), 0, *size)))
            .collect(),
    );
    let requests = 1 + ids.len() as u64 + reads.len() as u64;
    let mut reads = reads.into_iter();
    let now = Utc::now().fixed_offset();
    let mut out = Vec::new();
    for (id, catalogs, listed) in newest {
        let mut h = HostReport {
            store_id: id.clone(),
            host: None,
            catalogs,
            last_mirror: None,
            last_mirror_age_seconds: None,
            clock_skew_seconds: None,
            paths: Vec::new(),
            summary: None,
            budget_seconds: None,
            over_budget: false,
            problems: Vec::new(),
            warnings: Vec::new(),
        };
        match listed {
            None => h
                .problems
                .push("no catalog: it never completed a mirror".into()),
            Some((key, _, dated)) => {
                let read = reads.next().expect("one read per newest catalog");
                match read.and_then(|b| decode(&codec, &id, &key, &b)) {
                    Ok(c) => fill(&mut h, c, dated, now),
                    Err(e) => h.problems.push(e.to_string()),
                }
            }
        }
        judge(&mut h, opts);
        out.push(h);
    }
    Ok(FleetStatus {
        remote: root.url.clone(),
        hosts: out,
        requests,
        duration_ms: start.elapsed().as_millis() as u64,
    })
}

/// Fills a host's report from its newest catalog, which the bucket dated
/// `dated` (when it does): a host clock more than `SKEW` off is corrected.
fn fill(
    h: &mut HostReport,
    c: crate::mirror::catalog::Catalog,
    dated: Option<SystemTime>,
    now: DateTime<FixedOffset>,
) {
    let skew = dated.map(|d| {
        let bucket: DateTime<Utc> = d.into();
        (c.written.with_timezone(&Utc) - bucket).num_milliseconds() as f64 / 1000.0
    });
    h.clock_skew_seconds = skew;
    let shift = chrono::Duration::milliseconds(
        (skew.filter(|s| s.abs() > SKEW).unwrap_or(0.0) * 1000.0) as i64,
    );
    let age = |t: DateTime<FixedOffset>| (now - (t - shift)).num_milliseconds() as f64 / 1000.0;
    h.host = Some(c.host);
    h.last_mirror = c.summary.last_mirror.map(|t| t - shift);
    h.last_mirror_age_seconds = c.summary.last_mirror.map(age);
    for (path, n) in &c.summary.newest {
        h.paths.push(PathReport {
            path: path.clone(),
            id: n.id.clone(),
            time: n.time - shift,
            age_seconds: age(n.time),
            point: n.point,
            check_ok: n.check_ok,
        });
        if !n.check_ok {
            h.problems
                .push(format!("{path}: the newest record's check failed"));
        }
    }
    if let Some(v) = c.summary.verified.as_ref().filter(|v| v.problems > 0) {
        h.problems.push(format!(
            "its last verify ({}) found {} problems",
            v.time, v.problems
        ));
    }
    if skew.is_some_and(|s| s.abs() > SKEW) {
        h.warnings.push(format!(
            "its clock is {:.0} s {} the bucket's (ages corrected)",
            skew.unwrap_or(0.0).abs(),
            if skew.unwrap_or(0.0) > 0.0 {
                "ahead of"
            } else {
                "behind"
            }
        ));
    }
    h.summary = Some(c.summary);
}

/// Sets a host's budget and whether it is over it.
fn judge(h: &mut HostReport, opts: &FleetOptions) {
    let budget = h
        .host
        .as_ref()
        .and_then(|n| opts.budgets.get(n))
        .or_else(|| opts.budgets.get(&h.store_id))
        .or(opts.max_age.as_ref());
    let Some(budget) = budget.map(Duration::as_secs_f64) else {
        return;
    };
    h.budget_seconds = Some(budget);
    let oldest = h
        .paths
        .iter()
        .map(|p| p.age_seconds)
        .chain(h.last_mirror_age_seconds)
        .fold(None, |m: Option<f64>, a| Some(m.map_or(a, |m| m.max(a))));
    h.over_budget = oldest.is_none_or(|a| a > budget);
}
