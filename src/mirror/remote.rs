//! A remote: an opendal operator over a GCS bucket prefix (`gs://BUCKET/PREFIX`)
//! or a directory (`file:///PATH`), with retry (exponential backoff, only for
//! errors opendal marks temporary), a per-request timeout and a concurrency
//! limit. Async stays in here: a private tokio runtime runs every call, and
//! the rest of snap sees plain blocking functions.
//!
//! Credentials for GCS come the usual Google ways (a key file in
//! `GOOGLE_APPLICATION_CREDENTIALS`, or the VM's metadata server);
//! `STORAGE_EMULATOR_HOST=http://127.0.0.1:PORT` points it at an emulator
//! with no credentials, as Google's own client libraries do.

use crate::error::{Error, Result};
use futures::stream::{self, StreamExt};
use opendal::layers::{ConcurrentLimitLayer, RetryLayer, TimeoutLayer};
use opendal::options::{ListOptions, ReadOptions, WriteOptions};
use opendal::Operator;
use std::path::PathBuf;
use std::time::Duration;

/// Uploads and downloads in flight at once (each holds one pack in memory).
pub const TRANSFERS: usize = 4;

/// A bucket prefix or a directory, reached through opendal.
pub struct Remote {
    /// Its URL.
    pub url: String,
    op: Operator,
    rt: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Remote({})", self.url)
    }
}

fn remote_err(url: &str, what: &str) -> impl FnOnce(opendal::Error) -> Error {
    let (url, what) = (url.to_string(), what.to_string());
    move |e| Error::Remote {
        retryable: e.is_temporary(),
        message: format!("{what} on {url}: {e}"),
    }
}

impl Remote {
    /// Opens a remote from its URL. Nothing is contacted yet.
    pub fn open(url: &str) -> Result<Remote> {
        opendal::install_default();
        let op = if let Some(rest) = url.strip_prefix("gs://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(Error::Invalid(format!(
                    "remote {url}: no bucket (gs://BUCKET/PREFIX)"
                )));
            }
            let mut b = opendal::services::Gcs::default()
                .bucket(bucket)
                .root(&format!("/{}", prefix.trim_matches('/')))
                .default_storage_class("STANDARD");
            if let Ok(host) = std::env::var("STORAGE_EMULATOR_HOST") {
                let endpoint = if host.starts_with("http") {
                    host
                } else {
                    format!("http://{host}")
                };
                b = b
                    .endpoint(&endpoint)
                    .skip_signature()
                    .disable_vm_metadata()
                    .disable_config_load();
            } else if let Ok(path) = std::env::var("GOOGLE_APPLICATION_CREDENTIALS") {
                b = b.credential_path(&path);
            }
            Operator::new(b).map_err(remote_err(url, "configure"))?
        } else if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(Error::Invalid(format!(
                    "remote {url}: use file:///ABSOLUTE/PATH"
                )));
            }
            // Writes go to a temporary file and are renamed into place, so a
            // partial object never appears under its final name.
            let b = opendal::services::Fs::default()
                .root(path)
                .atomic_write_dir(&format!("{}/.tmp", path.trim_end_matches('/')));
            Operator::new(b).map_err(remote_err(url, "configure"))?
        } else {
            return Err(Error::Invalid(format!(
                "remote {url:?}: expected gs://BUCKET/PREFIX or file:///PATH"
            )));
        };
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
            .map_err(remote_err(&self.url, "list"))?;
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
            Err(e) => Err(remote_err(&self.url, &format!("stat {path}"))(e)),
        }
    }

    /// A whole object.
    pub fn read(&self, path: &str) -> Result<Vec<u8>> {
        Ok(self
            .rt
            .block_on(self.op.read(path))
            .map_err(remote_err(&self.url, &format!("read {path}")))?
            .to_vec())
    }

    /// `len` bytes at `offset` (a ranged read: only what is needed travels).
    pub fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.read_ranges(vec![(path.to_string(), offset, len)])
            .pop()
            .expect("one result per range")
    }

    /// Many ranged reads `(path, offset, len)`, `TRANSFERS` at a time; results in order.
    pub fn read_ranges(&self, ranges: Vec<(String, u64, u64)>) -> Vec<Result<Vec<u8>>> {
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
                        .map_err(remote_err(url, &format!("read {path}")))?
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

    /// Writes a new object; an existing one is never overwritten (objects are
    /// named by their content, so one that exists is not replaced).
    pub fn put_new(&self, path: &str, bytes: Vec<u8>) -> Result<()> {
        self.rt.block_on(put_new(&self.op, &self.url, path, bytes))
    }

    /// Deletes an object.
    pub fn delete(&self, path: &str) -> Result<()> {
        self.rt
            .block_on(self.op.delete(path))
            .map_err(remote_err(&self.url, &format!("delete {path}")))
    }

    /// Uploads local files, `TRANSFERS` at a time, each passed by `check`
    /// first (a corrupt local file is never uploaded); after each upload the
    /// object's size is checked, so a partial object is never counted as sent.
    /// Returns each upload's result (bytes sent), in any order; the first
    /// remote failure (after retries) stops the rest and is returned.
    pub fn upload(
        &self,
        items: Vec<(String, PathBuf)>,
        check: &(dyn Fn(&str, &[u8]) -> Result<()> + Sync),
        progress: &crate::progress::Reporter,
    ) -> Result<Vec<(String, Result<u64>)>> {
        let (op, url) = (&self.op, self.url.as_str());
        self.rt.block_on(async {
            let mut results = stream::iter(items)
                .map(|(path, local)| async move {
                    let r = async {
                        let bytes = std::fs::read(&local).map_err(Error::io("read", &local))?;
                        check(&path, &bytes)?;
                        let len = bytes.len() as u64;
                        put_new(op, url, &path, bytes).await?;
                        let sent = op
                            .stat(&path)
                            .await
                            .map_err(remote_err(url, &format!("stat {path}")))?;
                        if sent.content_length() != len {
                            return Err(Error::corrupt(
                                format!("remote object {path}"),
                                "size differs after upload",
                            ));
                        }
                        progress.advance(len);
                        Ok(len)
                    }
                    .await;
                    (path, r)
                })
                .buffer_unordered(TRANSFERS);
            let mut out = Vec::new();
            while let Some((path, r)) = results.next().await {
                match r {
                    Err(e @ Error::Remote { .. }) => return Err(e),
                    r => out.push((path, r)),
                }
            }
            Ok(out)
        })
    }

    /// Downloads objects into local files (temp name, fsync, rename), checking
    /// each with `check` before it is renamed into place.
    pub fn download(
        &self,
        items: Vec<(String, PathBuf)>,
        tmp_dir: &std::path::Path,
        check: &(dyn Fn(&str, &[u8]) -> Result<()> + Sync),
        progress: &crate::progress::Reporter,
    ) -> Vec<(String, Result<u64>)> {
        let (op, url) = (&self.op, self.url.as_str());
        self.rt.block_on(
            stream::iter(items)
                .map(|(path, local)| async move {
                    let r = async {
                        let bytes = op
                            .read(&path)
                            .await
                            .map_err(remote_err(url, &format!("read {path}")))?
                            .to_vec();
                        check(&path, &bytes)?;
                        if let Some(dir) = local.parent() {
                            crate::store::durable::create_dir_durable(dir)?;
                        }
                        crate::store::durable::write_atomic(tmp_dir, &local, &bytes)?;
                        progress.advance(bytes.len() as u64);
                        Ok(bytes.len() as u64)
                    }
                    .await;
                    (path, r)
                })
                .buffer_unordered(TRANSFERS)
                .collect(),
        )
    }
}

async fn put_new(op: &Operator, url: &str, path: &str, bytes: Vec<u8>) -> Result<()> {
    let opts = WriteOptions {
        content_type: Some("application/octet-stream".into()),
        if_not_exists: true,
        ..Default::default()
    };
    match op.write_options(path, bytes, opts).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == opendal::ErrorKind::ConditionNotMatch => Err(Error::Invalid(
            format!("{path} already exists on {url}; it was not overwritten"),
        )),
        Err(e) => Err(remote_err(url, &format!("upload {path}"))(e)),
    }
}
