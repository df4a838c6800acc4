//! `kpromo verify`: check the cosign signatures of images, or with `--attestations` their
//! attestations (sigstore bundle referrers and cosign `.att`), at any registry or OCI
//! layout, as release managers do after a promotion. Exit 0 only when every image has a
//! valid signature (or attestation).
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use serde::Serialize;

use super::exit::{ExitKind, Failure};

mod attestations;
use crate::copy::Repo;
use crate::registry::image_ref::ImageRef;
use crate::registry::{ClientOptions, ManifestRef, Registries};
use crate::trust::verify::{IdentityPolicy, Matcher, Policy, Verdict, keyless_verifier, verify_image};
use crate::trust::{key, root};

#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// Images: `HOST/REPO:TAG`, `HOST/REPO@sha256:…`, or an OCI layout `oci:DIR:TAG`.
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<String>,

    /// Verify with this public key (PEM) instead of keyless.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,

    /// Keyless: the signer's identity (certificate email or URI).
    #[arg(long, value_name = "IDENTITY", conflicts_with = "key")]
    pub certificate_identity: Option<String>,

    /// Keyless: a regular expression the signer's identity must match (wins over
    /// --certificate-identity).
    #[arg(long, value_name = "REGEX", conflicts_with = "key")]
    pub certificate_identity_regexp: Option<String>,

    /// Keyless: the OIDC issuer of the signer's identity.
    #[arg(long, value_name = "URL", conflicts_with = "key")]
    pub certificate_oidc_issuer: Option<String>,

    /// Keyless: a regular expression the issuer must match (wins over
    /// --certificate-oidc-issuer).
    #[arg(long, value_name = "REGEX", conflicts_with = "key")]
    pub certificate_oidc_issuer_regexp: Option<String>,

    /// Keyless: the sigstore trusted_root.json (default: the public-good instance's).
    #[arg(long, value_name = "FILE", conflicts_with = "key")]
    pub trusted_root: Option<PathBuf>,

    /// Check attestations instead of signatures: every sigstore bundle referrer and cosign
    /// `.att` layer of each image is listed with its predicate type, subjects, signer and
    /// verdict; an image passes when one of them verifies.
    #[arg(long)]
    pub attestations: bool,

    /// With --attestations: only attestations of this predicate type count (others are
    /// listed as skipped).
    #[arg(long, value_name = "URI", requires = "attestations")]
    pub predicate_type: Option<String>,

    /// Output: text (a line per image) or json.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,

    /// Extra PEM CA bundle to trust for registry TLS.
    #[arg(long, value_name = "FILE")]
    pub registry_ca_file: Option<PathBuf>,

    /// Reach this registry host over plain HTTP (loopback hosts always are). Repeatable.
    #[arg(long, value_name = "HOST", value_delimiter = ',')]
    pub insecure_registry: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// What was checked, image by image.
enum Results {
    Signatures(Vec<Checked>),
    Attestations(Vec<attestations::Checked>),
}

/// One image's result.
#[derive(Debug, Serialize)]
struct Checked {
    image: String,
    digest: Option<String>,
    verified: bool,
    /// The names valid signatures vouch for.
    signed_for: Vec<String>,
    foreign: Vec<String>,
    invalid: Vec<String>,
    error: Option<String>,
}

pub fn run(args: &VerifyArgs) -> Result<ExitKind, Failure> {
    let images: Vec<ImageRef> = args
        .images
        .iter()
        .map(|i| ImageRef::parse(i).map_err(|e| Failure::Usage(e.to_string())))
        .collect::<Result<_, _>>()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Failure::Runtime)?;
    let results = runtime.block_on(async {
        let policy = policy(args).await?;
        let registries = Registries::new(ClientOptions {
            ca_file: args.registry_ca_file.clone(),
            insecure_registries: args.insecure_registry.clone(),
            ..ClientOptions::default()
        })
        .map_err(|e| Failure::Usage(format!("setting up registry clients: {e}")))?;
        if args.attestations {
            let mut results = Vec::new();
            for (text, image) in args.images.iter().zip(&images) {
                let wanted = args.predicate_type.as_deref();
                results.push(attestations::check(&registries, text, image, &policy, wanted).await);
            }
            return Ok(Results::Attestations(results));
        }
        let mut results = Vec::new();
        for (text, image) in args.images.iter().zip(&images) {
            results.push(check(&registries, text, image, &policy).await);
        }
        Ok::<_, Failure>(Results::Signatures(results))
    })?;
    let results = match results {
        Results::Signatures(results) => results,
        Results::Attestations(results) => return attestations::print(args.output, &results),
    };
    let all = results.iter().all(|r| r.verified);
    match args.output {
        Output::Json => {
            let json = serde_json::to_string_pretty(&results).map_err(|e| Failure::Output {
                what: "writing the verification report".into(),
                source: e.into(),
            })?;
            super::print(&format!("{json}\n"))?;
        }
        Output::Text => {
            let mut text = String::new();
            for r in &results {
                let digest = r.digest.as_deref().unwrap_or("?");
                let line = match (&r.error, r.verified) {
                    (Some(e), _) => format!("{}: ERROR {e}\n", r.image),
                    (None, true) => format!(
                        "{} ({digest}): verified, signed for {}\n",
                        r.image,
                        r.signed_for.join(", ")
                    ),
                    (None, false) if r.invalid.is_empty() && r.foreign.is_empty() => {
                        format!("{} ({digest}): NOT SIGNED\n", r.image)
                    }
                    (None, false) => format!(
                        "{} ({digest}): NOT VERIFIED: {}\n",
                        r.image,
                        r.invalid
                            .iter()
                            .chain(&r.foreign)
                            .cloned()
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                };
                text.push_str(&line);
            }
            super::print(&text)?;
        }
    }
    Ok(if all { ExitKind::Success } else { ExitKind::Promotion })
}

/// The policy the flags describe: a key, else keyless.
async fn policy(args: &VerifyArgs) -> Result<Policy, Failure> {
    if let Some(path) = &args.key {
        let key = key::load_public_key(path).map_err(|e| Failure::Usage(e.to_string()))?;
        return Ok(Policy::Key(Arc::new(key)));
    }
    let matcher = |exact: &Option<String>, regexp: &Option<String>, flag: &str| -> Result<Matcher, Failure> {
        match (regexp, exact) {
            (Some(re), _) => regex::Regex::new(re)
                .map(Matcher::Regex)
                .map_err(|e| Failure::Usage(format!("--{flag}-regexp {re:?}: {e}"))),
            (None, Some(exact)) => Ok(Matcher::Exact(exact.clone())),
            (None, None) => Err(Failure::Usage(format!(
                "keyless verification needs --{flag} or --{flag}-regexp (or verify with --key)"
            ))),
        }
    };
    let identity = IdentityPolicy {
        identity: matcher(
            &args.certificate_identity,
            &args.certificate_identity_regexp,
            "certificate-identity",
        )?,
        issuer: matcher(
            &args.certificate_oidc_issuer,
            &args.certificate_oidc_issuer_regexp,
            "certificate-oidc-issuer",
        )?,
    };
    let trusted = root::load(args.trusted_root.as_deref())
        .await
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let verifier = keyless_verifier(&trusted).map_err(Failure::Usage)?;
    Ok(Policy::Keyless {
        identity,
        verifier: Arc::new(verifier),
    })
}

/// The repository of `image` and its digest (a HEAD when it names a tag).
async fn resolve(registries: &Registries, image: &ImageRef) -> Result<(Repo, crate::digest::Digest), String> {
    let root = registries.open(&image.registry).map_err(|e| e.to_string())?;
    let repo = Repo {
        registry: root.registry.clone(),
        path: root.repo(&image.repo),
        display: format!("{}/{}", image.registry, image.repo),
    };
    let digest = match &image.reference {
        ManifestRef::Digest(d) => *d,
        tag => {
            repo.registry
                .head_manifest(&repo.path, tag)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no such image ({tag})"))?
                .digest
        }
    };
    Ok((repo, digest))
}

/// Resolves one image to its digest and checks its signatures.
async fn check(registries: &Registries, text: &str, image: &ImageRef, policy: &Policy) -> Checked {
    let mut checked = Checked {
        image: text.to_string(),
        digest: None,
        verified: false,
        signed_for: Vec::new(),
        foreign: Vec::new(),
        invalid: Vec::new(),
        error: None,
    };
    let outcome = async {
        let (repo, digest) = resolve(registries, image).await?;
        let verdict = verify_image(&repo, &digest, policy).await.map_err(|e| e.to_string())?;
        Ok::<(crate::digest::Digest, Verdict), String>((digest, verdict))
    }
    .await;
    match outcome {
        Ok((digest, verdict)) => {
            checked.digest = Some(digest.to_string());
            checked.verified = !verdict.valid.is_empty();
            checked.signed_for = verdict.valid;
            checked.foreign = verdict.foreign;
            checked.invalid = verdict.invalid;
        }
        Err(e) => checked.error = Some(e),
    }
    checked
}
