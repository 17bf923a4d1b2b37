use super::{bytes, Ctx};
use anyhow::Result;

#[derive(clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    filter: super::Filter,
    /// List the snapshots on this remote instead (no local store needed)
    #[arg(long)]
    remote: Option<String>,
    /// List every point of watched databases, not only their windows
    #[arg(long)]
    points: bool,
}

#[derive(clap::Args)]
pub struct LsArgs {
    /// Snapshot id, unique prefix, `latest` or `latest:PATH`
    id: String,
    /// Only this path inside the snapshot (`root/sub/dir`, or the path as it was taken)
    path: Option<String>,
    /// Read the snapshot from this remote (no local store needed)
    #[arg(long)]
    remote: Option<String>,
    #[command(flatten)]
    filter: super::HostTag,
}

pub fn list(ctx: &Ctx, args: ListArgs) -> Result<u8> {
    let all = match &args.remote {
        Some(r) => {
            let (remote, opened) = super::mirror::opened(ctx, r)?;
            snap::mirror::remote_snapshots(&remote, &opened)?
        }
        None => {
            let (all, bad) = ctx.open()?.snapshots_checked()?;
            for b in bad {
                eprintln!("snap: warning: {b}; it is left out (run `snap verify`)");
            }
            all
        }
    };
    let sel = args.filter.selection()?;
    let snaps: Vec<_> = all.into_iter().filter(|(_, s)| sel.matches(s)).collect();
    if ctx.json {
        let rows: Vec<_> = snaps
            .iter()
            .map(|(id, s)| {
                serde_json::json!({
                    "id": id.to_hex(), "time": s.time, "host": s.host, "tags": s.tags,
                    "paths": s.paths, "size": s.stats.size, "added": s.stats.added,
                    "stats": s.stats, "databases": s.databases, "skipped": s.skipped,
                    "parent": s.parent.map(|p| p.to_hex()), "ok": s.checks_ok(),
                    "point": s.point,
                })
            })
            .collect();
        ctx.print_json(&rows)?;
        return Ok(0);
    }
    println!(
        "{:<12} {:<25} {:<12} {:>10} {:>10}  {:<16} paths",
        "id", "time", "host", "size", "added", "tags"
    );
    for (id, s) in snaps
        .iter()
        .filter(|(_, s)| args.points || s.point.is_none())
    {
        println!(
            "{:<12} {:<25} {:<12} {:>10} {:>10}  {:<16} {}{}",
            &id.to_hex()[..12],
            super::time(&s.time),
            s.host,
            bytes(s.stats.size),
            bytes(s.stats.added),
            s.tags.join(","),
            s.paths.join(" "),
            if s.checks_ok() {
                ""
            } else {
                "  [DATABASE CHECK FAILED]"
            }
        );
    }
    let points = snaps.iter().filter(|(_, s)| s.point.is_some()).count() as u64;
    println!("{}", super::count(snaps.len() as u64 - points, "snapshot"));
    print_windows(&snap::watch::windows(&snaps));
    Ok(0)
}

/// Watched databases' continuous windows, and the gaps before each.
fn print_windows(windows: &[snap::watch::Window]) {
    if windows.is_empty() {
        return;
    }
    println!("\nwatched databases: continuous windows of points (restore, diff and recover take latest:PATH@MOMENT)");
    for w in windows {
        let t = |t: &chrono::DateTime<chrono::FixedOffset>| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S%.3f")
                .to_string()
        };
        println!(
            "{}  {} .. {}  {}, {} stored{}  {}",
            w.path,
            t(&w.first.1),
            t(&w.last.1),
            super::count(w.points, "point"),
            bytes(w.added),
            match w.full_reads {
                0 => String::new(),
                n => format!(" ({n} read every page)"),
            },
            w.host
        );
        println!("    gap before it: {}", w.starts);
    }
}

pub fn ls(ctx: &Ctx, args: LsArgs) -> Result<u8> {
    let (store, _view) = super::mirror::store_or_view(ctx, args.remote.as_deref())?;
    let id = store.resolve_in(&args.id, &args.filter.selection())?;
    let wait = snap::LockWait(ctx.lock_wait);
    let rows = snap::restore::browse::ls(&store, &id, args.path.as_deref(), wait)?;
    if ctx.json {
        ctx.print_json(&rows)?;
        return Ok(0);
    }
    for r in &rows {
        println!(
            "{} {:o} {:>10} {} {}",
            r.kind,
            r.mode & 0o7777,
            r.size,
            r.mtime,
            r.path
        );
        if let Some(db) = &r.database {
            println!("    {}", database_line(db));
        }
    }
    Ok(0)
}

/// A database's check results on one line: "245 pages of 4096 B, wal mode,
/// quick_check ok; tables: candidates 35, evaluations 108".
fn database_line(db: &snap::format::record::DatabaseSummary) -> String {
    let tables: Vec<String> = db.tables.iter().map(|(t, n)| format!("{t} {n}")).collect();
    format!(
        "database: {} pages of {} B, {} mode, SQLite {}, {} {}; tables: {}",
        db.page_count,
        db.page_size,
        db.journal_mode,
        db.sqlite_version,
        db.check_kind,
        db.check,
        if tables.is_empty() {
            "none".into()
        } else {
            tables.join(", ")
        }
    )
}
