//! Sealing what leaves the machine: every object a remote holds is encrypted
//! to the store's age (X25519) recipients (`seal`: a payload key wrapped by
//! age, AES-256-GCM chunks), and named by a keyed hash, so a bucket reader
//! learns neither contents nor chunk or pack ids.
//!
//! The backing-up host holds only recipients (public keys) and the naming
//! key: it can seal, never open. Opening (restore, remote verify, remote gc)
//! needs an identity (the private key), kept elsewhere.

use super::seal;
use crate::error::{Error, Result};
use age::x25519::{Identity, Recipient};
use std::io::{Read, Write};
use std::str::FromStr;

/// How objects on a remote are encoded.
#[derive(Clone)]
pub enum Codec {
    /// Stored as the local store stores them (remotes made before sealing).
    Plain,
    /// Sealed (`seal`) to age recipients, with keyed names.
    Age {
        /// Whom new objects are sealed to (may be empty when only opening).
        recipients: Vec<Recipient>,
        /// What opens objects (empty on the backing-up host).
        identities: Vec<Identity>,
        /// The key of object names: name = keyed BLAKE3(naming, id).
        naming: [u8; 32],
        /// Other naming keys objects on the remote are named under (a
        /// store that mirrored to it again after losing its local state):
        /// read, never written.
        others: Vec<[u8; 32]>,
    },
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Codec::Plain => write!(f, "Plain"),
            Codec::Age { recipients, .. } => write!(f, "Age({} recipients)", recipients.len()),
        }
    }
}

impl Codec {
    /// This codec, opening with `identities` (a pushing codec has none).
    pub fn opening(&self, identities: &[age::x25519::Identity]) -> Codec {
        match self {
            Codec::Age {
                recipients,
                naming,
                others,
                ..
            } => Codec::Age {
                recipients: recipients.clone(),
                naming: *naming,
                others: others.clone(),
                identities: identities.to_vec(),
            },
            Codec::Plain => Codec::Plain,
        }
    }

    /// Is anything sealed?
    pub fn sealed(&self) -> bool {
        matches!(self, Codec::Age { .. })
    }

    /// The name on the remote of the object whose id is `id`.
    pub fn name(&self, id: &[u8; 32]) -> [u8; 32] {
        match self {
            Codec::Plain => *id,
            Codec::Age { naming, .. } => *blake3::keyed_hash(naming, id).as_bytes(),
        }
    }

    /// Whether `name` is the name of `id` under any naming key.
    pub(crate) fn is_name(&self, id: &[u8; 32], name: &[u8; 32]) -> bool {
        self.name(id) == *name
            || matches!(self, Codec::Age { others, .. }
                if others.iter().any(|k| blake3::keyed_hash(k, id).as_bytes() == name))
    }

    /// Every name `id` may have on the remote, the current one first.
    pub fn names(&self, id: &[u8; 32]) -> Vec<[u8; 32]> {
        let mut out = vec![self.name(id)];
        if let Codec::Age { others, .. } = self {
            out.extend(others.iter().map(|k| *blake3::keyed_hash(k, id).as_bytes()));
        }
        out
    }

    /// This codec naming new objects with `key` when it is one of its
    /// naming keys (a store reading back what it wrote itself).
    pub(crate) fn named_with(self, key: [u8; 32]) -> Codec {
        match self {
            Codec::Age {
                recipients,
                identities,
                naming,
                mut others,
            } if others.contains(&key) => {
                others.retain(|k| *k != key);
                others.push(naming);
                Codec::Age {
                    recipients,
                    identities,
                    naming: key,
                    others,
                }
            }
            other => other,
        }
    }

    /// `plain` as it is stored on the remote.
    pub fn seal(&self, plain: &[u8]) -> Result<Vec<u8>> {
        let Codec::Age { recipients, .. } = self else {
            return Ok(plain.to_vec());
        };
        seal::seal(recipients, plain)
    }

    /// The plain bytes of `object`, as stored on the remote.
    pub fn open(&self, object: &str, stored: &[u8]) -> Result<Vec<u8>> {
        let Codec::Age { identities, .. } = self else {
            return Ok(stored.to_vec());
        };
        if seal::is_sealed(stored) {
            return seal::open(object, stored, identities);
        }
        // Seal format 1: a whole age file.
        let mut plain = Vec::new();
        opener(object, stored, identities)?
            .read_to_end(&mut plain)
            .map_err(|e| Error::corrupt(format!("remote object {object}"), e.to_string()))?;
        Ok(plain)
    }

    /// The identities that open objects (empty: none given).
    pub fn identities(&self) -> &[Identity] {
        match self {
            Codec::Plain => &[],
            Codec::Age { identities, .. } => identities,
        }
    }
}

/// Encrypts `plain` to every recipient as an age file (seal format 1; now
/// only the payload keys of `seal`).
pub(crate) fn seal_age(recipients: &[Recipient], plain: &[u8]) -> Result<Vec<u8>> {
    if recipients.is_empty() {
        return Err(Error::Key(
            "no recipient to seal to: generate a key pair or add a recipient".into(),
        ));
    }
    let enc = age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
        .expect("at least one recipient");
    let mut out = Vec::with_capacity(plain.len() + plain.len() / 4096 + 256);
    let mut w = enc.wrap_output(&mut out).expect("writes to memory");
    w.write_all(plain).expect("writes to memory");
    w.finish().expect("writes to memory");
    Ok(out)
}

/// A reader of the plain bytes of an age stream; `object` names it in errors.
pub(crate) fn opener<R: Read>(
    object: &str,
    stored: R,
    identities: &[Identity],
) -> Result<age::stream::StreamReader<R>> {
    if identities.is_empty() {
        return Err(Error::Key(format!(
            "{object} is encrypted: give the identity (private key) that opens it"
        )));
    }
    let corrupt =
        |e: age::DecryptError| Error::corrupt(format!("remote object {object}"), e.to_string());
    let dec = age::Decryptor::new(stored).map_err(corrupt)?;
    dec.decrypt(identities.iter().map(|i| i as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => Error::Key(format!(
                "the identity given cannot open {object}: it was encrypted to other recipients (wrong key?)"
            )),
            other => corrupt(other),
        })
}

/// A new random key (naming keys).
pub(crate) fn random_key() -> [u8; 32] {
    let mut k = [0u8; 32];
    getrandom::getrandom(&mut k).expect("the OS random source works");
    k
}

/// The identities to open remotes with: from `file`, else the file in
/// `SNAP_IDENTITY_FILE`, else the key in `SNAP_IDENTITY`; none when none is
/// given. A passphrase-protected file is opened with `SNAP_IDENTITY_PASSPHRASE`.
pub fn identities(file: Option<&std::path::Path>) -> Result<Vec<Identity>> {
    let pass = std::env::var("SNAP_IDENTITY_PASSPHRASE").ok();
    let file = file
        .map(std::path::Path::to_path_buf)
        .or_else(|| std::env::var_os("SNAP_IDENTITY_FILE").map(Into::into));
    if let Some(path) = file {
        let bytes = std::fs::read(&path).map_err(Error::io("read identity file", &path))?;
        return parse_identities(&bytes, &path.display().to_string(), pass.as_deref());
    }
    match std::env::var("SNAP_IDENTITY") {
        Ok(key) => parse_identities(key.as_bytes(), "SNAP_IDENTITY", None),
        Err(_) => Ok(Vec::new()),
    }
}

/// Parses recipients, one `age1…` per line (`#` comments allowed).
pub fn parse_recipients(text: &str, from: &str) -> Result<Vec<Recipient>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            Recipient::from_str(l)
                .map_err(|e| Error::Key(format!("{from}: {l:?} is not an age recipient: {e}")))
        })
        .collect()
}

/// Parses identities from an identity file's text: `AGE-SECRET-KEY-1…`
/// lines, or a whole file encrypted with a passphrase (`age -p`), opened
/// with `passphrase`.
pub(crate) fn parse_identities(
    bytes: &[u8],
    from: &str,
    passphrase: Option<&str>,
) -> Result<Vec<Identity>> {
    let text = if bytes.starts_with(b"age-encryption.org/v1") {
        let Some(pass) = passphrase else {
            return Err(Error::Key(format!(
                "{from} is protected by a passphrase: set SNAP_IDENTITY_PASSPHRASE"
            )));
        };
        let id = age::scrypt::Identity::new(pass.to_string().into());
        age::decrypt(&id, bytes)
            .map_err(|e| Error::Key(format!("cannot open {from} with the passphrase given: {e}")))?
    } else {
        bytes.to_vec()
    };
    let text = String::from_utf8(text)
        .map_err(|_| Error::Key(format!("{from} is not an age identity file")))?;
    let ids: Vec<Identity> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("AGE-SECRET-KEY-"))
        .map(|l| {
            Identity::from_str(l)
                .map_err(|e| Error::Key(format!("{from}: a malformed identity: {e}")))
        })
        .collect::<Result<_>>()?;
    if ids.is_empty() {
        return Err(Error::Key(format!(
            "{from} holds no AGE-SECRET-KEY identity"
        )));
    }
    Ok(ids)
}

/// Whether `stored` is a sealed object (seal format 2).
pub(crate) fn is_sealed(stored: &[u8]) -> bool {
    super::seal::is_sealed(stored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    #[test]
    fn sealed_bytes_open_only_with_the_identity() {
        let id = Identity::generate();
        let other = Identity::generate();
        let codec = |ids: Vec<Identity>| Codec::Age {
            recipients: vec![id.to_public()],
            identities: ids,
            naming: [7; 32],
            others: vec![],
        };
        let sealed = codec(vec![]).seal(b"row of personal data").unwrap();
        assert!(!sealed.windows(8).any(|w| w == b"personal"));
        assert_eq!(
            codec(vec![id.clone()]).open("x", &sealed).unwrap(),
            b"row of personal data"
        );
        assert!(matches!(
            codec(vec![other]).open("x", &sealed),
            Err(Error::Key(_))
        ));
        assert!(matches!(
            codec(vec![]).open("x", &sealed),
            Err(Error::Key(_))
        ));
        // Objects sealed before seal format 2 (whole age files) still open.
        let v1 = seal_age(&[id.to_public()], b"an old record").unwrap();
        assert!(v1.starts_with(b"age-encryption.org/v1"));
        assert_eq!(
            codec(vec![id.clone()]).open("x", &v1).unwrap(),
            b"an old record"
        );
        let text = id.to_string();
        let parsed = parse_identities(text.expose_secret().as_bytes(), "f", None).unwrap();
        assert_eq!(
            parsed[0].to_public().to_string(),
            id.to_public().to_string()
        );
    }

    #[test]
    fn a_passphrase_protected_identity_file_opens_with_its_passphrase_only() {
        let id = Identity::generate();
        let text = format!("{}\n", id.to_string().expose_secret());
        let mut r = age::scrypt::Recipient::new("correct horse".to_string().into());
        r.set_work_factor(10);
        let file = age::encrypt(&r, text.as_bytes()).unwrap();
        let parsed = parse_identities(&file, "f", Some("correct horse")).unwrap();
        assert_eq!(
            parsed[0].to_public().to_string(),
            id.to_public().to_string()
        );
        assert!(matches!(
            parse_identities(&file, "f", Some("wrong")),
            Err(Error::Key(_))
        ));
        assert!(matches!(
            parse_identities(&file, "f", None),
            Err(Error::Key(_))
        ));
    }

    #[test]
    fn names_are_keyed() {
        let c = Codec::Age {
            recipients: vec![],
            identities: vec![],
            naming: [1; 32],
            others: vec![[2; 32]],
        };
        assert_ne!(c.name(&[0; 32]), [0; 32]);
        assert_eq!(Codec::Plain.name(&[3; 32]), [3; 32]);
        // A name under a second naming key is a name of the same id.
        let second = *blake3::keyed_hash(&[2; 32], &[0; 32]).as_bytes();
        assert!(c.is_name(&[0; 32], &second));
        assert_eq!(c.names(&[0; 32]), vec![c.name(&[0; 32]), second]);
        let c = c.named_with([2; 32]);
        assert_eq!(c.name(&[0; 32]), second);
    }
}
