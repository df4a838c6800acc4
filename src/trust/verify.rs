//! Checking cosign signatures: a signature layer is valid for an image when its signature
//! verifies over its exact payload bytes (with a public key, or with a certificate that
//! chains to the trusted root and names the expected identity), and the payload names
//! that image's digest.
use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sigstore_sign::crypto::VerificationKey;
use sigstore_sign::types::SignatureBytes;

use super::cosign::{Payload, SIGNATURE_ANNOTATION};
use crate::digest::Digest;

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
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Policy::Key(_) => f.write_str("Policy::Key"),
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
) -> Result<Payload, String> {
    let signature = annotations
        .get(SIGNATURE_ANNOTATION)
        .ok_or_else(|| format!("no {SIGNATURE_ANNOTATION} annotation"))?;
    let signature = STANDARD
        .decode(signature)
        .map_err(|e| format!("signature is not base64: {e}"))?;
    match policy {
        Policy::Key(key) => key
            .verify(payload, &SignatureBytes::new(signature))
            .map_err(|_| "signature does not verify with the given key".to_string())?,
    }
    let parsed = Payload::parse(payload)?;
    let signed = &parsed.critical.image.docker_manifest_digest;
    if *signed != image.to_string() {
        return Err(format!("the signature is for {signed}, not for {image}"));
    }
    Ok(parsed)
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
        assert!(err.contains("does not verify"), "{err}");
        let mut tampered = payload.to_vec();
        tampered[10] ^= 1;
        assert!(verify_layer(&tampered, &annotations, &image, &key_policy(&signing)).is_err());
        let err = verify_layer(&payload, &annotations, &Digest::of(b"other"), &key_policy(&signing)).unwrap_err();
        assert!(err.contains("not for"), "{err}");
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
