//! Signers: what turns a payload into a signature layer's annotations.
//!
//! - with a key (`--signing-key`): an ECDSA P-256 signature, fully offline;
//! - keyless (Go kpromo's default): an ephemeral P-256 key certified by Fulcio for an
//!   OIDC identity, each signature entered in Rekor ([`super::keyless`]).
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sigstore_sign::crypto::{KeyPair, VerificationKey};

use super::Error;
use super::cosign::SIGNATURE_ANNOTATION;
use super::key::{self, Password};
use super::verify::Policy;

/// How to sign, as configured (secrets included: never log this).
#[derive(Clone)]
pub enum SignerConfig {
    /// `--signing-key FILE`, with the password of an encrypted key.
    Key { path: PathBuf, password: Option<Password> },
}

impl std::fmt::Debug for SignerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignerConfig::Key { path, password } => f
                .debug_struct("Key")
                .field("path", path)
                .field("password", &password.as_ref().map(|_| "<redacted>"))
                .finish(),
        }
    }
}

/// A ready signer, built once per run (in Setup, before any write).
pub enum Signer {
    Key { key: KeyPair, public: Arc<VerificationKey> },
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Signer::Key { .. } => f.write_str("Signer::Key"),
        }
    }
}

impl Signer {
    /// Builds the signer: loads the key. Every failure here happens before anything is
    /// written.
    pub async fn new(config: &SignerConfig) -> Result<Self, Error> {
        match config {
            SignerConfig::Key { path, password } => {
                let key = key::load_signing_key(path, password.as_ref())?;
                let der = key.public_key_der().map_err(|e| Error::Crypto(e.to_string()))?;
                let public = key::public_key_from_der(der.as_bytes()).map_err(Error::Crypto)?;
                Ok(Signer::Key {
                    key,
                    public: Arc::new(public),
                })
            }
        }
    }

    /// Signs `payload`: the annotations of its signature layer.
    pub async fn sign(&self, payload: &[u8]) -> Result<BTreeMap<String, String>, Error> {
        match self {
            Signer::Key { key, .. } => {
                let signature = key.sign(payload).map_err(|e| Error::Crypto(e.to_string()))?;
                Ok(BTreeMap::from([(
                    SIGNATURE_ANNOTATION.to_string(),
                    STANDARD.encode(signature.as_bytes()),
                )]))
            }
        }
    }

    /// What a signature by this signer satisfies: used to skip images it already signed.
    pub fn policy(&self) -> Policy {
        match self {
            Signer::Key { public, .. } => Policy::Key(public.clone()),
        }
    }

    /// Names the signer in logs (never a secret).
    pub fn describe(&self) -> String {
        match self {
            Signer::Key { .. } => "a signing key".to_string(),
        }
    }
}
