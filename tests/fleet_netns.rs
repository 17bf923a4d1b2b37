//! A fleet on one machine: hosts as network namespaces (each its own
//! store, create-only credential and snap processes, reaching the bucket
//! over a veth pair and a bridge) mirror concurrently into one GCS emulator
//! bucket behind the permission proxy, while an operator in a namespace of
//! its own prunes each host twice. One host's clock is three hours behind
//! (libfaketime); one host's link goes down for a while, mid-mirror.
//!
//! Afterwards, from the bucket alone: every host's newest snapshot is the
//! one it took last; every snapshot the remote keeps restores bit for bit;
//! none a host took after the operator's last prune began is missing; no
//! host request needed more than create permission.
//!
//! `SNAP_FLEET_SECONDS` (default 40; the issue's run is 600) and
//! `SNAP_FLEET_HOSTS` (default 8) size it. It needs root and `ip`; it fails
//! under CI (and is skipped elsewhere) without them.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BUCKET: &str = "gs://snaptest/fleet";

/// The namespaces, veth pairs and bridge of one run; removed on drop.
struct Net {
    tag: String,
    subnet: String,
    namespaces: Vec<String>,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip");
    assert!(out.status.success(), "ip {args:?}: {}", stderr(&out));
}

impl Net {
    /// A bridge at SUBNET.1 and `n` namespaces at SUBNET.(10 + i).
    fn new(n: usize) -> Net {
        let pid = std::process::id();
        let tag = format!("sf{}", pid % 100_000);
        let subnet = format!("10.199.{}", pid % 250);
        let net = Net {
            tag: tag.clone(),
            subnet: subnet.clone(),
            namespaces: Vec::new(),
        };
        let bridge = format!("{tag}br");
        ip(&["link", "add", &bridge, "type", "bridge"]);
        ip(&["addr", "add", &format!("{subnet}.1/24"), "dev", &bridge]);
        ip(&["link", "set", &bridge, "up"]);
        let mut net = net;
        for i in 0..n {
            let ns = format!("{tag}-{i}");
            let (a, b) = (format!("{tag}{i}a"), format!("{tag}{i}b"));
            ip(&["netns", "add", &ns]);
            net.namespaces.push(ns.clone());
            ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
            ip(&["link", "set", &b, "netns", &ns]);
            ip(&["link", "set", &a, "master", &bridge, "up"]);
            let addr = format!("{subnet}.{}/24", 10 + i);
            ip(&["-n", &ns, "addr", "add", &addr, "dev", &b]);
            ip(&["-n", &ns, "link", "set", &b, "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        net
    }

    /// Takes namespace `i`'s link down or up (its end on the bridge).
    fn link(&self, i: usize, up: bool) {
        let a = format!("{}{i}a", self.tag);
        ip(&["link", "set", &a, if up { "up" } else { "down" }]);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let bridge = format!("{}br", self.tag);
        let _ = Command::new("ip").args(["link", "del", &bridge]).output();
    }
}

fn usable() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n");
    let ip = Command::new("ip")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !(root && ip && emulator_bin().is_some()) {
        assert!(
            std::env::var_os("CI").is_none(),
            "the fleet test needs root, ip and the emulator"
        );
        eprintln!("skipped: needs root, ip and the emulator");
        return false;
    }
    true
}

/// libfaketime (PyPI `libfaketime`, installed beside the emulator).
fn faketime() -> Option<PathBuf> {
    let so = std::env::var_os("SNAP_TEST_FAKETIME").map(PathBuf::from)?;
    so.exists().then_some(so)
}

/// One host: its namespace, store, data and the snapshots it took (id, step).
struct Host {
    ns: String,
    store: PathBuf,
    data: PathBuf,
    env: Vec<(String, String)>,
    taken: Vec<(String, u32)>,
    /// When its last take began.
    last_take: Option<Instant>,
}

/// Host `i`'s data at `step`: a small file that changes every step, and a
/// bigger one that changes every fifth.
fn write_step(data: &Path, i: usize, step: u32) {
    fs::create_dir_all(data).unwrap();
    fs::write(data.join("step.txt"), format!("host {i} step {step}\n")).unwrap();
    let seed = (i as u32) << 16 | (step / 5);
    let big: Vec<u8> = (0..200_000u32)
        .map(|k| ((k ^ seed).wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    fs::write(data.join("big.bin"), big).unwrap();
}

fn run_in(ns: &str, env: &[(String, String)], store: &Path, args: &[&str]) -> Output {
    // Long enough for an operator's gc of a host's hundreds of snapshots
    // on a loaded emulator; a hang still ends.
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, "timeout", "900", snap_bin(), "--store"]);
    c.arg(store).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

impl Host {
    /// A take of the next step, then a mirror (which may fail while the
    /// link is down: the next one completes it).
    fn step(&mut self, i: usize) -> bool {
        let step = self.taken.len() as u32;
        write_step(&self.data, i, step);
        let data = self.data.to_str().unwrap();
        self.last_take = Some(Instant::now());
        let t = run_in(&self.ns, &self.env, &self.store, &["--json", "take", data]);
        assert!(t.status.success(), "host {i} take: {}", stderr(&t));
        let v: serde_json::Value = serde_json::from_slice(&t.stdout).unwrap();
        self.taken
            .push((v["id"].as_str().unwrap().to_string(), step));
        let m = run_in(
            &self.ns,
            &self.env,
            &self.store,
            &["mirror", "--remote", BUCKET, "--fleet"],
        );
        m.status.success()
    }
}

#[test]
fn hosts_in_namespaces_mirror_into_one_bucket_while_the_operator_prunes() {
    if !usable() {
        return;
    }
    let seconds: u64 = std::env::var("SNAP_FLEET_SECONDS").map_or(40, |s| s.parse().unwrap());
    let n: usize = std::env::var("SNAP_FLEET_HOSTS").map_or(8, |s| s.parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let net = Net::new(n + 1);
    let emulator = Emulator::start(&dir.path().join("emulator"));
    let port = free_port();
    let log = dir.path().join("requests.log");
    let _proxy = Killed(
        Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/proxy/gcs_iam.py"))
            .args([port.to_string(), emulator.port.to_string()])
            .args(["creator=create", "pruner=create,get,list,delete"])
            .env("GCS_IAM_LISTEN", format!("{}.1", net.subnet))
            .env("GCS_IAM_LOG", &log)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let endpoint = format!("http://{}.1:{port}", net.subnet);
    while std::net::TcpStream::connect((format!("{}.1", net.subnet).as_str(), port)).is_err() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (operator, identity) = sealed_store(&dir.path().join("operator"));
    let recipients = operator.join("mirror/recipients");
    let skewed = faketime();
    assert!(
        skewed.is_some() || std::env::var_os("CI").is_none(),
        "SNAP_TEST_FAKETIME"
    );
    let hosts: Vec<Arc<Mutex<Host>>> = (0..n)
        .map(|i| {
            let store = dir.path().join(format!("host{i}/store"));
            snap_ok(&store, &["init"]);
            fs::create_dir_all(store.join("mirror")).unwrap();
            fs::copy(&recipients, store.join("mirror/recipients")).unwrap();
            let mut env = vec![
                ("STORAGE_EMULATOR_HOST".to_string(), endpoint.clone()),
                (
                    "GOOGLE_OAUTH_ACCESS_TOKEN".to_string(),
                    "creator".to_string(),
                ),
            ];
            if let (0, Some(so)) = (i, &skewed) {
                env.push(("LD_PRELOAD".into(), so.display().to_string()));
                env.push(("FAKETIME".into(), "-3h".into()));
                env.push(("DONT_FAKE_MONOTONIC".into(), "1".into()));
            }
            Arc::new(Mutex::new(Host {
                ns: net.namespaces[i].clone(),
                store,
                data: dir.path().join(format!("host{i}/data")),
                env,
                taken: Vec::new(),
                last_take: None,
            }))
        })
        .collect();
    let ids: Vec<String> = hosts
        .iter()
        .map(|h| {
            let c = fs::read(h.lock().unwrap().store.join("config")).unwrap();
            let v: serde_json::Value = serde_json::from_slice(&c).unwrap();
            v["store_id"].as_str().unwrap().to_string()
        })
        .collect();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let workers: Vec<_> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let h = h.clone();
            std::thread::spawn(move || {
                let mut failed = 0;
                while Instant::now() < deadline {
                    if !h.lock().unwrap().step(i) {
                        failed += 1;
                    }
                    std::thread::sleep(Duration::from_millis(2000 + 200 * i as u64));
                }
                failed
            })
        })
        .collect();
    // The operator, from its own namespace: status, and each host pruned,
    // at a third and at two thirds of the run. Host 1 is cut off meanwhile.
    let op_ns = net.namespaces[n].clone();
    let op_env = vec![
        ("STORAGE_EMULATOR_HOST".to_string(), endpoint.clone()),
        (
            "GOOGLE_OAUTH_ACCESS_TOKEN".to_string(),
            "pruner".to_string(),
        ),
        ("SNAP_IDENTITY_FILE".to_string(), identity.clone()),
    ];
    let nowhere = dir.path().join("operator-has-no-store");
    let mut last_prune: BTreeMap<usize, usize> = BTreeMap::new();
    for round in 1..=2u64 {
        while Instant::now() < start + Duration::from_secs(seconds * round / 3) {
            std::thread::sleep(Duration::from_millis(100));
        }
        if round == 1 {
            net.link(1, false);
        }
        let s = run_in(
            &op_ns,
            &op_env,
            &nowhere,
            &["fleet", "status", "--remote", BUCKET],
        );
        assert!(matches!(s.status.code(), Some(0 | 7)), "{}", stderr(&s));
        for (i, id) in ids.iter().enumerate() {
            // Taken before the prune began: the policy may have let them go.
            last_prune.insert(i, hosts[i].lock().unwrap().taken.len());
            let args = [
                "gc",
                "--remote",
                BUCKET,
                "--fleet",
                "--host",
                id,
                "--keep-last",
                "3",
            ];
            let t = Instant::now();
            let g = run_in(&op_ns, &op_env, &nowhere, &args);
            let took = t.elapsed().as_secs_f64();
            eprintln!("round {round}: gc of host {i} in {took:.1} s");
            // A host that never completed a mirror has no prefix yet.
            let (code, err) = (g.status.code(), stderr(&g));
            assert!(
                g.status.success() || err.contains("no host"),
                "gc host {i} ({code:?}): {err}"
            );
        }
        if round == 1 {
            net.link(1, true);
        }
    }
    let failed: Vec<u32> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    eprintln!("mirrors failed per host (host 1 was cut off): {failed:?}");
    // Every host mirrors once more, its link up: nothing stays lost.
    for (i, h) in hosts.iter().enumerate() {
        let h = h.lock().unwrap();
        let env = h.env.clone();
        let m = run_in(
            &h.ns,
            &env,
            &h.store,
            &["mirror", "--remote", BUCKET, "--fleet"],
        );
        assert!(m.status.success(), "host {i} final mirror: {}", stderr(&m));
        assert!(!h.taken.is_empty());
    }
    check_fleet(
        &op_ns,
        &op_env,
        &nowhere,
        &hosts,
        &ids,
        &last_prune,
        skewed.is_some(),
        dir.path(),
    );
    // No host request needed more than create permission.
    let requests = fs::read_to_string(&log).unwrap();
    let beyond: Vec<&str> = requests
        .lines()
        .filter(|l| l.starts_with("creator ") && !l.starts_with("creator create "))
        .collect();
    assert!(
        beyond.is_empty(),
        "hosts needed more than create: {beyond:?}"
    );
    eprintln!("{} requests in all", requests.lines().count());
}

/// A child process killed when dropped (also when a test fails).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[allow(clippy::too_many_arguments)]
fn check_fleet(
    ns: &str,
    env: &[(String, String)],
    nowhere: &Path,
    hosts: &[Arc<Mutex<Host>>],
    ids: &[String],
    last_prune: &BTreeMap<usize, usize>,
    skewed: bool,
    dir: &Path,
) {
    let s = run_in(
        ns,
        env,
        nowhere,
        &["--json", "fleet", "status", "--remote", BUCKET],
    );
    assert_eq!(s.status.code(), Some(0), "{}", stderr(&s));
    let status: serde_json::Value = serde_json::from_slice(&s.stdout).unwrap();
    for (i, (h, id)) in hosts.iter().zip(ids).enumerate() {
        let h = h.lock().unwrap();
        let report = status["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["store_id"] == id.as_str())
            .unwrap_or_else(|| panic!("host {i} missing from {status}"));
        let newest = &report["paths"][0];
        assert_eq!(
            newest["id"],
            h.taken.last().unwrap().0.as_str(),
            "host {i}: {report}"
        );
        // Ages are the bucket's, whatever the host's clock says.
        let age = newest["age_seconds"].as_f64().unwrap();
        let real = h.last_take.unwrap().elapsed().as_secs_f64();
        assert!(
            (age - real).abs() < 60.0,
            "host {i}: {age} s, not {real} s: {report}"
        );
        if i == 0 && skewed {
            let skew = report["clock_skew_seconds"].as_f64().unwrap();
            assert!((skew + 10800.0).abs() < 300.0, "host 0's clock: {report}");
        }
        let fleet = ["--remote", BUCKET, "--fleet", "--host", id.as_str()];
        let listed = run_in(
            ns,
            env,
            nowhere,
            &[&["--json", "list"], &fleet[..]].concat(),
        );
        assert!(listed.status.success(), "{}", stderr(&listed));
        let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
        let on_remote: Vec<&str> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap())
            .collect();
        // None the host took after the last prune began is missing, nor
        // the three newest before it.
        let from = last_prune.get(&i).copied().unwrap_or(0).saturating_sub(3);
        for (id, step) in &h.taken[from..] {
            assert!(
                on_remote.contains(&id.as_str()),
                "host {i} lost step {step} ({id})"
            );
        }
        // Every snapshot on the remote restores bit for bit, from the bucket alone.
        for (snap, step) in h
            .taken
            .iter()
            .filter(|(s, _)| on_remote.contains(&s.as_str()))
        {
            let out = dir.join(format!("restored/{i}-{step}"));
            let args = [
                &["restore"],
                &fleet[..],
                &[snap.as_str(), "--to", out.to_str().unwrap()],
            ]
            .concat();
            let r = run_in(ns, env, nowhere, &args);
            assert!(r.status.success(), "host {i} step {step}: {}", stderr(&r));
            let expected = dir.join(format!("expected/{i}-{step}/data"));
            write_step(&expected, i, *step);
            for f in ["step.txt", "big.bin"] {
                let (got, want) = (
                    fs::read(out.join("data").join(f)),
                    fs::read(expected.join(f)),
                );
                assert!(
                    got.unwrap() == want.unwrap(),
                    "host {i} step {step}: {f} differs"
                );
            }
            fs::remove_dir_all(&out).unwrap();
            fs::remove_dir_all(expected.parent().unwrap()).unwrap();
        }
        let v = run_in(ns, env, nowhere, &[&["verify"], &fleet[..]].concat());
        assert!(v.status.success(), "host {i} verify: {}", stderr(&v));
    }
}
