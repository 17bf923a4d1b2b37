use super::{bytes, Ctx};
use anyhow::Result;
use snap::RestoreOptions;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Snapshot id, unique prefix (at least 6 hex digits), `latest`, or
    /// `latest:PATH` (the newest snapshot that holds PATH)
    id: String,
    #[command(flatten)]
    filter: super::HostTag,
    /// Directory to restore into: each root reappears as DIR/<base name>
    #[arg(long, required_unless_present = "in_place")]
    to: Option<PathBuf>,
    /// Restore only this path inside the snapshot (`root/sub/file`)
    #[arg(long)]
    path: Option<String>,
    /// Overwrite existing targets, and databases another process has open
    #[arg(long)]
    force: bool,
    /// Put every path (or only --path SUB) back where it was taken from;
    /// what is there now is snapshotted first (tag pre-restore), so the
    /// rollback can be undone. Files the snapshot lacks are removed from the
    /// restored directories (the undo snapshot keeps them)
    #[arg(long, conflicts_with = "to")]
    in_place: bool,
    /// Restore only paths matching this glob (on `root/sub/file` or the
    /// name) and what is under them (repeatable)
    #[arg(long, value_name = "GLOB", conflicts_with = "in_place")]
    include: Vec<String>,
    /// Leave out paths matching this glob and what is under them (repeatable)
    #[arg(long, value_name = "GLOB", conflicts_with = "in_place")]
    exclude: Vec<String>,
    /// Restore from this remote (ranged reads of the packs needed; no local store needed)
    #[arg(long)]
    remote: Option<String>,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    if args.to.as_deref() == Some(std::path::Path::new("-")) {
        return Err(super::invalid(
            "--to - : restore writes files and directories; `snap dump ID PATH` writes one file to stdout",
        ));
    }
    let (store, _view) = super::mirror::store_or_view(ctx, args.remote.as_deref())?;
    let in_place = args.in_place;
    let restored = snap::restore(
        &store,
        &RestoreOptions {
            snapshot: args.id,
            selection: args.filter.selection(),
            to: args.to,
            path: args.path,
            force: args.force,
            in_place: args.in_place,
            include: args.include,
            exclude: args.exclude,
            lock_wait: snap::LockWait(ctx.lock_wait),
        },
    );
    // An in-place restore that stopped part way: the commands that finish
    // or undo it, spelled, before the error.
    if restored.is_err() && in_place {
        super::out::warn_unfinished(&store);
    }
    let report = restored?;
    if ctx.json {
        ctx.print_json(&report)?;
    } else {
        println!(
            "restored snapshot {} to {}: {} files, {} dirs, {} databases, {} in {:.2} s",
            &report.snapshot[..12],
            report.targets.join(", "),
            report.files,
            report.dirs,
            report.databases,
            bytes(report.bytes),
            report.duration_ms as f64 / 1000.0
        );
        if report.damaged_index_rows > 0 {
            eprintln!("snap: warning: the index rows of {} chunks were damaged; they were read where the pack headers put them (`snap repair index` rebuilds the index)", report.damaged_index_rows);
        }
        for p in &report.fell_back {
            eprintln!("snap: warning: pack {p} is missing or damaged in the store; it was read from the remote instead (`snap repair packs` heals the store)");
        }
        if let Some(undo) = &report.undo_snapshot {
            println!("what was there before is snapshot {undo}; `snap restore {} --in-place` undoes this", &undo[..12]);
        }
    }
    Ok(0)
}
