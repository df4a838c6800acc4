//! What a policy decision is about: the edge, the plan's decision for it, and the
//! evidence gathered about its source image. These are the typed CEL context.
//!
//! Evidence is typed now and filled as phases learn it: Plan knows the image's media
//! type and size from its source HEAD, Provenance will fill [`Provenance`] and Validate
//! [`StagingSignature`] (both empty, `verified: false`, until those phases verify
//! anything), so a rule that requires verified provenance denies until it can be shown.
use std::time::SystemTime;

use serde::Serialize;

use crate::digest::Digest;

/// The edge a verdict is about, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeFacts<'a> {
    /// The source registry as the manifests name it (`gcr.io/k8s-staging-foo`).
    pub src_registry: &'a str,
    pub dst_registry: &'a str,
    pub image: &'a str,
    pub digest: Digest,
    /// `None` for a tagless (promote-by-digest) edge.
    pub tag: Option<&'a str>,
}

impl EdgeFacts<'_> {
    /// `src-registry/image`: what `sources` patterns match.
    pub fn source(&self) -> String {
        format!("{}/{}", self.src_registry, self.image)
    }
}

/// What is known about a source image's manifest ("when known": zero values otherwise).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct ImageFacts {
    pub media_type: String,
    pub platforms: Vec<String>,
    pub size: u64,
}

/// Build provenance of a source image, as the Provenance phase verified it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Provenance {
    pub verified: bool,
    pub builder_id: String,
    pub source_repo: String,
    pub predicate_type: String,
}

/// The staging signature of a source image, as the Validate phase verified it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct StagingSignature {
    pub present: bool,
    pub verified: bool,
    pub identity: String,
}

/// Everything the pipeline learned about one source image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Evidence {
    pub image: ImageFacts,
    pub provenance: Provenance,
    pub staging_signature: StagingSignature,
}

/// One complete question to the policy. `decision` and `evidence` are `None` offline
/// (`kpromo policy check`): a condition that needs them "depends on registry state".
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub edge: EdgeFacts<'a>,
    /// The plan's decision label (`copy`, `retag`, `skip`, …).
    pub decision: Option<&'a str>,
    pub evidence: Option<&'a Evidence>,
    pub now: SystemTime,
}
