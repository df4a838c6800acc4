//! The remote backend: a thin OCI distribution-spec client on `reqwest`.
//!
//! Why our own client and not `oci-client`: see `docs/decisions/0001-own-registry-client.md`.
//! Every request goes through [`RemoteRegistry::send`], which applies the registry's gate
//! (pause, concurrency, rate), credentials, one re-authentication on 401, and retries with
//! backoff for transient failures. Operations then map statuses to typed results.
use crate::sync::lock;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use url::Url;

use super::{
    BlobStream, ClientOptions, Descriptor, Error, ManifestRef, MountOutcome, RawManifest, Registry, RegistryStats,
    TagList, media,
};
use crate::digest::Digest;

mod auth;
mod blobs;
mod concurrency;
mod credentials;
mod gate;
mod list;
mod referrers;
mod retry;
mod transport;

pub use referrers::Referrer;

pub(crate) use gate::Gate;
pub(crate) use transport::build_client;

/// Largest manifest accepted (distribution caps PUT bodies at 4 MiB; leave room).
const MANIFEST_LIMIT: usize = 16 << 20;
/// Extra attempts of a manifest PUT refused with `MANIFEST_BLOB_UNKNOWN` (see its use).
const MANIFEST_BLOB_UNKNOWN_RETRIES: usize = 2;
/// Longest wait for the one TLS probe of a host that may also speak plain HTTP.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest error body or JSON listing page read into memory.
const PAGE_LIMIT: usize = 32 << 20;

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
    referrer_locks: referrers::IndexLocks,
    first_byte: Duration,
    idle: Duration,
    max_retries: usize,
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

/// A request body: in memory (can be re-sent) or a stream (sent once).
pub(crate) enum Payload {
    Empty,
    Bytes(Bytes),
    Once(Option<(reqwest::Body, Arc<transport::Progress>)>),
}

/// One logical request, possibly sent several times.
pub(crate) struct Call {
    /// Names the operation in errors: "GET manifest repo:tag".
    pub(crate) op: String,
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Payload,
    pub(crate) scopes: Vec<String>,
    /// Whether transient failures are retried (not for best-effort clean-up).
    pub(crate) retry: bool,
}

impl Call {
    pub(crate) fn new(op: String, method: Method, url: Url, scopes: Vec<String>) -> Self {
        Self {
            op,
            method,
            url,
            headers: HeaderMap::new(),
            body: Payload::Empty,
            scopes,
            retry: true,
        }
    }

    pub(crate) fn header(mut self, name: header::HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }

    pub(crate) fn body(mut self, body: Payload) -> Self {
        self.body = body;
        self
    }

    /// A copy to send again, unless the body is a one-shot stream.
    fn try_clone(&self) -> Option<Self> {
        let body = match &self.body {
            Payload::Empty => Payload::Empty,
            Payload::Bytes(b) => Payload::Bytes(b.clone()),
            Payload::Once(_) => return None,
        };
        Some(Self {
            op: self.op.clone(),
            method: self.method.clone(),
            url: self.url.clone(),
            headers: self.headers.clone(),
            body,
            scopes: self.scopes.clone(),
            retry: self.retry,
        })
    }
}

/// A whole small response.
pub(crate) struct Fetched {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// A response, holding the registry's concurrency slot until dropped.
pub(crate) struct Reply {
    pub(crate) response: reqwest::Response,
    pub(crate) permit: concurrency::Permit,
}

impl Reply {
    pub(crate) fn status(&self) -> StatusCode {
        self.response.status()
    }

    pub(crate) fn header(&self, name: header::HeaderName) -> Option<&str> {
        header_str(self.response.headers(), name)
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
            auth: auth::Auth::new(host, options.docker_config.clone()),
            gate,
            counters: Counters::default(),
            pending: blobs::PendingSessions::default(),
            referrer_locks: referrers::IndexLocks::default(),
            first_byte: options.response_timeout,
            idle: options.idle_timeout,
            max_retries: options.max_retries,
            configured_rate: f64::from(options.rate_limit),
        })
    }

    pub(crate) async fn url(&self, path: &str) -> Result<Url, Error> {
        self.base()
            .await?
            .join(path)
            .map_err(|e| self.protocol("build URL", format!("{path}: {e}")))
    }

    /// The registry's base URL. HTTPS always, except that a host allowed plain HTTP
    /// (loopback, `--insecure-registry`) is probed once: if it does not speak TLS at all,
    /// HTTP is used. A TLS server with an untrusted certificate is an error, never a
    /// reason to downgrade.
    async fn base(&self) -> Result<&Url, Error> {
        self.base
            .get_or_try_init(|| async {
                let https = Url::parse(&format!("https://{}/", endpoint(&self.name)))
                    .map_err(|e| self.protocol("build URL", e.to_string()))?;
                if !self.plain_allowed {
                    return Ok(https);
                }
                let probe = self.http.get(https.join("/v2/").unwrap_or_else(|_| https.clone()));
                let limit = self.first_byte.min(PROBE_TIMEOUT);
                match transport::execute(probe, &transport::Progress::sent(), limit, limit).await {
                    Ok(_) => Ok(https),
                    Err(e) => match transport::classify_probe_failure(&e) {
                        transport::ProbeFailure::Certificate => Err(Error::Transport {
                            registry: self.name.clone(),
                            operation: "connect".into(),
                            message: format!("{e} (a private CA can be trusted with --registry-ca-file)"),
                        }),
                        // The probe names the https:// URL; say that plain HTTP would
                        // not have helped either.
                        transport::ProbeFailure::Unreachable => Err(Error::Transport {
                            registry: self.name.clone(),
                            operation: "connect".into(),
                            message: format!("{e} (nothing listens there, for HTTPS or plain HTTP)"),
                        }),
                        transport::ProbeFailure::NotTls => Url::parse(&format!("http://{}/", endpoint(&self.name)))
                            .map_err(|e| self.protocol("build URL", e.to_string())),
                    },
                }
            })
            .await
    }

    pub(crate) fn protocol(&self, op: &str, message: String) -> Error {
        Error::Protocol {
            registry: self.name.clone(),
            operation: op.to_string(),
            message,
        }
    }

    /// Sends `call`, with auth, the gate and retries. Returns whatever response the
    /// registry finally gave (including 4xx/5xx); only transport failures are errors.
    pub(crate) async fn send(&self, mut call: Call) -> Result<Reply, Error> {
        let mut backoff = retry::backoff(if call.retry { self.max_retries } else { 0 });
        let mut reauthenticated = false;
        let mut learned = false;
        let mut scopes = call.scopes.clone();
        loop {
            let permit = self.gate.enter().await;
            let authorization = self
                .auth
                .authorization(
                    &self.http,
                    &scopes,
                    (self.first_byte, self.idle),
                    &self.counters.bytes_read,
                )
                .await
                .map_err(|e| self.rename_op(e, &call.op))?;
            let mut request = self
                .http
                .request(call.method.clone(), call.url.clone())
                .headers(call.headers.clone());
            if let Some(a) = &authorization {
                request = a.apply(request);
            }
            let (request, progress, replayable) = match &mut call.body {
                Payload::Empty => (request, transport::Progress::sent(), true),
                Payload::Bytes(b) => {
                    self.counters.bytes_written.fetch_add(b.len() as u64, Ordering::Relaxed);
                    (request.body(b.clone()), transport::Progress::sent(), true)
                }
                Payload::Once(slot) => match slot.take() {
                    Some((body, progress)) => (request.body(body), progress, false),
                    None => return Err(self.protocol(&call.op, "a streamed request body cannot be sent twice".into())),
                },
            };
            let started = std::time::Instant::now();
            let outcome = transport::execute(request, &progress, self.first_byte, self.idle).await;
            // Only a bodyless request's wait for its answer measures the registry's queue.
            let latency = matches!(call.method, Method::GET | Method::HEAD).then(|| started.elapsed());
            let response = match outcome {
                Ok(r) => r,
                Err(e) => {
                    self.counters.count(&call.method, "ERR");
                    // A streamed body's failure may be its source's fault, not this registry's.
                    if replayable && let Some(limit) = permit.failed() {
                        self.log_lowered(limit, &e.to_string());
                    }
                    let error = Error::Transport {
                        registry: self.name.clone(),
                        operation: call.op.clone(),
                        message: e.to_string(),
                    };
                    match backoff.next().filter(|_| replayable) {
                        Some(delay) => {
                            tracing::debug!(registry = %self.name, op = %call.op, error = %e, "retrying");
                            // Waiting to retry is not being in flight: free the slot.
                            drop(permit);
                            self.retry_sleep(delay).await;
                            continue;
                        }
                        None => return Err(error),
                    }
                }
            };
            let status = response.status().as_u16();
            self.counters.count(&call.method, &status.to_string());
            let retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| gate::parse_retry_after(v, std::time::SystemTime::now()));
            let throttle = retry::is_throttle(status, retry_after.is_some());
            let mut lowered_limit = None;
            if throttle {
                lowered_limit = permit.throttled();
            } else if retry::retryable_status(status) {
                if let Some(limit) = permit.failed() {
                    self.log_lowered(limit, &format!("HTTP {status}"));
                }
            } else {
                permit.healthy(latency);
            }
            // An anonymous request may learn the challenge once; a request that carried
            // credentials may re-authenticate once (token expired or revoked).
            let may_answer = if authorization.is_some() {
                !reauthenticated
            } else {
                !learned
            };
            if status == 401 && may_answer && replayable {
                let challenge = response
                    .headers()
                    .get(header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok());
                if let Some(wanted) = self.auth.learn(challenge, &scopes) {
                    if authorization.is_some() {
                        reauthenticated = true;
                    } else {
                        learned = true;
                    }
                    scopes = wanted;
                    continue;
                }
            }
            let mut paused = Duration::ZERO;
            if throttle {
                let (pause, lowered) = self.gate.throttled(retry_after);
                paused = pause;
                // One line per slowdown, not per answer: a storm would flood the log.
                if lowered.is_some() || lowered_limit.is_some() {
                    tracing::info!(
                        registry = %self.name,
                        status,
                        pause_ms = paused.as_millis() as u64,
                        rate_per_s = lowered.unwrap_or_else(|| self.gate.fraction()) * self.configured_rate,
                        concurrency = lowered_limit.unwrap_or_else(|| self.gate.concurrency().limit),
                        "registry is throttling: pausing it and slowing down"
                    );
                }
            }
            if retry::retryable_status(status)
                && replayable
                && let Some(delay) = backoff.next()
            {
                tracing::debug!(registry = %self.name, op = %call.op, status, "retrying");
                drop(permit);
                // The gate's pause already spaces a throttled retry; only add what is left.
                self.retry_sleep(delay.saturating_sub(paused)).await;
                continue;
            }
            if response.status().is_success() {
                self.gate.succeeded();
            }
            return Ok(Reply { response, permit });
        }
    }

    fn log_lowered(&self, limit: usize, cause: &str) {
        tracing::info!(registry = %self.name, concurrency = limit, cause, "registry is failing: fewer requests at once");
    }

    async fn retry_sleep(&self, delay: Duration) {
        self.counters.retries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(delay).await;
    }

    fn rename_op(&self, error: Error, op: &str) -> Error {
        match error {
            Error::Unauthorized {
                registry,
                status,
                message,
                ..
            } => Error::Unauthorized {
                registry,
                operation: op.to_string(),
                status,
                message,
            },
            other => other,
        }
    }

    /// Turns an unexpected response into an error naming the operation, with the
    /// registry's OCI error codes when it sent them.
    pub(crate) async fn failure(&self, op: &str, reply: Reply) -> Error {
        let status = reply.status().as_u16();
        let body = transport::read_limited(reply.response, 64 << 10, self.idle, &self.counters.bytes_read)
            .await
            .unwrap_or_default();
        self.error_for(op, status, &body)
    }

    pub(crate) fn error_for(&self, op: &str, status: u16, body: &[u8]) -> Error {
        let mut message = error_message(body);
        if status == 401 && !self.auth.has_credential() {
            message.push_str(" (no credentials for this registry in the docker config)");
        }
        if status == 401 || status == 403 {
            Error::Unauthorized {
                registry: self.name.clone(),
                operation: op.to_string(),
                status,
                message,
            }
        } else {
            Error::Status {
                registry: self.name.clone(),
                operation: op.to_string(),
                status,
                message,
            }
        }
    }

    /// Sends a call whose answer is small (manifest, listing page) and reads it whole.
    /// A body cut off or stalled half-way is retried like a failed request.
    pub(crate) async fn fetch(&self, mut call: Call, limit: usize) -> Result<Fetched, Error> {
        let mut backoff = retry::backoff(self.max_retries);
        loop {
            let again = call.try_clone();
            let op = call.op.clone();
            let reply = self.send(call).await?;
            let status = reply.status();
            let headers = reply.response.headers().clone();
            match transport::read_limited(reply.response, limit, self.idle, &self.counters.bytes_read).await {
                Ok(body) => return Ok(Fetched { status, headers, body }),
                Err(e) => {
                    let error = Error::Transport {
                        registry: self.name.clone(),
                        operation: op,
                        message: e.message,
                    };
                    match (again, e.transient, backoff.next()) {
                        (Some(next), true, Some(delay)) => {
                            tracing::debug!(registry = %self.name, %error, "retrying");
                            self.retry_sleep(delay).await;
                            call = next;
                        }
                        _ => return Err(error),
                    }
                }
            }
        }
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

    async fn manifest_head(&self, repo: &str, reference: &ManifestRef) -> Result<Option<Descriptor>, Error> {
        let op = format!("HEAD manifest {repo}{reference}");
        let call = Call::new(
            op.clone(),
            Method::HEAD,
            self.manifest_url(repo, reference).await?,
            vec![auth::repo_scope(repo, false)],
        )
        .header(header::ACCEPT, media::ACCEPT_MANIFESTS);
        let reply = self.send(call).await?;
        match reply.status() {
            StatusCode::NOT_FOUND => return Ok(None),
            s if s.is_success() => {}
            _ => return Err(self.failure(&op, reply).await),
        }
        let header_digest = self.header_digest(&op, reply.response.headers())?;
        let size = reply.header(header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
        let media_type = reply.header(header::CONTENT_TYPE).map(clean_media_type);
        if let (Some(digest), Some(size), Some(media_type)) = (header_digest, size, media_type.clone()) {
            if let ManifestRef::Digest(want) = reference
                && *want != digest
            {
                return Err(self.mismatch(&op, *want, digest));
            }
            return Ok(Some(Descriptor {
                digest,
                media_type,
                size,
            }));
        }
        // Some registries omit the digest or length on HEAD: fetch the bytes instead.
        drop(reply);
        Ok(self.manifest_get(repo, reference).await?.map(|m| m.descriptor()))
    }

    pub(crate) fn header_digest(&self, op: &str, headers: &HeaderMap) -> Result<Option<Digest>, Error> {
        match header_str(headers, header::HeaderName::from_static("docker-content-digest")) {
            None => Ok(None),
            // Only sha256 is verifiable here; other algorithms are ignored, not trusted.
            Some(v) if !v.starts_with("sha256:") => Ok(None),
            Some(v) => v
                .parse::<Digest>()
                .map(Some)
                .map_err(|e| self.protocol(op, format!("Docker-Content-Digest: {e}"))),
        }
    }

    fn mismatch(&self, op: &str, expected: Digest, actual: Digest) -> Error {
        Error::DigestMismatch {
            registry: self.name.clone(),
            operation: op.to_string(),
            expected,
            actual,
        }
    }

    async fn manifest_url(&self, repo: &str, reference: &ManifestRef) -> Result<Url, Error> {
        let r = match reference {
            ManifestRef::Tag(t) => t.clone(),
            ManifestRef::Digest(d) => d.to_string(),
        };
        self.url(&format!("/v2/{repo}/manifests/{r}")).await
    }

    async fn manifest_get(&self, repo: &str, reference: &ManifestRef) -> Result<Option<RawManifest>, Error> {
        let op = format!("GET manifest {repo}{reference}");
        let call = Call::new(
            op.clone(),
            Method::GET,
            self.manifest_url(repo, reference).await?,
            vec![auth::repo_scope(repo, false)],
        )
        .header(header::ACCEPT, media::ACCEPT_MANIFESTS);
        let fetched = self.fetch(call, MANIFEST_LIMIT).await?;
        match fetched.status {
            StatusCode::NOT_FOUND => return Ok(None),
            s if s.is_success() => {}
            s => return Err(self.error_for(&op, s.as_u16(), &fetched.body)),
        }
        let header_digest = self.header_digest(&op, &fetched.headers)?;
        let content_type = header_str(&fetched.headers, header::CONTENT_TYPE).map(clean_media_type);
        if content_type.as_deref().is_some_and(media::is_schema1) {
            // Its digest covers a signature-stripped payload, so it cannot be copied
            // byte-for-byte under the same digest.
            return Err(self.protocol(&op, "a Docker schema1 manifest: not supported".into()));
        }
        let bytes = fetched.body;
        let actual = Digest::of(&bytes);
        if let ManifestRef::Digest(want) = reference
            && *want != actual
        {
            return Err(self.mismatch(&op, *want, actual));
        }
        if let Some(said) = header_digest
            && said != actual
        {
            return Err(self.mismatch(&op, said, actual));
        }
        // A generic Content-Type (text/plain, application/json) says nothing: read the body.
        let media_type = content_type
            .filter(|ct| ct.starts_with("application/vnd."))
            .or_else(|| media::sniff_media_type(&bytes))
            .ok_or_else(|| self.protocol(&op, "manifest has no media type".into()))?;
        Ok(Some(RawManifest {
            media_type,
            bytes,
            digest: actual,
        }))
    }

    /// PUTs a manifest; returns whether the registry acknowledged its `subject`
    /// (`OCI-Subject`, i.e. it maintains the referrers list itself).
    async fn manifest_put_reply(
        &self,
        repo: &str,
        reference: &ManifestRef,
        manifest: &RawManifest,
    ) -> Result<bool, Error> {
        let op = format!("PUT manifest {repo}{reference}");
        let actual = Digest::of(&manifest.bytes);
        if actual != manifest.digest {
            return Err(self.mismatch(&op, manifest.digest, actual));
        }
        if let ManifestRef::Digest(want) = reference
            && *want != actual
        {
            return Err(self.mismatch(&op, *want, actual));
        }
        let url = self.manifest_url(repo, reference).await?;
        let mut blob_unknown_retries = 0;
        let reply = loop {
            let call = Call::new(op.clone(), Method::PUT, url.clone(), vec![auth::repo_scope(repo, true)])
                .header(header::CONTENT_TYPE, &manifest.media_type)
                .body(Payload::Bytes(manifest.bytes.clone()));
            let reply = self.send(call).await?;
            if reply.status().is_success() {
                break reply;
            }
            let error = self.failure(&op, reply).await;
            // Distribution 2.8 links blobs into a repository non-atomically: right after
            // concurrent uploads of one blob, a manifest PUT can briefly see it missing.
            let racy = matches!(&error, Error::Status { status: 400, message, .. } if message.contains("MANIFEST_BLOB_UNKNOWN"));
            if !racy || blob_unknown_retries == MANIFEST_BLOB_UNKNOWN_RETRIES {
                return Err(error);
            }
            blob_unknown_retries += 1;
            self.retry_sleep(Duration::from_millis(500 * blob_unknown_retries as u64))
                .await;
        };
        // `Location` is optional in practice (ECR omits it): never rely on it.
        if let Some(said) = self.header_digest(&op, reply.response.headers())?
            && said != actual
        {
            return Err(self.mismatch(&op, actual, said));
        }
        Ok(reply.response.headers().contains_key(referrers::oci_subject_header()))
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

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `application/json; charset=utf-8` -> `application/json`.
fn clean_media_type(value: &str) -> String {
    value.split(';').next().unwrap_or(value).trim().to_string()
}

/// The registry's explanation from an OCI error body (`{"errors":[{code,message}]}`),
/// or the start of the body as text.
fn error_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Envelope {
        errors: Vec<OciError>,
    }
    #[derive(serde::Deserialize)]
    struct OciError {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(env) = serde_json::from_slice::<Envelope>(body)
        && !env.errors.is_empty()
    {
        return env
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.code, e.message))
            .collect::<Vec<_>>()
            .join("; ");
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "(no details)".to_string()
    } else {
        text.chars().take(300).collect()
    }
}

#[async_trait]
impl Registry for RemoteRegistry {
    fn name(&self) -> &str {
        &self.name
    }

    async fn list_tags(&self, repo: &str) -> Result<Option<TagList>, Error> {
        self.tags(repo).await
    }

    async fn catalog(&self) -> Result<Vec<String>, Error> {
        self.catalog_all().await
    }

    async fn head_manifest(&self, repo: &str, reference: &ManifestRef) -> Result<Option<Descriptor>, Error> {
        self.manifest_head(repo, reference).await
    }

    async fn get_manifest(&self, repo: &str, reference: &ManifestRef) -> Result<Option<RawManifest>, Error> {
        self.manifest_get(repo, reference).await
    }

    async fn put_manifest(&self, repo: &str, reference: &ManifestRef, manifest: &RawManifest) -> Result<(), Error> {
        self.manifest_put_reply(repo, reference, manifest).await.map(|_| ())
    }

    async fn blob_size(&self, repo: &str, digest: &Digest) -> Result<Option<u64>, Error> {
        self.blob_head(repo, digest).await
    }

    async fn get_blob(&self, repo: &str, digest: &Digest) -> Result<BlobStream, Error> {
        self.blob_get(repo, digest).await
    }

    async fn put_blob(&self, repo: &str, digest: &Digest, size: u64, body: BlobStream) -> Result<(), Error> {
        self.blob_put(repo, digest, size, body).await
    }

    async fn mount_blob(&self, repo: &str, digest: &Digest, from_repo: &str) -> Result<MountOutcome, Error> {
        self.blob_mount(repo, digest, from_repo).await
    }

    fn stats(&self) -> RegistryStats {
        RemoteRegistry::stats(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_from_oci_envelopes_and_text() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        assert_eq!(error_message(body), "MANIFEST_UNKNOWN: manifest unknown");
        assert_eq!(error_message(b"  oops \n"), "oops");
        assert_eq!(error_message(b""), "(no details)");
    }

    #[test]
    fn media_type_parameters_are_dropped() {
        assert_eq!(clean_media_type("application/json; charset=utf-8"), "application/json");
    }
}
