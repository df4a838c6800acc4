//! Exit codes: the one place that decides them (`docs/exit-codes.md` in code).
//!
//! Go's kpromo exits 1 for every error. kpromo deliberately splits usage and manifest
//! problems (exit 2) from promotion and registry failures (exit 1), so CI checks on
//! manifest PRs can tell "your YAML is wrong" from "the registry was down".
use crate::{pipeline, snapshot};

/// The documented process exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// Success, dry run, or a clean early stop.
    Success = 0,
    /// Promotion or registry error: something went wrong talking to registries or
    /// the plan found a conflict with registry state (tag move, lost images with
    /// `--fail-on-lost`).
    Promotion = 1,
    /// Usage or manifest error: bad flags, unreadable or invalid manifests, overlaps,
    /// an invalid policy, an audit log that cannot be opened.
    Usage = 2,
    /// The policy denies at least one edge (`kpromo cip --policy`, `kpromo policy
    /// check`); nothing was written.
    Denied = 3,
}

impl ExitKind {
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// Everything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Flags that cannot work together, or a value kpromo refuses.
    #[error("{0}")]
    Usage(String),
    /// Boxed: registry errors are large, and every command returns this.
    #[error(transparent)]
    Pipeline(Box<pipeline::Error>),
    #[error(transparent)]
    Snapshot(Box<snapshot::Error>),
    /// Writing command output (stdout, `--summary-json`) failed.
    #[error("{what}: {source}")]
    Output {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("starting the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

impl From<pipeline::Error> for Failure {
    fn from(e: pipeline::Error) -> Self {
        Failure::Pipeline(Box::new(e))
    }
}

impl From<snapshot::Error> for Failure {
    fn from(e: snapshot::Error) -> Self {
        Failure::Snapshot(Box::new(e))
    }
}

impl Failure {
    /// The exit code of each failure. No wildcard: a new kind of failure must be sorted
    /// here before it compiles.
    pub fn exit_kind(&self) -> ExitKind {
        use ExitKind::{Denied, Promotion, Usage};
        use pipeline::Error as P;
        use snapshot::Error as S;
        match self {
            Failure::Usage(_) => Usage,
            Failure::Pipeline(e) => match **e {
                P::Setup(_)
                | P::Manifests(_)
                | P::Overlaps(_)
                | P::RegistryName { .. }
                | P::NoSigner(_)
                | P::Policy(_)
                | P::Waves(_) => Usage,
                P::PolicyDenied { .. } => Denied,
                P::Read { .. }
                | P::Unopened(_)
                | P::TagMoves(_)
                | P::Lost(_)
                | P::Report(_)
                | P::Interrupted
                | P::Audit(_)
                | P::Failed { .. }
                | P::Signer(_)
                | P::StagingSignatures { .. }
                | P::Provenance { .. }
                | P::Unsigned { .. }
                | P::Unattested { .. }
                | P::RolloutStopped(_) => Promotion,
            },
            Failure::Snapshot(e) => match **e {
                S::Manifests(_) | S::Overlaps(_) | S::RegistryName { .. } => Usage,
                S::Registry { .. } => Promotion,
            },
            Failure::Output { .. } | Failure::Runtime(_) => Promotion,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Problem;
    use crate::manifest::load::LoadError;

    fn registry_error() -> crate::registry::Error {
        crate::registry::Error::Transport {
            registry: "r".into(),
            operation: "op".into(),
            message: "down".into(),
        }
    }

    /// docs/exit-codes.md, row by row.
    #[test]
    fn every_failure_has_its_documented_exit_code() {
        let problem = || Problem::file("m.yaml", "bad");
        let usage: Vec<Failure> = vec![
            Failure::Usage("--output=json".into()),
            pipeline::Error::Setup(Box::new(registry_error())).into(),
            // A bad --registry-ca-file is a bad flag value.
            pipeline::Error::Setup(Box::new(crate::registry::Error::CaFile {
                path: "ca.pem".into(),
                message: "holds no PEM certificate".into(),
            }))
            .into(),
            pipeline::Error::Manifests(LoadError {
                problems: vec![problem()],
            })
            .into(),
            pipeline::Error::Overlaps(vec![problem()]).into(),
            pipeline::Error::NoSigner(Vec::new()).into(),
            pipeline::Error::RegistryName {
                name: "Bad Name".into(),
                source: Box::new(registry_error()),
            }
            .into(),
            pipeline::Error::Policy(LoadError {
                problems: vec![problem()],
            })
            .into(),
            snapshot::Error::Manifests(LoadError {
                problems: vec![problem()],
            })
            .into(),
            snapshot::Error::Overlaps(vec![problem()]).into(),
            snapshot::Error::RegistryName {
                name: "x".into(),
                source: Box::new(registry_error()),
            }
            .into(),
        ];
        for failure in &usage {
            assert_eq!(failure.exit_kind(), ExitKind::Usage, "{failure}");
        }
        let promotion: Vec<Failure> = vec![
            pipeline::Error::Read {
                during: "reading registries",
                source: Box::new(registry_error()),
            }
            .into(),
            // A registry that breaks a cap or sends credentials elsewhere: registry behaviour.
            pipeline::Error::Read {
                during: "reading registries",
                source: Box::new(crate::registry::Error::Limit {
                    registry: "r".into(),
                    operation: "list tags of a".into(),
                    what: "tag-list pages".into(),
                    cap: 1000,
                    flag: Some("registry-max-tag-pages"),
                }),
            }
            .into(),
            pipeline::Error::Read {
                during: "reading registries",
                source: Box::new(crate::registry::Error::InsecureRealm {
                    registry: "r".into(),
                    operation: "list tags of a".into(),
                    realm: "http://elsewhere/token".into(),
                    reason: "plain HTTP".into(),
                }),
            }
            .into(),
            pipeline::Error::Failed {
                count: 3,
                permanent_images: 1,
                transient_images: 0,
                first: crate::copy::Failure {
                    at: "r/a@sha256:…".into(),
                    cause: crate::copy::Cause::Vanished,
                },
            }
            .into(),
            pipeline::Error::TagMoves(1).into(),
            pipeline::Error::Lost(2).into(),
            pipeline::Error::Interrupted.into(),
            pipeline::Error::Signer(crate::trust::Error::Crypto("bad".into())).into(),
            pipeline::Error::Unsigned {
                count: 1,
                first: "x".into(),
            }
            .into(),
            pipeline::Error::Provenance {
                count: 1,
                first: "x".into(),
            }
            .into(),
            pipeline::Error::Unattested {
                count: 1,
                first: "x".into(),
            }
            .into(),
            pipeline::Error::Report("disk full".into()).into(),
            pipeline::Error::Audit(Box::new(crate::audit::Error {
                sink: "audit.jsonl".into(),
                source: std::io::Error::other("no space left on device"),
            }))
            .into(),
            snapshot::Error::Registry {
                name: "x".into(),
                source: Box::new(registry_error()),
            }
            .into(),
            Failure::Output {
                what: "writing to stdout".into(),
                source: std::io::Error::other("closed"),
            },
        ];
        for failure in &promotion {
            assert_eq!(failure.exit_kind(), ExitKind::Promotion, "{failure}");
        }
        let denied: Failure = pipeline::Error::PolicyDenied {
            count: 2,
            first: "r/i:latest: denied by rule 'no-latest' (p.yaml:3)".into(),
        }
        .into();
        assert_eq!(denied.exit_kind(), ExitKind::Denied);
        assert_eq!(denied.exit_kind().code(), 3);
    }
}
