//! cosign's signature format (the tag scheme every `cosign verify` reads): for an image
//! `repo@sha256:<hex>`, the tag `repo:sha256-<hex>.sig` holds an OCI image manifest with
//! one layer per signature (and `sha256-<hex>.att` one DSSE envelope per attestation). A layer is a simple-signing payload (which image, under which
//! name) and its annotations carry the signature, and for keyless signatures the signing
//! certificate, its chain and the transparency-log entry.
//!
//! Pure: builds and reads payloads and manifests; the registry I/O is the caller's.
use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::digest::Digest;
use crate::registry::RawManifest;
use crate::registry::media::OCI_MANIFEST;

/// The media type of a simple-signing payload layer.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// `critical.type` of every cosign image signature.
pub const SIGNATURE_TYPE: &str = "cosign container image signature";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
/// The `optional` key naming the promoter that signed, as Go kpromo writes it.
pub const VERSION_KEY: &str = "org.kubernetes.kpromo.version";
const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";

/// The media type of an attestation layer (a DSSE envelope) in an `.att` manifest.
pub const DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The annotation naming an `.att` layer's predicate type.
pub const PREDICATE_TYPE_ANNOTATION: &str = "predicateType";

/// The signature tag of an image: `sha256-<hex>.sig`.
pub fn signature_tag(image: &Digest) -> String {
    format!("sha256-{}.sig", image.hex())
}

/// The attestation tag of an image: `sha256-<hex>.att` (cosign's, before OCI referrers),
/// an OCI image manifest with one DSSE envelope layer per attestation.
pub fn attestation_tag(image: &Digest) -> String {
    format!("sha256-{}.att", image.hex())
}

/// The simple-signing payload: what a signature says. `critical` is what verifiers
/// check; `optional` is free-form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    pub critical: Critical,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub optional: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Critical {
    pub identity: Identity,
    pub image: ImageRef,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    #[serde(rename = "docker-reference")]
    pub docker_reference: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    #[serde(rename = "docker-manifest-digest")]
    pub docker_manifest_digest: String,
}

impl Payload {
    /// A payload saying that `image` is `identity` (a repository name such as
    /// `registry.k8s.io/pause`), signed by this kpromo version.
    pub fn new(identity: &str, image: &Digest, kpromo_version: &str) -> Self {
        Self {
            critical: Critical {
                identity: Identity {
                    docker_reference: identity.to_string(),
                },
                image: ImageRef {
                    docker_manifest_digest: image.to_string(),
                },
                kind: SIGNATURE_TYPE.to_string(),
            },
            optional: BTreeMap::from([(VERSION_KEY.to_string(), Value::from(format!("kpromo-{kpromo_version}")))]),
        }
    }

    /// The exact bytes that are signed and stored as the layer.
    pub fn to_bytes(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).expect("a payload always serialises"))
    }

    /// Reads a payload layer's bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let payload: Payload =
            serde_json::from_slice(bytes).map_err(|e| format!("not a simple-signing payload: {e}"))?;
        if payload.critical.kind != SIGNATURE_TYPE {
            return Err(format!(
                "payload type is {:?}, not {SIGNATURE_TYPE:?}",
                payload.critical.kind
            ));
        }
        Ok(payload)
    }
}

/// One signature layer: the payload blob's descriptor plus the annotations that make it a
/// signature. Descriptors of layers kpromo did not write are kept as they were.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    pub digest: Digest,
    pub size: u64,
    pub annotations: BTreeMap<String, String>,
    /// The descriptor exactly as found (or as built), so that rewriting the manifest keeps
    /// fields kpromo does not know.
    descriptor: Value,
}

impl Layer {
    /// A new signature layer for `payload` (its bytes must be uploaded as a blob).
    pub fn new(payload: &[u8], annotations: BTreeMap<String, String>) -> Self {
        let digest = Digest::of(payload);
        let descriptor = json!({
            "mediaType": SIMPLE_SIGNING,
            "size": payload.len(),
            "digest": digest.to_string(),
            "annotations": annotations,
        });
        Self {
            digest,
            size: payload.len() as u64,
            annotations,
            descriptor,
        }
    }

    pub fn signature(&self) -> Option<&str> {
        self.annotations.get(SIGNATURE_ANNOTATION).map(String::as_str)
    }
}

/// The layers of media type `media_type` in a cosign manifest (`.sig` or `.att`), with
/// their annotations; other layers are skipped.
pub fn layers(manifest: &RawManifest, media_type: &str) -> Result<Vec<Layer>, String> {
    let value: Value =
        serde_json::from_slice(&manifest.bytes).map_err(|e| format!("cosign manifest is not JSON: {e}"))?;
    let layers = value["layers"].as_array().cloned().unwrap_or_default();
    let mut out = Vec::new();
    for descriptor in layers {
        if descriptor["mediaType"].as_str() != Some(media_type) {
            continue;
        }
        let digest: Digest = descriptor["digest"]
            .as_str()
            .unwrap_or_default()
            .parse()
            .map_err(|e| format!("layer digest: {e}"))?;
        let size = descriptor["size"].as_u64().ok_or("a layer without a size")?;
        let annotations = descriptor["annotations"]
            .as_object()
            .map(|a| {
                a.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        out.push(Layer {
            digest,
            size,
            annotations,
            descriptor,
        });
    }
    Ok(out)
}

/// The signature manifest of one image: every signature layer it holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Signatures {
    pub layers: Vec<Layer>,
}

impl Signatures {
    /// Reads a `.sig` manifest. Layers that are not simple-signing payloads are skipped
    /// (kept out of the rewrite too: they would not be signatures).
    pub fn parse(manifest: &RawManifest) -> Result<Self, String> {
        Ok(Self {
            layers: layers(manifest, SIMPLE_SIGNING)?,
        })
    }

    pub fn contains(&self, layer: &Layer) -> bool {
        self.layers
            .iter()
            .any(|l| l.digest == layer.digest && l.annotations == layer.annotations)
    }

    /// Adds the layers of `other` this one lacks (signatures are kept, never replaced).
    /// Returns whether anything was added.
    pub fn merge(&mut self, other: &Signatures) -> bool {
        let mut added = false;
        for layer in &other.layers {
            if !self.contains(layer) {
                self.layers.push(layer.clone());
                added = true;
            }
        }
        added
    }

    /// The config blob and the manifest for these layers, shaped like cosign's (an OCI
    /// image whose config lists the layers as its root filesystem).
    pub fn to_manifest(&self) -> (Bytes, RawManifest) {
        let diff_ids: Vec<String> = self.layers.iter().map(|l| l.digest.to_string()).collect();
        let history: Vec<Value> = self
            .layers
            .iter()
            .map(|_| json!({"created": "0001-01-01T00:00:00Z"}))
            .collect();
        let config = json!({
            "architecture": "",
            "created": "0001-01-01T00:00:00Z",
            "history": history,
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "config": {},
        });
        let config = Bytes::from(serde_json::to_vec(&config).expect("config serialises"));
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": CONFIG_MEDIA_TYPE, "size": config.len(), "digest": Digest::of(&config).to_string()},
            "layers": self.layers.iter().map(|l| l.descriptor.clone()).collect::<Vec<_>>(),
        });
        let bytes = Bytes::from(serde_json::to_vec(&manifest).expect("manifest serialises"));
        (config, RawManifest::new(OCI_MANIFEST, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_has_cosigns_shape_and_reads_back() {
        let image = Digest::of(b"image");
        let payload = Payload::new("registry.k8s.io/pause", &image, "1.2.3");
        let json: Value = serde_json::from_slice(&payload.to_bytes()).unwrap();
        assert_eq!(
            json["critical"]["identity"]["docker-reference"],
            "registry.k8s.io/pause"
        );
        assert_eq!(json["critical"]["image"]["docker-manifest-digest"], image.to_string());
        assert_eq!(json["critical"]["type"], SIGNATURE_TYPE);
        assert_eq!(json["optional"][VERSION_KEY], "kpromo-1.2.3");
        assert_eq!(Payload::parse(&payload.to_bytes()).unwrap(), payload);
        assert!(Payload::parse(br#"{"critical":{"identity":{"docker-reference":"x"},"image":{"docker-manifest-digest":"y"},"type":"other"}}"#).is_err());
    }

    #[test]
    fn merging_keeps_every_signature_once_and_foreign_fields() {
        let mut theirs = Signatures::default();
        theirs.layers.push(Layer::new(
            b"one",
            BTreeMap::from([(SIGNATURE_ANNOTATION.into(), "c2ln".into())]),
        ));
        let (_, manifest) = theirs.to_manifest();
        // Another tool's manifest: extra descriptor fields and a non-signature layer.
        let mut value: Value = serde_json::from_slice(&manifest.bytes).unwrap();
        value["layers"][0]["x-extra"] = json!(1);
        value["layers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"mediaType": "text/plain", "digest": Digest::of(b"t").to_string(), "size": 1}));
        let foreign = RawManifest::new(OCI_MANIFEST, Bytes::from(value.to_string()));
        let mut ours = Signatures::parse(&foreign).unwrap();
        assert_eq!(ours.layers.len(), 1, "only simple-signing layers are signatures");
        let mine = Layer::new(
            b"two",
            BTreeMap::from([(SIGNATURE_ANNOTATION.into(), "bXlzaWc=".into())]),
        );
        let extra = Signatures {
            layers: vec![mine.clone()],
        };
        assert!(ours.merge(&extra));
        assert!(!ours.merge(&extra), "merging twice adds nothing");
        let (config, rewritten) = ours.to_manifest();
        let back: Value = serde_json::from_slice(&rewritten.bytes).unwrap();
        assert_eq!(back["layers"][0]["x-extra"], 1, "foreign descriptor fields survive");
        assert_eq!(back["layers"].as_array().unwrap().len(), 2);
        let config: Value = serde_json::from_slice(&config).unwrap();
        assert_eq!(config["rootfs"]["diff_ids"][1], mine.digest.to_string());
        assert_eq!(
            signature_tag(&Digest::of(b"i")),
            format!("sha256-{}.sig", Digest::of(b"i").hex())
        );
    }
}
