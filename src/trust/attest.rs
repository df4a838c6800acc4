//! Attesting one promoted image at one repository: an in-toto promotion Statement, signed
//! as a DSSE envelope by the run's signer, in a sigstore bundle v0.3, attached as an OCI
//! 1.1 referrer ([`Registry::put_referrer`]: the referrers API, or the fallback index).
//!
//! Unless this signer already attested the image there: a referrer of the promotion
//! predicate type that verifies as this signer's and names the image is enough, whichever
//! run wrote it (the record says the digest was promoted, which stays true), so a rerun
//! adds nothing and no Rekor entry. Blobs are written before the manifest that names them,
//! and the manifest before the index that lists it.
//!
//! [`Registry::put_referrer`]: crate::registry::Registry::put_referrer
use super::attached::from_referrers;
use super::attestation::{
    EMPTY_CONFIG_BYTES, IN_TOTO_PAYLOAD_TYPE, PROMOTION_PREDICATE_TYPE, PromotionRecord, bundle, promotion_statement,
    referrer_manifest,
};
use super::sign::put_bytes;
use super::signer::Signer;
use super::{Error, reference};
use crate::copy::Repo;
use crate::digest::Digest;
use crate::registry::{Descriptor, Referrer};

/// What attesting one image did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A new attestation was attached: this referrer manifest.
    Attested(Digest),
    /// This signer's promotion attestation of the image was already there.
    AlreadyAttested,
}

/// What the attestation of one image says.
#[derive(Debug, Clone, Copy)]
pub struct Promotion<'a> {
    /// The public name (the Statement's subject name, the name signatures vouch for).
    pub name: &'a str,
    pub record: &'a PromotionRecord,
}

/// Attests `image` at `at`, whose referrers are `existing` (as listed there), unless this
/// signer already did. The empty config blob must already be there
/// ([`put_empty_config`]), once per repository.
pub async fn attest_image(
    signer: &Signer,
    at: &Repo,
    image: &Descriptor,
    existing: &[Referrer],
    promotion: Promotion<'_>,
) -> Result<Outcome, Error> {
    if attested_by(signer, at, &image.digest, existing).await? {
        return Ok(Outcome::AlreadyAttested);
    }
    let statement = promotion_statement(promotion.name, &image.digest, promotion.record);
    let (envelope, material) = signer.sign_dsse(IN_TOTO_PAYLOAD_TYPE, &statement).await?;
    let bundle = bundle(&envelope, &material);
    let manifest = referrer_manifest(image, &bundle, PROMOTION_PREDICATE_TYPE, &promotion.record.timestamp);
    put_bytes(at, &Digest::of(&bundle), bundle).await?;
    at.registry.put_referrer(&at.path, &manifest).await?;
    Ok(Outcome::Attested(manifest.digest))
}

/// Uploads the empty config every attestation manifest names, unless `at` has it.
pub async fn put_empty_config(at: &Repo) -> Result<(), Error> {
    let digest = Digest::of(EMPTY_CONFIG_BYTES);
    if at.registry.blob_size(&at.path, &digest).await?.is_none() {
        put_bytes(at, &digest, bytes::Bytes::from_static(EMPTY_CONFIG_BYTES)).await?;
    }
    Ok(())
}

/// Whether one of `existing` is a promotion attestation of `image` by `signer`. An
/// attestation that cannot be read or does not verify does not count, so the image is
/// attested again; a registry that fails while answering stops here instead, since a
/// second attestation is what idempotency is for.
async fn attested_by(signer: &Signer, at: &Repo, image: &Digest, existing: &[Referrer]) -> Result<bool, Error> {
    let attached = from_referrers(at, existing, Some(PROMOTION_PREDICATE_TYPE)).await?;
    if attached.found.is_empty() {
        return Ok(false);
    }
    let policy = signer.policy().await;
    for found in &attached.found {
        match &found.read {
            Ok(signed) if signed.statement().predicate_type == PROMOTION_PREDICATE_TYPE => {
                match signed.verify(image, &policy) {
                    Ok(_) => return Ok(true),
                    Err(why) => tracing::debug!("{}: not this signer's attestation of {image}: {why}", found.at),
                }
            }
            Ok(_) => {}
            Err(why) => tracing::debug!(
                "{}: unreadable attestation of {}: {why}",
                found.at,
                reference(&at.display, image)
            ),
        }
    }
    Ok(false)
}
