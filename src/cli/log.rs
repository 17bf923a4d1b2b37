use super::Ctx;
use anyhow::Result;
use snap::diff::log::{log, LogOptions};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The watched database (its path on this machine)
    db: PathBuf,
    /// The table whose rows are followed
    #[arg(long)]
    table: String,
    /// Only rows matching this SQL condition, e.g. "status = 'hired'"
    #[arg(long = "where", value_name = "SQL")]
    filter: Option<String>,
    /// From this moment (RFC 3339, local "2026-12-05 14:02", or "10 minutes ago")
    #[arg(long)]
    since: Option<String>,
    /// Up to this moment
    #[arg(long)]
    until: Option<String>,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let store = ctx.open()?;
    let now = chrono::Local::now().fixed_offset();
    let moment = |m: &Option<String>| {
        m.as_deref()
            .map(|m| snap::select::parse_moment(m, now))
            .transpose()
    };
    let entries = log(
        &store,
        &LogOptions {
            db: args.db,
            table: args.table.clone(),
            filter: args.filter,
            since: moment(&args.since)?,
            until: moment(&args.until)?,
            lock_wait: snap::LockWait(ctx.lock_wait),
        },
    )?;
    if ctx.json {
        ctx.print_json(&entries)?;
        return Ok(0);
    }
    let t = |t: &chrono::DateTime<chrono::FixedOffset>| {
        t.with_timezone(&chrono::Local)
            .format("%Y-%m-%d %H:%M:%S%.3f")
            .to_string()
    };
    for e in &entries {
        let mut what = Vec::new();
        for (n, verb) in [
            (e.added, "added"),
            (e.changed, "changed"),
            (e.removed, "removed"),
        ] {
            if n > 0 {
                what.push(format!("{} {verb}", super::count(n, "row")));
            }
        }
        println!(
            "{}: {} between {} and {} (point {}; keys {}{})",
            args.table,
            what.join(", "),
            t(&e.from.1),
            t(&e.to.1),
            &e.to.0.to_hex()[..12],
            e.keys.join(" "),
            if (e.added + e.changed + e.removed) as usize > e.keys.len() {
                " …"
            } else {
                ""
            }
        );
    }
    if entries.is_empty() {
        println!("{}: no matching row changed in that range", args.table);
    }
    Ok(0)
}
