//! Exit-code classification shared by every command.
//!
//! Go's kpromo exits 1 for every error. kpromo deliberately splits usage and manifest
//! problems (exit 2) from promotion and registry failures (exit 1), so CI checks on
//! manifest PRs can tell "your YAML is wrong" from "the registry was down".
//! See `docs/exit-codes.md`.

/// The documented process exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// Success, dry run, or a clean early stop.
    Success = 0,
    /// Promotion or registry error: something went wrong talking to registries or
    /// the plan found a conflict with registry state (tag move, lost images with
    /// `--fail-on-lost`).
    Promotion = 1,
    /// Usage or manifest error: bad flags, unreadable or invalid manifests, overlaps.
    Usage = 2,
}

impl ExitKind {
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// An error that knows which exit code it maps to. Lower layers return their own
/// error types; the CLI wraps them into this at the boundary.
#[derive(Debug, thiserror::Error)]
#[error("{source:#}")]
pub struct KpromoError {
    pub kind: ExitKind,
    #[source]
    pub source: anyhow::Error,
}

impl KpromoError {
    pub fn usage(source: impl Into<anyhow::Error>) -> Self {
        Self {
            kind: ExitKind::Usage,
            source: source.into(),
        }
    }
    pub fn promotion(source: impl Into<anyhow::Error>) -> Self {
        Self {
            kind: ExitKind::Promotion,
            source: source.into(),
        }
    }
}
