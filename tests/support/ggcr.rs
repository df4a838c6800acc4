//! go-containerregistry's registry (`pkg/registry`, as Debian packages it, built by
//! scripts/ggcr-registry.sh) on a free 127.0.0.1 port: the suite's registry with the OCI 1.1
//! referrers API, which distribution 2.8 lacks. It keeps manifests and blobs in memory, so an
//! instance lives and dies with its process. How it departs from the spec (and from
//! distribution) is pinned down by `ggcr_registry_serves_referrers_with_its_quirks` in
//! tests/e2e/registry_harness.rs and docs/decisions/0002-referrers-test-registry.md.
use std::process::Command;

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
        let binary = super::test_cache_dir().join("ggcr-registry");
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
        let (child, port) = ChildGuard::spawn_reporting_port("ggcr-registry", command, &log, LISTENING);
        GgcrRegistry {
            _process: child,
            port,
            _log_dir: dir,
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
