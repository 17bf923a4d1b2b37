//! How scheduled jobs run: the generated systemd units and cron lines call
//! this snap by its absolute path (Ubuntu's package manager is also called
//! `snap`), as the configured user, with the credential settings the
//! config names (a unit starts with an almost empty environment: the
//! server story's jobs could not reach the bucket), at low priority and
//! hardened.

mod common;
use common::*;
use std::fs;
use std::process::Command;

#[test]
fn units_and_cron_lines_carry_the_user_and_the_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("credentials.env");
    fs::write(
        &env_file,
        "GOOGLE_APPLICATION_CREDENTIALS=/etc/snap/sa.json\n",
    )
    .unwrap();
    let config = dir.path().join("snap.toml");
    fs::write(
        &config,
        format!(
            "store = {:?}\n[sources.app]\npaths = [{:?}]\n\
             [service]\nuser = \"root\"\nenvironment_file = {:?}\n\
             environment = {{ AWS_REGION = \"eu-west-1\" }}\n\
             [jobs.nightly]\naction = \"take\"\nschedule = \"daily 03:00\"\n",
            dir.path().join("store"),
            dir.path().join("data"),
            env_file
        ),
    )
    .unwrap();
    let units = dir.path().join("units");
    let cfg = config.to_str().unwrap();
    let out = snap(
        &dir.path().join("store"),
        &[
            "--config",
            cfg,
            "schedule",
            "install",
            "--systemd",
            "--dir",
            units.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let service = fs::read_to_string(units.join("snap-nightly.service")).unwrap();
    for line in [
        &format!("ExecStart={} --config", snap_bin()),
        "User=root",
        &format!("EnvironmentFile={}", env_file.display()),
        "Environment=\"AWS_REGION=eu-west-1\"",
        "NoNewPrivileges=yes",
        "ProtectSystem=full",
    ] {
        assert!(service.contains(line), "{line} missing from:\n{service}");
    }
    if let Ok(v) = Command::new("systemd-analyze")
        .arg("verify")
        .arg(units.join("snap-nightly.service"))
        .arg(units.join("snap-nightly.timer"))
        .output()
    {
        assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    }
    let cron = snap(
        &dir.path().join("store"),
        &[
            "--config",
            cfg,
            "schedule",
            "install",
            "--cron",
            "--dry-run",
        ],
    );
    let cron = String::from_utf8_lossy(&cron.stdout);
    assert!(
        cron.contains(&format!(
            "set -a; . '{}'; set +a; AWS_REGION='eu-west-1' {}",
            env_file.display(),
            snap_bin()
        )),
        "{cron}"
    );
}
