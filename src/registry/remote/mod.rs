//! The remote backend: a thin OCI distribution-spec client on `reqwest`.
//!
//! Why our own client and not `oci-client`: see `docs/decisions/0001-own-registry-client.md`.
//! Every request goes through `send` (the request engine), which applies the registry's gate
//! (pause, concurrency, rate), credentials, one re-authentication on 401, and retries with
//! backoff for transient failures. Operations then map statuses to typed results.
//!
//! One file per group of [`Registry`] operations, named as in the layout backend
//! (`manifests`, `blobs`, `tags`, `referrers`), each method named after the trait method it
//! implements; `send` is the request engine under all of them, and this file holds the
//! struct and the trait impl that forwards to them.
use crate::sync::lock;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use url::Url;

use super::{
    BlobStream, Descriptor, Error, ManifestRef, MountOutcome, RawManifest, Referrer, Registry, RegistryStats, TagList,
};
use crate::digest::Digest;
use send::Call;

pub(crate) mod auth;
mod blobs;
mod concurrency;
mod credentials;
mod gate;
mod manifests;
mod options;
mod referrers;
mod retry;
mod send;
mod tags;
mod transport;

pub use options::{ClientOptions, ReadLimits};

pub(crate) use gate::Gate;
pub(crate) use transport::{SendError, build_client, read_limited};

/// One remote registry host.
#[derive(Debug)]
pub struct RemoteRegistry {
    name: String,
    /// `https://host/`, or `http://host/` for a loopback or insecure host that does not
    /// speak TLS (decided by [`RemoteRegistry::base`] on first use).
    base: tokio::sync::OnceCell<Url>,
    plain_allowed: bool,
    http: reqwest::Client,
    auth: auth::Auth,
    gate: Arc<Gate>,
    counters: Counters,
    pending: blobs::PendingSessions,
    first_byte: Duration,
    idle: Duration,
    max_retries: usize,
    limits: ReadLimits,
    listing_progress: Duration,
    /// Requests per second at full speed (for logs).
    configured_rate: f64,
}

#[derive(Debug, Default)]
struct Counters {
    requests: Mutex<BTreeMap<String, u64>>,
    bytes_read: Arc<AtomicU64>,
    bytes_written: Arc<AtomicU64>,
    retries: AtomicU64,
}

impl Counters {
    fn count(&self, method: &Method, outcome: &str) {
        let mut map = lock(&self.requests);
        *map.entry(format!("{method} {outcome}")).or_default() += 1;
    }
}

impl RemoteRegistry {
    /// A client for `host` (`host[:port]`), sharing `http` and using `gate` for its limits.
    pub(crate) fn new(
        host: &str,
        http: reqwest::Client,
        gate: Arc<Gate>,
        options: &ClientOptions,
    ) -> Result<Self, Error> {
        let plain_allowed =
            super::reference::is_loopback(host) || options.insecure_registries.iter().any(|h| h == host);
        Url::parse(&format!("https://{}/", endpoint(host))).map_err(|e| Error::InvalidReference {
            reference: host.to_string(),
            message: e.to_string(),
        })?;
        Ok(Self {
            name: host.to_string(),
            base: tokio::sync::OnceCell::new(),
            plain_allowed,
            http,
            auth: auth::Auth::new(host, options.docker_config.clone(), &options.insecure_registries),
            gate,
            counters: Counters::default(),
            pending: blobs::PendingSessions::default(),
            first_byte: options.response_timeout,
            idle: options.idle_timeout,
            max_retries: options.max_retries,
            limits: options.limits,
            listing_progress: options.listing_progress,
            configured_rate: f64::from(options.rate_limit),
        })
    }

    /// Checks the reachability of the registry and learns its auth challenge.
    pub async fn ping(&self) -> Result<(), Error> {
        let op = "ping /v2/".to_string();
        let reply = self
            .send(Call::new(op.clone(), Method::GET, self.url("/v2/").await?, Vec::new()))
            .await?;
        if reply.status().is_success() {
            Ok(())
        } else {
            Err(self.failure(&op, reply).await)
        }
    }

    /// Counters for this registry.
    pub fn stats(&self) -> RegistryStats {
        RegistryStats {
            requests: lock(&self.counters.requests).clone(),
            bytes_read: self.counters.bytes_read.load(Ordering::Relaxed),
            bytes_written: self.counters.bytes_written.load(Ordering::Relaxed),
            retries: self.counters.retries.load(Ordering::Relaxed),
            paused_ms: self.gate.paused_ms(),
            concurrency: Some(self.gate.concurrency()),
        }
    }
}

/// The server behind a registry name: Docker Hub's API lives on another host than its
/// name (credentials stay keyed by the name, as in docker's config).
fn endpoint(host: &str) -> &str {
    match host {
        "docker.io" | "index.docker.io" => "registry-1.docker.io",
        other => other,
    }
}

#[async_trait]
impl Registry for RemoteRegistry {
    fn name(&self) -> &str {
        &self.name
    }

    async fn list_tags(&self, repo: &str) -> Result<Option<TagList>, Error> {
        RemoteRegistry::list_tags(self, repo).await
    }

    async fn catalog(&self) -> Result<Vec<String>, Error> {
        RemoteRegistry::catalog(self).await
    }

    async fn head_manifest(&self, repo: &str, reference: &ManifestRef) -> Result<Option<Descriptor>, Error> {
        RemoteRegistry::head_manifest(self, repo, reference).await
    }

    async fn get_manifest(&self, repo: &str, reference: &ManifestRef) -> Result<Option<RawManifest>, Error> {
        RemoteRegistry::get_manifest(self, repo, reference).await
    }

    async fn put_manifest(&self, repo: &str, reference: &ManifestRef, manifest: &RawManifest) -> Result<(), Error> {
        RemoteRegistry::put_manifest(self, repo, reference, manifest)
            .await
            .map(|_acknowledged| ())
    }

    async fn delete_manifest(&self, repo: &str, digest: &Digest) -> Result<bool, Error> {
        RemoteRegistry::delete_manifest(self, repo, digest).await
    }

    async fn blob_size(&self, repo: &str, digest: &Digest) -> Result<Option<u64>, Error> {
        RemoteRegistry::blob_size(self, repo, digest).await
    }

    async fn get_blob(&self, repo: &str, digest: &Digest) -> Result<BlobStream, Error> {
        RemoteRegistry::get_blob(self, repo, digest).await
    }

    async fn put_blob(&self, repo: &str, digest: &Digest, size: u64, body: BlobStream) -> Result<(), Error> {
        RemoteRegistry::put_blob(self, repo, digest, size, body).await
    }

    async fn mount_blob(&self, repo: &str, digest: &Digest, from_repo: &str) -> Result<MountOutcome, Error> {
        RemoteRegistry::mount_blob(self, repo, digest, from_repo).await
    }

    async fn list_referrers(
        &self,
        repo: &str,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>, Error> {
        RemoteRegistry::list_referrers(self, repo, subject, artifact_type).await
    }

    async fn put_referrer(&self, repo: &str, manifest: &RawManifest) -> Result<(), Error> {
        RemoteRegistry::put_referrer(self, repo, manifest).await
    }

    fn stats(&self) -> RegistryStats {
        RemoteRegistry::stats(self)
    }
}
