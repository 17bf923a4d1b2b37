//! Shared helpers for the integration tests: run the real `snap` binary,
//! build trees, compare trees.
#![allow(dead_code)]

pub mod ledger;
pub mod proxy;
pub mod recruit;
pub mod world;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn snap_bin() -> &'static str {
    env!("CARGO_BIN_EXE_snap")
}

pub fn snap(store: &Path, args: &[&str]) -> Output {
    Command::new(snap_bin())
        .arg("--store")
        .arg(store)
        .args(args)
        .output()
        .expect("run snap")
}

/// Runs snap and asserts success; returns stdout.
pub fn snap_ok(store: &Path, args: &[&str]) -> String {
    let out = snap(store, args);
    assert!(
        out.status.success(),
        "snap {args:?} failed ({:?}):\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn snap_json(store: &Path, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    serde_json::from_str(&snap_ok(store, &a)).expect("json output")
}

/// The points in the store (`list --points`), oldest first.
pub fn points(store: &Path) -> Vec<serde_json::Value> {
    snap_json(store, &["list", "--points"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| !s["point"].is_null())
        .cloned()
        .collect()
}

/// Everything restore must reproduce: kind, content, mode, mtime, link target.
pub fn fingerprint(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, path: &Path, out: &mut BTreeMap<PathBuf, String>) {
    let meta = fs::symlink_metadata(path).unwrap();
    let rel = path.strip_prefix(root).unwrap().to_path_buf();
    let mode = meta.permissions().mode() & 0o7777;
    if meta.file_type().is_symlink() {
        out.insert(rel, format!("link {:?}", fs::read_link(path).unwrap()));
    } else if meta.is_dir() {
        out.insert(
            rel,
            format!(
                "dir {mode:o} {}",
                meta.mtime_nsec() + meta.mtime() * 1_000_000_000
            ),
        );
        let mut entries: Vec<_> = fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for e in entries {
            walk(root, &e, out);
        }
    } else {
        let data = fs::read(path).unwrap();
        out.insert(
            rel,
            format!(
                "file {mode:o} {} {} {}",
                meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
                data.len(),
                blake3::hash(&data).to_hex()
            ),
        );
    }
}

/// A deterministic pseudo-random byte source (xorshift), so tests need no RNG crate.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }

    /// Compressible text-like bytes.
    pub fn text(&mut self, n: usize) -> Vec<u8> {
        const WORDS: [&str; 8] = [
            "alpha ", "beta ", "gamma ", "delta\n", "snap ", "store ", "chunk ", "pack ",
        ];
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(WORDS[(self.next() % 8) as usize].as_bytes());
        }
        v.truncate(n);
        v
    }
}

/// A mixed tree: text and random files, nested dirs, an empty file and dir, a symlink.
pub fn make_tree(root: &Path, seed: u64, scale: usize) {
    let mut rng = Rng(seed | 1);
    fs::create_dir_all(root.join("a/b/c")).unwrap();
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    fs::write(root.join("empty-file"), b"").unwrap();
    for i in 0..scale {
        let (t, r) = (
            1000 + (rng.next() % 200_000) as usize,
            (rng.next() % 300_000) as usize,
        );
        fs::write(root.join(format!("a/text-{i}.txt")), rng.text(t)).unwrap();
        fs::write(root.join(format!("a/b/rand-{i}.bin")), rng.bytes(r)).unwrap();
    }
    fs::write(root.join("a/b/c/deep.txt"), rng.text(5000)).unwrap();
    std::os::unix::fs::symlink("a/b/c/deep.txt", root.join("link")).unwrap();
    fs::set_permissions(
        root.join("a/b/c/deep.txt"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
}

/// A `gcp-storage-emulator` process on a free loopback port, killed on drop.
/// Its data lives in `dir`, so a restarted emulator on the same dir keeps it.
pub struct Emulator {
    child: Option<std::process::Child>,
    pub port: u16,
    dir: PathBuf,
}

/// The emulator binary: `SNAP_TEST_EMULATOR`, else `.venv/bin/gcp-storage-emulator`.
/// Without it the test is skipped, except under CI, where that is a failure.
pub fn emulator_bin() -> Option<PathBuf> {
    let bin = std::env::var_os("SNAP_TEST_EMULATOR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/gcp-storage-emulator")
        });
    if bin.exists() {
        return Some(bin);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "no gcp-storage-emulator: run ./scripts/test.sh, which installs it"
    );
    eprintln!("skipped: no gcp-storage-emulator (run ./scripts/test.sh)");
    None
}

/// A port nothing listens on now (the OS's pick, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Emulator {
    pub fn start(dir: &Path) -> Emulator {
        let mut e = Emulator {
            child: None,
            port: free_port(),
            dir: dir.to_path_buf(),
        };
        e.restart();
        e
    }

    /// Starts the emulator on its port, its objects kept; if that port has
    /// been taken meanwhile (a released port can be reused as any socket's
    /// source port), on a fresh one: callers ask `host()` after a restart.
    pub fn restart(&mut self) {
        for attempt in 0..4 {
            if attempt > 0 {
                self.stop();
                self.port = free_port();
            }
            if self.spawn() {
                return;
            }
        }
        panic!("emulator did not start");
    }

    /// Spawns the emulator; whether it listens within 20 s.
    fn spawn(&mut self) -> bool {
        fs::create_dir_all(&self.dir).unwrap();
        let child = Command::new(emulator_bin().expect("emulator"))
            .args([
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--default-bucket",
                "snaptest",
                "-q",
            ])
            .current_dir(&self.dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let start = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let exited = self
                .child
                .as_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
            if exited || start.elapsed().as_secs() >= 20 {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        true
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn host(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs snap against the emulator at `host`.
pub fn snap_at(host: &str, store: &Path, args: &[&str]) -> Output {
    Command::new(snap_bin())
        .env("STORAGE_EMULATOR_HOST", host)
        .arg("--store")
        .arg(store)
        .args(args)
        .output()
        .expect("run snap")
}

pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "snap failed ({:?}):\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Flips one bit of the index row of some chunk (the first row) at `byte`
/// (layout 2: pack number u32le at 0, offset u64le at 4).
pub fn flip_index_row(store: &Path, byte: usize) {
    use redb::ReadableTable;
    let table: redb::TableDefinition<[u8; 32], [u8; 21]> = redb::TableDefinition::new("chunk_rows");
    let db = redb::Database::create(store.join("index.redb")).unwrap();
    let tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_table(table).unwrap();
        let (k, mut v) = {
            let (k, v) = t.first().unwrap().unwrap();
            (k.value(), v.value())
        };
        v[byte] ^= 1;
        t.insert(&k, &v).unwrap();
    }
    tx.commit().unwrap();
}

/// Runs snap on `store` with these environment variables.
pub fn snap_env(envs: &[(&str, &str)], store: &Path, args: &[&str]) -> Output {
    Command::new(snap_bin())
        .envs(envs.iter().copied())
        .arg("--store")
        .arg(store)
        .args(args)
        .output()
        .unwrap()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into()
}

/// A store with a recipient; the identity is written beside it.
pub fn sealed_store(dir: &Path) -> (PathBuf, String) {
    let store = dir.join("store");
    snap_ok(&store, &["init"]);
    let id = dir.join("identity");
    snap_ok(&store, &["key", "generate", "--out", id.to_str().unwrap()]);
    (store, id.to_str().unwrap().to_string())
}

/// Every pack file of a store, sorted.
pub fn pack_files(store: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in fs::read_dir(store.join("packs")).unwrap().flatten() {
        for f in fs::read_dir(sub.path()).unwrap().flatten() {
            out.push(f.path());
        }
    }
    out.sort();
    out
}

/// Names under `dir` (at any depth) of files snap's restore left: `.snap-…`.
pub fn leftovers(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(".snap-") {
            out.push(name);
        }
        if e.file_type().unwrap().is_dir() {
            out.extend(leftovers(&e.path()));
        }
    }
    out
}

/// A database whose pages were damaged: 3,000 rows and an index, with 2 KB
/// in its middle overwritten.
pub fn broken_db(db: &Path) {
    {
        let c = rusqlite::Connection::open(db).unwrap();
        c.execute_batch("CREATE TABLE t(x TEXT); CREATE INDEX tx ON t(x);")
            .unwrap();
        for i in 0..3000 {
            c.execute(
                "INSERT INTO t VALUES (?1)",
                [format!("row {i} {}", "x".repeat(50))],
            )
            .unwrap();
        }
    }
    let mut bytes = fs::read(db).unwrap();
    let n = bytes.len();
    bytes[n / 2..n / 2 + 2000].fill(0x77);
    fs::write(db, bytes).unwrap();
}

/// Writes `day.txt` for `day` into `data` and takes it; the snapshot's id.
pub fn take_day(store: &Path, data: &Path, day: u32) -> String {
    fs::write(data.join("day.txt"), format!("day {day}")).unwrap();
    snap_json(store, &["take", data.to_str().unwrap()])["id"]
        .as_str()
        .unwrap()
        .to_string()
}
