//! Runs a snapshot request end to end: load or walk, filter, trim.
use crate::edges::EdgeSet;
use crate::edges::report::overlap_problems;
use crate::manifest::ManifestSource;
use crate::manifest::load::load;
use crate::registry::{ClientOptions, Registries, RepoRoot};

use super::{Error, RegInvImage, from_manifests, minimal, walk};

/// What to snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `--snapshot REG`: read the registry.
    Registry(String),
    /// `--manifest-based-snapshot-of REG`: what the manifests promise REG (offline).
    Manifests {
        registry: String,
        manifests: ManifestSource,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub source: Source,
    /// `--snapshot-tag`: only digests carrying this tag (registry snapshots only, as in Go).
    pub tag: Option<String>,
    /// `--minimal-snapshot`: drop tagless children of indexes.
    pub minimal: bool,
}

/// Takes the snapshot.
pub async fn take(request: &Request, client: &ClientOptions) -> Result<RegInvImage, Error> {
    let concurrency = client.max_concurrency;
    match &request.source {
        Source::Registry(name) => {
            let root = open(name, client)?;
            let walked = walk::walk(&root, request.tag.as_deref(), concurrency)
                .await
                .map_err(|e| Error::registry(name, e))?;
            if walked.inventory.is_empty() {
                // Legitimate for a new mirror, but also what a typo in the name looks like.
                match &request.tag {
                    Some(t) => tracing::warn!("{name}: no image tagged {t} found"),
                    None => tracing::warn!("{name}: no tagged image found (is the registry name right?)"),
                }
            }
            if request.minimal {
                Ok(minimal::remove_child_digests(&root, &walked.inventory, &walked.media_types, concurrency).await)
            } else {
                Ok(walked.inventory)
            }
        }
        Source::Manifests { registry, manifests } => {
            if request.tag.is_some() {
                tracing::warn!("--snapshot-tag only applies to --snapshot; ignored for --manifest-based-snapshot-of");
            }
            let loaded = load(manifests, None).map_err(Error::Manifests)?;
            let edges = EdgeSet::from_manifests(&loaded);
            let overlaps = overlap_problems(&edges, &loaded);
            if !overlaps.is_empty() {
                return Err(Error::Overlaps(overlaps));
            }
            let inventory = from_manifests::inventory_of(&edges, registry);
            if !request.minimal {
                return Ok(inventory);
            }
            let root = open(registry, client)?;
            let none = Default::default();
            Ok(minimal::remove_child_digests(&root, &inventory, &none, concurrency).await)
        }
    }
}

fn open(name: &str, client: &ClientOptions) -> Result<RepoRoot, Error> {
    Registries::new(client.clone())
        .and_then(|r| r.open(name))
        .map_err(|e| Error::registry(name, e))
}
