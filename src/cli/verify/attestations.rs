//! `kpromo verify --attestations`: every attestation attached to each image (sigstore
//! bundle referrers, cosign `.att` layers), each with its predicate type, subjects, signer
//! and verdict. An image passes when one of them verifies.
use serde::Serialize;

use super::{ExitKind, Failure, Output, resolve};
use crate::registry::Registries;
use crate::registry::image_ref::ImageRef;
use crate::trust::attached;
use crate::trust::verify::{Policy, Rejection};

/// One image's attestations.
#[derive(Debug, Serialize)]
pub(super) struct Checked {
    image: String,
    digest: Option<String>,
    /// One of its attestations verifies.
    verified: bool,
    attestations: Vec<Attestation>,
    error: Option<String>,
}

/// One attestation and its verdict.
#[derive(Debug, Serialize)]
struct Attestation {
    /// Where it is: a referrer manifest, or a layer of the `.att` manifest.
    at: String,
    predicate_type: Option<String>,
    /// `sha256:<hex>` of each subject.
    subjects: Vec<String>,
    /// `verified`, `foreign` (another signer), `invalid`, `unreadable`, or `skipped`
    /// (another predicate type than `--predicate-type`).
    verdict: &'static str,
    /// Who signed it, when it verifies.
    signer: Option<String>,
    /// Why it does not count.
    why: Option<String>,
}

/// Reads and checks the attestations of one image.
pub(super) async fn check(
    registries: &Registries,
    text: &str,
    image: &ImageRef,
    policy: &Policy,
    wanted: Option<&str>,
) -> Checked {
    let mut checked = Checked {
        image: text.to_string(),
        digest: None,
        verified: false,
        attestations: Vec::new(),
        error: None,
    };
    let outcome = async {
        let (repo, digest) = resolve(registries, image).await?;
        let found = attached::read(&repo, &digest, wanted)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((digest, found))
    }
    .await;
    let (digest, found) = match outcome {
        Ok(read) => read,
        Err(e) => {
            checked.error = Some(e);
            return checked;
        }
    };
    checked.digest = Some(digest.to_string());
    for skipped in found.skipped {
        checked.attestations.push(Attestation {
            at: skipped.at,
            predicate_type: Some(skipped.predicate_type),
            subjects: Vec::new(),
            verdict: "skipped",
            signer: None,
            why: wanted.map(|w| format!("not {w}")),
        });
    }
    for found in found.found {
        let attestation = match &found.read {
            Err(why) => Attestation {
                at: found.at,
                predicate_type: None,
                subjects: Vec::new(),
                verdict: "unreadable",
                signer: None,
                why: Some(why.clone()),
            },
            Ok(signed) => {
                let statement = signed.statement();
                let (verdict, signer, why) = if wanted.is_some_and(|w| w != statement.predicate_type) {
                    ("skipped", None, wanted.map(|w| format!("not {w}")))
                } else {
                    match signed.verify(&digest, policy) {
                        Ok(by) => ("verified", Some(by.name), None),
                        Err(Rejection::Foreign(why)) => ("foreign", None, Some(why)),
                        Err(Rejection::Invalid(why)) => ("invalid", None, Some(why)),
                    }
                };
                Attestation {
                    at: found.at,
                    predicate_type: Some(statement.predicate_type.clone()),
                    subjects: statement.subject_digests(),
                    verdict,
                    signer,
                    why,
                }
            }
        };
        checked.attestations.push(attestation);
    }
    checked.verified = checked.attestations.iter().any(|a| a.verdict == "verified");
    checked
}

/// Prints the results; exit 0 only when every image has an attestation that verifies.
pub(super) fn print(output: Output, results: &[Checked]) -> Result<ExitKind, Failure> {
    let all = results.iter().all(|r| r.verified);
    let text = match output {
        Output::Json => {
            let json = serde_json::to_string_pretty(results).map_err(|e| Failure::Output {
                what: "writing the verification report".into(),
                source: e.into(),
            })?;
            format!("{json}\n")
        }
        Output::Text => {
            let mut text = String::new();
            for r in results {
                let digest = r.digest.as_deref().unwrap_or("?");
                let head = match (&r.error, r.verified, r.attestations.is_empty()) {
                    (Some(e), _, _) => format!("ERROR {e}"),
                    (None, true, _) => "attestation verified".to_string(),
                    (None, false, true) => "NO ATTESTATION".to_string(),
                    (None, false, false) => "NOT VERIFIED".to_string(),
                };
                text.push_str(&format!("{} ({digest}): {head}\n", r.image));
                for a in &r.attestations {
                    let who = a.signer.as_deref().or(a.why.as_deref()).unwrap_or("");
                    text.push_str(&format!(
                        "  {} {} [{}] subjects {}: {who}\n",
                        a.verdict,
                        a.predicate_type.as_deref().unwrap_or("?"),
                        a.at,
                        a.subjects.join(", ")
                    ));
                }
            }
            text
        }
    };
    super::super::print(&text)?;
    Ok(if all { ExitKind::Success } else { ExitKind::Promotion })
}
