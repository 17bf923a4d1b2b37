//! What a store knows of a remote it mirrors to, kept locally so that
//! `mirror` never has to read the bucket (a create-only credential suffices):
//!
//! ```text
//! STORE/mirror/recipients            age recipients new objects are sealed to
//! STORE/mirror/<16 hex>/naming-key   this remote's naming key (hex); the
//!                                    tag is of the remote's canonical URL
//! STORE/mirror/<16 hex>/url          that URL (for people)
//! STORE/mirror/<16 hex>/sent         one line per object created there:
//!                                    `c` config, `k KEY` keys, `p ID` pack,
//!                                    `p ID BUNDLE BASE LEN` a pack sent inside
//!                                    bundle BUNDLE (its bytes at BASE), `r ID` record,
//!                                    `H KEY NS DIGEST` the newest hold, when the
//!                                    last full one was written, and a digest
//!                                    of the packs held then, `w HEX` this
//!                                    state's writer id (its holds' chain),
//!                                    `q ID` a record sent, not yet in a catalog
//! STORE/mirror/<16 hex>/summary.json  the summary the last catalog carried
//! ```
//!
//! Invariant: a line is written only after its object was created (or found
//! there). A record once sent is never sent again, so a record the remote's
//! own retention forgot is not brought back by the next mirror.

use super::crypt;
use crate::error::{Error, Result};
use crate::format::bundle::Member;
use crate::id::PackId;
use crate::store::{Staging, Store};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// The store's recipients file.
const RECIPIENTS: &str = "mirror/recipients";

/// The state of one remote.
pub(crate) struct State {
    store: Store,
    /// Its directory, relative to the store.
    dir: PathBuf,
    url: String,
    pub sent: BTreeSet<String>,
    pub naming: [u8; 32],
    /// Whether `naming` is on disk yet (it is written before anything named
    /// with it is created, and not before the remote answered once).
    key_saved: bool,
}

/// The store's recipients file, for messages.
pub(crate) fn recipients_path(store: &Store) -> PathBuf {
    store.file_path(RECIPIENTS)
}

/// The store's recipients (`age1…`), empty when none were added.
pub fn recipients(store: &Store) -> Result<Vec<String>> {
    let Some(bytes) = store.read_file(RECIPIENTS)? else {
        return Ok(Vec::new());
    };
    let text = String::from_utf8_lossy(&bytes);
    let parsed = crypt::parse_recipients(&text, &recipients_path(store).display().to_string())?;
    Ok(parsed.iter().map(|r| r.to_string()).collect())
}

/// Replaces the store's recipients (new objects are sealed to these only).
pub fn set_recipients(store: &Store, list: &[String]) -> Result<()> {
    let mut text = String::from("# age recipients: objects sent to remotes are sealed to these\n");
    for r in list {
        text.push_str(r);
        text.push('\n');
    }
    store.write_file(RECIPIENTS, text.as_bytes(), Staging::Tmp)
}

/// Takes the lock of the remote at `url`'s state (`STORE/lock.mirror-<16
/// hex>`, the tag of its state directory) with a reader's lock of the
/// store: one mirror (or remote gc) of a remote at a time, beside takes and
/// watches, never beside local gc.
pub fn lock(
    store: &Store,
    url: &str,
    what: &str,
    wait: std::time::Duration,
) -> Result<crate::store::StoreLock> {
    let dir = state_dir(url);
    let tag = dir.file_name().expect("a tag").to_string_lossy();
    let lock = store.lock_reading_with(&format!("lock.mirror-{tag}"), what, wait)?;
    // What a killed run left staged here (only this lock's holder stages).
    store.clean_staged(&dir);
    Ok(lock)
}

/// Makes `store` (a clone of the remote at `url`) carry on mirroring there
/// as the store it was cloned from: under the remote's naming key, with the
/// recipients of its `keys/` object when it has none, and with every object
/// the clone found there (`sent`: its lines) noted, so nothing is sent
/// again. Its holds are a new writer's. A state already there is kept.
pub(crate) fn adopt(
    store: &Store,
    url: &str,
    naming: [u8; 32],
    keys_recipients: &[String],
    sent: Vec<String>,
) -> Result<()> {
    let mut state = State::load(store, url)?;
    if state.key_saved {
        return Ok(());
    }
    if recipients(store)?.is_empty() && !keys_recipients.is_empty() {
        set_recipients(store, keys_recipients)?;
    }
    state.naming = naming;
    state.save_key()?;
    state.note(sent)
}

/// The state directory of the remote at `url` (its canonical spelling),
/// relative to the store.
fn state_dir(url: &str) -> PathBuf {
    let url = super::remote::canonical_url(url);
    let tag = &blake3::hash(url.as_bytes()).to_hex()[..16];
    Path::new("mirror").join(tag)
}

/// A state file's text ("" when missing or unreadable: a state not yet written).
fn read_text(store: &Store, url: &str, name: &str) -> String {
    let bytes = store.read_file(state_dir(url).join(name));
    String::from_utf8(bytes.ok().flatten().unwrap_or_default()).unwrap_or_default()
}

/// The naming key this store names objects with on the remote at `url`,
/// once it has mirrored there.
pub(crate) fn naming_key(store: &Store, url: &str) -> Option<[u8; 32]> {
    let hex = read_text(store, url, "naming-key");
    let mut k = [0u8; 32];
    hex::decode_to_slice(hex.trim(), &mut k).ok().map(|_| k)
}

/// Where the packs this store sent to `url` inside bundles lie: by pack
/// id, the bundle's id and the pack's range in it.
pub fn bundled(store: &Store, url: &str) -> HashMap<PackId, (PackId, Member)> {
    let text = read_text(store, url, "sent");
    text.lines().filter_map(parse_bundled).collect()
}

/// Whether this store sent record `id` to the remote at `url` (from the
/// local state alone).
pub fn record_sent(store: &Store, url: &str, id: &crate::id::SnapshotId) -> bool {
    let line = format!("r {}", id.to_hex());
    read_text(store, url, "sent").lines().any(|l| l == line)
}

/// A digest of a set of packs (their count and the XOR of their ids): two
/// sets with the same digest are, but by a 2^-256 chance, the same set.
pub(crate) fn packs_digest<'a>(ids: impl Iterator<Item = &'a PackId>) -> String {
    let (mut n, mut x) = (0u64, [0u8; 32]);
    for id in ids {
        n += 1;
        x.iter_mut().zip(id.0).for_each(|(a, b)| *a ^= b);
    }
    format!("{n}:{}", hex::encode(x))
}

/// The line of a pack sent alone.
pub(crate) fn pack_line(id: &PackId) -> String {
    format!("p {}", id.to_hex())
}

/// The line of a pack sent inside bundle `bundle`.
pub(crate) fn bundled_line(bundle: &PackId, m: &Member) -> String {
    format!(
        "p {} {} {} {}",
        m.id.to_hex(),
        bundle.to_hex(),
        m.base,
        m.len
    )
}

/// A `p ID BUNDLE BASE LEN` line.
fn parse_bundled(line: &str) -> Option<(PackId, (PackId, Member))> {
    let mut f = line.strip_prefix("p ")?.split(' ');
    let id = PackId::from_hex(f.next()?)?;
    let bundle = PackId::from_hex(f.next()?)?;
    let base = f.next()?.parse().ok()?;
    let len = f.next()?.parse().ok()?;
    Some((id, (bundle, Member { id, base, len })))
}

impl State {
    /// Loads (or starts) the state of the remote at `url`.
    pub fn load(store: &Store, url: &str) -> Result<State> {
        let dir = state_dir(url);
        let key_path = dir.join("naming-key");
        let (naming, key_saved) = match store.read_file(&key_path)? {
            Some(hex) => {
                let mut k = [0u8; 32];
                hex::decode_to_slice(String::from_utf8_lossy(&hex).trim(), &mut k).map_err(
                    |_| {
                        Error::corrupt(
                            store.file_path(&key_path).display().to_string(),
                            "not a key",
                        )
                    },
                )?;
                (k, true)
            }
            None => (crypt::random_key(), false),
        };
        let sent = match store.read_file(dir.join("sent"))? {
            Some(text) => String::from_utf8_lossy(&text)
                .lines()
                .map(str::to_string)
                .collect(),
            None => BTreeSet::new(),
        };
        Ok(State {
            store: store.clone(),
            dir,
            url: super::remote::canonical_url(url),
            sent,
            naming,
            key_saved,
        })
    }

    /// Writes the naming key (once): before any object named with it exists.
    pub(crate) fn save_key(&mut self) -> Result<()> {
        if !self.key_saved {
            // For people: which remote this directory is the state of.
            self.write("url", self.url.as_bytes())?;
            self.write("naming-key", hex::encode(self.naming).as_bytes())?;
            self.key_saved = true;
        }
        Ok(())
    }

    /// Has the object `line` stands for been sent?
    pub fn has(&self, line: &str) -> bool {
        self.sent.contains(line)
    }

    /// Has pack `id` been sent (alone, or inside a bundle)?
    pub(crate) fn pack_sent(&self, id: &PackId) -> bool {
        let line = pack_line(id);
        let mut after = self.sent.range(line.clone()..);
        after
            .next()
            .is_some_and(|l| l == &line || l.starts_with(&format!("{line} ")))
    }

    /// The bundle pack `id` was sent in, if it was.
    pub(crate) fn bundle_of(&self, id: &PackId) -> Option<PackId> {
        let line = pack_line(id);
        let next = self.sent.range(line.clone()..).next()?;
        parse_bundled(next)
            .filter(|(p, _)| p == id)
            .map(|(_, (b, _))| b)
    }

    /// The newest hold this state wrote: its key, when the last full one
    /// was written (ns since the epoch), and the set digest of the packs the
    /// store held when it was written (`packs_digest`).
    pub(crate) fn last_hold(&self) -> Option<(String, u128, String)> {
        let line = self.sent.range("H ".to_string()..).next()?;
        let mut f = line.strip_prefix("H ")?.split(' ');
        Some((
            f.next()?.to_string(),
            f.next()?.parse().ok()?,
            f.next()?.to_string(),
        ))
    }

    /// This state's writer id (16 hex, random, noted before the first hold
    /// that carries it): remote gc keeps the newest hold chain of every
    /// writer, so two stores (or two states) that mirror into one prefix
    /// never let go of each other's packs.
    pub fn writer(&mut self) -> Result<String> {
        if let Some(w) = self.sent.range("w ".to_string()..).next() {
            if let Some(hex) = w.strip_prefix("w ") {
                return Ok(hex.to_string());
            }
        }
        let hex = hex::encode(&crypt::random_key()[..8]);
        self.note([format!("w {hex}")])?;
        Ok(hex)
    }

    /// The summary the last catalog carried (`catalog::Summary`), if any.
    pub fn summary<T: serde::de::DeserializeOwned>(&self) -> Result<Option<T>> {
        // Rebuilt from the records when unreadable: it is a cache.
        let bytes = self.store.read_file(self.dir.join("summary.json"))?;
        Ok(bytes.and_then(|b| serde_json::from_slice(&b).ok()))
    }

    /// Replaces the summary (after its catalog was created).
    pub(crate) fn set_summary<T: serde::Serialize>(&self, summary: &T) -> Result<()> {
        let bytes = serde_json::to_vec(summary).expect("encodes");
        self.write("summary.json", &bytes)
    }

    /// Notes hold `key` as the newest (see `last_hold`).
    pub(crate) fn set_hold(&mut self, key: &str, full_at: u128, digest: &str) -> Result<()> {
        self.sent.retain(|l| !l.starts_with("H "));
        self.sent.insert(format!("H {key} {full_at} {digest}"));
        self.save()
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
        self.write("sent", text.as_bytes())
    }

    /// Replaces one file of the state, staged beside it: a writer cleaning
    /// the store's `tmp/` never races it.
    fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let rel = self.dir.join(name);
        self.store.write_file(rel, bytes, Staging::Beside)
    }
}
