//! Before an in-place restore writes: leftovers of killed restores are
//! swept, what is there now is snapshotted (the undo), and the journal is
//! written; rerunning an interrupted restore finishes it. After a failed
//! restore into a directory: what it created is removed.

use super::journal::{self, Unfinished};
use super::{RestoreOptions, RestoreReport};
use crate::error::{Error, Result};
use crate::snapshot::{take, TakeOptions};
use crate::store::Store;
use std::fs;
use std::path::{Path, PathBuf};

/// Takes the undo snapshot and writes the journal; returns the journal's
/// entry, for `journal::end` once every target is in place.
pub(super) fn prepare(
    store: &Store,
    opts: &RestoreOptions,
    report: &mut RestoreReport,
) -> Result<Unfinished> {
    let mut entry = Unfinished::new(
        report.snapshot.clone(),
        opts.path.clone(),
        report.targets.clone(),
    );
    let earlier = journal::earlier(store, &entry)?;
    if let Some(e) = earlier.as_ref().filter(|e| e.is_running()) {
        return Err(Error::Invalid(format!(
            "snap process {} is restoring {} in place now; nothing was changed",
            e.pid,
            e.targets.join(", ")
        )));
    }
    for t in &report.targets {
        journal::sweep(Path::new(t).parent().unwrap_or(Path::new("/")))?;
    }
    let existing: Vec<PathBuf> = report
        .targets
        .iter()
        .map(PathBuf::from)
        .filter(|p| fs::symlink_metadata(p).is_ok())
        .collect();
    let undo = match existing.is_empty() {
        true => None,
        false => take(
            store,
            &TakeOptions {
                paths: existing,
                tags: vec![crate::select::PRE_RESTORE.into()],
                lock_wait: opts.lock_wait,
                ..Default::default()
            },
        )?
        .id
        .map(|i| i.to_hex()),
    };
    match earlier {
        // Finishing an interrupted attempt: what was there before it is
        // still the undo; what it left is kept too.
        Some(e) => {
            entry.undo = e.undo;
            entry.started = e.started;
            report.interim_snapshot = undo;
        }
        None => entry.undo = undo,
    }
    report.undo_snapshot = entry.undo.clone();
    journal::begin(store, &entry)?;
    Ok(entry)
}

/// After a restore into a directory failed (or was interrupted): removes
/// the targets it created; one that existed before is left, and named.
pub(super) fn undo_partial(e: Error, report: &RestoreReport, existed: &[bool]) -> Error {
    let (mut kept, mut removed) = (Vec::new(), 0);
    for (t, existed) in report.targets.iter().zip(existed) {
        let path = Path::new(t);
        let gone = match fs::symlink_metadata(path) {
            Err(_) => true,
            Ok(_) if *existed => false,
            Ok(m) if m.is_dir() => fs::remove_dir_all(path).is_ok(),
            Ok(_) => fs::remove_file(path).is_ok(),
        };
        removed += usize::from(gone && fs::symlink_metadata(path).is_err() && !existed);
        if !gone {
            kept.push(t.as_str());
        }
    }
    match (kept.is_empty(), removed) {
        (true, 0) => return e,
        (true, _) => return e.stopped("what it had written was removed"),
        _ => {}
    }
    e.stopped(format!(
        "it stopped part way: {} already existed, so the {} files written into it are left",
        kept.join(", "),
        report.files
    ))
}
