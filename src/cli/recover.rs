//! `snap recover` (lost rows back into a live database) and `snap forget`.

use super::{invalid, Ctx};
use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct RecoverArgs {
    /// The snapshot holding the rows: id, prefix, `latest` or `latest:PATH`
    /// (`latest` means the newest snapshot that holds the source)
    id: String,
    /// The live database to put the rows back into
    #[arg(long)]
    db: PathBuf,
    /// The database inside the snapshot to take the rows from, as it was
    /// taken or as `ls` shows it [default: the one taken from --db]
    #[arg(long, value_name = "PATH")]
    from: Option<String>,
    /// Only this table (repeatable); a table the live database lost is recreated
    #[arg(long = "table")]
    tables: Vec<String>,
    /// Only the snapshot's rows matching this SQL condition (columns by name)
    #[arg(long = "where", value_name = "SQL")]
    filter: Option<String>,
    /// Print the SQL and the counts; change nothing
    #[arg(long)]
    dry_run: bool,
    /// Replace rows that exist in both with different values (reported, and kept, otherwise)
    #[arg(long)]
    overwrite: bool,
    /// Bring back rows whose key the live database gave to a new row under
    /// new keys, with the rows that hang from them re-pointed
    #[arg(long)]
    remap: bool,
    #[command(flatten)]
    hosts: super::HostTag,
}

pub fn recover(ctx: &Ctx, args: RecoverArgs) -> Result<u8> {
    let store = ctx.open()?;
    let report = snap::recover::recover(
        &store,
        &snap::recover::RecoverOptions {
            snapshot: args.id,
            selection: args.hosts.selection(),
            db: args.db,
            source: args.from,
            tables: args.tables,
            filter: args.filter,
            dry_run: args.dry_run,
            overwrite: args.overwrite,
            remap: args.remap,
            lock_wait: snap::LockWait(ctx.lock_wait),
        },
    )?;
    if ctx.json {
        ctx.print_json(&report)?;
        return Ok(0);
    }
    print(&report, args.dry_run, args.remap, args.overwrite);
    Ok(0)
}

fn print(report: &snap::recover::RecoverReport, dry_run: bool, remap: bool, overwrite: bool) {
    if dry_run {
        for line in &report.sql {
            println!("{line}");
        }
    }
    let shown: Vec<_> = report
        .tables
        .iter()
        .filter(|t| t.missing + t.conflicts + t.reused + t.blocked > 0 || t.recreated)
        .collect();
    if !shown.is_empty() {
        println!(
            "{:<24} {:>9} {:>9} {:>9} {:>9} {:>9} {:>11}",
            "table", "recovered", "remapped", "conflicts", "reused", "blocked", "overwritten"
        );
    }
    for t in &shown {
        println!(
            "{:<24} {:>9} {:>9} {:>9} {:>9} {:>9} {:>11}{}",
            t.table,
            t.recovered,
            t.remapped,
            t.conflicts,
            t.reused,
            t.blocked,
            t.overwritten,
            if t.recreated {
                "  (table recreated)"
            } else {
                ""
            }
        );
    }
    notes(report, remap, overwrite);
    let from = format!("snapshot {} ({})", &report.snapshot[..12], report.source);
    if dry_run {
        println!(
            "dry run: {} rows would be written into {} from {from}; nothing was changed",
            report.written(),
            report.db
        );
    } else if !report.changes() {
        println!(
            "nothing to recover into {} from {from}; nothing was changed",
            report.db
        );
    } else {
        println!(
            "{} rows written into {} from {from}; foreign keys: {}",
            report.written(),
            report.db,
            report.foreign_key_check
        );
        if let Some(undo) = &report.pre_recover {
            println!(
                "the database before this is snapshot {} (tag pre-recover): `snap restore {} --in-place` undoes it",
                &undo[..12],
                &undo[..12]
            );
        }
    }
}

/// What was held back and why, and what each option would do about it.
fn notes(report: &snap::recover::RecoverReport, remap: bool, overwrite: bool) {
    for t in &report.tables {
        for (old, new) in t.new_keys.iter().take(20) {
            println!("  {}: row {old} comes back as {new}", t.table);
        }
        if t.new_keys.len() > 20 {
            println!(
                "  {}: … {} more (--json lists them all)",
                t.table,
                t.new_keys.len() - 20
            );
        }
        for e in &t.blocked_examples {
            println!("  held back: {e}");
        }
    }
    let sum =
        |f: fn(&snap::recover::TableRecovery) -> u64| report.tables.iter().map(f).sum::<u64>();
    let (reused, blocked, conflicts) = (
        sum(|t| t.reused - t.remapped.min(t.reused)),
        sum(|t| t.blocked),
        sum(|t| t.conflicts),
    );
    if reused > 0 && !remap {
        println!("{reused} rows are under keys the live database gave to other rows since (reused): they were not recovered, and neither was anything that hangs from them; --remap brings them back under new keys, with their rows re-pointed");
    }
    if blocked > 0 {
        println!(
            "{blocked} rows were held back so that none is attached to a parent it did not have"
        );
    }
    if conflicts > 0 && !overwrite {
        println!("{conflicts} rows changed since the snapshot and were kept as they are now (--overwrite replaces them)");
    }
    if !report.left_alone.is_empty() {
        println!(
            "left alone: {} (migration bookkeeping; name one with --table to recover it)",
            report.left_alone.join(", ")
        );
    }
    if !report.only_in_snapshot.is_empty() {
        println!(
            "only in the snapshot: {} (the live database lost them; name one with --table to recreate it)",
            report.only_in_snapshot.join(", ")
        );
    }
}

#[derive(clap::Args)]
pub struct ForgetArgs {
    /// Snapshots to forget (ids, prefixes, `latest`, `latest:PATH`)
    ids: Vec<String>,
    #[command(flatten)]
    filter: super::Filter,
    /// Forget every snapshot the --path/--host/--tag filter selects
    #[arg(long, conflicts_with = "ids")]
    all_selected: bool,
    /// Show what would be forgotten; change nothing
    #[arg(long)]
    dry_run: bool,
}

pub fn forget(ctx: &Ctx, args: ForgetArgs) -> Result<u8> {
    let store = ctx.open()?;
    let sel = args.filter.selection()?;
    let ids: Vec<snap::SnapshotId> = if args.all_selected {
        if sel.is_empty() {
            return Err(invalid(
                "--all-selected needs --path, --host or --tag (forgetting everything is not a filter)",
            ));
        }
        store.select(&sel)?.into_iter().map(|(id, _)| id).collect()
    } else if args.ids.is_empty() {
        return Err(invalid(
            "name the snapshots to forget, or pass a filter and --all-selected",
        ));
    } else {
        args.ids
            .iter()
            .map(|s| store.resolve_in(s, &sel))
            .collect::<snap::Result<_>>()?
    };
    let done = if args.dry_run {
        ids
    } else {
        snap::forget(&store, &ids, snap::LockWait(ctx.lock_wait))?
    };
    if ctx.json {
        ctx.print_json(&serde_json::json!({
            "dry_run": args.dry_run,
            "forgotten": done.iter().map(|i| i.to_hex()).collect::<Vec<_>>(),
        }))?;
        return Ok(0);
    }
    for id in &done {
        println!(
            "{} {}",
            if args.dry_run {
                "would forget"
            } else {
                "forgot"
            },
            id
        );
    }
    if !args.dry_run && !done.is_empty() {
        println!("run `snap gc` to free the space only they used");
    }
    Ok(0)
}
