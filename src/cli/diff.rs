//! `snap diff`, `snap dump`, `snap find`: looking into snapshots.

use super::{bytes, Ctx};
use anyhow::Result;
use std::io::Write;

#[derive(clap::Args)]
pub struct DiffArgs {
    /// The older snapshot: id, prefix, `latest` or `latest:PATH`
    a: String,
    /// The newer snapshot (omit with --live)
    #[arg(required_unless_present = "live")]
    b: Option<String>,
    /// Only this path inside the snapshots (`root/sub`)
    #[arg(long = "in", value_name = "SUB")]
    sub: Option<String>,
    /// Compare A with the live paths it was taken from ("what did the migration delete?")
    #[arg(long, conflicts_with = "b")]
    live: bool,
    /// Print the SQL that turns A's rows into B's (as sqldiff does)
    #[arg(long)]
    sql: bool,
    /// Compare databases by content only, not row by row
    #[arg(long)]
    no_rows: bool,
    /// Read the snapshots from this remote (no local store needed)
    #[arg(long)]
    remote: Option<String>,
    #[command(flatten)]
    filter: super::Filter,
}

pub fn diff(ctx: &Ctx, args: DiffArgs) -> Result<u8> {
    let (store, _view) = super::mirror::store_or_view(ctx, args.remote.as_deref())?;
    let report = snap::diff::diff(
        &store,
        &snap::diff::DiffOptions {
            a: args.a,
            b: args.b,
            selection: args.filter.selection()?,
            path: args.sub,
            no_rows: args.no_rows,
            sql: args.sql,
            lock_wait: snap::LockWait(ctx.lock_wait),
        },
    )?;
    if ctx.json {
        ctx.print_json(&report)?;
        return Ok(0);
    }
    let mut out = std::io::stdout().lock();
    if args.sql {
        for d in &report.databases {
            writeln!(out, "-- {}", d.path)?;
            for line in &d.sql {
                writeln!(out, "{line}")?;
            }
        }
        return Ok(0);
    }
    let size = |s: Option<u64>| s.map(bytes).unwrap_or_else(|| "-".into());
    for c in &report.changes {
        let sign = match c.change {
            "added" => "+",
            "removed" => "-",
            _ => "M",
        };
        writeln!(
            out,
            "{sign} {:<4} {:>10} -> {:<10} {}",
            c.kind,
            size(c.size_a),
            size(c.size_b),
            c.path
        )?;
    }
    for d in &report.databases {
        print_database(&mut out, d)?;
    }
    writeln!(
        out,
        "{} .. {}: {} paths changed, {} databases with row changes",
        &report.a[..12],
        if report.b == "live" {
            "live"
        } else {
            &report.b[..12]
        },
        report.changes.len(),
        report.databases.len()
    )?;
    Ok(0)
}

/// One database's row changes, for people.
fn print_database(out: &mut impl Write, d: &snap::diff::DbDiff) -> Result<()> {
    writeln!(out, "database {}:", d.path)?;
    for s in &d.schema {
        writeln!(out, "  schema: {s}")?;
    }
    for c in &d.columns {
        match c.change {
            "removed" => writeln!(
                out,
                "  column {}.{} removed ({} values lost)",
                c.table, c.column, c.values
            )?,
            _ => writeln!(out, "  column {}.{} added", c.table, c.column)?,
        }
    }
    for t in &d.tables {
        writeln!(
            out,
            "  {:<24} {:>8} added {:>8} removed {:>8} changed {:>8} reused",
            t.table, t.added, t.removed, t.changed, t.reused
        )?;
    }
    if d.tables.iter().any(|t| t.reused > 0) {
        writeln!(out, "  (reused: a key that holds a different row now; the old row was deleted with its children)")?;
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct DumpArgs {
    /// Snapshot id, prefix, `latest` or `latest:PATH`
    id: String,
    /// The file inside the snapshot (`root/sub/file`); with --tar a
    /// directory, or `/` for every root
    path: String,
    /// A database as SQL text (schema and rows) instead of its image
    #[arg(long, conflicts_with = "tar")]
    sql: bool,
    /// PATH and everything under it as a tar stream (modes, owners, times,
    /// symlinks, hard links): `snap dump latest data --tar | tar x -C DIR`
    #[arg(long, visible_alias = "archive")]
    tar: bool,
    #[command(flatten)]
    filter: super::HostTag,
}

pub fn dump(ctx: &Ctx, args: DumpArgs) -> Result<u8> {
    let store = ctx.open()?;
    let id = store.resolve_in(&args.id, &args.filter.selection())?;
    let wait = snap::LockWait(ctx.lock_wait);
    if args.tar {
        let out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
        let report = snap::restore::browse::dump_tar(&store, &id, &args.path, out, wait)?;
        if ctx.verbose {
            eprintln!(
                "snap: tar stream of {}, {}, {} ({})",
                super::count(report.files, "file"),
                super::count(report.dirs, "dir"),
                super::count(report.links, "link"),
                super::bytes(report.bytes)
            );
        }
        return Ok(0);
    }
    let mut out = std::io::BufWriter::new(std::io::stdout());
    snap::restore::browse::dump(&store, &id, &args.path, args.sql, &mut out, wait)?;
    Ok(0)
}

#[derive(clap::Args)]
pub struct FindArgs {
    /// A glob matched against names and paths (`*.db`, `recruit/*`)
    pattern: String,
    #[command(flatten)]
    filter: super::Filter,
}

pub fn find(ctx: &Ctx, args: FindArgs) -> Result<u8> {
    let store = ctx.open()?;
    let sel = args.filter.selection()?;
    let wait = snap::LockWait(ctx.lock_wait);
    let (rows, bad) = snap::restore::browse::find(&store, &args.pattern, &sel, wait)?;
    for b in &bad {
        eprintln!("snap: warning: {b}; it was not searched (run `snap verify`)");
    }
    if ctx.json {
        ctx.print_json(&rows)?;
    } else {
        let mut out = std::io::stdout().lock();
        for r in &rows {
            writeln!(
                out,
                "{} {} {}",
                &r.snapshot[..12],
                super::time(&r.time),
                r.path
            )?;
        }
    }
    Ok(0)
}
