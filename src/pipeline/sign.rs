//! Phase 6, Sign: sign every promoted image (index children and tagless digests
//! included) once per signed name, at its canonical destination, keeping the builder's
//! staging signatures; then, with `--replicate-signatures`, copy the `.sig` manifests to
//! the other destinations with the copy engine.
//!
//! The domain work is `trust::sign`; what to sign where is `trust_jobs`, which this phase
//! leaves in the run state for Attest.
use futures_util::{StreamExt, stream};
use tracing::{error, info};

use crate::copy;
use crate::registry::ManifestRef;
use crate::trust::cosign::signature_tag;
use crate::trust::sign::{Outcome, Staging, sign_image};

use super::state::{RunState, SignReport, Signed};
use super::trust_jobs::{self, TrustJob};
use super::{Error, Flow};

pub(super) async fn run(state: &mut RunState) -> Result<Flow, Error> {
    if !state.options.sign {
        info!("signing disabled (--sign=false)");
        return Ok(Flow::Continue);
    }
    let Some(signer) = &state.signer else {
        // Setup builds a signer for every run that reaches this phase.
        return Err(Error::NoSigner(Vec::new()));
    };
    let jobs = trust_jobs::plan(state).await?;
    info!("signing {} images with {}", jobs.len(), signer.describe().await);
    let version = env!("CARGO_PKG_VERSION");
    let state_ref = &*state;
    let results: Vec<(TrustJob, Result<Outcome, crate::trust::Error>)> = stream::iter(jobs.clone())
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
    let mut replicate: Vec<TrustJob> = Vec::new();
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
    state.trust_jobs = Some(jobs);
    match failed {
        Some((reference, why)) => Err(Error::Unsigned {
            count,
            first: format!("{reference}: {why}"),
        }),
        None => Ok(Flow::Continue),
    }
}

/// `--replicate-signatures`: the `.sig` manifest of every signed image, copied from its
/// canonical destination to the others with the copy engine (one read, fanned out). A
/// mirror whose signature tag already names the same manifest is left alone, so a rerun
/// writes nothing; one HEAD per mirror costs less than the manifest and tag PUTs it saves.
async fn replicate_signatures(state: &RunState, jobs: &[TrustJob], report: &mut SignReport) -> Result<(), Error> {
    let found: Vec<Result<Option<Replica>, Error>> = stream::iter(jobs)
        .map(|job| replica(state, job))
        .buffer_unordered(copy::PENDING_REQUESTS)
        .collect()
        .await;
    let mut request = copy::Request::default();
    for replica in found {
        let Some(replica) = replica? else {
            continue;
        };
        let source = request.repo(replica.from);
        for mirror in replica.lacking {
            let mirror = request.repo(mirror);
            request.want((source, replica.digest), mirror, true, Some(replica.tag.clone()));
        }
    }
    if request.is_empty() {
        return Ok(());
    }
    let copied = copy::run(&request, &state.cancel).await;
    report.replicated = copied.delivered.len();
    for failure in copied.failures {
        report.failed.push((failure.at.clone(), failure.cause.to_string()));
    }
    Ok(())
}

/// One image's signature to replicate: where it is, and the mirrors that lack it.
struct Replica {
    from: copy::Repo,
    digest: crate::digest::Digest,
    tag: String,
    lacking: Vec<copy::Repo>,
}

/// Finds the image's `.sig` manifest at its canonical destination (none: nothing to
/// replicate) and the mirrors whose signature tag does not name it. A mirror that cannot
/// say counts as lacking it: the copy is idempotent.
async fn replica(state: &RunState, job: &TrustJob) -> Result<Option<Replica>, Error> {
    let read_error = |source| Error::Read {
        during: "reading signatures to replicate",
        source: Box::new(source),
    };
    let from = state.repo(job.at)?;
    let tag = signature_tag(&job.image);
    let reference = ManifestRef::Tag(tag.clone());
    let Some(sig) = from
        .registry
        .head_manifest(&from.path, &reference)
        .await
        .map_err(read_error)?
    else {
        return Ok(None);
    };
    let mut lacking = Vec::new();
    for mirror in &job.mirrors {
        let mirror = state.repo(*mirror)?;
        let there = mirror.registry.head_manifest(&mirror.path, &reference).await;
        if !matches!(there, Ok(Some(found)) if found.digest == sig.digest) {
            lacking.push(mirror);
        }
    }
    Ok(Some(Replica {
        from,
        digest: sig.digest,
        tag,
        lacking,
    }))
}
