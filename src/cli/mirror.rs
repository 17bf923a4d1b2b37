use super::{bytes, Ctx};
use anyhow::{Context, Result};
use snap::mirror::{self, MirrorOptions, Remote};
use std::sync::Arc;

#[derive(clap::Args)]
pub struct Args {
    /// Remote: a name from the config, gs://BUCKET/PREFIX or file:///PATH
    /// [default: the config's only remote]
    #[arg(long)]
    remote: Option<String>,
    /// Also re-read and re-hash this percentage of the remote's packs
    #[arg(long, default_value_t = 0.0)]
    verify: f64,
}

#[derive(clap::Args)]
pub struct CloneArgs {
    /// Remote to rebuild the store from
    #[arg(long)]
    remote: String,
}

pub fn open_remote(spec: &str) -> Result<Arc<Remote>> {
    Ok(Arc::new(Remote::open(spec)?))
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let store = ctx.open()?;
    let spec = match args.remote {
        Some(r) => r,
        None => {
            let remotes = &ctx.config()?.remotes;
            if remotes.len() != 1 {
                return Err(super::invalid(format!(
                    "pass --remote: the config names {} remotes",
                    remotes.len()
                )));
            }
            remotes.keys().next().expect("one").clone()
        }
    };
    let remote = open_remote(&ctx.remote_url(&spec)?)?;
    let report = mirror::mirror(
        &store,
        &remote,
        &MirrorOptions {
            verify: args.verify / 100.0,
            lock_wait: snap::LockWait(ctx.lock_wait),
        },
    )
    .context("mirror stopped; it is resumable: run it again once the remote is reachable")?;
    if ctx.json {
        ctx.print_json(&report)?;
    } else {
        for p in &report.problems {
            println!("PROBLEM {p}");
        }
        println!(
            "mirrored to {}: {} packs and {} records uploaded ({}), {} packs already there, {} verified; {:.2} s, {:.1} MiB/s",
            report.remote,
            report.packs_uploaded,
            report.records_uploaded,
            bytes(report.bytes_uploaded),
            report.packs_already_there,
            report.packs_verified,
            report.duration_ms as f64 / 1000.0,
            report.throughput_mib_s
        );
    }
    Ok(if report.problems.is_empty() { 0 } else { 3 })
}

pub fn clone(ctx: &Ctx, args: CloneArgs) -> Result<u8> {
    let remote = open_remote(&ctx.remote_url(&args.remote)?)?;
    let report = mirror::clone(&remote, &ctx.store_path, &ctx.reporter()).with_context(|| {
        format!(
            "cannot clone {} into {}",
            args.remote,
            ctx.store_path.display()
        )
    })?;
    if ctx.json {
        ctx.print_json(&report)?;
    } else {
        println!(
            "cloned {} into {}: {} packs, {} snapshots, {} in {:.2} s",
            args.remote,
            report.store,
            report.packs,
            report.snapshots,
            bytes(report.bytes),
            report.duration_ms as f64 / 1000.0
        );
    }
    Ok(0)
}

/// A temporary local view of a remote, for commands given `--remote`.
pub struct RemoteView {
    pub store: snap::Store,
    _dir: tempfile::TempDir,
}

pub fn remote_view(spec: &str, local: Option<&snap::Store>) -> Result<RemoteView> {
    let dir = tempfile::tempdir()?;
    let (store, _) = mirror::view(open_remote(spec)?, &dir.path().join("view"), local)?;
    Ok(RemoteView { store, _dir: dir })
}

/// The local store, or with `remote` a view of that remote (kept alive by the
/// returned guard). A local store, when there is one, lends its cache and packs.
pub fn store_or_view(ctx: &Ctx, remote: Option<&str>) -> Result<(snap::Store, Option<RemoteView>)> {
    match remote {
        Some(r) => {
            let view = remote_view(&ctx.remote_url(r)?, ctx.open().ok().as_ref())?;
            Ok((view.store.clone(), Some(view)))
        }
        None => Ok((ctx.open()?, None)),
    }
}
