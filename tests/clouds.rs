//! S3 and Azure Blob remotes, each against a real emulator started here on
//! 127.0.0.1 (`moto` with IAM enforced; `azurite` with a create-only SAS):
//! a create-only credential mirrors a sealed store, the trusted one lists,
//! restores, prunes and verifies, and the server's credential gets a clear
//! permission error for what it may not do.

mod common;
use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

/// An emulator binary from its environment variable; skipped locally when
/// absent, a failure under CI (scripts/test.sh installs them).
fn tool(var: &str) -> Option<PathBuf> {
    let bin = std::env::var_os(var)
        .map(PathBuf::from)
        .filter(|p| p.exists());
    if bin.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{var} is not set: run ./scripts/test.sh"
        );
        eprintln!("skipped: {var} is not set (run ./scripts/test.sh)");
    }
    bin
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(port: u16) {
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed().as_secs() < 60, "emulator did not start");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The two credentials' environments, from tests/proxy/cloud_setup.py.
fn setup(kind: &str, endpoint: &str) -> serde_json::Value {
    let python = tool("SNAP_TEST_PYTHON").unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/proxy/cloud_setup.py");
    let out = Command::new(python)
        .arg(script)
        .args([kind, endpoint])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn envs(creds: &serde_json::Value, base: &[(&str, String)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = base
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    for (k, val) in creds.as_object().unwrap() {
        v.push((k.clone(), val.as_str().unwrap().to_string()));
    }
    v
}

fn run(env: &[(String, String)], store: &Path, args: &[&str]) -> Output {
    Command::new(snap_bin())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .arg("--store")
        .arg(store)
        .args(args)
        .output()
        .unwrap()
}

fn ok_run(env: &[(String, String)], store: &Path, args: &[&str]) -> String {
    let out = run(env, store, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The story every remote kind must pass. With `enforced`, the server's
/// credential is refused anything but creating objects.
fn story(
    dir: &Path,
    url: &str,
    server: &[(String, String)],
    trusted: &[(String, String)],
    enforced: bool,
) {
    let store = dir.join("store");
    snap_ok(&store, &["init"]);
    let identity = dir.join("identity");
    snap_ok(
        &store,
        &["key", "generate", "--out", identity.to_str().unwrap()],
    );
    let mut trusted = trusted.to_vec();
    trusted.push((
        "SNAP_IDENTITY_FILE".into(),
        identity.to_str().unwrap().into(),
    ));
    let data = dir.join("data");
    make_tree(&data, 61, 1);
    for day in 0..3 {
        fs::write(data.join("day.txt"), format!("day {day}")).unwrap();
        snap_ok(&store, &["take", data.to_str().unwrap()]);
        ok_run(server, &store, &["mirror", "--remote", url]);
    }
    // The server's credential may create, nothing else: exit 8, named.
    if enforced {
        let denied = run(server, &store, &["list", "--remote", url]);
        let e = String::from_utf8_lossy(&denied.stderr);
        assert_eq!(denied.status.code(), Some(8), "{e}");
        assert!(e.contains("permission denied for"), "{e}");
    }
    let operator = dir.join("operator");
    let count = |env: &[(String, String)]| {
        let out = ok_run(env, &operator, &["--json", "list", "--remote", url]);
        serde_json::from_str::<serde_json::Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(count(&trusted), 3);
    let to = dir.join("out");
    ok_run(
        &trusted,
        &operator,
        &[
            "restore",
            "latest",
            "--remote",
            url,
            "--to",
            to.to_str().unwrap(),
        ],
    );
    assert_eq!(fingerprint(&to.join("data")), fingerprint(&data));
    ok_run(
        &trusted,
        &operator,
        &["gc", "--remote", url, "--keep-last", "1"],
    );
    let again: serde_json::Value = serde_json::from_str(&ok_run(
        server,
        &store,
        &["--json", "mirror", "--remote", url],
    ))
    .unwrap();
    assert_eq!(again["records_uploaded"], 0, "{again}");
    assert_eq!(count(&trusted), 1);
    ok_run(
        &trusted,
        &operator,
        &["verify", "--remote", url, "--read-data"],
    );
    let clone = dir.join("clone");
    ok_run(&trusted, &clone, &["clone", "--remote", url]);
    snap_ok(&clone, &["verify", "--read-data"]);
}

/// Two hosts mirror into one fleet bucket with the server's credential;
/// the operator sees both (`fleet status`), lists, prunes and restores one.
fn fleet(dir: &Path, url: &str, server: &[(String, String)], trusted: &[(String, String)]) {
    let dir = dir.join("fleet");
    let (operator, identity) = sealed_store(&dir.join("operator"));
    let mut trusted = trusted.to_vec();
    trusted.push(("SNAP_IDENTITY_FILE".into(), identity));
    let mut ids = Vec::new();
    for h in 0..2 {
        let store = dir.join(format!("host{h}"));
        snap_ok(&store, &["init"]);
        fs::create_dir_all(store.join("mirror")).unwrap();
        fs::copy(
            operator.join("mirror/recipients"),
            store.join("mirror/recipients"),
        )
        .unwrap();
        let data = dir.join(format!("data{h}"));
        make_tree(&data, 80 + h, 1);
        for day in 0..2 {
            fs::write(data.join("day.txt"), format!("day {day}")).unwrap();
            snap_ok(&store, &["take", data.to_str().unwrap()]);
            ok_run(server, &store, &["mirror", "--remote", url, "--fleet"]);
        }
        let config: serde_json::Value =
            serde_json::from_slice(&fs::read(store.join("config")).unwrap()).unwrap();
        ids.push((config["store_id"].as_str().unwrap().to_string(), data));
    }
    let nowhere = dir.join("nowhere");
    let status = ok_run(
        &trusted,
        &nowhere,
        &["--json", "fleet", "status", "--remote", url],
    );
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["hosts"].as_array().unwrap().len(), 2, "{status}");
    assert_eq!(status["requests"], 5, "{status}");
    let (id, data) = &ids[1];
    let host = ["--remote", url, "--fleet", "--host", id.as_str()];
    ok_run(
        &trusted,
        &nowhere,
        &[&["gc"], &host[..], &["--keep-last", "1"]].concat(),
    );
    let listed = ok_run(
        &trusted,
        &nowhere,
        &[&["--json", "list"], &host[..]].concat(),
    );
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    let to = dir.join("out");
    let restore = [
        &["restore"],
        &host[..],
        &["latest", "--to", to.to_str().unwrap()],
    ]
    .concat();
    ok_run(&trusted, &nowhere, &restore);
    assert_eq!(
        fingerprint(&to.join(data.file_name().unwrap())),
        fingerprint(data)
    );
}

/// moto's request log lines (`"METHOD /path HTTP/1.1" status`) after `from`.
fn requests(log: &Path, from: usize) -> Vec<String> {
    fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter(|l| l.contains("HTTP/1.1"))
        .skip(from)
        .map(str::to_string)
        .collect()
}

#[test]
fn s3_on_moto() {
    let (Some(moto), Some(_)) = (tool("SNAP_TEST_MOTO"), tool("SNAP_TEST_PYTHON")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = dir.path().join("moto.log");
    let _server = Server(
        Command::new(moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_for(port);
    let endpoint = format!("http://127.0.0.1:{port}");
    let creds = setup("s3", &endpoint);
    let base = [
        ("AWS_ENDPOINT_URL", endpoint.clone()),
        ("AWS_REGION", "us-east-1".to_string()),
    ];
    let server = envs(&creds["creator"], &base);
    // Write-only, as moto's own request log shows: a mirror sends PUTs of
    // new objects and nothing else (no GET, HEAD, LIST or DELETE).
    let store = dir.path().join("w/store");
    snap_ok(&store, &["init"]);
    snap_ok(
        &store,
        &[
            "key",
            "generate",
            "--out",
            dir.path().join("w/id").to_str().unwrap(),
        ],
    );
    make_tree(&dir.path().join("w/data"), 71, 1);
    snap_ok(
        &store,
        &["take", dir.path().join("w/data").to_str().unwrap()],
    );
    let before = requests(&log, 0).len();
    ok_run(&server, &store, &["mirror", "--remote", "s3://snaptest/w"]);
    let sent = requests(&log, before);
    assert!(sent.len() > 3, "{sent:?}");
    for r in &sent {
        assert!(
            r.contains("\"PUT /snaptest/w/"),
            "a mirror made a non-create request: {r}"
        );
    }
    // moto's IAM mode refuses opendal's signed listings (a moto quirk), so
    // the permission errors are shown on GCS (tests/offsite.rs) and Azure.
    story(dir.path(), "s3://snaptest/snap", &server, &server, false);
    fleet(dir.path(), "s3://snaptest/fleet", &server, &server);
}

#[test]
fn azure_blob_on_azurite_with_a_create_only_sas() {
    let (Some(azurite), Some(_)) = (tool("SNAP_TEST_AZURITE"), tool("SNAP_TEST_PYTHON")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let location = dir.path().join("azurite");
    fs::create_dir_all(&location).unwrap();
    let _server = Server(
        Command::new(azurite)
            .args([
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &port.to_string(),
                "--silent",
                "--skipApiVersionCheck",
            ])
            .arg("--location")
            .arg(&location)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(port);
    let creds = setup("azure", &format!("http://127.0.0.1:{port}"));
    let (server, pruner) = (envs(&creds["creator"], &[]), envs(&creds["pruner"], &[]));
    story(dir.path(), "azblob://snaptest/snap", &server, &pruner, true);
    fleet(dir.path(), "azblob://snaptest/fleet", &server, &pruner);
}
