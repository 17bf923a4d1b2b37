use super::Ctx;
use anyhow::Result;
use snap::VerifyOptions;

#[derive(clap::Args)]
pub struct Args {
    /// Snapshots to check (id, prefix, `latest` or `latest:PATH`); all (in
    /// the selection) when none is given
    ids: Vec<String>,
    #[command(flatten)]
    filter: super::Filter,
    /// Only the newest snapshot
    #[arg(long, conflicts_with_all = ["ids", "all"])]
    latest: bool,
    /// Every snapshot (the default)
    #[arg(long)]
    all: bool,
    /// Re-read and re-hash every pack used, and restore and check every database image
    #[arg(long, conflicts_with = "sample")]
    read_data: bool,
    /// Like --read-data for this percentage of the packs in use
    #[arg(long)]
    sample: Option<f64>,
    /// Verify a remote's snapshots (its packs are read with ranged reads)
    #[arg(long)]
    remote: Option<String>,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let view = match &args.remote {
        // No local packs: verifying a remote means reading the remote's bytes.
        Some(r) => Some(super::mirror::remote_view(ctx, r, None)?),
        None => None,
    };
    let store = match &view {
        Some(v) => v.store.clone(),
        None => ctx.open()?,
    };
    let report = snap::verify(
        &store,
        &VerifyOptions {
            selection: args.filter.selection()?,
            snapshots: if args.latest {
                vec!["latest".into()]
            } else {
                args.ids
            },
            read_data: args.read_data,
            sample: args.sample.map(|p| p / 100.0),
            lock_wait: snap::LockWait(ctx.lock_wait),
        },
    )?;
    if ctx.json {
        ctx.print_json(&serde_json::json!({"ok": report.ok(), "report": report}))?;
    } else {
        for p in &report.problems {
            println!(
                "PROBLEM snapshot {} path {} pack {}: {}",
                p.snapshot.as_deref().unwrap_or("-"),
                p.path.as_deref().unwrap_or("-"),
                p.pack.as_deref().unwrap_or("-"),
                p.detail
            );
        }
        println!(
            "{}: {}, {}, {} read, {} checked in {:.2} s",
            if report.ok() { "ok" } else { "FAILED" },
            super::count(report.snapshots, "snapshot"),
            super::count(report.chunks, "chunk"),
            super::count(report.packs_read, "pack"),
            super::count(report.databases_checked, "database"),
            report.duration_ms as f64 / 1000.0
        );
    }
    Ok(if report.ok() { 0 } else { 3 })
}

pub fn repair_index(ctx: &Ctx) -> Result<u8> {
    let store = ctx.open()?;
    let _lock = store.lock("repair index", ctx.lock_wait)?;
    let report = snap::store::packs::rebuild_index(&store)?;
    if ctx.json {
        ctx.print_json(&report)?;
    } else {
        println!(
            "index rebuilt: {}, {}, {}",
            super::count(report.packs, "pack"),
            super::count(report.chunks, "chunk"),
            super::count(report.snapshots, "snapshot")
        );
        for b in &report.bad_packs {
            println!("unreadable pack left out: {b}");
        }
    }
    Ok(if report.bad_packs.is_empty() { 0 } else { 3 })
}
