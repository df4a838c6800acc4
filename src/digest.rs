//! Content digests.
//!
//! Promotion manifests only ever name `sha256` digests (Go's rule
//! `^sha256:[0-9a-f]{64}$`), so a digest is stored as its 32 raw bytes: edges for a
//! million promotions stay small and comparisons are cheap.
use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// A validated `sha256:<64 lowercase hex>` digest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest([u8; 32]);

/// Why a string is not a digest. The message is the one Go's validator prints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid digest: {0}")]
pub struct InvalidDigest(pub String);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 hex characters without the `sha256:` prefix.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// True when `s` matches `^sha256:[0-9a-f]{64}$` exactly.
    pub fn is_valid(s: &str) -> bool {
        s.parse::<Digest>().is_ok()
    }
}

/// Lets a digest be interned by reference, like a name (`Interner::intern(&digest)`).
impl From<&Digest> for Digest {
    fn from(digest: &Digest) -> Self {
        *digest
    }
}

impl FromStr for Digest {
    type Err = InvalidDigest;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidDigest(s.to_string());
        let hex_part = s.strip_prefix("sha256:").ok_or_else(invalid)?;
        if hex_part.len() != 64 || !hex_part.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(invalid());
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut out).map_err(|_| invalid())?;
        Ok(Self(out))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Incremental sha256, for verifying streams without buffering them.
#[derive(Default, Clone)]
pub struct DigestWriter(Sha256);

impl DigestWriter {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn update(&mut self, chunk: &[u8]) {
        self.0.update(chunk);
    }
    pub fn finish(self) -> Digest {
        Digest(self.0.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_near_misses() {
        let good = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(good.parse::<Digest>().unwrap().to_string(), good);
        for bad in [
            String::new(),
            "sha256:0".to_string(),
            format!("sha256:{}", "a".repeat(65)),
            format!("sha256:{}", "a".repeat(63)),
            format!("sha256:{}", "A".repeat(64)),
            format!("sha256:{}", "g".repeat(64)),
            "a".repeat(64),
            format!("sha512:{}", "a".repeat(64)),
        ] {
            assert_eq!(bad.parse::<Digest>(), Err(InvalidDigest(bad.clone())), "{bad}");
        }
    }

    #[test]
    fn streaming_digest_equals_one_shot() {
        let mut w = DigestWriter::new();
        w.update(b"hello ");
        w.update(b"world");
        assert_eq!(w.finish(), Digest::of(b"hello world"));
        assert_eq!(
            Digest::of(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
