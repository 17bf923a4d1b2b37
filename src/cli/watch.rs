use super::Ctx;
use anyhow::Result;
use snap::mirror::ship::{Ship, Shipped};
use snap::watch::{watch, WatchEvent, WatchOptions};
use std::path::PathBuf;
use std::sync::Arc;
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
    /// Ship every point to this remote (a name from the config, or a URL)
    #[arg(long)]
    remote: Option<String>,
    /// With --remote: seconds within which a point is on the remote
    #[arg(long, default_value_t = snap::mirror::ship::LAG.as_secs_f64())]
    lag_seconds: f64,
    /// With --remote: ship unencrypted when the store has no recipient
    #[arg(long)]
    plaintext: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    if args.interval_ms == 0 {
        return Err(super::invalid("--interval-ms must be at least 1"));
    }
    // Whether points can be shipped is known before anything is created.
    if args.remote.is_some() {
        snap::mirror::ship::ready(ctx.open().ok().as_ref(), args.plaintext)?;
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
    let ship = match &args.remote {
        Some(spec) => {
            if !(0.2..=86400.0).contains(&args.lag_seconds) {
                return Err(super::invalid(
                    "--lag-seconds must be between 0.2 and 86400",
                ));
            }
            let remote = Arc::new(snap::mirror::Remote::open(&ctx.remote_url(spec)?)?);
            let ship = Arc::new(Ship::new(Duration::from_secs_f64(args.lag_seconds)));
            let url = remote.url.clone();
            let (thread, done) = super::watches::spawn_ship(
                store.root(),
                ship.clone(),
                remote,
                args.plaintext,
                move |s, failing| say_ship(&url, s, failing),
            );
            Some((ship, thread, done))
        }
        None => None,
    };
    let report = watch(&store, &opts, |e| {
        if let (Some((s, _, _)), WatchEvent::Point { .. }) = (&ship, e) {
            s.noted();
        }
        print(ctx, e)
    });
    // What was recorded last is shipped before the watcher exits.
    if let Some((_, thread, done)) = ship {
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = thread.join();
    }
    let report = report?;
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

/// A ship run: failures, and the first success after them, to stderr.
fn say_ship(url: &str, s: &Shipped, failing: &mut bool) {
    match s {
        Shipped::Failed(e) => {
            *failing = true;
            eprintln!("snap: shipping to {url} failed, tried again shortly: {e}");
        }
        Shipped::Sent(r) => {
            if *failing {
                eprintln!("snap: shipping to {url} works again");
            }
            for p in r.problems.iter().chain(&r.warnings).chain(&r.held_back) {
                eprintln!("snap: shipping to {url}: {p}");
            }
            *failing = false;
        }
    }
}
