//! Pages in memory from the copying thread to the storing thread, with no
//! image file between them: a bounded channel of blocks, so the copy waits
//! for the storing once `BLOCKS` blocks are in flight.
//!
//! Invariants: the reader gets every byte written, in order, and sees the
//! end only after the writer's `finish`; a writer dropped unfinished (a copy
//! that failed or panicked) is an error to the reader, and a reader dropped
//! early (a store that failed) is an error to the writer, so neither side
//! ever waits for the other forever.

use std::io::{Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// Bytes per block handed over.
const BLOCK: usize = 1 << 20;
/// Blocks in flight: the pipe holds at most this many MiB.
const BLOCKS: usize = 2;

enum Msg {
    PageSize(u32),
    Bytes(Vec<u8>),
    End,
}

pub fn pipe() -> (PipeWriter, PipeReader) {
    let (tx, rx) = sync_channel(BLOCKS);
    (
        PipeWriter {
            tx,
            buf: Vec::with_capacity(BLOCK),
        },
        PipeReader {
            rx,
            cur: Vec::new(),
            pos: 0,
            ended: false,
        },
    )
}

/// The copy's side.
pub(crate) struct PipeWriter {
    tx: SyncSender<Msg>,
    buf: Vec<u8>,
}

fn stopped() -> std::io::Error {
    std::io::Error::other("the storing of the pages stopped")
}

impl PipeWriter {
    /// Sends the page size (before the first page is written).
    pub(crate) fn set_page_size(&mut self, size: u32) -> std::io::Result<()> {
        self.tx.send(Msg::PageSize(size)).map_err(|_| stopped())
    }

    /// Ends the copy as a success: the reader sees the end after every byte.
    pub fn finish(mut self) -> std::io::Result<()> {
        self.flush()?;
        self.tx.send(Msg::End).map_err(|_| stopped())
    }
}

impl Write for PipeWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(BLOCK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == BLOCK {
            self.flush()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(BLOCK));
        self.tx.send(Msg::Bytes(full)).map_err(|_| stopped())
    }
}

/// The store's side.
pub(crate) struct PipeReader {
    rx: Receiver<Msg>,
    cur: Vec<u8>,
    pos: usize,
    ended: bool,
}

fn failed() -> std::io::Error {
    std::io::Error::other("the copy of the pages failed")
}

impl PipeReader {
    /// The copy's page size; `None` if the copy ended first.
    pub fn page_size(&mut self) -> Option<u32> {
        match self.rx.recv() {
            Ok(Msg::PageSize(size)) => Some(size),
            _ => None,
        }
    }
}

impl Read for PipeReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.cur.len() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Msg::Bytes(b)) => (self.cur, self.pos) = (b, 0),
                Ok(Msg::End) => self.ended = true,
                Ok(Msg::PageSize(_)) | Err(_) => return Err(failed()),
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the reader reads while `copy` writes to the pipe.
    fn read_while(copy: impl FnOnce(PipeWriter) + Send) -> std::io::Result<Vec<u8>> {
        let (w, mut r) = pipe();
        std::thread::scope(|s| {
            s.spawn(|| copy(w));
            let mut got = Vec::new();
            r.read_to_end(&mut got).map(|_| got)
        })
    }

    #[test]
    fn the_reader_gets_every_byte_then_the_end() {
        let want: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let (mut w, mut r) = pipe();
        let got = std::thread::scope(|s| {
            let reader = s.spawn(move || {
                assert_eq!(r.page_size(), Some(4096));
                let mut got = Vec::new();
                r.read_to_end(&mut got).map(|_| got)
            });
            w.set_page_size(4096).unwrap();
            for piece in want.chunks(7_000) {
                w.write_all(piece).unwrap();
            }
            w.finish().unwrap();
            reader.join().unwrap()
        });
        assert_eq!(got.unwrap(), want);
    }

    #[test]
    fn a_copy_that_never_finishes_is_an_error_to_the_reader() {
        let got = read_while(|mut w| w.write_all(&[1; 5000]).unwrap());
        assert!(got.is_err());
        let got = read_while(|mut w| {
            w.write_all(&[1; 5000]).unwrap();
            w.finish().unwrap();
        });
        assert_eq!(got.unwrap().len(), 5000);
        let (w, mut r) = pipe();
        drop(w);
        assert_eq!(r.page_size(), None);
    }

    #[test]
    fn a_reader_that_stops_is_an_error_to_the_writer() {
        let (mut w, r) = pipe();
        drop(r);
        // Fills the channel's blocks, then fails instead of waiting.
        let written = (0..BLOCKS + 2).try_for_each(|_| w.write_all(&vec![0; BLOCK]));
        assert!(written.is_err());
    }
}
