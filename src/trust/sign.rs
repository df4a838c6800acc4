//! Signing one image at one repository, cosign's way: the `sha256-<hex>.sig` manifest
//! there keeps every signature it already holds, gains the staging image's signatures
//! (so the promoted image keeps its builder's), and gains one new signature unless one by
//! this signer is already there. Blobs are written before the manifest that names them,
//! so a `.sig` tag never points at a missing layer.
use bytes::Bytes;

use super::cosign::{Layer, Payload, Signatures, signature_tag};
use super::signer::Signer;
use super::verify::verify_layer;
use super::{Error, read_capped, reference};
use crate::copy::Repo;
use crate::digest::Digest;
use crate::registry::{BlobStream, ManifestRef, MountOutcome};

/// Largest signature payload read: simple-signing payloads are a few hundred bytes.
const MAX_PAYLOAD: usize = 64 << 10;

/// What signing one image did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A new signature was added.
    Signed,
    /// A valid signature by this signer was already there; nothing new was signed (the
    /// staging signatures may still have been carried over).
    AlreadySigned,
}

/// Where an image's builder signatures are: its staging repository, and its signatures
/// there when already read (the Validate phase reads them once).
#[derive(Debug, Clone, Copy)]
pub struct Staging<'a> {
    pub repo: &'a Repo,
    pub signatures: Option<&'a Signatures>,
}

/// Signs `image` at `at` for the name `identity`, carrying over the signatures of the
/// same image at `staging` (if it has any). `version` goes into the payload.
pub async fn sign_image(
    signer: &Signer,
    at: &Repo,
    image: &Digest,
    identity: &str,
    staging: Option<Staging<'_>>,
    version: &str,
) -> Result<Outcome, Error> {
    let tag = ManifestRef::Tag(signature_tag(image));
    let existing = read_signatures(at, &tag).await?;
    let mut merged = existing.clone();
    let mut carried: Vec<(&Repo, Layer)> = Vec::new();
    if let Some(staging) = staging {
        let read;
        let signatures = match staging.signatures {
            Some(known) => known,
            None => {
                read = read_signatures(staging.repo, &tag).await?;
                &read
            }
        };
        let staging = staging.repo;
        for layer in signatures.layers.iter().cloned() {
            if !merged.contains(&layer) {
                merged.layers.push(layer.clone());
                carried.push((staging, layer));
            }
        }
    }
    let outcome = if signed_by(signer, at, &existing, &carried, image).await {
        Outcome::AlreadySigned
    } else {
        let payload = Payload::new(identity, image, version).to_bytes();
        let annotations = signer.sign(&payload).await?;
        let layer = Layer::new(&payload, annotations);
        put_bytes(at, &layer.digest, payload).await?;
        merged.layers.push(layer);
        Outcome::Signed
    };
    if merged == existing {
        return Ok(outcome);
    }
    for (from, layer) in &carried {
        copy_blob(from, at, layer).await?;
    }
    let (config, manifest) = merged.to_manifest();
    put_bytes(at, &Digest::of(&config), config).await?;
    at.registry.put_manifest(&at.path, &tag, &manifest).await?;
    Ok(outcome)
}

/// The signatures in `repo` under `tag` (none when there is no such tag).
pub async fn read_signatures(repo: &Repo, tag: &ManifestRef) -> Result<Signatures, Error> {
    match repo.registry.get_manifest(&repo.path, tag).await? {
        Some(manifest) => Signatures::parse(&manifest).map_err(|why| Error::Invalid {
            reference: format!("{}{tag}", repo.display),
            why,
        }),
        None => Ok(Signatures::default()),
    }
}

/// Whether one of the layers (already at `at`, or about to be carried there) is a valid
/// signature of `image` by `signer`. A layer that cannot be read counts as not signed:
/// signing again is always safe.
async fn signed_by(
    signer: &Signer,
    at: &Repo,
    existing: &Signatures,
    carried: &[(&Repo, Layer)],
    image: &Digest,
) -> bool {
    let policy = signer.policy().await;
    let candidates = existing
        .layers
        .iter()
        .map(|l| (at, l))
        .chain(carried.iter().map(|(from, l)| (*from, l)));
    for (from, layer) in candidates {
        match read_payload(from, &layer.digest).await {
            Ok(payload) if verify_layer(&payload, &layer.annotations, image, &policy).is_ok() => return true,
            Ok(_) => {}
            Err(e) => tracing::debug!("{}: {e}", reference(&from.display, &layer.digest)),
        }
    }
    false
}

/// Reads a (small) signature payload blob whole.
pub async fn read_payload(repo: &Repo, digest: &Digest) -> Result<Bytes, Error> {
    read_capped(repo, digest, MAX_PAYLOAD, "a signature payload").await
}

pub(crate) async fn put_bytes(to: &Repo, digest: &Digest, bytes: Bytes) -> Result<(), Error> {
    let size = bytes.len() as u64;
    let body = BlobStream::new(futures_util::stream::iter([Ok(bytes)]));
    to.registry.put_blob(&to.path, digest, size, body).await?;
    Ok(())
}

/// Copies a carried signature layer's payload into `to` (a mount when both are on one
/// registry).
async fn copy_blob(from: &Repo, to: &Repo, layer: &Layer) -> Result<(), Error> {
    if to.registry.blob_size(&to.path, &layer.digest).await?.is_some() {
        return Ok(());
    }
    if from.registry.name() == to.registry.name()
        && to.registry.mount_blob(&to.path, &layer.digest, &from.path).await? == MountOutcome::Mounted
    {
        return Ok(());
    }
    let payload = read_payload(from, &layer.digest).await?;
    put_bytes(to, &layer.digest, payload).await
}
