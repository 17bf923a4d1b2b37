//! The kernel's side of a mount: FUSE requests answered from the inode
//! table and the store. Read-only: the mount is mounted `ro`, and nothing
//! here writes.

use super::content::{self, Handle, Layout, Shared};
use super::inodes::{Body, Children, Inode, Meta, Table};
use crate::error::Error;
use crate::store::Repository;
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyDirectoryPlus,
    ReplyEmpty, ReplyEntry, ReplyOpen, Request,
};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long the kernel may keep what it was told: snapshots never change.
const TTL: Duration = Duration::from_secs(3600);

pub(crate) struct SnapFs {
    shared: Arc<Shared>,
    table: Table,
    handles: Mutex<HashMap<u64, Arc<Handle>>>,
    next_handle: AtomicU64,
}

impl SnapFs {
    pub fn new(reader: Repository, table: Table) -> Self {
        SnapFs {
            shared: Arc::new(Shared {
                reader,
                cache: Mutex::default(),
            }),
            table,
            handles: Mutex::default(),
            next_handle: AtomicU64::new(1),
        }
    }

    fn inode(&self, ino: INodeNo) -> Result<Arc<Inode>, Errno> {
        self.table.get(ino.0).ok_or(Errno::ENOENT)
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<(u64, Arc<Inode>), Errno> {
        let dir = self.inode(parent)?;
        if !dir.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let kids = self
            .table
            .children(parent.0, &self.shared.reader)
            .map_err(failed("list"))?;
        let name = name.as_bytes();
        let at = kids
            .binary_search_by(|(n, _)| n.as_slice().cmp(name))
            .map_err(|_| Errno::ENOENT)?;
        let ino = kids[at].1;
        Ok((ino, self.inode(INodeNo(ino))?))
    }
}

/// Logs a store error (the kernel only hears EIO) and returns EIO.
fn failed(what: &'static str) -> impl Fn(Error) -> Errno {
    move |e| {
        eprintln!("snap: mount: {what}: {e}");
        Errno::EIO
    }
}

fn time(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

fn attr(ino: u64, m: &Meta) -> FileAttr {
    let kind = if m.dir {
        FileType::Directory
    } else if m.link {
        FileType::Symlink
    } else {
        FileType::RegularFile
    };
    FileAttr {
        ino: INodeNo(ino),
        size: m.size,
        blocks: m.size.div_ceil(512),
        atime: time(m.mtime),
        mtime: time(m.mtime),
        ctime: time(m.ctime),
        crtime: time(m.mtime),
        kind,
        perm: (m.mode & 0o7777) as u16,
        nlink: if m.dir { 2 } else { 1 },
        uid: m.uid,
        gid: m.gid,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

impl Filesystem for SnapFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Listings come with attributes where the kernel can take them.
        let _ = config.add_capabilities(InitFlags::FUSE_DO_READDIRPLUS);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.child(parent, name) {
            Ok((ino, inode)) => reply.entry(&TTL, &attr(ino, &inode.meta), Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.inode(ino) {
            Ok(inode) => reply.attr(&TTL, &attr(ino.0, &inode.meta)),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.inode(ino).map(|i| match &i.body {
            Body::Link(target) => Ok(target.clone()),
            _ => Err(Errno::EINVAL),
        }) {
            Ok(Ok(target)) => reply.data(&target),
            Ok(Err(e)) | Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.0 & libc::O_ACCMODE != libc::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        let opened = self.inode(ino).and_then(|inode| match &inode.body {
            Body::Content(kind) => {
                Layout::new(&self.shared.reader, kind, inode.meta.size).map_err(failed("open"))
            }
            _ => Err(Errno::EISDIR),
        });
        match opened {
            Ok(layout) => {
                let fh = self.next_handle.fetch_add(1, Ordering::Relaxed);
                let handle = Arc::new(Handle::new(layout));
                self.handles.lock().expect("handles").insert(fh, handle);
                reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE);
            }
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(h) = self.handles.lock().expect("handles").get(&fh.0).cloned() else {
            return reply.error(Errno::EBADF);
        };
        match content::read(&self.shared, &h, offset, size as u64) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(failed("read")(e)),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.handles.lock().expect("handles").remove(&fh.0);
        reply.ok();
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let (dir, kids) = match self.listing(ino) {
            Ok(l) => l,
            Err(e) => return reply.error(e),
        };
        for n in offset as usize..kids.len() + 2 {
            let (i, name) = entry(&dir, ino.0, &kids, n);
            let kind = match self.table.get(i).map(|c| c.meta) {
                Some(m) => attr(i, &m).kind,
                None => FileType::RegularFile,
            };
            if reply.add(INodeNo(i), n as u64 + 1, kind, OsStr::from_bytes(name)) {
                break;
            }
        }
        reply.ok();
    }

    /// Entries with their attributes, so `ls -l` of a large directory
    /// needs no lookup per entry.
    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let (dir, kids) = match self.listing(ino) {
            Ok(l) => l,
            Err(e) => return reply.error(e),
        };
        for n in offset as usize..kids.len() + 2 {
            let (i, name) = entry(&dir, ino.0, &kids, n);
            let Some(child) = self.table.get(i) else {
                continue;
            };
            let a = attr(i, &child.meta);
            if reply.add(
                INodeNo(i),
                n as u64 + 1,
                OsStr::from_bytes(name),
                &TTL,
                &a,
                Generation(0),
            ) {
                break;
            }
        }
        reply.ok();
    }
}

impl SnapFs {
    /// A directory and its children.
    fn listing(&self, ino: INodeNo) -> Result<(Arc<Inode>, Children), Errno> {
        let dir = self.inode(ino)?;
        if !dir.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let kids = self
            .table
            .children(ino.0, &self.shared.reader)
            .map_err(failed("list"))?;
        Ok((dir, kids))
    }
}

/// Entry `n` of a directory listing: `.` and `..` first, then the children
/// (entry n is at offset n + 1).
fn entry<'k>(dir: &Inode, ino: u64, kids: &'k Children, n: usize) -> (u64, &'k [u8]) {
    match n {
        0 => (ino, b"."),
        1 => (dir.parent, b".."),
        _ => {
            let (name, i) = &kids[n - 2];
            (*i, name.as_slice())
        }
    }
}
