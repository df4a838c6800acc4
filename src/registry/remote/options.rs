//! Transport settings of the remote backend.
use std::path::PathBuf;
use std::time::Duration;

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
    /// Caps on what one listing may read.
    pub limits: ReadLimits,
    /// How often a listing still running says so in the log.
    pub listing_progress: Duration,
}

/// Caps on what a listing may read from a registry: a registry whose pages never end, or
/// that answers with a huge list, meets a clear error naming the cap (and the flag that
/// raises it) instead of using unbounded time and memory. Defaults sit far above the
/// largest real repositories and far below what hurts a CI machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// Pages of one tags list (`--registry-max-tag-pages`).
    pub tag_pages: usize,
    /// Entries (tags, and Google's digests and child repositories) of one tags list
    /// (`--registry-max-tags`).
    pub tags: usize,
    /// Pages of the catalog, of up to 1000 repositories each (`--registry-max-catalog-pages`).
    pub catalog_pages: usize,
    /// Bytes of one referrers list (`--registry-max-referrers-bytes`).
    pub referrers_bytes: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        Self {
            tag_pages: 1_000,
            tags: 1_000_000,
            catalog_pages: 1_000,
            referrers_bytes: 4 << 20,
        }
    }
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
            limits: ReadLimits::default(),
            listing_progress: Duration::from_secs(10),
        }
    }
}
