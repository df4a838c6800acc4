//! A fake Fulcio v2 + Rekor v1 on a free 127.0.0.1 port (tests/oracles/fake-sigstore.js:
//! sigstore-js's own mocks served over HTTP, with what real Fulcio and Rekor do that the mocks do
//! not), for keyless signing tests. It writes its trust material (a sigstore `trusted_root.json`,
//! the Fulcio root and the Rekor key as PEM) into a directory of its own, and counts what it
//! accepted, so a test can check that a rerun adds no log entry.
//!
//! ```ignore
//! let fake = SigstoreFake::start();
//! let token = identity_token("https://oidc.example", "promoter@example.com", 600);
//! // ... kpromo --fulcio-url fake.url() --rekor-url fake.url() --trusted-root fake.trusted_root() ...
//! assert_eq!(fake.rekor_entries().len(), 4);
//! ```
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::process::ChildGuard;
use super::trust_tools::{TrustTools, Verdict, verdict};

/// What the fake logs once its socket is bound, followed by the port it got.
const LISTENING: &str = "fake-sigstore listening on 127.0.0.1:";

/// One running fake, stopped on drop. Field order matters: the process stops before its
/// directory goes.
#[derive(Debug)]
pub struct SigstoreFake {
    _process: ChildGuard,
    port: u16,
    tools: TrustTools,
    dir: tempfile::TempDir,
}

impl SigstoreFake {
    /// Starts a fake with a fresh CA, CT log and Rekor key, and waits until it reports its port
    /// (its trust material is written by then).
    pub fn start() -> SigstoreFake {
        let tools = TrustTools::locate();
        let dir = super::shm_tempdir("kpromo-sigstore-");
        let mut command = tools.node("fake-sigstore.js");
        command.arg("--dir").arg(dir.path()).args(["--addr", "127.0.0.1:0"]);
        let log = dir.path().join("fake-sigstore.log");
        let (process, port) = ChildGuard::spawn_reporting_port("fake-sigstore", command, &log, LISTENING);
        SigstoreFake {
            _process: process,
            port,
            tools,
            dir,
        }
    }

    /// `http://127.0.0.1:PORT`: the base URL of both Fulcio (`/api/v2/signingCert`) and Rekor
    /// (`/api/v1/log/entries`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The sigstore trusted root (Fulcio CA, CT log key, Rekor key) for sigstore verifiers.
    pub fn trusted_root(&self) -> PathBuf {
        self.dir.path().join("trusted_root.json")
    }

    /// The flags of a keyless kpromo run against this fake with the identity token in
    /// `token`, signing under `registry.example` (the tests' one public name for all mirrors).
    pub fn keyless_args(&self, token: &std::path::Path) -> Vec<String> {
        let (url, root) = (self.url(), self.trusted_root());
        [
            "--identity-token",
            token.to_str().expect("utf-8"),
            "--fulcio-url",
            &url,
            "--rekor-url",
            &url,
            "--trusted-root",
            root.to_str().expect("utf-8"),
            "--signing-identity-rewrite",
            "prod=registry.example",
        ]
        .map(str::to_string)
        .to_vec()
    }

    /// The Fulcio root certificate, PEM (the whole chain: the fake has no intermediate).
    pub fn fulcio_root_pem(&self) -> PathBuf {
        self.dir.path().join("fulcio_root.pem")
    }

    /// The Rekor public key, PEM, which signs every entry's SET.
    pub fn rekor_public_key_pem(&self) -> PathBuf {
        self.dir.path().join("rekor_pub.pem")
    }

    /// The CT log's public key, PEM: a key the fake holds that is not Rekor's.
    pub fn ctfe_public_key_pem(&self) -> PathBuf {
        self.dir.path().join("ctfe_pub.pem")
    }

    /// Every log entry accepted so far (`uuid`, `kind`, `logIndex`, `integratedTime`), oldest
    /// first. An entry refused as a duplicate (409) is not counted.
    pub fn rekor_entries(&self) -> Vec<Value> {
        read_lines(&self.dir.path().join("rekor-entries.jsonl"))
    }

    /// Every signing certificate issued so far (`subject`, `issuer`, `time`), oldest first.
    pub fn certificates_issued(&self) -> Vec<Value> {
        read_lines(&self.dir.path().join("fulcio-certificates.jsonl"))
    }

    /// Signs `input` keylessly with sigstore-js's own signer against this fake, writing a sigstore
    /// bundle to `bundle`: a DSSE envelope when `payload_type` is given, else a message signature.
    /// Artifacts made this way owe nothing to kpromo's signing code.
    pub fn sign_with_sigstore_js(
        &self,
        token: &str,
        input: &Path,
        payload_type: Option<&str>,
        bundle: &Path,
    ) -> Verdict {
        let token_file = tempfile::NamedTempFile::new_in(self.dir.path()).expect("token file");
        std::fs::write(token_file.path(), token).expect("write token file");
        let mut command = self.tools.node("sigstore-js.js");
        command
            .args(["sign", "--fulcio", &self.url(), "--rekor", &self.url()])
            .arg("--token")
            .arg(token_file.path())
            .arg("--in")
            .arg(input)
            .arg("--out")
            .arg(bundle);
        if let Some(payload_type) = payload_type {
            command.args(["--payload-type", payload_type]);
        }
        verdict("sigstore-js sign", command)
    }
}

/// An OIDC identity token as Fulcio reads it: issuer, `sub` and a verified `email`, audience
/// `sigstore`, expiring `lifetime_seconds` from now (negative: already expired). Unsigned
/// (`alg: none`): the fake cannot check token signatures, having no OIDC provider.
pub fn identity_token(issuer: &str, email: &str, lifetime_seconds: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    let header = json!({"alg": "none", "typ": "JWT"});
    let claims = json!({
        "iss": issuer,
        "sub": email,
        "email": email,
        "email_verified": true,
        "aud": "sigstore",
        "iat": now,
        "exp": now + lifetime_seconds,
    });
    let part = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
    format!("{}.{}.", part(&header), part(&claims))
}

fn read_lines(file: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{}: {e}: {line}", file.display())))
        .collect()
}
