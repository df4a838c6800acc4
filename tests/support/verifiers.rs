//! Verifiers kpromo did not write, one function each, for signatures and attestations that a
//! test saved to files (fetched from a registry, say). Each returns the verifier's verdict in its
//! own words ([`Verdict`]); a verifier that cannot run fails the test. Which verifier proves
//! what, and their quirks: docs/decisions/0003-trust-test-oracles.md.
//!
//! ```ignore
//! let image = format!("{}/k8s-artifacts-prod/images/pause@{digest}", mirror.host());
//! let identity = SignedIdentity::ExactRepository("registry.k8s.io/pause");
//! verifiers::skopeo_cosign(&image, &CosignTrust::Key(&public_key), &identity, None).expect("signed");
//! verifiers::sigstore_js(&bundle, None, &BundleTrust::Key(&public_key)).expect("attested");
//! ```
use std::path::Path;
use std::process::Command;

use serde_json::json;

use super::trust_tools::{TrustTools, verdict};

pub use super::trust_tools::Verdict;

/// Which signed identity (`critical.identity.docker-reference`) a skopeo policy accepts.
/// Cosign signs a repository name without tag or digest; containers/image's `matchExact`,
/// `matchRepoDigestOrExact` and `remapIdentity` never accept such a name, so these are the two
/// forms that can accept a cosign signature.
#[derive(Debug, Clone, Copy)]
pub enum SignedIdentity<'a> {
    /// The signature names the repository the image is read from.
    MatchRepository,
    /// The signature names this repository (e.g. the public `registry.k8s.io/pause` while the
    /// image is read from a test mirror), whatever the image was read from.
    ExactRepository(&'a str),
}

/// What a cosign signature must chain to.
#[derive(Debug, Clone, Copy)]
pub enum CosignTrust<'a> {
    /// Signed with the private half of this PEM public key.
    Key(&'a Path),
    /// Keyless: a certificate from this Fulcio CA for `email` issued on a token from `issuer`,
    /// its signature logged by the Rekor whose key this is (the SET annotation).
    Keyless {
        fulcio_ca: &'a Path,
        rekor_key: &'a Path,
        issuer: &'a str,
        email: &'a str,
    },
}

/// skopeo 1.18 (containers/image) with a `sigstoreSigned` policy: accepts `image`
/// (`HOST/REPO:TAG` or `HOST/REPO@DIGEST`) if one layer of its `sha256-<hex>.sig` manifest is a
/// valid signature for `trust` with an accepted identity and the image's digest.
pub fn skopeo_cosign(
    image: &str,
    trust: &CosignTrust,
    identity: &SignedIdentity,
    credentials: Option<(&str, &str)>,
) -> Verdict {
    let tools = TrustTools::locate();
    let identity = match identity {
        SignedIdentity::MatchRepository => json!({"type": "matchRepository"}),
        SignedIdentity::ExactRepository(repository) => {
            json!({"type": "exactRepository", "dockerRepository": repository})
        }
    };
    let mut command = tools.bash("skopeo-verify.sh");
    command
        .arg("--skopeo")
        .arg(&tools.skopeo)
        .args(["--image", image, "--identity", &identity.to_string()]);
    if let Some((user, password)) = credentials {
        command.args(["--creds", &format!("{user}:{password}")]);
    }
    match trust {
        CosignTrust::Key(key) => {
            command.arg("--key").arg(key);
        }
        CosignTrust::Keyless {
            fulcio_ca,
            rekor_key,
            issuer,
            email,
        } => {
            command
                .arg("--fulcio-ca")
                .arg(fulcio_ca)
                .arg("--rekor-key")
                .arg(rekor_key);
            command.args(["--oidc-issuer", issuer, "--subject-email", email]);
        }
    }
    verdict("skopeo-verify.sh", command)
}

/// OpenSSL: `signature` (ECDSA, DER) is `public_key`'s signature over the exact bytes of
/// `payload` with SHA-256, as cosign's `dev.cosignproject.cosign/signature` annotation must be.
pub fn openssl_ecdsa(payload: &Path, signature: &Path, public_key: &Path) -> Verdict {
    super::require_tool("openssl");
    let mut command = Command::new("openssl");
    command
        .args(["dgst", "-sha256", "-verify"])
        .arg(public_key)
        .arg("-signature")
        .arg(signature)
        .arg(payload);
    // openssl prints its verdict on stdout, and the reason for a refusal on stderr.
    verdict("openssl dgst -verify", command).map_err(|reason| format!("Verification failure: {reason}"))
}

/// The signer a keyless sigstore bundle must name, and the trust root it must chain to.
#[derive(Debug, Clone, Copy)]
pub struct KeylessPolicy<'a> {
    /// A sigstore `trusted_root.json` (the fake's: [`super::sigstore_fake::SigstoreFake::trusted_root`]).
    pub trusted_root: &'a Path,
    /// The certificate's subject alternative name (an email here).
    pub identity: &'a str,
    /// The OIDC issuer the certificate records.
    pub issuer: &'a str,
}

/// What a sigstore bundle must verify with.
#[derive(Debug, Clone, Copy)]
pub enum BundleTrust<'a> {
    /// A bare PEM public key (`verificationMaterial.publicKey`); no log entry or timestamp is
    /// required.
    Key(&'a Path),
    /// A Fulcio certificate and a Rekor entry, chained to the trusted root, for this signer.
    Keyless(KeylessPolicy<'a>),
}

/// sigstore-js (@sigstore/verify's `Verifier`): the bundle's signature (DSSE over PAE, or a
/// message signature over `artifact`), and for keyless bundles the certificate chain, SCT, log
/// entry and signer. Lenient on the bundle's form (see sigstore-models for that).
pub fn sigstore_js(bundle: &Path, artifact: Option<&Path>, trust: &BundleTrust) -> Verdict {
    let tools = TrustTools::locate();
    let mut command = tools.node("sigstore-js.js");
    command.arg("verify").arg("--bundle").arg(bundle);
    if let Some(artifact) = artifact {
        command.arg("--artifact").arg(artifact);
    }
    match trust {
        BundleTrust::Key(key) => {
            command.arg("--key").arg(key);
        }
        BundleTrust::Keyless(policy) => {
            command.arg("--trusted-root").arg(policy.trusted_root);
            command.args(["--identity", policy.identity, "--issuer", policy.issuer]);
        }
    }
    verdict("sigstore-js verify", command)
}

/// sigstore-models: the bundle's JSON against sigstore's schema, strictly (media type v0.1 to
/// v0.3, `tlogEntries` present, padded standard base64, no unknown field). No cryptography.
pub fn sigstore_models_schema(bundle: &Path) -> Verdict {
    let mut command = TrustTools::locate().python("verify.py");
    command.arg("schema").arg("--bundle").arg(bundle);
    verdict("verify.py schema", command)
}

/// securesystemslib: the DSSE envelope (bare, or a bundle's `dsseEnvelope`) is signed by
/// `public_key`. Every signature needs a `keyid` (`""` allowed); with `keyid`, the signature's
/// must equal it.
pub fn securesystemslib_dsse(envelope: &Path, public_key: &Path, keyid: Option<&str>) -> Verdict {
    let mut command = TrustTools::locate().python("verify.py");
    command
        .arg("dsse")
        .arg("--envelope")
        .arg(envelope)
        .arg("--key")
        .arg(public_key);
    if let Some(keyid) = keyid {
        command.args(["--keyid", keyid]);
    }
    verdict("verify.py dsse", command)
}

/// in-toto-attestation: the envelope's payload (bare envelope or bundle) is an in-toto v1
/// Statement (payload type `application/vnd.in-toto+json`, strict parse, `validate()`), with a
/// subject of `subject_digest` (`sha256:<hex>`) when given.
pub fn in_toto_statement(envelope: &Path, subject_digest: Option<&str>) -> Verdict {
    let mut command = TrustTools::locate().python("verify.py");
    command.arg("statement").arg("--envelope").arg(envelope);
    if let Some(digest) = subject_digest {
        command.args(["--subject-digest", digest]);
    }
    verdict("verify.py statement", command)
}

/// sigstore-python's `Verifier` over the policy's trusted root: certificate chain, SCT, log entry
/// (inclusion promise and body), signature (DSSE, or a message signature over `artifact`) and
/// signer.
pub fn sigstore_python_keyless(bundle: &Path, artifact: Option<&Path>, policy: &KeylessPolicy) -> Verdict {
    let mut command = TrustTools::locate().python("verify.py");
    command
        .arg("keyless")
        .arg("--bundle")
        .arg(bundle)
        .arg("--trusted-root")
        .arg(policy.trusted_root)
        .args(["--identity", policy.identity, "--issuer", policy.issuer]);
    if let Some(artifact) = artifact {
        command.arg("--artifact").arg(artifact);
    }
    verdict("verify.py keyless", command)
}
