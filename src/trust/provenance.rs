//! Judging a staging image's build provenance from the attestations attached to it
//! ([`super::attached`]): Go kpromo v4.6.0's rules (promo-tools #1943, #1965), plus
//! OCI referrers.
//!
//! | found | outcome |
//! |---|---|
//! | nothing | absent: passes, as in Go |
//! | an attestation of the accepted predicate type, by the expected signer, about the image | verified: its builder and source repository are recorded |
//! | only attestations by someone else, or of other predicate types | ignored: passes with a warning |
//! | one of the accepted type by the expected signer that does not verify, names another digest, or cannot be read | failed: refuses the run |
//!
//! "By someone else" needs a keyless signature that verifies against the trusted root for
//! another identity; with a key, a signature that does not verify is just invalid.
use super::Error;
use super::attached::Attached;
use super::attestation::provenance_facts;
use super::verify::{LazyPolicy, Rejection};
use crate::digest::Digest;

/// What a source image's attestations amount to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Verified,
    Absent,
    Ignored,
    Failed,
}

/// The build provenance recorded for a source image: the policy engine's `provenance`
/// facts, one for one.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Facts {
    pub verified: bool,
    pub builder_id: String,
    pub source_repo: String,
    pub predicate_type: String,
}

/// The outcome for one image, its facts, and why (one line per attestation that was
/// ignored or failed).
#[derive(Debug, Clone)]
pub struct Judgement {
    pub outcome: Outcome,
    pub facts: Facts,
    pub notes: Vec<String>,
}

/// Judges the attestations attached to `image` for predicate type `accepted`. The policy
/// is built only when an attestation of that type turns up.
pub async fn judge(
    attached: &Attached,
    image: &Digest,
    accepted: &str,
    policy: &LazyPolicy,
) -> Result<Judgement, Error> {
    let mut facts = Facts::default();
    let (mut ignored, mut failed) = (Vec::new(), Vec::new());
    for skipped in &attached.skipped {
        ignored.push(format!(
            "{}: predicate type {}, not {accepted}",
            skipped.at, skipped.predicate_type
        ));
    }
    for found in &attached.found {
        let signed = match &found.read {
            Ok(signed) => signed,
            Err(why) => {
                failed.push(format!("{}: cannot be read: {why}", found.at));
                continue;
            }
        };
        let statement = signed.statement();
        if statement.predicate_type != accepted {
            ignored.push(format!(
                "{}: predicate type {}, not {accepted}",
                found.at, statement.predicate_type
            ));
            continue;
        }
        match signed.verify(image, policy.get().await?) {
            Ok(_) if !facts.verified => {
                let (builder_id, source_repo) = provenance_facts(&statement.predicate);
                facts = Facts {
                    verified: true,
                    builder_id,
                    source_repo,
                    predicate_type: accepted.to_string(),
                };
            }
            Ok(_) => {}
            Err(Rejection::Foreign(why)) => ignored.push(format!("{}: {why}", found.at)),
            Err(Rejection::Invalid(why)) => failed.push(format!("{}: {why}", found.at)),
        }
    }
    let (outcome, notes) = if !failed.is_empty() {
        (Outcome::Failed, failed)
    } else if facts.verified {
        (Outcome::Verified, ignored)
    } else if !ignored.is_empty() {
        (Outcome::Ignored, ignored)
    } else {
        (Outcome::Absent, Vec::new())
    };
    Ok(Judgement { outcome, facts, notes })
}
