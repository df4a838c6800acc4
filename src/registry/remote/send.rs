//! The request engine every operation goes through: [`RemoteRegistry::send`] applies the
//! registry's gate (pause, concurrency, rate), credentials, one re-authentication on 401,
//! and retries with backoff for transient failures; [`RemoteRegistry::fetch`] also reads a
//! small answer whole. Unexpected answers become errors naming the operation.
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use url::Url;

use super::control::{Change, Outcome};
use super::{RemoteRegistry, auth, endpoint, gate, retry, transport};
use crate::digest::Digest;
use crate::registry::{Error, OciCode, reference};

/// Longest wait for the one TLS probe of a host that may also speak plain HTTP.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait honoured from one `Retry-After` (a misconfigured server must not stall a
/// request for hours; the retry timeout bounds the total anyway).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

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
    /// Whether a second copy goes out when the first is slow to answer.
    pub(crate) hedge: Hedge,
}

/// Whether a call may be sent a second time while its first copy is late to answer
/// ([`RemoteRegistry::hedge`]). A call may if its answer is small, its body (if any) small
/// and in memory, and sending it twice has the effect of sending it once: a HEAD, a GET of
/// a manifest or a list, a manifest PUT (the same bytes to the same reference). Not a blob
/// download (a big answer, with its own progress watch), a blob upload (a one-shot
/// stream), a PATCH of the next chunk or an upload's closing PUT (the second copy finds the
/// session moved on or gone), nor a DELETE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hedge {
    /// Not safe to send twice (the default).
    Never,
    /// Safe to send twice.
    Resend,
    /// Safe to send twice except that each copy may open an upload session (the POST that
    /// starts an upload or a mount): the losing copy's session, if it answers in time, is
    /// cancelled rather than left for the registry to purge days later.
    ResendCancellingSession,
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
            hedge: Hedge::Never,
        }
    }

    /// Marks a call that is safe to send twice (see [`Hedge`]).
    pub(crate) fn hedgeable(mut self) -> Self {
        self.hedge = Hedge::Resend;
        self
    }

    /// Marks a POST that opens an upload session as safe to send twice, the losing copy's
    /// session cancelled (see [`Hedge::ResendCancellingSession`]).
    pub(crate) fn hedgeable_opening_session(mut self) -> Self {
        self.hedge = Hedge::ResendCancellingSession;
        self
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
            hedge: self.hedge,
        })
    }
}

/// The most bytes [`RemoteRegistry::fetch`] reads of one answer, what they are (for the
/// error), and the flag that sets the cap, if one does.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyCap {
    pub(crate) bytes: usize,
    pub(crate) what: &'static str,
    pub(crate) flag: Option<&'static str>,
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
    pub(crate) permit: gate::Permit,
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
    /// `/v2/<repo>/<rest>` on this registry. `repo` is checked against the repository
    /// grammar first: URLs resolve dot segments, so `../../etc` would leave `/v2/`.
    pub(crate) async fn repo_url(&self, op: &str, repo: &str, rest: &str) -> Result<Url, Error> {
        self.check_repo(op, repo)?;
        self.url(&format!("/v2/{repo}/{rest}")).await
    }

    /// Refuses a repository name outside the grammar, naming the operation.
    pub(crate) fn check_repo(&self, op: &str, repo: &str) -> Result<(), Error> {
        reference::check_repository(repo).map_err(|e| Error::InvalidName {
            registry: self.name.clone(),
            operation: op.to_string(),
            what: "repository name",
            name: repo.to_string(),
            message: e.to_string(),
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
                let limit = self.response_timeout.min(PROBE_TIMEOUT);
                match transport::execute(probe, &transport::Progress::sent(), || limit, limit).await {
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

    /// When to send a second copy of `request` if it has no answer yet, and the copy: only
    /// for calls safe to send twice ([`Hedge`]), once the host's latency is known. A body
    /// of `length` bytes adds its time at the slowest accepted rate, as it does to the
    /// response deadline.
    fn hedge(
        &self,
        call: &Call,
        request: &reqwest::RequestBuilder,
        length: u64,
    ) -> Option<(Duration, reqwest::RequestBuilder)> {
        if call.hedge == Hedge::Never {
            return None;
        }
        let delay = self.gate.hedge_delay()? + self.transfer_time(length);
        Some((delay, request.try_clone()?))
    }

    /// Cancels the upload session that the losing copy of a hedged POST opened, if it
    /// answers within its deadline (a 201 to a mount opened none). In the background, so
    /// that the winner's caller does not wait on a copy that may have hung; best effort
    /// and outside the gate, like the copy itself (the hedge allowance bounds both). With
    /// the losing copy's credentials: it opened the session with them.
    fn cancel_losing_session(&self, loser: transport::Loser, authorization: Option<auth::Authorization>, op: &str) {
        let http = self.http.clone();
        let deadline = self.gate.response_deadline();
        let registry = self.name.clone();
        let op = op.to_string();
        tokio::spawn(async move {
            let Some(response) = loser.answer().await else { return };
            if response.status() != StatusCode::ACCEPTED {
                return;
            }
            let Some(session) =
                header_str(response.headers(), header::LOCATION).and_then(|l| response.url().join(l).ok())
            else {
                return;
            };
            let mut request = http.delete(session);
            if let Some(a) = &authorization {
                request = a.apply(request);
            }
            let status = match tokio::time::timeout(deadline, request.send()).await {
                Ok(Ok(reply)) => reply.status().as_u16().to_string(),
                Ok(Err(e)) => transport::SendError::Http(e).to_string(),
                Err(_) => format!("no answer within {} ms", deadline.as_millis()),
            };
            tracing::debug!(%registry, %op, %status, "cancelling the upload session of a hedged POST's losing copy");
        });
    }

    /// Sends `call`, with auth, the gate and retries. Returns whatever response the
    /// registry finally gave (including 4xx/5xx); only transport failures are errors.
    ///
    /// Failures (5xx, timeouts, resets, stalls) are retried `max_retries` times; throttling
    /// (429, 503 with `Retry-After`) until `retry_timeout` has passed since the first
    /// attempt, each retry after the `Retry-After` the registry asked for (this request
    /// only: the host's rate is the controller's business) or a backoff, whichever is
    /// longer. Every answer is reported to the host's controller.
    pub(crate) async fn send(&self, mut call: Call) -> Result<Reply, Error> {
        let mut failures = retry::failures(if call.retry { self.max_retries } else { 0 });
        let mut throttles = retry::throttles();
        let first_attempt = Instant::now();
        let mut reauthenticated = false;
        let mut learned = false;
        let mut scopes = call.scopes.clone();
        loop {
            let permit = self.gate.enter().await;
            let authorization = self
                .auth
                .authorization(
                    &self.http,
                    &call.url,
                    &scopes,
                    (self.gate.response_deadline(), self.idle),
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
            let (request, progress, replayable, length) = match &mut call.body {
                Payload::Empty => (request, transport::Progress::sent(), true, 0),
                Payload::Bytes(b) => {
                    self.counters.bytes_written.fetch_add(b.len() as u64, Ordering::Relaxed);
                    (
                        request.body(b.clone()),
                        transport::Progress::sent(),
                        true,
                        b.len() as u64,
                    )
                }
                Payload::Once(slot) => match slot.take() {
                    Some((body, progress)) => {
                        let total = progress.total();
                        (request.body(body), progress, false, total)
                    }
                    None => return Err(self.protocol(&call.op, "a streamed request body cannot be sent twice".into())),
                },
            };
            // A registry commits an upload after its last byte: time that grows with the
            // size, on top of the host's usual latency.
            let deadline = || self.gate.response_deadline() + self.transfer_time(length);
            let started = Instant::now();
            let outcome = match self.hedge(&call, &request, length) {
                Some((delay, twin)) => {
                    let allowed = || {
                        let taken = self.gate.take_hedge();
                        if taken {
                            self.counters.bytes_written.fetch_add(length, Ordering::Relaxed);
                        }
                        taken
                    };
                    let hedged =
                        transport::execute_hedged(request, twin, delay, allowed, &progress, deadline, self.idle).await;
                    if let Some(loser) = hedged.loser
                        && call.hedge == Hedge::ResendCancellingSession
                    {
                        self.cancel_losing_session(loser, authorization.clone(), &call.op);
                    }
                    hedged.answer
                }
                None => transport::execute(request, &progress, deadline, self.idle).await,
            };
            // Only a bodyless request's wait for its answer measures the registry's queue:
            // GET and HEAD, and also the POSTs that start uploads and mounts, which are
            // most of what a new mirror is sent (without them its deadline would never
            // adapt below the cap). A hedged request's wait counts from its first copy:
            // the time the caller waited, never the second copy's shorter one. The copy
            // that lost reports nothing, neither an answer nor a failure.
            let latency = (length == 0 && replayable).then(|| started.elapsed());
            let response = match outcome {
                Ok(r) => r,
                Err(e) => {
                    self.counters.count(&call.method, "ERR");
                    // A streamed body's failure may be its source's fault, not this registry's.
                    if replayable {
                        let stall = matches!(
                            e,
                            transport::SendError::NoResponse(_) | transport::SendError::UploadStalled(_)
                        );
                        self.log_change(permit.report(Outcome::Failed, stall, None), &e.to_string());
                    }
                    let error = Error::Transport {
                        registry: self.name.clone(),
                        operation: call.op.clone(),
                        message: e.to_string(),
                    };
                    match failures.next().filter(|_| replayable) {
                        Some(delay) => {
                            tracing::debug!(registry = %self.name, op = %call.op, error = %e, "retrying");
                            // Waiting to retry is not being in flight: free the slot. The
                            // retry goes out on a fresh connection: the failed one is gone
                            // with its request.
                            drop(permit);
                            self.retry_sleep(delay, false).await;
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
            let signal = if throttle {
                Outcome::Throttled
            } else if retry::retryable_status(status) {
                Outcome::Failed
            } else {
                Outcome::Healthy
            };
            self.log_change(
                permit.report(signal, false, latency.filter(|_| signal == Outcome::Healthy)),
                &format!("HTTP {status}"),
            );
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
            if throttle && call.retry && replayable {
                let left = self.retry_timeout.saturating_sub(first_attempt.elapsed());
                let wait = retry_after
                    .unwrap_or_default()
                    .min(MAX_RETRY_AFTER)
                    .max(throttles.next().unwrap_or_default());
                if !left.is_zero() {
                    tracing::debug!(registry = %self.name, op = %call.op, status, "throttled; retrying");
                    drop(permit);
                    self.retry_sleep(wait.min(left), retry_after.is_some()).await;
                    continue;
                }
            } else if signal == Outcome::Failed
                && replayable
                && let Some(delay) = failures.next()
            {
                tracing::debug!(registry = %self.name, op = %call.op, status, "retrying");
                drop(permit);
                self.retry_sleep(delay, false).await;
                continue;
            }
            return Ok(Reply { response, permit });
        }
    }

    /// Time a body of `bytes` may take at the slowest rate still accepted.
    pub(super) fn transfer_time(&self, bytes: u64) -> Duration {
        Duration::from_secs_f64(bytes as f64 / self.min_transfer_rate.max(1) as f64)
    }

    /// Logs a change of this host's budget: decreases and their reversals at info, one
    /// line per change (not per answer: a storm would flood the log); growth at debug.
    fn log_change(&self, change: Option<Change>, cause: &str) {
        let Some(change) = change else { return };
        let (rate, limit) = self.gate.budget();
        let rate_per_s = (rate * 10.0).round() / 10.0;
        match change {
            Change::Decreased { throttled: true } => tracing::info!(
                registry = %self.name, cause, rate_per_s, concurrency = limit,
                "registry is throttling: slowing down"
            ),
            Change::Decreased { throttled: false } => tracing::info!(
                registry = %self.name, cause, rate_per_s, concurrency = limit,
                "registry is failing: fewer requests at once"
            ),
            Change::Undone { noise } => tracing::info!(
                registry = %self.name, rate_per_s, concurrency = limit, noise = (noise * 1000.0).round() / 10.0,
                "registry fails a share of requests whatever the load: back to the earlier budget"
            ),
            Change::Recovered => tracing::info!(
                registry = %self.name, rate_per_s, concurrency = limit,
                "registry accepts requests again: back near its earlier rate"
            ),
            Change::Grew | Change::Queueing => tracing::debug!(
                registry = %self.name, rate_per_s, concurrency = limit, ?change, "budget adapted"
            ),
        }
    }

    pub(super) async fn retry_sleep(&self, delay: Duration, retry_after: bool) {
        self.counters.retries.fetch_add(1, Ordering::Relaxed);
        self.gate.wait_to_retry(delay, retry_after).await;
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
            Error::InsecureRealm {
                registry,
                realm,
                reason,
                ..
            } => Error::InsecureRealm {
                registry,
                operation: op.to_string(),
                realm,
                reason,
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
        let (mut message, codes) = error_body(body);
        if status == 401 && !self.auth.has_credential() {
            message.push_str(" (no credentials for this registry in the docker config)");
        }
        if status == 429 {
            // Only a request that was throttled for the whole retry timeout ends here.
            message.push_str(&format!(
                " (still throttled after retrying for {} s, --registry-retry-timeout: the registry's \
                 quota is below what this run asks; set --registry-rate-limit, or \
                 --registry-quota for a quota shared by several hosts, to that quota)",
                self.retry_timeout.as_secs()
            ));
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
                codes,
            }
        }
    }

    /// Sends a call whose answer is small (manifest, listing page) and reads it whole, at
    /// most `cap` bytes of it. A body cut off or stalled half-way is retried like a failed
    /// request (within the same budget); one over the cap is a [`Error::Limit`].
    pub(crate) async fn fetch(&self, mut call: Call, cap: BodyCap) -> Result<Fetched, Error> {
        let mut failures = retry::failures(self.max_retries);
        loop {
            let again = call.try_clone();
            let op = call.op.clone();
            let Reply { response, permit } = self.send(call).await?;
            let status = response.status();
            let headers = response.headers().clone();
            match transport::read_limited(response, cap.bytes, self.idle, &self.counters.bytes_read).await {
                Ok(body) => return Ok(Fetched { status, headers, body }),
                Err(e) if !e.transient => {
                    return Err(Error::Limit {
                        registry: self.name.clone(),
                        operation: op,
                        what: cap.what.to_string(),
                        cap: cap.bytes as u64,
                        flag: cap.flag,
                    });
                }
                Err(e) => {
                    // A body cut off or stalled is a sign about the host too.
                    self.log_change(permit.report(Outcome::Failed, e.stalled, None), &e.message);
                    drop(permit);
                    let error = Error::Transport {
                        registry: self.name.clone(),
                        operation: op,
                        message: e.message,
                    };
                    match (again, failures.next()) {
                        (Some(next), Some(delay)) => {
                            tracing::debug!(registry = %self.name, %error, "retrying");
                            self.retry_sleep(delay, false).await;
                            call = next;
                        }
                        _ => return Err(error),
                    }
                }
            }
        }
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

    pub(super) fn mismatch(&self, op: &str, expected: Digest, actual: Digest) -> Error {
        Error::DigestMismatch {
            registry: self.name.clone(),
            operation: op.to_string(),
            expected,
            actual,
        }
    }
}

pub(super) fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The registry's explanation from an OCI error body (`{"errors":[{code,message}]}`),
/// or the start of the body as text; and the envelope's codes, for callers to match on.
pub(super) fn error_body(body: &[u8]) -> (String, Vec<OciCode>) {
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
        let message = env
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.code, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        let codes = env.errors.iter().map(|e| OciCode::from_wire(&e.code)).collect();
        return (message, codes);
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let message = if text.is_empty() {
        "(no details)".to_string()
    } else {
        text.chars().take(300).collect()
    };
    (message, Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_from_oci_envelopes_and_text() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        let message = |body: &[u8]| error_body(body).0;
        assert_eq!(message(body), "MANIFEST_UNKNOWN: manifest unknown");
        assert_eq!(message(b"  oops \n"), "oops");
        assert_eq!(message(b""), "(no details)");
        assert_eq!(error_body(body).1, [OciCode::ManifestUnknown]);
        let two = br#"{"errors":[{"code":"DENIED","message":"a"},{"code":"X_VENDOR","message":"b"}]}"#;
        assert_eq!(error_body(two).1, [OciCode::Denied, OciCode::Other("X_VENDOR".into())]);
        assert!(error_body(b"oops").1.is_empty());
    }
}
