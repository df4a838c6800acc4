//! Registry access: one trait, two kinds of backend.
//!
//! Like go-containerregistry, everything above this module sees a registry only through
//! [`Registry`]: remote OCI distribution registries ([`remote`]) and OCI image-layout
//! directories ([`oci_layout`]) are interchangeable. Repository names passed to the trait
//! are full paths inside the registry host (`k8s-artifacts-prod/images/kubernetes/pause`),
//! already including any path prefix from a manifest's registry name.
use crate::sync::lock;
use std::fmt;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;

use crate::digest::Digest;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub mod media;
pub mod oci_layout;
pub mod reference;
pub mod remote;

/// Transport settings for every registry a run touches.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientOptions {
    /// Requests per second allowed per registry host.
    pub rate_limit: u32,
    /// Requests that may be sent at once before the rate applies.
    pub burst: u32,
    /// Cap on requests in flight per registry host; the adaptive limit starts at
    /// `min(8, cap)` (see `remote::concurrency`).
    pub max_concurrency: usize,
    /// Extra PEM CA bundle trusted for TLS.
    pub ca_file: Option<PathBuf>,
    /// Hosts reached over plain HTTP (loopback hosts always are).
    pub insecure_registries: Vec<String>,
    /// Directory holding the docker `config.json` to read credentials from; `None` means
    /// `$DOCKER_CONFIG`, then `~/.docker`. Tests set it per client instead of the
    /// process-global environment.
    pub docker_config: Option<PathBuf>,
    /// Time allowed to establish a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Time allowed between sending the last byte of a request and the response headers.
    pub response_timeout: Duration,
    /// Time a request or response body may go without progress before it is an error.
    pub idle_timeout: Duration,
    /// Retries of one request after a transient failure (429, 5xx, timeout, reset).
    pub max_retries: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            rate_limit: 50,
            burst: 16,
            max_concurrency: 32,
            ca_file: None,
            insecure_registries: Vec::new(),
            docker_config: None,
            connect_timeout: Duration::from_secs(30),
            // Registries may take a while to commit a large upload after its last byte.
            response_timeout: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(120),
            max_retries: 6,
        }
    }
}

/// A manifest registry name resolved to a backend: `host[:port]/prefix` (remote) or
/// `oci:PATH` / `oci-layout://PATH` (OCI layout directory). Image names are appended to
/// `prefix` to get repository paths.
#[derive(Debug, Clone)]
pub struct RepoRoot {
    pub registry: Arc<dyn Registry>,
    /// Path prefix inside the registry, without leading or trailing `/` (may be empty).
    pub prefix: String,
}

impl RepoRoot {
    /// The repository path of `image` under this root.
    pub fn repo(&self, image: &str) -> String {
        if self.prefix.is_empty() {
            image.to_string()
        } else {
            format!("{}/{image}", self.prefix)
        }
    }
}

/// Opens registries by manifest name, sharing one backend (one connection pool, one
/// rate-limit gate) per registry host or layout directory.
pub struct Registries {
    options: ClientOptions,
    http: reqwest::Client,
    remotes: Mutex<HashMap<String, Arc<remote::RemoteRegistry>>>,
    layouts: Mutex<HashMap<PathBuf, Arc<dyn Registry>>>,
}

impl fmt::Debug for Registries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registries")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Registries {
    /// Builds the shared HTTP client (reads `ca_file` now, so a bad CA fails early).
    pub fn new(options: ClientOptions) -> Result<Self, Error> {
        let http = remote::build_client(&options)?;
        Ok(Self {
            options,
            http,
            remotes: Mutex::new(HashMap::new()),
            layouts: Mutex::new(HashMap::new()),
        })
    }

    /// Resolves a manifest registry name such as
    /// `us-central1-docker.pkg.dev/k8s-artifacts-prod/images/kubernetes` or `oci:./mirror`.
    pub fn open(&self, name: &str) -> Result<RepoRoot, Error> {
        match reference::RegistryName::parse(name)? {
            reference::RegistryName::Remote { host, prefix } => Ok(RepoRoot {
                registry: self.remote(&host)?,
                prefix,
            }),
            reference::RegistryName::Layout { path } => Ok(RepoRoot {
                registry: self.layout(&path)?,
                prefix: String::new(),
            }),
        }
    }

    /// One layout backend per directory name, like one remote backend per host.
    fn layout(&self, path: &std::path::Path) -> Result<Arc<dyn Registry>, Error> {
        let mut layouts = lock(&self.layouts);
        if let Some(l) = layouts.get(path) {
            return Ok(l.clone());
        }
        let backend: Arc<dyn Registry> = Arc::new(oci_layout::open(path)?);
        layouts.insert(path.to_path_buf(), backend.clone());
        Ok(backend)
    }

    /// The remote backend for `host` (`host[:port]`), with the operations that are not on
    /// the [`Registry`] trait (ping, referrers).
    pub fn remote(&self, host: &str) -> Result<Arc<remote::RemoteRegistry>, Error> {
        let mut remotes = lock(&self.remotes);
        if let Some(r) = remotes.get(host) {
            return Ok(r.clone());
        }
        let gate = Arc::new(remote::Gate::new(
            self.options.rate_limit,
            self.options.burst,
            self.options.max_concurrency,
        ));
        let backend = Arc::new(remote::RemoteRegistry::new(
            host,
            self.http.clone(),
            gate,
            &self.options,
        )?);
        remotes.insert(host.to_string(), backend.clone());
        Ok(backend)
    }

    /// Counters of every backend opened so far, by registry name.
    pub fn stats(&self) -> Vec<(String, RegistryStats)> {
        let remotes = lock(&self.remotes);
        let layouts = lock(&self.layouts);
        let mut out: Vec<(String, RegistryStats)> = remotes
            .iter()
            .map(|(k, r)| (k.clone(), r.stats()))
            .chain(layouts.values().map(|l| (l.name().to_string(), l.stats())))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

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
    pub media_type: String,
    pub size: u64,
}

/// A manifest exactly as stored: never re-serialise these, or the digest changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawManifest {
    pub media_type: String,
    pub bytes: Bytes,
    /// Always `Digest::of(&bytes)`; backends verify it on the way in and out.
    pub digest: Digest,
}

impl RawManifest {
    pub fn new(media_type: impl Into<String>, bytes: Bytes) -> Self {
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
    pub media_type: String,
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

    /// Request counters for summaries and benchmarks.
    fn stats(&self) -> RegistryStats;
}

/// Per-registry counters exposed for the summary and benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RegistryStats {
    /// Requests by "METHOD STATUS", e.g. "GET 200", "PUT 201", "HEAD 404".
    pub requests: std::collections::BTreeMap<String, u64>,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub retries: u64,
    pub paused_ms: u64,
    /// The adaptive concurrency limit of a remote registry (none for a layout directory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<ConcurrencyStats>,
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

/// Registry errors. The `Display` text always names the registry and the operation,
/// and never contains credentials.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{registry}: {operation}: authentication failed ({status}): {message}")]
    Unauthorized {
        registry: String,
        operation: String,
        status: u16,
        message: String,
    },
    #[error("{registry}: {operation}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        registry: String,
        operation: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{registry}: {operation}: HTTP {status}: {message}")]
    Status {
        registry: String,
        operation: String,
        status: u16,
        message: String,
    },
    #[error("{registry}: {operation}: {message}")]
    Transport {
        registry: String,
        operation: String,
        message: String,
    },
    #[error("{registry}: {operation}: invalid response: {message}")]
    Protocol {
        registry: String,
        operation: String,
        message: String,
    },
    #[error("{registry}: {operation}: {source}")]
    Io {
        registry: String,
        operation: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid registry reference {reference:?}: {message}")]
    InvalidReference { reference: String, message: String },
}

impl Error {
    /// Whether retrying could help: 429, 5xx, timeouts, resets. Auth and not-found never.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Status { status, .. } => *status == 429 || *status == 408 || *status >= 500,
            Error::Transport { .. } => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_backend_per_host_and_per_layout_directory() {
        let registries = Registries::new(ClientOptions::default()).unwrap();
        let a = registries
            .open("us-central1-docker.pkg.dev/k8s-artifacts-prod/images")
            .unwrap();
        let b = registries.open("us-central1-docker.pkg.dev/other").unwrap();
        assert!(Arc::ptr_eq(&a.registry, &b.registry), "one host, one gate and pool");
        assert_eq!(a.repo("kubernetes/pause"), "k8s-artifacts-prod/images/kubernetes/pause");
        assert_eq!(a.registry.name(), "us-central1-docker.pkg.dev");

        let dir = tempfile::tempdir().unwrap();
        let name = format!("oci:{}", dir.path().display());
        let l1 = registries.open(&name).unwrap();
        let l2 = registries.open(&name).unwrap();
        assert!(Arc::ptr_eq(&l1.registry, &l2.registry));
        assert_eq!(l1.repo("x"), "x");
        assert!(!Arc::ptr_eq(&a.registry, &l1.registry));

        let names: Vec<String> = registries.stats().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(registries.open("not a registry").is_err());
    }

    #[test]
    fn an_unreadable_ca_file_fails_early() {
        let options = ClientOptions {
            ca_file: Some("/nonexistent/kpromo-ca.pem".into()),
            ..ClientOptions::default()
        };
        let err = Registries::new(options).unwrap_err();
        assert!(err.to_string().contains("kpromo-ca.pem"), "{err}");
    }
}
