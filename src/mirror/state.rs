//! What a store knows of a remote it mirrors to, kept locally so that
//! `mirror` never has to read the bucket (a create-only credential suffices):
//!
//! ```text
//! STORE/mirror/recipients            age recipients new objects are sealed to
//! STORE/mirror/<16 hex>/naming-key   this remote's naming key (hex); the
//!                                    tag is of the remote's canonical URL
//! STORE/mirror/<16 hex>/url          that URL (for people)
//! STORE/mirror/<16 hex>/sent         one line per object created there:
//!                                    `c` config, `k KEY` keys, `p ID` pack, `r ID` record
//! ```
//!
//! Invariant: a line is written only after its object was created (or found
//! there). A record once sent is never sent again, so a record the remote's
//! own retention forgot is not brought back by the next mirror.

use super::crypt;
use crate::error::{Error, Result};
use crate::store::{durable, Store};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// The state of one remote.
pub(crate) struct State {
    dir: PathBuf,
    url: String,
    tmp: PathBuf,
    pub sent: BTreeSet<String>,
    pub naming: [u8; 32],
    /// Whether `naming` is on disk yet (it is written before anything named
    /// with it is created, and not before the remote answered once).
    key_saved: bool,
}

/// The store's recipients file.
pub fn recipients_path(store: &Store) -> PathBuf {
    store.root().join("mirror").join("recipients")
}

/// The store's recipients (`age1…`), empty when none were added.
pub fn recipients(store: &Store) -> Result<Vec<String>> {
    let path = recipients_path(store);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let parsed = crypt::parse_recipients(&text, &path.display().to_string())?;
            Ok(parsed.iter().map(|r| r.to_string()).collect())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io("read", &path)(e)),
    }
}

/// Replaces the store's recipients (new objects are sealed to these only).
pub fn set_recipients(store: &Store, list: &[String]) -> Result<()> {
    let path = recipients_path(store);
    durable::create_dir_durable(path.parent().expect("in mirror/"))?;
    let mut text = String::from("# age recipients: objects sent to remotes are sealed to these\n");
    for r in list {
        text.push_str(r);
        text.push('\n');
    }
    durable::write_atomic(&store.tmp_dir(), &path, text.as_bytes())
}

/// The state directory of the remote at `url` (its canonical spelling).
fn state_dir(store: &Store, url: &str) -> PathBuf {
    let url = super::remote::canonical_url(url);
    let tag = &blake3::hash(url.as_bytes()).to_hex()[..16];
    store.root().join("mirror").join(tag)
}

/// The naming key this store names objects with on the remote at `url`,
/// once it has mirrored there.
pub fn naming_key(store: &Store, url: &str) -> Option<[u8; 32]> {
    let hex = std::fs::read_to_string(state_dir(store, url).join("naming-key")).ok()?;
    let mut k = [0u8; 32];
    hex::decode_to_slice(hex.trim(), &mut k).ok().map(|_| k)
}

impl State {
    /// Loads (or starts) the state of the remote at `url`.
    pub fn load(store: &Store, url: &str) -> Result<State> {
        let dir = state_dir(store, url);
        let key_path = dir.join("naming-key");
        let (naming, key_saved) = match std::fs::read_to_string(&key_path) {
            Ok(hex) => {
                let mut k = [0u8; 32];
                hex::decode_to_slice(hex.trim(), &mut k)
                    .map_err(|_| Error::corrupt(key_path.display().to_string(), "not a key"))?;
                (k, true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (crypt::random_key(), false),
            Err(e) => return Err(Error::io("read", &key_path)(e)),
        };
        let sent_path = dir.join("sent");
        let sent = match std::fs::read_to_string(&sent_path) {
            Ok(text) => text.lines().map(str::to_string).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
            Err(e) => return Err(Error::io("read", &sent_path)(e)),
        };
        Ok(State {
            dir,
            url: super::remote::canonical_url(url),
            tmp: store.tmp_dir(),
            sent,
            naming,
            key_saved,
        })
    }

    /// Writes the naming key (once): before any object named with it exists.
    pub fn save_key(&mut self) -> Result<()> {
        if !self.key_saved {
            durable::create_dir_durable(&self.dir)?;
            // For people: which remote this directory is the state of.
            durable::write_atomic(&self.tmp, &self.dir.join("url"), self.url.as_bytes())?;
            let path = self.dir.join("naming-key");
            durable::write_atomic(&self.tmp, &path, hex::encode(self.naming).as_bytes())?;
            self.key_saved = true;
        }
        Ok(())
    }

    /// Has the object `line` stands for been sent?
    pub fn has(&self, line: &str) -> bool {
        self.sent.contains(line)
    }

    /// Notes objects as sent, durably.
    pub fn note(&mut self, lines: impl IntoIterator<Item = String>) -> Result<()> {
        let before = self.sent.len();
        self.sent.extend(lines);
        if self.sent.len() == before {
            return Ok(());
        }
        self.save()
    }

    /// Forgets what was sent (after `mirror --rescan` found it missing).
    pub fn forget(&mut self, keep: impl Fn(&str) -> bool) -> Result<()> {
        self.sent.retain(|l| keep(l));
        self.save()
    }

    /// Rewrites `sent` atomically (fsynced, renamed into place).
    fn save(&self) -> Result<()> {
        let text: String = self.sent.iter().map(|l| format!("{l}\n")).collect();
        durable::create_dir_durable(&self.dir)?;
        durable::write_atomic(&self.tmp, &self.dir.join("sent"), text.as_bytes())
    }
}
