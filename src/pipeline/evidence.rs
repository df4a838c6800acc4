//! What the trust checks found, as the policy engine's evidence. Provenance and Validate
//! record their findings here (`RunState::evidence`, per source image), and the policy
//! check that follows them reads nothing else; `trust` and `policy` stay unaware of each
//! other.
use crate::policy::{Provenance, StagingSignature};
use crate::trust::provenance::Facts;
use crate::trust::verify::Verdict;

/// The `provenance` facts of a source image, as the Provenance phase verified them
/// (unverified provenance leaves every field empty, whatever the attestation claimed).
pub(super) fn provenance(facts: &Facts) -> Provenance {
    if !facts.verified {
        return Provenance::default();
    }
    Provenance {
        verified: true,
        builder_id: facts.builder_id.clone(),
        source_repo: facts.source_repo.clone(),
        predicate_type: facts.predicate_type.clone(),
    }
}

/// The `staging_signature` facts of a source image from Validate's verdict on its `.sig`:
/// `present` when any signature is attached (valid, foreign or invalid), `verified` when
/// one is valid for the expected signer, `identity` the certificate identity of the first
/// valid keyless signature (empty for a key signature: a key names nobody).
pub(super) fn staging_signature(verdict: &Verdict) -> StagingSignature {
    StagingSignature {
        present: !verdict.unsigned(),
        verified: !verdict.valid.is_empty(),
        identity: verdict.signers.first().cloned().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(valid: &[&str], signers: &[&str], foreign: &[&str], invalid: &[&str]) -> Verdict {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Verdict {
            valid: owned(valid),
            signers: owned(signers),
            foreign: owned(foreign),
            invalid: owned(invalid),
        }
    }

    #[test]
    fn staging_signature_facts_from_each_kind_of_verdict() {
        let robot = "krel-trust@k8s-releng-prod.iam.gserviceaccount.com";
        let cases = [
            ("no .sig", verdict(&[], &[], &[], &[]), (false, false, "")),
            (
                "valid keyless",
                verdict(&["registry.k8s.io/pause"], &[robot], &[], &[]),
                (true, true, robot),
            ),
            (
                "valid with a key: nobody named",
                verdict(&["registry.k8s.io/pause"], &[], &[], &[]),
                (true, true, ""),
            ),
            (
                "only someone else's",
                verdict(&[], &[], &["signed by \"mallory@example.com\""], &[]),
                (true, false, ""),
            ),
            (
                "only a broken one",
                verdict(&[], &[], &[], &["does not verify"]),
                (true, false, ""),
            ),
            (
                "ours beside someone else's",
                verdict(&["registry.k8s.io/pause"], &[robot], &["someone else"], &[]),
                (true, true, robot),
            ),
        ];
        for (name, verdict, (present, verified, identity)) in cases {
            let facts = staging_signature(&verdict);
            assert_eq!(
                (facts.present, facts.verified, facts.identity.as_str()),
                (present, verified, identity),
                "{name}"
            );
        }
    }

    #[test]
    fn only_verified_provenance_reaches_the_policy() {
        let claimed = Facts {
            verified: false,
            builder_id: "https://example.com/builder".into(),
            source_repo: "https://github.com/kubernetes/foo".into(),
            predicate_type: "https://slsa.dev/provenance/v1".into(),
        };
        assert_eq!(provenance(&claimed), Provenance::default());
        let verified = Facts {
            verified: true,
            ..claimed
        };
        assert_eq!(
            provenance(&verified),
            Provenance {
                verified: true,
                builder_id: "https://example.com/builder".into(),
                source_repo: "https://github.com/kubernetes/foo".into(),
                predicate_type: "https://slsa.dev/provenance/v1".into(),
            }
        );
    }
}
