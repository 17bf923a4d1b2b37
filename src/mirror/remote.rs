//! A remote: an opendal operator over a GCS bucket prefix (`gs://BUCKET/PREFIX`),
//! an S3 bucket prefix (`s3://BUCKET/PREFIX`; credentials and region the AWS
//! ways, `AWS_ENDPOINT_URL` for other S3 services), an Azure Blob container
//! prefix (`azblob://CONTAINER/PREFIX`, with `AZURE_STORAGE_CONNECTION_STRING`)
//! or a directory (`file:///PATH`), with retry (exponential backoff, only for
//! errors opendal marks temporary), a per-request timeout and a concurrency
//! limit. Async stays in here: a private tokio runtime runs every call, and
//! the rest of snap sees plain blocking functions.
//!
//! Credentials for GCS come the usual Google ways (a key file in
//! `GOOGLE_APPLICATION_CREDENTIALS`, or the VM's metadata server);
//! `STORAGE_EMULATOR_HOST=http://127.0.0.1:PORT` points it at an emulator
//! with no credentials, as Google's own client libraries do;
//! `GOOGLE_OAUTH_ACCESS_TOKEN` gives a token directly.

use super::ops::{remote_err, Op};
use crate::error::{Error, Result};
use futures::stream::{self, StreamExt};
use opendal::layers::{ConcurrentLimitLayer, RetryLayer, TimeoutLayer};
use opendal::options::{ListOptions, ReadOptions, WriteOptions};
use opendal::Operator;
use std::time::Duration;

/// Uploads and downloads in flight at once (each holds one pack in memory).
pub(crate) const TRANSFERS: usize = 4;

/// A bucket prefix or a directory, reached through opendal.
pub struct Remote {
    /// Its URL.
    pub url: String,
    pub(super) op: Operator,
    pub(super) rt: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Remote({})", self.url)
    }
}

/// One spelling of each remote: the scheme, the bucket, and the prefix
/// without empty segments; a directory's path absolute, with symlinks
/// resolved where it exists. A remote's local state is keyed by this, so
/// `file:///r/A/`, `file:///r/A` and a symlink to it are one remote.
pub(crate) fn canonical_url(url: &str) -> String {
    let segments = |p: &str| -> Vec<String> {
        p.split('/')
            .filter(|s| !s.is_empty() && *s != ".")
            .map(str::to_string)
            .collect()
    };
    if let Some(path) = url.strip_prefix("file://") {
        let joined = format!("/{}", segments(path).join("/"));
        let real = std::fs::canonicalize(&joined)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or(joined);
        return format!("file://{real}");
    }
    match url.split_once("://") {
        Some((scheme, rest)) => {
            format!(
                "{}://{}",
                scheme.to_ascii_lowercase(),
                segments(rest).join("/")
            )
        }
        None => url.to_string(),
    }
}

impl Remote {
    /// Opens a remote from its URL (kept in its canonical spelling). Nothing
    /// is contacted yet.
    pub fn open(url: &str) -> Result<Remote> {
        let url = &canonical_url(url);
        opendal::install_default();
        let op = super::services::operator(url)?;
        let op = op
            .layer(
                TimeoutLayer::new()
                    .with_timeout(Duration::from_secs(120))
                    .with_io_timeout(Duration::from_secs(30)),
            )
            .layer(
                RetryLayer::new()
                    .with_jitter()
                    .with_max_times(4)
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_delay(Duration::from_secs(5)),
            )
            .layer(ConcurrentLimitLayer::new(TRANSFERS * 2));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(Error::io("start runtime for", "remote"))?;
        Ok(Remote {
            url: url.to_string(),
            op,
            rt,
        })
    }

    /// Every object under `dir` with its size.
    pub fn list(&self, dir: &str) -> Result<Vec<(String, u64)>> {
        let opts = ListOptions {
            recursive: true,
            ..Default::default()
        };
        let entries = self
            .rt
            .block_on(self.op.list_options(dir, opts))
            .or_else(|e| {
                if e.kind() == opendal::ErrorKind::NotFound {
                    Ok(Vec::new())
                } else {
                    Err(e)
                }
            })
            .map_err(remote_err(&self.url, Op::List, dir))?;
        Ok(entries
            .into_iter()
            .filter(|e| !e.path().ends_with('/'))
            .map(|e| (e.path().to_string(), e.metadata().content_length()))
            .collect())
    }

    /// Size of an object, or None if it does not exist.
    pub fn size(&self, path: &str) -> Result<Option<u64>> {
        match self.rt.block_on(self.op.stat(path)) {
            Ok(m) => Ok(Some(m.content_length())),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(remote_err(&self.url, Op::Stat, path)(e)),
        }
    }

    /// A whole object.
    pub fn read(&self, path: &str) -> Result<Vec<u8>> {
        Ok(self
            .rt
            .block_on(self.op.read(path))
            .map_err(remote_err(&self.url, Op::Read, path))?
            .to_vec())
    }

    /// `len` bytes at `offset` (a ranged read: only what is needed travels).
    pub(crate) fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.read_ranges(vec![(path.to_string(), offset, len)])
            .pop()
            .expect("one result per range")
    }

    /// Many ranged reads `(path, offset, len)`, `TRANSFERS` at a time; results in order.
    pub(crate) fn read_ranges(&self, ranges: Vec<(String, u64, u64)>) -> Vec<Result<Vec<u8>>> {
        let (op, url) = (&self.op, self.url.as_str());
        self.rt.block_on(
            stream::iter(ranges)
                .map(|(path, offset, len)| async move {
                    let opts = ReadOptions {
                        range: (offset..offset + len).into(),
                        ..Default::default()
                    };
                    let buf = op
                        .read_options(&path, opts)
                        .await
                        .map_err(remote_err(url, Op::Read, &path))?
                        .to_vec();
                    if buf.len() as u64 != len {
                        return Err(Error::corrupt(
                            format!("remote object {path}"),
                            "shorter than listed",
                        ));
                    }
                    Ok(buf)
                })
                .buffered(TRANSFERS * 2)
                .collect(),
        )
    }

    /// Writes a new object with a does-not-exist precondition: an existing
    /// one is never overwritten (objects are named by their content, so one
    /// that exists already holds these bytes). Needs only create permission.
    /// Returns false when the object was there already.
    pub fn put_new(&self, path: &str, bytes: Vec<u8>) -> Result<bool> {
        self.rt.block_on(put_new(&self.op, &self.url, path, bytes))
    }

    /// Deletes an object.
    pub fn delete(&self, path: &str) -> Result<()> {
        self.rt
            .block_on(self.op.delete(path))
            .map_err(remote_err(&self.url, Op::Delete, path))
    }

    /// Uploads objects, `TRANSFERS` at a time; `prepare` makes each object's
    /// bytes (reading, checking and sealing a local file: a corrupt local
    /// file is never uploaded). Only creates objects: no read, list or stat.
    /// Returns each upload's result (bytes sent, 0 when the object was
    /// already there), in any order; the first remote failure (after
    /// retries) stops the rest and is returned beside what finished.
    #[allow(clippy::type_complexity)]
    pub fn upload<T: Send + Sync>(
        &self,
        items: Vec<(String, T)>,
        prepare: &(dyn Fn(&str, &T) -> Result<Vec<u8>> + Sync),
        progress: &crate::progress::Reporter,
    ) -> (Vec<(String, T, Result<u64>)>, Option<Error>) {
        use rayon::prelude::*;
        type Prepared<T> = Vec<(String, T, Result<Vec<u8>>)>;
        // Batches of TRANSFERS: the next batch is read, checked and sealed
        // on all cores while this one uploads.
        let prep = |batch: Vec<(String, T)>| -> Prepared<T> {
            batch
                .into_par_iter()
                .map(|(k, item)| {
                    let r = prepare(&k, &item);
                    (k, item, r)
                })
                .collect()
        };
        let mut batches = Vec::new();
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            batches.push(items.by_ref().take(TRANSFERS).collect::<Vec<_>>());
        }
        let mut out = Vec::new();
        let mut batches = batches.into_iter();
        let mut ready = batches.next().map(prep);
        while let Some(batch) = ready.take() {
            let next = batches.next();
            let (sent, prepared) = rayon::join(|| self.send(batch, progress), || next.map(prep));
            ready = prepared;
            for (path, item, r) in sent {
                match r {
                    Err(e @ (Error::Remote { .. } | Error::Denied { .. })) => {
                        return (out, Some(e))
                    }
                    r => out.push((path, item, r)),
                }
            }
        }
        (out, None)
    }

    /// Creates prepared objects concurrently; a failed preparation is passed on.
    fn send<T>(
        &self,
        batch: Vec<(String, T, Result<Vec<u8>>)>,
        progress: &crate::progress::Reporter,
    ) -> Vec<(String, T, Result<u64>)> {
        let (op, url) = (&self.op, self.url.as_str());
        self.rt.block_on(
            stream::iter(batch)
                .map(|(path, item, bytes)| async move {
                    let r = async {
                        let bytes = bytes?;
                        let len = bytes.len() as u64;
                        let created = put_new(op, url, &path, bytes).await?;
                        progress.advance(len);
                        Ok(if created { len } else { 0 })
                    }
                    .await;
                    (path, item, r)
                })
                .buffer_unordered(TRANSFERS)
                .collect(),
        )
    }

    /// Downloads objects and hands each to `place`, which opens, checks and
    /// keeps it (durably, before it returns).
    pub(crate) fn download(
        &self,
        keys: Vec<String>,
        place: &Place<'_>,
        progress: &crate::progress::Reporter,
    ) -> Vec<(String, Result<u64>)> {
        let (op, url) = (&self.op, self.url.as_str());
        self.rt.block_on(
            stream::iter(keys)
                .map(|path| async move {
                    let r = async {
                        let stored = op
                            .read(&path)
                            .await
                            .map_err(remote_err(url, Op::Read, &path))?
                            .to_vec();
                        place(&path, &stored)?;
                        progress.advance(stored.len() as u64);
                        Ok(stored.len() as u64)
                    }
                    .await;
                    (path, r)
                })
                .buffer_unordered(TRANSFERS)
                .collect(),
        )
    }
}

/// Opens, checks and keeps a downloaded object (its key, its bytes).
pub(crate) type Place<'a> = dyn Fn(&str, &[u8]) -> Result<()> + Sync + 'a;

async fn put_new(op: &Operator, url: &str, path: &str, bytes: Vec<u8>) -> Result<bool> {
    let opts = WriteOptions {
        content_type: Some("application/octet-stream".into()),
        if_not_exists: true,
        ..Default::default()
    };
    match op.write_options(path, bytes, opts).await {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == opendal::ErrorKind::ConditionNotMatch => Ok(false),
        Err(e) => Err(remote_err(url, Op::Create, path)(e)),
    }
}
