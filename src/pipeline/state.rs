//! The one typed state every phase reads and fills in, in phase order.
//!
//! Later phases (Provenance, Sign, Attest) mostly need read access to the edges, their
//! decisions and what Promote delivered, so all of it lives here instead of in locals.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use crate::copy::{self, Repo};
use crate::digest::Digest;
use crate::edges::{Edge, EdgeSet, NameId};
use crate::policy::{Evidence, Policy};
use crate::registry::{MediaType, Referrer, Registries, Registry, RepoRoot};
use crate::sync::Cancel;
use crate::trust::Signer;
use crate::trust::cosign::Signatures;
use crate::trust::provenance::{Facts, Outcome};

use super::decide::Decision;
use super::plan::PlanSink;
use super::report::RolloutReport;
use super::rollout::Wave;
use super::trust_jobs::TrustJob;
use super::{Error, Options};

/// A repository as (registry name id, image name id) in the [`EdgeSet`] name table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RepoKey {
    pub registry: NameId,
    pub image: NameId,
}

impl RepoKey {
    pub fn source_of(edge: &Edge) -> Self {
        Self {
            registry: edge.src_registry,
            image: edge.image,
        }
    }

    pub fn destination_of(edge: &Edge) -> Self {
        Self {
            registry: edge.dst_registry,
            image: edge.image,
        }
    }
}

/// An image Promote left complete in a destination repository: what Sign signs and
/// Attest attests, typed, so those phases never re-parse references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The destination registry (as the manifests name it) and image.
    pub destination: RepoKey,
    pub digest: Digest,
    pub media_type: MediaType,
    /// The size of its manifest.
    pub size: u64,
    /// The tags this run asked for there (empty for a tagless promotion).
    pub tags: Vec<String>,
    /// Copied by this run, as opposed to already there (a retag).
    pub copied: bool,
}

/// A source image: its repository and digest. What evidence is gathered about.
pub type SourceImage = (RepoKey, Digest);

/// An image Promote did not leave complete in a destination repository, and why.
#[derive(Debug, Clone)]
pub struct FailedImage {
    pub destination: RepoKey,
    pub digest: Digest,
    /// The tags asked for there.
    pub tags: Vec<String>,
    /// What stopped it; its class says whether a rerun helps.
    pub failure: copy::Failure,
}

/// What the Promote phase did, for the summary and for Sign/Attest.
#[derive(Debug, Default)]
pub struct PromoteReport {
    pub counters: copy::Counters,
    pub subjects: Vec<Subject>,
    /// Every image not promoted, once each.
    pub failed: Vec<FailedImage>,
    /// Every failure, each naming where and why.
    pub failures: Vec<copy::Failure>,
}

/// What the Sign phase did, for the summary.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SignReport {
    /// Every image signed by this run or found signed by this signer already.
    pub signed: Vec<Signed>,
    /// `.sig` manifests copied to other destinations (`--replicate-signatures`).
    pub replicated: usize,
    /// Images left unsigned: reference and why.
    pub failed: Vec<(String, String)>,
}

/// One image with a valid signature by this run's signer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Signed {
    /// `registry/image@digest` where the signature is.
    pub reference: String,
    /// Signed by this run (as opposed to found signed).
    pub newly: bool,
}

/// What the Provenance phase found for one source image.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProvenanceRecord {
    /// `registry/image@digest` of the staging image.
    pub image: String,
    pub outcome: Outcome,
    /// What was verified (empty unless `outcome` is `verified`).
    #[serde(flatten)]
    pub facts: Facts,
    /// One line per attestation ignored (`ignored`) or refused (`failed`).
    pub notes: Vec<String>,
}

/// What the Attest phase did, for the summary.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AttestReport {
    /// Every image attested by this run or found attested by this signer already.
    pub attested: Vec<Attested>,
    /// Staging referrers (SBOMs, build attestations, signatures) copied to a destination.
    pub carried: usize,
    /// Referrers copied from the canonical destination to the others
    /// (`--replicate-signatures`).
    pub replicated: usize,
    /// Images left unattested, or whose referrers could not all be carried: reference
    /// and why.
    pub failed: Vec<(String, String)>,
}

/// One image with a promotion attestation by this run's signer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Attested {
    /// `registry/image@digest` where the attestation is.
    pub reference: String,
    /// Attested by this run (as opposed to found attested).
    pub newly: bool,
}

/// Wall time of one finished phase, and the registry requests it sent.
#[derive(Debug, Clone)]
pub struct PhaseTiming {
    pub name: &'static str,
    pub took: Duration,
    pub requests: Requests,
}

/// Registry requests, all registries together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Requests {
    pub all: u64,
    /// Those with a writing method (PUT, POST, PATCH, DELETE).
    pub writes: u64,
}

impl Requests {
    /// Whether a request counter ("METHOD STATUS", as in `RegistryStats`) counts writes.
    pub fn is_write(counter: &str) -> bool {
        let method = counter.split_whitespace().next().unwrap_or_default();
        matches!(method, "PUT" | "POST" | "PATCH" | "DELETE")
    }

    /// The requests sent between `earlier` and `self`.
    pub fn since(self, earlier: Requests) -> Requests {
        Requests {
            all: self.all.saturating_sub(earlier.all),
            writes: self.writes.saturating_sub(earlier.writes),
        }
    }
}

/// The shared run state.
pub struct RunState {
    pub options: Options,
    pub cancel: Cancel,
    /// Where the plan goes once decided (the CLI prints it).
    pub sink: Box<dyn PlanSink>,
    /// Opened by Setup; `None` when a test injects [`RunState::roots`] directly.
    pub registries: Option<Registries>,
    pub manifests: usize,
    pub edges: EdgeSet,
    /// Every registry named by an edge, resolved to its backend and path prefix.
    pub roots: BTreeMap<NameId, RepoRoot>,
    /// One decision per edge, index-aligned with `edges.edges()`.
    pub decisions: Vec<Decision>,
    /// Destination repositories the plan found not to exist: no tags, and none of the
    /// digests the manifests send there (see `copy::Request::fresh`).
    pub fresh_destinations: BTreeSet<RepoKey>,
    /// The rollout waves Plan formed (empty when the run is not staged).
    pub waves: Vec<Wave>,
    /// `--policy`, loaded by Setup.
    pub policy: Option<Policy>,
    /// What is known about each source image the plan writes, the policy's evidence:
    /// Plan fills the image facts it read, Provenance the verified build provenance,
    /// Validate the staging signature's verdict ([`super::evidence`]).
    pub evidence: HashMap<SourceImage, Evidence>,
    /// Edges the policy denied.
    pub policy_denied: usize,
    /// Whether the audit log has this run's `run_start` record yet.
    pub audit_started: bool,
    /// Records that come before `run_start` in time but after it in the log.
    pub audit_waiting: Vec<crate::audit::Event>,
    pub promote: PromoteReport,
    /// What each rollout wave did (`None` when the run is not staged).
    pub rollout: Option<RolloutReport>,
    /// The staging signatures Validate read, by source repository and digest, so that
    /// Sign carries them over without reading them again.
    pub staging_signatures: BTreeMap<(RepoKey, Digest), Signatures>,
    /// What Provenance found, source image by source image, for the summary.
    pub provenance_report: Vec<ProvenanceRecord>,
    /// The referrers of each source image Provenance listed, so that Attest carries them
    /// forward without listing them again.
    pub staging_referrers: BTreeMap<(RepoKey, Digest), Vec<Referrer>>,
    /// Built by Setup for runs that sign (`--confirm` with `--sign`).
    pub signer: Option<Signer>,
    pub signing: SignReport,
    /// What to sign and attest where, as Sign decided it.
    pub trust_jobs: Option<Vec<TrustJob>>,
    pub attesting: AttestReport,
    pub phases: Vec<PhaseTiming>,
}

impl std::fmt::Debug for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunState")
            .field("options", &self.options)
            .field("edges", &self.edges.len())
            .field("phases", &self.phases)
            .finish_non_exhaustive()
    }
}

impl RunState {
    pub fn new(options: Options, sink: Box<dyn PlanSink>) -> Self {
        Self {
            options,
            cancel: Cancel::default(),
            sink,
            registries: None,
            manifests: 0,
            edges: EdgeSet::default(),
            roots: BTreeMap::new(),
            decisions: Vec::new(),
            fresh_destinations: BTreeSet::new(),
            waves: Vec::new(),
            policy: None,
            evidence: HashMap::new(),
            policy_denied: 0,
            audit_started: false,
            audit_waiting: Vec::new(),
            promote: PromoteReport::default(),
            rollout: None,
            staging_signatures: BTreeMap::new(),
            provenance_report: Vec::new(),
            staging_referrers: BTreeMap::new(),
            signer: None,
            signing: SignReport::default(),
            trust_jobs: None,
            attesting: AttestReport::default(),
            phases: Vec::new(),
        }
    }

    /// The backend and repository path of `key`.
    ///
    /// Roots are opened for every registry an edge names before anything asks, so a
    /// missing root is a programming error, reported as one rather than a panic.
    pub fn repo(&self, key: RepoKey) -> Result<Repo, Error> {
        let registry = self.edges.name(key.registry);
        let root = self
            .roots
            .get(&key.registry)
            .ok_or_else(|| Error::Unopened(registry.to_string()))?;
        Ok(Repo {
            registry: root.registry.clone(),
            path: root.repo(self.edges.name(key.image)),
            display: self.repo_display(key),
        })
    }

    /// `registry/image` as the manifests name it, for messages.
    pub fn repo_display(&self, key: RepoKey) -> String {
        format!("{}/{}", self.edges.name(key.registry), self.edges.name(key.image))
    }

    /// Edges paired with their decisions (empty before Plan).
    pub fn decided(&self) -> impl Iterator<Item = (&Edge, &Decision)> {
        self.edges.edges().iter().zip(self.decisions.iter())
    }

    /// Requests sent so far, all registries together.
    pub fn requests(&self) -> Requests {
        let mut requests = Requests::default();
        for registry in self.backends().values() {
            for (counter, n) in registry.stats().requests {
                requests.all += n;
                if Requests::is_write(&counter) {
                    requests.writes += n;
                }
            }
        }
        requests
    }

    /// Distinct backends in use, by name, for statistics.
    pub fn backends(&self) -> BTreeMap<String, Arc<dyn Registry>> {
        self.roots
            .values()
            .map(|root| (root.registry.name().to_string(), root.registry.clone()))
            .collect()
    }
}
