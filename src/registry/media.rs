//! Manifest media types and the little of their JSON that a copier must read.
//!
//! kpromo copies manifests byte-for-byte, so it never models them fully (no `oci-spec`):
//! it only needs the descriptors a manifest points at (children of an index, config and
//! layers of an image) to know what else to copy, and the `subject` of a referrer.
use serde::Deserialize;

use crate::digest::Digest;

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI 1.0 artifact manifests (ORAS before OCI 1.1 folded artifacts into image manifests).
pub const OCI_ARTIFACT_MANIFEST: &str = "application/vnd.oci.artifact.manifest.v1+json";
/// Legacy schema1, only recognised so that it can be refused with a clear message.
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";

/// Every manifest type kpromo copies, as one `Accept` value.
///
/// It must be sent on every manifest GET and HEAD: distribution 2.8 answers 404 for an OCI
/// index unless the index type is accepted explicitly (even with `*/*`), and rewrites a
/// Docker manifest list to schema1 (another digest) when no `Accept` is sent at all.
pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.oci.artifact.manifest.v1+json";

/// Whether a media type is an index (its children are manifests, not blobs).
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// Whether a media type is schema1, which kpromo refuses to copy (its digest is not stable).
pub fn is_schema1(media_type: &str) -> bool {
    media_type == DOCKER_SCHEMA1_SIGNED || media_type == DOCKER_SCHEMA1
}

/// A content descriptor as found inside a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentDescriptor {
    #[serde(default)]
    pub media_type: String,
    #[serde(deserialize_with = "de_digest")]
    pub digest: Digest,
    pub size: u64,
    #[serde(default)]
    pub artifact_type: Option<String>,
    #[serde(default)]
    pub platform: Option<Platform>,
    #[serde(default)]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

/// The platform of an index entry, for logs and filters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
}

/// The fields of any manifest kind that name other content. Unknown fields are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestLinks {
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub artifact_type: Option<String>,
    /// Children of an index or manifest list.
    #[serde(default)]
    pub manifests: Vec<ContentDescriptor>,
    #[serde(default)]
    pub config: Option<ContentDescriptor>,
    #[serde(default)]
    pub layers: Vec<ContentDescriptor>,
    /// OCI 1.0 artifact manifests list blobs here.
    #[serde(default)]
    pub blobs: Vec<ContentDescriptor>,
    #[serde(default)]
    pub subject: Option<ContentDescriptor>,
}

impl ManifestLinks {
    /// Parses the linking fields of a manifest's exact bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Blobs this manifest references (config first, then layers), not child manifests.
    pub fn blobs(&self) -> impl Iterator<Item = &ContentDescriptor> {
        self.config.iter().chain(&self.layers).chain(&self.blobs)
    }
}

/// Guesses the media type from a manifest body when the registry sent no usable
/// `Content-Type` (OCI makes `mediaType` optional, so fall back on the shape).
pub fn sniff_media_type(bytes: &[u8]) -> Option<String> {
    let links = ManifestLinks::parse(bytes).ok()?;
    if let Some(mt) = links.media_type.filter(|m| !m.is_empty()) {
        return Some(mt);
    }
    if !links.manifests.is_empty() {
        Some(OCI_INDEX.to_string())
    } else if links.config.is_some() {
        Some(OCI_MANIFEST.to_string())
    } else {
        None
    }
}

fn de_digest<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_list_names_every_copyable_type() {
        for mt in [
            DOCKER_MANIFEST,
            DOCKER_MANIFEST_LIST,
            OCI_MANIFEST,
            OCI_INDEX,
            OCI_ARTIFACT_MANIFEST,
        ] {
            assert!(ACCEPT_MANIFESTS.split(", ").any(|a| a == mt), "{mt}");
        }
        assert!(!ACCEPT_MANIFESTS.contains("v1+prettyjws"));
    }

    #[test]
    fn reads_children_blobs_and_subject() {
        let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":7,
            "platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}}],"extra":1}}"#,
            d('a')
        );
        let links = ManifestLinks::parse(index.as_bytes()).unwrap();
        assert_eq!(links.manifests.len(), 1);
        assert_eq!(
            links.manifests[0].platform.as_ref().unwrap().variant.as_deref(),
            Some("v8")
        );
        assert_eq!(sniff_media_type(index.as_bytes()).as_deref(), Some(OCI_INDEX));

        let image = format!(
            r#"{{"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"c","digest":"{}","size":1}},
            "layers":[{{"mediaType":"l","digest":"{}","size":2}}],"subject":{{"mediaType":"m","digest":"{}","size":3}}}}"#,
            d('b'),
            d('c'),
            d('e')
        );
        let links = ManifestLinks::parse(image.as_bytes()).unwrap();
        let blobs: Vec<u64> = links.blobs().map(|b| b.size).collect();
        assert_eq!(blobs, vec![1, 2]);
        assert_eq!(links.subject.unwrap().size, 3);
        assert_eq!(sniff_media_type(image.as_bytes()).as_deref(), Some(DOCKER_MANIFEST));
    }

    #[test]
    fn rejects_a_bad_digest_in_a_descriptor() {
        let bad = r#"{"manifests":[{"mediaType":"x","digest":"sha256:zz","size":1}]}"#;
        assert!(ManifestLinks::parse(bad.as_bytes()).is_err());
    }
}
