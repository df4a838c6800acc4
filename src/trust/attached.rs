//! Reading the attestations attached to an image: cosign's `sha256-<hex>.att` tag (one
//! DSSE envelope per layer, the signer's certificate and log entry in annotations) and OCI
//! 1.1 referrers that are sigstore bundles (kpromo's own, cosign v3's). Every read is
//! capped; what cannot be read is reported as such, never skipped silently, because an
//! attestation that cannot be checked must not pass as one that is absent.
//!
//! An attestation that declares another predicate type than the one wanted (cosign's
//! `predicateType` layer annotation, the bundle referrer's
//! `dev.sigstore.bundle.predicateType`) is not read at all. Referrers of other kinds
//! (SBOMs, signatures) are only listed.
use tracing::debug;

use super::attestation::{EMPTY_CONFIG, PREDICATE_TYPE_ANNOTATION, bundle_layer, is_bundle};
use super::cosign::{self, DSSE_ENVELOPE, attestation_tag};
use super::verify::SignedStatement;
use super::{Error, read_capped, reference};
use crate::copy::Repo;
use crate::digest::Digest;
use crate::registry::media::ManifestLinks;
use crate::registry::{ManifestRef, Referrer};

/// Largest attestation read (a DSSE envelope or a bundle): the SLSA provenance of a large
/// build is some hundred kilobytes.
pub const MAX_ATTESTATION: usize = 8 << 20;

/// One attestation found attached to an image.
#[derive(Debug)]
pub struct Found {
    /// Where it is: `repo:sha256-<hex>.att` and the layer, or `repo@<referrer digest>`.
    pub at: String,
    /// The signed Statement, or why it cannot be read.
    pub read: Result<SignedStatement, String>,
}

/// An attestation not read because it declares another predicate type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub at: String,
    pub predicate_type: String,
}

/// What is attached to one image.
#[derive(Debug, Default)]
pub struct Attached {
    pub found: Vec<Found>,
    pub skipped: Vec<Skipped>,
    /// Every referrer of the image, attestations or not, as listed.
    pub referrers: Vec<Referrer>,
}

/// Reads the attestations attached to `image` in `repo`, only those that may be of
/// predicate type `wanted` when given.
pub async fn read(repo: &Repo, image: &Digest, wanted: Option<&str>) -> Result<Attached, Error> {
    let mut attached = from_att_tag(repo, image, wanted).await?;
    let referrers = repo.registry.list_referrers(&repo.path, image, None).await?;
    let from_referrers = from_referrers(repo, &referrers, wanted).await?;
    attached.found.extend(from_referrers.found);
    attached.skipped.extend(from_referrers.skipped);
    attached.referrers = referrers;
    Ok(attached)
}

/// The attestations in `image`'s `.att` manifest.
async fn from_att_tag(repo: &Repo, image: &Digest, wanted: Option<&str>) -> Result<Attached, Error> {
    let tag = ManifestRef::Tag(attestation_tag(image));
    let mut attached = Attached::default();
    let Some(manifest) = repo.registry.get_manifest(&repo.path, &tag).await? else {
        return Ok(attached);
    };
    let manifest_at = format!("{}{tag}", repo.display);
    let layers = match cosign::layers(&manifest, DSSE_ENVELOPE) {
        Ok(layers) => layers,
        Err(why) => {
            attached.found.push(Found {
                at: manifest_at,
                read: Err(why),
            });
            return Ok(attached);
        }
    };
    for layer in layers {
        let at = format!("{manifest_at} layer {}", layer.digest);
        if let Some(skipped) = skip(&at, layer.annotations.get(cosign::PREDICATE_TYPE_ANNOTATION), wanted) {
            attached.skipped.push(skipped);
            continue;
        }
        let read = match read_attestation(repo, &layer.digest).await? {
            Ok(envelope) => SignedStatement::from_cosign_layer(&envelope, &layer.annotations),
            Err(why) => Err(why),
        };
        attached.found.push(Found { at, read });
    }
    Ok(attached)
}

/// The sigstore bundle attestations among `referrers` (listed in `repo`).
pub async fn from_referrers(repo: &Repo, referrers: &[Referrer], wanted: Option<&str>) -> Result<Attached, Error> {
    let mut attached = Attached::default();
    for referrer in referrers.iter().filter(|r| may_be_bundle(r)) {
        let at = reference(&repo.display, &referrer.digest);
        if let Some(skipped) = skip(&at, referrer.annotations.get(PREDICATE_TYPE_ANNOTATION), wanted) {
            attached.skipped.push(skipped);
            continue;
        }
        let by_digest = ManifestRef::Digest(referrer.digest);
        let Some(manifest) = repo.registry.get_manifest(&repo.path, &by_digest).await? else {
            debug!("{at}: listed as a referrer, but not there (deleted since?)");
            continue;
        };
        // Registries that list no annotations (or a referrer's config type only): what
        // the manifest itself declares.
        let annotations = ManifestLinks::parse(&manifest.bytes)
            .ok()
            .and_then(|l| l.annotations)
            .unwrap_or_default();
        if let Some(skipped) = skip(&at, annotations.get(PREDICATE_TYPE_ANNOTATION), wanted) {
            attached.skipped.push(skipped);
            continue;
        }
        let Some((layer, _)) = bundle_layer(&manifest) else {
            continue;
        };
        let read = match read_attestation(repo, &layer).await? {
            Ok(bundle) => SignedStatement::from_bundle(&bundle),
            Err(why) => Err(why),
        };
        attached.found.push(Found { at, read });
    }
    Ok(attached)
}

/// Whether a listed referrer may be a sigstore bundle: typed as one, or untyped, or typed
/// only by the empty config (registries that list a referrer's config media type, such
/// as go-containerregistry's, show a bundle referrer so).
fn may_be_bundle(referrer: &Referrer) -> bool {
    referrer
        .artifact_type
        .as_ref()
        .is_none_or(|t| is_bundle(t.as_str()) || t.as_str() == EMPTY_CONFIG)
}

/// An attestation at `at` declaring `declared`, when that is not `wanted`.
fn skip(at: &str, declared: Option<&String>, wanted: Option<&str>) -> Option<Skipped> {
    match (declared, wanted) {
        (Some(declared), Some(wanted)) if declared != wanted => Some(Skipped {
            at: at.to_string(),
            predicate_type: declared.clone(),
        }),
        _ => None,
    }
}

/// An attestation blob, or why it cannot be used (too large); registry failures are
/// errors of their own.
async fn read_attestation(repo: &Repo, digest: &Digest) -> Result<Result<bytes::Bytes, String>, Error> {
    match read_capped(repo, digest, MAX_ATTESTATION, "an attestation").await {
        Ok(bytes) => Ok(Ok(bytes)),
        Err(Error::Invalid { reference, why }) => Ok(Err(format!("{reference}: {why}"))),
        Err(other) => Err(other),
    }
}
