use super::{bytes, Ctx};
use anyhow::Result;
use snap::gc::GcOptions;
use snap::retention::{GroupBy, Policy};

#[derive(clap::Args)]
pub struct Args {
    /// Keep the N newest snapshots
    #[arg(long)]
    keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the N newest hours that have one
    #[arg(long)]
    keep_hourly: Option<u32>,
    /// ... of each of the N newest days (local time)
    #[arg(long)]
    keep_daily: Option<u32>,
    /// ... of each of the N newest ISO weeks
    #[arg(long)]
    keep_weekly: Option<u32>,
    /// ... of each of the N newest months
    #[arg(long)]
    keep_monthly: Option<u32>,
    /// ... of each of the N newest years
    #[arg(long)]
    keep_yearly: Option<u32>,
    /// Keep every snapshot within this long of the newest (e.g. 30d, 12h)
    #[arg(long)]
    keep_within: Option<String>,
    /// Keep every snapshot with this tag (repeatable)
    #[arg(long = "keep-tag")]
    keep_tags: Vec<String>,
    /// Keep undo snapshots (tags pre-restore, pre-recover) this long [default: 30d];
    /// they never count toward the other rules
    #[arg(long, value_name = "DURATION")]
    keep_undo_within: Option<String>,
    /// The rules for points of watched databases, e.g. `within=24h,hourly=168,daily=30`
    /// (rules: last, hourly, daily, weekly, monthly, yearly, within) [default: that]
    #[arg(long, value_name = "RULES")]
    points: Option<String>,
    /// How snapshots are grouped before the policy is applied
    #[arg(long, value_enum, default_value = "paths")]
    group_by: GroupByArg,
    /// Show the plan and what would be freed; change nothing
    #[arg(long)]
    dry_run: bool,
    /// Repack packs with more than this percentage of dead bytes
    #[arg(long, default_value_t = 10.0)]
    repack_threshold: f64,
    /// Apply the policy to this remote's snapshots and delete the remote packs
    /// they no longer need (the local store is left as it is)
    #[arg(long)]
    remote: Option<String>,
    /// In a fleet bucket: the host whose snapshots to prune (host name or store id)
    #[arg(long = "host", value_name = "HOST", requires = "remote")]
    host: Option<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum GroupByArg {
    Paths,
    Host,
    HostPaths,
}

/// The configured policy of the local store (or of remote `remote`); with
/// none, keep every snapshot and free only what none uses.
pub fn configured_policy(ctx: &Ctx, remote: Option<&str>) -> Policy {
    let tier = ctx.config.as_ref().and_then(|config| match remote {
        Some(r) if !r.contains("://") => config.remote_policy(r),
        Some(_) => None,
        None => config.local_policy(),
    });
    let mut policy = tier.unwrap_or_default();
    if policy.is_empty() {
        policy.keep_all = true;
    }
    policy
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let opts = options(ctx, &args)?;
    let report = match &args.remote {
        Some(r) => {
            super::fleet::host_given(args.host.is_some(), r)?;
            let local = ctx.open().ok();
            let (remote, opened) = super::mirror::opened(ctx, r)?;
            let ids = super::mirror::identities(ctx, r)?;
            snap::fleet::prune(remote, &opened, local.as_ref(), &opts, &ids)?
        }
        None => snap::gc::gc(&ctx.open()?, &opts)?,
    };
    if ctx.json {
        ctx.print_json(&report)?;
        return Ok(0);
    }
    print_report(&report);
    Ok(0)
}

/// The gc options the flags (and, without keep flags, the configured
/// policy of the tier) give.
fn options(ctx: &Ctx, args: &Args) -> Result<GcOptions> {
    if !(0.0..=100.0).contains(&args.repack_threshold) {
        return Err(super::invalid(
            "--repack-threshold is a percentage between 0 and 100",
        ));
    }
    let mut policy = Policy {
        keep_last: args.keep_last,
        keep_hourly: args.keep_hourly,
        keep_daily: args.keep_daily,
        keep_weekly: args.keep_weekly,
        keep_monthly: args.keep_monthly,
        keep_yearly: args.keep_yearly,
        keep_within: args.keep_within.clone(),
        keep_tags: args.keep_tags.clone(),
        ..Default::default()
    };
    let undo = args.keep_undo_within.clone();
    // Without keep flags, the tier's policy comes from the config.
    if policy.is_empty() {
        policy = configured_policy(ctx, args.remote.as_deref());
    }
    if undo.is_some() {
        policy.keep_undo_within = undo;
    }
    if let Some(rules) = &args.points {
        policy.points = Some(Box::new(points_policy(rules)?));
    }
    Ok(GcOptions {
        policy,
        group_by: match args.group_by {
            GroupByArg::Paths => GroupBy::Paths,
            GroupByArg::Host => GroupBy::Host,
            GroupByArg::HostPaths => GroupBy::HostPaths,
        },
        dry_run: args.dry_run,
        repack_threshold: args.repack_threshold / 100.0,
        now: None,
        lock_wait: snap::LockWait(ctx.lock_wait),
    })
}

/// What gc decided and did, for people.
fn print_report(report: &snap::gc::GcReport) {
    for d in &report.plan.decisions {
        println!(
            "{} {} {}  {}",
            if d.keep { "keep  " } else { "forget" },
            &d.id[..12],
            super::time(&d.time),
            d.reasons.join(", ")
        );
    }
    for (pack, fate) in &report.packs {
        println!(
            "{:<6} pack {}",
            format!("{fate:?}").to_lowercase(),
            &pack[..12]
        );
    }
    println!(
        "{}{} kept, {} forgotten; {} packs deleted, {} repacked into {}; {} freed; {:.2} s",
        if report.dry_run { "dry run: " } else { "" },
        report.kept,
        report.forgotten,
        report.packs_deleted,
        report.packs_repacked,
        report.packs_written,
        bytes(report.bytes_freed),
        report.duration_ms as f64 / 1000.0
    );
    for b in &report.bad_packs {
        println!("unreadable pack left alone: {b}");
    }
    for b in &report.bad_records {
        eprintln!("snap: warning: {b}; neither kept nor forgotten (run `snap verify`)");
    }
}

/// `--points within=24h,hourly=168,daily=30` as a policy.
fn points_policy(rules: &str) -> Result<Policy> {
    let mut p = Policy::default();
    for rule in rules.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        let bad = || {
            super::invalid(format!(
                "--points: {rule:?} is not a rule (e.g. within=24h,hourly=168,daily=30)"
            ))
        };
        let (name, value) = rule.split_once('=').ok_or_else(bad)?;
        let n = || value.parse::<u32>().map_err(|_| bad());
        match name {
            "last" => p.keep_last = Some(n()?),
            "hourly" => p.keep_hourly = Some(n()?),
            "daily" => p.keep_daily = Some(n()?),
            "weekly" => p.keep_weekly = Some(n()?),
            "monthly" => p.keep_monthly = Some(n()?),
            "yearly" => p.keep_yearly = Some(n()?),
            "within" => p.keep_within = Some(value.to_string()),
            _ => return Err(bad()),
        }
    }
    if p.is_empty() {
        return Err(super::invalid(
            "--points needs at least one rule (e.g. within=24h)",
        ));
    }
    Ok(p)
}
