//! Transport settings of the remote backend.
use std::path::PathBuf;
use std::time::Duration;

use super::hosts::{HostRule, Quota};

/// Transport settings for every registry a run touches. `hosts` rules (the settings file)
/// override the run-wide values for the hosts they match (`ClientOptions::for_host`).
#[derive(Debug, Clone, PartialEq)]
pub struct ClientOptions {
    /// Ceiling on requests per second per registry host; `None`: no ceiling. The
    /// controller starts at 50/s (or the ceiling) and searches (`remote::control`).
    pub rate_limit: Option<u32>,
    /// Requests that may be sent at once ahead of the rate.
    pub burst: u32,
    /// Ceiling on requests in flight per registry host; the adaptive limit starts at
    /// `min(8, ceiling)`.
    pub max_concurrency: usize,
    /// Per-host settings, in order (the settings file's `hosts`).
    pub hosts: Vec<HostRule>,
    /// Budgets shared by several hosts (`--registry-quota`, the settings file's `quotas`).
    pub quotas: Vec<Quota>,
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
    /// The longest wait between sending the last byte of a request and the response
    /// headers. The deadline applied adapts to the host's latency (at least 1 s, at most
    /// this), and an upload's grows with its size at `min_transfer_rate`.
    pub response_timeout: Duration,
    /// Time a request or response body may go without progress before it is a stall.
    pub idle_timeout: Duration,
    /// Bytes per second a blob body must average; slower is a stall.
    pub min_transfer_rate: u64,
    /// Retries of one request after a failure (5xx, timeout, reset, stall).
    pub max_retries: usize,
    /// How long a throttled request (429, 503 with `Retry-After`) is retried before it
    /// fails.
    pub retry_timeout: Duration,
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
            rate_limit: None,
            burst: 16,
            max_concurrency: 32,
            hosts: Vec::new(),
            quotas: Vec::new(),
            ca_file: None,
            insecure_registries: Vec::new(),
            docker_config: None,
            connect_timeout: Duration::from_secs(30),
            response_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(30),
            // 100 KB/s: a 1 GB layer may take 3 hours; a stalled one is caught by the idle
            // timeout long before.
            min_transfer_rate: 100_000,
            // At 27 % of requests failing at random, 9 attempts leave one request in 10^5
            // failed; a dead host still fails within a minute or so per request.
            max_retries: 8,
            // Go kpromo's retry budget is 12.5 minutes.
            retry_timeout: Duration::from_secs(15 * 60),
            limits: ReadLimits::default(),
            listing_progress: Duration::from_secs(10),
        }
    }
}
