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
