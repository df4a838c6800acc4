//! Manifests: stored as blobs, found through `index.json` (by tag or digest), and
//! refused when they reference content the repository lacks.
use std::io;
use std::path::Path;

use serde::Deserialize;

use super::store::{self, Op};
use super::{MAX_MANIFEST, OCI_MANIFEST, OciLayout, index};
use crate::digest::Digest;
use crate::registry::{Descriptor, Error, ManifestRef, RawManifest};

impl OciLayout {
    pub(super) async fn head_manifest(&self, repo: &str, reference: &ManifestRef) -> Result<Option<Descriptor>, Error> {
        Ok(self
            .load_manifest(repo, reference, "HEAD")
            .await?
            .map(|m| m.descriptor()))
    }

    pub(super) async fn get_manifest(&self, repo: &str, reference: &ManifestRef) -> Result<Option<RawManifest>, Error> {
        self.load_manifest(repo, reference, "GET").await
    }

    pub(super) async fn put_manifest(
        &self,
        repo: &str,
        reference: &ManifestRef,
        manifest: &RawManifest,
    ) -> Result<(), Error> {
        let op = self.op(format!("put manifest {repo}{reference}"));
        let dir = self.repo_dir(&op, repo)?;
        let actual = Digest::of(&manifest.bytes);
        if actual != manifest.digest {
            return Err(op.mismatch(manifest.digest, actual));
        }
        if let ManifestRef::Digest(expected) = reference
            && *expected != actual
        {
            return Err(op.mismatch(*expected, actual));
        }
        if manifest.bytes.len() as u64 > MAX_MANIFEST {
            return Err(op.invalid(format!("manifest is larger than {MAX_MANIFEST} bytes")));
        }
        self.ensure_layout(&op, &dir).await?;
        self.check_references(&op, &dir, manifest).await?;
        let path = Self::blob_path(&dir, &actual);
        let bytes = manifest.bytes.clone();
        op.blocking(move || match std::fs::metadata(&path) {
            // Content-addressed: an existing blob of the right size is this manifest.
            Ok(m) if m.len() == bytes.len() as u64 => Ok(()),
            _ => store::write_atomic(&path, &bytes),
        })
        .await?;
        let descriptor = manifest.descriptor();
        self.update_index(&op, &dir, |index| match reference {
            ManifestRef::Tag(tag) => index.set_tag(tag, &descriptor),
            ManifestRef::Digest(_) => index.add_untagged(&descriptor),
        })
        .await?;
        self.count("PUT 201", 0, manifest.bytes.len() as u64);
        Ok(())
    }

    /// Finds and reads a manifest, verifying its digest; `method` (`GET` or `HEAD`) names
    /// the counter.
    async fn load_manifest(
        &self,
        repo: &str,
        reference: &ManifestRef,
        method: &str,
    ) -> Result<Option<RawManifest>, Error> {
        let op = self.op(format!("{} manifest {repo}{reference}", method.to_lowercase()));
        let found = self.find_manifest(&op, repo, reference).await?;
        match &found {
            Some(m) => self.count(&format!("{method} 200"), m.bytes.len() as u64, 0),
            None => self.count(&format!("{method} 404"), 0, 0),
        }
        Ok(found)
    }

    async fn find_manifest(&self, op: &Op, repo: &str, reference: &ManifestRef) -> Result<Option<RawManifest>, Error> {
        let dir = self.repo_dir(op, repo)?;
        let Some(index) = self.read_index(op, &dir).await? else {
            return Ok(None);
        };
        let (digest, listed, media_type) = match reference {
            ManifestRef::Tag(tag) => {
                let Some(entry) = index.tagged(tag) else {
                    return Ok(None);
                };
                let digest = entry.digest().ok_or_else(|| {
                    op.invalid(format!(
                        "index.json tags {tag:?} with unsupported digest {:?}",
                        entry.digest
                    ))
                })?;
                (digest, true, entry.media_type.clone())
            }
            ManifestRef::Digest(digest) => {
                let entry = index.by_digest(digest);
                (*digest, entry.is_some(), entry.and_then(|e| e.media_type.clone()))
            }
        };
        let path = Self::blob_path(&dir, &digest);
        let read = op.blocking(move || store::read_small(&path, MAX_MANIFEST)).await;
        let bytes = match read {
            Ok(Some(bytes)) => bytes,
            // A blob that is not listed and too big is a layer, not a manifest.
            Ok(None) if !listed => return Ok(None),
            Err(Error::Io { source, .. }) if !listed && source.kind() == io::ErrorKind::InvalidData => return Ok(None),
            Ok(None) => return Err(op.invalid(format!("index.json lists {digest} but its blob is missing"))),
            Err(e) => return Err(e),
        };
        let actual = Digest::of(&bytes);
        if actual != digest {
            return Err(op.mismatch(digest, actual));
        }
        let media_type = match media_type.or_else(|| ManifestShape::parse(&bytes).and_then(|s| s.media_type())) {
            Some(m) => m,
            None if listed => return Err(op.invalid(format!("cannot tell the media type of manifest {digest}"))),
            // Found by digest but not a manifest: a config or layer blob.
            None => return Ok(None),
        };
        Ok(Some(RawManifest {
            media_type,
            bytes,
            digest,
        }))
    }

    /// Checks that every blob and child a manifest references is already stored, as a
    /// registry would (`MANIFEST_BLOB_UNKNOWN`): a tag must never point at an incomplete
    /// image.
    async fn check_references(&self, op: &Op, dir: &Path, manifest: &RawManifest) -> Result<(), Error> {
        let shape = ManifestShape::parse(&manifest.bytes).ok_or_else(|| {
            op.invalid(format!(
                "manifest {} is not a JSON image manifest or index",
                manifest.digest
            ))
        })?;
        for reference in shape.required() {
            let digest: Digest = reference
                .parse()
                .map_err(|_| op.invalid(format!("manifest references unsupported digest {reference:?}")))?;
            let path = Self::blob_path(dir, &digest);
            if store::file_size(&path).await.map_err(|e| op.io(e))?.is_none() {
                return Err(op.io(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "manifest {} references {digest}, which is not in the repository",
                        manifest.digest
                    ),
                )));
            }
        }
        Ok(())
    }
}

/// The few fields of a manifest or index that the layout needs: its media type and
/// what it references. Parsed leniently; the bytes are never re-serialised.
#[derive(Deserialize)]
struct ManifestShape {
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    config: Option<Reference>,
    layers: Option<Vec<Reference>>,
    manifests: Option<Vec<Reference>>,
}

#[derive(Deserialize)]
struct Reference {
    digest: String,
    #[serde(default)]
    urls: Vec<String>,
}

impl ManifestShape {
    fn parse(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }

    /// The declared media type, or the OCI type its shape implies (OCI makes the field
    /// optional).
    fn media_type(&self) -> Option<String> {
        if let Some(m) = &self.media_type {
            return Some(m.clone());
        }
        if self.manifests.is_some() {
            Some(index::OCI_INDEX.to_string())
        } else if self.config.is_some() && self.layers.is_some() {
            Some(OCI_MANIFEST.to_string())
        } else {
            None
        }
    }

    /// Digests that must exist first. Foreign layers (with `urls`) are fetched from
    /// elsewhere and may be absent, as in distribution.
    fn required(&self) -> impl Iterator<Item = &str> {
        let layers = self.layers.iter().flatten().filter(|l| l.urls.is_empty());
        self.config
            .iter()
            .chain(layers)
            .chain(self.manifests.iter().flatten())
            .map(|r| r.digest.as_str())
    }
}
