//! Command line: parse and validate, call the library, print (human or --json).

mod alloc;
mod chart;
mod diff;
mod filter;
mod fleet;
mod gc;
mod help;
mod jobs;
mod key;
mod list;
mod log;
mod mirror;
mod mount;
mod out;
mod process;
mod progress;
mod recover;
mod restore;
mod stats;
mod tag;
mod take;
mod verify;
mod watch;
mod watch_metrics;
mod watches;

pub use filter::{Filter, HostTag};
pub use out::{bytes, count, print_error, time, warn_unfinished};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use snap::Store;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "snap",
    // "(snapdb)" tells this snap from Ubuntu's package manager, also `snap`.
    version = concat!(env!("CARGO_PKG_VERSION"), " (snapdb)"),
    about = "Snapshots of SQLite databases and data directories, deduplicated and verified",
    after_long_help = help::EXIT_CODES_AND_EXAMPLES
)]
pub struct Cli {
    /// Store directory [default: $SNAP_STORE, else the config's `store`, else ~/.local/share/snap]
    #[arg(long, global = true)]
    store: Option<PathBuf>,
    /// Configuration file [default: $SNAP_CONFIG, ./snap.toml, ~/.config/snap/snap.toml, /etc/snap/snap.toml]
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Machine-readable output on stdout
    #[arg(long, global = true)]
    json: bool,
    /// Seconds to wait for another snap process to release the store
    #[arg(long, global = true, default_value_t = 3600)]
    lock_wait: u64,
    /// The age identity (private key) file that opens an encrypted remote
    /// [default: the remote's `identity_file`, $SNAP_IDENTITY_FILE, $SNAP_IDENTITY]
    #[arg(long, global = true, value_name = "FILE")]
    identity: Option<PathBuf>,
    /// The remote is a fleet bucket: this store mirrors into its own
    /// prefix there (hosts/STORE_ID/), and --host names the host to read
    #[arg(long, global = true)]
    fleet: bool,
    /// No progress bars, no waiting messages
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Name each phase of the work on stderr
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new, empty store
    Init {
        /// Seal packs at this many bytes (default 32 MiB)
        #[arg(long)]
        pack_size: Option<u64>,
    },
    /// Snapshot files, directories and live SQLite databases
    Take(take::Args),
    /// List snapshots, oldest first
    List(list::ListArgs),
    /// List the files in a snapshot
    Ls(list::LsArgs),
    /// Restore a snapshot into a directory, or in place
    Restore(restore::Args),
    /// What changed between two snapshots, or a snapshot and the live files: files and database rows
    Diff(diff::DiffArgs),
    /// Put rows a snapshot has and a live database lost back into it (one transaction, undoable)
    Recover(recover::RecoverArgs),
    /// Follow live SQLite databases and record a point within a second of each commit
    Watch(watch::Args),
    /// When rows of a table changed, point by point: "35 rows removed between 14:02:07.1 and 14:02:08.0"
    Log(log::Args),
    /// Mount snapshots read-only (FUSE): browse files, query databases, no restore
    Mount(mount::Args),
    /// Write one file of a snapshot to stdout (a database as its image, or --sql)
    Dump(diff::DumpArgs),
    /// The snapshots and paths whose name matches a pattern
    Find(diff::FindArgs),
    /// Add or remove tags of snapshots (a new record each; the old one goes once it is durable)
    Tag(tag::Args),
    /// Forget snapshots by id or filter (then `snap gc` frees their space)
    Forget(recover::ForgetArgs),
    /// Forget snapshots by a retention policy and free the space they used
    Gc(gc::Args),
    /// Sizes: logical, stored, deduplication, per snapshot, day and database; what gc would free; a growth chart
    Stats(stats::Args),
    /// Check that snapshots are complete and their data intact
    Verify(verify::Args),
    /// Upload the store to a remote: missing packs first, snapshot records last
    Mirror(mirror::Args),
    /// Rebuild a local store (index included) from a remote alone
    Clone(mirror::CloneArgs),
    /// Check the configuration file
    Config {
        #[command(subcommand)]
        what: jobs::ConfigCmd,
    },
    /// Run one configured job now
    Run(jobs::RunArgs),
    /// Run the configured jobs on their schedules until stopped (SIGTERM)
    Daemon(jobs::DaemonArgs),
    /// Last run of each job; whether anything is overdue or failing
    Status,
    /// Many hosts mirroring into one bucket: the operator's view
    Fleet {
        #[command(subcommand)]
        what: fleet::FleetCmd,
    },
    /// Write systemd units or a crontab block that run the configured jobs
    Schedule {
        #[command(subcommand)]
        what: jobs::ScheduleCmd,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions { shell: clap_complete::Shell },
    /// Write man pages for snap and each command into DIR
    Man {
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Keys that encrypt what goes to remotes
    Key {
        #[command(subcommand)]
        what: key::Key,
    },
    /// Repair the store
    Repair {
        #[command(subcommand)]
        what: Repair,
    },
}

#[derive(Subcommand)]
enum Repair {
    /// Rebuild the index from the packs and snapshot records alone
    Index,
    /// Replace every pack that is missing or damaged here with the remote's copy
    Packs(mirror::RepairArgs),
}

pub struct Ctx {
    pub json: bool,
    pub quiet: bool,
    pub verbose: bool,
    pub lock_wait: Duration,
    pub store_path: PathBuf,
    /// How the store was chosen (`--store`, `$SNAP_STORE`, the config, the default).
    pub store_origin: String,
    pub config: Option<snap::config::Config>,
    pub identity: Option<PathBuf>,
    /// `--fleet`: a remote given by URL is a fleet bucket.
    pub fleet: bool,
}

impl Ctx {
    /// The loaded configuration, or an error saying where it was looked for.
    pub fn config(&self) -> Result<&snap::config::Config> {
        self.config.as_ref().ok_or_else(|| {
            invalid("no configuration: pass --config, set SNAP_CONFIG, or create ./snap.toml, ~/.config/snap/snap.toml or /etc/snap/snap.toml")
        })
    }

    /// A remote URL from a configured name or a URL (in a fleet bucket,
    /// the prefix of the host `--host` names, or of this store).
    pub fn remote_url(&self, spec: &str) -> Result<String> {
        fleet::remote_url(self, spec)
    }

    /// The store, reporting progress to the terminal; an in-place restore
    /// that did not finish is named on stderr.
    pub fn open(&self) -> Result<Store> {
        let store = Store::open(&self.store_path)?.with_progress(progress::reporter(self));
        warn_unfinished(&store);
        Ok(store)
    }

    /// The store, created on first use (saying so, and how it was chosen):
    /// what `take` and `key generate` write into.
    pub fn open_or_init(&self) -> Result<Store> {
        let new = !Store::exists(&self.store_path);
        let store = Store::open_or_init(&self.store_path)?.with_progress(self.reporter());
        if new && !self.quiet {
            eprintln!(
                "snap: created store {} ({})",
                store.root().display(),
                self.store_origin
            );
        }
        warn_unfinished(&store);
        Ok(store)
    }

    pub fn reporter(&self) -> snap::Reporter {
        progress::reporter(self)
    }

    pub fn print_json<T: serde::Serialize>(&self, value: &T) -> Result<()> {
        println!("{}", serde_json::to_string_pretty(value)?);
        Ok(())
    }
}

fn default_store() -> Result<PathBuf> {
    Ok(dirs::data_dir()
        .context("no platform data directory; pass --store DIR or set SNAP_STORE")?
        .join("snap"))
}

/// The store a command uses, and how it was named. Every way of naming a
/// store names the same thing: `take` creates it on first use and says
/// which it used; other commands need it to exist.
fn which_store(
    named: Option<PathBuf>,
    config_path: Option<&std::path::Path>,
    config: Option<&snap::config::Config>,
) -> Result<(PathBuf, String)> {
    let env_store = std::env::var_os("SNAP_STORE")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from);
    let configured = config.and_then(|c| c.store.clone());
    Ok(match (named, env_store, configured) {
        (Some(s), _, _) => (s, "named by --store".to_string()),
        (None, Some(s), _) => (s, "named by $SNAP_STORE".into()),
        (None, None, Some(s)) => {
            let from = config_path.unwrap_or(std::path::Path::new("?"));
            (s, format!("named by the config {}", from.display()))
        }
        (None, None, None) => (
            default_store()?,
            "the default store: no --store, $SNAP_STORE or configured store".into(),
        ),
    })
}

/// Runs the command line; returns the exit code for a run that completed.
pub fn run() -> Result<u8> {
    let cli = Cli::parse();
    process::prepare(&cli.command)?;
    let config_path = snap::config::Config::locate(cli.config.as_deref());
    let config = match &config_path {
        Some(path) => Some(snap::config::Config::load(path)?),
        None => None,
    };
    let (store_path, store_origin) =
        which_store(cli.store, config_path.as_deref(), config.as_ref())?;
    let ctx = Ctx {
        json: cli.json,
        quiet: cli.quiet,
        verbose: cli.verbose,
        lock_wait: Duration::from_secs(cli.lock_wait),
        store_path,
        store_origin,
        config,
        identity: cli.identity,
        fleet: cli.fleet,
    };
    fleet::note_host(&ctx);
    match cli.command {
        Command::Init { pack_size } => init(&ctx, pack_size),
        Command::Take(args) => take::run(&ctx, args),
        Command::List(args) => list::list(&ctx, args),
        Command::Ls(args) => list::ls(&ctx, args),
        Command::Restore(args) => restore::run(&ctx, args),
        Command::Verify(args) => verify::run(&ctx, args),
        Command::Stats(args) => stats::run(&ctx, args),
        Command::Gc(args) => gc::run(&ctx, args),
        Command::Diff(args) => diff::diff(&ctx, args),
        Command::Recover(args) => recover::recover(&ctx, args),
        Command::Mount(args) => mount::run(&ctx, args),
        Command::Watch(args) => watch::run(&ctx, args),
        Command::Log(args) => log::run(&ctx, args),
        Command::Dump(args) => diff::dump(&ctx, args),
        Command::Find(args) => diff::find(&ctx, args),
        Command::Forget(args) => recover::forget(&ctx, args),
        Command::Tag(args) => tag::run(&ctx, args),
        Command::Mirror(args) => mirror::run(&ctx, args),
        Command::Clone(args) => mirror::clone(&ctx, args),
        Command::Config { what } => jobs::config(&ctx, what),
        Command::Run(args) => jobs::run(&ctx, args),
        Command::Daemon(args) => jobs::daemon(&ctx, args),
        Command::Status => jobs::status(&ctx),
        Command::Fleet { what } => fleet::run(&ctx, what),
        Command::Schedule { what } => jobs::schedule(&ctx, what),
        Command::Repair {
            what: Repair::Index,
        } => verify::repair_index(&ctx),
        Command::Repair {
            what: Repair::Packs(args),
        } => mirror::repair_packs(&ctx, args),
        Command::Key { what } => key::run(&ctx, what),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "snap", &mut std::io::stdout());
            Ok(0)
        }
        Command::Man { dir } => man(&dir),
    }
}

/// `snap init`: a new, empty store.
fn init(ctx: &Ctx, pack_size: Option<u64>) -> Result<u8> {
    let mut config = snap::StoreConfig::default();
    if let Some(n) = pack_size {
        if !(1 << 20..=1 << 30).contains(&n) {
            return Err(invalid("--pack-size must be between 1 MiB and 1 GiB"));
        }
        config.pack_size = n;
    }
    let store = Store::init(&ctx.store_path, config)
        .with_context(|| format!("cannot create a store at {}", ctx.store_path.display()))?;
    if ctx.json {
        ctx.print_json(&serde_json::json!({"store": store.root(), "config": store.config()}))?;
    } else {
        println!("created store {}", store.root().display());
    }
    Ok(0)
}

/// `snap man DIR`: a man page per command.
fn man(dir: &std::path::Path) -> Result<u8> {
    std::fs::create_dir_all(dir)?;
    let cmd = <Cli as clap::CommandFactory>::command();
    clap_mangen::generate_to(cmd, dir)?;
    println!("man pages written to {}", dir.display());
    Ok(0)
}

/// Bad input from the command line: exit 2, nothing was changed.
pub fn invalid(msg: impl std::fmt::Display) -> anyhow::Error {
    snap::Error::Invalid(msg.to_string()).into()
}
