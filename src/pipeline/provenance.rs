//! Phase 3, Provenance: check the build provenance attached to every staging image to be
//! promoted, once per source digest whatever the number of tags and mirrors (Go's loop
//! per edge made runs time out), through the per-registry gate like every read.
//!
//! The rules are `trust::provenance`: verified (recorded as the policy engine's
//! `provenance` evidence, [`super::evidence`]), absent
//! (passes, as in Go), ignored (another signer or predicate type: a warning), failed
//! (refuses the run before any write). The referrers listed here are kept for Attest,
//! which carries them forward.
use std::collections::BTreeSet;

use futures_util::{StreamExt, stream};
use tracing::{error, info, warn};

use crate::digest::Digest;
use crate::trust::attached;
use crate::trust::provenance::{Judgement, Outcome, judge};
use crate::trust::verify::LazyPolicy;

use super::evidence;
use super::state::{ProvenanceRecord, RepoKey, RunState};
use super::{Error, Flow};

pub(super) async fn run(state: &mut RunState) -> Result<Flow, Error> {
    let sources: BTreeSet<(RepoKey, Digest)> = state
        .decided()
        .filter(|(_, d)| d.writes())
        .map(|(e, _)| (RepoKey::source_of(e), e.digest))
        .collect();
    if sources.is_empty() {
        return Ok(Flow::Continue);
    }
    let trust = &state.options.trust;
    let accepted = trust.provenance.predicate_type.as_str();
    let policy = LazyPolicy::new(
        trust.provenance.key.clone(),
        trust.staging.identity.clone(),
        trust.staging.trusted_root.clone(),
    );
    let checked: Vec<Result<_, Error>> = stream::iter(&sources)
        .map(|(key, digest)| {
            let policy = &policy;
            let state = &*state;
            async move {
                let repo = state.repo(*key)?;
                let reference = format!("{}@{digest}", repo.display);
                let failed = |e: crate::trust::Error| Error::Provenance {
                    count: 1,
                    first: format!("{reference}: {e}"),
                };
                let found = attached::read(&repo, digest, Some(accepted)).await.map_err(failed)?;
                let judgement = judge(&found, digest, accepted, policy).await.map_err(failed)?;
                Ok(((*key, *digest), reference, judgement, found.referrers))
            }
        })
        .buffer_unordered(trust.max_ops.max(1))
        .collect()
        .await;

    let mut refused = Vec::new();
    for result in checked {
        let (source, image, Judgement { outcome, facts, notes }, referrers) = result?;
        match outcome {
            Outcome::Failed => refused.extend(notes.iter().map(|n| format!("{image}: invalid provenance: {n}"))),
            Outcome::Ignored => {
                warn!(
                    "{image}: no provenance by the expected signer, promoted anyway: {}",
                    notes.join("; ")
                );
            }
            Outcome::Verified | Outcome::Absent => {}
        }
        if facts.verified {
            state.evidence.entry(source).or_default().provenance = evidence::provenance(&facts);
        }
        // Kept even when empty: an image with no referrers is the common case, and Attest
        // would otherwise list it again.
        state.staging_referrers.insert(source, referrers);
        state.provenance_report.push(ProvenanceRecord {
            image,
            outcome,
            facts,
            notes,
        });
    }
    state.provenance_report.sort_by(|a, b| a.image.cmp(&b.image));
    let count = |o| state.provenance_report.iter().filter(|r| r.outcome == o).count();
    info!(
        "provenance ({accepted}): {} of {} source images verified, {} absent, {} ignored, {} refused",
        count(Outcome::Verified),
        sources.len(),
        count(Outcome::Absent),
        count(Outcome::Ignored),
        count(Outcome::Failed)
    );
    for why in &refused {
        error!("{why}");
    }
    match refused.first() {
        Some(first) => Err(Error::Provenance {
            count: count(Outcome::Failed),
            first: first.clone(),
        }),
        None => Ok(Flow::Continue),
    }
}
