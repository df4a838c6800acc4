//! The test harness: real CNCF distribution instances, a token server, fault fronts, and
//! an image generator that pushes with its own minimal HTTP calls, so results never depend
//! on the client under test. Checks go through `skopeo`, an independent client.
//!
//! The e2e test binary includes all of it (`tests/e2e/main.rs`); the offline binary only
//! the image generator, `images.rs` (`tests/offline/main.rs`); the mocked binary only the
//! log capture, `logs.rs`; `examples/bench_client.rs` the registries, pusher and client
//! glue.
//!
//! ```ignore
//! let staging = TestRegistry::start(RegistryOptions::plain());     // or basic(), token(), tls()
//! let mirror = TestRegistry::start(RegistryOptions::plain());
//! let index = Index::multi_arch(Format::Oci, 1, &["amd64", "arm64/v8"], Some(&Blob::random(7, 1 << 20)));
//! staging.pusher().push_index("proj/img", &index, &["v1", "latest"]).await; // children first
//! let proxy = FaultProxy::start(mirror.port());                       // faults, request counts
//! proxy.set_rules(vec![Rule::new(Some("PUT"), "/manifests/", Action::Status { status: 503, retry_after: None }, Times::FirstPerRequest(1))]);
//! // ... run kpromo against staging.host() and proxy.host() ...
//! assert_eq!(mirror.skopeo_raw("proj/img:v1").map(|b| images::sha256_digest(&b)), Some(index.digest.clone()));
//! assert_eq!(proxy.count("GET", "^/v2/proj/img/blobs/"), 0);
//! ```

pub mod client;
pub mod cosign;
pub mod fault_proxy;
pub mod ggcr;
pub mod hostile;
pub mod http_server;
pub mod images;
pub mod kube_job;
pub mod logs;
pub mod nginx;
pub mod pki;
pub mod process;
pub mod push;
pub mod referrers;
pub mod registry;
pub mod sigstore_fake;
pub mod skopeo;
pub mod throttle;
pub mod token_server;
pub mod trust_tools;
pub mod verifiers;
pub mod world;

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use fault_proxy::{Action, FaultProxy, Rule, Times};
pub use images::{Format, Image, Index};
pub use nginx::RateLimitFront;
pub use push::Pusher;
pub use registry::{RegistryOptions, TestRegistry};

/// Fails the test (never skips it) when a system tool the end-to-end tests need is absent.
pub fn require_tool(name: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{name}` is not installed: run scripts/test.sh, which installs docker-registry, skopeo, \
         nginx-light, apache2-utils and openssl"
    );
}

/// Where the scripts that install test tools (scripts/ggcr-registry.sh, scripts/trust-tools.sh)
/// cache them: `$KPROMO_TEST_CACHE`, else `$XDG_CACHE_HOME/kpromo-test`, else
/// `$HOME/.cache/kpromo-test` (the scripts' own rule).
pub fn test_cache_dir() -> PathBuf {
    let set = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    set("KPROMO_TEST_CACHE")
        .map(PathBuf::from)
        .or_else(|| set("XDG_CACHE_HOME").map(|dir| Path::new(&dir).join("kpromo-test")))
        .or_else(|| set("HOME").map(|home| Path::new(&home).join(".cache/kpromo-test")))
        .expect("neither KPROMO_TEST_CACHE, XDG_CACHE_HOME nor HOME is set: cannot find the test tool cache")
}

/// A port that was free a moment ago on 127.0.0.1. Callers retry on a lost race.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port on 127.0.0.1");
    listener
        .local_addr()
        .expect("local address of ephemeral listener")
        .port()
}

/// A fresh directory under `/dev/shm` (tmpfs: registries are disk-bound otherwise),
/// removed on drop.
pub fn shm_tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/dev/shm")
        .expect("create a temporary directory under /dev/shm")
}

/// Bounds an async test step: a hang becomes a failure naming the step, not a stuck CI job.
pub async fn within<T>(seconds: u64, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(seconds), fut).await {
        Ok(value) => value,
        Err(_) => panic!("{what} did not finish within {seconds} s"),
    }
}

/// rustls needs a process-wide crypto provider; the crate uses ring.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A plain HTTP client for harness checks (the crate's TLS stack needs a provider first).
pub fn http_client() -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::new()
}

/// Peak resident set size of this process so far, in bytes (`VmHWM`).
pub fn peak_rss_bytes() -> u64 {
    proc_status_kb("VmHWM:") * 1024
}

/// Current resident set size of this process, in bytes (`VmRSS`).
pub fn rss_bytes() -> u64 {
    proc_status_kb("VmRSS:") * 1024
}

/// Resets `VmHWM` to the current RSS, so a later [`peak_rss_bytes`] measures only what
/// happened in between (Linux `clear_refs` value 5).
pub fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").expect("reset peak RSS via /proc/self/clear_refs");
}

/// User + system CPU seconds used so far by process `pid` ("self" for this one), from
/// `/proc/PID/stat` (clock ticks of 1/100 s, the Linux default `USER_HZ`).
pub fn cpu_seconds(pid: &str) -> f64 {
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_else(|e| panic!("read /proc/{pid}/stat: {e}"));
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<u64> = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse().ok())
        .collect();
    fields.iter().sum::<u64>() as f64 / 100.0
}

fn proc_status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} missing from /proc/self/status"))
}
