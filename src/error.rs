//! The library's one error type, grouped by how a caller reacts to it.

use std::path::{Path, PathBuf};

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, grouped by how a caller reacts; every
/// variant keeps what failed, on what, and the underlying cause.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system call failed on a path: retry after fixing the cause.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done ("read", "rename into place", …).
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// Stored data does not match its id or its format: never used silently.
    #[error("corrupt {what}: {detail}")]
    Corrupt {
        /// What is corrupt: a chunk, pack or record, by id or path.
        what: String,
        /// How it was found to be.
        detail: String,
    },
    /// A snapshot, chunk, pack or path that was asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Another process holds the store.
    #[error("store {} is busy: {holder} (waited {waited_secs} s)", store.display())]
    Locked {
        /// The store.
        store: PathBuf,
        /// Who holds it, as the holder wrote it (command, pid, host, since when).
        holder: String,
        /// How long this call waited.
        waited_secs: u64,
    },
    /// The request cannot be carried out as asked; nothing was changed.
    #[error("{0}")]
    Invalid(String),
    /// Refused unless an option of the request allows it (`force`,
    /// `allow_missing`, `skip_unreadable`); nothing was changed.
    #[error("{message}")]
    Refused {
        /// What was refused, and why.
        message: String,
        /// The option (a field of the options struct) that allows it.
        option: &'static str,
    },
    /// The redb index failed (it is a cache: a rebuild from the packs
    /// replaces it). Keeps redb's error as its cause.
    #[error("index: {0}")]
    Index(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A remote (bucket or directory) failed; `retryable` when the failure is
    /// temporary (network, throttling) and a later run may succeed.
    #[error("remote: {message}{}", if *retryable { " (temporary; run again to resume)" } else { "" })]
    Remote {
        /// What failed, on which remote and object.
        message: String,
        /// Whether a later run may succeed.
        retryable: bool,
        /// The remote client's error, when there is one.
        #[source]
        source: Option<std::sync::Arc<dyn std::error::Error + Send + Sync>>,
    },
    /// The remote refused the credential for an operation (HTTP 401/403):
    /// running again will not help; the credential needs `permission`.
    #[error(
        "permission denied for {operation} on {object} at {url}: the credential needs {permission}"
    )]
    Denied {
        /// What snap was doing ("create", "read", "list", "delete").
        operation: String,
        /// The object (or prefix) it was done on.
        object: String,
        /// The remote.
        url: String,
        /// The permission that would allow it (GCS names).
        permission: String,
    },
    /// No credential for a remote was found where its service's clients
    /// look for one: running again will not help until one is provided.
    #[error("no credential for {url} was found; snap looks in {looked}")]
    NoCredential {
        /// The remote.
        url: String,
        /// Where credentials are looked for, in order.
        looked: String,
    },
    /// Encrypted data cannot be opened: no identity was given, or the one
    /// given is not a recipient of it.
    #[error("{0}")]
    Key(String),
    /// A stop was asked for (SIGINT, SIGTERM) and the operation stopped at
    /// a safe point.
    #[error("interrupted")]
    Interrupted,
    /// An operation failed or was interrupted part way; `left` says what
    /// it undid, what is left, and how to finish or undo it.
    #[error("{cause}; {left}")]
    Stopped {
        /// Why it stopped.
        #[source]
        cause: Box<Error>,
        /// What is left, and what to do about it.
        left: String,
    },
    /// A bug in snap: a thread of its own panicked. Not bad input, not
    /// damage; nothing it was writing was recorded (the durability order
    /// holds), and the message is worth a bug report.
    #[error("internal error: {0} (a bug in snap; nothing half-done was recorded)")]
    Internal(String),
    /// SQLite refused or failed an operation on a database.
    #[error("sqlite {}: {source}", path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
}

impl Error {
    /// An `Io` error maker for `map_err`.
    pub fn io(op: &'static str, path: impl AsRef<Path>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.as_ref().to_path_buf();
        move |source| Error::Io { op, path, source }
    }

    /// A `Corrupt` error.
    pub fn corrupt(what: impl Into<String>, detail: impl Into<String>) -> Error {
        Error::Corrupt {
            what: what.into(),
            detail: detail.into(),
        }
    }

    /// A `Sqlite` error maker for `map_err`.
    pub fn sqlite(path: impl AsRef<Path>) -> impl FnOnce(rusqlite::Error) -> Error {
        let path = path.as_ref().to_path_buf();
        move |source| Error::Sqlite { path, source }
    }

    /// A copy of this error for each of several callers that share one failure.
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::Io { op, path, source } => Error::Io {
                op,
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            Error::Corrupt { what, detail } => Error::corrupt(what.clone(), detail.clone()),
            Error::NotFound(s) => Error::NotFound(s.clone()),
            Error::Invalid(s) => Error::Invalid(s.clone()),
            Error::Refused { message, option } => Error::Refused {
                message: message.clone(),
                option,
            },
            Error::Index(e) => Error::Index(e.to_string().into()),
            Error::Remote {
                message,
                retryable,
                source,
            } => Error::Remote {
                message: message.clone(),
                retryable: *retryable,
                source: source.clone(),
            },
            Error::Denied {
                operation,
                object,
                url,
                permission,
            } => Error::Denied {
                operation: operation.clone(),
                object: object.clone(),
                url: url.clone(),
                permission: permission.clone(),
            },
            Error::Key(s) => Error::Key(s.clone()),
            Error::NoCredential { url, looked } => Error::NoCredential {
                url: url.clone(),
                looked: looked.clone(),
            },
            Error::Interrupted => Error::Interrupted,
            Error::Stopped { cause, left } => Error::Stopped {
                cause: Box::new(cause.duplicate()),
                left: left.clone(),
            },
            Error::Locked {
                store,
                holder,
                waited_secs,
            } => Error::Locked {
                store: store.clone(),
                holder: holder.clone(),
                waited_secs: *waited_secs,
            },
            Error::Internal(s) => Error::Internal(s.clone()),
            // rusqlite's error cannot be cloned: its message, as a SQLite
            // error still (the kind, and so the exit code, is kept).
            Error::Sqlite { path, source } => Error::Sqlite {
                path: path.clone(),
                source: match source {
                    rusqlite::Error::SqliteFailure(e, m) => {
                        rusqlite::Error::SqliteFailure(*e, m.clone())
                    }
                    other => rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
                        Some(other.to_string()),
                    ),
                },
            },
        }
    }

    /// Process exit code for this error (documented in the README).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Invalid(_) | Error::NotFound(_) | Error::Refused { .. } | Error::Key(_) => 2,
            Error::Corrupt { .. } => 3,
            Error::Locked { .. } => 4,
            Error::Remote { .. } => 6,
            Error::Denied { .. } | Error::NoCredential { .. } => 8,
            Error::Io { .. } | Error::Index(_) | Error::Sqlite { .. } | Error::Internal(_) => 1,
            Error::Interrupted => 130,
            Error::Stopped { cause, .. } => cause.exit_code(),
        }
    }

    /// This error, with what was undone or is left after it.
    pub fn stopped(self, left: impl Into<String>) -> Error {
        Error::Stopped {
            cause: Box::new(self),
            left: left.into(),
        }
    }
}

macro_rules! index_error {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::Index(Box::new(e))
            }
        }
    )*};
}
impl From<std::io::Error> for Error {
    /// An I/O error with no path to name (prefer `Error::io`, which keeps one).
    fn from(source: std::io::Error) -> Self {
        Error::Io {
            op: "I/O",
            path: PathBuf::new(),
            source,
        }
    }
}

index_error!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::CompactionError
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duplicate_keeps_the_kind_and_the_exit_code() {
        let all = [
            Error::io("read", "/x")(std::io::Error::other("disk")),
            Error::Locked {
                store: "/s".into(),
                holder: "gc".into(),
                waited_secs: 3,
            },
            Error::Internal("a thread panicked".into()),
            Error::Sqlite {
                path: "/db".into(),
                source: rusqlite::Error::InvalidQuery,
            },
            Error::corrupt("pack", "bad"),
        ];
        for e in all {
            let d = e.duplicate();
            assert_eq!(d.exit_code(), e.exit_code(), "{e}");
            assert_eq!(
                std::mem::discriminant(&d),
                std::mem::discriminant(&e),
                "{e}"
            );
        }
        // A panic is a bug, not bad input.
        assert_eq!(Error::Internal("x".into()).exit_code(), 1);
    }
}
