//! Typed 32-byte ids: a chunk id is the BLAKE3 of the plain chunk, a pack id the
//! BLAKE3 of the whole pack file, a snapshot id the BLAKE3 of its record.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($name:ident, $what:literal) => {
        #[doc = concat!("A ", $what, " id: 32 bytes of BLAKE3.")]
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The id of `data` (its BLAKE3 hash).
            pub fn of(data: &[u8]) -> Self {
                $name(*blake3::hash(data).as_bytes())
            }

            /// 64 lowercase hex digits.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// Parses 64 hex digits.
            pub fn from_hex(s: &str) -> Option<Self> {
                let mut out = [0u8; 32];
                hex::decode_to_slice(s, &mut out).ok()?;
                Some($name(out))
            }

            /// The first 8 hex digits, for messages.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }
        }

        // Hex in human-readable formats (JSON records), raw bytes in binary ones (trees).
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.serialize_str(&self.to_hex())
                } else {
                    self.0.serialize(s)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    let s = String::deserialize(d)?;
                    $name::from_hex(&s).ok_or_else(|| serde::de::Error::custom("bad id"))
                } else {
                    Ok($name(<[u8; 32]>::deserialize(d)?))
                }
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", $what, self.short())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
    };
}

id_type!(ChunkId, "chunk");

impl ChunkId {
    /// One id for a whole chunk list (a file's content, a subtree): equal
    /// lists, equal ids, without reading any chunk.
    pub(crate) fn of_list(ids: &[ChunkId]) -> ChunkId {
        let mut h = blake3::Hasher::new();
        for id in ids {
            h.update(&id.0);
        }
        ChunkId(*h.finalize().as_bytes())
    }
}
id_type!(PackId, "pack");
id_type!(SnapshotId, "snapshot");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = ChunkId::of(b"hello");
        assert_eq!(ChunkId::from_hex(&id.to_hex()), Some(id));
        assert_eq!(ChunkId::from_hex("zz"), None);
    }
}
