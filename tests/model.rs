//! Model-based test of the store (redb's model fuzzing, as a proptest): random
//! sequences of changes (files; database pages that change, revert to older
//! versions and repeat), takes, gcs with random policies and repack
//! thresholds, crashes injected at random durable operations of take and gc,
//! and index repairs, run against the real library and checked against a
//! model of what every snapshot holds. After every crash and at the end, the
//! store must verify and every snapshot it lists must restore bit for bit.
//!
//! It finds both data-loss bugs of issue 9 when they are put back (a delta's
//! base deleted by gc; a gc after a killed gc deleting its repacked pack).
//! PROPTEST_CASES sets the number of sequences (CI runs the default).

mod common;
use common::world::{db_digest, Change, World};
use proptest::prelude::*;
use snap::durable::testing;
use snap::SnapshotId;
use std::collections::{HashMap, HashSet};

#[derive(Clone, Debug)]
enum Step {
    Change(Change),
    Take,
    /// A take that crashes at its `n`-th durable operation.
    TakeCrash(u16),
    Gc {
        keep_last: u32,
        threshold: f64,
    },
    /// A gc that crashes at its `n`-th durable operation, then the same gc
    /// run again to completion (the next scheduled run).
    GcCrash {
        keep_last: u32,
        threshold: f64,
        at: u16,
    },
    Repair,
    /// `snap tag` on the newest snapshot, crashing at its `n`-th durable
    /// operation: the old record or the new one (or both) survive, never
    /// neither.
    TagCrash(u16),
    /// One look of a watcher: a point when the database changed.
    Point,
    /// A look that crashes at its `n`-th durable operation.
    PointCrash(u16),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        (0u8..3, 0u8..6).prop_map(|(n, seed)| Change::File { n, seed }),
        (0u8..6, 0u8..5).prop_map(|(row, val)| Change::DbSet { row, val }),
        (0u8..6, any::<u16>()).prop_map(|(row, at)| Change::DbEdit { row, at }),
        any::<u8>().prop_map(|version| Change::DbRevert { version }),
    ]
}

fn threshold() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0), Just(0.1), Just(0.5), Just(1.0)]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => change().prop_map(Step::Change),
        4 => Just(Step::Take),
        1 => (0u16..120).prop_map(Step::TakeCrash),
        2 => (1u32..4, threshold()).prop_map(|(keep_last, threshold)| Step::Gc { keep_last, threshold }),
        2 => (1u32..4, threshold(), 0u16..150)
            .prop_map(|(keep_last, threshold, at)| Step::GcCrash { keep_last, threshold, at }),
        1 => Just(Step::Repair),
        1 => (0u16..6).prop_map(Step::TagCrash),
        2 => Just(Step::Point),
        1 => (0u16..40).prop_map(Step::PointCrash),
    ]
}

/// Runs `f` with a crash injected after `at` durable operations under `root`.
fn crashing<T>(root: &std::path::Path, at: u16, f: impl FnOnce() -> T) -> T {
    testing::watch(root, Some(at as u64));
    let r = f();
    testing::unwatch(root);
    r
}

fn run(steps: &[Step]) -> Result<(), TestCaseError> {
    let mut w = World::new();
    let mut model: HashMap<SnapshotId, String> = HashMap::new();
    for (i, step) in steps.iter().enumerate() {
        let ctx = |e: String| TestCaseError::fail(format!("step {i} {step:?}: {e}"));
        match step {
            Step::Change(c) => w.apply(c),
            Step::Take => {
                let want = w.expected();
                let id = w.take().map_err(|e| ctx(e.to_string()))?;
                model.insert(id, want);
            }
            Step::TakeCrash(at) => {
                let want = w.expected();
                let before: HashSet<_> = w.listed().into_iter().collect();
                let _ = crashing(&w.root(), *at, || w.take());
                // A take that died after its record became durable did complete.
                for id in w.listed() {
                    if !before.contains(&id) {
                        model.insert(id, want.clone());
                    }
                }
                w.check(&model).map_err(ctx)?;
            }
            Step::Gc {
                keep_last,
                threshold,
            } => {
                let r = w
                    .gc(*keep_last, *threshold, false)
                    .map_err(|e| ctx(e.to_string()))?;
                for d in r.plan.forget() {
                    model.remove(&SnapshotId::from_hex(&d.id).unwrap());
                }
                let listed: HashSet<_> = w.listed().into_iter().collect();
                let modelled: HashSet<_> = model.keys().copied().collect();
                prop_assert_eq!(listed, modelled, "step {}: gc kept the wrong snapshots", i);
                w.check(&model).map_err(ctx)?;
            }
            Step::GcCrash {
                keep_last,
                threshold,
                at,
            } => {
                let plan = w
                    .gc(*keep_last, *threshold, true)
                    .map_err(|e| ctx(e.to_string()))?;
                let _ = crashing(&w.root(), *at, || w.gc(*keep_last, *threshold, false));
                let listed: HashSet<_> = w.listed().into_iter().collect();
                for d in plan.plan.keep() {
                    let id = SnapshotId::from_hex(&d.id).unwrap();
                    prop_assert!(listed.contains(&id), "step {}: a kept snapshot vanished", i);
                }
                model.retain(|id, _| listed.contains(id));
                w.check(&model).map_err(ctx)?;
                // The next scheduled run: the same gc, to completion.
                let r = w
                    .gc(*keep_last, *threshold, false)
                    .map_err(|e| ctx(e.to_string()))?;
                for d in r.plan.forget() {
                    model.remove(&SnapshotId::from_hex(&d.id).unwrap());
                }
                w.check(&model).map_err(ctx)?;
            }
            Step::Repair => w.repair().map_err(|e| ctx(e.to_string()))?,
            Step::Point => {
                let want = db_digest(&w.data.join("app.db"));
                if let Some(id) = w.point() {
                    model.insert(id, want);
                }
            }
            Step::PointCrash(at) => {
                let want = db_digest(&w.data.join("app.db"));
                let before: HashSet<_> = w.listed().into_iter().collect();
                let _ = crashing(&w.root(), *at, || w.point());
                for id in w.listed() {
                    if !before.contains(&id) {
                        model.insert(id, want.clone());
                    }
                }
                w.check(&model).map_err(ctx)?;
            }
            Step::TagCrash(at) => {
                let Some(old) = w.store.snapshots().unwrap().pop().map(|(id, _)| id) else {
                    continue;
                };
                let before: HashSet<_> = w.listed().into_iter().collect();
                let add = [format!("t{i}")];
                let wait = snap::LockWait::default();
                let _ = crashing(&w.root(), *at, || {
                    snap::tag(&w.store, &old, &add, &[], wait)
                });
                let listed: HashSet<_> = w.listed().into_iter().collect();
                let want = model[&old].clone();
                for id in listed.difference(&before) {
                    model.insert(*id, want.clone()); // the new record: the same snapshot
                }
                if !listed.contains(&old) {
                    prop_assert!(
                        listed.len() == before.len(),
                        "step {}: the snapshot vanished",
                        i
                    );
                    model.remove(&old);
                }
                w.check(&model).map_err(ctx)?;
            }
        }
    }
    w.check(&model)
        .map_err(|e| TestCaseError::fail(format!("at the end: {e}")))?;
    // Everything in the model is still there: no completed snapshot was lost.
    let listed: HashSet<_> = w.listed().into_iter().collect();
    for id in model.keys() {
        prop_assert!(listed.contains(id), "snapshot {} was lost", id);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(24),
        max_shrink_iters: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_operations_keep_every_kept_snapshot(steps in prop::collection::vec(step(), 4..28)) {
        run(&steps)?;
    }
}

// The two data-loss stories of issue 9 as fixed sequences, so they run
// on every build whatever the random cases draw.
#[test]
fn delta_base_story() {
    use Change::*;
    // Page P: in full (B, first pack), then one byte changed (delta D, in a
    // pack mostly holding a file that stays live), then every row replaced.
    // gc repacks the first pack without B and keeps D's pack whole; the
    // database then returns to D's content.
    let mut steps = vec![
        Step::Take,
        Step::Change(DbEdit { row: 1, at: 100 }),
        Step::Change(File { n: 0, seed: 3 }),
        Step::Take,
    ];
    for row in 0..6 {
        steps.push(Step::Change(DbSet {
            row,
            val: 4 - row % 2,
        }));
    }
    steps.extend([
        Step::Take,
        Step::Gc {
            keep_last: 1,
            threshold: 0.5,
        },
        Step::Change(DbRevert { version: 1 }),
        Step::Take,
    ]);
    run(&steps).unwrap();
}

// Delta chains (store format 2): a database page edited before each of ten
// takes is stored as chains of deltas, restarted from the chain's root
// every `MAX_CHAIN` takes; gcs keep only the newest snapshots at every
// repack threshold, one is killed, a repair rebuilds the index, and every
// kept snapshot still restores bit for bit.
#[test]
fn delta_chain_story() {
    use Change::*;
    let mut steps = vec![Step::Take];
    for day in 0..10u16 {
        steps.push(Step::Change(DbEdit {
            row: (day % 2) as u8,
            at: day * 7,
        }));
        steps.push(Step::Take);
    }
    steps.extend([
        Step::Gc {
            keep_last: 3,
            threshold: 0.0,
        },
        Step::Repair,
        Step::Change(DbRevert { version: 4 }),
        Step::Take,
        Step::GcCrash {
            keep_last: 1,
            threshold: 0.0,
            at: 5,
        },
        Step::Change(DbEdit { row: 1, at: 3 }),
        Step::Take,
        Step::Gc {
            keep_last: 1,
            threshold: 1.0,
        },
    ]);
    run(&steps).unwrap();
}

#[test]
fn gc_after_a_killed_gc_story() {
    use Change::*;
    // Every crash point of a repacking gc, each followed by the same gc.
    for at in 0..80 {
        let mut steps = vec![Step::Take];
        for v in 0..3 {
            steps.push(Step::Change(File { n: v, seed: v + 1 }));
            steps.push(Step::Change(DbSet { row: v, val: v }));
            steps.push(Step::Take);
        }
        // The crashed gc, then the same gc again (the step runs both).
        steps.push(Step::GcCrash {
            keep_last: 2,
            threshold: 0.0,
            at,
        });
        run(&steps).unwrap_or_else(|e| panic!("crash at {at}: {e}"));
    }
}
