//! `kpromo cip`: Go kpromo's flag set (same names, same defaults) plus kpromo's own
//! registry and reporting flags, and Go's mode selection: snapshot, then security scan,
//! then promotion.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgAction, Args};

use super::exit::Failure;
use super::plan::PlanPrinter;
use super::registry_config::{self, RegistryConfig};
use crate::audit::{AuditLog, Event, JsonLines, RunEnd, Totals};
use crate::edges::shard::Shard;
use crate::manifest::{DiffFilter, ManifestSource};
use crate::pipeline::{self, RolloutOptions, rollout};
use crate::policy::Actor;
use crate::registry::remote::Quota;
use crate::registry::{ClientOptions, ReadLimits};
use crate::snapshot::{self, OutputFormat};
use crate::trust::key::Password;
use crate::trust::verify::{IdentityPolicy, Matcher};
use crate::trust::{
    GoogleEndpoints, IdentityRewrite, ProvenancePolicy, SignatureTarget, SignerConfig, StagingPolicy, TokenSource,
    TrustOptions,
};
use zeroize::Zeroizing;

const DEFAULT_SIGNER: &str = "krel-trust@k8s-releng-prod.iam.gserviceaccount.com";
const DEFAULT_ISSUER: &str = "https://accounts.google.com";

/// The `cip` arguments. Every `BOOL` flag takes Go's forms (`--flag`, `--flag=true`,
/// `--flag=false`, never `--flag false`): [`go_bool_flags`] gives them that shape, so
/// the command must be built through it.
#[derive(Debug, Clone, Args)]
pub struct CipArgs {
    // ---- Manifests ----
    /// Path to one plain manifest (registries and images in one file). Takes precedence
    /// over --thin-manifest-dir.
    #[arg(long, value_name = "FILE", help_heading = "Manifests")]
    pub manifest: Option<PathBuf>,

    /// Root of a thin-manifest tree: manifests/<project>/promoter-manifest.yaml plus
    /// images/<project>/images.yaml.
    #[arg(long, value_name = "DIR", help_heading = "Manifests")]
    pub thin_manifest_dir: Option<PathBuf>,

    /// Promote only the digests that appear in the git diff of the current Prow job
    /// (base from the JOB_TYPE and PULL_BASE_SHA environment variables). Takes
    /// precedence over --manifest-diff-since.
    #[arg(long, help_heading = "Manifests", value_name = "BOOL")]
    pub use_prow_manifest_diff: bool,

    /// Promote only the digests changed in git within this window, in git date syntax
    /// ("7 days", "24 hours"). No commits in the window means nothing to promote.
    #[arg(long, value_name = "SINCE", help_heading = "Manifests")]
    pub manifest_diff_since: Option<String>,

    // ---- Promotion ----
    /// Actually promote, sign and attest. Without it the run is a dry run that stops
    /// after the validate phase and writes nothing.
    #[arg(long, help_heading = "Promotion", value_name = "BOOL")]
    pub confirm: bool,

    /// Stop after the plan phase (the registries have been read by then).
    #[arg(long, help_heading = "Promotion", value_name = "BOOL")]
    pub parse_only: bool,

    /// Exit 1 when a source digest is missing from its staging registry (_LOST_). Go
    /// kpromo only logs lost images and exits 0. [kpromo addition]
    #[arg(long, help_heading = "Promotion", value_name = "BOOL")]
    pub fail_on_lost: bool,

    /// Write the plan as JSON (every edge with its decision) to FILE. [kpromo addition]
    #[arg(long, value_name = "FILE", help_heading = "Promotion")]
    pub plan_out: Option<PathBuf>,

    /// Write the run summary (counts, bytes, requests per registry, time per phase) as
    /// JSON to FILE. Replaces Go's --json-log-summary. [kpromo addition]
    #[arg(long, value_name = "FILE", help_heading = "Promotion")]
    pub summary_json: Option<PathBuf>,

    /// Security-scan mode when >= 0 (0 = UNSPECIFIED ... 5 = CRITICAL). Not supported by
    /// kpromo: GCP Container Analysis scanning is not available, so any value >= 0 is
    /// refused. Default -1 = promote.
    #[arg(
        long,
        value_name = "N",
        default_value_t = -1,
        allow_negative_numbers = true,
        help_heading = "Promotion"
    )]
    pub vuln_severity_threshold: i64,

    // ---- Rollout (kpromo additions) ----
    /// Promote to this destination registry first (a registry name as in the manifests,
    /// or a prefix of one such as its host), read it back, and go on to the other
    /// destinations only if it is sound. Repeatable. [kpromo addition]
    #[arg(long, value_name = "NAME", help_heading = "Rollout")]
    pub canary: Vec<String>,

    /// Promote in N waves: the canaries (if any) first, the other destinations split
    /// evenly over the remaining waves; each wave but the last is read back before the
    /// next starts.
    /// Default with --canary: 2. [kpromo addition]
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..),
        help_heading = "Rollout"
    )]
    pub rollout_waves: Option<usize>,

    /// Fraction (0 to 1) of the blobs a wave wrote that its read-back downloads in full
    /// and digest-checks; the others are HEADed. Chosen by digest. [kpromo addition]
    #[arg(
        long,
        value_name = "FRACTION",
        default_value_t = rollout::DEFAULT_VERIFY_SAMPLE,
        value_parser = parse_fraction,
        help_heading = "Rollout"
    )]
    pub verify_sample: f64,

    /// A wave whose failed requests (5xx, 429, no answer) exceed this share of its
    /// requests stops the rollout: a fraction (0.05) or a percentage (5%).
    /// [kpromo addition]
    #[arg(long, value_name = "RATE", default_value = "5%", value_parser = parse_rate, help_heading = "Rollout")]
    pub max_error_rate: f64,

    /// When a wave fails, delete the manifests this run created in that wave's
    /// destinations (never anything that existed before the run). Needs --canary or
    /// --rollout-waves. [kpromo addition]
    #[arg(long, help_heading = "Rollout", value_name = "BOOL")]
    pub rollback_on_failure: bool,

    /// Testing hook: after writing each wave but the last (the last is not read back),
    /// create FILE and wait until it is removed before reading the wave back. [kpromo
    /// addition]
    #[arg(long, value_name = "FILE", hide = true, help_heading = "Rollout")]
    pub pause_before_verify: Option<PathBuf>,

    // ---- Sharding (kpromo additions) ----
    /// Promote only shard INDEX of COUNT (0/3, 1/3, 2/3): COUNT processes, each with its
    /// own INDEX, together do the whole promotion. Every shard reads and checks the
    /// whole plan first, so all refuse the same bad input. [kpromo addition]
    #[arg(
        long,
        value_name = "INDEX/COUNT",
        value_parser = |s: &str| Shard::parse(s).map_err(|e| e.to_string()),
        conflicts_with = "shards",
        help_heading = "Sharding"
    )]
    pub shard: Option<Shard>,

    /// Split the promotion into N shards and promote the one JOB_COMPLETION_INDEX names
    /// (set by a Kubernetes Indexed Job, docs/kubernetes.md). [kpromo addition]
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..),
        help_heading = "Sharding"
    )]
    pub shards: Option<u32>,

    // ---- Snapshots ----
    /// Snapshot mode: walk this registry (any OCI registry, or oci:PATH) and print its
    /// inventory in images.yaml format instead of promoting.
    #[arg(
        long,
        value_name = "REGISTRY",
        help_heading = "Snapshots",
        conflicts_with = "manifest_based_snapshot_of"
    )]
    pub snapshot: Option<String>,

    /// With --snapshot only: keep only digests that carry this tag.
    #[arg(long, value_name = "TAG", help_heading = "Snapshots")]
    pub snapshot_tag: Option<String>,

    /// With either snapshot mode: drop tagless digests that are children of a manifest
    /// list or index (reads those lists from the registry).
    #[arg(long, help_heading = "Snapshots", value_name = "BOOL")]
    pub minimal_snapshot: bool,

    /// Snapshot output format: yaml or csv (case-insensitive).
    #[arg(long, value_name = "FORMAT", default_value = "yaml", help_heading = "Snapshots")]
    pub output: String,

    /// Print what this destination registry should contain according to the manifests
    /// (--manifest or --thin-manifest-dir), offline unless --minimal-snapshot is set.
    #[arg(long, value_name = "REGISTRY", help_heading = "Snapshots")]
    pub manifest_based_snapshot_of: Option<String>,

    // ---- Signing ----
    /// Sign promoted images and attach promotion attestations. --sign=false also
    /// disables the attest phase.
    #[arg(long, help_heading = "Signing", value_name = "BOOL", default_value = "true")]
    pub sign: bool,

    /// Service account whose OIDC identity signs images and attestations.
    #[arg(long, value_name = "EMAIL", default_value = DEFAULT_SIGNER, help_heading = "Signing")]
    pub signer_account: String,

    /// Concurrency limit of the sign and attest phases.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 50,
        value_parser = clap::value_parser!(u32).range(1..),
        help_heading = "Signing"
    )]
    pub max_signature_ops: u32,

    /// Expected signer identity (certificate SAN) when verifying staging signatures and
    /// provenance.
    #[arg(long, value_name = "IDENTITY", default_value = DEFAULT_SIGNER, help_heading = "Signing")]
    pub certificate_identity: String,

    /// Expected OIDC issuer when verifying staging signatures and provenance.
    #[arg(long, value_name = "URL", default_value = DEFAULT_ISSUER, help_heading = "Signing")]
    pub certificate_oidc_issuer: String,

    /// Regular expression alternative to --certificate-identity.
    #[arg(long, value_name = "REGEX", help_heading = "Signing")]
    pub certificate_identity_regexp: Option<String>,

    /// Regular expression alternative to --certificate-oidc-issuer.
    #[arg(long, value_name = "REGEX", help_heading = "Signing")]
    pub certificate_oidc_issuer_regexp: Option<String>,

    /// Sign with this key instead of keyless: a cosign key (`cosign generate-key-pair`,
    /// encrypted; its password from COSIGN_PASSWORD or --signing-key-password-file) or an
    /// unencrypted PKCS#8 EC P-256 key. Works offline. [kpromo addition]
    #[arg(long, value_name = "FILE", help_heading = "Signing")]
    pub signing_key: Option<PathBuf>,

    /// File holding the password of --signing-key (its first line). Default: the
    /// COSIGN_PASSWORD environment variable. [kpromo addition]
    #[arg(long, value_name = "FILE", help_heading = "Signing")]
    pub signing_key_password_file: Option<PathBuf>,

    /// Keyless signing with the OIDC identity token (a JWT) in this file, read again when a
    /// new certificate is needed. Without it (and without --signing-key), a token is minted
    /// for --signer-account with Google application-default credentials, as Go kpromo
    /// does. [kpromo addition]
    #[arg(long, value_name = "FILE", help_heading = "Signing")]
    pub identity_token: Option<PathBuf>,

    /// Fulcio (v2 API) that certifies keyless signing keys. [kpromo addition]
    #[arg(
        long,
        value_name = "URL",
        default_value = "https://fulcio.sigstore.dev",
        help_heading = "Signing"
    )]
    pub fulcio_url: String,

    /// Rekor (v1 API) that logs keyless signatures. [kpromo addition]
    #[arg(
        long,
        value_name = "URL",
        default_value = "https://rekor.sigstore.dev",
        help_heading = "Signing"
    )]
    pub rekor_url: String,

    /// Destination registry (as named in the manifests) that holds the signatures of every
    /// image promoted to it. Default: the first destination whose name starts with
    /// --canonical-registry-prefix, else the first destination in sort order.
    /// [kpromo addition]
    #[arg(long, value_name = "REGISTRY", help_heading = "Signing")]
    pub signature_registry: Option<String>,

    /// Prefix of the canonical destination registry (see --signature-registry).
    /// [kpromo addition]
    #[arg(
        long,
        value_name = "PREFIX",
        default_value = "us-central1-docker.pkg.dev",
        help_heading = "Signing"
    )]
    pub canonical_registry_prefix: String,

    /// FROM=TO: the name a signature vouches for is the destination `registry/image` with
    /// everything up to and including the path segments FROM replaced by TO. Repeatable;
    /// the first that applies wins. [kpromo addition]
    #[arg(
        long,
        value_name = "FROM=TO",
        default_value = "k8s-artifacts-prod/images=registry.k8s.io",
        value_parser = IdentityRewrite::parse,
        help_heading = "Signing"
    )]
    pub signing_identity_rewrite: Vec<IdentityRewrite>,

    /// Copy every `.sig` manifest from the canonical destination to the other destinations
    /// too (for registries without a redirector in front). [kpromo addition]
    #[arg(long, help_heading = "Signing", value_name = "BOOL")]
    pub replicate_signatures: bool,
    // ---- Policy and audit (kpromo additions) ----
    /// Policy file deciding who may promote what (roles, allow/deny rules, CEL
    /// conditions; docs/policy.md). Checked before anything is written: one denied edge
    /// stops the run with exit 3. [kpromo addition]
    #[arg(long, value_name = "FILE", help_heading = "Policy and audit")]
    pub policy: Option<PathBuf>,

    /// Who this run acts for, for the policy and the audit log. Default: from Prow's
    /// JOB_SPEC (the pull request's author for presubmits, the job name otherwise),
    /// else GITHUB_ACTOR, else USER. [kpromo addition]
    #[arg(long, value_name = "NAME", help_heading = "Policy and audit")]
    pub actor: Option<String>,

    /// Append a JSON Lines audit record of the run (who, inputs, decisions, policy
    /// verdicts, every registry write) to FILE, or to stdout with `-` (docs/audit.md).
    /// [kpromo addition]
    #[arg(long, value_name = "FILE|-", help_heading = "Policy and audit")]
    pub audit_log: Option<PathBuf>,

    /// Verify staging signatures with this public key (PEM) instead of keyless
    /// (--certificate-identity and --certificate-oidc-issuer against --trusted-root).
    /// [kpromo addition]
    #[arg(long, value_name = "FILE", help_heading = "Signing")]
    pub staging_signature_key: Option<PathBuf>,

    /// Refuse staging images that have no signature by the expected signer (Go lets
    /// unsigned images through). [kpromo addition]
    #[arg(long, help_heading = "Signing", value_name = "BOOL")]
    pub require_staging_signature: bool,

    /// Verify staging attestations (build provenance) with this public key (PEM) instead
    /// of keyless (--certificate-identity and --certificate-oidc-issuer against
    /// --trusted-root). [kpromo addition]
    #[arg(long, value_name = "FILE", help_heading = "Signing")]
    pub provenance_key: Option<PathBuf>,

    /// The predicate type of staging attestations that counts as build provenance;
    /// attestations of other types are ignored with a warning.
    #[arg(
        long,
        value_name = "URI",
        default_value = crate::trust::attestation::SLSA_PROVENANCE_V1,
        help_heading = "Signing"
    )]
    pub provenance_predicate_type: String,

    /// sigstore trusted_root.json (Fulcio CAs, Rekor and CT log keys) for keyless
    /// signatures. Default: the public-good instance's, refreshed through TUF when
    /// reachable, else the copy built into kpromo. [kpromo addition]
    #[arg(long, value_name = "FILE", help_heading = "Signing")]
    pub trusted_root: Option<PathBuf>,

    // ---- Registry access (kpromo additions) ----
    /// Ceiling on requests per second per registry host, for a known quota. Without it,
    /// each host starts at 50/s and adapts: faster while the registry keeps up, slower on
    /// 429s, latency or failures (docs/registries.md). [kpromo addition]
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..),
        help_heading = "Registry access"
    )]
    pub registry_rate_limit: Option<u32>,

    /// Requests a registry host may receive at once ahead of its rate. Wins over the
    /// settings file. [kpromo addition]
    ///
    /// [default: 16]
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..),
        help_heading = "Registry access"
    )]
    pub registry_burst: Option<u32>,

    /// Ceiling on requests in flight per registry host. Each host starts at min(8, N) and
    /// adapts: grows while the registry keeps up, shrinks on 429s, latency or failures.
    /// Wins over the settings file. [kpromo addition]
    ///
    /// [default: 32]
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..),
        help_heading = "Registry access"
    )]
    pub registry_max_concurrency: Option<u32>,

    /// PATTERN=N/s (or N/min): the hosts matching PATTERN (a glob: * and ?) share one
    /// budget on top of their own, like a project-wide quota over regional hosts, e.g.
    /// '*-docker.pkg.dev=80/s'. Repeatable; wins over the settings file. [kpromo addition]
    #[arg(
        long,
        value_name = "PATTERN=N/s",
        value_parser = Quota::parse_flag,
        help_heading = "Registry access"
    )]
    pub registry_quota: Vec<Quota>,

    /// Per-host registry settings (YAML): rate, burst, concurrency, shared quotas, plain
    /// HTTP, CA file, client certificate, by host pattern (docs/registries.md). The flags
    /// win over it. [kpromo addition]
    #[arg(long, value_name = "FILE", help_heading = "Registry access")]
    pub registry_config: Option<PathBuf>,

    /// Longest wait for a registry's response headers. The deadline applied adapts to
    /// each host's latency (at least 1 s), and grows with an upload's size; a request that
    /// misses it is retried on a fresh connection. [kpromo addition]
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "60s",
        value_parser = parse_duration,
        help_heading = "Registry access"
    )]
    pub registry_response_timeout: Duration,

    /// A request or response body that makes no progress for this long is a stall:
    /// abandoned and retried on a fresh connection. [kpromo addition]
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "30s",
        value_parser = parse_duration,
        help_heading = "Registry access"
    )]
    pub registry_stall_timeout: Duration,

    /// Bytes per second a blob upload or download must average; slower is a stall.
    /// [kpromo addition]
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = ClientOptions::default().min_transfer_rate,
        value_parser = clap::value_parser!(u64).range(1..),
        help_heading = "Registry access"
    )]
    pub registry_min_transfer_rate: u64,

    /// How long a request the registry throttles (429, or 503 with Retry-After) is
    /// retried before it fails; each retry waits the Retry-After asked for, or a backoff.
    /// [kpromo addition]
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "15m",
        value_parser = parse_duration,
        help_heading = "Registry access"
    )]
    pub registry_retry_timeout: Duration,

    /// Extra PEM CA bundle to trust for registry TLS, on top of the system roots.
    /// [kpromo addition]
    #[arg(long, value_name = "FILE", help_heading = "Registry access")]
    pub registry_ca_file: Option<PathBuf>,

    /// Reach this registry host (host[:port]) over plain HTTP. Repeatable, or
    /// comma-separated. Loopback hosts always are. [kpromo addition]
    #[arg(long, value_name = "HOST", value_delimiter = ',', help_heading = "Registry access")]
    pub insecure_registry: Vec<String>,

    // ---- Registry access: bounded reads ----
    /// Most pages one tags list may have; a registry whose pages never end fails with an
    /// error naming this cap. [kpromo addition]
    #[arg(
        long,
        value_name = "N",
        default_value_t = ReadLimits::default().tag_pages,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..),
        help_heading = "Registry access"
    )]
    pub registry_max_tag_pages: usize,

    /// Most entries (tags, and digests in Google's listing) one tags list may have, over
    /// all its pages. [kpromo addition]
    #[arg(
        long,
        value_name = "N",
        default_value_t = ReadLimits::default().tags,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..),
        help_heading = "Registry access"
    )]
    pub registry_max_tags: usize,

    /// Most pages (of up to 1000 repositories each) the catalog may have, for --snapshot.
    /// [kpromo addition]
    #[arg(
        long,
        value_name = "N",
        default_value_t = ReadLimits::default().catalog_pages,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..),
        help_heading = "Registry access"
    )]
    pub registry_max_catalog_pages: usize,

    /// Largest referrers list (an OCI index) read for one image, in bytes. [kpromo addition]
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = ReadLimits::default().referrers_bytes,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..),
        help_heading = "Registry access"
    )]
    pub registry_max_referrers_bytes: usize,

    // ---- Compatibility ----
    /// No effect. Kept (hidden from -h, as in Go kpromo) so that old job configs that
    /// still pass it keep working.
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = 0,
        hide_short_help = true,
        help_heading = "Compatibility"
    )]
    pub max_image_size: i64,
}

/// Shapes every `BOOL` flag of `cip` like a Go (pflag) boolean: bare `--flag` means true,
/// a value must follow `=`, and spellings are `strconv.ParseBool`'s. Done here once rather
/// than on each field; a field without a default is false.
pub fn go_bool_flags(cip: clap::Command) -> clap::Command {
    cip.mut_args(|arg| {
        if arg.get_value_names().is_none_or(|names| names != ["BOOL"]) {
            return arg;
        }
        let arg = if arg.get_default_values().is_empty() {
            arg.default_value("false")
        } else {
            arg
        };
        arg.action(ArgAction::Set)
            .value_parser(go_bool)
            .num_args(0..=1)
            .require_equals(true)
            .default_missing_value("true")
    })
}

/// A duration as the registry flags take it: a whole number with a unit, `ms`, `s`, `m` or
/// `h` (`500ms`, `30s`, `15m`); a bare number is seconds. Zero is refused: every one of
/// these bounds a wait that must be able to succeed.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration: write e.g. 500ms, 30s, 15m or 1h"))?;
    let duration = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m or h)")),
    };
    if duration.is_zero() {
        return Err(format!("{s:?}: must be more than zero"));
    }
    Ok(duration)
}

/// The environment variable a Kubernetes Indexed Job sets to each pod's index.
const JOB_COMPLETION_INDEX: &str = "JOB_COMPLETION_INDEX";

/// This process's shard: `--shard`, or `--shards` with the index from
/// `JOB_COMPLETION_INDEX`. `--shard` with a different `JOB_COMPLETION_INDEX` is refused:
/// one of the two is a mistake, and guessing which could promote a shard twice.
fn resolve_shard(shard: Option<Shard>, shards: Option<u32>, job_index: Option<&str>) -> Result<Option<Shard>, Failure> {
    let job_index = job_index
        .map(|text| {
            text.trim().parse::<u32>().map_err(|_| {
                Failure::Usage(format!(
                    "{JOB_COMPLETION_INDEX}={text:?} is not a shard index (a number from 0)"
                ))
            })
        })
        .transpose();
    match (shard, shards) {
        (Some(shard), _) => match job_index {
            Ok(Some(index)) if index != shard.index => Err(Failure::Usage(format!(
                "--shard {shard} conflicts with {JOB_COMPLETION_INDEX}={index}: give --shards {} to take the index \
                 from the environment, or unset {JOB_COMPLETION_INDEX}",
                shard.count
            ))),
            Err(unreadable) => Err(unreadable),
            Ok(_) => Ok(Some(shard)),
        },
        (None, Some(count)) => {
            let index = job_index?.ok_or_else(|| {
                Failure::Usage(format!(
                    "--shards {count} takes this process's shard from {JOB_COMPLETION_INDEX} (set by a Kubernetes \
                     Indexed Job), which is not set; give --shard INDEX/{count} instead"
                ))
            })?;
            Shard::new(index, count)
                .map(Some)
                .map_err(|e| Failure::Usage(format!("{JOB_COMPLETION_INDEX}={index} with --shards {count}: {e}")))
        }
        (None, None) => Ok(None),
    }
}

/// A fraction from 0 to 1 (`--verify-sample`).
fn parse_fraction(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("{s:?} is not a fraction from 0 to 1")),
    }
}

/// A share of requests: a fraction (`0.05`) or a percentage (`5%`), from 0 to 1.
fn parse_rate(s: &str) -> Result<f64, String> {
    let rate = match s.trim().strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
        None => s.trim().parse::<f64>(),
    };
    match rate {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!(
            "{s:?} is not a rate: give a fraction from 0 to 1 (0.05) or a percentage (5%)"
        )),
    }
}

/// Go's `strconv.ParseBool`, which pflag uses for `--flag=value`.
fn go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("invalid boolean {s:?} (use true or false)")),
    }
}

/// Go treats an empty string flag as unset.
fn set(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|s| !s.is_empty())
}

fn set_path(value: &Option<PathBuf>) -> Option<&PathBuf> {
    value.as_ref().filter(|p| !p.as_os_str().is_empty())
}

impl CipArgs {
    fn manifest_source(&self) -> Option<ManifestSource> {
        if let Some(file) = set_path(&self.manifest) {
            Some(ManifestSource::Plain(file.clone()))
        } else {
            set_path(&self.thin_manifest_dir).map(|dir| ManifestSource::ThinDir(dir.clone()))
        }
    }

    fn diff_filter(&self) -> Option<DiffFilter> {
        if self.use_prow_manifest_diff {
            Some(DiffFilter::Prow {
                job_type: std::env::var("JOB_TYPE").ok(),
                pull_base_sha: std::env::var("PULL_BASE_SHA").ok(),
            })
        } else {
            set(&self.manifest_diff_since).map(|s| DiffFilter::Since(s.to_string()))
        }
    }

    /// The registry client's settings: flags, then the settings file for what the flags
    /// leave unset, then the defaults.
    fn client_options(&self) -> Result<ClientOptions, Failure> {
        let defaults = ClientOptions::default();
        let mut file = match set_path(&self.registry_config) {
            Some(path) => registry_config::load(path).map_err(|p| Failure::Usage(format!("--registry-config {p}")))?,
            None => RegistryConfig::default(),
        };
        // The flags win: a rule in the file no longer sets what a flag set.
        for rule in &mut file.hosts {
            if self.registry_rate_limit.is_some() {
                rule.rate_limit = None;
            }
            if self.registry_burst.is_some() {
                rule.burst = None;
            }
            if self.registry_max_concurrency.is_some() {
                rule.max_concurrency = None;
            }
            if set_path(&self.registry_ca_file).is_some() {
                rule.ca_file = None;
            }
        }
        let mut quotas = self.registry_quota.clone();
        quotas.extend(file.quotas);
        Ok(ClientOptions {
            rate_limit: self.registry_rate_limit,
            burst: self.registry_burst.unwrap_or(defaults.burst),
            max_concurrency: self
                .registry_max_concurrency
                .map_or(defaults.max_concurrency, |n| n as usize),
            hosts: file.hosts,
            quotas,
            response_timeout: self.registry_response_timeout,
            idle_timeout: self.registry_stall_timeout,
            min_transfer_rate: self.registry_min_transfer_rate,
            retry_timeout: self.registry_retry_timeout,
            ca_file: self.registry_ca_file.clone(),
            insecure_registries: self
                .insecure_registry
                .iter()
                .filter(|h| !h.is_empty())
                .cloned()
                .collect(),
            limits: ReadLimits {
                tag_pages: self.registry_max_tag_pages,
                tags: self.registry_max_tags,
                catalog_pages: self.registry_max_catalog_pages,
                referrers_bytes: self.registry_max_referrers_bytes,
            },
            ..defaults
        })
    }

    /// The promotion options, or Go's `Options.Validate()` error.
    pub fn pipeline_options(&self) -> Result<pipeline::Options, Failure> {
        let manifests = self.manifest_source().ok_or_else(|| {
            Failure::Usage("at least a manifest file or thin manifest directory have to be specified".into())
        })?;
        Ok(pipeline::Options {
            manifests,
            diff: self.diff_filter(),
            confirm: self.confirm,
            parse_only: self.parse_only,
            fail_on_lost: self.fail_on_lost,
            sign: self.sign,
            trust: self.trust_options()?,
            registry: self.client_options()?,
            policy: set_path(&self.policy).cloned(),
            actor: Actor::resolve(set(&self.actor), |name| std::env::var(name).ok()),
            // Opened by `run`, so that building options never creates files.
            audit: None,
            rollout: self.rollout_options()?,
            shard: resolve_shard(
                self.shard,
                self.shards,
                std::env::var(JOB_COMPLETION_INDEX).ok().as_deref(),
            )?,
        })
    }

    /// The rollout settings; `--rollback-on-failure` needs waves to roll back.
    fn rollout_options(&self) -> Result<RolloutOptions, Failure> {
        let canaries: Vec<String> = self.canary.iter().filter(|c| !c.is_empty()).cloned().collect();
        let options = RolloutOptions {
            canaries,
            waves: self.rollout_waves,
            verify_sample: self.verify_sample,
            max_error_rate: self.max_error_rate,
            rollback_on_failure: self.rollback_on_failure,
            pause_before_verify: set_path(&self.pause_before_verify).cloned(),
        };
        if options.rollback_on_failure && !options.staged() {
            return Err(Failure::Usage(
                "--rollback-on-failure needs a staged rollout: give --canary NAME or --rollout-waves N".into(),
            ));
        }
        Ok(options)
    }

    /// `--audit-log`, opened for appending now: a log that cannot be written stops the
    /// run before anything is read or written.
    fn audit_log(&self) -> Result<Option<Arc<AuditLog>>, Failure> {
        let Some(path) = set_path(&self.audit_log) else {
            return Ok(None);
        };
        let sink = JsonLines::open(path).map_err(|e| {
            Failure::Usage(format!(
                "--audit-log {}: cannot open it for appending: {}",
                path.display(),
                crate::manifest::yaml::io_message(&e)
            ))
        })?;
        let arguments: Vec<String> = std::env::args().collect();
        Ok(Some(Arc::new(AuditLog::new(Arc::new(sink), &arguments))))
    }

    /// Signing and verification settings. Secrets (the key's password) are read here but
    /// never logged.
    fn trust_options(&self) -> Result<TrustOptions, Failure> {
        let signer = match set_path(&self.signing_key) {
            Some(path) => SignerConfig::Key {
                path: path.clone(),
                password: self.signing_key_password()?,
            },
            None => SignerConfig::Keyless {
                tokens: match set_path(&self.identity_token) {
                    Some(file) => TokenSource::File(file.clone()),
                    None => TokenSource::Google {
                        account: self.signer_account.clone(),
                        endpoints: GoogleEndpoints::from_env(),
                    },
                },
                fulcio_url: self.fulcio_url.clone(),
                rekor_url: self.rekor_url.clone(),
                trusted_root: set_path(&self.trusted_root).cloned(),
            },
        };
        Ok(TrustOptions {
            signer: Some(signer),
            staging: StagingPolicy {
                key: set_path(&self.staging_signature_key).cloned(),
                identity: Some(self.certificate_policy()?),
                trusted_root: set_path(&self.trusted_root).cloned(),
                require: self.require_staging_signature,
            },
            provenance: ProvenancePolicy {
                key: set_path(&self.provenance_key).cloned(),
                predicate_type: self.provenance_predicate_type.clone(),
            },
            target: SignatureTarget {
                registry: set(&self.signature_registry).map(str::to_string),
                canonical_prefix: self.canonical_registry_prefix.clone(),
                rewrites: self.signing_identity_rewrite.clone(),
            },
            replicate: self.replicate_signatures,
            max_ops: self.max_signature_ops as usize,
        })
    }

    /// The signer identity staging signatures must have: a `-regexp` flag, when given,
    /// takes precedence over its exact form (as in Go kpromo v4.6.0, which passes one or
    /// the other to cosign, never both).
    fn certificate_policy(&self) -> Result<IdentityPolicy, Failure> {
        let matcher = |exact: &str, regexp: &Option<String>, flag: &str| match set(regexp) {
            Some(re) => regex::Regex::new(re)
                .map(Matcher::Regex)
                .map_err(|e| Failure::Usage(format!("--{flag}-regexp {re:?}: {e}"))),
            None => Ok(Matcher::Exact(exact.to_string())),
        };
        Ok(IdentityPolicy {
            identity: matcher(
                &self.certificate_identity,
                &self.certificate_identity_regexp,
                "certificate-identity",
            )?,
            issuer: matcher(
                &self.certificate_oidc_issuer,
                &self.certificate_oidc_issuer_regexp,
                "certificate-oidc-issuer",
            )?,
        })
    }

    /// --signing-key-password-file's first line, else COSIGN_PASSWORD, else none.
    fn signing_key_password(&self) -> Result<Option<Password>, Failure> {
        if let Some(file) = set_path(&self.signing_key_password_file) {
            let text = Zeroizing::new(
                std::fs::read_to_string(file)
                    .map_err(|e| Failure::Usage(format!("--signing-key-password-file {}: {e}", file.display())))?,
            );
            let first = text.lines().next().unwrap_or_default();
            return Ok(Some(Zeroizing::new(first.to_string())));
        }
        Ok(std::env::var("COSIGN_PASSWORD").ok().map(Zeroizing::new))
    }

    /// The snapshot request when a snapshot flag is set (Go's first mode).
    pub fn snapshot_request(&self) -> Result<Option<(snapshot::Request, OutputFormat)>, Failure> {
        let source = if let Some(registry) = set(&self.snapshot) {
            snapshot::Source::Registry(registry.to_string())
        } else if let Some(registry) = set(&self.manifest_based_snapshot_of) {
            let manifests = self.manifest_source().ok_or_else(|| {
                Failure::Usage("--manifest-based-snapshot-of needs --manifest or --thin-manifest-dir".into())
            })?;
            snapshot::Source::Manifests {
                registry: registry.to_string(),
                manifests,
            }
        } else {
            return Ok(None);
        };
        let format = self
            .output
            .parse::<OutputFormat>()
            .map_err(|e| Failure::Usage(e.to_string()))?;
        let request = snapshot::Request {
            source,
            tag: set(&self.snapshot_tag).map(str::to_string),
            minimal: self.minimal_snapshot,
        };
        Ok(Some((request, format)))
    }
}

/// What one `kpromo cip` run does, decided before anything is logged or read.
enum Mode {
    Snapshot(snapshot::Request, OutputFormat),
    Promote(Box<pipeline::Options>),
}

impl CipArgs {
    /// Go's precedence: snapshot, then security scan (refused here), then promotion.
    fn mode(&self) -> Result<Mode, Failure> {
        if let Some((request, format)) = self.snapshot_request()? {
            return Ok(Mode::Snapshot(request, format));
        }
        if self.vuln_severity_threshold >= 0 {
            return Err(Failure::Usage(format!(
                "security scan mode (--vuln-severity-threshold {}) is not supported by kpromo: it relied on GCP \
                 Container Analysis, which is not available here; run your vulnerability scanner separately and \
                 promote with the default --vuln-severity-threshold=-1",
                self.vuln_severity_threshold
            )));
        }
        self.pipeline_options().map(|o| Mode::Promote(Box::new(o)))
    }
}

/// Runs `kpromo cip` in the mode its flags select.
pub fn run(args: &CipArgs) -> Result<(), Failure> {
    let mode = args.mode()?;
    // Go logs this first on every cip run; kept so log scrapers find it.
    tracing::info!(
        "Options to check the Signatures: SignCheckIdentity: {} | SignCheckIdentityRegexp: {} | SignCheckIssuer: {} | SignCheckIssuerRegexp: {}",
        args.certificate_identity,
        set(&args.certificate_identity_regexp).unwrap_or(""),
        args.certificate_oidc_issuer,
        set(&args.certificate_oidc_issuer_regexp).unwrap_or("")
    );
    tracing::debug!(signer_account = %args.signer_account, max_image_size = args.max_image_size, "signing options");
    match mode {
        Mode::Snapshot(request, format) => {
            let inventory = runtime()?.block_on(snapshot::take(&request, &args.client_options()?))?;
            super::print(&inventory.render(format))
        }
        Mode::Promote(mut options) => {
            let audit = args.audit_log()?;
            options.audit = audit.clone();
            let printer = Box::new(PlanPrinter::new(args.plan_out.clone()));
            let outcome = runtime()?.block_on(pipeline::run(&options, printer));
            // Also after a failure: a refused plan still reports what it read.
            outcome.report.log();
            if let Some(path) = &args.summary_json {
                write_summary(path, &outcome.report)?;
            }
            let failure = outcome.result.err().map(Failure::from);
            if let Some(log) = &audit {
                record_run_end(log, &outcome.report, failure.as_ref())?;
            }
            failure.map_or(Ok(()), Err)
        }
    }
}

/// `--summary-json`: the run report as pretty JSON.
fn write_summary(path: &std::path::Path, report: &pipeline::RunReport) -> Result<(), Failure> {
    let output = |source| Failure::Output {
        what: format!("writing the summary to {}", path.display()),
        source,
    };
    let json = serde_json::to_vec_pretty(report).map_err(|e| output(e.into()))?;
    std::fs::write(path, json).map_err(output)
}

/// The audit log's last record: totals and the exit code, which only the CLI knows.
fn record_run_end(log: &AuditLog, report: &pipeline::RunReport, failure: Option<&Failure>) -> Result<(), Failure> {
    let (writes, write_errors) = log.write_counts();
    let d = &report.decisions;
    let end = RunEnd {
        exit_code: failure.map_or(0, |f| f.exit_kind().code()),
        outcome: report.outcome.clone(),
        totals: Totals {
            edges: report.edges,
            copy: d.copy,
            retag: d.retag,
            skip: d.skip,
            lost: d.lost,
            tag_moves: d.tag_moves,
            denied: report.policy_denied,
            writes,
            write_errors,
        },
    };
    log.emit(Event::RunEnd(end)).map_err(|e| Failure::Output {
        what: format!("writing the audit log {}", e.sink),
        source: e.source,
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Failure::Runtime)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Harness {
        #[command(flatten)]
        cip: CipArgs,
    }

    fn parse(args: &[&str]) -> CipArgs {
        use clap::{CommandFactory, FromArgMatches};
        go_bool_flags(Harness::command())
            .try_get_matches_from(std::iter::once("cip").chain(args.iter().copied()))
            .and_then(|m| Harness::from_arg_matches(&m))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
            .cip
    }

    #[test]
    fn flags_map_into_pipeline_options() {
        let args = parse(&[
            "--manifest=m.yaml",
            "--thin-manifest-dir=dir",
            "--confirm",
            "--parse-only=true",
            "--fail-on-lost",
            "--sign=false",
            "--max-signature-ops=7",
            "--plan-out=plan.json",
            "--summary-json=sum.json",
            "--manifest-diff-since=7 days",
            "--registry-rate-limit=5",
            "--registry-burst=2",
            "--registry-max-concurrency=3",
            "--registry-ca-file=ca.pem",
            "--insecure-registry=a:5000,b",
            "--insecure-registry=c",
        ]);
        // The reporting and signing flags stay with the CLI, which does that work.
        assert_eq!(args.max_signature_ops, 7);
        assert_eq!(args.plan_out.as_deref(), Some(Path::new("plan.json")));
        assert_eq!(args.summary_json.as_deref(), Some(Path::new("sum.json")));
        let options = args.pipeline_options().unwrap();
        assert_eq!(
            options.manifests,
            ManifestSource::Plain("m.yaml".into()),
            "--manifest wins"
        );
        assert_eq!(options.diff, Some(DiffFilter::Since("7 days".into())));
        assert!(options.confirm && options.parse_only && options.fail_on_lost && !options.sign);
        assert_eq!(options.registry.rate_limit, Some(5));
        assert_eq!(options.registry.burst, 2);
        assert_eq!(options.registry.max_concurrency, 3);
        assert_eq!(options.registry.ca_file.as_deref(), Some(Path::new("ca.pem")));
        assert_eq!(options.registry.insecure_registries, ["a:5000", "b", "c"]);
    }

    #[test]
    fn read_caps_map_into_the_client_options() {
        let options = parse(&[
            "--manifest=m.yaml",
            "--registry-max-tag-pages=3",
            "--registry-max-tags=40",
            "--registry-max-catalog-pages=5",
            "--registry-max-referrers-bytes=600",
        ])
        .pipeline_options()
        .unwrap();
        assert_eq!(
            options.registry.limits,
            ReadLimits {
                tag_pages: 3,
                tags: 40,
                catalog_pages: 5,
                referrers_bytes: 600
            }
        );
    }

    #[test]
    fn defaults_match_go_and_the_registry_defaults() {
        let args = parse(&["--thin-manifest-dir", "dir"]);
        let options = args.pipeline_options().unwrap();
        assert_eq!(options.manifests, ManifestSource::ThinDir("dir".into()));
        assert_eq!(options.diff, None);
        assert!(!options.confirm && !options.parse_only && !options.fail_on_lost && options.sign);
        assert_eq!(args.max_signature_ops, 50);
        assert_eq!(options.registry, ClientOptions::default());
        assert_eq!(args.vuln_severity_threshold, -1);
        assert_eq!(args.output, "yaml");
    }

    #[test]
    fn prow_diff_wins_over_since() {
        let options = parse(&[
            "--thin-manifest-dir=d",
            "--use-prow-manifest-diff",
            "--manifest-diff-since=1 day",
        ])
        .pipeline_options()
        .unwrap();
        assert!(
            matches!(options.diff, Some(DiffFilter::Prow { .. })),
            "{:?}",
            options.diff
        );
    }

    #[test]
    fn snapshot_flags_select_snapshot_mode_before_anything_else() {
        let args = parse(&[
            "--snapshot=reg.example/prod",
            "--vuln-severity-threshold=3",
            "--output=CSV",
        ]);
        let Mode::Snapshot(request, format) = args.mode().unwrap() else {
            panic!("snapshot mode expected");
        };
        assert_eq!(request.source, snapshot::Source::Registry("reg.example/prod".into()));
        assert_eq!(format, OutputFormat::Csv);
        let args = parse(&[
            "--manifest-based-snapshot-of=r",
            "--thin-manifest-dir=d",
            "--snapshot-tag=",
            "--minimal-snapshot",
        ]);
        let Mode::Snapshot(request, _) = args.mode().unwrap() else {
            panic!("snapshot mode expected");
        };
        assert_eq!(request.tag, None, "an empty tag is unset");
        assert!(request.minimal);
        assert!(matches!(request.source, snapshot::Source::Manifests { .. }));
    }

    #[test]
    fn the_shard_comes_from_the_flag_or_from_the_indexed_job() {
        let three = |i| Some(Shard { index: i, count: 3 });
        assert_eq!(resolve_shard(None, None, Some("1")).unwrap(), None, "no sharding asked");
        assert_eq!(resolve_shard(three(1), None, None).unwrap(), three(1));
        assert_eq!(
            resolve_shard(three(1), None, Some("1")).unwrap(),
            three(1),
            "they agree"
        );
        assert_eq!(resolve_shard(None, Some(3), Some("2")).unwrap(), three(2));
        let refused = |shard, shards, env| match resolve_shard(shard, shards, env) {
            Err(Failure::Usage(message)) => message,
            other => panic!("{shard:?} {shards:?} {env:?}: {other:?}"),
        };
        assert!(refused(three(1), None, Some("2")).contains("--shard 1/3 conflicts with JOB_COMPLETION_INDEX=2"));
        assert!(refused(three(1), None, Some("x")).contains("JOB_COMPLETION_INDEX=\"x\" is not a shard index"));
        assert!(refused(None, Some(3), None).contains("which is not set"));
        assert!(refused(None, Some(3), Some("3")).contains("there is no shard 3 of 3"));
        assert!(refused(None, Some(3), Some("-1")).contains("not a shard index"));
    }

    #[test]
    fn rollback_needs_a_staged_rollout() {
        let refused = parse(&["--manifest=m.yaml", "--rollback-on-failure"]).pipeline_options();
        assert!(matches!(refused, Err(Failure::Usage(m)) if m.contains("--rollback-on-failure needs")));
        let options = parse(&[
            "--manifest=m.yaml",
            "--rollback-on-failure",
            "--canary=eu",
            "--canary=asia",
            "--max-error-rate=2.5%",
            "--verify-sample=0.5",
        ])
        .pipeline_options()
        .unwrap();
        assert_eq!(options.rollout.canaries, ["eu", "asia"]);
        assert_eq!(options.rollout.max_error_rate, 0.025);
        assert_eq!(options.rollout.verify_sample, 0.5);
        assert_eq!(parse_rate("0.1"), Ok(0.1));
        assert!(parse_rate("150%").is_err() && parse_fraction("1.5").is_err() && parse_fraction("x").is_err());
    }

    #[test]
    fn go_bool_accepts_strconv_parsebool_spellings() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(go_bool(t), Ok(true), "{t}");
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(go_bool(f), Ok(false), "{f}");
        }
        assert!(go_bool("yes").is_err());
    }
}
