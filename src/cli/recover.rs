//! `snap recover` (lost rows back into a live database) and `snap forget`.

use super::{invalid, Ctx};
use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct RecoverArgs {
    /// The snapshot holding the rows: id, prefix, `latest` or `latest:PATH`
    /// (`latest` means the newest snapshot that holds --db)
    id: String,
    /// The live database to put the rows back into
    #[arg(long)]
    db: PathBuf,
    /// Only this table (repeatable)
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
            tables: args.tables,
            filter: args.filter,
            dry_run: args.dry_run,
            overwrite: args.overwrite,
            lock_wait: snap::LockWait(ctx.lock_wait),
        },
    )?;
    if ctx.json {
        ctx.print_json(&report)?;
        return Ok(0);
    }
    if report.dry_run {
        for line in &report.sql {
            println!("{line}");
        }
    }
    for t in &report.tables {
        if t.missing + t.conflicts > 0 {
            println!(
                "{:<24} {:>8} missing {:>8} recovered {:>8} conflicts {:>8} overwritten",
                t.table, t.missing, t.recovered, t.conflicts, t.overwritten
            );
        }
    }
    let recovered: u64 = report.tables.iter().map(|t| t.recovered).sum();
    let conflicts: u64 = report.tables.iter().map(|t| t.conflicts).sum();
    if report.dry_run {
        println!(
            "dry run: {} rows would be recovered into {} from snapshot {}; nothing was changed",
            report.tables.iter().map(|t| t.missing).sum::<u64>(),
            report.db,
            &report.snapshot[..12]
        );
    } else {
        println!(
            "{recovered} rows recovered into {} from snapshot {}; foreign keys: {}",
            report.db,
            &report.snapshot[..12],
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
    if conflicts > 0 && !args.overwrite {
        println!("{conflicts} rows differ in the snapshot and were kept as they are now (--overwrite replaces them)");
    }
    Ok(0)
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
