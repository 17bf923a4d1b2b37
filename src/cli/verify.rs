use super::Ctx;
use anyhow::Result;
use snap::VerifyOptions;

#[derive(clap::Args)]
pub struct Args {
    /// Snapshots to check (id, prefix or `latest`); all when none is given
    ids: Vec<String>,
    /// Re-read and re-hash every pack used, and check every database image
    #[arg(long)]
    read_data: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let store = ctx.open()?;
    let report = snap::verify(
        &store,
        &VerifyOptions {
            snapshots: args.ids,
            read_data: args.read_data,
            lock_wait: ctx.lock_wait,
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
            "{}: {} snapshots, {} chunks, {} packs read, {} databases checked in {:.2} s",
            if report.ok() { "ok" } else { "FAILED" },
            report.snapshots,
            report.chunks,
            report.packs_read,
            report.databases_checked,
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
            "index rebuilt: {} packs, {} chunks, {} snapshots",
            report.packs, report.chunks, report.snapshots
        );
        for b in &report.bad_packs {
            println!("unreadable pack left out: {b}");
        }
    }
    Ok(if report.bad_packs.is_empty() { 0 } else { 3 })
}
