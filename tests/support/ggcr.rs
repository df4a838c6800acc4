//! go-containerregistry's registry (`pkg/registry`, as Debian packages it, built by
//! scripts/ggcr-registry.sh) on a free 127.0.0.1 port: the suite's registry with the OCI 1.1
//! referrers API, which distribution 2.8 lacks. It keeps manifests and blobs in memory, so an
//! instance lives and dies with its process. How it departs from the spec (and from
//! distribution) is pinned down by `ggcr_registry_serves_referrers_with_its_quirks` in
//! tests/e2e/registry_harness.rs and docs/decisions/0002-referrers-test-registry.md.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::process::ChildGuard;

/// What `ggcr-registry` logs once its socket is bound, followed by the port it got.
const LISTENING: &str = "ggcr-registry listening on 127.0.0.1:";

/// One running `ggcr-registry`, stopped on drop. Field order matters: the process stops
/// before its log directory goes.
#[derive(Debug)]
pub struct GgcrRegistry {
    _process: ChildGuard,
    port: u16,
    _log_dir: tempfile::TempDir,
}

impl GgcrRegistry {
    /// Starts a registry and waits until it reports its port (it is serving from then on).
    pub fn start() -> GgcrRegistry {
        let binary = binary();
        assert!(
            binary.is_file(),
            "{} is missing: run scripts/ggcr-registry.sh (scripts/test.sh runs it), which builds \
             go-containerregistry's registry from Debian packages",
            binary.display()
        );
        let dir = super::shm_tempdir("kpromo-ggcr-");
        let log = dir.path().join("ggcr-registry.log");
        let mut command = Command::new(&binary);
        // Port 0: the registry binds a free port itself and reports it, so no other process
        // can take the port between our choosing it and the registry binding it.
        command.args(["-addr", "127.0.0.1:0"]);
        let mut child = ChildGuard::spawn("ggcr-registry", command, &log);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(port) = reported_port(&log) {
                return GgcrRegistry {
                    _process: child,
                    port,
                    _log_dir: dir,
                };
            }
            if let Some(exit) = child.exited() {
                panic!("ggcr-registry did not start: {exit}");
            }
            assert!(
                Instant::now() < deadline,
                "ggcr-registry reported no port within 15 s: {}",
                child.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`: the registry name to hand to the client under test.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT` (the registry has no TLS and no authentication).
    pub fn url(&self) -> String {
        format!("http://{}", self.host())
    }

    /// A pusher for fixtures: the harness's own client, as for [`super::TestRegistry`].
    pub fn pusher(&self) -> super::push::Pusher {
        super::push::Pusher::new(&self.url(), None, None)
    }
}

/// Where scripts/ggcr-registry.sh leaves the binary: `$KPROMO_TEST_CACHE`, else
/// `$XDG_CACHE_HOME/kpromo-test`, else `$HOME/.cache/kpromo-test` (the script's own rule).
fn binary() -> PathBuf {
    let set = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    let cache = set("KPROMO_TEST_CACHE")
        .map(PathBuf::from)
        .or_else(|| set("XDG_CACHE_HOME").map(|dir| Path::new(&dir).join("kpromo-test")))
        .or_else(|| set("HOME").map(|home| Path::new(&home).join(".cache/kpromo-test")))
        .expect("neither KPROMO_TEST_CACHE, XDG_CACHE_HOME nor HOME is set: cannot find ggcr-registry");
    cache.join("ggcr-registry")
}

/// The port from the registry's "listening" line, once that line is complete.
fn reported_port(log: &Path) -> Option<u16> {
    let text = std::fs::read_to_string(log).ok()?;
    let (_, rest) = text.split_once(LISTENING)?;
    let (port, _) = rest.split_once('\n')?;
    port.trim().parse().ok()
}
