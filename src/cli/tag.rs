use super::{invalid, Ctx};
use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    /// Snapshots to retag (ids, prefixes, `latest`, `latest:PATH`)
    #[arg(required = true)]
    ids: Vec<String>,
    /// Add this tag (repeatable)
    #[arg(long, value_name = "TAG")]
    add: Vec<String>,
    /// Remove this tag (repeatable)
    #[arg(long, value_name = "TAG")]
    remove: Vec<String>,
    #[command(flatten)]
    filter: super::HostTag,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    if args.add.is_empty() && args.remove.is_empty() {
        return Err(invalid("name a tag to --add or --remove"));
    }
    let store = ctx.open()?;
    let sel = args.filter.selection();
    let ids = args
        .ids
        .iter()
        .map(|s| store.resolve_in(s, &sel))
        .collect::<snap::Result<Vec<_>>>()?;
    let mut done = Vec::new();
    for id in ids {
        let r = snap::tag(
            &store,
            &id,
            &args.add,
            &args.remove,
            snap::LockWait(ctx.lock_wait),
        )?;
        if !ctx.json {
            if r.new == r.old {
                println!(
                    "snapshot {}: tags unchanged ({})",
                    &r.old.to_hex()[..12],
                    r.tags.join(",")
                );
            } else {
                println!(
                    "snapshot {} is now {}: tags {}",
                    &r.old.to_hex()[..12],
                    &r.new.to_hex()[..12],
                    if r.tags.is_empty() {
                        "none".into()
                    } else {
                        r.tags.join(",")
                    }
                );
            }
        }
        done.push(r);
    }
    if ctx.json {
        ctx.print_json(&done)?;
    }
    Ok(0)
}
