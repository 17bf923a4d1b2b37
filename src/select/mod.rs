//! Which snapshots a command works on: restic's `--path`, `--host` and
//! `--tag` filters, and snapshot specs (`ID`, a prefix, `latest`,
//! `latest:PATH`, either at a moment: `latest:PATH@10 minutes ago`)
//! resolved within them.

mod moment;

pub use moment::parse_moment;

use crate::error::{Error, Result};
use crate::format::record::Snapshot;
use crate::id::SnapshotId;
use crate::store::Store;
use std::path::{Path, PathBuf};

pub use crate::format::record::{PRE_RECOVER, PRE_RESTORE};

/// Whether `s` is an undo snapshot (taken by snap before it replaced
/// something): `latest` passes over them unless their tag is asked for.
pub(crate) fn is_undo(s: &Snapshot) -> bool {
    crate::format::record::is_undo(&s.tags)
}

/// A filter on snapshots; empty fields match everything.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Absolute paths: a snapshot matches when it holds one of them: one
    /// of its paths is that path or contains it (a snapshot of `/srv/app`
    /// holds `/srv/app/db.sqlite`; a snapshot of `/srv/app/db.sqlite` does
    /// not hold `/srv/app`).
    pub paths: Vec<PathBuf>,
    /// Host names (any of them).
    pub hosts: Vec<String>,
    /// Tags (any of them).
    pub tags: Vec<String>,
}

/// Is `a` the same path as `b` or inside it?
fn within(a: &Path, b: &Path) -> bool {
    a.starts_with(b)
}

impl Selection {
    /// Selects everything.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty() && self.hosts.is_empty() && self.tags.is_empty()
    }

    /// Whether `s` is selected.
    pub fn matches(&self, s: &Snapshot) -> bool {
        let path_ok = self.paths.is_empty()
            || self
                .paths
                .iter()
                .any(|p| s.paths.iter().any(|sp| within(p, Path::new(sp))));
        let host_ok = self.hosts.is_empty() || self.hosts.contains(&s.host);
        let tag_ok = self.tags.is_empty() || s.tags.iter().any(|t| self.tags.contains(t));
        path_ok && host_ok && tag_ok
    }

    /// This selection narrowed to snapshots that hold `path`.
    pub(crate) fn with_path(&self, path: PathBuf) -> Selection {
        let mut s = self.clone();
        s.paths = vec![path];
        s
    }
}

impl Store {
    /// The readable snapshots that match `sel`, oldest first.
    pub fn select(&self, sel: &Selection) -> Result<Vec<(SnapshotId, Snapshot)>> {
        Ok(self
            .snapshots()?
            .into_iter()
            .filter(|(_, s)| sel.matches(s))
            .collect())
    }

    /// Resolves a full id, a unique prefix of at least 6 hex digits,
    /// `latest` (the newest snapshot in `sel`) or `latest:PATH` (the newest
    /// in `sel` that holds PATH, a path on this machine). `latest` passes
    /// over undo snapshots unless `sel` asks for their tag. `latest` and
    /// `latest:PATH` take a moment after `@` (`parse_moment`): the newest
    /// snapshot or point taken at or before it.
    pub fn resolve_in(&self, spec: &str, sel: &Selection) -> Result<SnapshotId> {
        let (spec, moment) = match spec.rsplit_once('@') {
            Some((s, m)) if s == "latest" || s.starts_with("latest:") => (
                s,
                Some(parse_moment(m, chrono::Local::now().fixed_offset())?),
            ),
            _ => (spec, None),
        };
        let latest = |sel: &Selection, what: &str| {
            let undo_asked = sel
                .tags
                .iter()
                .any(|t| t == PRE_RESTORE || t == PRE_RECOVER);
            self.select(sel)?
                .into_iter()
                .rev()
                .filter(|(_, s)| moment.is_none_or(|m| s.time <= m))
                .find(|(_, s)| undo_asked || !is_undo(s))
                .map(|(id, _)| id)
                .ok_or_else(|| match moment {
                    Some(m) => Error::NotFound(format!(
                        "no snapshot or point {what} at or before {}",
                        m.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                    )),
                    None => Error::NotFound(format!("no snapshot {what}")),
                })
        };
        if spec == "latest" {
            let what = if sel.is_empty() {
                "in the store".to_string()
            } else {
                "matches the selection".into()
            };
            return latest(sel, &what);
        }
        if let Some(path) = spec.strip_prefix("latest:") {
            let abs = std::path::absolute(path).map_err(Error::io("resolve", path))?;
            return latest(
                &sel.with_path(abs.clone()),
                &format!("holds {}", abs.display()),
            );
        }
        let id = self.resolve(spec)?;
        if !sel.is_empty() && !sel.matches(&self.load_snapshot(&id)?) {
            return Err(Error::NotFound(format!(
                "snapshot {spec} does not match the selection (paths, host, tags)"
            )));
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(paths: &[&str], host: &str, tags: &[&str]) -> Snapshot {
        Snapshot {
            version: 1,
            time: chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap(),
            host: host.into(),
            paths: paths.iter().map(|p| p.to_string()).collect(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            tree: vec![],
            parent: None,
            stats: Default::default(),
            skipped: vec![],
            databases: vec![],
            excludes: vec![],
            point: None,
        }
    }

    #[test]
    fn paths_match_inside_and_around() {
        let s = snap(&["/srv/app"], "h", &["daily"]);
        let sel = |p: &str| Selection {
            paths: vec![p.into()],
            ..Default::default()
        };
        assert!(sel("/srv/app").matches(&s));
        assert!(sel("/srv/app/db.sqlite").matches(&s));
        assert!(
            !sel("/srv").matches(&s),
            "a snapshot of /srv/app does not hold /srv"
        );
        assert!(!sel("/srv/application").matches(&s));
        assert!(!sel("/other").matches(&s));
        let tags = Selection {
            tags: vec!["weekly".into()],
            ..Default::default()
        };
        assert!(!tags.matches(&s));
        assert!(Selection::default().matches(&s));
    }
}
