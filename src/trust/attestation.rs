//! The formats attestations travel in, pure (the registry I/O is `attest` and `attached`):
//!
//! - an in-toto v1 Statement: subjects (name and digest), a predicate type, a predicate;
//!   kpromo's own says that an image was promoted ([`PromotionRecord`], Go kpromo's
//!   `PromotionRecord` with the same JSON keys);
//! - a DSSE envelope around it (payload type `application/vnd.in-toto+json`; the signature
//!   is over DSSE's pre-authentication encoding, PAE);
//! - a sigstore bundle v0.3 holding the envelope and what proves who signed it: a
//!   public-key hint for a key, or the Fulcio certificate and the Rekor entry;
//! - the OCI 1.1 referrer manifest that attaches a bundle to an image (cosign v3's
//!   `--new-bundle-format` layout): `artifactType` the bundle's media type, the empty
//!   config, one layer (the bundle), `subject` the image.
//!
//! What is written is what the strictest verifiers accept (sigstore-models' schema,
//! securesystemslib): every DSSE signature carries a `keyid` (`""` when there is none),
//! base64 is standard and padded, `tlogEntries` is present even when empty, and the media
//! type is exactly `application/vnd.dev.sigstore.bundle.v0.3+json`.
use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sigstore_sign::types::TransparencyLogEntry;
use sigstore_sign::types::bundle::{CertificateContent, PublicKeyIdentifier, VerificationMaterialContent};

use crate::digest::Digest;
use crate::registry::media::{ManifestLinks, OCI_MANIFEST};
use crate::registry::{Descriptor, RawManifest};

/// The predicate type of kpromo's (and Go kpromo's) promotion attestations: deliberately
/// not SLSA provenance, so that promotion records are told apart from build attestations.
pub const PROMOTION_PREDICATE_TYPE: &str = "https://k8s.io/promo-tools/promotion/v1";
/// SLSA provenance v1: what staging builds attest by default.
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
/// SLSA provenance v0.2, still written by older builders.
pub const SLSA_PROVENANCE_V02: &str = "https://slsa.dev/provenance/v0.2";
pub const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
/// The Statement type of in-toto attestations before v1 (cosign `attest` wrote these).
pub const STATEMENT_V01: &str = "https://in-toto.io/Statement/v0.1";
/// The DSSE payload type of an in-toto Statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
pub const BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The same media type as early sigstore clients spelled it.
pub const BUNDLE_V03_PARAMETER: &str = "application/vnd.dev.sigstore.bundle+json;version=0.3";
/// OCI 1.1's empty descriptor: the config of an artifact that has none.
pub const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";
pub const EMPTY_CONFIG_BYTES: &[u8] = b"{}";
/// Annotations of a sigstore bundle referrer, as cosign v3 writes them.
pub const CONTENT_ANNOTATION: &str = "dev.sigstore.bundle.content";
pub const PREDICATE_TYPE_ANNOTATION: &str = "dev.sigstore.bundle.predicateType";
pub const CREATED_ANNOTATION: &str = "org.opencontainers.image.created";

/// Whether `media_type` names a sigstore bundle v0.3, however spelled.
pub fn is_bundle(media_type: &str) -> bool {
    media_type == BUNDLE_V03 || media_type == BUNDLE_V03_PARAMETER
}

/// What a promotion attestation says about one promoted digest (the predicate). Field
/// order and names are Go kpromo's (`promo_tools.provenance.v1.PromotionRecord`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromotionRecord {
    /// `staging-registry/image@sha256:…`: where the image was promoted from.
    pub src_ref: String,
    /// `destination-registry/image@sha256:…`: where the attestation is.
    pub dst_ref: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// RFC 3339 UTC, one for the whole run.
    pub timestamp: String,
    /// `https://k8s.io/promo-tools@<version>`.
    pub builder_id: String,
}

/// The builder id of this kpromo.
pub fn builder_id() -> String {
    format!("https://k8s.io/promo-tools@v{}", env!("CARGO_PKG_VERSION"))
}

/// An in-toto v1 Statement, as written.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Statement<'a, P: Serialize> {
    #[serde(rename = "_type")]
    kind: &'static str,
    subject: [Subject<'a>; 1],
    predicate_type: &'a str,
    predicate: &'a P,
}

#[derive(Serialize)]
struct Subject<'a> {
    name: &'a str,
    digest: BTreeMap<&'static str, String>,
}

/// The promotion Statement for `image`, published as `name` (the public name signatures
/// vouch for, `registry.k8s.io/<image>`): the exact bytes that are signed.
pub fn promotion_statement(name: &str, image: &Digest, record: &PromotionRecord) -> Vec<u8> {
    let statement = Statement {
        kind: STATEMENT_V1,
        subject: [Subject {
            name,
            digest: BTreeMap::from([("sha256", image.hex())]),
        }],
        predicate_type: PROMOTION_PREDICATE_TYPE,
        predicate: record,
    };
    serde_json::to_vec(&statement).expect("a statement always serialises")
}

/// A DSSE envelope with one signature, as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    #[serde(with = "base64_text")]
    pub payload: Vec<u8>,
    pub payload_type: String,
    pub signatures: [EnvelopeSignature; 1],
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvelopeSignature {
    /// Always written, `""` when the signer names no key: securesystemslib only tries
    /// keys whose id equals a signature's, and refuses a signature without one.
    pub keyid: String,
    #[serde(with = "base64_text")]
    pub sig: Vec<u8>,
}

impl Envelope {
    pub fn new(payload_type: &str, payload: Vec<u8>, signature: Vec<u8>) -> Self {
        Self {
            payload,
            payload_type: payload_type.to_string(),
            signatures: [EnvelopeSignature {
                keyid: String::new(),
                sig: signature,
            }],
        }
    }
}

/// DSSE's pre-authentication encoding: what a DSSE signature signs.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    sigstore_sign::types::pae(payload_type, payload)
}

/// What proves who signed an envelope.
#[derive(Debug, Clone)]
pub enum Material {
    /// A key the verifier has: the bundle carries only a hint (which the verifier must not
    /// trust; here the base64 SHA-256 of the public key, as cosign writes it).
    PublicKey { hint: String },
    /// Keyless: the Fulcio certificate (DER) and the Rekor entry of the signature.
    Keyless {
        certificate: sigstore_sign::types::DerCertificate,
        entry: Box<TransparencyLogEntry>,
    },
}

/// A sigstore bundle v0.3, as written: the envelope and its verification material, with
/// `tlogEntries` always present.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BundleJson<'a> {
    media_type: &'static str,
    verification_material: MaterialJson<'a>,
    dsse_envelope: &'a Envelope,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MaterialJson<'a> {
    #[serde(flatten)]
    content: VerificationMaterialContent,
    tlog_entries: &'a [TransparencyLogEntry],
}

/// The bundle bytes for `envelope` signed as `material` says.
pub fn bundle(envelope: &Envelope, material: &Material) -> Bytes {
    let (content, entries) = match material {
        Material::PublicKey { hint } => (
            VerificationMaterialContent::PublicKey(PublicKeyIdentifier::new(hint.clone())),
            Vec::new(),
        ),
        Material::Keyless { certificate, entry } => (
            VerificationMaterialContent::Certificate(CertificateContent::new(certificate.clone())),
            vec![(**entry).clone()],
        ),
    };
    let json = BundleJson {
        media_type: BUNDLE_V03,
        verification_material: MaterialJson {
            content,
            tlog_entries: &entries,
        },
        dsse_envelope: envelope,
    };
    Bytes::from(serde_json::to_vec(&json).expect("a bundle always serialises"))
}

/// The referrer manifest attaching `bundle` (a DSSE bundle of a `predicate_type`
/// Statement) to `subject`, created at `created` (RFC 3339). Its blobs are the empty
/// config ([`EMPTY_CONFIG_BYTES`]) and the bundle.
pub fn referrer_manifest(subject: &Descriptor, bundle: &[u8], predicate_type: &str, created: &str) -> RawManifest {
    let empty = Digest::of(EMPTY_CONFIG_BYTES);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": BUNDLE_V03,
        "config": {
            "mediaType": EMPTY_CONFIG,
            "digest": empty.to_string(),
            "size": EMPTY_CONFIG_BYTES.len(),
            // As cosign v3 writes it: registries that list a referrer's type from its
            // config still see a bundle.
            "artifactType": BUNDLE_V03,
        },
        "layers": [{
            "mediaType": BUNDLE_V03,
            "digest": Digest::of(bundle).to_string(),
            "size": bundle.len(),
        }],
        "subject": {
            "mediaType": subject.media_type,
            "digest": subject.digest.to_string(),
            "size": subject.size,
        },
        "annotations": {
            CONTENT_ANNOTATION: "dsse-envelope",
            PREDICATE_TYPE_ANNOTATION: predicate_type,
            CREATED_ANNOTATION: created,
        },
    });
    RawManifest::new(
        OCI_MANIFEST,
        Bytes::from(serde_json::to_vec(&manifest).expect("a manifest always serialises")),
    )
}

/// The bundle layer of a referrer manifest, when it is a sigstore bundle referrer: its
/// digest and size.
pub fn bundle_layer(manifest: &RawManifest) -> Option<(Digest, u64)> {
    let links = ManifestLinks::parse(&manifest.bytes).ok()?;
    links
        .layers
        .iter()
        .chain(&links.blobs)
        .find(|l| is_bundle(l.media_type.as_str()))
        .map(|l| (l.digest, l.size))
}

/// An in-toto Statement as read (v1, or v0.1 from older builders), unknown fields ignored.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatementView {
    #[serde(rename = "_type")]
    pub kind: String,
    pub subject: Vec<SubjectView>,
    pub predicate_type: String,
    #[serde(default)]
    pub predicate: Value,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SubjectView {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub digest: BTreeMap<String, String>,
}

impl StatementView {
    /// Reads a DSSE payload as an in-toto Statement.
    pub fn parse(payload_type: &str, payload: &[u8]) -> Result<Self, String> {
        if payload_type != IN_TOTO_PAYLOAD_TYPE {
            return Err(format!(
                "the payload type is {payload_type:?}, not an in-toto Statement ({IN_TOTO_PAYLOAD_TYPE})"
            ));
        }
        let statement: StatementView =
            serde_json::from_slice(payload).map_err(|e| format!("the payload is not an in-toto Statement: {e}"))?;
        if statement.kind != STATEMENT_V1 && statement.kind != STATEMENT_V01 {
            return Err(format!(
                "the payload's _type {:?} is not an in-toto Statement",
                statement.kind
            ));
        }
        Ok(statement)
    }

    /// The `sha256:<hex>` digests the Statement is about.
    pub fn subject_digests(&self) -> Vec<String> {
        self.subject
            .iter()
            .filter_map(|s| s.digest.get("sha256"))
            .map(|hex| format!("sha256:{}", hex.to_ascii_lowercase()))
            .collect()
    }

    /// Whether `image` is one of the Statement's subjects.
    pub fn names(&self, image: &Digest) -> bool {
        self.subject_digests().iter().any(|d| *d == image.to_string())
    }
}

/// What a build provenance predicate says about the build: the builder's id and the
/// source repository, empty when it does not say. SLSA v1: `runDetails.builder.id`, and
/// the source from `buildDefinition.externalParameters` (`source`, as a string or a
/// `{uri}`; GitHub's `workflow.repository`) else the first `resolvedDependencies` URI.
/// SLSA v0.2: `builder.id`, and `invocation.configSource.uri` else the first material.
pub fn provenance_facts(predicate: &Value) -> (String, String) {
    let text = |v: &Value| v.as_str().map(str::to_string);
    let builder = text(&predicate["runDetails"]["builder"]["id"])
        .or_else(|| text(&predicate["builder"]["id"]))
        .unwrap_or_default();
    let external = &predicate["buildDefinition"]["externalParameters"];
    let source = text(&external["source"])
        .or_else(|| text(&external["source"]["uri"]))
        .or_else(|| text(&external["workflow"]["repository"]))
        .or_else(|| text(&predicate["buildDefinition"]["resolvedDependencies"][0]["uri"]))
        .or_else(|| text(&predicate["invocation"]["configSource"]["uri"]))
        .or_else(|| text(&predicate["materials"][0]["uri"]))
        .unwrap_or_default();
    (builder, source)
}

/// Standard base64 with padding, as sigstore's schema requires.
mod base64_text {
    use base64::Engine as _;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::STANDARD.encode(bytes))
    }
}

/// The base64 SHA-256 of a public key's DER: the key hint of a bundle signed with it.
pub fn key_hint(public_key_der: &[u8]) -> String {
    STANDARD.encode(Digest::of(public_key_der).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(image: &Digest) -> PromotionRecord {
        PromotionRecord {
            src_ref: format!("gcr.io/k8s-staging-foo/foo@{image}"),
            dst_ref: format!("us-central1-docker.pkg.dev/k8s-artifacts-prod/images/foo@{image}"),
            digest: image.to_string(),
            timestamp: "2026-12-08T10:00:00Z".into(),
            builder_id: builder_id(),
        }
    }

    #[test]
    fn the_promotion_statement_has_go_kpromos_shape_and_reads_back() {
        let image = Digest::of(b"image");
        let bytes = promotion_statement("registry.k8s.io/foo", &image, &record(&image));
        let json: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["_type"], STATEMENT_V1);
        assert_eq!(json["subject"][0]["name"], "registry.k8s.io/foo");
        assert_eq!(json["subject"][0]["digest"]["sha256"], image.hex());
        assert_eq!(json["predicateType"], PROMOTION_PREDICATE_TYPE);
        let keys: Vec<&str> = json["predicate"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = vec!["builderId", "digest", "dstRef", "srcRef", "timestamp"];
        expected.sort();
        assert_eq!(keys, expected);
        assert_eq!(json["predicate"]["digest"], image.to_string());
        // The bytes keep Go's field order (serde_json's Value sorts them; the text does not).
        let text = String::from_utf8(bytes.clone()).unwrap();
        let order: Vec<usize> = ["srcRef", "dstRef", "\"digest\":\"sha256:", "timestamp", "builderId"]
            .iter()
            .map(|k| text.find(k).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
        let view = StatementView::parse(IN_TOTO_PAYLOAD_TYPE, &bytes).unwrap();
        assert!(view.names(&image));
        assert!(!view.names(&Digest::of(b"other")));
        assert!(StatementView::parse("application/json", &bytes).is_err());
        assert!(StatementView::parse(IN_TOTO_PAYLOAD_TYPE, b"{}").is_err());
    }

    #[test]
    fn bundles_keep_keyid_padding_and_tlog_entries() {
        let envelope = Envelope::new(IN_TOTO_PAYLOAD_TYPE, b"ab".to_vec(), b"s".to_vec());
        let bytes = bundle(
            &envelope,
            &Material::PublicKey {
                hint: "aGludA==".into(),
            },
        );
        let json: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["mediaType"], BUNDLE_V03);
        assert_eq!(json["verificationMaterial"]["publicKey"]["hint"], "aGludA==");
        assert_eq!(json["verificationMaterial"]["tlogEntries"], json!([]));
        assert_eq!(json["dsseEnvelope"]["signatures"][0]["keyid"], "");
        assert_eq!(json["dsseEnvelope"]["payload"], "YWI=", "padded standard base64");
        assert_eq!(json["dsseEnvelope"]["signatures"][0]["sig"], "cw==");
        // sigstore's own reader takes it.
        sigstore_sign::types::Bundle::from_json(std::str::from_utf8(&bytes).unwrap()).unwrap();
    }

    #[test]
    fn the_referrer_manifest_attaches_the_bundle_to_its_subject() {
        let subject = RawManifest::new(OCI_MANIFEST, Bytes::from_static(b"{\"config\":{}}"));
        let manifest = referrer_manifest(
            &subject.descriptor(),
            b"bundle",
            SLSA_PROVENANCE_V1,
            "2026-12-08T10:00:00Z",
        );
        let links = ManifestLinks::parse(&manifest.bytes).unwrap();
        assert_eq!(links.artifact_type.as_ref().map(|t| t.as_str()), Some(BUNDLE_V03));
        assert_eq!(links.subject.as_ref().map(|s| s.digest), Some(subject.digest));
        assert_eq!(links.subject.as_ref().map(|s| s.size), Some(subject.bytes.len() as u64));
        assert_eq!(
            links.config.as_ref().map(|c| c.digest),
            Some(Digest::of(EMPTY_CONFIG_BYTES))
        );
        let annotations = links.annotations.unwrap();
        assert_eq!(annotations[CONTENT_ANNOTATION], "dsse-envelope");
        assert_eq!(annotations[PREDICATE_TYPE_ANNOTATION], SLSA_PROVENANCE_V1);
        assert_eq!(annotations[CREATED_ANNOTATION], "2026-12-08T10:00:00Z");
        assert_eq!(bundle_layer(&manifest), Some((Digest::of(b"bundle"), 6)));
    }

    #[test]
    fn provenance_facts_of_slsa_v1_and_v02() {
        let v1 = json!({
            "buildDefinition": {
                "buildType": "https://example/build",
                "externalParameters": {"workflow": {"repository": "https://github.com/kubernetes/foo"}},
            },
            "runDetails": {"builder": {"id": "https://github.com/actions/runner"}},
        });
        assert_eq!(
            provenance_facts(&v1),
            (
                "https://github.com/actions/runner".to_string(),
                "https://github.com/kubernetes/foo".to_string()
            )
        );
        let v02 = json!({
            "builder": {"id": "https://cloudbuild.googleapis.com/GoogleHostedWorker"},
            "invocation": {"configSource": {"uri": "git+https://github.com/kubernetes/bar"}},
        });
        assert_eq!(
            provenance_facts(&v02),
            (
                "https://cloudbuild.googleapis.com/GoogleHostedWorker".to_string(),
                "git+https://github.com/kubernetes/bar".to_string()
            )
        );
        assert_eq!(provenance_facts(&json!({})), (String::new(), String::new()));
    }
}
