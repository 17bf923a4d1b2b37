//! `include` / `exclude` globs on restore, as restic's: matched on a
//! node's path inside the snapshot (`data/sub/a.txt`) and on its name, with
//! take's glob syntax. An excluded node is skipped with everything under it;
//! with includes, a node is restored when it or a directory above it
//! matches, and a directory is created only on the way to such a node.

use crate::error::{Error, Result};
use crate::format::tree::{Node, Tree};
use crate::source::Excludes;
use crate::store::StoreReader;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The globs, compiled.
pub(crate) struct PathFilter {
    include: Option<Excludes>,
    exclude: Option<Excludes>,
}

impl PathFilter {
    /// None when there is nothing to filter.
    pub fn new(include: &[String], exclude: &[String]) -> Result<Option<PathFilter>> {
        if include.is_empty() && exclude.is_empty() {
            return Ok(None);
        }
        let set = |what, p: &[String]| match p.is_empty() {
            true => Ok(None),
            false => Excludes::named(what, p).map(Some),
        };
        Ok(Some(PathFilter {
            include: set("include", include)?,
            exclude: set("exclude", exclude)?,
        }))
    }

    fn excluded(&self, path: &Path) -> bool {
        self.exclude.as_ref().is_some_and(|e| e.matches(path))
    }

    fn included(&self, path: &Path) -> bool {
        self.include.as_ref().is_none_or(|i| i.matches(path))
    }
}

/// A filter as a restore walks down: the directories that lead to an
/// included node, and, for each directory entered, whether it is included.
#[derive(Clone)]
pub(crate) struct Walk {
    /// Whether anything is included at all.
    pub found: bool,
    filter: Arc<PathFilter>,
    /// Directories not included themselves that hold an included node.
    ways: HashSet<PathBuf>,
    /// The directory being restored, and whether each level is included.
    at: PathBuf,
    included: Vec<bool>,
}

impl Walk {
    /// Plans a filtered restore of `roots`, each at `prefix/<name>` in the
    /// snapshot: finds the ways to included nodes (reading trees only).
    pub fn plan(
        filter: &Arc<PathFilter>,
        reader: &StoreReader,
        prefix: &Path,
        roots: &[Node],
    ) -> Result<Walk> {
        let mut ways = HashSet::new();
        let mut found = filter.include.is_none();
        let base = prefix.to_string_lossy();
        reader.walk(
            &base,
            roots.to_vec(),
            |path, _| {
                let path = Path::new(path);
                if filter.excluded(path) {
                    return Ok(false);
                }
                if filter.include.is_some() && filter.included(path) {
                    found = true;
                    ways.extend(path.ancestors().skip(1).map(Path::to_path_buf));
                    return Ok(false); // all of it is included
                }
                Ok(true)
            },
            |_, e| Err(e),
        )?;
        Ok(Walk {
            found,
            filter: filter.clone(),
            ways,
            at: prefix.to_path_buf(),
            included: vec![filter.include.is_none()],
        })
    }

    /// Whether `node`, in the directory being restored, is restored.
    pub fn keeps(&self, node: &Node) -> bool {
        let path = self.at.join(node.name_lossy());
        !self.filter.excluded(&path)
            && (self.included.last() == Some(&true)
                || self.filter.included(&path)
                || self.ways.contains(&path))
    }

    /// Enters directory `node` and leaves in `tree` only what is restored.
    pub(crate) fn enter(&mut self, node: &Node, tree: &mut Tree) {
        self.at.push(node.name_lossy());
        let included = self.included.last() == Some(&true) || self.filter.included(&self.at);
        self.included.push(included);
        tree.nodes.retain(|n| self.keeps(n));
    }

    /// Back up out of the directory entered last.
    pub fn leave(&mut self) {
        self.at.pop();
        self.included.pop();
    }
}

/// The restore jobs that hold something the filter keeps, each with its
/// planned walk (the trees are walked once, here). NotFound when its
/// includes match nothing in any of them: nothing is written then.
pub(super) fn keep_jobs(
    filter: &Arc<PathFilter>,
    reader: &StoreReader,
    jobs: Vec<super::Job>,
) -> Result<Vec<super::Job>> {
    let mut found = false;
    let mut kept = Vec::new();
    for mut job in jobs {
        let nodes = std::slice::from_ref(&job.node);
        let walk = Walk::plan(filter, reader, &job.prefix, nodes)?;
        found |= walk.found;
        if walk.found && walk.keeps(&job.node) {
            job.walk = Some(walk);
            kept.push(job);
        }
    }
    if !found {
        return Err(Error::NotFound(
            "nothing in the snapshot matches the include patterns (nothing was restored)".into(),
        ));
    }
    Ok(kept)
}
