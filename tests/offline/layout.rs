//! What the layout tests share: harness images (tests/support/images.rs) written and read
//! through kpromo's `Registry` trait, and the files a layout leaves on disk.
use bytes::Bytes;
use futures_util::TryStreamExt as _;
use kpromo::digest::Digest;
use kpromo::registry::{BlobStream, ManifestRef, RawManifest, Registry};

use crate::support::images::{Blob, Image, Index};

/// A harness manifest as kpromo's type: the same bytes, under the digest the harness
/// computed (kpromo's own digest of them must agree).
pub trait ToRaw {
    fn raw(&self) -> RawManifest;
}

impl ToRaw for Image {
    fn raw(&self) -> RawManifest {
        raw(self.media_type(), &self.manifest, &self.digest)
    }
}

impl ToRaw for Index {
    fn raw(&self) -> RawManifest {
        raw(self.media_type(), &self.manifest, &self.digest)
    }
}

fn raw(media_type: &str, bytes: &Bytes, digest: &str) -> RawManifest {
    let manifest = RawManifest::new(media_type, bytes.clone());
    assert_eq!(
        manifest.digest.to_string(),
        digest,
        "kpromo and the harness disagree on a digest"
    );
    manifest
}

/// A harness blob's digest as kpromo's type.
pub fn digest(blob: &Blob) -> Digest {
    blob.digest
        .parse()
        .unwrap_or_else(|e| panic!("bad digest {}: {e:?}", blob.digest))
}

/// A blob body split into `parts` chunks, as a network stream would deliver it.
pub fn chunked(bytes: &Bytes, parts: usize) -> BlobStream {
    let step = bytes.len().div_ceil(parts.max(1)).max(1);
    let chunks: Vec<Result<Bytes, kpromo::registry::Error>> = (0..bytes.len())
        .step_by(step)
        .map(|i| Ok(bytes.slice(i..(i + step).min(bytes.len()))))
        .collect();
    BlobStream::new(futures_util::stream::iter(chunks))
}

pub async fn put(registry: &dyn Registry, repo: &str, blob: &Blob) {
    registry
        .put_blob(repo, &digest(blob), blob.size, chunked(&blob.bytes(), 3))
        .await
        .unwrap_or_else(|e| panic!("put blob: {e}"));
}

/// Pushes an image's blobs, then its manifest by digest and under each tag.
pub async fn push_image(registry: &dyn Registry, repo: &str, image: &Image, tags: &[&str]) {
    for blob in image.blobs() {
        put(registry, repo, blob).await;
    }
    push_manifest(registry, repo, &image.raw(), tags).await;
}

pub async fn push_manifest(registry: &dyn Registry, repo: &str, manifest: &RawManifest, tags: &[&str]) {
    registry
        .put_manifest(repo, &ManifestRef::Digest(manifest.digest), manifest)
        .await
        .unwrap_or_else(|e| panic!("put manifest by digest: {e}"));
    for tag in tags {
        registry
            .put_manifest(repo, &ManifestRef::Tag(tag.to_string()), manifest)
            .await
            .unwrap_or_else(|e| panic!("put manifest :{tag}: {e}"));
    }
}

/// Reads a whole blob stream; the error of a failing stream is returned.
pub async fn read_all(stream: BlobStream) -> Result<Vec<u8>, kpromo::registry::Error> {
    stream
        .try_fold(Vec::new(), |mut acc, chunk| async move {
            acc.extend_from_slice(&chunk);
            Ok(acc)
        })
        .await
}

pub fn tag(t: &str) -> ManifestRef {
    ManifestRef::Tag(t.to_string())
}

/// Every file below `dir` (relative paths, sorted), to check nothing was left behind.
pub fn files(dir: &std::path::Path) -> Vec<String> {
    fn walk(base: &std::path::Path, dir: &std::path::Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                out.push(path.strip_prefix(base).expect("below base").display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}
