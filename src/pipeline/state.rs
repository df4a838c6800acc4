//! The one typed state every phase reads and fills in, in phase order.
//!
//! Later phases (Provenance, Sign, Attest) only need read access to the edges, their
//! decisions and what Promote pushed, so all of it lives here instead of in locals.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use crate::digest::Digest;
use crate::edges::{Edge, EdgeSet, NameId};
use crate::registry::{Registries, Registry, RepoRoot};
pub use crate::sync::Cancel;

use super::Options;
use super::decide::Decision;

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

/// What the Promote phase counted; written as is into the run summary.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PromoteCounters {
    /// Manifests written by digest (children and tops).
    pub manifests_pushed: u64,
    pub tags_pushed: u64,
    /// Blob uploads, counted once per destination repository.
    pub blobs_uploaded: u64,
    pub blobs_mounted: u64,
    /// Blobs a destination already had (HEAD said so).
    pub blobs_present: u64,
    /// Bytes read from sources: each missing blob once, whatever the number of mirrors.
    pub source_bytes_read: u64,
    /// Bytes sent to destinations (source bytes times the destinations that needed them).
    pub bytes_uploaded: u64,
}

/// What the Promote phase did, for the summary and for Sign/Attest.
#[derive(Debug, Clone, Default)]
pub struct PromoteReport {
    pub counters: PromoteCounters,
    /// `registry/image@digest` of every top manifest now present at a destination
    /// because of this run, for signing and attestation.
    pub promoted: Vec<String>,
    /// Every failure, each naming the registry and the operation.
    pub errors: Vec<String>,
}

/// Wall time of one finished phase.
#[derive(Debug, Clone)]
pub struct PhaseTiming {
    pub name: &'static str,
    pub took: Duration,
}

/// The shared plan state.
#[derive(Debug)]
pub struct PlanState {
    pub options: Options,
    pub cancel: Cancel,
    /// Opened by Setup; `None` when a test injects [`PlanState::roots`] directly.
    pub registries: Option<Registries>,
    pub manifests: usize,
    pub edges: EdgeSet,
    /// Every registry named by an edge, resolved to its backend and path prefix.
    pub roots: BTreeMap<NameId, RepoRoot>,
    /// One decision per edge, index-aligned with `edges.edges()`.
    pub decisions: Vec<Decision>,
    /// Destination repositories the plan found not to exist: no tags, and none of the
    /// digests the manifests send there. Unless a child manifest turns up there, Promote
    /// treats them as holding no blobs and spends no blob HEADs on them (on a new mirror,
    /// a third of its requests). The cost: blobs left in such a repository by an
    /// interrupted run that pushed no manifest yet are uploaded again.
    pub fresh_destinations: BTreeSet<RepoKey>,
    pub promote: PromoteReport,
    pub phases: Vec<PhaseTiming>,
}

impl PlanState {
    pub fn new(options: Options) -> Self {
        Self {
            options,
            cancel: Cancel::default(),
            registries: None,
            manifests: 0,
            edges: EdgeSet::default(),
            roots: BTreeMap::new(),
            decisions: Vec::new(),
            fresh_destinations: BTreeSet::new(),
            promote: PromoteReport::default(),
            phases: Vec::new(),
        }
    }

    /// The backend and repository path of `key`.
    ///
    /// Roots are opened for every registry an edge names before anything asks, so a
    /// missing root is a programming error reported as one, not a panic.
    pub fn repo(&self, key: RepoKey) -> Result<(Arc<dyn Registry>, String), anyhow::Error> {
        let root = self.roots.get(&key.registry).ok_or_else(|| {
            anyhow::anyhow!(
                "internal error: registry {} was not opened",
                self.edges.name(key.registry)
            )
        })?;
        Ok((root.registry.clone(), root.repo(self.edges.name(key.image))))
    }

    /// `registry/image` as written in the manifests, for messages.
    pub fn repo_display(&self, key: RepoKey) -> String {
        format!("{}/{}", self.edges.name(key.registry), self.edges.name(key.image))
    }

    /// `registry/image@digest`, for messages.
    pub fn reference(&self, key: RepoKey, digest: &Digest) -> String {
        format!("{}@{digest}", self.repo_display(key))
    }

    /// Edges paired with their decisions (empty before Plan).
    pub fn decided(&self) -> impl Iterator<Item = (&Edge, &Decision)> {
        self.edges.edges().iter().zip(self.decisions.iter())
    }

    /// Distinct backends in use, by name, for statistics.
    pub fn backends(&self) -> BTreeMap<String, Arc<dyn Registry>> {
        self.roots
            .values()
            .map(|root| (root.registry.name().to_string(), root.registry.clone()))
            .collect()
    }
}
