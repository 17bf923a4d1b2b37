//! The outcome of a whole verify, noted in the store for the catalogs.

use super::{VerifyOptions, VerifyReport};
use crate::error::Result;
use crate::store::Store;

/// Notes a whole verify of this store (what the mirror's catalogs carry).
pub(super) fn note(store: &Store, opts: &VerifyOptions, report: &VerifyReport) -> Result<()> {
    // A store on read-only media is verified all the same; the outcome is
    // then not noted (its catalogs keep the last one noted).
    if !store.is_view() && opts.snapshots.is_empty() && opts.selection.is_empty() {
        let noted = store.note_verified(&crate::store::Verified {
            time: chrono::Local::now().fixed_offset(),
            snapshots: report.snapshots,
            problems: report.problems.len() as u64,
            read_data: opts.read_data,
        });
        match noted {
            Err(crate::Error::Io { source, .. })
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied
                ) => {}
            r => r?,
        }
    }
    Ok(())
}
