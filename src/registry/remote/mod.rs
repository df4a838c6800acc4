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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
mod control;
mod credentials;
mod gate;
mod hosts;
mod manifests;
mod options;
mod pace;
mod referrers;
mod retry;
mod send;
mod tags;
mod timeline;
mod transport;

pub use hosts::{Budget, ClientCertificate, HostPattern, HostRule, Quota};
pub use options::{ClientOptions, ReadLimits};

pub(crate) use gate::{Gate, SharedQuota};
pub(crate) use hosts::HostSettings;
pub(crate) use transport::{SendError, Tls, build_client, read_limited};

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
    /// The longest wait for response headers (the deadline applied adapts below it).
    response_timeout: Duration,
    idle: Duration,
    min_transfer_rate: u64,
    max_retries: usize,
    retry_timeout: Duration,
    limits: ReadLimits,
    listing_progress: Duration,
    /// Set once the referrers endpoint answered 405, or 404 with a body that is no
    /// registry error (distribution 2.8's router: `404 page not found`): the registry has
    /// no referrers API, and probing it again for every digest would cost a request each.
    /// A 404 with a registry error (`NAME_UNKNOWN` from a registry that has the API, for a
    /// repository not created yet) says nothing about the registry and is not remembered.
    lacks_referrers_api: AtomicBool,
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
    /// A client for `host` (`host[:port]`) with its `settings`, over `http`, using `gate`
    /// for its budget.
    pub(crate) fn new(
        host: &str,
        http: reqwest::Client,
        gate: Arc<Gate>,
        settings: &HostSettings,
        options: &ClientOptions,
    ) -> Result<Self, Error> {
        let plain_allowed = settings.plain_allowed;
        // The realm rule allows plain HTTP to the same hosts; a host the settings file
        // marks insecure is one of them.
        let mut insecure = options.insecure_registries.clone();
        if plain_allowed {
            insecure.push(host.to_string());
        }
        Url::parse(&format!("https://{}/", endpoint(host))).map_err(|e| Error::InvalidReference {
            reference: host.to_string(),
            message: e.to_string(),
        })?;
        Ok(Self {
            name: host.to_string(),
            base: tokio::sync::OnceCell::new(),
            plain_allowed,
            http,
            auth: auth::Auth::new(host, options.docker_config.clone(), &insecure),
            gate,
            counters: Counters::default(),
            pending: blobs::PendingSessions::default(),
            response_timeout: options.response_timeout,
            idle: options.idle_timeout,
            min_transfer_rate: options.min_transfer_rate,
            max_retries: options.max_retries,
            retry_timeout: options.retry_timeout,
            limits: options.limits,
            listing_progress: options.listing_progress,
            lacks_referrers_api: AtomicBool::new(false),
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
            throttling: Some(self.gate.throttling()),
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
