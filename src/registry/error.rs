//! The registry error type, shared by every backend, and the distribution spec's error
//! codes it carries.
use std::fmt;

use crate::digest::Digest;
use crate::registry::media::ManifestError;

/// Registry errors. The `Display` text always names the registry and the operation,
/// and never contains credentials.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{registry}: {operation}: authentication failed ({status}): {message}")]
    Unauthorized {
        registry: String,
        operation: String,
        status: u16,
        message: String,
    },
    #[error("{registry}: {operation}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        registry: String,
        operation: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{registry}: {operation}: HTTP {status}: {message}")]
    Status {
        registry: String,
        operation: String,
        status: u16,
        message: String,
        /// The codes of the registry's error envelope, in its order (empty when it sent
        /// none): what callers match on, while `message` is for people.
        codes: Vec<OciCode>,
    },
    #[error("{registry}: {operation}: {message}")]
    Transport {
        registry: String,
        operation: String,
        message: String,
    },
    #[error("{registry}: {operation}: invalid response: {message}")]
    Protocol {
        registry: String,
        operation: String,
        message: String,
    },
    #[error("{registry}: {operation}: {source}")]
    Io {
        registry: String,
        operation: String,
        #[source]
        source: std::io::Error,
    },
    /// An answer or a listing beyond a cap: refused rather than read further.
    #[error("{registry}: {operation}: more than {cap} {what}{}", flag_hint(*.flag))]
    Limit {
        registry: String,
        operation: String,
        /// What was counted: `tag-list pages`, `bytes in one answer`…
        what: String,
        cap: u64,
        /// The flag that raises the cap, when one does.
        flag: Option<&'static str>,
    },
    /// A token realm that credentials may not go to (see `remote::auth::realm_refusal`):
    /// refused before anything is sent there.
    #[error("{registry}: {operation}: refused the token realm {realm}: {reason}")]
    InsecureRealm {
        registry: String,
        operation: String,
        realm: String,
        reason: String,
    },
    /// A registry or repository name outside the grammar of [`super::reference`].
    #[error("invalid registry reference {}: {message}", super::reference::quoted(.reference))]
    InvalidReference { reference: String, message: String },
    /// A repository name or tag that the grammar refuses, caught before it became a URL
    /// or a path (a name from a hostile listing, or a caller's bug).
    #[error("{registry}: {operation}: invalid {what} {}: {message}", super::reference::quoted(.name))]
    InvalidName {
        registry: String,
        operation: String,
        /// `repository name` or `tag`.
        what: &'static str,
        name: String,
        message: String,
    },
    /// `--registry-ca-file` cannot be used: unreadable, not PEM, or without a certificate.
    #[error("CA file {}: {message}", .path.display())]
    CaFile { path: std::path::PathBuf, message: String },
    /// A read-modify-write (a referrers fallback index) that another writer kept undoing:
    /// nothing is lost yet, and a rerun adds what is missing.
    #[error("{registry}: {operation}: {what} kept changing under another writer ({attempts} attempts)")]
    Contended {
        registry: String,
        operation: String,
        what: String,
        attempts: usize,
    },
    /// Manifest bytes that the operation cannot use (checked before anything is sent).
    #[error("{registry}: {operation}: {source}")]
    InvalidManifest {
        registry: String,
        operation: String,
        #[source]
        source: ManifestError,
    },
}

impl Error {
    /// Whether retrying could help: 429, 5xx, timeouts, resets. Auth and not-found never.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Status { status, .. } => *status == 429 || *status == 408 || *status >= 500,
            Error::Transport { .. } => true,
            _ => false,
        }
    }

    /// Whether running again, nothing else changed, can succeed where this failed: what
    /// [`Error::is_transient`] retries (network, 5xx, 429, timeouts, bodies cut off), local
    /// I/O other than a refused name, and the races distribution loses to concurrent
    /// uploads (`MANIFEST_BLOB_UNKNOWN`, `BLOB_UPLOAD_UNKNOWN`). Not: digest mismatches,
    /// invalid or unsupported manifests, refused names, credentials or realms, caps, and
    /// every other 4xx: someone must fix the source, the manifest or the setup first.
    pub fn rerun_helps(&self) -> bool {
        match self {
            Error::Io { source, .. } => !matches!(
                source.kind(),
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData
            ),
            Error::Status { .. } => {
                self.is_transient()
                    || self.has_code(OciCode::ManifestBlobUnknown)
                    || self.has_code(OciCode::BlobUploadUnknown)
            }
            Error::Contended { .. } => true,
            other => other.is_transient(),
        }
    }

    /// Whether the registry answered with `code` in its error envelope.
    pub fn has_code(&self, code: OciCode) -> bool {
        matches!(self, Error::Status { codes, .. } if codes.contains(&code))
    }
}

/// The end of an [`Error::Limit`] message: how to raise the cap, if a flag does.
fn flag_hint(flag: Option<&'static str>) -> String {
    match flag {
        Some(flag) => format!(
            " (the cap; the registry may be looping or serving an endless listing: raise --{flag} if it really holds that much)"
        ),
        None => " (the cap)".to_string(),
    }
}

/// An error code of the distribution spec's error envelope
/// (`{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":…}]}`), so that a caller asks
/// `error.has_code(OciCode::ManifestBlobUnknown)` instead of searching the message text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OciCode {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    ManifestUnverified,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    /// A code outside the spec (registries add their own, e.g. `UNAVAILABLE`), verbatim.
    Other(String),
}

impl OciCode {
    /// Every code the spec defines, with its wire name.
    const KNOWN: [(OciCode, &'static str); 15] = [
        (OciCode::BlobUnknown, "BLOB_UNKNOWN"),
        (OciCode::BlobUploadInvalid, "BLOB_UPLOAD_INVALID"),
        (OciCode::BlobUploadUnknown, "BLOB_UPLOAD_UNKNOWN"),
        (OciCode::DigestInvalid, "DIGEST_INVALID"),
        (OciCode::ManifestBlobUnknown, "MANIFEST_BLOB_UNKNOWN"),
        (OciCode::ManifestInvalid, "MANIFEST_INVALID"),
        (OciCode::ManifestUnknown, "MANIFEST_UNKNOWN"),
        (OciCode::ManifestUnverified, "MANIFEST_UNVERIFIED"),
        (OciCode::NameInvalid, "NAME_INVALID"),
        (OciCode::NameUnknown, "NAME_UNKNOWN"),
        (OciCode::SizeInvalid, "SIZE_INVALID"),
        (OciCode::Unauthorized, "UNAUTHORIZED"),
        (OciCode::Denied, "DENIED"),
        (OciCode::Unsupported, "UNSUPPORTED"),
        (OciCode::TooManyRequests, "TOOMANYREQUESTS"),
    ];

    /// The code for a wire name such as `MANIFEST_UNKNOWN`.
    pub fn from_wire(code: &str) -> Self {
        Self::KNOWN
            .into_iter()
            .find_map(|(known, wire)| (wire == code).then_some(known))
            .unwrap_or_else(|| OciCode::Other(code.to_string()))
    }

    /// The wire name, as the registry spells it.
    pub fn as_str(&self) -> &str {
        match self {
            OciCode::Other(code) => code,
            known => Self::KNOWN
                .iter()
                .find_map(|(k, wire)| (k == known).then_some(*wire))
                .unwrap_or_default(),
        }
    }
}

impl fmt::Display for OciCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_their_wire_names() {
        for (code, wire) in OciCode::KNOWN {
            assert_eq!(OciCode::from_wire(wire), code);
            assert_eq!(code.to_string(), wire);
        }
        let other = OciCode::from_wire("UNAVAILABLE");
        assert_eq!(other, OciCode::Other("UNAVAILABLE".into()));
        assert_eq!(other.as_str(), "UNAVAILABLE");
    }

    #[test]
    fn a_rerun_helps_after_transient_failures_and_races_only() {
        let status = |status, codes: Vec<OciCode>| Error::Status {
            registry: "r".into(),
            operation: "o".into(),
            status,
            message: String::new(),
            codes,
        };
        let digest = crate::digest::Digest::of(b"x");
        let helps = [
            status(503, vec![]),
            status(429, vec![OciCode::TooManyRequests]),
            status(400, vec![OciCode::ManifestBlobUnknown]),
            status(404, vec![OciCode::BlobUploadUnknown]),
            Error::Transport {
                registry: "r".into(),
                operation: "o".into(),
                message: "connection reset".into(),
            },
            Error::Io {
                registry: "r".into(),
                operation: "o".into(),
                source: std::io::Error::other("disk full"),
            },
        ];
        for e in &helps {
            assert!(e.rerun_helps(), "{e}");
        }
        let does_not = [
            status(400, vec![OciCode::ManifestInvalid]),
            status(404, vec![OciCode::NameUnknown]),
            Error::DigestMismatch {
                registry: "r".into(),
                operation: "o".into(),
                expected: digest,
                actual: digest,
            },
            Error::Unauthorized {
                registry: "r".into(),
                operation: "o".into(),
                status: 403,
                message: String::new(),
            },
            Error::Io {
                registry: "r".into(),
                operation: "o".into(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "invalid repository name"),
            },
        ];
        for e in &does_not {
            assert!(!e.rerun_helps(), "{e}");
        }
    }

    #[test]
    fn only_status_errors_carry_codes() {
        let status = Error::Status {
            registry: "r".into(),
            operation: "PUT manifest a:b".into(),
            status: 400,
            message: "MANIFEST_BLOB_UNKNOWN: blob unknown to registry".into(),
            codes: vec![OciCode::ManifestBlobUnknown],
        };
        assert!(status.has_code(OciCode::ManifestBlobUnknown));
        assert!(!status.has_code(OciCode::DigestInvalid));
        assert_eq!(
            status.to_string(),
            "r: PUT manifest a:b: HTTP 400: MANIFEST_BLOB_UNKNOWN: blob unknown to registry"
        );
        let transport = Error::Transport {
            registry: "r".into(),
            operation: "o".into(),
            message: "MANIFEST_BLOB_UNKNOWN".into(),
        };
        assert!(!transport.has_code(OciCode::ManifestBlobUnknown), "text is not a code");
    }
}
