//! Manifests: stored as blobs, found through `index.json` (by tag or digest), and
//! refused when they reference content the repository lacks.
use std::io;
use std::path::Path;

use super::store::{self, Op};
use super::{MAX_MANIFEST, OciLayout};
use crate::digest::Digest;
use crate::registry::{Descriptor, Error, ManifestRef, RawManifest, media};

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

    /// Drops `digest` from `index.json` (and so every tag on it). Its bytes stay under
    /// `blobs/`, like every other blob: another manifest of the layout may share them,
    /// and a layout is never garbage-collected by kpromo.
    pub(super) async fn delete_manifest(&self, repo: &str, digest: &Digest) -> Result<bool, Error> {
        let op = self.op(format!("delete manifest {repo}@{digest}"));
        let dir = self.repo_dir(&op, repo)?;
        if self.read_index(&op, &dir).await?.is_none() {
            self.count("DELETE 404", 0, 0);
            return Ok(false);
        }
        let mut removed = false;
        self.update_index(&op, &dir, |index| {
            removed = index.remove(digest);
            removed
        })
        .await?;
        self.count(if removed { "DELETE 202" } else { "DELETE 404" }, 0, 0);
        Ok(removed)
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
        let media_type = match media_type.map_or_else(|| media::sniff_media_type(&bytes), Ok) {
            Ok(m) => m,
            Err(e) if listed => {
                return Err(op.invalid(format!("manifest {digest}: index.json gives no media type, and {e}")));
            }
            // Found by digest but not a manifest: a config or layer blob.
            Err(_) => return Ok(None),
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
        let references =
            media::references(manifest).map_err(|e| op.invalid(format!("manifest {}: {e}", manifest.digest)))?;
        let blobs = references.blobs.iter().map(|b| &b.digest);
        // Child manifests are stored as blobs too.
        for digest in references.children.iter().chain(blobs) {
            let path = Self::blob_path(dir, digest);
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

#[cfg(test)]
mod tests {
    use crate::registry::test_image::TestImage;
    use crate::registry::{ManifestRef, oci_layout};

    #[tokio::test]
    async fn only_a_foreign_layer_naming_its_urls_is_not_required() {
        // The copiers' rule (`ContentDescriptor::is_required`): a foreign layer with `urls`
        // is not copied, so the layout must accept a manifest without it; a
        // non-distributable layer without `urls` is copied, so it must be there first.
        let dir = tempfile::tempdir().unwrap();
        let layout = oci_layout::open(dir.path()).unwrap();
        let foreign = TestImage::with_foreign_layer("f", &[b"layer"]);
        foreign.push(&layout, "app", &["v1"]).await.unwrap();
        let tagged = ManifestRef::Tag("v1".into());
        let read = layout.get_manifest("app", &tagged).await.unwrap().unwrap();
        assert_eq!(read, foreign.manifest);

        let local = TestImage::with_non_distributable_layer("nd", &[b"layer"]);
        let by_digest = ManifestRef::Digest(local.digest());
        for blob in &local.blobs[..local.blobs.len() - 1] {
            let body = crate::registry::BlobStream::new(futures_util::stream::iter([Ok(blob.clone())]));
            let digest = crate::digest::Digest::of(blob);
            layout.put_blob("app", &digest, blob.len() as u64, body).await.unwrap();
        }
        let err = layout
            .put_manifest("app", &by_digest, &local.manifest)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not in the repository"), "{err}");
        local.push(&layout, "app", &[]).await.unwrap();
    }

    #[tokio::test]
    async fn the_blobs_of_an_artifact_manifest_must_be_stored_first() {
        let dir = tempfile::tempdir().unwrap();
        let layout = oci_layout::open(dir.path()).unwrap();
        let sbom = TestImage::artifact("application/spdx+json", &[b"{\"spdxVersion\":\"SPDX-2.3\"}"]);
        let by_digest = ManifestRef::Digest(sbom.digest());
        let err = layout
            .put_manifest("app", &by_digest, &sbom.manifest)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not in the repository"), "{err}");
        sbom.push(&layout, "app", &[]).await.unwrap();
        assert!(layout.head_manifest("app", &by_digest).await.unwrap().is_some());
    }
}
