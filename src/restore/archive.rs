//! A part of a snapshot as a tar stream (`snap dump ID PATH --tar`): the
//! same files, modes, owners, times, symlinks and hard links a restore
//! writes, in one stream, so it can be piped to `tar x` anywhere. Content
//! is read ahead in batches (decoded on all cores) and never held whole.

use crate::error::{Error, Result};
use crate::format::tree::{Node, NodeKind};
use crate::id::ChunkId;
use crate::store::StoreReader;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;

/// What a tar stream held.
#[derive(Clone, Copy, Debug, Default)]
pub struct TarReport {
    /// Files and database images written.
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Symlinks and hard links.
    pub links: u64,
    /// Content bytes.
    pub bytes: u64,
}

/// Writes `nodes` (named from the top of the archive) and everything under
/// them to `out` as a tar stream, then its end. A file seen again by its
/// identity at take (device, inode) with the same content is written as a
/// hard link to the first, as restore makes it.
pub(crate) fn write_tar(
    reader: &StoreReader,
    nodes: Vec<Node>,
    out: impl Write,
) -> Result<TarReport> {
    let mut tar = tar::Builder::new(out);
    tar.mode(tar::HeaderMode::Complete);
    let mut report = TarReport::default();
    let mut links: HashMap<(u64, u64), (Vec<u8>, ChunkId)> = HashMap::new();
    let mut stack: Vec<(Vec<u8>, Node)> = nodes
        .into_iter()
        .rev()
        .map(|n| (n.name.clone(), n))
        .collect();
    while let Some((path, node)) = stack.pop() {
        crate::cancel::check()?;
        let mut h = header(&node);
        let path_os = OsStr::from_bytes(&path);
        let add = |e: io::Error| Error::io("write the tar stream", "stdout")(e);
        match &node.kind {
            NodeKind::Dir { tree } => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                tar.append_data(&mut h, path_os, io::empty()).map_err(add)?;
                report.dirs += 1;
                let children = reader.tree(tree)?.nodes;
                stack.extend(children.into_iter().rev().map(|c| (child(&path, &c), c)));
            }
            NodeKind::Symlink { target } => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                let target = OsStr::from_bytes(target);
                tar.append_link(&mut h, path_os, target).map_err(add)?;
                report.links += 1;
            }
            NodeKind::File { chunks } => {
                let key = (node.inode != 0).then_some((node.dev, node.inode));
                let content = ChunkId::of_list(chunks);
                let seen = key
                    .and_then(|k| links.get(&k))
                    .filter(|(_, c)| *c == content);
                if let Some((first, _)) = seen {
                    h.set_entry_type(tar::EntryType::Link);
                    h.set_size(0);
                    let first = OsStr::from_bytes(first);
                    tar.append_link(&mut h, path_os, first).map_err(add)?;
                    report.links += 1;
                    continue;
                }
                if let Some(k) = key {
                    links.insert(k, (path.clone(), content));
                }
                let ids = chunks.iter().copied().map(Ok);
                append_file(&mut tar, &mut h, path_os, reader, ids, node.size)?;
                report.files += 1;
                report.bytes += node.size;
            }
            NodeKind::Database(_) | NodeKind::ListedDatabase(_) => {
                let (_, list) = node.kind.database().expect("a database node");
                append_file(
                    &mut tar,
                    &mut h,
                    path_os,
                    reader,
                    reader.units(list),
                    node.size,
                )?;
                report.files += 1;
                report.bytes += node.size;
            }
        }
    }
    tar.into_inner()
        .and_then(|mut out| out.flush())
        .map_err(Error::io("write the tar stream", "stdout"))?;
    Ok(report)
}

/// The path of `node` in the directory at `dir`.
fn child(dir: &[u8], node: &Node) -> Vec<u8> {
    let mut p = dir.to_vec();
    p.push(b'/');
    p.extend_from_slice(&node.name);
    p
}

/// A tar header with a node's mode, owner and time.
fn header(node: &Node) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_mode(node.mode & 0o7777);
    h.set_uid(node.uid as u64);
    h.set_gid(node.gid as u64);
    h.set_mtime(node.mtime.div_euclid(1_000_000_000).max(0) as u64);
    h
}

fn append_file(
    tar: &mut tar::Builder<impl Write>,
    h: &mut tar::Header,
    path: &OsStr,
    reader: &StoreReader,
    ids: impl Iterator<Item = Result<ChunkId>>,
    size: u64,
) -> Result<()> {
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(size);
    let mut content = Content {
        reader,
        ids: ids.peekable(),
        batch: Vec::new().into_iter(),
        current: Vec::new(),
        at: 0,
        error: None,
    };
    let written = tar.append_data(h, path, &mut content);
    if let Some(e) = content.error.take() {
        return Err(e); // the store's error, not the io::Error it became
    }
    written.map_err(Error::io("write the tar stream", "stdout"))
}

/// A file's content as `Read`, fetched a read-ahead batch at a time.
struct Content<'r, I: Iterator<Item = Result<ChunkId>>> {
    reader: &'r StoreReader,
    ids: std::iter::Peekable<I>,
    batch: std::vec::IntoIter<Vec<u8>>,
    current: Vec<u8>,
    at: usize,
    /// The store error a read failed with, kept with its kind.
    error: Option<Error>,
}

impl<I: Iterator<Item = Result<ChunkId>>> Read for Content<'_, I> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.current.len() {
            if let Some(next) = self.batch.next() {
                (self.current, self.at) = (next, 0);
                continue;
            }
            if self.ids.peek().is_none() {
                return Ok(0);
            }
            match self.reader.next_batch(&mut self.ids) {
                Ok((batch, _)) => self.batch = batch.into_iter(),
                Err(e) => {
                    let shown = io::Error::other(e.to_string());
                    self.error = Some(e);
                    return Err(shown);
                }
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
