use super::Ctx;
use anyhow::Result;
use snap::watch::{watch, WatchEvent, WatchOptions};
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// SQLite databases, or directories whose databases are watched
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Milliseconds between looks at each database (a commit is in a point about this long after it)
    #[arg(long, default_value_t = snap::watch::INTERVAL.as_millis() as u64)]
    interval_ms: u64,
    /// Tag every point (repeatable)
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Stop after this many seconds (default: until SIGINT or SIGTERM)
    #[arg(long)]
    seconds: Option<f64>,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    if args.interval_ms == 0 {
        return Err(super::invalid("--interval-ms must be at least 1"));
    }
    let store = ctx.open_or_init()?;
    let opts = WatchOptions {
        paths: args.paths,
        interval: Duration::from_millis(args.interval_ms),
        tags: args.tags,
        duration: args.seconds.map(Duration::from_secs_f64),
        ..Default::default()
    };
    if !ctx.quiet {
        eprintln!(
            "snap: watching {} every {} ms into {}; Ctrl-C stops",
            opts.paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            args.interval_ms,
            store.root().display()
        );
    }
    let report = watch(&store, &opts, |e| print(ctx, e))?;
    if !ctx.quiet {
        eprintln!(
            "snap: stopped watching: {} recorded ({} read every page), {} failed looks",
            super::count(report.points, "point"),
            report.full_reads,
            report.failures
        );
    }
    Ok(if report.failures > 0 { 1 } else { 0 })
}

fn print(ctx: &Ctx, e: &WatchEvent) {
    if ctx.json {
        let v = match e {
            WatchEvent::Point {
                path,
                id,
                pages,
                added,
                full_read,
                starts,
            } => serde_json::json!({"event": "point", "path": path, "id": id.to_hex(),
                "pages_read": pages, "added": added, "full_read": full_read, "starts": starts}),
            WatchEvent::Ended { path, why } => {
                serde_json::json!({"event": "ended", "path": path, "why": why})
            }
            WatchEvent::Failed { path, error } => {
                serde_json::json!({"event": "failed", "path": path, "error": error})
            }
            WatchEvent::PutOff { path, why } => {
                serde_json::json!({"event": "put_off", "path": path, "why": why})
            }
        };
        println!("{v}");
        return;
    }
    match e {
        WatchEvent::Point {
            path,
            id,
            pages,
            added,
            full_read,
            starts,
        } => {
            if let Some(s) = starts {
                println!("{}: a new window: {s}", path.display());
            }
            let how = match full_read {
                Some(why) => format!(", every page read: {why}"),
                None => String::new(),
            };
            if !ctx.quiet {
                println!(
                    "{} point {} {} read, {} stored{how}",
                    path.display(),
                    &id.to_hex()[..12],
                    super::count(*pages, "page"),
                    super::bytes(*added),
                );
            }
        }
        WatchEvent::Ended { path, why } => println!("{}: {why}", path.display()),
        WatchEvent::PutOff { path, why } => eprintln!(
            "snap: {}: looks are put off until the store is free ({why}); the next look records what was committed meanwhile",
            path.display()
        ),
        WatchEvent::Failed { path, error } => {
            eprintln!(
                "snap: {}: this look failed, the next one tries again: {error}",
                path.display()
            )
        }
    }
}
