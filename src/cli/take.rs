use super::{bytes, Ctx};
use anyhow::Result;
use snap::{source::sqlite::CaptureOptions, TakeOptions};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Files, directories and SQLite databases to snapshot [default: every
    /// source in the config]
    paths: Vec<PathBuf>,
    /// Snapshot this configured source (repeatable)
    #[arg(long = "source", conflicts_with = "paths")]
    sources: Vec<String>,
    /// Print only the new snapshot's id (for scripts and hooks)
    #[arg(long)]
    id_only: bool,
    /// Tag the snapshot (repeatable)
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Skip paths matching this glob (repeatable; matched on full path and name)
    #[arg(long = "exclude")]
    excludes: Vec<String>,
    /// Record this time instead of now (RFC 3339)
    #[arg(long)]
    time: Option<String>,
    /// Read every file, even those unchanged since the previous snapshot
    #[arg(long)]
    force_read: bool,
    /// Record unreadable files as skipped instead of failing
    #[arg(long)]
    skip_unreadable: bool,
    /// A path that does not exist is not an error ("nothing to back up")
    #[arg(long)]
    allow_missing: bool,
    /// Run PRAGMA wal_checkpoint(TRUNCATE) first (skipped if the database is busy)
    #[arg(long)]
    checkpoint: bool,
    /// Seconds a database capture waits for its read lock while a writer holds the database
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    db_lock_wait: u64,
    /// Check captured databases with the full integrity_check (default: quick_check)
    #[arg(long)]
    integrity_check: bool,
    /// List what would be read and estimate what would be stored; write nothing
    #[arg(long, conflicts_with = "id_only")]
    dry_run: bool,
    /// Capture databases with the backup API instead of sqlite_dbpage
    #[arg(long, hide = true)]
    backup_api: bool,
    /// Check a WAL database on the copying connection after the copy (the fallback path)
    #[arg(long, hide = true)]
    one_connection: bool,
    /// Read a watched database whole, even when its newest point can be
    /// followed through the log (by default only what changed is read)
    #[arg(long)]
    no_follow: bool,
    /// Skip the structural check of a database followed from a point
    /// (a read of every page; its time is reported apart)
    #[arg(long)]
    no_check: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let time = args
        .time
        .as_deref()
        .map(chrono::DateTime::parse_from_rfc3339)
        .transpose()
        .map_err(|e| {
            super::invalid(format!(
                "--time must be RFC 3339, e.g. 2026-11-20T03:00:00Z ({e})"
            ))
        })?;
    if args.paths.is_empty() {
        let config = ctx.config().map_err(|_| {
            super::invalid(
                "give paths to snapshot, or configure sources (no configuration was found)",
            )
        })?;
        if config.sources.is_empty() {
            return Err(super::invalid(
                "the config has no sources; give paths to snapshot",
            ));
        }
    }
    // `snap take ./data` works on a fresh machine: the store is created on
    // first use. A dry run creates nothing: without a store, it runs
    // against an empty one, made for it and removed after.
    let mut scratch = None;
    let store = match args.dry_run {
        true if !snap::Store::exists(&ctx.store_path) => {
            let dir = scratch.insert(tempfile::tempdir()?);
            snap::Store::init(dir.path().join("store"), Default::default())?
        }
        true => ctx.open()?,
        false => ctx.open_or_init()?,
    };
    if args.paths.is_empty() {
        return take_sources(ctx, &args, &store, time);
    }
    let opts = TakeOptions {
        paths: args.paths.clone(),
        tags: args.tags.clone(),
        excludes: args.excludes.clone(),
        time,
        force_read: args.force_read,
        skip_unreadable: args.skip_unreadable,
        allow_missing: args.allow_missing,
        sqlite: CaptureOptions {
            checkpoint: args.checkpoint,
            integrity_check: args.integrity_check,
            backup_api: args.backup_api,
            one_connection: args.one_connection,
            no_follow: args.no_follow,
            no_check: args.no_check,
            lock_wait: Some(std::time::Duration::from_secs(args.db_lock_wait)),
        },
        lock_wait: snap::LockWait(ctx.lock_wait),
        dry_run: args.dry_run,
    };
    let report_ = snap::take(&store, &opts)?;
    report(ctx, &args, &report_)
}

/// Takes the configured sources (all, or those `--source` names).
fn take_sources(
    ctx: &Ctx,
    args: &Args,
    store: &snap::Store,
    time: Option<chrono::DateTime<chrono::FixedOffset>>,
) -> Result<u8> {
    let config = ctx.config()?;
    let names: Vec<String> = if args.sources.is_empty() {
        config.sources.keys().cloned().collect()
    } else {
        args.sources.clone()
    };
    let clock = snap::schedule::SystemClock;
    let runner = snap::jobs::JobRunner {
        config,
        store: store.clone(),
        clock: &clock,
        lock_wait: ctx.lock_wait,
    };
    let mut code = 0;
    for name in names {
        let mut opts = runner.take_options(&name, time)?;
        opts.force_read |= args.force_read;
        opts.skip_unreadable |= args.skip_unreadable;
        opts.allow_missing |= args.allow_missing;
        opts.dry_run = args.dry_run;
        code = code.max(report(ctx, args, &snap::take(store, &opts)?)?);
    }
    Ok(code)
}

fn report(ctx: &Ctx, args: &Args, report: &snap::TakeReport) -> Result<u8> {
    let store = std::path::absolute(&ctx.store_path).unwrap_or(ctx.store_path.clone());
    for w in &report.warnings {
        eprintln!("snap: warning: {w}");
    }
    if let (true, Some(s)) = (args.dry_run, &report.snapshot) {
        return dry_run(ctx, report, s);
    }
    let (Some(id), Some(s)) = (&report.id, &report.snapshot) else {
        if args.id_only {
            return Ok(0);
        }
        if ctx.json {
            ctx.print_json(&serde_json::json!({"id": null, "message": "nothing to back up"}))?;
        } else {
            println!("nothing to back up");
        }
        return Ok(0);
    };
    if args.id_only {
        println!("{}", id.to_hex());
    } else if ctx.json {
        ctx.print_json(&serde_json::json!({
            "id": id.to_hex(), "store": store, "store_origin": ctx.store_origin, "time": s.time, "paths": s.paths, "tags": s.tags,
            "stats": s.stats, "databases": s.databases, "skipped": s.skipped,
            "warnings": report.warnings, "ok": report.ok(),
        }))?;
    } else {
        let st = &s.stats;
        println!(
            "snapshot {} saved in {} ({})",
            id.to_hex(),
            store.display(),
            ctx.store_origin
        );
        println!(
            "  {}, {}, {}; {} in snapshot, {} read, {} new stored ({} plain); {:.2} s",
            super::count(st.files, "file"),
            super::count(st.dirs, "dir"),
            super::count(st.databases, "database"),
            bytes(st.size),
            bytes(st.read),
            bytes(st.added),
            bytes(st.added_raw),
            st.duration_ms as f64 / 1000.0
        );
        if st.check_ms > 0 {
            println!(
                "  of which {:.2} s checking databases followed from a point (--no-check skips it)",
                st.check_ms as f64 / 1000.0
            );
        }
        for d in &s.databases {
            println!(
                "  database {}: {} pages of {} B, {} mode, {} {}",
                d.path, d.page_count, d.page_size, d.journal_mode, d.check_kind, d.check
            );
        }
    }
    if !report.ok() {
        eprintln!("snap: a database check failed; the snapshot was kept, but look at it");
        return Ok(5);
    }
    Ok(0)
}

/// What a dry run found: what would be read, and about what would be stored.
fn dry_run(ctx: &Ctx, report: &snap::TakeReport, s: &snap::Snapshot) -> Result<u8> {
    let st = &s.stats;
    if ctx.json {
        let read: Vec<_> = report
            .would_read
            .iter()
            .map(|(p, n)| serde_json::json!({"path": p, "bytes": n}))
            .collect();
        ctx.print_json(&serde_json::json!({
            "dry_run": true, "paths": s.paths, "would_read": read, "stats": st,
            "databases": s.databases, "warnings": report.warnings,
        }))?;
        return Ok(0);
    }
    for (path, n) in &report.would_read {
        println!("would read {:>10}  {path}", bytes(*n));
    }
    println!(
        "dry run: {} to read ({}) in {}, {} and {} ({}); about {} would be stored ({} plain, before the index); nothing was written",
        super::count(report.would_read.len() as u64, "path"),
        bytes(st.read),
        super::count(st.files, "file"),
        super::count(st.dirs, "dir"),
        super::count(st.databases, "database"),
        bytes(st.size),
        bytes(st.added),
        bytes(st.added_raw),
    );
    Ok(0)
}
