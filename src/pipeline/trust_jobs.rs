//! What Sign signs and Attest attests, decided once for both: every promoted image
//! (index children and tagless digests included), once per signed name, at its canonical
//! destination. Sign decides it and leaves it in the run state for Attest.
use std::collections::{BTreeMap, BTreeSet};

use futures_util::{StreamExt, stream};

use crate::copy::{self, Repo};
use crate::digest::Digest;
use crate::edges::NameId;
use crate::registry::media::ManifestLinks;
use crate::registry::{Descriptor, ManifestRef};

use super::Error;
use super::decide::Decision;
use super::state::{RepoKey, RunState};

/// Index nesting followed to find children (as the copy engine's bound).
const MAX_DEPTH: usize = 4;

/// One image to sign and attest: where, for which name, where its staging copy is.
#[derive(Debug, Clone)]
pub struct TrustJob {
    /// The canonical destination repository.
    pub at: RepoKey,
    pub staging: RepoKey,
    /// The public name signatures and attestations vouch for.
    pub identity: String,
    pub image: Digest,
    /// The image's manifest at `at`, when known: from what Promote delivered, the index
    /// listing it, or a HEAD. `None` when the HEAD found nothing there.
    pub descriptor: Option<Descriptor>,
    /// The other destinations holding this image (for `--replicate-signatures`).
    pub mirrors: BTreeSet<RepoKey>,
}

/// The jobs of this run: one per (signed name, digest) of the edges whose image is now at
/// its destination, then one per child of every index among them, recursively (cosign's
/// `--recursive`, so a platform image pulled by digest verifies too).
pub async fn plan(state: &RunState) -> Result<Vec<TrustJob>, Error> {
    with_children(state, tops(state)).await
}

/// (image, source registry) name ids: one image of one staging registry.
type NameIdPair = (NameId, NameId);

/// The destination repositories of one signed name, and the staging repository.
type Destinations = (BTreeSet<RepoKey>, RepoKey);

fn tops(state: &RunState) -> Vec<TrustJob> {
    let target = &state.options.trust.target;
    let mut by_identity: BTreeMap<(NameIdPair, Digest), BTreeMap<String, Destinations>> = BTreeMap::new();
    for (edge, decision) in state.decided() {
        let promoted = matches!(
            decision,
            Decision::Copy | Decision::Retag | Decision::Skip | Decision::SkipStillLost
        );
        // Signature and attestation tags promoted as images are not signed again.
        let is_attachment = state
            .edges
            .tag(edge)
            .is_some_and(|t| t.ends_with(".sig") || t.ends_with(".att"));
        if !promoted || is_attachment {
            continue;
        }
        let registry = state.edges.name(edge.dst_registry);
        let identity = target.identity(registry, state.edges.name(edge.image));
        let entry = by_identity
            .entry(((edge.image, edge.src_registry), edge.digest))
            .or_default()
            .entry(identity)
            .or_insert_with(|| (BTreeSet::new(), RepoKey::source_of(edge)));
        entry.0.insert(RepoKey::destination_of(edge));
    }
    let mut out = Vec::new();
    for ((_, digest), identities) in by_identity {
        for (identity, (destinations, staging)) in identities {
            let names: Vec<&str> = destinations.iter().map(|d| state.edges.name(d.registry)).collect();
            let Some(canonical) = target.canonical(&names) else {
                continue;
            };
            let Some(at) = destinations.iter().find(|d| state.edges.name(d.registry) == canonical) else {
                continue;
            };
            out.push(TrustJob {
                at: *at,
                staging,
                identity,
                image: digest,
                descriptor: None,
                mirrors: destinations.iter().filter(|d| *d != at).copied().collect(),
            });
        }
    }
    out
}

/// Adds a job for every child of an index (recursively), read from where it is signed,
/// and fills in each job's descriptor.
async fn with_children(state: &RunState, tops: Vec<TrustJob>) -> Result<Vec<TrustJob>, Error> {
    // What Promote delivered is known: no read to learn it is no index.
    let known: BTreeMap<Digest, Descriptor> = state
        .promote
        .subjects
        .iter()
        .map(|s| {
            let descriptor = Descriptor {
                digest: s.digest,
                media_type: s.media_type.clone(),
                size: s.size,
            };
            (s.digest, descriptor)
        })
        .collect();
    let mut all: BTreeMap<(RepoKey, Digest), TrustJob> = BTreeMap::new();
    let mut frontier = tops;
    for _depth in 0..=MAX_DEPTH {
        let mut next = Vec::new();
        let reads: Vec<Result<(TrustJob, Vec<Descriptor>), Error>> = stream::iter(frontier)
            .filter(|job| std::future::ready(!all.contains_key(&(job.at, job.image))))
            .map(|mut job| {
                if job.descriptor.is_none() {
                    job.descriptor = known.get(&job.image).cloned();
                }
                async move {
                    let at = state.repo(job.at)?;
                    let (descriptor, children) = children_of(&at, &job.image, job.descriptor.take()).await?;
                    job.descriptor = descriptor;
                    Ok((job, children))
                }
            })
            .buffer_unordered(copy::PENDING_REQUESTS)
            .collect()
            .await;
        for read in reads {
            let (job, children) = read?;
            for child in children {
                // An entry without a media type says too little: its own HEAD tells.
                let known = !child.media_type.as_str().is_empty();
                next.push(TrustJob {
                    image: child.digest,
                    descriptor: known.then_some(child),
                    ..job.clone()
                });
            }
            all.insert((job.at, job.image), job);
        }
        if next.is_empty() {
            break;
        }
        frontier = next;
    }
    Ok(all.into_values().collect())
}

/// The descriptor of `image` at `at` (a HEAD when not `known`), and its children when it
/// is an index (the index read whole).
async fn children_of(
    at: &Repo,
    image: &Digest,
    known: Option<Descriptor>,
) -> Result<(Option<Descriptor>, Vec<Descriptor>), Error> {
    let read = |source| Error::Read {
        during: "reading promoted images to sign and attest",
        source: Box::new(source),
    };
    let by_digest = ManifestRef::Digest(*image);
    let descriptor = match known {
        Some(known) => Some(known),
        None => at.registry.head_manifest(&at.path, &by_digest).await.map_err(read)?,
    };
    if !descriptor.as_ref().is_some_and(|d| d.media_type.is_index()) {
        return Ok((descriptor, Vec::new()));
    }
    let Some(manifest) = at.registry.get_manifest(&at.path, &by_digest).await.map_err(read)? else {
        return Ok((descriptor, Vec::new()));
    };
    if !manifest.media_type.is_index() {
        return Ok((descriptor, Vec::new()));
    }
    let children = ManifestLinks::parse(&manifest.bytes)
        .map(|links| links.manifests)
        .unwrap_or_default()
        .into_iter()
        .map(|c| Descriptor {
            digest: c.digest,
            media_type: c.media_type,
            size: c.size,
        })
        .collect();
    Ok((descriptor, children))
}
