//! What a manifest references: child manifests (for an index) and blobs (config and
//! layers). Only the fields needed to copy are read; the bytes are never re-serialised.
use serde::Deserialize;

use crate::digest::Digest;
use crate::registry::RawManifest;

/// A blob a manifest needs at the destination before it can be pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobRef {
    pub digest: Digest,
    pub size: u64,
}

/// The references of one manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refs {
    /// Child manifests of an index, in index order.
    pub children: Vec<Digest>,
    /// Config and distributable layers.
    pub blobs: Vec<BlobRef>,
}

#[derive(Deserialize)]
struct Wire {
    #[serde(default)]
    manifests: Vec<WireDescriptor>,
    config: Option<WireDescriptor>,
    #[serde(default)]
    layers: Vec<WireDescriptor>,
    #[serde(rename = "schemaVersion")]
    schema_version: Option<u32>,
}

#[derive(Deserialize)]
struct WireDescriptor {
    digest: String,
    #[serde(default)]
    size: u64,
    #[serde(rename = "mediaType", default)]
    media_type: String,
    #[serde(default)]
    urls: Vec<String>,
}

impl WireDescriptor {
    /// Foreign (Windows base) and non-distributable layers live elsewhere; registries do
    /// not require them and go-containerregistry does not copy them either.
    fn is_foreign(&self) -> bool {
        !self.urls.is_empty() || self.media_type.contains("foreign") || self.media_type.contains("nondistributable")
    }
}

/// Reads the references of `manifest`, naming `what` (a reference) in errors.
pub fn refs(manifest: &RawManifest, what: &str) -> Result<Refs, anyhow::Error> {
    let wire: Wire = serde_json::from_slice(&manifest.bytes)
        .map_err(|e| anyhow::anyhow!("{what}: manifest is not valid JSON: {e}"))?;
    if wire.schema_version == Some(1) {
        anyhow::bail!("{what}: Docker schema 1 manifests cannot be promoted byte-for-byte");
    }
    let parse = |d: &WireDescriptor| {
        d.digest
            .parse::<Digest>()
            .map_err(|e| anyhow::anyhow!("{what}: unsupported reference: {e}"))
    };
    let mut refs = Refs::default();
    for child in &wire.manifests {
        refs.children.push(parse(child)?);
    }
    for blob in wire.config.iter().chain(wire.layers.iter()) {
        if blob.is_foreign() {
            continue;
        }
        refs.blobs.push(BlobRef {
            digest: parse(blob)?,
            size: blob.size,
        });
    }
    Ok(refs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn raw(json: &str) -> RawManifest {
        RawManifest::new("application/json", Bytes::from(json.to_string()))
    }

    #[test]
    fn image_manifest_lists_config_and_layers_but_not_foreign_layers() {
        let (c, l, f) = (Digest::of(b"c"), Digest::of(b"l"), Digest::of(b"f"));
        let json = format!(
            r#"{{"schemaVersion":2,"config":{{"digest":"{c}","size":1}},"layers":[
            {{"digest":"{l}","size":2}},
            {{"digest":"{f}","size":3,"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","urls":["https://x"]}}]}}"#
        );
        let refs = refs(&raw(&json), "x").unwrap();
        assert!(refs.children.is_empty());
        assert_eq!(
            refs.blobs,
            [BlobRef { digest: c, size: 1 }, BlobRef { digest: l, size: 2 }]
        );
    }

    #[test]
    fn index_lists_children_in_order() {
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        let json = format!(r#"{{"schemaVersion":2,"manifests":[{{"digest":"{b}"}},{{"digest":"{a}"}}]}}"#);
        assert_eq!(refs(&raw(&json), "x").unwrap().children, [b, a]);
    }

    #[test]
    fn garbage_and_schema1_are_errors_naming_the_reference() {
        let err = refs(&raw("not json"), "reg/img@sha256:0").unwrap_err();
        assert!(err.to_string().starts_with("reg/img@sha256:0: "), "{err}");
        assert!(refs(&raw(r#"{"schemaVersion":1,"fsLayers":[]}"#), "x").is_err());
    }
}
