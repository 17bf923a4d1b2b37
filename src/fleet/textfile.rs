//! The fleet's Prometheus textfile: per host, the age of its newest record
//! (per path) and of its last mirror, its budget, and whether it is over.

use super::FleetStatus;

/// Escapes a label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The textfile's text for `status`.
pub fn textfile(status: &FleetStatus) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, rows: Vec<(String, f64)>| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for (labels, v) in rows {
            out.push_str(&format!("{name}{{{labels}}} {v}\n"));
        }
    };
    let host = |h: &super::HostReport| {
        format!(
            "store_id=\"{}\",host=\"{}\"",
            label(&h.store_id),
            label(h.host.as_deref().unwrap_or(""))
        )
    };
    let hosts = &status.hosts;
    gauge(
        "snap_fleet_newest_age_seconds",
        "Seconds since the host's newest record of a path on the bucket.",
        hosts
            .iter()
            .flat_map(|h| {
                h.paths.iter().map(move |p| {
                    let l = format!("{},path=\"{}\"", host(h), label(&p.path));
                    (l, p.age_seconds)
                })
            })
            .collect(),
    );
    gauge(
        "snap_fleet_last_mirror_age_seconds",
        "Seconds since the host's last mirror that wrote a catalog.",
        hosts
            .iter()
            .filter_map(|h| Some((host(h), h.last_mirror_age_seconds?)))
            .collect(),
    );
    gauge(
        "snap_fleet_over_budget",
        "1 if the host's newest record or last mirror is older than its max_age.",
        hosts
            .iter()
            .map(|h| (host(h), if h.over_budget { 1.0 } else { 0.0 }))
            .collect(),
    );
    gauge(
        "snap_fleet_problems",
        "Problems of the host: an unreadable catalog, a failed check or verify, no catalog.",
        hosts
            .iter()
            .map(|h| (host(h), h.problems.len() as f64))
            .collect(),
    );
    out
}
