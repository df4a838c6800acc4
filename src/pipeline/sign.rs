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
/// canonical destination to the others with the copy engine (one read, fanned out).
async fn replicate_signatures(state: &RunState, jobs: &[TrustJob], report: &mut SignReport) -> Result<(), Error> {
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
