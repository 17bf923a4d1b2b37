//! What two new users tripped over, each a small thing that made the tool
//! harder to trust: the store in use unsaid, `key generate` refusing a new
//! machine, a `.db` that is not SQLite stored without a word, a failed
//! check printed twice, errors a monitor cannot parse, a missing config
//! exiting 1, times in three formats, "1 snapshots".

mod common;
use common::*;
use std::fs;
use std::process::Command;

#[test]
fn take_says_which_store_and_a_new_machine_can_start_with_key_generate() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("fresh");
    let key = dir.path().join("operator.key");
    let out = snap(&store, &["key", "generate", "--out", key.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("created store"));
    let data = dir.path().join("data");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("notes.db"), "not a database at all").unwrap();
    let out = snap(&store, &["take", data.to_str().unwrap()]);
    let (said, err) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        said.contains(&format!("saved in {}", store.display())),
        "{said}"
    );
    assert!(said.contains("named by --store"), "{said}");
    assert!(said.contains("1 file, 1 dir, 0 databases"), "{said}");
    assert!(
        err.contains("notes.db: named like a database but not SQLite"),
        "{err}"
    );
    let j = snap_json(&store, &["take", data.to_str().unwrap()]);
    assert_eq!(j["store"], store.to_str().unwrap());
    let list = snap_ok(&store, &["list"]);
    assert!(list.contains("2 snapshots"), "{list}");
    for line in list.lines().skip(1).filter(|l| l.contains('T')) {
        let time = line.split_whitespace().nth(1).unwrap();
        assert!(!time.contains('.'), "a time to the second: {line}");
    }
}

#[test]
fn a_failed_check_is_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let (db, store) = (dir.path().join("broken.db"), dir.path().join("store"));
    broken_db(&db);
    let out = snap(&store, &["take", db.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(5));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.lines().count() <= 3, "one line each: {err}");
}

#[test]
fn errors_are_said_once_and_json_errors_are_json() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let out = snap(&store, &["--config", "/nonexistent/snap.toml", "list"]);
    assert_eq!(out.status.code(), Some(2), "a missing config is bad input");
    let file = dir.path().join("file");
    fs::write(&file, "x").unwrap();
    let inside = file.join("below");
    let out = snap(&store, &["take", inside.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("Not a directory").count(), 1, "{err}");
    let out = Command::new(snap_bin())
        .args([
            "--store",
            store.to_str().unwrap(),
            "--json",
            "restore",
            "nosuch",
            "--to",
            "/tmp/x",
        ])
        .output()
        .unwrap();
    let e: serde_json::Value = serde_json::from_slice(&out.stderr).expect("a JSON error");
    assert_eq!(e["exit_code"], out.status.code().unwrap());
    assert!(e["error"].as_str().unwrap().contains("nosuch"));
}

#[test]
fn a_job_run_says_its_action_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("a"), "a").unwrap();
    let config = dir.path().join("snap.toml");
    fs::write(
        &config,
        format!(
            "store = {:?}\n[sources.app]\npaths = [{:?}]\n[jobs.backup]\naction = \"take\"\n",
            dir.path().join("store"),
            data
        ),
    )
    .unwrap();
    let out = snap(
        &dir.path().join("store"),
        &["--config", config.to_str().unwrap(), "run", "backup"],
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.starts_with("job backup: take ok in "), "{said}");
}
