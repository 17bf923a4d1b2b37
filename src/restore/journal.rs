//! The journal of an in-place restore, `STORE/unfinished/<key>.json`:
//! written durably after the undo snapshot and before the first path is
//! replaced, removed durably after the last one is in place. While it
//! exists, the paths it names may be part old, part restored: every snap
//! command that opens the store names it, with the commands that finish and
//! undo it, and running the same restore again finishes it.
//!
//! Leftovers: a killed restore can leave its temporary files
//! (`.snap-restore-<pid>-…`, `.snap-link-<pid>-…`) beside its targets. They
//! are removed by the next in-place restore once their process is gone, and
//! `take` never stores them.

use crate::durable;
use crate::error::{Error, Result};
use crate::store::{Staging, Store};
use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

/// Prefixes of restore's temporary names (followed by the writer's pid).
pub(crate) const TEMP_PREFIXES: [&str; 2] = [".snap-restore-", ".snap-link-"];

/// An in-place restore that began and has not finished.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Unfinished {
    /// The snapshot being restored (full id).
    pub snapshot: String,
    /// The path inside it, when only that is restored.
    pub path: Option<String>,
    /// The paths being replaced.
    pub targets: Vec<String>,
    /// The undo snapshot: what was there before the first attempt.
    pub undo: Option<String>,
    /// When the first attempt began.
    pub started: DateTime<FixedOffset>,
    /// The host and process that wrote this.
    pub host: String,
    /// The process that wrote this.
    pub pid: u32,
}

impl Unfinished {
    pub(crate) fn new(snapshot: String, path: Option<String>, targets: Vec<String>) -> Self {
        Unfinished {
            snapshot,
            path,
            targets,
            undo: None,
            started: chrono::Local::now().fixed_offset(),
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            pid: std::process::id(),
        }
    }

    /// The same restore has the same key.
    fn key(&self) -> String {
        let mut h = blake3::Hasher::new();
        h.update(self.snapshot.as_bytes());
        h.update(&[0]);
        h.update(self.path.as_deref().unwrap_or("").as_bytes());
        for t in &self.targets {
            h.update(&[0]);
            h.update(t.as_bytes());
        }
        h.finalize().to_hex()[..16].to_string()
    }

    /// Whether the process that wrote this is still restoring.
    pub fn is_running(&self) -> bool {
        self.host == gethostname::gethostname().to_string_lossy()
            && self.pid != std::process::id()
            && alive(self.pid)
    }

    /// What finishes it: restoring its snapshot (or its path) in place again.
    pub fn finish(&self) -> Remedy<'_> {
        Remedy {
            snapshot: &self.snapshot,
            path: self.path.as_deref(),
        }
    }

    /// What puts back what was there before its first attempt: restoring
    /// the interim snapshot in place (None when nothing was there).
    pub fn undo(&self) -> Option<Remedy<'_>> {
        self.undo.as_deref().map(|u| Remedy {
            snapshot: u,
            path: None,
        })
    }

    /// What happened, and what to do, in a sentence (remedies in words).
    pub fn describe(&self) -> String {
        self.describe_with(|r| {
            let path = r.path.map(|p| format!(" (only {p})")).unwrap_or_default();
            format!("restoring snapshot {} in place{path}", &r.snapshot[..12])
        })
    }

    /// `describe`, with each remedy spelled by `spell` (the binary spells
    /// its command).
    pub fn describe_with(&self, spell: impl Fn(&Remedy) -> String) -> String {
        let mut s = format!(
            "an in-place restore of snapshot {} into {} (started {}) did not finish: those paths may be part old, part restored; {} finishes it",
            &self.snapshot[..12],
            self.targets.join(", "),
            self.started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            spell(&self.finish())
        );
        match self.undo() {
            Some(undo) => s.push_str(&format!(
                ", {} puts back what was there before",
                spell(&undo)
            )),
            None => s.push_str(" (nothing was there before it)"),
        }
        s
    }
}

/// A way out of an unfinished in-place restore: restore `snapshot` (only
/// `path` of it, when set) in place.
#[derive(Clone, Copy, Debug)]
pub struct Remedy<'a> {
    /// The snapshot to restore (its full id).
    pub snapshot: &'a str,
    /// The path inside it, when only that was being restored.
    pub path: Option<&'a str>,
}

/// The journals' directory, in the store.
const DIR: &str = "unfinished";

fn journal(entry: &Unfinished) -> PathBuf {
    Path::new(DIR).join(format!("{}.json", entry.key()))
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The in-place restores of this store that began and did not finish.
pub fn unfinished(store: &Store) -> Result<Vec<Unfinished>> {
    let mut out = Vec::new();
    for name in store.list_files(DIR)? {
        let rel = Path::new(DIR).join(&name);
        if !name.ends_with(".json") {
            continue;
        }
        // Removed meanwhile (its restore finished): not unfinished.
        let Some(bytes) = store.read_file(&rel)? else {
            continue;
        };
        let u: Unfinished = serde_json::from_slice(&bytes).map_err(|e| {
            let path = store.file_path(&rel);
            Error::corrupt(format!("restore journal {}", path.display()), e.to_string())
        })?;
        out.push(u);
    }
    out.sort_by_key(|u| u.started);
    Ok(out)
}

/// The journal of an earlier attempt at the same restore, if any.
pub(crate) fn earlier(store: &Store, entry: &Unfinished) -> Result<Option<Unfinished>> {
    Ok(unfinished(store)?
        .into_iter()
        .find(|u| u.key() == entry.key()))
}

/// Records the restore as begun: durable before the first path is replaced.
pub(crate) fn begin(store: &Store, entry: &Unfinished) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(entry).expect("a journal encodes");
    store.write_file(journal(entry), &bytes, Staging::Tmp)
}

/// Records the restore as finished: after every path is in place, durably.
pub(crate) fn end(store: &Store, entry: &Unfinished) -> Result<()> {
    store.remove_file(journal(entry))
}

/// The pid in a temporary name restore made, if it is one.
pub(crate) fn temp_owner(name: &[u8]) -> Option<Option<u32>> {
    let name = std::str::from_utf8(name).ok()?;
    let rest = TEMP_PREFIXES.iter().find_map(|p| name.strip_prefix(p))?;
    Some(rest.split('-').next().and_then(|pid| pid.parse().ok()))
}

/// Removes, from `dir` (not below it), the temporary files of restores
/// whose process is gone; returns how many.
pub(crate) fn sweep(dir: &Path) -> Result<usize> {
    use std::os::unix::ffi::OsStrExt;
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(0);
    };
    let mut n = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        match temp_owner(name.as_bytes()) {
            Some(Some(pid)) if alive(pid) => {}
            Some(_) => {
                let path = e.path();
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                fs::remove_file(&path).map_err(Error::io("remove leftover", &path))?;
                n += 1;
            }
            None => {}
        }
    }
    if n > 0 {
        durable::fsync_dir(dir)?;
    }
    Ok(n)
}
