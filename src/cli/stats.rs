use super::{bytes, Ctx};
use anyhow::{Context, Result};
use snap::stats::{growth, stats, StatsOptions};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    filter: super::Filter,
    /// Also count each database's stored bytes (reads every unit list)
    #[arg(long)]
    databases: bool,
    /// Skip the gc dry run (what the configured policy would free)
    #[arg(long)]
    no_gc: bool,
    /// Write the growth chart (stored bytes over time) as SVG to FILE
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let store = ctx.open()?;
    let opts = StatsOptions {
        selection: args.filter.selection()?,
        databases: args.databases,
        gc: (!args.no_gc).then(|| snap::gc::GcOptions {
            policy: super::gc::configured_policy(ctx, None),
            lock_wait: snap::LockWait(ctx.lock_wait),
            ..Default::default()
        }),
        lock_wait: snap::LockWait(ctx.lock_wait),
    };
    let s = stats(&store, &opts)?;
    let points = growth(&s.per_snapshot);
    if let Some(path) = &args.svg {
        if points.is_empty() {
            return Err(super::invalid("no snapshot to chart"));
        }
        std::fs::write(path, super::chart::svg(&points))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    for b in &s.bad_records {
        eprintln!("snap: warning: {b}; it is left out (run `snap verify`)");
    }
    if ctx.json {
        ctx.print_json(&s)?;
        return Ok(0);
    }
    print_human(&store, &s, &points);
    if let Some(path) = &args.svg {
        println!("chart written to {}", path.display());
    }
    Ok(0)
}

fn print_human(store: &snap::Store, s: &snap::stats::StoreStats, points: &[(i64, u64)]) {
    println!(
        "store {}: {}, {} logical, {} stored ({} in {} packs, {} index): {:.1}× deduplicated and compressed",
        store.root().display(),
        super::count(s.snapshots as u64, "snapshot"),
        bytes(s.logical),
        bytes(s.stored),
        bytes(s.pack_bytes),
        s.packs,
        bytes(s.index_bytes),
        s.dedup_ratio
    );
    if let (Some(free), Some(n)) = (s.gc_would_free, s.gc_would_forget) {
        println!(
            "gc with the configured policy would forget {} and free {}",
            super::count(n as u64, "snapshot"),
            bytes(free)
        );
    }
    println!(
        "\n{:<12} {:<25} {:>10} {:>10}",
        "snapshot", "time", "logical", "added"
    );
    for p in &s.per_snapshot {
        println!(
            "{:<12} {:<25} {:>10} {:>10}",
            &p.id[..12],
            super::time(&p.time),
            bytes(p.logical),
            bytes(p.added)
        );
    }
    println!("\n{:<10} {:>9} {:>10}", "day (UTC)", "snapshots", "added");
    for d in &s.per_day {
        println!("{:<10} {:>9} {:>10}", d.day, d.snapshots, bytes(d.added));
    }
    if !s.per_database.is_empty() {
        println!(
            "\n{:<32} {:>9} {:>10} {:>10}",
            "database", "snapshots", "size", "stored"
        );
        for d in &s.per_database {
            let stored = d.stored.map_or("-".to_string(), bytes);
            println!(
                "{:<32} {:>9} {:>10} {:>10}",
                d.path,
                d.snapshots,
                bytes(d.latest_size),
                stored
            );
        }
    }
    if points.len() > 1 {
        println!("\nstored bytes over time (what the snapshots added):");
        print!("{}", super::chart::terminal(points));
    }
}
