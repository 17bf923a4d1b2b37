//! restic's snapshot filters, as command-line arguments.

use anyhow::Result;
use std::path::PathBuf;

/// restic's snapshot filters, for commands that work on several snapshots.
#[derive(clap::Args, Default)]
pub struct Filter {
    /// Only snapshots that hold this path (repeatable): a snapshot of a
    /// directory holds everything inside it
    #[arg(long = "path", value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Only snapshots taken on this host (repeatable)
    #[arg(long = "host", value_name = "HOST")]
    hosts: Vec<String>,
    /// Only snapshots with this tag (repeatable: any of them)
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
}

/// The host and tag filters, for commands whose --path means something else.
#[derive(clap::Args, Default)]
pub struct HostTag {
    /// `latest` means the newest snapshot taken on this host (repeatable)
    #[arg(long = "host", value_name = "HOST")]
    hosts: Vec<String>,
    /// `latest` means the newest snapshot with this tag (repeatable)
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
}

impl Filter {
    pub fn selection(&self) -> Result<snap::Selection> {
        Ok(snap::Selection {
            paths: self
                .paths
                .iter()
                .map(std::path::absolute)
                .collect::<std::io::Result<_>>()?,
            hosts: hosts(&self.hosts),
            tags: self.tags.clone(),
        })
    }
}

impl HostTag {
    pub fn selection(&self) -> snap::Selection {
        snap::Selection {
            hosts: hosts(&self.hosts),
            tags: self.tags.clone(),
            ..Default::default()
        }
    }
}

/// The host filter: none when `--host` picks a fleet host's prefix instead.
fn hosts(given: &[String]) -> Vec<String> {
    match super::fleet::picks_host() {
        true => Vec::new(),
        false => given.to_vec(),
    }
}
