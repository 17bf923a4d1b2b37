//! The kernel's side of a mount: FUSE requests answered from the inode
//! table and the store. Read-only: the mount is mounted `ro`, and nothing
//! here writes.

use super::content::{self, Cache, Layout};
use super::inodes::{Body, Inode, Meta, Table};
use crate::error::Error;
use crate::store::{Index, StoreLock, StoreReader};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, Request,
};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long the kernel may keep what it was told: snapshots never change.
const TTL: Duration = Duration::from_secs(3600);

/// One open file: its layout and where the last read ended.
struct Handle {
    layout: Layout,
    next: AtomicU64,
}

pub(crate) struct SnapFs {
    // Field order is drop order: the reader before the index and the lock.
    pub reader: StoreReader<'static>,
    pub _index: Index,
    pub _lock: StoreLock,
    pub table: Table,
    cache: Mutex<Cache>,
    handles: Mutex<HashMap<u64, Arc<Handle>>>,
    next_handle: AtomicU64,
}

impl SnapFs {
    pub fn new(reader: StoreReader<'static>, index: Index, lock: StoreLock, table: Table) -> Self {
        SnapFs {
            reader,
            _index: index,
            _lock: lock,
            table,
            cache: Mutex::default(),
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
            .children(parent.0, &self.reader)
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
                Layout::new(&self.reader, kind, inode.meta.size).map_err(failed("open"))
            }
            _ => Err(Errno::EISDIR),
        });
        match opened {
            Ok(layout) => {
                let fh = self.next_handle.fetch_add(1, Ordering::Relaxed);
                let handle = Arc::new(Handle {
                    layout,
                    next: AtomicU64::new(0),
                });
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
        let sequential = h.next.swap(offset + size as u64, Ordering::Relaxed) == offset;
        let got = content::read(
            &self.reader,
            &self.cache,
            &h.layout,
            offset,
            size as u64,
            sequential,
        );
        match got {
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
        let dir = match self.inode(ino) {
            Ok(d) if d.is_dir() => d,
            Ok(_) => return reply.error(Errno::ENOTDIR),
            Err(e) => return reply.error(e),
        };
        let kids = match self.table.children(ino.0, &self.reader) {
            Ok(k) => k,
            Err(e) => return reply.error(failed("list")(e)),
        };
        // Entry n (from 1) is at offset n; `.` and `..` come first.
        for n in offset as usize..kids.len() + 2 {
            let (i, name, kind) = match n {
                0 => (ino.0, b".".as_slice(), FileType::Directory),
                1 => (dir.parent, b"..".as_slice(), FileType::Directory),
                _ => {
                    let (name, i) = &kids[n - 2];
                    let kind = match self.table.get(*i).map(|c| c.meta) {
                        Some(m) if m.dir => FileType::Directory,
                        Some(m) if m.link => FileType::Symlink,
                        _ => FileType::RegularFile,
                    };
                    (*i, name.as_slice(), kind)
                }
            };
            if reply.add(INodeNo(i), n as u64 + 1, kind, OsStr::from_bytes(name)) {
                break;
            }
        }
        reply.ok();
    }
}
