//! The independent verifiers and fake Fulcio/Rekor that scripts/trust-tools.sh installs into
//! the test cache (docs/decisions/0003-trust-test-oracles.md), and the programs of ours that
//! drive them (tests/oracles/). Tests fail, never skip, when the tools are missing or stale.
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sha2::{Digest as _, Sha256};

/// The installed tools, each checked against the recipe the script would install today.
#[derive(Debug, Clone)]
pub struct TrustTools {
    /// The wrapper that runs Debian trixie's skopeo 1.18.
    pub skopeo: PathBuf,
    node_modules: PathBuf,
    python: PathBuf,
    /// tests/oracles: the fake server and the verifier scripts.
    pub oracles: PathBuf,
}

impl TrustTools {
    pub fn locate() -> TrustTools {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let oracles = repo.join("tests/oracles");
        let tools = super::test_cache_dir().join("trust-tools");
        // The script's rule (`recipe_of`): its own text, the library it sources, the pin file.
        let recipe_of = |pins: Option<&str>| {
            let mut hasher = Sha256::new();
            let inputs = ["scripts/trust-tools.sh", "scripts/lib/debian-apt.sh"];
            for file in inputs.iter().map(|f| repo.join(f)).chain(pins.map(|p| oracles.join(p))) {
                hasher.update(std::fs::read(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display())));
            }
            format!("recipe {}", hex::encode(hasher.finalize()))
        };
        for (part, pins) in [
            ("skopeo", None),
            ("node", Some("package-lock.json")),
            ("venv", Some("requirements.txt")),
        ] {
            let stamp = tools.join(format!("{part}.recipe"));
            let installed = std::fs::read_to_string(&stamp).unwrap_or_default();
            assert_eq!(
                installed.lines().next().unwrap_or("(not installed)"),
                recipe_of(pins),
                "the trust test tools ({part}) in {} are missing or stale: run scripts/trust-tools.sh \
                 (scripts/test.sh runs it), which installs skopeo 1.18, sigstore-js and the Python \
                 sigstore/in-toto libraries",
                tools.display()
            );
        }
        TrustTools {
            skopeo: tools.join("skopeo/skopeo"),
            node_modules: tools.join("node/node_modules"),
            python: tools.join("venv/bin/python"),
            oracles,
        }
    }

    /// `node tests/oracles/SCRIPT` with the private node_modules (our scripts are CommonJS, which
    /// honours NODE_PATH).
    pub fn node(&self, script: &str) -> Command {
        super::require_tool("node");
        let mut command = Command::new("node");
        command
            .env("NODE_PATH", &self.node_modules)
            .arg(self.oracles.join(script))
            .stdin(Stdio::null());
        command
    }

    /// `python tests/oracles/SCRIPT` in the private venv.
    pub fn python(&self, script: &str) -> Command {
        let mut command = Command::new(&self.python);
        command.arg(self.oracles.join(script)).stdin(Stdio::null());
        command
    }

    /// `bash tests/oracles/SCRIPT`.
    pub fn bash(&self, script: &str) -> Command {
        let mut command = Command::new("bash");
        command.arg(self.oracles.join(script)).stdin(Stdio::null());
        command
    }
}

/// A verifier's verdict in its own words: `Ok(what it accepted)`, or `Err(why it refused)`.
pub type Verdict = Result<String, String>;

/// Runs an oracle script whose exit status is 0 for accepted, 1 for refused, and anything else
/// for a fault of the caller (bad usage, unreadable input), which fails the test instead of
/// passing as a refusal.
pub fn verdict(what: &str, mut command: Command) -> Verdict {
    let output: Output = command
        .output()
        .unwrap_or_else(|e| panic!("run {what}: {e} (run scripts/trust-tools.sh)"));
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
    match output.status.code() {
        Some(0) => Ok(stdout),
        Some(1) => Err(stderr),
        _ => panic!("{what} could not run ({}): {stderr}", output.status),
    }
}
