use super::*;
use proptest::prelude::*;

fn cand(i: usize, secs: i64, group: u8) -> Candidate {
    Candidate {
        id: format!("{i:04}"),
        time: chrono::Utc.timestamp_opt(secs, 0).unwrap().fixed_offset(),
        host: "h".into(),
        paths: vec![format!("/g{group}")],
        tags: if i.is_multiple_of(7) {
            vec!["t".into()]
        } else {
            vec![]
        },
        point: false,
    }
}

fn policy() -> impl Strategy<Value = Policy> {
    (
        prop::option::of(0u32..5),
        prop::option::of(0u32..5),
        prop::option::of(0u32..5),
        prop::option::of(0u32..3),
        prop::bool::ANY,
    )
        .prop_map(|(last, daily, weekly, monthly, tag)| Policy {
            keep_last: last,
            keep_daily: daily,
            keep_weekly: weekly,
            keep_monthly: monthly,
            keep_tags: if tag { vec!["t".into()] } else { vec![] },
            ..Default::default()
        })
        .prop_filter("a rule", |p| !p.is_empty())
}

proptest! {
    #[test]
    fn properties(times in prop::collection::vec((0i64..200_000_000, 0u8..3), 1..60), p in policy()) {
        let snaps: Vec<_> = times.iter().enumerate().map(|(i, (t, g))| cand(i, 1_600_000_000 + t, *g)).collect();
        let now = chrono::Utc.timestamp_opt(1_700_000_000, 0).unwrap().fixed_offset();
        let plan1 = plan(&p, &snaps, GroupBy::Paths, now, &chrono::Utc).unwrap();
        // Every input appears once.
        prop_assert_eq!(plan1.decisions.len(), snaps.len());
        // The newest of every group is kept.
        for g in 0..3u8 {
            if let Some(newest) = snaps.iter().filter(|c| c.paths[0] == format!("/g{g}")).max_by(|a, b| a.time.cmp(&b.time).then(a.id.cmp(&b.id))) {
                prop_assert!(plan1.decisions.iter().any(|d| d.id == newest.id && d.keep));
            }
        }
        // Every decision says why; a forgotten one, that no rule keeps it.
        for d in &plan1.decisions {
            prop_assert!(!d.reasons.is_empty());
            prop_assert_eq!(!d.keep, d.reasons[0].starts_with("no rule keeps it"));
        }
        // Idempotent: planning again over what was kept forgets nothing more.
        let kept: Vec<_> = snaps.iter().filter(|c| plan1.keep().any(|d| d.id == c.id)).cloned().collect();
        let plan2 = plan(&p, &kept, GroupBy::Paths, now, &chrono::Utc).unwrap();
        prop_assert_eq!(plan2.forget().count(), 0);
    }
}

#[test]
fn empty_policy_is_refused() {
    let now = chrono::Utc::now().fixed_offset();
    assert!(plan(
        &Policy::default(),
        &[cand(0, 0, 0)],
        GroupBy::Paths,
        now,
        &chrono::Utc
    )
    .is_err());
}

#[test]
fn points_are_thinned_by_their_own_rules() {
    let now = chrono::Utc
        .timestamp_opt(100 * 86400, 0)
        .unwrap()
        .fixed_offset();
    let tz = chrono::Utc;
    // A point every 10 minutes for 3 days, and a daily take of the same path.
    let mut all: Vec<Candidate> = (0..432)
        .map(|i| Candidate {
            point: true,
            ..cand(i, 97 * 86400 + i as i64 * 600, 1)
        })
        .collect();
    all.extend((0..3).map(|d| cand(1000 + d, (97 + d as i64) * 86400 + 3600, 1)));
    let policy = Policy {
        keep_last: Some(1),
        points: Some(Box::new(Policy {
            keep_within: Some("6h".into()),
            keep_hourly: Some(24),
            ..Default::default()
        })),
        ..Default::default()
    };
    let plan = plan(&policy, &all, GroupBy::Paths, now, &tz).unwrap();
    let kept_points = plan
        .keep()
        .filter(|d| d.group.starts_with("points: "))
        .count();
    // 6 h of points (17:50 to 23:50: 37), and the newest of each hour
    // for the 17 hours before 17h.
    assert_eq!(kept_points, 37 + 17);
    // The takes are their own group, by the tier's rules: the newest only.
    assert_eq!(plan.keep().filter(|d| d.id.starts_with("10")).count(), 1);
    // With no policy at all, every point is kept too.
    let all_kept = Policy {
        keep_all: true,
        ..Default::default()
    };
    assert!(plan_ok(&all_kept, &all, now).forget().next().is_none());
    let default = plan_ok(
        &Policy {
            keep_last: Some(1),
            ..Default::default()
        },
        &all,
        now,
    );
    // The default for points: all of the last 24 h (145), and the newest of
    // each hour before (47 more).
    let kept = default.keep().filter(|d| d.group.starts_with("points: "));
    assert_eq!(kept.count(), 145 + 47);
}

fn plan_ok(p: &Policy, all: &[Candidate], now: chrono::DateTime<chrono::FixedOffset>) -> Plan {
    plan(p, all, GroupBy::Paths, now, &chrono::Utc).unwrap()
}
