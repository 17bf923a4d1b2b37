use super::Ctx;
use anyhow::Result;
use snap::mount::{mount, MountOptions};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// An existing, empty directory to mount at
    dir: PathBuf,
    #[command(flatten)]
    filter: super::Filter,
    /// Mount the snapshots of this remote (packs read on demand; no local store needed)
    #[arg(long)]
    remote: Option<String>,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let (store, _view) = super::mirror::store_or_view(ctx, args.remote.as_deref())?;
    let opts = MountOptions {
        mountpoint: args.dir,
        selection: args.filter.selection()?,
        lock_wait: snap::LockWait(ctx.lock_wait),
    };
    let ended = mount(&store, &opts, |m| {
        for b in &m.bad_records {
            eprintln!("snap: warning: {b}; it is not shown (run `snap verify`)");
        }
        if !ctx.quiet {
            eprintln!(
                "snap: {} mounted read-only at {} (ids/, snapshots/, hosts/, tags/, latest); \
                 Ctrl-C or `umount {}` unmounts",
                super::count(m.snapshots as u64, "snapshot"),
                m.mountpoint.display(),
                m.mountpoint.display()
            );
        }
    })?;
    if ended.detached {
        eprintln!(
            "snap: {} was busy (a process has a file or directory open in it): \
             detached it; what is still open there now reads as an error",
            opts.mountpoint.display()
        );
    } else if !ctx.quiet {
        eprintln!("snap: unmounted {}", opts.mountpoint.display());
    }
    Ok(0)
}
