//! Glue between harness registries and the client under test (`kpromo::registry`).
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use bytes::Bytes;
use futures_util::StreamExt;
use kpromo::digest::Digest;
use kpromo::registry::{BlobStream, ClientOptions, Error, Registries, Registry, RepoRoot};

use super::registry::TestRegistry;

/// `"sha256:…"` as the client's digest type.
pub fn digest(s: &str) -> Digest {
    s.parse().unwrap_or_else(|e| panic!("bad digest {s}: {e:?}"))
}

/// Client options trusting the registry's test CA, if it has one.
pub fn options_for(registry: &TestRegistry) -> ClientOptions {
    let mut options = ClientOptions::default();
    if let Some(ca) = registry.ca_cert() {
        options.ca_file = Some(ca.to_path_buf());
    }
    options
}

/// Opens `host[/prefix]` with the client under test; keep the `Registries` alive with it.
pub fn open(name: &str, options: ClientOptions) -> (Registries, RepoRoot) {
    let registries = Registries::new(options).unwrap_or_else(|e| panic!("Registries::new: {e}"));
    let root = registries.open(name).unwrap_or_else(|e| panic!("open {name}: {e}"));
    (registries, root)
}

/// Reads a whole (small) blob through the client.
pub async fn read_blob(registry: &dyn Registry, repo: &str, digest: &Digest) -> Result<Vec<u8>, Error> {
    let mut stream = registry.get_blob(repo, digest).await?;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

/// A blob stream over in-memory bytes, for `put_blob`.
pub fn stream_of(bytes: Bytes) -> BlobStream {
    Box::pin(futures_util::stream::iter([Ok(bytes)]))
}

/// Copies a blob between registries with the client: `get_blob` streamed into `put_blob`.
pub async fn copy_blob(
    from: &dyn Registry,
    from_repo: &str,
    to: &dyn Registry,
    to_repo: &str,
    digest: &Digest,
    size: u64,
) -> Result<(), Error> {
    let stream = from.get_blob(from_repo, digest).await?;
    to.put_blob(to_repo, digest, size, stream).await
}

/// A process-wide docker config directory (`$DOCKER_CONFIG`) that tests add registry
/// credentials to, the way a user's `docker login` would.
pub struct DockerConfig {
    dir: tempfile::TempDir,
    auths: Mutex<serde_json::Map<String, serde_json::Value>>,
}

impl DockerConfig {
    /// The shared config; the first call points `$DOCKER_CONFIG` at it.
    pub fn shared() -> &'static DockerConfig {
        static CONFIG: OnceLock<DockerConfig> = OnceLock::new();
        CONFIG.get_or_init(|| {
            let config = DockerConfig {
                dir: super::shm_tempdir("kpromo-docker-config-"),
                auths: Mutex::new(serde_json::Map::new()),
            };
            config.write(&serde_json::Map::new());
            // SAFETY: set once, before any client reads it; the only other writer of the
            // environment in these test crates is this initialiser.
            unsafe { std::env::set_var("DOCKER_CONFIG", config.dir.path()) };
            config
        })
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Adds (or replaces) `auths[host]` and rewrites config.json atomically.
    pub fn login(&self, host: &str, user: &str, password: &str) {
        use base64::Engine;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let mut auths = self.auths.lock().expect("docker config lock");
        auths.insert(host.to_string(), serde_json::json!({ "auth": auth }));
        self.write(&auths);
    }

    /// Adds `auths[host]` with an OAuth2 refresh token (`identitytoken`), as `docker login`
    /// stores for registries that issue them.
    pub fn login_identity_token(&self, host: &str, token: &str) {
        let mut auths = self.auths.lock().expect("docker config lock");
        auths.insert(host.to_string(), serde_json::json!({ "identitytoken": token }));
        self.write(&auths);
    }

    fn write(&self, auths: &serde_json::Map<String, serde_json::Value>) {
        let body = serde_json::json!({ "auths": auths }).to_string();
        let tmp = self.dir.path().join("config.json.tmp");
        std::fs::write(&tmp, body).expect("write docker config");
        std::fs::rename(&tmp, self.dir.path().join("config.json")).expect("install docker config");
    }
}

/// Logs the registry's credentials into the shared docker config (no-op without auth),
/// and returns client options for it.
pub fn login_options(registry: &TestRegistry) -> ClientOptions {
    login_options_as(registry, &registry.host())
}

/// [`login_options`] for a registry reached as `host` (e.g. through a fault proxy).
pub fn login_options_as(registry: &TestRegistry, host: &str) -> ClientOptions {
    let config = DockerConfig::shared();
    if let Some((user, password)) = registry.credentials() {
        config.login(host, user, password);
    }
    options_for(registry)
}
