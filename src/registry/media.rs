//! Manifest media types, and the one reader of manifest JSON.
//!
//! kpromo copies manifests byte-for-byte, so it never models them fully (no `oci-spec`):
//! it reads only the descriptors a manifest points at (children of an index; config,
//! layers and artifact blobs of an image; the `subject` of a referrer). Everything that
//! needs them (the copier, the layout backend, the referrers list, snapshots) reads them
//! here, through [`ManifestLinks::parse`] and [`references`], so all of them agree on what
//! a manifest needs before it can be pushed.
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::registry::RawManifest;

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

/// A media type, such as `application/vnd.oci.image.index.v1+json`.
///
/// A string on the wire (serde-transparent), a type here so that what kind of content it
/// names is asked in one place (as go-containerregistry's `types.MediaType` does) instead
/// of comparing strings at every call site.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MediaType(String);

impl MediaType {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An index (OCI index or Docker manifest list): its children are manifests.
    pub fn is_index(&self) -> bool {
        matches!(self.as_str(), OCI_INDEX | DOCKER_MANIFEST_LIST)
    }

    /// A single-platform image manifest (OCI or Docker schema2): a config and layers.
    pub fn is_image(&self) -> bool {
        matches!(self.as_str(), OCI_MANIFEST | DOCKER_MANIFEST)
    }

    /// Docker schema1, which kpromo refuses to copy (see [`ManifestError::Schema1`]).
    pub fn is_schema1(&self) -> bool {
        matches!(self.as_str(), DOCKER_SCHEMA1_SIGNED | DOCKER_SCHEMA1)
    }

    /// Whether content of this type may be copied between registries. Foreign (Windows
    /// base) and non-distributable layers are fetched from elsewhere by whoever pulls the
    /// image; copiers do not copy them (neither does go-containerregistry by default).
    pub fn is_distributable(&self) -> bool {
        !(self.0.contains("foreign") || self.0.contains("nondistributable"))
    }
}

impl From<&str> for MediaType {
    fn from(value: &str) -> Self {
        Self(value.to_string())
    }
}

impl From<String> for MediaType {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl AsRef<str> for MediaType {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for MediaType {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for MediaType {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// A content descriptor as found inside a manifest or index: the one descriptor type,
/// for reading manifests and for writing the indexes kpromo writes itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentDescriptor {
    #[serde(default)]
    pub media_type: MediaType,
    #[serde(with = "digest_text")]
    pub digest: Digest,
    /// Required by the spec, but a missing size is tolerated (read as 0) as registries do.
    #[serde(default)]
    pub size: u64,
    /// Where a foreign layer is fetched from (not from the registry).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<MediaType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl ContentDescriptor {
    /// Whether the content must be in the registry before a manifest naming it can be
    /// pushed, and so must be copied: the one rule for every copier and backend. It is
    /// CNCF distribution's rule (and so what registries check, `MANIFEST_BLOB_UNKNOWN`):
    /// everything, except a layer whose media type says it is non-distributable (foreign)
    /// *and* that names the `urls` it is fetched from. A non-distributable layer without
    /// `urls` has no other home, and the `urls` of an ordinary layer are only a hint.
    pub fn is_required(&self) -> bool {
        self.media_type.is_distributable() || self.urls.is_empty()
    }
}

/// The platform of an index entry, for logs and filters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// The fields of any manifest kind that name other content. Unknown fields are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(from = "ManifestJson")]
pub struct ManifestLinks {
    pub schema_version: Option<u32>,
    pub media_type: Option<MediaType>,
    pub artifact_type: Option<MediaType>,
    /// Children of an index or manifest list.
    pub manifests: Vec<ContentDescriptor>,
    pub config: Option<ContentDescriptor>,
    pub layers: Vec<ContentDescriptor>,
    /// OCI 1.0 artifact manifests list their content here instead of `layers`.
    pub blobs: Vec<ContentDescriptor>,
    pub subject: Option<ContentDescriptor>,
    pub annotations: Option<BTreeMap<String, String>>,
    /// Whether the JSON has a `manifests` list at all, even an empty one: the shape of
    /// an index, for [`sniff_media_type`].
    lists_manifests: bool,
}

/// The wire form of [`ManifestLinks`]: `manifests` stays optional so that its presence
/// is known.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestJson {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: Option<MediaType>,
    #[serde(default)]
    artifact_type: Option<MediaType>,
    #[serde(default)]
    manifests: Option<Vec<ContentDescriptor>>,
    #[serde(default)]
    config: Option<ContentDescriptor>,
    #[serde(default)]
    layers: Vec<ContentDescriptor>,
    #[serde(default)]
    blobs: Vec<ContentDescriptor>,
    #[serde(default)]
    subject: Option<ContentDescriptor>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

impl From<ManifestJson> for ManifestLinks {
    fn from(json: ManifestJson) -> Self {
        Self {
            schema_version: json.schema_version,
            // OCI makes the field optional; an empty one says as little as none.
            media_type: json.media_type.filter(|m| !m.as_str().is_empty()),
            artifact_type: json.artifact_type,
            lists_manifests: json.manifests.is_some(),
            manifests: json.manifests.unwrap_or_default(),
            config: json.config,
            layers: json.layers,
            blobs: json.blobs,
            subject: json.subject,
            annotations: json.annotations,
        }
    }
}

impl ManifestLinks {
    /// Parses the linking fields of a manifest's exact bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        serde_json::from_slice(bytes).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => ManifestError::Invalid(e),
            _ => ManifestError::NotJson(e),
        })
    }

    /// The blobs that must exist before this manifest can be pushed, config first, then
    /// layers, then artifact blobs (not child manifests, and not foreign content: see
    /// [`ContentDescriptor::is_required`]).
    pub fn required_blobs(&self) -> impl Iterator<Item = &ContentDescriptor> {
        self.config
            .iter()
            .chain(&self.layers)
            .chain(&self.blobs)
            .filter(|b| b.is_required())
    }

    /// The declared media type, else the one its shape implies (`manifests`: an OCI index;
    /// `config`: an OCI image manifest).
    fn media_type_or_shape(&self) -> Option<MediaType> {
        if let Some(declared) = &self.media_type {
            Some(declared.clone())
        } else if self.lists_manifests {
            Some(OCI_INDEX.into())
        } else if self.config.is_some() {
            Some(OCI_MANIFEST.into())
        } else {
            None
        }
    }
}

/// An OCI image index that kpromo writes itself: the referrers fallback list. Unlike the
/// manifests kpromo copies (byte-for-byte, never re-serialised), this one is kpromo's own
/// to rewrite, through the typed descriptor rather than by editing JSON by hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    pub schema_version: u32,
    pub media_type: MediaType,
    pub manifests: Vec<ContentDescriptor>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl ImageIndex {
    /// An index listing `manifests`, with the top-level annotations of `like` (an index
    /// being rewritten) kept.
    pub fn new(manifests: Vec<ContentDescriptor>, like: Option<&ManifestLinks>) -> Self {
        Self {
            schema_version: 2,
            media_type: OCI_INDEX.into(),
            manifests,
            annotations: like.and_then(|l| l.annotations.clone()),
        }
    }

    /// The index as manifest bytes.
    pub fn to_manifest(&self) -> Result<RawManifest, serde_json::Error> {
        Ok(RawManifest::new(OCI_INDEX, serde_json::to_vec(self)?.into()))
    }
}

/// A blob a manifest needs at the destination before it can be pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobRef {
    pub digest: Digest,
    pub size: u64,
}

/// What must exist in a repository before a manifest can be pushed there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct References {
    /// Child manifests of an index, in index order.
    pub children: Vec<Digest>,
    /// Distributable blobs, config first (see [`ManifestLinks::required_blobs`]).
    pub blobs: Vec<BlobRef>,
}

/// What must exist before `manifest` can be pushed: its children and its blobs. This is
/// what a registry checks on a manifest PUT (`MANIFEST_BLOB_UNKNOWN`), and what a copier
/// copies first.
pub fn references(manifest: &RawManifest) -> Result<References, ManifestError> {
    if manifest.media_type.is_schema1() {
        return Err(ManifestError::Schema1);
    }
    let links = ManifestLinks::parse(&manifest.bytes)?;
    if links.schema_version == Some(1) {
        return Err(ManifestError::Schema1);
    }
    Ok(References {
        children: links.manifests.iter().map(|c| c.digest).collect(),
        blobs: links
            .required_blobs()
            .map(|b| BlobRef {
                digest: b.digest,
                size: b.size,
            })
            .collect(),
    })
}

/// The media type of a manifest body, for when its container gave no usable one (a
/// registry's generic `Content-Type`, an `index.json` entry without `mediaType`): the
/// declared `mediaType`, else what its shape implies.
pub fn sniff_media_type(bytes: &[u8]) -> Result<MediaType, ManifestError> {
    ManifestLinks::parse(bytes)?
        .media_type_or_shape()
        .ok_or(ManifestError::Untyped)
}

/// The media type of manifest `bytes` that a registry served with the `Content-Type`
/// `header` (without parameters), and the header's type when the body contradicts it.
///
/// The body wins: a registry checks a pushed manifest's `Content-Type` against its body,
/// so a type taken from a lying header gets the copy refused at the destination, after
/// its blobs were uploaded. The body's declared `mediaType` decides; without one, its
/// shape does when the header names the other kind (an index header over an image body);
/// a header that agrees, or a body without a shape, keeps the header's type. A generic
/// header (`application/json`, none at all) says nothing, so the body must say it.
pub fn served_media_type(
    header: Option<&MediaType>,
    bytes: &[u8],
) -> Result<(MediaType, Option<MediaType>), ManifestError> {
    let specific = header.filter(|h| h.as_str().starts_with("application/vnd."));
    let links = match (ManifestLinks::parse(bytes), specific) {
        (Ok(links), _) => links,
        // Unreadable under a specific type: the copier reports why, with the manifest.
        (Err(_), Some(h)) => return Ok((h.clone(), None)),
        (Err(e), None) => return Err(e),
    };
    let Some(header) = specific else {
        return links
            .media_type_or_shape()
            .map(|m| (m, None))
            .ok_or(ManifestError::Untyped);
    };
    let body = match (&links.media_type, links.media_type_or_shape()) {
        (Some(declared), _) => Some(declared.clone()),
        (None, Some(shape)) if shape.is_index() != header.is_index() => Some(shape),
        _ => None,
    };
    Ok(match body {
        Some(body) if body != *header => (body, Some(header.clone())),
        _ => (header.clone(), None),
    })
}

/// Why manifest bytes cannot be read (or copied).
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("the manifest is not valid JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// Valid JSON that does not fit: a field of the wrong type, or a digest other than
    /// sha256.
    #[error("the manifest cannot be read: {0}")]
    Invalid(#[source] serde_json::Error),
    #[error(
        "a Docker schema1 manifest, which cannot be copied byte-for-byte (its digest covers a \
         re-serialised, signature-stripped payload): push the image again with a current client \
         (docker, crane and skopeo write schema2 or OCI manifests) and promote the new digest"
    )]
    Schema1,
    #[error(
        "the manifest has no media type: it declares no `mediaType` and has neither the \
         `manifests` of an index nor the `config` of an image manifest"
    )]
    Untyped,
    #[error("the manifest names no `subject`, so it cannot be a referrer of anything")]
    NoSubject,
}

/// Digests as their `sha256:<hex>` text; any other algorithm is an error that says so.
mod digest_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::digest::Digest;

    pub fn serialize<S: Serializer>(digest: &Digest, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(digest)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|_| serde::de::Error::custom(format!("unsupported digest {text:?} (kpromo reads sha256 only)")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn raw(json: &str) -> RawManifest {
        RawManifest::new(OCI_MANIFEST, Bytes::from(json.to_string()))
    }

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
    fn media_type_predicates() {
        let kinds = |mt: &str| {
            let mt = MediaType::from(mt);
            (mt.is_index(), mt.is_image(), mt.is_schema1(), mt.is_distributable())
        };
        assert_eq!(kinds(OCI_INDEX), (true, false, false, true));
        assert_eq!(kinds(DOCKER_MANIFEST_LIST), (true, false, false, true));
        assert_eq!(kinds(OCI_MANIFEST), (false, true, false, true));
        assert_eq!(kinds(DOCKER_MANIFEST), (false, true, false, true));
        assert_eq!(kinds(OCI_ARTIFACT_MANIFEST), (false, false, false, true));
        assert_eq!(kinds(DOCKER_SCHEMA1_SIGNED), (false, false, true, true));
        assert_eq!(kinds(DOCKER_SCHEMA1), (false, false, true, true));
        assert_eq!(
            kinds("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"),
            (false, false, false, false)
        );
        assert_eq!(
            kinds("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"),
            (false, false, false, false)
        );
        assert_eq!(
            kinds("application/vnd.oci.image.layer.v1.tar+gzip"),
            (false, false, false, true)
        );
        // Serde-transparent: a plain string on the wire.
        let mt: MediaType = serde_json::from_str(&format!("\"{OCI_INDEX}\"")).unwrap();
        assert_eq!(mt, OCI_INDEX);
        assert_eq!(serde_json::to_string(&mt).unwrap(), format!("\"{OCI_INDEX}\""));
    }

    #[test]
    fn reads_children_blobs_and_subject() {
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
        assert_eq!(sniff_media_type(index.as_bytes()).unwrap(), OCI_INDEX);

        let image = format!(
            r#"{{"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"c","digest":"{}","size":1}},
            "layers":[{{"mediaType":"l","digest":"{}","size":2}}],"subject":{{"mediaType":"m","digest":"{}","size":3}}}}"#,
            d('b'),
            d('c'),
            d('e')
        );
        let links = ManifestLinks::parse(image.as_bytes()).unwrap();
        let blobs: Vec<u64> = links.required_blobs().map(|b| b.size).collect();
        assert_eq!(blobs, vec![1, 2]);
        assert_eq!(links.subject.unwrap().size, 3);
        assert_eq!(sniff_media_type(image.as_bytes()).unwrap(), DOCKER_MANIFEST);
    }

    #[test]
    fn rejects_a_bad_digest_in_a_descriptor() {
        let bad = r#"{"manifests":[{"mediaType":"x","digest":"sha256:zz","size":1}]}"#;
        assert!(ManifestLinks::parse(bad.as_bytes()).is_err());
    }

    #[test]
    fn references_of_an_image_skip_only_foreign_layers_with_urls() {
        // Distribution's rule: a foreign layer naming its `urls` is fetched from there and
        // not required; a non-distributable layer without `urls`, and an ordinary layer
        // with some, are required (the copier used to skip both, so promotions of them
        // failed at the destination).
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"c","digest":"{}","size":1}},"layers":[
            {{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":2}},
            {{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"{}","size":3,"urls":["https://example.com/l"]}},
            {{"mediaType":"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip","digest":"{}","size":4}},
            {{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":5,"urls":["https://example.com/m"]}}]}}"#,
            d('1'),
            d('2'),
            d('3'),
            d('4'),
            d('6')
        );
        let refs = references(&raw(&json)).unwrap();
        assert!(refs.children.is_empty());
        let blob = |c, size| BlobRef {
            digest: d(c).parse().unwrap(),
            size,
        };
        assert_eq!(refs.blobs, [blob('1', 1), blob('2', 2), blob('4', 4), blob('6', 5)]);
    }

    #[test]
    fn references_of_an_artifact_manifest_include_its_blobs() {
        let json = format!(
            r#"{{"mediaType":"{OCI_ARTIFACT_MANIFEST}","artifactType":"application/spdx+json",
            "blobs":[{{"mediaType":"application/spdx+json","digest":"{}","size":5}}]}}"#,
            d('5')
        );
        let manifest = RawManifest::new(OCI_ARTIFACT_MANIFEST, Bytes::from(json));
        let refs = references(&manifest).unwrap();
        assert_eq!(
            refs.blobs,
            [BlobRef {
                digest: d('5').parse().unwrap(),
                size: 5
            }]
        );
    }

    #[test]
    fn references_of_an_index_are_its_children_in_order() {
        let json = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"digest":"{}","size":1}},{{"digest":"{}","size":1}}]}}"#,
            d('b'),
            d('a')
        );
        let refs = references(&raw(&json)).unwrap();
        assert_eq!(refs.children, [d('b').parse().unwrap(), d('a').parse().unwrap()]);
        assert!(refs.blobs.is_empty());
    }

    #[test]
    fn unreadable_manifests_are_errors_that_say_why() {
        let err = references(&raw("not json")).unwrap_err();
        assert!(matches!(err, ManifestError::NotJson(_)), "{err}");

        let sha512 = format!(r#"{{"layers":[{{"digest":"sha512:{}","size":1}}]}}"#, "a".repeat(128));
        let err = references(&raw(&sha512)).unwrap_err();
        assert!(matches!(err, ManifestError::Invalid(_)), "{err}");
        assert!(err.to_string().contains("unsupported digest"), "{err}");

        for schema1 in [
            raw(r#"{"schemaVersion":1,"fsLayers":[]}"#),
            RawManifest::new(DOCKER_SCHEMA1_SIGNED, Bytes::from_static(b"{}")),
        ] {
            let err = references(&schema1).unwrap_err();
            assert!(matches!(err, ManifestError::Schema1), "{err}");
            assert!(err.to_string().contains("push the image again"), "{err}");
        }
    }

    #[test]
    fn sniffing_uses_the_declared_type_then_the_shape() {
        let empty_index = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(sniff_media_type(empty_index).unwrap(), OCI_INDEX);
        let declared_empty = format!(r#"{{"mediaType":"","config":{{"digest":"{}","size":1}}}}"#, d('c'));
        assert_eq!(sniff_media_type(declared_empty.as_bytes()).unwrap(), OCI_MANIFEST);
        // An image config is JSON too, but not a manifest.
        let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        assert!(matches!(sniff_media_type(config), Err(ManifestError::Untyped)));
        assert!(sniff_media_type(br#"{"config":{"Env":["A=b"]}}"#).is_err());
    }

    /// (Content-Type, body, type used, contradicted header).
    #[test]
    fn the_body_decides_a_served_media_type() {
        let image = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"digest":"{}","size":1}}}}"#,
            d('c')
        );
        let undeclared_image = format!(r#"{{"schemaVersion":2,"config":{{"digest":"{}","size":1}}}}"#, d('c'));
        let index = r#"{"schemaVersion":2,"manifests":[]}"#.to_string();
        let cases: [(Option<&str>, &str, &str, Option<&str>); 8] = [
            (Some(OCI_MANIFEST), &image, OCI_MANIFEST, None),
            // The lie of issue 14: an index type over an image manifest.
            (Some(OCI_INDEX), &image, OCI_MANIFEST, Some(OCI_INDEX)),
            (Some(OCI_INDEX), &undeclared_image, OCI_MANIFEST, Some(OCI_INDEX)),
            (Some(OCI_MANIFEST), &index, OCI_INDEX, Some(OCI_MANIFEST)),
            // Same kind, no declaration: the header is the more precise of the two.
            (Some(DOCKER_MANIFEST), &undeclared_image, DOCKER_MANIFEST, None),
            (Some(DOCKER_MANIFEST_LIST), &index, DOCKER_MANIFEST_LIST, None),
            (Some("application/json"), &image, OCI_MANIFEST, None),
            (None, &index, OCI_INDEX, None),
        ];
        for (header, body, used, contradicted) in cases {
            let header = header.map(MediaType::from);
            let got = served_media_type(header.as_ref(), body.as_bytes()).unwrap();
            assert_eq!(
                (got.0.as_str(), got.1.as_ref().map(MediaType::as_str)),
                (used, contradicted),
                "{header:?} over {body}"
            );
        }
        assert!(matches!(
            served_media_type(Some(&"text/plain".into()), br#"{"a":1}"#),
            Err(ManifestError::Untyped)
        ));
        let (kept, _) = served_media_type(Some(&OCI_MANIFEST.into()), b"not json").unwrap();
        assert_eq!(kept, OCI_MANIFEST, "unreadable bodies are the copier's to report");
    }

    proptest::proptest! {
        #[test]
        fn no_input_panics(bytes: Vec<u8>, schema1: bool) {
            let media_type = if schema1 { DOCKER_SCHEMA1 } else { OCI_MANIFEST };
            let _ = references(&RawManifest::new(media_type, Bytes::from(bytes.clone())));
            let _ = sniff_media_type(&bytes);
            let _ = served_media_type(Some(&OCI_INDEX.into()), &bytes);
        }
    }
}
