//! The library's one error type, grouped by how a caller reacts to it.

use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system call failed on a path: retry after fixing the cause.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Stored data does not match its id or its format: never used silently.
    #[error("corrupt {what}: {detail}")]
    Corrupt { what: String, detail: String },
    /// A snapshot, chunk, pack or path that was asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Another process holds the store.
    #[error("store {} is busy: {holder} (waited {waited_secs} s; pass a longer --lock-wait)", store.display())]
    Locked {
        store: PathBuf,
        holder: String,
        waited_secs: u64,
    },
    /// The request cannot be carried out as asked; nothing was changed.
    #[error("{0}")]
    Invalid(String),
    /// The redb index failed; `snap repair index` rebuilds it from packs.
    #[error("index: {0}")]
    Index(String),
    /// A remote (bucket or directory) failed; `retryable` when the failure is
    /// temporary (network, throttling) and a later run may succeed.
    #[error("remote: {message}{}", if *retryable { " (temporary; run again to resume)" } else { "" })]
    Remote { message: String, retryable: bool },
    /// SQLite refused or failed an operation on a database.
    #[error("sqlite {}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
}

impl Error {
    pub fn io(op: &'static str, path: impl AsRef<Path>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.as_ref().to_path_buf();
        move |source| Error::Io { op, path, source }
    }

    pub fn corrupt(what: impl Into<String>, detail: impl Into<String>) -> Error {
        Error::Corrupt {
            what: what.into(),
            detail: detail.into(),
        }
    }

    pub fn sqlite(path: impl AsRef<Path>) -> impl FnOnce(rusqlite::Error) -> Error {
        let path = path.as_ref().to_path_buf();
        move |source| Error::Sqlite { path, source }
    }

    /// A copy of this error for each of several callers that share one failure.
    pub fn duplicate(&self) -> Error {
        match self {
            Error::Io { op, path, source } => Error::Io {
                op,
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            Error::Corrupt { what, detail } => Error::corrupt(what.clone(), detail.clone()),
            Error::NotFound(s) => Error::NotFound(s.clone()),
            Error::Invalid(s) => Error::Invalid(s.clone()),
            Error::Index(s) => Error::Index(s.clone()),
            Error::Remote { message, retryable } => Error::Remote {
                message: message.clone(),
                retryable: *retryable,
            },
            other => Error::Invalid(other.to_string()),
        }
    }

    /// Process exit code for this error (documented in the README).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Invalid(_) | Error::NotFound(_) => 2,
            Error::Corrupt { .. } => 3,
            Error::Locked { .. } => 4,
            Error::Remote { .. } => 6,
            Error::Io { .. } | Error::Index(_) | Error::Sqlite { .. } => 1,
        }
    }
}

macro_rules! index_error {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::Index(e.to_string())
            }
        }
    )*};
}
index_error!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
