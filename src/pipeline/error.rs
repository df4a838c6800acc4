//! What can end a promotion run. The CLI maps each kind to an exit code
//! (`docs/exit-codes.md`); phases only say what went wrong.
use crate::audit;
use crate::copy;
use crate::manifest::Problem;
use crate::manifest::load::LoadError;
use crate::registry;

/// Why a promotion run stopped before finishing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // Registry errors are boxed: they are large, and every phase returns this type.
    /// The registry client set could not be built (an unreadable CA file, say).
    #[error("setting up registry clients: {0}")]
    Setup(#[source] Box<registry::Error>),
    /// Manifests that cannot be read or break the rules; every problem is logged.
    #[error("{}", manifests_message(.0))]
    Manifests(LoadError),
    /// Destinations claimed by different digests; every problem is logged.
    #[error("{}", overlaps_message(.0))]
    Overlaps(Vec<Problem>),
    /// A registry named in the manifests that kpromo cannot address.
    #[error("manifest registry {name}: {source}")]
    RegistryName {
        name: String,
        #[source]
        source: Box<registry::Error>,
    },
    /// Reading the registries for the plan failed (every failure is logged).
    #[error("{during}: {source}")]
    Read {
        during: &'static str,
        #[source]
        source: Box<registry::Error>,
    },
    /// A registry the edges name was not opened before use: a bug, reported as one.
    #[error("internal error: registry {0} was not opened")]
    Unopened(String),
    /// Destination tags that point at other digests; nothing was written.
    #[error("{0} tag moves detected; tag moves are not supported, nothing was promoted")]
    TagMoves(usize),
    /// `_LOST_` edges with `--fail-on-lost`; nothing was written.
    #[error("{0} edges are _LOST_ (not in their source registry) and --fail-on-lost is set; nothing was promoted")]
    Lost(usize),
    /// The plan could not be handed to its sink (printing it, writing `--plan-out`).
    #[error("{0}")]
    Report(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The policy file cannot be read or breaks the rules; every problem is logged.
    #[error("{}", policy_message(.0))]
    Policy(LoadError),
    /// The policy denied edges; each is logged with the rule that denied it, and
    /// nothing was written.
    #[error("{count} edges denied by policy, nothing was promoted; first: {first}")]
    PolicyDenied { count: usize, first: String },
    /// The audit log could not be written: the run stops rather than go on unaudited.
    #[error(transparent)]
    Audit(Box<audit::Error>),
    /// A `--confirm` run that signs, with no signer configured; the places looked at for
    /// Google credentials, if any.
    #[error(
        "signing is on (as in Go kpromo) but no signer is configured: give --signing-key FILE (a cosign or \
         PKCS#8 P-256 key), or --identity-token FILE (keyless), or Google application-default credentials \
         that can mint a token for --signer-account (GOOGLE_APPLICATION_CREDENTIALS, gcloud's \
         application_default_credentials.json, or the metadata server); or pass --sign=false to promote \
         without signing{}",
        looked_at(.0)
    )]
    NoSigner(Vec<String>),
    /// The signer cannot be set up (a key that does not load, a token that cannot be had).
    #[error("setting up the signer: {0}")]
    Signer(#[source] crate::trust::Error),
    /// Staging images whose signatures refuse the promotion; nothing was written.
    #[error(
        "staging signatures: {count} source images refused (each logged above); nothing was promoted; first: {first}"
    )]
    StagingSignatures { count: usize, first: String },
    /// Staging images whose build provenance refuses the promotion (an attestation by the
    /// expected signer that does not verify or names another digest, or one that cannot
    /// be read); nothing was written.
    #[error("provenance: {count} source images refused (each logged above); nothing was promoted; first: {first}")]
    Provenance { count: usize, first: String },
    /// Promotion succeeded, but some images are not signed.
    #[error(
        "promoted but unsigned: {count} images could not be signed (rerun to sign; nothing will be copied again); first: {first}"
    )]
    Unsigned { count: usize, first: String },
    /// The rollout waves cannot be formed (a `--canary` that names no destination);
    /// nothing was written.
    #[error("{0}; nothing was promoted")]
    Waves(#[from] super::rollout::WaveError),
    /// A wave's health gate closed: copies failed, the read-back found problems or too
    /// many requests failed. The remaining waves were not started.
    #[error("{0}")]
    RolloutStopped(Box<super::rollout::Stopped>),
    /// Promoted and signed, but some images are not attested, or their staging referrers
    /// were not all carried.
    #[error(
        "promoted and signed but not attested: {count} images could not be attested or keep their referrers \
         (rerun to attest; nothing will be copied or signed again); first: {first}"
    )]
    Unattested { count: usize, first: String },
    /// Ctrl-C.
    #[error("interrupted: stopped between units of work; nothing is half-written, rerun to finish")]
    Interrupted,
    /// Some copies failed; each failure is logged and blocked only what depends on it.
    /// Whether a rerun helps depends on the failures' classes, and the message says so.
    #[error("{}", failed_message(*.count, *.permanent_images, *.transient_images, .first))]
    Failed {
        count: usize,
        /// Images not promoted because of a failure a rerun will not fix.
        permanent_images: usize,
        /// Images not promoted only because of failures a rerun gets past.
        transient_images: usize,
        /// The failure to read first: a permanent root cause when there is one.
        first: copy::Failure,
    },
}

fn failed_message(count: usize, permanent: usize, transient: usize, first: &copy::Failure) -> String {
    let class = first.class();
    if permanent == 0 && class == copy::Class::Transient {
        return format!(
            "running image promotion: {count} operations failed ({}); first: {first}",
            class.advice()
        );
    }
    let count_images = |n: usize| {
        if n == 1 {
            "1 image".to_string()
        } else {
            format!("{n} images")
        }
    };
    let images = match (permanent, transient) {
        (0, _) => String::new(),
        (p, 0) => format!(", {} not promoted", count_images(p)),
        (p, t) => format!(
            ", {} not promoted (and {} that a rerun would promote)",
            count_images(p),
            count_images(t)
        ),
    };
    format!(
        "running image promotion: {count} operations failed{images}: {}; first: {first}",
        copy::Class::Permanent.advice()
    )
}

fn looked_at(places: &[String]) -> String {
    if places.is_empty() {
        String::new()
    } else {
        format!(" (looked at: {})", places.join("; "))
    }
}

fn manifests_message(e: &LoadError) -> String {
    match e.problems.as_slice() {
        [] => "parsing manifests: no manifests could be loaded".to_string(),
        [one] => format!("parsing manifests: {one}"),
        [first, rest @ ..] => format!(
            "parsing manifests: {} problems (each logged above); first: {first}",
            rest.len() + 1
        ),
    }
}

fn policy_message(e: &LoadError) -> String {
    match e.problems.as_slice() {
        [] => "loading the policy failed".to_string(),
        [one] => format!("loading the policy: {one}"),
        [first, rest @ ..] => format!(
            "loading the policy: {} problems (each logged above); first: {first}",
            rest.len() + 1
        ),
    }
}

impl From<audit::Error> for Error {
    fn from(e: audit::Error) -> Self {
        Error::Audit(Box::new(e))
    }
}

fn overlaps_message(problems: &[Problem]) -> String {
    match problems {
        [one] => one.to_string(),
        [first, rest @ ..] => format!(
            "{} overlapping promotions (each logged above); first: {first}",
            rest.len() + 1
        ),
        [] => "overlapping edges detected".to_string(),
    }
}
