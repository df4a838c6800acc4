//! Phase 4, Validate: check the staging images' signatures, once per source digest
//! whatever the number of tags and mirrors; then ask the policy (`--policy`,
//! [`super::authorize`]) about every edge to write, now that Provenance and the signature
//! checks have gathered its evidence; then stop here unless `--confirm`. Nothing has been
//! written yet, so a denied edge leaves the registries untouched.
//!
//! A staging image without a `.sig` passes (as in Go), unless
//! `--require-staging-signature`. One with a signature that does not verify (tampered,
//! or for another digest) stops the run before any write. One signed only by someone
//! else than the expected identity passes with a warning, or stops the run with
//! `--require-staging-signature`.
use std::collections::{BTreeMap, BTreeSet};

use futures_util::{StreamExt, stream};
use tracing::{info, warn};

use crate::digest::Digest;
use crate::policy::StagingSignature;
use crate::trust::cosign::Signatures;
use crate::trust::verify::{LazyPolicy, Verdict, attached_signatures, verify_signatures};

use super::state::{RepoKey, RunState, SourceImage};
use super::{Error, Flow, authorize, evidence};

pub(super) async fn run(state: &mut RunState) -> Result<Flow, Error> {
    let sources: BTreeSet<(RepoKey, Digest)> = state
        .decided()
        .filter(|(_, d)| d.writes())
        .map(|(e, _)| (RepoKey::source_of(e), e.digest))
        .collect();
    if !sources.is_empty() {
        let (signatures, evidence) = check_staging_signatures(state, sources).await?;
        state.staging_signatures = signatures;
        for (source, staging_signature) in evidence {
            state.evidence.entry(source).or_default().staging_signature = staging_signature;
        }
    }
    authorize::enforce(state)?;
    if !state.options.confirm {
        return Ok(Flow::Stop(
            "dry run complete, exiting before promotion (pass --confirm to promote)",
        ));
    }
    Ok(Flow::Continue)
}

/// One source image, its reference for messages, its signatures and their verdict.
type Checked = ((RepoKey, Digest), String, Signatures, Verdict);

/// The signatures read, for Sign to carry over, and what each source image's amount to
/// as the policy's `staging_signature` evidence.
type Findings = (BTreeMap<SourceImage, Signatures>, Vec<(SourceImage, StagingSignature)>);

/// Checks every source image's signatures.
async fn check_staging_signatures(state: &RunState, sources: BTreeSet<SourceImage>) -> Result<Findings, Error> {
    let staging = &state.options.trust.staging;
    // Built once a staging signature turns up: most staging images are unsigned.
    let policy = LazyPolicy::new(
        staging.key.clone(),
        staging.identity.clone(),
        staging.trusted_root.clone(),
    );
    let checked: Vec<Result<Checked, Error>> = stream::iter(&sources)
        .map(|(key, digest)| {
            let policy = &policy;
            async move {
                let repo = state.repo(*key)?;
                let reference = format!("{}@{digest}", repo.display);
                let read = |e: crate::trust::Error| Error::StagingSignatures {
                    count: 1,
                    first: format!("{reference}: {e}"),
                };
                let signatures = attached_signatures(&repo, digest).await.map_err(read)?;
                let verdict = if signatures.layers.is_empty() {
                    Verdict::default()
                } else {
                    let policy = policy.get().await.map_err(|e| Error::StagingSignatures {
                        count: 1,
                        first: format!("setting up staging signature checks: {e}"),
                    })?;
                    verify_signatures(&repo, digest, &signatures, policy)
                        .await
                        .map_err(read)?
                };
                Ok(((*key, *digest), reference, signatures, verdict))
            }
        })
        .buffer_unordered(state.options.trust.max_ops.max(1))
        .collect()
        .await;

    let mut refused: Vec<String> = Vec::new();
    let (mut signed, mut unsigned) = (0, 0);
    let mut read = BTreeMap::new();
    let mut evidence = Vec::with_capacity(checked.len());
    for result in checked {
        let (source, reference, signatures, verdict) = result?;
        evidence.push((source, evidence::staging_signature(&verdict)));
        if !signatures.layers.is_empty() {
            read.insert(source, signatures);
        }
        if !verdict.invalid.is_empty() {
            refused.extend(
                verdict
                    .invalid
                    .iter()
                    .map(|why| format!("{reference}: invalid signature: {why}")),
            );
        } else if !verdict.valid.is_empty() {
            signed += 1;
        } else if verdict.unsigned() {
            unsigned += 1;
            if staging.require {
                refused.push(format!("{reference}: not signed (--require-staging-signature)"));
            }
        } else {
            let why = verdict.foreign.join("; ");
            if staging.require {
                refused.push(format!("{reference}: no signature by the expected signer: {why}"));
            } else {
                warn!("{reference}: staging signature by another signer, promoted anyway: {why}");
            }
        }
    }
    info!(
        "staging signatures: {signed} of {} source images verified, {unsigned} unsigned",
        sources.len()
    );
    for why in &refused {
        tracing::error!("{why}");
    }
    match refused.first() {
        Some(first) => Err(Error::StagingSignatures {
            count: refused.len(),
            first: first.clone(),
        }),
        None => Ok((read, evidence)),
    }
}
