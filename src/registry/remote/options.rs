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
