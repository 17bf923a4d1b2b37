//! Golden tests for the retention policy, one fixture per scenario
//! (`tests/testdata/policy/*.json`, as restic's `policy_keep_snapshots_N`):
//! snapshot times, tags and groups, a policy, "now" and a time zone, and the
//! expected keep/forget with reasons. `UPDATE_GOLDEN=1` rewrites the
//! expectations (then review the diff: it is the specification).

use snap::retention::{plan, Candidate, GroupBy, Policy};
use std::path::Path;

#[derive(serde::Serialize, serde::Deserialize)]
struct Fixture {
    description: String,
    tz: String,
    now: chrono::DateTime<chrono::FixedOffset>,
    group_by: GroupBy,
    policy: Policy,
    snapshots: Vec<Candidate>,
    expected: Vec<Expected>,
}

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Expected {
    id: String,
    keep: bool,
    reasons: Vec<String>,
}

#[test]
fn policy_fixtures() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/policy");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let mut f: Fixture = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let tz: chrono_tz::Tz = f.tz.parse().unwrap();
        let got: Vec<Expected> = plan(&f.policy, &f.snapshots, f.group_by, f.now, &tz)
            .unwrap()
            .decisions
            .into_iter()
            .map(|d| Expected {
                id: d.id,
                keep: d.keep,
                reasons: d.reasons,
            })
            .collect();
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            f.expected = got;
            std::fs::write(&path, serde_json::to_string_pretty(&f).unwrap() + "\n").unwrap();
        } else {
            assert_eq!(got, f.expected, "{}: {}", path.display(), f.description);
        }
        n += 1;
    }
    assert!(n >= 8);
}
