//! Glue between harness registries and the client under test (`kpromo::registry`).
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::StreamExt;
use kpromo::digest::Digest;
use kpromo::registry::{BlobStream, ClientOptions, Error, Registries, Registry, RepoRoot};

use super::registry::TestRegistry;

/// `"sha256:…"` as the client's digest type.
pub fn digest(s: &str) -> Digest {
    s.parse().unwrap_or_else(|e| panic!("bad digest {s}: {e:?}"))
}

/// Anonymous client options trusting the registry's test CA, if it has one. The docker
/// config points at an empty directory so the user's own credentials never leak in.
pub fn options_for(registry: &TestRegistry) -> ClientOptions {
    let mut options = ClientOptions {
        docker_config: Some(registry.dir().join("no-docker-config")),
        ..ClientOptions::default()
    };
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
    BlobStream::new(futures_util::stream::iter([Ok(bytes)]))
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

/// A docker config directory (`config.json` with `auths`), as `docker login` leaves it.
/// Each client gets its own through `ClientOptions::docker_config`: no process-wide
/// `$DOCKER_CONFIG`, so parallel tests cannot see each other's credentials.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    dir: PathBuf,
}

impl DockerConfig {
    /// Uses (and creates) `dir`; entries already in its config.json are kept.
    pub fn at(dir: &Path) -> DockerConfig {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        DockerConfig { dir: dir.to_path_buf() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Adds (or replaces) `auths[host]` with a username and password.
    pub fn login(&self, host: &str, user: &str, password: &str) {
        use base64::Engine;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.set(host, serde_json::json!({ "auth": auth }));
    }

    /// Adds `auths[host]` with an OAuth2 refresh token (`identitytoken`), as `docker login`
    /// stores for registries that issue them.
    pub fn login_identity_token(&self, host: &str, token: &str) {
        self.set(host, serde_json::json!({ "identitytoken": token }));
    }

    /// Client options reading credentials from this directory.
    pub fn options(&self, mut options: ClientOptions) -> ClientOptions {
        options.docker_config = Some(self.dir.clone());
        options
    }

    fn set(&self, host: &str, entry: serde_json::Value) {
        let path = self.dir.join("config.json");
        let mut config: serde_json::Value = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_else(|| serde_json::json!({ "auths": {} }));
        config["auths"][host] = entry;
        let tmp = self.dir.join("config.json.tmp");
        std::fs::write(&tmp, config.to_string()).expect("write docker config");
        std::fs::rename(&tmp, &path).expect("install docker config");
    }
}

/// Options for `registry` with its credentials (if any) in a docker config of its own.
pub fn login_options(registry: &TestRegistry) -> ClientOptions {
    login_options_as(registry, &registry.host())
}

/// [`login_options`] for a registry reached as `host` (e.g. through a fault proxy).
pub fn login_options_as(registry: &TestRegistry, host: &str) -> ClientOptions {
    let config = DockerConfig::at(&registry.dir().join("docker-config"));
    if let Some((user, password)) = registry.credentials() {
        config.login(host, user, password);
    }
    config.options(options_for(registry))
}
