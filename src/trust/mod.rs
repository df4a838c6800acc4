//! Trust: signing and attesting promoted images the way cosign and sigstore verifiers
//! check them, and verifying signatures and attestations (staging images before
//! promotion; any image with `kpromo verify`).
//!
//! - [`cosign`]: the `.sig` (and `.att`) tag format, pure;
//! - [`attestation`]: in-toto Statements, DSSE envelopes, sigstore bundles v0.3 and the
//!   OCI referrer manifests that attach them, pure;
//! - [`key`]: signing and verification keys from files (cosign's encrypted keys, PKCS#8);
//! - [`signer`]: a [`signer::Signer`] signs payloads with a key, or keyless (an ephemeral
//!   key certified by Fulcio for an OIDC identity, each signature logged in Rekor);
//! - [`token`]: the OIDC identity token for keyless signing, from a file or minted by
//!   Google's IAM Credentials API for a service account;
//! - [`identity`]: which name a signature vouches for, and where it is written, pure;
//! - [`verify`]: checks signature layers and attestations against a key or an expected
//!   identity;
//! - [`sign`]: signs one image at one repository, keeping every signature already there;
//! - [`attached`]: reads the attestations attached to an image (`.att`, referrers);
//! - [`provenance`]: judges a staging image's build provenance from them;
//! - [`attest`]: attaches a promotion attestation to one image at one repository.
//!
//! Nothing here knows the pipeline or flags: the CLI builds [`TrustOptions`], the
//! pipeline's Setup builds the signer from it, Provenance, Validate, Sign and Attest call
//! down here.
pub mod attached;
pub mod attest;
pub mod attestation;
pub mod cosign;
pub mod identity;
pub mod key;
pub mod keyless;
pub mod provenance;
pub mod root;
pub mod sign;
pub mod signer;
pub mod token;
pub mod verify;

use std::path::PathBuf;

use bytes::Bytes;
use futures_util::StreamExt as _;

use crate::copy::Repo;
use crate::digest::Digest;
use crate::registry;

pub use identity::{IdentityRewrite, SignatureTarget};
pub use signer::{Signer, SignerConfig};
pub use token::{GoogleEndpoints, IdentityToken, TokenSource};
pub use verify::{Matcher, Policy};

/// Everything about signing and verification a run needs, independent of the CLI.
#[derive(Debug, Clone, Default)]
pub struct TrustOptions {
    /// How to sign; `None` when nothing is configured (a `--confirm` run that signs
    /// then fails in Setup, before any write).
    pub signer: Option<SignerConfig>,
    /// What staging signatures must satisfy.
    pub staging: StagingPolicy,
    /// Which destination gets the signatures, and under which name.
    pub target: SignatureTarget,
    /// What staging build provenance must satisfy.
    pub provenance: ProvenancePolicy,
    /// Copy `.sig` manifests and referrers to every destination, not only the canonical
    /// one.
    pub replicate: bool,
    /// Signatures made or checked at once.
    pub max_ops: usize,
}

/// How staging signatures are checked in the Validate phase.
#[derive(Debug, Clone, Default)]
pub struct StagingPolicy {
    /// Verify against this public key; otherwise keyless, against `identity`.
    pub key: Option<PathBuf>,
    pub identity: Option<verify::IdentityPolicy>,
    /// sigstore `trusted_root.json` for keyless checks (default: the public-good root).
    pub trusted_root: Option<PathBuf>,
    /// Refuse unsigned staging images (Go lets them through).
    pub require: bool,
}

/// How staging attestations are checked in the Provenance phase. The signer identity and
/// trusted root are the staging signatures' ([`StagingPolicy`]).
#[derive(Debug, Clone)]
pub struct ProvenancePolicy {
    /// Verify against this public key; otherwise keyless.
    pub key: Option<PathBuf>,
    /// The predicate type that counts as build provenance; attestations of other types
    /// are ignored.
    pub predicate_type: String,
}

impl Default for ProvenancePolicy {
    fn default() -> Self {
        Self {
            key: None,
            predicate_type: attestation::SLSA_PROVENANCE_V1.to_string(),
        }
    }
}

/// What can go wrong with signing or verification.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A key file that cannot be used (never with the password in the text).
    #[error("signing key {path}: {why}")]
    Key { path: String, why: String },
    /// No signer configured, or one that cannot be set up.
    #[error("{0}")]
    Signer(String),
    #[error("{0}")]
    Crypto(String),
    /// No Google application-default credentials in any place Google's libraries look;
    /// `looked` says what each place held, in order.
    #[error(
        "no Google credentials to mint an identity token for {account}; looked at: {}",
        .looked.join("; ")
    )]
    NoGoogleCredentials { account: String, looked: Vec<String> },
    /// A step of getting an identity token failed. `origin` names the token file or the
    /// service account; no text ever holds a token, key, refresh token or client secret.
    #[error("{origin}: {step}: {why}")]
    IdentityToken {
        origin: String,
        step: token::Step,
        why: String,
    },
    /// A signature that does not verify, or does not vouch for what it must.
    #[error("{reference}: {why}")]
    Invalid { reference: String, why: String },
    /// The registry refused or failed while reading or writing signatures.
    #[error(transparent)]
    Registry(#[from] Box<registry::Error>),
}

impl From<registry::Error> for Error {
    fn from(e: registry::Error) -> Self {
        Error::Registry(Box::new(e))
    }
}

/// `repo@digest`, for messages.
pub(crate) fn reference(display: &str, digest: &Digest) -> String {
    format!("{display}@{digest}")
}

/// Reads a small blob (a signature payload, an attestation) whole, refusing one larger
/// than `cap` (`what` it is names it in the message) before reading further.
pub(crate) async fn read_capped(repo: &Repo, digest: &Digest, cap: usize, what: &str) -> Result<Bytes, Error> {
    let mut stream = repo.registry.get_blob(&repo.path, digest).await?;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
        if out.len() > cap {
            return Err(Error::Invalid {
                reference: reference(&repo.display, digest),
                why: format!("{what} larger than {cap} bytes"),
            });
        }
    }
    Ok(Bytes::from(out))
}
