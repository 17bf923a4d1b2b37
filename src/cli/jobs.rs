use super::Ctx;
use anyhow::{bail, Context, Result};
use snap::jobs::JobRunner;
use snap::schedule::{Clock, Schedule, SystemClock, VirtualClock};
use snap::Store;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

#[derive(clap::Subcommand)]
pub enum ConfigCmd {
    /// Parse and validate the configuration; errors name their line
    Check,
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// The job's name in the config
    job: String,
}

#[derive(clap::Args)]
pub struct DaemonArgs {
    /// Run on a virtual clock starting at this time (RFC 3339): waiting takes
    /// no real time. For trying out a schedule, and for tests.
    #[arg(long, hide = true)]
    virtual_clock: Option<String>,
    /// Stop when the clock reaches this time (RFC 3339)
    #[arg(long, hide = true)]
    stop_at: Option<String>,
}

#[derive(clap::Subcommand)]
pub enum ScheduleCmd {
    /// Write a systemd service and timer per scheduled job, or a crontab block
    Install {
        #[arg(long, conflicts_with = "cron", required_unless_present = "cron")]
        systemd: bool,
        #[arg(long)]
        cron: bool,
        /// Print what would be written; change nothing
        #[arg(long)]
        dry_run: bool,
        /// Unit directory [default: /etc/systemd/system as root, else ~/.config/systemd/user]
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

fn runner<'a>(ctx: &'a Ctx, clock: &'a dyn Clock) -> Result<JobRunner<'a>> {
    Ok(JobRunner {
        config: ctx.config()?,
        store: Store::open_or_init(&ctx.store_path)?,
        clock,
        lock_wait: ctx.lock_wait,
    })
}

pub fn config(ctx: &Ctx, what: ConfigCmd) -> Result<u8> {
    match what {
        ConfigCmd::Check => {
            let c = ctx.config()?;
            println!(
                "{}: ok ({} sources, {} remotes, {} jobs)",
                c.path.display(),
                c.sources.len(),
                c.remotes.len(),
                c.jobs.len()
            );
            Ok(0)
        }
    }
}

pub fn run(ctx: &Ctx, args: RunArgs) -> Result<u8> {
    let clock = SystemClock;
    let record = runner(ctx, &clock)?.run(&args.job)?;
    if ctx.json {
        ctx.print_json(&record)?;
    } else {
        println!(
            "job {}: {} {} in {:.2} s",
            record.job, record.action, record.outcome, record.duration_seconds
        );
        if let Some(e) = &record.error {
            println!("  error: {e}");
        }
        for w in &record.warnings {
            println!("  warning: {w}");
        }
    }
    Ok(if record.ok() { 0 } else { 1 })
}

pub fn daemon(ctx: &Ctx, args: DaemonArgs) -> Result<u8> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let parse = |s: &str| -> Result<chrono::DateTime<chrono::Local>> {
        Ok(chrono::DateTime::parse_from_rfc3339(s)
            .map_err(|e| super::invalid(format!("{s}: expected RFC 3339 ({e})")))?
            .with_timezone(&chrono::Local))
    };
    let clock: Box<dyn Clock> = match &args.virtual_clock {
        Some(t) => Box::new(VirtualClock::starting_at(parse(t)?)),
        None => Box::new(SystemClock),
    };
    let stop_at = args.stop_at.as_deref().map(parse).transpose()?;
    let runner = runner(ctx, clock.as_ref())?;
    let watches = super::watches::start(ctx, runner.config, &stop)?;
    let scheduled = runner.config.jobs.values().any(|j| j.schedule.is_some());
    let runs = match (scheduled, watches.is_empty()) {
        (false, false) => {
            // Only watches: wait for the signal.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Ok(0)
        }
        _ => runner.daemon(&stop, stop_at),
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    super::watches::join(watches);
    eprintln!(
        "snap daemon: stopped after {}",
        super::count(runs?, "job run")
    );
    Ok(0)
}

pub fn status(ctx: &Ctx) -> Result<u8> {
    let clock = SystemClock;
    let runner = runner(ctx, &clock)?;
    let (rows, mut bad) = job_rows(&runner)?;
    // What could not be finished is said here too: an in-place restore
    // that was interrupted needs a person.
    let unfinished: Vec<String> = snap::restore::journal::unfinished(&runner.store)?
        .into_iter()
        .filter(|u| !u.is_running())
        .map(|u| super::out::unfinished(&u))
        .collect();
    bad |= !unfinished.is_empty();
    let watches = super::watches::health(&runner.store, runner.config)?;
    bad |= watches
        .iter()
        .any(|(_, h, unshipped)| h.behind || *unshipped);
    if ctx.json {
        let watches: Vec<_> = watches
            .iter()
            .map(|(n, h, u)| serde_json::json!({"watch": n, "health": h, "not_shipped": u}))
            .collect();
        ctx.print_json(
            &serde_json::json!({"jobs": rows, "unfinished": unfinished, "watches": watches}),
        )?;
    } else {
        super::watches::print_health(&watches);
        print_rows(&rows);
        for u in &unfinished {
            println!("UNFINISHED {u}");
        }
    }
    Ok(if bad { 7 } else { 0 })
}

/// Each job's last run, next run and health (overdue, failing), and
/// whether any is unhealthy.
fn job_rows(runner: &snap::jobs::JobRunner) -> Result<(Vec<serde_json::Value>, bool)> {
    let state = runner.load_state()?;
    let now = chrono::Local::now();
    let mut rows = Vec::new();
    let mut bad = false;
    for (name, job) in &runner.config.jobs {
        let st = state.jobs.get(name).cloned().unwrap_or_default();
        let schedule = job
            .schedule
            .as_ref()
            .and_then(|s| Schedule::parse(s.get_ref()).ok());
        // Overdue: a scheduled time more than an hour ago has passed since the last start.
        let baseline = st.last.as_ref().map(|l| l.start).or(st.since);
        let overdue = match (&schedule, baseline) {
            (Some(s), Some(b)) => s
                .last_at_or_before(now - chrono::Duration::hours(1))
                .is_some_and(|t| t > b),
            _ => false,
        };
        let failing = st.last.as_ref().is_some_and(|l| !l.ok());
        bad |= overdue || failing;
        rows.push(serde_json::json!({
            "job": name, "action": job.action, "schedule": job.schedule.as_ref().map(|s| s.get_ref()),
            "last_start": st.last.as_ref().map(|l| l.start), "last_outcome": st.last.as_ref().map(|l| &l.outcome),
            "last_success": st.last_success, "next": schedule.map(|s| s.next_after(now)),
            "overdue": overdue, "failing": failing,
            "warnings": st.last.as_ref().map(|l| l.warnings.clone()).unwrap_or_default(),
        }));
    }
    Ok((rows, bad))
}

/// The jobs' rows, for people.
fn print_rows(rows: &[serde_json::Value]) {
    for r in rows {
        println!(
            "{:<16} {:<7} last {} ({}), last success {}, next {}{}{}",
            r["job"].as_str().unwrap_or(""),
            r["action"].as_str().unwrap_or(""),
            when(&r["last_start"], "never"),
            r["last_outcome"].as_str().unwrap_or("-"),
            when(&r["last_success"], "never"),
            when(&r["next"], "-"),
            if r["overdue"] == true {
                "  OVERDUE"
            } else {
                ""
            },
            if r["failing"] == true {
                "  FAILING"
            } else {
                ""
            },
        );
        for w in r["warnings"].as_array().into_iter().flatten() {
            println!("    warning: {}", w.as_str().unwrap_or(""));
        }
    }
}

pub fn schedule(ctx: &Ctx, what: ScheduleCmd) -> Result<u8> {
    let ScheduleCmd::Install {
        systemd,
        cron: _,
        dry_run,
        dir,
    } = what;
    let config = ctx.config()?;
    let exe = std::env::current_exe()?;
    let conf = std::path::absolute(&config.path)?;
    let mut files = Vec::new();
    let mut crontab = String::from("# BEGIN snap (written by `snap schedule install --cron`)\n");
    for (name, job) in &config.jobs {
        let Some(spec) = &job.schedule else { continue };
        let s = Schedule::parse(spec.get_ref()).map_err(anyhow::Error::msg)?;
        // The absolute path of this snap: never Ubuntu's package manager,
        // which is also called `snap`.
        let cmd = format!("{} --config {} run {name}", exe.display(), conf.display());
        if systemd {
            let service = unit(name, &cmd, &config.service);
            let timer = format!(
                "[Unit]\nDescription=snap job {name} ({})\n\n[Timer]\nOnCalendar={}\nPersistent=true\nUnit=snap-{name}.service\n\n[Install]\nWantedBy=timers.target\n",
                spec.get_ref(),
                s.on_calendar()?
            );
            files.push((format!("snap-{name}.service"), service));
            files.push((format!("snap-{name}.timer"), timer));
        } else {
            crontab.push_str(&format!(
                "{} {}\n",
                s.cron,
                cron_command(&cmd, &config.service)
            ));
        }
    }
    crontab.push_str("# END snap\n");
    if !systemd {
        return install_crontab(&crontab, dry_run);
    }
    install_units(&files, dir, dry_run)
}

/// Replaces snap's block in the user's crontab with `block` (printed only,
/// in a dry run).
fn install_crontab(crontab: &str, dry_run: bool) -> Result<u8> {
    if dry_run {
        print!("{crontab}");
        return Ok(0);
    }
    let current = std::process::Command::new("crontab")
        .arg("-l")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let kept: String = match (current.find("# BEGIN snap"), current.find("# END snap\n")) {
        (Some(a), Some(b)) => {
            format!("{}{}", &current[..a], &current[b + "# END snap\n".len()..])
        }
        _ => current,
    };
    let mut child = std::process::Command::new("crontab")
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .context("run crontab")?;
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{kept}{crontab}").as_bytes())?;
    if !child.wait()?.success() {
        bail!("crontab refused the new table");
    }
    println!("crontab updated");
    Ok(0)
}

/// Writes the systemd units `files` (printed only, in a dry run) and says
/// how to enable their timers.
fn install_units(files: &[(String, String)], dir: Option<PathBuf>, dry_run: bool) -> Result<u8> {
    // System units when run as root (by uid, not $USER), user units otherwise.
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let dir = match dir {
        Some(d) => d,
        None if root => PathBuf::from("/etc/systemd/system"),
        None => dirs::config_dir()
            .context("no config directory")?
            .join("systemd/user"),
    };
    for (name, text) in files {
        if dry_run {
            println!("# {}\n{text}", dir.join(name).display());
        } else {
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join(name), text)?;
            println!("wrote {}", dir.join(name).display());
        }
    }
    let timers: Vec<&str> = files
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| n.ends_with(".timer"))
        .collect();
    let systemctl = if root {
        "systemctl"
    } else {
        "systemctl --user"
    };
    println!(
        "{}enable with: {systemctl} daemon-reload && {systemctl} enable --now {}",
        if dry_run { "# " } else { "" },
        timers.join(" ")
    );
    Ok(0)
}

/// A job's systemd service: as the configured user, with the configured
/// credential settings, at a low priority, with the hardening a backup job
/// can take (it reads data and writes only its store, log and textfile).
fn unit(name: &str, cmd: &str, service: &snap::config::Service) -> String {
    let mut s = format!(
        "[Unit]\nDescription=snap job {name}\nAfter=network-online.target\nWants=network-online.target\n\n[Service]\nType=oneshot\nExecStart={cmd}\n"
    );
    if let Some(user) = &service.user {
        s.push_str(&format!("User={user}\n"));
    }
    if let Some(file) = &service.environment_file {
        s.push_str(&format!("EnvironmentFile={}\n", file.display()));
    }
    for (k, v) in &service.environment {
        s.push_str(&format!("Environment=\"{k}={}\"\n", v.replace('"', "\\\"")));
    }
    s.push_str(
        "Nice=10\nIOSchedulingClass=best-effort\nIOSchedulingPriority=7\n\
         NoNewPrivileges=yes\nPrivateTmp=yes\nProtectSystem=full\nProtectKernelTunables=yes\n\
         ProtectKernelModules=yes\nProtectControlGroups=yes\nRestrictSUIDSGID=yes\n\
         LockPersonality=yes\nRestrictRealtime=yes\n",
    );
    s
}

/// A cron line's command: the environment file read and the variables set
/// first (cron starts jobs with almost no environment).
fn cron_command(cmd: &str, service: &snap::config::Service) -> String {
    let quote = |v: &str| format!("'{}'", v.replace('\'', "'\\''"));
    let mut prefix = String::new();
    if let Some(file) = &service.environment_file {
        prefix.push_str(&format!(
            "set -a; . {}; set +a; ",
            quote(&file.to_string_lossy())
        ));
    }
    for (k, v) in &service.environment {
        prefix.push_str(&format!("{k}={} ", quote(v)));
    }
    format!("{prefix}{cmd}")
}

/// A time of the status table: to the second, in one format.
fn when(v: &serde_json::Value, none: &str) -> String {
    v.as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map_or(none.to_string(), |t| {
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        })
}
