//! Checking cosign signatures and attestations: a signature layer is valid for an image
//! when its signature verifies over its exact payload bytes (with a public key, or with a
//! certificate that chains to the trusted root and names the expected identity), and the
//! payload names that image's digest. An attestation ([`SignedStatement`]) likewise, over
//! its DSSE envelope's PAE, with a Statement whose subject is the image.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sigstore_sign::crypto::VerificationKey;
use sigstore_sign::trust_root::TrustedRoot;
use sigstore_sign::types::{Bundle, DsseEnvelope, Sha256Hash, SignatureBytes, SignatureContent};
use sigstore_verify::{VerificationPolicy, Verifier};
use tokio::sync::OnceCell;

use super::attestation::StatementView;
use super::{key, root};

use super::cosign::{
    BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, Payload, SIGNATURE_ANNOTATION, Signatures,
    signature_tag,
};
use super::sign::{read_payload, read_signatures};
use super::{Error, reference};
use crate::copy::Repo;
use crate::digest::Digest;
use crate::registry::ManifestRef;

/// An expected value: exact, or a regular expression (`--certificate-identity-regexp`).
#[derive(Debug, Clone)]
pub enum Matcher {
    Exact(String),
    Regex(regex::Regex),
}

impl Matcher {
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Exact(want) => want == value,
            Matcher::Regex(re) => re.is_match(value),
        }
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Matcher::Exact(s) => write!(f, "{s:?}"),
            Matcher::Regex(re) => write!(f, "/{}/", re.as_str()),
        }
    }
}

/// Who must have signed, for keyless signatures: the certificate's subject (an email or
/// URI) and the OIDC issuer that vouched for it.
#[derive(Debug, Clone)]
pub struct IdentityPolicy {
    pub identity: Matcher,
    pub issuer: Matcher,
}

/// What a valid signature must satisfy.
#[derive(Clone)]
pub enum Policy {
    /// Made with the private half of this key.
    Key(Arc<VerificationKey>),
    /// Keyless: a certificate chaining to the trusted root (with its certificate
    /// transparency and transparency-log evidence) for an expected identity.
    Keyless {
        identity: IdentityPolicy,
        verifier: Arc<Verifier>,
    },
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Policy::Key(_) => f.write_str("Policy::Key"),
            Policy::Keyless { identity, .. } => write!(
                f,
                "Policy::Keyless {{ identity: {}, issuer: {} }}",
                identity.identity, identity.issuer
            ),
        }
    }
}

/// A policy built on first use: most staging images carry no signature and no
/// attestation, and building one means loading a key, or a trusted root (maybe through
/// TUF).
#[derive(Debug)]
pub struct LazyPolicy {
    /// A public key (PEM); otherwise keyless, for `identity` against `trusted_root`.
    key: Option<PathBuf>,
    identity: Option<IdentityPolicy>,
    trusted_root: Option<PathBuf>,
    built: OnceCell<Policy>,
}

impl LazyPolicy {
    pub fn new(key: Option<PathBuf>, identity: Option<IdentityPolicy>, trusted_root: Option<PathBuf>) -> Self {
        Self {
            key,
            identity,
            trusted_root,
            built: OnceCell::new(),
        }
    }

    /// The policy, built the first time it is asked for.
    pub async fn get(&self) -> Result<&Policy, Error> {
        self.built
            .get_or_try_init(|| async {
                if let Some(path) = &self.key {
                    return Ok(Policy::Key(Arc::new(key::load_public_key(path)?)));
                }
                let identity = self.identity.clone().ok_or_else(|| {
                    Error::Signer("no signer identity to check against (--certificate-identity)".into())
                })?;
                let trusted = root::load(self.trusted_root.as_deref()).await?;
                let verifier = keyless_verifier(&trusted).map_err(Error::Signer)?;
                Ok(Policy::Keyless {
                    identity,
                    verifier: Arc::new(verifier),
                })
            })
            .await
    }
}

/// A verifier over a sigstore trusted root (Fulcio CAs, Rekor and CT log keys).
pub fn keyless_verifier(root: &TrustedRoot) -> Result<Verifier, String> {
    Verifier::new(root).map_err(|e| format!("the trusted root cannot be used: {e}"))
}

/// Why a signature layer does not count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// A sound signature, by someone else than the policy expects (keyless: another
    /// identity or issuer). Not proof of tampering.
    Foreign(String),
    /// Not a valid signature of this image: it does not verify (with the key, or against
    /// the trusted root), is malformed, or vouches for another digest.
    Invalid(String),
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::Foreign(why) | Rejection::Invalid(why) => f.write_str(why),
        }
    }
}

/// Checks one signature layer (`payload` bytes and the layer's annotations) against
/// `policy` and `image`; returns the payload it vouches for.
pub fn verify_layer(
    payload: &[u8],
    annotations: &BTreeMap<String, String>,
    image: &Digest,
    policy: &Policy,
) -> Result<Payload, Rejection> {
    verify_layer_by(payload, annotations, image, policy).map(|(payload, _)| payload)
}

/// [`verify_layer`], also saying who signed: the certificate's identity for a keyless
/// signature, `None` for one made with a key (a key has no name to report).
fn verify_layer_by(
    payload: &[u8],
    annotations: &BTreeMap<String, String>,
    image: &Digest,
    policy: &Policy,
) -> Result<(Payload, Option<String>), Rejection> {
    let invalid = Rejection::Invalid;
    let signature = annotations
        .get(SIGNATURE_ANNOTATION)
        .ok_or_else(|| invalid(format!("no {SIGNATURE_ANNOTATION} annotation")))?;
    let signature = STANDARD
        .decode(signature)
        .map_err(|e| invalid(format!("signature is not base64: {e}")))?;
    let signer = match policy {
        Policy::Key(key) => {
            key.verify(payload, &SignatureBytes::new(signature))
                .map_err(|_| invalid("signature does not verify with the given key".to_string()))?;
            None
        }
        Policy::Keyless { identity, verifier } => {
            let bundle = legacy_bundle(message_signature(payload, &signature), annotations).map_err(invalid)?;
            let verified = verifier
                .verify(payload, &bundle, &VerificationPolicy::any_identity())
                .map_err(|e| invalid(format!("keyless signature does not verify: {e}")))?;
            let subject = verified.identity().map(|i| i.as_str().to_string()).unwrap_or_default();
            let issuer = verified.issuer().unwrap_or_default();
            if !identity.identity.matches(&subject) || !identity.issuer.matches(issuer) {
                return Err(Rejection::Foreign(format!(
                    "signed by {subject:?} (issuer {issuer:?}), not by {} (issuer {})",
                    identity.identity, identity.issuer
                )));
            }
            Some(subject)
        }
    };
    let parsed = Payload::parse(payload).map_err(invalid)?;
    let signed = &parsed.critical.image.docker_manifest_digest;
    if *signed != image.to_string() {
        return Err(invalid(format!("the signature is for {signed}, not for {image}")));
    }
    Ok((parsed, signer))
}

/// What the signatures attached to one image amount to under a policy.
#[derive(Debug, Default)]
pub struct Verdict {
    /// The names valid signatures vouch for (`critical.identity.docker-reference`).
    pub valid: Vec<String>,
    /// Who made the valid keyless signatures (certificate identities), for the policy
    /// engine's `staging_signature.identity`; key signatures name nobody.
    pub signers: Vec<String>,
    /// Sound signatures by someone else.
    pub foreign: Vec<String>,
    /// Signatures that do not verify: tampering, or garbage.
    pub invalid: Vec<String>,
}

impl Verdict {
    /// No `.sig` at all.
    pub fn unsigned(&self) -> bool {
        self.valid.is_empty() && self.foreign.is_empty() && self.invalid.is_empty()
    }
}

/// Reads and checks every signature attached to `image` in `repo`.
pub async fn verify_image(repo: &Repo, image: &Digest, policy: &Policy) -> Result<Verdict, Error> {
    let signatures = attached_signatures(repo, image).await?;
    verify_signatures(repo, image, &signatures, policy).await
}

/// The signatures attached to `image` in `repo` (none when it has no `.sig`).
pub async fn attached_signatures(repo: &Repo, image: &Digest) -> Result<Signatures, Error> {
    read_signatures(repo, &ManifestRef::Tag(signature_tag(image))).await
}

/// Checks `signatures`, read from `repo`, as signatures of `image`.
pub async fn verify_signatures(
    repo: &Repo,
    image: &Digest,
    signatures: &Signatures,
    policy: &Policy,
) -> Result<Verdict, Error> {
    let mut verdict = Verdict::default();
    for layer in &signatures.layers {
        let at = reference(&repo.display, &layer.digest);
        let checked = match read_payload(repo, &layer.digest).await {
            Ok(payload) => verify_layer_by(&payload, &layer.annotations, image, policy),
            Err(Error::Registry(e)) => return Err(Error::Registry(e)),
            Err(e) => Err(Rejection::Invalid(e.to_string())),
        };
        match checked {
            Ok((payload, signer)) => {
                verdict.valid.push(payload.critical.identity.docker_reference);
                verdict.signers.extend(signer);
            }
            Err(Rejection::Foreign(why)) => verdict.foreign.push(format!("{at}: {why}")),
            Err(Rejection::Invalid(why)) => verdict.invalid.push(format!("{at}: {why}")),
        }
    }
    Ok(verdict)
}

/// A sigstore bundle (v0.1: certificate chain plus the log's signed entry timestamp) made
/// from a cosign layer's annotations and its `content` (a message signature for `.sig`,
/// a DSSE envelope for `.att`), so that one verifier checks every format.
fn legacy_bundle(content: (&str, Value), annotations: &BTreeMap<String, String>) -> Result<Bundle, String> {
    let annotation = |name: &str| {
        annotations
            .get(name)
            .ok_or_else(|| format!("a keyless signature needs the {name} annotation"))
    };
    let mut certificates = Vec::new();
    for pem_text in [
        annotation(CERTIFICATE_ANNOTATION)?.as_str(),
        annotations.get(CHAIN_ANNOTATION).map_or("", String::as_str),
    ] {
        for block in pem::parse_many(pem_text).map_err(|e| format!("certificate PEM: {e}"))? {
            certificates.push(json!({"rawBytes": STANDARD.encode(block.contents())}));
        }
    }
    let cosign: Value =
        serde_json::from_str(annotation(BUNDLE_ANNOTATION)?).map_err(|e| format!("{BUNDLE_ANNOTATION}: {e}"))?;
    let log_id = hex::decode(cosign["Payload"]["logID"].as_str().unwrap_or_default())
        .map_err(|e| format!("{BUNDLE_ANNOTATION}: logID: {e}"))?;
    // The entry's kind and version are in the body the log signed (`hashedrekord` for
    // cosign signatures, `intoto` or `dsse` for attestations).
    let body = cosign["Payload"]["body"].as_str().unwrap_or_default();
    let entry: Value = STANDARD
        .decode(body)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| format!("{BUNDLE_ANNOTATION}: the log entry's body is not base64 JSON"))?;
    let mut bundle = json!({
        "mediaType": "application/vnd.dev.sigstore.bundle+json;version=0.1",
        "verificationMaterial": {
            "x509CertificateChain": {"certificates": certificates},
            "tlogEntries": [{
                "logIndex": cosign["Payload"]["logIndex"].as_i64().unwrap_or_default().to_string(),
                "logId": {"keyId": STANDARD.encode(log_id)},
                "kindVersion": {"kind": entry["kind"], "version": entry["apiVersion"]},
                "integratedTime": cosign["Payload"]["integratedTime"].as_i64().unwrap_or_default().to_string(),
                "inclusionPromise": {"signedEntryTimestamp": cosign["SignedEntryTimestamp"]},
                "canonicalizedBody": body,
            }],
        },
    });
    bundle[content.0] = content.1;
    Bundle::from_json(&bundle.to_string()).map_err(|e| format!("the signature's certificate and log entry: {e}"))
}

/// The cosign message-signature bundle content of a `.sig` layer.
fn message_signature(payload: &[u8], signature: &[u8]) -> (&'static str, Value) {
    (
        "messageSignature",
        json!({
            "messageDigest": {"algorithm": "SHA2_256", "digest": STANDARD.encode(sigstore_sign::crypto::sha256(payload).as_bytes())},
            "signature": STANDARD.encode(signature),
        }),
    )
}

/// A DSSE-signed in-toto Statement as found attached to an image: in a sigstore bundle
/// (an OCI 1.1 referrer, kpromo's and cosign v3's format) or in a cosign `.att` layer
/// (the envelope as the layer, its certificate and log entry in annotations).
#[derive(Debug)]
pub struct SignedStatement {
    envelope: DsseEnvelope,
    statement: StatementView,
    /// What proves a keyless signer: the bundle as found, or made from the `.att` layer's
    /// annotations; `None` when it was signed with a key (no certificate).
    evidence: Result<Option<Bundle>, String>,
}

/// Who signed an attestation that verifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedBy {
    /// `identity (issuer issuer)` for keyless, `the given key` for a key.
    pub name: String,
}

impl SignedStatement {
    /// Reads a sigstore bundle holding a DSSE envelope.
    pub fn from_bundle(bytes: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "the bundle is not UTF-8 JSON".to_string())?;
        let bundle = Bundle::from_json(text).map_err(|e| format!("not a sigstore bundle: {e}"))?;
        let SignatureContent::DsseEnvelope(envelope) = &bundle.content else {
            return Err("the bundle holds a message signature, not a DSSE envelope".into());
        };
        let envelope = envelope.clone();
        let statement = StatementView::parse(&envelope.payload_type, envelope.payload.as_bytes())?;
        let keyless = bundle.signing_certificate().is_some();
        Ok(Self {
            envelope,
            statement,
            evidence: Ok(keyless.then_some(bundle)),
        })
    }

    /// Reads a cosign `.att` layer: the envelope bytes and the layer's annotations.
    pub fn from_cosign_layer(envelope: &[u8], annotations: &BTreeMap<String, String>) -> Result<Self, String> {
        let envelope: DsseEnvelope =
            serde_json::from_slice(envelope).map_err(|e| format!("not a DSSE envelope: {e}"))?;
        let statement = StatementView::parse(&envelope.payload_type, envelope.payload.as_bytes())?;
        let content = (
            "dsseEnvelope",
            serde_json::to_value(&envelope).map_err(|e| e.to_string())?,
        );
        let evidence = if annotations.contains_key(CERTIFICATE_ANNOTATION) {
            legacy_bundle(content, annotations).map(Some)
        } else {
            Ok(None)
        };
        Ok(Self {
            evidence,
            envelope,
            statement,
        })
    }

    pub fn statement(&self) -> &StatementView {
        &self.statement
    }

    /// Checks the signature against `policy` (keyless: the certificate chain, its
    /// transparency evidence and the log entry against the trusted root, then the
    /// signer), then that the Statement is about `image`. A sound attestation by
    /// someone else is [`Rejection::Foreign`], whatever it is about; so, under a keyless
    /// policy, is one signed with a key (whose signer no identity names).
    pub fn verify(&self, image: &Digest, policy: &Policy) -> Result<VerifiedBy, Rejection> {
        let invalid = Rejection::Invalid;
        let signer = match policy {
            Policy::Key(key) => {
                key.verify(self.envelope.pae(), &self.envelope.signature.sig)
                    .map_err(|_| invalid("the attestation's signature does not verify with the given key".into()))?;
                VerifiedBy {
                    name: "the given key".into(),
                }
            }
            Policy::Keyless { identity, verifier } => {
                // Signed with a key: not by anyone the identity policy can name.
                let Some(bundle) = self.evidence.as_ref().map_err(|why| invalid(why.clone()))? else {
                    return Err(Rejection::Foreign(format!(
                        "signed with a key, not by {} (issuer {})",
                        identity.identity, identity.issuer
                    )));
                };
                // The verifier also binds the Statement to an artifact; it is given one of
                // the Statement's own subjects, so that whom the attestation is by is known
                // before what it is about (checked below, against the image).
                let subject = self
                    .statement
                    .subject_digests()
                    .first()
                    .and_then(|d| Digest::from_str(d).ok())
                    .ok_or_else(|| invalid("the Statement names no sha256 subject".into()))?;
                let subject = Sha256Hash::new(*subject.as_bytes());
                let verified = verifier
                    .verify(subject, bundle, &VerificationPolicy::any_identity())
                    .map_err(|e| invalid(format!("the keyless attestation does not verify: {e}")))?;
                let who = verified.identity().map(|i| i.as_str().to_string()).unwrap_or_default();
                let issuer = verified.issuer().unwrap_or_default();
                if !identity.identity.matches(&who) || !identity.issuer.matches(issuer) {
                    return Err(Rejection::Foreign(format!(
                        "signed by {who:?} (issuer {issuer:?}), not by {} (issuer {})",
                        identity.identity, identity.issuer
                    )));
                }
                VerifiedBy {
                    name: format!("{who} (issuer {issuer})"),
                }
            }
        };
        if !self.statement.names(image) {
            return Err(invalid(format!(
                "the Statement is about {}, not {image}",
                self.statement.subject_digests().join(", ")
            )));
        }
        Ok(signer)
    }
}

#[cfg(test)]
mod tests {
    use sigstore_sign::crypto::KeyPair;

    use super::*;
    use crate::trust::key;

    fn key_policy(key: &KeyPair) -> Policy {
        let der = key.public_key_der().unwrap();
        Policy::Key(Arc::new(key::public_key_from_der(der.as_bytes()).unwrap()))
    }

    #[test]
    fn a_signature_is_valid_only_for_its_key_payload_and_image() {
        let signing = KeyPair::generate_ecdsa_p256().unwrap();
        let other = KeyPair::generate_ecdsa_p256().unwrap();
        let image = Digest::of(b"image");
        let payload = Payload::new("registry.k8s.io/pause", &image, "0").to_bytes();
        let sig = STANDARD.encode(signing.sign(&payload).unwrap().as_bytes());
        let annotations = BTreeMap::from([(SIGNATURE_ANNOTATION.to_string(), sig)]);
        let ok = verify_layer(&payload, &annotations, &image, &key_policy(&signing)).unwrap();
        assert_eq!(ok.critical.identity.docker_reference, "registry.k8s.io/pause");
        let err = verify_layer(&payload, &annotations, &image, &key_policy(&other)).unwrap_err();
        assert!(err.to_string().contains("does not verify"), "{err}");
        let mut tampered = payload.to_vec();
        tampered[10] ^= 1;
        assert!(verify_layer(&tampered, &annotations, &image, &key_policy(&signing)).is_err());
        let err = verify_layer(&payload, &annotations, &Digest::of(b"other"), &key_policy(&signing)).unwrap_err();
        assert!(
            matches!(&err, Rejection::Invalid(why) if why.contains("not for")),
            "{err}"
        );
        assert!(verify_layer(&payload, &BTreeMap::new(), &image, &key_policy(&signing)).is_err());
    }

    #[test]
    fn matchers() {
        assert!(Matcher::Exact("a@b".into()).matches("a@b"));
        assert!(!Matcher::Exact("a@b".into()).matches("a@bc"));
        let re = Matcher::Regex(regex::Regex::new("^(krel-staging|krel-trust)@").unwrap());
        assert!(re.matches("krel-trust@k8s-releng-prod.iam.gserviceaccount.com"));
        assert!(!re.matches("someone@example.com"));
    }
}
