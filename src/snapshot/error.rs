//! What can stop a snapshot. The CLI maps each kind to an exit code
//! (`docs/exit-codes.md`).
use crate::manifest::Problem;
use crate::manifest::load::LoadError;
use crate::registry;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The manifests of a manifest-based snapshot cannot be loaded.
    #[error("loading manifests: {0}")]
    Manifests(LoadError),
    /// The manifests promise one destination two digests.
    #[error("overlapping edges detected:\n{}", .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Overlaps(Vec<Problem>),
    /// A registry name kpromo cannot address.
    #[error("snapshot of {name}: {source}")]
    RegistryName {
        name: String,
        #[source]
        source: Box<registry::Error>,
    },
    /// The registry failed or refused.
    #[error("snapshot of {name}: {source}")]
    Registry {
        name: String,
        #[source]
        source: Box<registry::Error>,
    },
}

impl Error {
    /// Sorts a registry error: a name kpromo cannot use is the user's to fix.
    pub(super) fn registry(name: &str, source: registry::Error) -> Self {
        let name = name.to_string();
        if matches!(source, registry::Error::InvalidReference { .. }) {
            Error::RegistryName {
                name,
                source: Box::new(source),
            }
        } else {
            Error::Registry {
                name,
                source: Box::new(source),
            }
        }
    }
}
