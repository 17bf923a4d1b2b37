//! An image file written by one thread and read by another as it grows: the
//! capture copies pages into it while the page units already copied are
//! stored, so the copy (one core, SQLite) overlaps hashing and compression.
//!
//! Invariant: the reader never reads past what the writer has published
//! (bytes the writer's `write` returned for), and it sees the end only when
//! the writer says the copy succeeded; a failed copy is an error to it.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::sync::{Condvar, Mutex};

#[derive(Default)]
struct State {
    len: u64,
    page_size: Option<u32>,
    /// Set once: whether the copy succeeded.
    done: Option<bool>,
}

/// What the copying thread and the storing thread share.
#[derive(Default)]
pub(crate) struct Growing {
    state: Mutex<State>,
    changed: Condvar,
}

impl Growing {
    fn update(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.state.lock().expect("image state"));
        self.changed.notify_all();
    }

    /// Waits until `ready` holds, and returns what `get` reads then.
    fn wait<T>(&self, ready: impl Fn(&State) -> bool, get: impl Fn(&State) -> T) -> T {
        let mut s = self.state.lock().expect("image state");
        while !ready(&s) {
            s = self.changed.wait(s).expect("image state");
        }
        get(&s)
    }

    /// The copy's page size, once known; `None` if the copy ended first.
    pub fn page_size(&self) -> Option<u32> {
        self.wait(
            |s| s.page_size.is_some() || s.done.is_some(),
            |s| s.page_size,
        )
    }

    /// Ends the copy: the reader sees the end (`ok`) or an error. The
    /// first call decides.
    pub fn finish(&self, ok: bool) {
        self.update(|s| {
            s.done.get_or_insert(ok);
        });
    }

    /// Ends the copy as failed when dropped unfinished (a copy that
    /// panicked), so the reader never waits for bytes that will not come.
    pub(crate) fn end_on_drop(&self) -> EndOnDrop<'_> {
        EndOnDrop(self)
    }

    pub fn writer<'a>(&'a self, file: &'a File) -> GrowingWriter<'a> {
        GrowingWriter { file, g: self }
    }

    pub fn reader<'a>(&'a self, file: &'a File) -> GrowingReader<'a> {
        GrowingReader {
            file,
            pos: 0,
            g: self,
        }
    }
}

/// Ends a copy as failed unless it was finished first.
pub(crate) struct EndOnDrop<'a>(&'a Growing);

impl Drop for EndOnDrop<'_> {
    fn drop(&mut self) {
        self.0.finish(false);
    }
}

/// The copy's side: appends to the file and publishes each write.
pub(crate) struct GrowingWriter<'a> {
    file: &'a File,
    g: &'a Growing,
}

impl GrowingWriter<'_> {
    /// Publishes the page size (before the first page is written).
    pub(crate) fn set_page_size(&self, size: u32) {
        self.g.update(|s| s.page_size = Some(size));
    }
}

impl Write for GrowingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = (&mut &*self.file).write(buf)?;
        self.g.update(|s| s.len += n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The store's side: reads what was published, waiting for more.
pub(crate) struct GrowingReader<'a> {
    file: &'a File,
    pos: u64,
    g: &'a Growing,
}

impl Read for GrowingReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let pos = self.pos;
        let (len, done) = self
            .g
            .wait(|s| s.len > pos || s.done.is_some(), |s| (s.len, s.done));
        if len == pos {
            return match done {
                Some(true) => Ok(0),
                _ => Err(std::io::Error::other("the copy of the image failed")),
            };
        }
        let n = out.len().min((len - pos) as usize);
        let n = self.file.read_at(&mut out[..n], pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reader_gets_every_published_byte_then_the_end() {
        let file = tempfile::tempfile().unwrap();
        let g = Growing::default();
        let want: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let got = std::thread::scope(|s| {
            let reader = s.spawn(|| {
                assert_eq!(g.page_size(), Some(4096));
                let mut got = Vec::new();
                g.reader(&file).read_to_end(&mut got).map(|_| got)
            });
            let mut w = g.writer(&file);
            w.set_page_size(4096);
            for piece in want.chunks(7_000) {
                w.write_all(piece).unwrap();
            }
            g.finish(true);
            reader.join().unwrap()
        });
        assert_eq!(got.unwrap(), want);
    }

    /// What a reader reads while `copy` writes 5,000 bytes and ends the copy.
    fn read_while(copy: impl FnOnce(&Growing)) -> std::io::Result<Vec<u8>> {
        let file = tempfile::tempfile().unwrap();
        let g = Growing::default();
        std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let mut got = Vec::new();
                g.reader(&file).read_to_end(&mut got).map(|_| got)
            });
            g.writer(&file).write_all(&[1; 5000]).unwrap();
            copy(&g);
            reader.join().unwrap()
        })
    }

    #[test]
    fn a_copy_that_never_finishes_ends_as_failed() {
        assert!(read_while(|g| drop(g.end_on_drop())).is_err());
        // A finished copy stays finished.
        let got = read_while(|g| {
            g.finish(true);
            drop(g.end_on_drop());
        });
        assert_eq!(got.unwrap().len(), 5000);
    }

    #[test]
    fn a_failed_copy_is_an_error_to_the_reader() {
        assert!(read_while(|g| g.finish(false)).is_err());
        let g = Growing::default();
        g.finish(false);
        assert_eq!(g.page_size(), None);
    }
}
