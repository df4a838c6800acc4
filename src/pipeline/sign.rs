//! Phase 6, Sign: sign every promoted image (index children and tagless digests
//! included) once per signed name, at its canonical destination, keeping the builder's
//! staging signatures; then, with `--replicate-signatures`, copy the `.sig` manifests to
//! the other destinations with the copy engine.
//!
//! The domain work is `trust::sign`; this phase only decides what to sign where.
use std::collections::{BTreeMap, BTreeSet};

use futures_util::{StreamExt, stream};
use tracing::{error, info};

use crate::copy::{self, Repo};
use crate::digest::Digest;
use crate::registry::media::references;
use crate::registry::{ManifestRef, MediaType};
use crate::trust::cosign::signature_tag;
use crate::trust::sign::{Outcome, Staging, sign_image};

use super::decide::Decision;
use super::state::{RepoKey, RunState, SignReport, Signed};
use super::{Error, Flow};

/// Index nesting followed to find children to sign (as the copy engine's bound).
const MAX_DEPTH: usize = 4;

/// One image to sign: where, for which name, and where its staging signatures are.
#[derive(Debug, Clone)]
struct Job {
    at: RepoKey,
    staging: RepoKey,
    identity: String,
    image: Digest,
    /// The other destinations holding this image (for `--replicate-signatures`).
    mirrors: BTreeSet<RepoKey>,
}

pub(super) async fn run(state: &mut RunState) -> Result<Flow, Error> {
    if !state.options.sign {
        info!("signing disabled (--sign=false)");
        return Ok(Flow::Continue);
    }
    let Some(signer) = &state.signer else {
        // Setup builds a signer for every run that reaches this phase.
        return Err(Error::NoSigner(Vec::new()));
    };
    let tops = jobs(state);
    let jobs = with_children(state, tops).await?;
    info!("signing {} images with {}", jobs.len(), signer.describe().await);
    let version = env!("CARGO_PKG_VERSION");
    let state_ref = &*state;
    let results: Vec<(Job, Result<Outcome, crate::trust::Error>)> = stream::iter(jobs)
        .map(|job| async move {
            let outcome = async {
                let at = state_ref
                    .repo(job.at)
                    .map_err(|e| crate::trust::Error::Signer(e.to_string()))?;
                let staging = state_ref
                    .repo(job.staging)
                    .map_err(|e| crate::trust::Error::Signer(e.to_string()))?;
                let validated = state_ref.staging_signatures.get(&(job.staging, job.image));
                let staging = Staging {
                    repo: &staging,
                    signatures: validated,
                };
                sign_image(signer, &at, &job.image, &job.identity, Some(staging), version).await
            }
            .await;
            (job, outcome)
        })
        .buffer_unordered(state.options.trust.max_ops.max(1))
        .collect()
        .await;

    let mut report = SignReport::default();
    let mut replicate: Vec<Job> = Vec::new();
    for (job, outcome) in results {
        let reference = format!("{}@{}", state.repo_display(job.at), job.image);
        match outcome {
            Ok(outcome) => {
                report.signed.push(Signed {
                    reference,
                    newly: outcome == Outcome::Signed,
                });
                if state.options.trust.replicate && !job.mirrors.is_empty() {
                    replicate.push(job);
                }
            }
            Err(e) => {
                error!("{reference}: signing failed: {e}");
                report.failed.push((reference, e.to_string()));
            }
        }
    }
    if !replicate.is_empty() {
        replicate_signatures(state, &replicate, &mut report).await?;
    }
    info!(
        "signatures: {} new, {} already there, {} failed",
        report.signed.iter().filter(|s| s.newly).count(),
        report.signed.iter().filter(|s| !s.newly).count(),
        report.failed.len()
    );
    let failed = report.failed.first().cloned();
    let count = report.failed.len();
    state.signing = report;
    match failed {
        Some((reference, why)) => Err(Error::Unsigned {
            count,
            first: format!("{reference}: {why}"),
        }),
        None => Ok(Flow::Continue),
    }
}

/// One job per (signed name, digest) of the edges whose image is now at its destination.
fn jobs(state: &RunState) -> Vec<Job> {
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
            out.push(Job {
                at: *at,
                staging,
                identity,
                image: digest,
                mirrors: destinations.iter().filter(|d| *d != at).copied().collect(),
            });
        }
    }
    out
}

/// (image, source registry) name ids: one image of one staging registry.
type NameIdPair = (crate::edges::NameId, crate::edges::NameId);

/// The destination repositories of one signed name, and the staging repository.
type Destinations = (BTreeSet<RepoKey>, RepoKey);

/// Adds a job for every child of an index (recursively), read from where it is signed:
/// cosign's `--recursive`, so a platform image pulled by digest verifies too.
async fn with_children(state: &RunState, tops: Vec<Job>) -> Result<Vec<Job>, Error> {
    // What Promote delivered has a known media type: no read to learn it is no index.
    let known: BTreeMap<Digest, &MediaType> = state
        .promote
        .subjects
        .iter()
        .map(|s| (s.digest, &s.media_type))
        .collect();
    let mut all: BTreeMap<(RepoKey, Digest), Job> = BTreeMap::new();
    let mut frontier = tops;
    for _depth in 0..=MAX_DEPTH {
        let mut next = Vec::new();
        let reads: Vec<Result<(Job, Vec<Digest>), Error>> = stream::iter(frontier)
            .filter(|job| std::future::ready(!all.contains_key(&(job.at, job.image))))
            .map(|job| {
                let known = known.get(&job.image).copied();
                async move {
                    let at = state.repo(job.at)?;
                    let children = children_of(&at, &job.image, known).await?;
                    Ok((job, children))
                }
            })
            .buffer_unordered(copy::PENDING_REQUESTS)
            .collect()
            .await;
        for read in reads {
            let (job, children) = read?;
            for child in children {
                next.push(Job {
                    image: child,
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

/// The children of `image` at `at` when it is an index. Only an index is read whole;
/// an image of unknown media type costs one HEAD.
async fn children_of(at: &Repo, image: &Digest, media_type: Option<&MediaType>) -> Result<Vec<Digest>, Error> {
    let read = |source| Error::Read {
        during: "reading promoted images to sign",
        source: Box::new(source),
    };
    let by_digest = ManifestRef::Digest(*image);
    let is_index = match media_type {
        Some(known) => known.is_index(),
        None => at
            .registry
            .head_manifest(&at.path, &by_digest)
            .await
            .map_err(read)?
            .is_some_and(|d| d.media_type.is_index()),
    };
    if !is_index {
        return Ok(Vec::new());
    }
    let Some(manifest) = at
        .registry
        .get_manifest(&at.path, &ManifestRef::Digest(*image))
        .await
        .map_err(read)?
    else {
        return Ok(Vec::new());
    };
    if !manifest.media_type.is_index() {
        return Ok(Vec::new());
    }
    Ok(references(&manifest).map(|r| r.children).unwrap_or_default())
}

/// `--replicate-signatures`: the `.sig` manifest of every signed image, copied from its
/// canonical destination to the others with the copy engine (one read, fanned out).
async fn replicate_signatures(state: &RunState, jobs: &[Job], report: &mut SignReport) -> Result<(), Error> {
    let mut request = copy::Request::default();
    for job in jobs {
        let at = state.repo(job.at)?;
        let tag = signature_tag(&job.image);
        let Some(sig) = at
            .registry
            .head_manifest(&at.path, &ManifestRef::Tag(tag.clone()))
            .await
            .map_err(|source| Error::Read {
                during: "reading signatures to replicate",
                source: Box::new(source),
            })?
        else {
            continue;
        };
        let source = request.repo(at);
        for mirror in &job.mirrors {
            let mirror = request.repo(state.repo(*mirror)?);
            request.want((source, sig.digest), mirror, true, Some(tag.clone()));
        }
    }
    let copied = copy::run(&request, &state.cancel).await;
    report.replicated = copied.delivered.len();
    for failure in copied.failures {
        report.failed.push((failure.at.clone(), failure.cause.to_string()));
    }
    Ok(())
}
