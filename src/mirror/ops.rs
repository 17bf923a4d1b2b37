//! What snap does to remote objects, and how a failure of it is reported:
//! a refused credential names the permission it lacks.

use crate::error::Error;

/// What snap does to an object, for error messages and permissions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Set up the client.
    Configure,
    /// Create a new object.
    Create,
    /// Read an object (or part of one).
    Read,
    /// Stat an object.
    Stat,
    /// List objects under a prefix.
    List,
    /// Delete an object.
    Delete,
}

impl Op {
    fn verb(self) -> &'static str {
        match self {
            Op::Configure => "configure",
            Op::Create => "create",
            Op::Read => "read",
            Op::Stat => "stat",
            Op::List => "list",
            Op::Delete => "delete",
        }
    }

    /// The permission a credential needs for it, in the words of the
    /// service behind `url`.
    fn permission(self, url: &str) -> &'static str {
        let (create, get, list, delete) = if url.starts_with("s3://") {
            (
                "s3:PutObject",
                "s3:GetObject",
                "s3:ListBucket",
                "s3:DeleteObject",
            )
        } else if url.starts_with("azblob://") {
            (
                "create (SAS permission c, or role Storage Blob Data Contributor)",
                "read (SAS permission r, or role Storage Blob Data Reader)",
                "list (SAS permission l, or role Storage Blob Data Reader)",
                "delete (SAS permission d, or role Storage Blob Data Contributor)",
            )
        } else {
            (
                "storage.objects.create (role Storage Object Creator)",
                "storage.objects.get (role Storage Object Viewer)",
                "storage.objects.list (role Storage Object Viewer)",
                "storage.objects.delete (role Storage Object User)",
            )
        };
        match self {
            Op::Configure => "valid credentials",
            Op::Create => create,
            Op::Read | Op::Stat => get,
            Op::List => list,
            Op::Delete => delete,
        }
    }
}

/// Where credentials for `url` are looked for, in order.
fn credential_sources(url: &str) -> &'static str {
    if url.starts_with("s3://") {
        "$AWS_ACCESS_KEY_ID and $AWS_SECRET_ACCESS_KEY, ~/.aws/credentials (profile $AWS_PROFILE), $AWS_WEB_IDENTITY_TOKEN_FILE, then the instance metadata service"
    } else if url.starts_with("azblob://") {
        "$AZURE_STORAGE_CONNECTION_STRING (an account key or a SAS)"
    } else {
        "$GOOGLE_APPLICATION_CREDENTIALS (a service account key file), $GOOGLE_OAUTH_ACCESS_TOKEN, then the VM's metadata server"
    }
}

/// No credential for `url` was found.
pub(crate) fn no_credential(url: &str) -> Error {
    Error::NoCredential {
        url: url.to_string(),
        looked: credential_sources(url).to_string(),
    }
}

/// The innermost cause of an error: what actually went wrong ("Connection
/// refused"), which opendal puts at the end of a long context.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Maps opendal's error for `op` on `object`: a refused credential becomes
/// `Error::Denied` and a missing one `Error::NoCredential` (never "run it
/// again"), the rest `Error::Remote`, its message leading with the root cause.
pub(crate) fn remote_err(url: &str, op: Op, object: &str) -> impl FnOnce(opendal::Error) -> Error {
    let (url, object) = (url.to_string(), object.to_string());
    move |e| {
        let text = format!("{e} {e:?}");
        if text.contains("failed to load signing credential") {
            return no_credential(&url);
        }
        let denied = e.kind() == opendal::ErrorKind::PermissionDenied
            || e.to_string().contains("status: 401");
        if denied {
            return Error::Denied {
                operation: op.verb().into(),
                object,
                permission: op.permission(&url).into(),
                url,
            };
        }
        Error::Remote {
            retryable: e.is_temporary(),
            message: format!("{} {object} on {url}: {}", op.verb(), root_cause(&e)),
            source: Some(std::sync::Arc::new(e)),
        }
    }
}
