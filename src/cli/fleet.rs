//! `snap fleet`, and naming a remote in a fleet bucket: a host mirrors
//! into its own prefix, and `--host` picks the prefix a command reads.

use super::Ctx;
use anyhow::{Context, Result};
use snap::fleet;
use snap::mirror::Remote;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The host `--host` named, when it picks a prefix of a fleet bucket (then
/// it is not also a filter of snapshots by their host).
static HOST: OnceLock<String> = OnceLock::new();

#[derive(clap::Subcommand)]
pub enum FleetCmd {
    /// Every host's newest snapshot or point per path, last mirror and
    /// verify, from the bucket alone; exit 7 when one is over its budget
    Status(StatusArgs),
    /// Every snapshot and point of each host, from its catalogs (a few
    /// objects a host, not one a snapshot)
    List(CompactArgs),
    /// Merge each host's catalogs into one (needs delete permission)
    Compact(CompactArgs),
}

#[derive(clap::Args)]
pub struct StatusArgs {
    /// The fleet bucket (a configured remote or a URL)
    #[arg(long)]
    remote: String,
    /// Every host's budget [default: the remote's `max_age`]
    #[arg(long, value_name = "AGE")]
    max_age: Option<String>,
    /// Also write a Prometheus textfile here (node_exporter)
    #[arg(long, value_name = "FILE")]
    textfile: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct CompactArgs {
    /// The fleet bucket (a configured remote or a URL)
    #[arg(long)]
    remote: String,
    /// Only these hosts (host name, store id or a prefix of one) [default: all]
    #[arg(long = "host", value_name = "HOST")]
    hosts: Vec<String>,
}

/// Notes `--host HOST` when the command's `--remote` is a fleet bucket
/// (configured with `fleet = true`, or given `--fleet`).
pub fn note_host(ctx: &Ctx) {
    let argv: Vec<String> = std::env::args().collect();
    let value = |flag: &str| -> Vec<String> {
        let eq = format!("{flag}=");
        let mut out = Vec::new();
        for (i, a) in argv.iter().enumerate() {
            if a == flag {
                out.extend(argv.get(i + 1).cloned());
            } else if let Some(v) = a.strip_prefix(&eq) {
                out.push(v.to_string());
            }
        }
        out
    };
    let (remotes, hosts) = (value("--remote"), value("--host"));
    let fleet = remotes.iter().any(|r| is_fleet(ctx, r));
    if let ([_], [host], true) = (remotes.as_slice(), hosts.as_slice(), fleet) {
        let _ = HOST.set(host.clone());
    }
}

/// A command whose only `--host` is the fleet's: refused on another remote.
pub fn host_given(given: bool, remote: &str) -> Result<()> {
    if given && !picks_host() {
        return Err(super::invalid(format!(
            "--host names a host of a fleet bucket, and {remote} is not one (`fleet = true`, or --fleet)"
        )));
    }
    Ok(())
}

/// Whether `--host` picks a fleet host's prefix (and filters nothing).
pub fn picks_host() -> bool {
    HOST.get().is_some()
}

fn is_fleet(ctx: &Ctx, spec: &str) -> bool {
    ctx.fleet
        || ctx
            .config
            .as_ref()
            .and_then(|c| c.remote(spec))
            .is_some_and(|r| r.fleet)
}

/// A remote's URL from a name or URL; in a fleet bucket, the prefix of the
/// host `--host` names, or else of this store.
pub fn remote_url(ctx: &Ctx, spec: &str) -> Result<String> {
    let url = match spec.contains("://") {
        true => spec.to_string(),
        false => ctx.config()?.remote_url(spec)?,
    };
    if !is_fleet(ctx, spec) {
        return Ok(url);
    }
    if let Some(host) = HOST.get() {
        let root = Remote::open(&url)?;
        let ids = super::mirror::identities(ctx, spec)?;
        let id = fleet::resolve_host(&root, &ids, host)?;
        return Ok(fleet::host_url(&url, &id));
    }
    let store = snap::Store::open(&ctx.store_path).with_context(|| {
        format!("{url} is a fleet bucket: name the host (--host HOST), or use a store that mirrors there")
    })?;
    Ok(fleet::host_url(&url, &store.config().store_id))
}

/// The bucket's URL itself (never a host's prefix).
fn root_url(ctx: &Ctx, spec: &str) -> Result<String> {
    match spec.contains("://") {
        true => Ok(spec.to_string()),
        false => Ok(ctx.config()?.remote_url(spec)?),
    }
}

pub fn run(ctx: &Ctx, cmd: FleetCmd) -> Result<u8> {
    match cmd {
        FleetCmd::Status(args) => status(ctx, args),
        FleetCmd::List(args) => list(ctx, args),
        FleetCmd::Compact(args) => compact(ctx, args),
    }
}

/// The root, the identities and the store ids `args` name.
fn chosen(
    ctx: &Ctx,
    args: &CompactArgs,
) -> Result<(String, Vec<age::x25519::Identity>, Vec<String>)> {
    let url = root_url(ctx, &args.remote)?;
    let root = Remote::open(&url)?;
    let ids = super::mirror::identities(ctx, &args.remote)?;
    let hosts = match args.hosts.is_empty() {
        true => fleet::hosts(&root)?,
        false => args
            .hosts
            .iter()
            .map(|h| fleet::resolve_host(&root, &ids, h))
            .collect::<snap::Result<_>>()?,
    };
    Ok((url, ids, hosts))
}

fn list(ctx: &Ctx, args: CompactArgs) -> Result<u8> {
    let (url, ids, hosts) = chosen(ctx, &args)?;
    let mut out = Vec::new();
    for id in hosts {
        let host = Remote::open(&fleet::host_url(&url, &id))?;
        let entries = fleet::entries(&host, &ids, &id)?;
        out.push(serde_json::json!({"store_id": id, "snapshots": entries}));
    }
    if ctx.json {
        ctx.print_json(&out)?;
        return Ok(0);
    }
    for h in &out {
        println!("{}:", h["store_id"].as_str().unwrap_or_default());
        for e in h["snapshots"].as_array().into_iter().flatten() {
            let kind = if e["point"] == true {
                "point"
            } else {
                "snapshot"
            };
            let id = e["id"].as_str().unwrap_or_default();
            let paths: Vec<&str> = e["paths"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p.as_str())
                .collect();
            println!(
                "  {} {kind} {} {}",
                &id[..12.min(id.len())],
                e["time"].as_str().unwrap_or_default(),
                paths.join(" ")
            );
        }
    }
    Ok(0)
}

fn status(ctx: &Ctx, args: StatusArgs) -> Result<u8> {
    let root = Remote::open(&root_url(ctx, &args.remote)?)?;
    let ids = super::mirror::identities(ctx, &args.remote)?;
    let configured = ctx.config.as_ref().and_then(|c| c.remote(&args.remote));
    let mut opts = match configured {
        Some(r) => r.fleet_options()?,
        None => fleet::FleetOptions::default(),
    };
    if let Some(age) = &args.max_age {
        opts.max_age = Some(
            humantime::parse_duration(age)
                .map_err(|e| super::invalid(format!("--max-age {age:?}: {e}")))?,
        );
    }
    let s = fleet::status(&root, &ids, &opts)?;
    if let Some(path) = &args.textfile {
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
        let dir = dir.unwrap_or(std::path::Path::new("."));
        std::fs::create_dir_all(dir)?;
        snap::durable::write_atomic(dir, path, fleet::textfile(&s).as_bytes())?;
    }
    if ctx.json {
        ctx.print_json(&s)?;
    } else {
        print_status(&s);
    }
    Ok(if s.ok() { 0 } else { 7 })
}

fn print_status(s: &fleet::FleetStatus) {
    let age =
        |a: f64| humantime::format_duration(std::time::Duration::from_secs(a.max(0.0) as u64));
    for h in &s.hosts {
        let state = match (h.over_budget, h.problems.is_empty()) {
            (true, _) => "OVER BUDGET",
            (false, false) => "PROBLEM",
            _ => "ok",
        };
        println!(
            "{} {} ({} records sent): {state}; last mirror {}",
            h.host.as_deref().unwrap_or("?"),
            &h.store_id,
            h.summary.as_ref().map_or(0, |s| s.records),
            h.last_mirror_age_seconds
                .map_or("never".into(), |a| format!("{} ago", age(a)))
        );
        for p in &h.paths {
            let kind = if p.point { "point" } else { "snapshot" };
            println!(
                "  {}: newest {kind} {} ago ({})",
                p.path,
                age(p.age_seconds),
                &p.id[..12]
            );
        }
        if let Some(v) = h.summary.as_ref().and_then(|s| s.verified.as_ref()) {
            println!("  last verify {}: {} problems", v.time, v.problems);
        }
        for m in h.problems.iter().chain(&h.warnings) {
            println!("  {m}");
        }
    }
    println!(
        "{} hosts, {} over budget, {} with problems ({} requests, {:.2} s)",
        s.hosts.len(),
        s.hosts.iter().filter(|h| h.over_budget).count(),
        s.hosts.iter().filter(|h| !h.problems.is_empty()).count(),
        s.requests,
        s.duration_ms as f64 / 1000.0
    );
}

fn compact(ctx: &Ctx, args: CompactArgs) -> Result<u8> {
    let (url, ids, hosts) = chosen(ctx, &args)?;
    let mut reports = Vec::new();
    for id in hosts {
        let host = Remote::open(&fleet::host_url(&url, &id))?;
        reports.push(fleet::compact(&host, &ids, None)?);
    }
    if ctx.json {
        ctx.print_json(&reports)?;
    } else {
        for r in &reports {
            match r.merged {
                0 => println!("{}: one catalog, nothing to merge", r.store_id),
                n => println!(
                    "{}: {n} catalogs merged into one ({} entries)",
                    r.store_id, r.entries
                ),
            }
        }
    }
    Ok(0)
}
