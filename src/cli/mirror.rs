use super::{bytes, Ctx};
use anyhow::{Context, Result};
use snap::mirror::{self, MirrorOptions, Opened, Remote};
use std::sync::Arc;

#[derive(clap::Args)]
pub struct Args {
    /// Remote: a name from the config, gs://, s3:// or azblob://BUCKET/PREFIX, or file:///PATH
    /// [default: the config's only remote]
    #[arg(long)]
    remote: Option<String>,
    /// Also re-read and re-hash this percentage of the remote's packs (needs
    /// read permission and the identity)
    #[arg(long, default_value_t = 0.0)]
    verify: f64,
    /// Mirror unencrypted when the store has no recipient (`snap key`)
    #[arg(long)]
    plaintext: bool,
    /// List the remote (needs list permission) and send again whatever it
    /// lacks of what was sent before (after a bucket was emptied or restored)
    #[arg(long)]
    rescan: bool,
    /// Send small packs together, one object per pack size (what shipping
    /// points does; a bundle stays on the remote while any of its packs is
    /// still held here)
    #[arg(long)]
    bundle: bool,
}

#[derive(clap::Args)]
pub struct CloneArgs {
    /// Remote to rebuild the store from
    #[arg(long)]
    remote: String,
    /// In a fleet bucket: the host to rebuild (host name or store id)
    #[arg(long = "host", value_name = "HOST")]
    host: Option<String>,
}

#[derive(clap::Args)]
pub struct RepairArgs {
    /// The remote to copy good packs from [default: the config's only remote]
    #[arg(long = "from-remote", value_name = "REMOTE")]
    from_remote: Option<String>,
}

pub fn open_remote(spec: &str) -> Result<Arc<Remote>> {
    Ok(Arc::new(Remote::open(spec)?))
}

/// The remote name given, or the config's only remote.
fn remote_spec(ctx: &Ctx, given: Option<String>) -> Result<String> {
    if let Some(r) = given {
        return Ok(r);
    }
    let remotes = &ctx.config()?.remotes;
    if remotes.len() != 1 {
        return Err(super::invalid(format!(
            "pass --remote: the config names {} remotes",
            remotes.len()
        )));
    }
    Ok(remotes.keys().next().expect("one").clone())
}

/// The identities for remote `spec`: --identity, the remote's
/// `identity_file`, or the environment.
pub(super) fn identities(ctx: &Ctx, spec: &str) -> Result<Vec<age::x25519::Identity>> {
    let configured = ctx
        .config
        .as_ref()
        .and_then(|c| c.remote(spec))
        .and_then(|r| r.identity_file.clone())
        .map(std::path::PathBuf::from);
    Ok(mirror::crypt::identities(
        ctx.identity.as_deref().or(configured.as_deref()),
    )?)
}

/// Opens remote `spec` (a name or URL) for reading.
pub fn opened(ctx: &Ctx, spec: &str) -> Result<(Arc<Remote>, Opened)> {
    let remote = open_remote(&ctx.remote_url(spec)?)?;
    let opened = mirror::open_remote(&remote, &identities(ctx, spec)?)?;
    Ok((remote, opened))
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let store = ctx.open()?;
    let spec = remote_spec(ctx, args.remote)?;
    let remote = open_remote(&ctx.remote_url(&spec)?)?;
    let plaintext = args.plaintext
        || ctx
            .config
            .as_ref()
            .and_then(|c| c.remote(&spec))
            .is_some_and(|r| r.plaintext);
    let opts = MirrorOptions {
        verify: args.verify / 100.0,
        lock_wait: snap::LockWait(ctx.lock_wait),
        plaintext,
        rescan: args.rescan,
        bundle: args.bundle,
        no_probe: false,
        catalog_every: None,
        identities: if args.verify > 0.0 {
            identities(ctx, &spec)?
        } else {
            Vec::new()
        },
    };
    let report = mirror::mirror(&store, &remote, &opts).map_err(|e| {
        let resumable = matches!(e, snap::Error::Remote { .. });
        let e = anyhow::Error::from(e);
        if resumable {
            e.context("mirror stopped (it resumes where it stopped when run again)")
        } else {
            e.context("mirror stopped")
        }
    })?;
    if ctx.json {
        ctx.print_json(&report)?;
    } else {
        for p in &report.problems {
            println!("PROBLEM {p}");
        }
        for h in &report.held_back {
            println!("HELD BACK {h}");
        }
        for w in &report.warnings {
            eprintln!("snap: warning: {w}");
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
    super::fleet::host_given(args.host.is_some(), &args.remote)?;
    let (remote, opened) = opened(ctx, &args.remote)?;
    let report =
        mirror::clone(&remote, &opened, &ctx.store_path, &ctx.reporter()).with_context(|| {
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
            "cloned {} into {}: {}, {}, {} in {:.2} s",
            args.remote,
            report.store,
            super::count(report.packs, "pack"),
            super::count(report.snapshots, "snapshot"),
            bytes(report.bytes),
            report.duration_ms as f64 / 1000.0
        );
    }
    Ok(0)
}

pub fn repair_packs(ctx: &Ctx, args: RepairArgs) -> Result<u8> {
    let spec = remote_spec(ctx, args.from_remote)?;
    let store = ctx.open()?;
    let url = ctx.remote_url(&spec)?;
    let source = mirror::fallback::Fallback::of_store(&store, &url, identities(ctx, &spec)?);
    let report = snap::store::packs::repair_packs(&store, &source, ctx.lock_wait)?;
    if ctx.json {
        ctx.print_json(&report)?;
    } else {
        for p in &report.replaced {
            println!("replaced pack {p} with the copy from {spec}");
        }
        for p in &report.failed {
            println!("PROBLEM {p}");
        }
        println!(
            "{} packs checked, {} replaced, {} could not be",
            report.checked,
            report.replaced.len(),
            report.failed.len()
        );
    }
    Ok(if report.failed.is_empty() { 0 } else { 3 })
}

/// A temporary local view of a remote, for commands given `--remote`.
pub struct RemoteView {
    pub store: snap::Store,
    _dir: tempfile::TempDir,
}

pub fn remote_view(ctx: &Ctx, spec: &str, local: Option<&snap::Store>) -> Result<RemoteView> {
    let dir = tempfile::tempdir()?;
    let (remote, opened) = opened(ctx, spec)?;
    let (store, _) = mirror::view(remote, &opened, &dir.path().join("view"), local)?;
    Ok(RemoteView { store, _dir: dir })
}

/// The local store, or with `remote` a view of that remote (kept alive by the
/// returned guard). A local store, when there is one, lends its cache and
/// packs; without `remote`, a local store whose config names one remote
/// reads a pack that is missing or damaged here from that remote.
pub fn store_or_view(ctx: &Ctx, remote: Option<&str>) -> Result<(snap::Store, Option<RemoteView>)> {
    match remote {
        Some(r) => {
            let view = remote_view(ctx, r, ctx.open().ok().as_ref())?;
            Ok((view.store.clone(), Some(view)))
        }
        None => {
            let store = ctx.open()?;
            let one = ctx.config.as_ref().filter(|c| c.remotes.len() == 1);
            match one {
                Some(c) => {
                    let spec = c.remotes.keys().next().expect("one").clone();
                    let ids = identities(ctx, &spec).unwrap_or_default();
                    let url = ctx.remote_url(&spec)?;
                    let source = mirror::fallback::Fallback::of_store(&store, &url, ids);
                    Ok((store.with_fallback(Arc::new(source)), None))
                }
                None => Ok((store, None)),
            }
        }
    }
}
