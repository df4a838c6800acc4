//! Runs a snapshot request end to end: load or walk, filter, trim.
use crate::edges::EdgeSet;
use crate::error::KpromoError;
use crate::manifest::ManifestSource;
use crate::manifest::load::load;
use crate::registry::{self, ClientOptions, Registries, RepoRoot};

use super::{RegInvImage, from_manifests, minimal, walk};

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

/// Takes the snapshot. Manifest problems are usage errors (exit 2); registry failures
/// are exit 1, except an unusable registry name, which is a usage error.
pub async fn take(request: &Request, client: &ClientOptions) -> Result<RegInvImage, KpromoError> {
    let concurrency = client.max_concurrency;
    match &request.source {
        Source::Registry(name) => {
            let root = open(name, client)?;
            let walked = walk::walk(&root, request.tag.as_deref(), concurrency)
                .await
                .map_err(|e| registry_error(name, e))?;
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
            let loaded =
                load(manifests, None).map_err(|e| KpromoError::usage(anyhow::anyhow!("loading manifests: {e}")))?;
            let edges = EdgeSet::from_manifests(&loaded);
            if !edges.overlaps().is_empty() {
                let list: Vec<String> = edges.overlaps().iter().map(|o| format!("  {o}")).collect();
                return Err(KpromoError::usage(anyhow::anyhow!(
                    "overlapping edges detected:\n{}",
                    list.join("\n")
                )));
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

fn open(name: &str, client: &ClientOptions) -> Result<RepoRoot, KpromoError> {
    Registries::new(client.clone())
        .and_then(|r| r.open(name))
        .map_err(|e| registry_error(name, e))
}

fn registry_error(name: &str, e: registry::Error) -> KpromoError {
    let kind_usage = matches!(e, registry::Error::InvalidReference { .. });
    let err = anyhow::Error::new(e).context(format!("snapshot of {name}"));
    if kind_usage {
        KpromoError::usage(err)
    } else {
        KpromoError::promotion(err)
    }
}
