//! One opendal operator per remote URL scheme (`gs://`, `s3://`,
//! `azblob://`, `file://`), configured from the environment the way each
//! cloud's own tools are; the layers (timeouts, retries, a concurrency
//! limit) are added by `Remote::open`.

use super::ops::{remote_err, Op};
use crate::error::{Error, Result};
use opendal::Operator;

/// The operator for `url` (in its canonical spelling).
pub(super) fn operator(url: &str) -> Result<Operator> {
    let op = if let Some(rest) = url.strip_prefix("gs://") {
        gcs(url, rest)?
    } else if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = bucket_and_prefix(url, rest)?;
        let mut b = opendal::services::S3::default()
            .bucket(bucket)
            .root(&prefix)
            .region(&std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()));
        if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") {
            b = b.endpoint(&endpoint);
        }
        Operator::new(b).map_err(remote_err(url, Op::Configure, ""))?
    } else if let Some(rest) = url.strip_prefix("azblob://") {
        let (container, prefix) = bucket_and_prefix(url, rest)?;
        let conn = std::env::var("AZURE_STORAGE_CONNECTION_STRING")
            .map_err(|_| super::ops::no_credential(url))?;
        let b = opendal::services::Azblob::from_connection_string(&conn)
            .map_err(remote_err(url, Op::Configure, ""))?
            .container(container)
            .root(&prefix);
        Operator::new(b).map_err(remote_err(url, Op::Configure, ""))?
    } else if let Some(path) = url.strip_prefix("file://") {
        file(url, path)?
    } else {
        return Err(Error::Invalid(format!(
            "remote {url:?}: expected gs://BUCKET/PREFIX, s3://BUCKET/PREFIX, azblob://CONTAINER/PREFIX or file:///PATH"
        )));
    };
    Ok(op)
}

/// A GCS operator for `gs://BUCKET/PREFIX` (`rest` after the scheme):
/// against `STORAGE_EMULATOR_HOST` when set, with an access token, a
/// credentials file, or the machine's default credentials.
fn gcs(url: &str, rest: &str) -> Result<Operator> {
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
    let token = std::env::var("GOOGLE_OAUTH_ACCESS_TOKEN").ok();
    if let Ok(host) = std::env::var("STORAGE_EMULATOR_HOST") {
        let endpoint = if host.starts_with("http") {
            host
        } else {
            format!("http://{host}")
        };
        b = b
            .endpoint(&endpoint)
            .disable_vm_metadata()
            .disable_config_load();
        b = match token {
            Some(t) => b.token(t),
            None => b.skip_signature(),
        };
    } else if let Some(t) = token {
        b = b.token(t);
    } else if let Ok(path) = std::env::var("GOOGLE_APPLICATION_CREDENTIALS") {
        b = b.credential_path(&path);
    }
    Operator::new(b).map_err(remote_err(url, Op::Configure, ""))
}

/// A local directory as a remote (`file:///ABSOLUTE/PATH`). Writes go to a
/// temporary file and are renamed into place, so a partial object never
/// appears under its final name.
fn file(url: &str, path: &str) -> Result<Operator> {
    if !path.starts_with('/') {
        return Err(Error::Invalid(format!(
            "remote {url}: use file:///ABSOLUTE/PATH"
        )));
    }
    let b = opendal::services::Fs::default()
        .root(path)
        .atomic_write_dir(&format!("{}/.tmp", path.trim_end_matches('/')));
    Operator::new(b).map_err(remote_err(url, Op::Configure, ""))
}

/// `BUCKET/PREFIX` split, the prefix as an opendal root.
fn bucket_and_prefix<'a>(url: &str, rest: &'a str) -> Result<(&'a str, String)> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(Error::Invalid(format!(
            "remote {url}: no bucket (SCHEME://BUCKET/PREFIX)"
        )));
    }
    Ok((bucket, format!("/{}", prefix.trim_matches('/'))))
}
