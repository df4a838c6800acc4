//! The registry error type, shared by every backend.
use crate::digest::Digest;

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
    #[error("invalid registry reference {reference:?}: {message}")]
    InvalidReference { reference: String, message: String },
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
}
