//! Deterministic test images for the OCI-layout tests and the demo generator: tiny
//! uncompressed tar layers, OCI configs, manifests and indexes built from fixed bytes,
//! so the same inputs always give the same digests.
#![allow(dead_code)] // each test crate uses a different subset

use bytes::Bytes;
use futures_util::TryStreamExt as _;
use kpromo::digest::Digest;
use kpromo::registry::{BlobStream, ManifestRef, RawManifest, Registry};
use serde_json::json;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// A blob with its digest.
#[derive(Debug, Clone)]
pub struct Blob {
    pub bytes: Bytes,
    pub digest: Digest,
}

impl Blob {
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self {
            digest: Digest::of(&bytes),
            bytes,
        }
    }
}

/// An image manifest with the blobs it needs.
#[derive(Debug, Clone)]
pub struct Image {
    pub config: Blob,
    pub layers: Vec<Blob>,
    pub manifest: RawManifest,
}

/// A one-file ustar archive (uncompressed, mtime 0, root-owned).
pub fn tar_layer(path: &str, content: &[u8]) -> Blob {
    fn octal(field: &mut [u8], value: u64) {
        let text = format!("{value:0width$o}\0", width = field.len() - 1);
        field.copy_from_slice(text.as_bytes());
    }
    let mut header = [0u8; 512];
    header[..path.len()].copy_from_slice(path.as_bytes());
    octal(&mut header[100..108], 0o644);
    octal(&mut header[108..116], 0);
    octal(&mut header[116..124], 0);
    octal(&mut header[124..136], content.len() as u64);
    octal(&mut header[136..148], 0);
    header[148..156].fill(b' ');
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    let sum: u64 = header.iter().map(|&b| u64::from(b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut out = header.to_vec();
    out.extend_from_slice(content);
    out.resize(out.len().div_ceil(512) * 512 + 1024, 0);
    Blob::new(out)
}

/// An OCI image for `linux/<arch>` made of `layers`; `label` makes otherwise equal
/// images distinct.
pub fn image(arch: &str, layers: Vec<Blob>, label: &str) -> Image {
    let diff_ids: Vec<String> = layers.iter().map(|l| l.digest.to_string()).collect();
    let config = Blob::new(
        serde_json::to_vec(&json!({
            "architecture": arch,
            "os": "linux",
            "config": {"Labels": {"org.example.demo": label}},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .expect("json"),
    );
    let layer_descs: Vec<_> = layers
        .iter()
        .map(|l| json!({"mediaType": OCI_LAYER_TAR, "digest": l.digest.to_string(), "size": l.bytes.len()}))
        .collect();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config.digest.to_string(), "size": config.bytes.len()},
        "layers": layer_descs,
    }))
    .expect("json");
    Image {
        config,
        layers,
        manifest: RawManifest::new(OCI_MANIFEST, Bytes::from(manifest)),
    }
}

/// An OCI index over `children` (each a `linux/<arch>` image).
pub fn index(children: &[(&str, &Image)]) -> RawManifest {
    let manifests: Vec<_> = children
        .iter()
        .map(|(arch, child)| {
            json!({
                "mediaType": child.manifest.media_type,
                "digest": child.manifest.digest.to_string(),
                "size": child.manifest.bytes.len(),
                "platform": {"architecture": arch, "os": "linux"},
            })
        })
        .collect();
    let bytes =
        serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})).expect("json");
    RawManifest::new(OCI_INDEX, Bytes::from(bytes))
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
        .put_blob(repo, &blob.digest, blob.bytes.len() as u64, chunked(&blob.bytes, 3))
        .await
        .unwrap_or_else(|e| panic!("put blob: {e}"));
}

/// Pushes an image's blobs, then its manifest by digest and under each tag.
pub async fn push_image(registry: &dyn Registry, repo: &str, image: &Image, tags: &[&str]) {
    put(registry, repo, &image.config).await;
    for layer in &image.layers {
        put(registry, repo, layer).await;
    }
    push_manifest(registry, repo, &image.manifest, tags).await;
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
