//! Signers: what turns a payload into a signature layer's annotations.
//!
//! - with a key (`--signing-key`): an ECDSA P-256 signature, fully offline;
//! - keyless (Go kpromo's default): an ephemeral P-256 key certified by Fulcio for an
//!   OIDC identity ([`super::token`]), each signature entered in Rekor ([`super::keyless`]).
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sigstore_sign::crypto::{KeyPair, VerificationKey};
use sigstore_verify::Verifier;

use super::Error;
use super::attestation::{Envelope, Material, key_hint, pae};
use super::cosign::SIGNATURE_ANNOTATION;
use super::key::{self, Password};
use super::keyless::Keyless;
use super::root;
use super::token::{TokenFetcher, TokenSource};
use super::verify::{IdentityPolicy, Matcher, Policy, keyless_verifier};

/// How to sign, as configured (secrets included: never log this).
#[derive(Clone)]
pub enum SignerConfig {
    /// `--signing-key FILE`, with the password of an encrypted key.
    Key { path: PathBuf, password: Option<Password> },
    /// Keyless: Fulcio certifies an ephemeral key for the identity of `tokens`, Rekor logs
    /// every signature; `trusted_root` checks what they return (and what is already
    /// signed).
    Keyless {
        tokens: TokenSource,
        fulcio_url: String,
        rekor_url: String,
        trusted_root: Option<PathBuf>,
    },
}

impl std::fmt::Debug for SignerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignerConfig::Key { path, password } => f
                .debug_struct("Key")
                .field("path", path)
                .field("password", &password.as_ref().map(|_| "<redacted>"))
                .finish(),
            SignerConfig::Keyless {
                tokens,
                fulcio_url,
                rekor_url,
                trusted_root,
            } => f
                .debug_struct("Keyless")
                .field("tokens", tokens)
                .field("fulcio_url", fulcio_url)
                .field("rekor_url", rekor_url)
                .field("trusted_root", trusted_root)
                .finish(),
        }
    }
}

/// A ready signer, built once per run (in Setup, before any write).
pub enum Signer {
    Key {
        key: KeyPair,
        public: Arc<VerificationKey>,
    },
    Keyless {
        keyless: Box<Keyless>,
        verifier: Arc<Verifier>,
    },
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Signer::Key { .. } => f.write_str("Signer::Key"),
            Signer::Keyless { .. } => f.write_str("Signer::Keyless"),
        }
    }
}

impl Signer {
    /// Builds the signer: loads the key, or gets a token and the first certificate. Every
    /// failure here happens before anything is written.
    pub async fn new(config: &SignerConfig, http: reqwest::Client) -> Result<Self, Error> {
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
            SignerConfig::Keyless {
                tokens,
                fulcio_url,
                rekor_url,
                trusted_root,
            } => {
                let root = root::load(trusted_root.as_deref()).await?;
                let verifier = keyless_verifier(&root).map_err(Error::Signer)?;
                let fetcher = TokenFetcher {
                    source: tokens.clone(),
                    http: http.clone(),
                };
                let keyless = Keyless::new(fulcio_url, rekor_url, Box::new(fetcher), http).await?;
                Ok(Signer::Keyless {
                    keyless: Box::new(keyless),
                    verifier: Arc::new(verifier),
                })
            }
        }
    }

    /// Signs `payload`: the annotations of its signature layer.
    pub async fn sign(&self, payload: &[u8]) -> Result<BTreeMap<String, String>, Error> {
        match self {
            Signer::Keyless { keyless, .. } => keyless.sign(payload).await,
            Signer::Key { key, .. } => {
                let signature = key.sign(payload).map_err(|e| Error::Crypto(e.to_string()))?;
                Ok(BTreeMap::from([(
                    SIGNATURE_ANNOTATION.to_string(),
                    STANDARD.encode(signature.as_bytes()),
                )]))
            }
        }
    }

    /// Signs `payload` as a DSSE envelope (an attestation): the envelope, and what proves
    /// who signed it (a public-key hint, or keyless the certificate and Rekor entry).
    pub async fn sign_dsse(&self, payload_type: &str, payload: &[u8]) -> Result<(Envelope, Material), Error> {
        let (signature, material) = match self {
            Signer::Keyless { keyless, .. } => keyless.sign_dsse(payload_type, payload).await?,
            Signer::Key { key, .. } => {
                let signature = key
                    .sign(&pae(payload_type, payload))
                    .map_err(|e| Error::Crypto(e.to_string()))?;
                let der = key.public_key_der().map_err(|e| Error::Crypto(e.to_string()))?;
                let hint = key_hint(der.as_bytes());
                (signature.as_bytes().to_vec(), Material::PublicKey { hint })
            }
        };
        Ok((Envelope::new(payload_type, payload.to_vec(), signature), material))
    }

    /// What a signature by this signer satisfies: used to skip images it already signed.
    pub async fn policy(&self) -> Policy {
        match self {
            Signer::Key { public, .. } => Policy::Key(public.clone()),
            Signer::Keyless { keyless, verifier } => {
                let (identity, issuer) = keyless.identity().await;
                Policy::Keyless {
                    identity: IdentityPolicy {
                        identity: Matcher::Exact(identity),
                        issuer: Matcher::Exact(issuer),
                    },
                    verifier: verifier.clone(),
                }
            }
        }
    }

    /// Names the signer in logs (never a secret).
    pub async fn describe(&self) -> String {
        match self {
            Signer::Key { .. } => "a signing key".to_string(),
            Signer::Keyless { keyless, .. } => {
                let (identity, issuer) = keyless.identity().await;
                format!("keyless signing as {identity} (issuer {issuer})")
            }
        }
    }
}
