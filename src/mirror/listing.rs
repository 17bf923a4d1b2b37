//! What an operator of many stores needs beside the basic calls: the
//! directories under a prefix (one request a thousand), several prefixes'
//! objects at once with the time the service says each was written, and
//! many deletes at once.

use super::ops::{remote_err, Op};
use super::remote::{Remote, TRANSFERS};
use crate::error::Result;
use futures::stream::{self, StreamExt};
use opendal::options::ListOptions;
use std::time::SystemTime;

/// A listed object: its key, size, and when the service says it was written.
pub(crate) type Dated = (String, u64, Option<SystemTime>);

impl Remote {
    /// The directories directly under `dir` (each `dir/NAME/`), not their contents.
    pub(crate) fn list_dirs(&self, dir: &str) -> Result<Vec<String>> {
        let entries = self
            .rt
            .block_on(self.op.list_options(dir, ListOptions::default()))
            .or_else(|e| match e.kind() {
                opendal::ErrorKind::NotFound => Ok(Vec::new()),
                _ => Err(e),
            })
            .map_err(remote_err(&self.url, Op::List, dir))?;
        Ok(entries
            .into_iter()
            .map(|e| e.path().to_string())
            .filter(|p| p.ends_with('/') && p != dir)
            .collect())
    }

    /// Every object under each of `dirs`, listed `TRANSFERS * 2` at a time;
    /// results in order.
    pub(crate) fn list_many(&self, dirs: Vec<String>) -> Vec<Result<Vec<Dated>>> {
        let (op, url) = (&self.op, self.url.as_str());
        self.rt.block_on(
            stream::iter(dirs)
                .map(|dir| async move {
                    let opts = ListOptions {
                        recursive: true,
                        ..Default::default()
                    };
                    let entries = match op.list_options(&dir, opts).await {
                        Err(e) if e.kind() == opendal::ErrorKind::NotFound => Vec::new(),
                        r => r.map_err(remote_err(url, Op::List, &dir))?,
                    };
                    Ok(entries
                        .into_iter()
                        .filter(|e| !e.path().ends_with('/'))
                        .map(|e| {
                            let m = e.metadata();
                            let at = m.last_modified().map(SystemTime::from);
                            (e.path().to_string(), m.content_length(), at)
                        })
                        .collect())
                })
                .buffered(TRANSFERS * 2)
                .collect(),
        )
    }

    /// Deletes every key, `TRANSFERS * 2` at a time (a key already gone is
    /// no error); the first failure is returned once the others ended.
    pub(crate) fn delete_many(&self, keys: Vec<String>) -> Result<()> {
        let (op, url) = (&self.op, self.url.as_str());
        let results: Vec<Result<()>> = self.rt.block_on(
            stream::iter(keys)
                .map(|key| async move {
                    op.delete(&key)
                        .await
                        .map_err(remote_err(url, Op::Delete, &key))
                })
                .buffer_unordered(TRANSFERS * 2)
                .collect(),
        );
        results.into_iter().collect()
    }
}
