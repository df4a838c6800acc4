//! Registry access: one trait, two kinds of backend.
//!
//! Like go-containerregistry, everything above this module sees a registry only through
//! [`Registry`]: remote OCI distribution registries ([`remote`]) and OCI image-layout
//! directories ([`oci_layout`]) are interchangeable. Repository names passed to the trait
//! are full paths inside the registry host (`k8s-artifacts-prod/images/kubernetes/pause`),
//! already including any path prefix from a manifest's registry name.
//!
//! - this file: the trait and the types every backend shares;
//! - `open`: the scheme router ([`Registries`]: a manifest's registry name to one shared
//!   backend per host or directory); `error`: [`Error`] and the spec's [`OciCode`]s;
//! - [`media`]: the one reader of manifest JSON ([`MediaType`], what a manifest needs
//!   before it can be pushed), so that backends and copiers agree;
//! - [`referrers`]: the OCI 1.1 tag-schema fallback, the trait's default for referrers;
//! - [`remote`], [`oci_layout`]: the backends, with the same per-operation files
//!   (`manifests`, `blobs`, `tags`); `memory` and `test_image` (unit tests only): an
//!   in-memory backend and an image builder for the layers above.
use std::fmt;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;

use crate::digest::Digest;

mod error;
pub mod image_ref;
pub mod media;
#[cfg(test)]
pub mod memory;
pub mod oci_layout;
mod open;
pub mod reference;
pub mod referrers;
pub mod remote;
mod spool;
#[cfg(test)]
pub mod test_image;

pub use error::{Error, OciCode};
pub use media::MediaType;
pub use open::{Registries, RepoRoot};
pub use referrers::Referrer;
pub use remote::{ClientOptions, ReadLimits};
pub use spool::{Spool, SpoolFigures};

/// Which manifest to address: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ManifestRef {
    Tag(String),
    Digest(Digest),
}

impl fmt::Display for ManifestRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestRef::Tag(t) => write!(f, ":{t}"),
            ManifestRef::Digest(d) => write!(f, "@{d}"),
        }
    }
}

/// What a manifest HEAD (or an index entry) tells: enough to decide whether to copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub digest: Digest,
    pub media_type: MediaType,
    pub size: u64,
}

/// A manifest exactly as stored: never re-serialise these, or the digest changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawManifest {
    pub media_type: MediaType,
    pub bytes: Bytes,
    /// Always `Digest::of(&bytes)`; backends verify it on the way in and out.
    pub digest: Digest,
}

impl RawManifest {
    pub fn new(media_type: impl Into<MediaType>, bytes: Bytes) -> Self {
        let digest = Digest::of(&bytes);
        Self {
            media_type: media_type.into(),
            bytes,
            digest,
        }
    }

    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            digest: self.digest,
            media_type: self.media_type.clone(),
            size: self.bytes.len() as u64,
        }
    }
}

/// The result of listing a repository's tags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagList {
    pub tags: Vec<String>,
    /// Filled when the registry answered with Google's extended tags list
    /// (gcr.io, Artifact Registry): digest -> tags and media type, without HEADs.
    pub google_manifests: Option<Vec<GoogleManifestInfo>>,
    /// Sub-repositories named by Google's extension (`child`).
    pub children: Vec<String>,
}

/// One entry of Google's extended tags-list `manifest` map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoogleManifestInfo {
    pub digest: Digest,
    pub media_type: MediaType,
    pub tags: Vec<String>,
}

/// A blob body as a stream of chunks.
///
/// Streams returned by [`Registry::get_blob`] verify the digest as they go and end with
/// an error (never a clean end) on a mismatch. Some of them also *vouch* for their digest
/// (see [`BlobStream::vouched_digest`]): uploading such a stream needs no second hash,
/// which on a remote-to-remote copy is a third of kpromo's CPU per byte.
pub struct BlobStream {
    chunks: Pin<Box<dyn Stream<Item = Result<Bytes, Error>> + Send>>,
    vouched: Option<Digest>,
}

impl BlobStream {
    /// A stream that promises nothing about its bytes: an upload checks them itself.
    pub fn new(chunks: impl Stream<Item = Result<Bytes, Error>> + Send + 'static) -> Self {
        Self {
            chunks: Box::pin(chunks),
            vouched: None,
        }
    }

    /// A stream that fails, instead of yielding its last byte, unless its bytes hash to
    /// `digest`. Only verifiers inside kpromo build these: an HTTP upload stops reading at
    /// its `Content-Length`, so a check that waits for the end of the stream would come
    /// too late for it.
    pub(crate) fn vouched(chunks: impl Stream<Item = Result<Bytes, Error>> + Send + 'static, digest: Digest) -> Self {
        Self {
            chunks: Box::pin(chunks),
            vouched: Some(digest),
        }
    }

    /// Re-wraps other chunks (a relay of this stream's chunks, errors included) with the
    /// same promise as this stream.
    pub(crate) fn relay(&self, chunks: impl Stream<Item = Result<Bytes, Error>> + Send + 'static) -> Self {
        Self {
            chunks: Box::pin(chunks),
            vouched: self.vouched,
        }
    }

    /// The digest this stream checks before its last byte, if it does.
    pub fn vouched_digest(&self) -> Option<Digest> {
        self.vouched
    }
}

impl Stream for BlobStream {
    type Item = Result<Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Self::Item>> {
        self.chunks.as_mut().poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.chunks.size_hint()
    }
}

impl fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobStream")
            .field("vouched", &self.vouched)
            .finish_non_exhaustive()
    }
}

/// The outcome of a cross-repository mount attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountOutcome {
    /// The registry linked the blob; nothing to upload.
    Mounted,
    /// The registry refused (HTTP 202 or no mount support); upload the bytes instead.
    NotMounted,
}

/// The one interface between kpromo's pipeline and any registry.
///
/// Not-found is `Ok(None)`/`Ok(false)`, never an error: planning treats a missing
/// repository as empty. Every method is already rate-limited and retried by the
/// backend, so callers just call.
#[async_trait]
pub trait Registry: Send + Sync + fmt::Debug {
    /// The registry's display name for logs and errors (`127.0.0.1:5000`, `oci:/path`).
    fn name(&self) -> &str;

    /// Tags of `repo`, following pagination. `None` when the repository does not exist.
    async fn list_tags(&self, repo: &str) -> Result<Option<TagList>, Error>;

    /// Every repository in the registry (the catalog API), following pagination.
    async fn catalog(&self) -> Result<Vec<String>, Error>;

    /// HEAD a manifest: digest, media type and size, or `None` if absent.
    async fn head_manifest(&self, repo: &str, reference: &ManifestRef) -> Result<Option<Descriptor>, Error>;

    /// GET a manifest's exact bytes, digest-verified (against the reference when it is a
    /// digest, and against the registry's `Docker-Content-Digest`).
    async fn get_manifest(&self, repo: &str, reference: &ManifestRef) -> Result<Option<RawManifest>, Error>;

    /// PUT a manifest's exact bytes under a tag or its own digest. Everything it
    /// references must already exist in `repo`.
    async fn put_manifest(&self, repo: &str, reference: &ManifestRef, manifest: &RawManifest) -> Result<(), Error>;

    /// Deletes the manifest `digest` from `repo`, which removes every tag pointing at it;
    /// its blobs stay. `Ok(false)` when it was not there. Only a rollback calls this, and
    /// only for manifests the run itself created. An OCI layout drops it from
    /// `index.json` and keeps its bytes under `blobs/`, where a lookup by digest still
    /// finds them, as it finds the unlisted children of an index.
    async fn delete_manifest(&self, repo: &str, digest: &Digest) -> Result<bool, Error>;

    /// Whether `repo` has the blob (HEAD). Returns its size when present.
    async fn blob_size(&self, repo: &str, digest: &Digest) -> Result<Option<u64>, Error>;

    /// Stream a blob, verifying its digest while streaming.
    async fn get_blob(&self, repo: &str, digest: &Digest) -> Result<BlobStream, Error>;

    /// Upload a blob from a stream of `size` bytes; the registry must end up with
    /// exactly `digest` or the call fails. Whole layers are never buffered in memory.
    async fn put_blob(&self, repo: &str, digest: &Digest, size: u64, body: BlobStream) -> Result<(), Error>;

    /// Ask the registry to link a blob that already lives in `from_repo` of the same
    /// registry into `repo`.
    async fn mount_blob(&self, repo: &str, digest: &Digest, from_repo: &str) -> Result<MountOutcome, Error>;

    /// The referrers of `subject` in `repo` (OCI 1.1: manifests whose `subject` is it),
    /// only those whose artifact type is `artifact_type` when given. Empty when there
    /// are none.
    ///
    /// The default reads the tag-schema fallback index (see [`referrers`]); a backend
    /// with a native referrers list overrides it.
    async fn list_referrers(
        &self,
        repo: &str,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>, Error> {
        referrers::list_from_fallback(self, repo, subject, artifact_type, |_| Ok(())).await
    }

    /// Pushes `manifest`, which must name a `subject`, by digest into `repo`, and makes
    /// it findable with [`Registry::list_referrers`]. Idempotent: pushing a referrer
    /// that is already there and listed writes nothing.
    ///
    /// The default pushes it and adds it to the tag-schema fallback index.
    async fn put_referrer(&self, repo: &str, manifest: &RawManifest) -> Result<(), Error> {
        referrers::put_with_fallback(self, repo, manifest).await
    }

    /// Request counters for summaries and benchmarks.
    fn stats(&self) -> RegistryStats;
}

/// Per-registry counters exposed for the summary and benchmarks.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RegistryStats {
    /// Requests by "METHOD STATUS", e.g. "GET 200", "PUT 201", "HEAD 404".
    pub requests: std::collections::BTreeMap<String, u64>,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub retries: u64,
    /// Wall-clock time during which at least one request waited out a `Retry-After`.
    pub paused_ms: u64,
    /// The adaptive concurrency limit of a remote registry (none for a layout directory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<ConcurrencyStats>,
    /// How a remote registry's adaptive budget moved, and what throttling cost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throttling: Option<ThrottleStats>,
}

/// How a remote registry's concurrency limit moved during the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ConcurrencyStats {
    /// The limit at the end of the run.
    pub limit: usize,
    /// The highest and lowest the limit has been.
    pub peak: usize,
    pub lowest: usize,
    /// The most requests that held a slot at once.
    pub in_flight_peak: usize,
}

/// A remote registry's adaptive budget over the run (`remote::control`), weighted by time,
/// and what throttling and failures cost.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ThrottleStats {
    /// Requests per second allowed.
    pub rate_per_s: Spread,
    /// Requests allowed in flight.
    pub concurrency: Spread,
    /// The rate ceiling (`--registry-rate-limit` or the settings file), if any, and the
    /// time the rate spent at it.
    pub rate_ceiling: Option<f64>,
    pub at_rate_ceiling_ms: u64,
    /// The concurrency ceiling (`--registry-max-concurrency`) and the time spent at it.
    pub concurrency_ceiling: usize,
    pub at_concurrency_ceiling_ms: u64,
    /// Answers that said "too many" (429, or 503 with `Retry-After`).
    pub throttled: u64,
    /// Other signs of overload: 5xx, timeouts, resets, stalls; and of those, stalls (no
    /// answer or no body progress within the deadline).
    pub failed: u64,
    pub stalls: u64,
    /// Small reads (HEADs, manifests, tag lists) sent a second time because the first had
    /// no answer long after this host usually answers; the first answer was used.
    pub hedged: u64,
    /// Times the budget was lowered, and lowerings undone because the failures went on
    /// at the lower budget (noise, not load).
    pub decreases: u64,
    pub undone: u64,
    /// Fraction of answers learned as noise at the end of the run.
    pub noise: f64,
    /// Time requests spent waiting, summed over requests.
    pub waited_ms: Waits,
    /// The shared quota (`--registry-quota`, settings file) this host draws on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<String>,
}

/// The time-weighted minimum, median and maximum of a value over a run, and its last
/// value.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Spread {
    pub min: f64,
    pub median: f64,
    pub max: f64,
    pub last: f64,
}

/// Time requests spent waiting, by what they waited for, summed over requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Waits {
    /// For a concurrency slot.
    pub slot: u64,
    /// For their slot in the host's rate.
    pub rate: u64,
    /// For their slot in a shared quota.
    pub quota: u64,
    /// Before a retry: `Retry-After` or backoff.
    pub retry: u64,
}
