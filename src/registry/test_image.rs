//! Unit tests only: generated images (a manifest with every blob and child it needs) for
//! the in-memory registry and the backends' own tests.
use std::collections::BTreeSet;

use bytes::Bytes;
use serde_json::json;

use crate::digest::Digest;
use crate::registry::media::{OCI_ARTIFACT_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use crate::registry::{Error, ManifestRef, RawManifest, Registry};

/// A non-distributable layer type (the OCI name; Docker's foreign layers behave alike).
const NON_DISTRIBUTABLE_LAYER: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";

/// A generated image: its manifest and every blob and child it needs.
#[derive(Debug, Clone)]
pub struct TestImage {
    pub manifest: RawManifest,
    /// The blobs a registry must hold before the manifest can be pushed, config first.
    pub blobs: Vec<Bytes>,
    pub children: Vec<TestImage>,
}

impl TestImage {
    /// A single-platform OCI image with a config naming it and the given layers.
    pub fn single(name: &str, layers: &[&[u8]]) -> Self {
        let config = Bytes::from(json!({ "name": name }).to_string());
        let layers: Vec<Bytes> = layers.iter().map(|l| Bytes::copy_from_slice(l)).collect();
        let layer_descriptors: Vec<serde_json::Value> = layers
            .iter()
            .map(|l| descriptor("application/vnd.oci.image.layer.v1.tar+gzip", l))
            .collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
            "layers": layer_descriptors,
        });
        let mut blobs = vec![config];
        blobs.extend(layers);
        Self {
            manifest: RawManifest::new(OCI_MANIFEST, Bytes::from(manifest.to_string())),
            blobs,
            children: Vec::new(),
        }
    }

    /// [`TestImage::single`] plus a non-distributable layer that names no `urls`: it has
    /// no other home than the registry, which requires it like any layer.
    pub fn with_non_distributable_layer(name: &str, layers: &[&[u8]]) -> Self {
        let mut image = Self::single(name, layers);
        let layer = Bytes::from(format!("{name}: non-distributable"));
        image.add_layer(descriptor(NON_DISTRIBUTABLE_LAYER, &layer), Some(layer));
        image
    }

    /// [`TestImage::single`] plus a foreign layer fetched from its `urls`: its bytes live
    /// outside any registry, so they are not among [`TestImage::blobs`].
    pub fn with_foreign_layer(name: &str, layers: &[&[u8]]) -> Self {
        let mut image = Self::single(name, layers);
        let mut layer = descriptor(NON_DISTRIBUTABLE_LAYER, format!("{name}: foreign").as_bytes());
        layer["urls"] = json!(["https://example.com/foreign-layer"]);
        image.add_layer(layer, None);
        image
    }

    /// Appends a layer descriptor to the manifest, and its bytes to the blobs a registry
    /// must hold when it has some.
    fn add_layer(&mut self, layer: serde_json::Value, bytes: Option<Bytes>) {
        let mut manifest: serde_json::Value = serde_json::from_slice(&self.manifest.bytes).expect("own JSON");
        manifest["layers"].as_array_mut().expect("layers").push(layer);
        self.manifest = RawManifest::new(OCI_MANIFEST, Bytes::from(manifest.to_string()));
        self.blobs.extend(bytes);
    }

    /// An OCI 1.0 artifact manifest: no config, its content listed under `blobs`.
    pub fn artifact(artifact_type: &str, blobs: &[&[u8]]) -> Self {
        let blobs: Vec<Bytes> = blobs.iter().map(|b| Bytes::copy_from_slice(b)).collect();
        let manifest = json!({
            "mediaType": OCI_ARTIFACT_MANIFEST,
            "artifactType": artifact_type,
            "blobs": blobs.iter().map(|b| descriptor(artifact_type, b)).collect::<Vec<_>>(),
        });
        Self {
            manifest: RawManifest::new(OCI_ARTIFACT_MANIFEST, Bytes::from(manifest.to_string())),
            blobs,
            children: Vec::new(),
        }
    }

    /// An OCI 1.1 referrer of `subject` (a signature, an SBOM…): an image manifest with
    /// the empty config, `artifact_type`, and the annotation `n` to tell referrers apart.
    pub fn referrer(subject: &TestImage, artifact_type: &str, n: u32) -> Self {
        let config = Bytes::from_static(b"{}");
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": descriptor("application/vnd.oci.empty.v1+json", &config),
            "layers": [],
            "subject": {"mediaType": subject.manifest.media_type, "digest": subject.digest().to_string(), "size": subject.manifest.bytes.len()},
            "annotations": {"n": n.to_string()},
        });
        Self {
            manifest: RawManifest::new(OCI_MANIFEST, Bytes::from(manifest.to_string())),
            blobs: vec![config],
            children: Vec::new(),
        }
    }

    /// An OCI index over `children`.
    pub fn index(children: Vec<TestImage>) -> Self {
        let entries: Vec<serde_json::Value> = children
            .iter()
            .map(|c| json!({"mediaType": c.manifest.media_type, "digest": c.digest().to_string(), "size": c.manifest.bytes.len()}))
            .collect();
        let manifest = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries });
        Self {
            manifest: RawManifest::new(OCI_INDEX, Bytes::from(manifest.to_string())),
            blobs: Vec::new(),
            children,
        }
    }

    pub fn digest(&self) -> Digest {
        self.manifest.digest
    }

    /// Every distinct blob of the image and its children.
    pub fn all_blobs(&self) -> BTreeSet<Digest> {
        let mut out: BTreeSet<Digest> = self.blobs.iter().map(|b| Digest::of(b)).collect();
        for c in &self.children {
            out.extend(c.all_blobs());
        }
        out
    }

    /// Pushes the image through the [`Registry`] API in the order registries demand:
    /// children and blobs, the manifest by digest, then each tag.
    pub async fn push(&self, registry: &dyn Registry, repo: &str, tags: &[&str]) -> Result<(), Error> {
        for child in &self.children {
            Box::pin(child.push(registry, repo, &[])).await?;
        }
        self.push_blobs(registry, repo).await?;
        registry
            .put_manifest(repo, &ManifestRef::Digest(self.digest()), &self.manifest)
            .await?;
        for tag in tags {
            registry
                .put_manifest(repo, &ManifestRef::Tag(tag.to_string()), &self.manifest)
                .await?;
        }
        Ok(())
    }

    /// Uploads the image's own blobs (not its children's, not the manifest).
    pub async fn push_blobs(&self, registry: &dyn Registry, repo: &str) -> Result<(), Error> {
        for blob in &self.blobs {
            let chunks = futures_util::stream::iter([Ok(blob.clone())]);
            let body = crate::registry::BlobStream::new(chunks);
            registry
                .put_blob(repo, &Digest::of(blob), blob.len() as u64, body)
                .await?;
        }
        Ok(())
    }
}

fn descriptor(media_type: &str, content: &[u8]) -> serde_json::Value {
    json!({"mediaType": media_type, "digest": Digest::of(content).to_string(), "size": content.len()})
}
