//! Remote gc of one store's remote (a fleet host's prefix, or a remote of
//! its own) with its catalogs pruned to match.

use super::compact::{compact, Pruned};
use crate::error::Result;
use crate::gc::{GcOptions, GcReport};
use crate::mirror::{gc_remote, layout, Opened, Remote};
use crate::store::Store;
use age::x25519::Identity;
use std::sync::Arc;

/// Remote gc (`mirror::gc_remote`), then a compaction of the catalogs
/// without the records it let go. The catalogs are listed before gc lists
/// the records, so an entry is dropped only when its catalog was there
/// before the listing and gc did not keep its record: a record created
/// since (and its catalog) is never dropped.
pub fn prune(
    remote: Arc<Remote>,
    opened: &Opened,
    local: Option<&Store>,
    opts: &GcOptions,
    identities: &[Identity],
) -> Result<GcReport> {
    let listed = remote.list(layout::CATALOGS)?;
    let report = gc_remote(remote.clone(), opened, local, opts)?;
    if !opts.dry_run && !listed.is_empty() {
        let pruned = Pruned {
            listed: listed.into_iter().map(|(k, _)| k).collect(),
            kept: report
                .plan
                .decisions
                .iter()
                .filter(|d| d.keep)
                .map(|d| d.id.clone())
                .collect(),
        };
        compact(&remote, identities, Some(&pruned))?;
    }
    Ok(report)
}
