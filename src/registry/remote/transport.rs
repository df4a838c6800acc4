//! The HTTP transport: one pooled `reqwest::Client` for every registry, and the timeouts
//! that turn a stalled connection into an error instead of a hang.
//!
//! reqwest's own `read_timeout` starts counting when a request starts, so it would cut a
//! long upload short; its total `timeout` would cut a 1 GB download short. Instead:
//! - connect: reqwest's `connect_timeout`;
//! - first byte: measured from the moment the request body has been fully sent;
//! - idle: no upload progress, or no download chunk, for that long.
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::hosts::ClientCertificate;
use crate::registry::{ClientOptions, Error};

/// Redirects followed per request (reqwest's default).
const MAX_REDIRECTS: usize = 10;

/// What an HTTP client trusts and presents: the run's, or a host's own (settings file).
#[derive(Debug, Clone)]
pub(crate) struct Tls {
    pub(crate) ca_file: Option<std::path::PathBuf>,
    pub(crate) client_certificate: Option<ClientCertificate>,
    pub(crate) connect_timeout: Duration,
}

impl ClientOptions {
    /// The run-wide TLS settings.
    pub(crate) fn tls(&self) -> Tls {
        Tls {
            ca_file: self.ca_file.clone(),
            client_certificate: None,
            connect_timeout: self.connect_timeout,
        }
    }
}

/// Builds a client. TLS is always verified: the platform verifier (system roots) plus the
/// PEM bundle in `ca_file`, if any; a client certificate is presented when given.
pub(crate) fn build_client(options: &Tls) -> Result<reqwest::Client, Error> {
    // Installing twice is harmless: the second call reports "already installed".
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .connect_timeout(options.connect_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .user_agent(concat!("kpromo/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            // reqwest drops `Authorization` on a redirect to another origin, but a token
            // request's form body (a refresh token) would follow a 307 in the clear.
            let from_https = attempt.previous().last().is_some_and(|u| u.scheme() == "https");
            if from_https && attempt.url().scheme() != "https" {
                attempt.error("refused a redirect from HTTPS to plain HTTP")
            } else if attempt.previous().len() > MAX_REDIRECTS {
                attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
            } else {
                attempt.follow()
            }
        }));
    if let Some(path) = &options.ca_file {
        let ca_file = |message: String| Error::CaFile {
            path: path.clone(),
            message,
        };
        let pem = std::fs::read(path).map_err(|e| ca_file(format!("cannot read it: {e}")))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| ca_file(format!("not a PEM certificate bundle: {e}")))?;
        if certs.is_empty() {
            return Err(ca_file("holds no PEM certificate".into()));
        }
        builder = builder.tls_certs_merge(certs);
    }
    if let Some(client) = &options.client_certificate {
        builder = builder.identity(client_identity(client)?);
    }
    builder.build().map_err(|e| {
        // Building fails only on what the CA file brought in (a certificate rustls refuses).
        match &options.ca_file {
            Some(path) => Error::CaFile {
                path: path.clone(),
                message: format!("its certificates cannot be used: {e}"),
            },
            None => Error::Transport {
                registry: "registry client".into(),
                operation: "build the HTTP client".into(),
                message: e.to_string(),
            },
        }
    })
}

/// A client certificate and its key (PEM files) as one identity. The key is read into
/// memory that is zeroed when dropped, and never appears in errors.
fn client_identity(client: &ClientCertificate) -> Result<reqwest::Identity, Error> {
    let problem = |path: &std::path::Path, message: String| Error::ClientCertificate {
        path: path.to_path_buf(),
        message,
    };
    let read = |path: &std::path::Path| {
        std::fs::read(path)
            .map(zeroize::Zeroizing::new)
            .map_err(|e| problem(path, format!("cannot read it: {e}")))
    };
    let mut pem = read(&client.certificate)?;
    pem.extend_from_slice(b"\n");
    pem.extend_from_slice(&read(&client.key)?);
    reqwest::Identity::from_pem(&pem).map_err(|e| {
        problem(
            &client.certificate,
            format!(
                "not a PEM client certificate with its key ({}): {e}",
                client.key.display()
            ),
        )
    })
}

/// Upload progress shared between a request body and the watchdog awaiting the response.
#[derive(Debug)]
pub(crate) struct Progress {
    start: Instant,
    last_ms: AtomicU64,
    /// Bytes of the body handed to the connection so far, and how many there are in all.
    /// (hyper stops polling a body once `Content-Length` bytes are out, so "sent" is a
    /// count, not the end of the stream.)
    bytes: AtomicU64,
    total: u64,
    body_done: AtomicBool,
}

impl Progress {
    /// For a request whose body is already in memory (sent at once).
    pub(crate) fn sent() -> Arc<Self> {
        Self::streaming(0)
    }

    /// For a streamed body of `total` bytes.
    pub(crate) fn streaming(total: u64) -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            total,
            body_done: AtomicBool::new(total == 0),
        })
    }

    /// Bytes the body has in all.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// Bytes of the body handed to the connection.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    fn touch(&self) {
        self.last_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// When a request whose body is out and which has had no answer yet passes its
    /// `first_byte` timeout.
    fn deadline(&self, first_byte: Duration) -> Instant {
        Instant::now() + first_byte.saturating_sub(self.since_last())
    }

    fn since_last(&self) -> Duration {
        self.start
            .elapsed()
            .saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// Why a request produced no response.
#[derive(Debug)]
pub(crate) enum SendError {
    Http(reqwest::Error),
    /// No response within the first-byte timeout after the body was sent.
    NoResponse(Duration),
    /// The request body made no progress for the idle timeout.
    UploadStalled(Duration),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Http(e) => {
                // reqwest's top-level message is generic ("error sending request"): add causes.
                write!(f, "{e}")?;
                let mut source = std::error::Error::source(e);
                while let Some(s) = source {
                    write!(f, ": {s}")?;
                    source = s.source();
                }
                Ok(())
            }
            SendError::NoResponse(d) => write!(f, "no response within {}", seconds(*d)),
            SendError::UploadStalled(d) => write!(f, "upload made no progress for {}", seconds(*d)),
        }
    }
}

/// `1.5s`, `30s`: deadlines adapt to latency, so whole seconds would say `0s`.
fn seconds(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// Sends a request, enforcing the first-byte and upload-idle timeouts.
///
/// `first_byte` is asked again at every tick: a host's deadline shrinks once its latency
/// is known, and a request sent before that (under the generous deadline for an unknown
/// host) must not wait out the old one while its peers already know it hung.
pub(crate) async fn execute(
    request: reqwest::RequestBuilder,
    progress: &Progress,
    first_byte: impl Fn() -> Duration,
    idle: Duration,
) -> Result<reqwest::Response, SendError> {
    progress.touch();
    watch(std::pin::pin!(request.send()), progress, first_byte, idle).await
}

/// A request on its way: owned, so that a hedged request's losing copy can be handed on.
type Sending = Pin<Box<dyn Future<Output = reqwest::Result<reqwest::Response>> + Send>>;

/// Awaits a request sent (its `progress` touched) earlier, within its timeouts.
async fn watch(
    mut send: impl Future<Output = reqwest::Result<reqwest::Response>> + Unpin,
    progress: &Progress,
    first_byte: impl Fn() -> Duration,
    idle: Duration,
) -> Result<reqwest::Response, SendError> {
    let tick = (first_byte().min(idle) / 4).clamp(Duration::from_millis(10), Duration::from_millis(250));
    loop {
        tokio::select! {
            result = &mut send => return result.map_err(SendError::Http),
            _ = tokio::time::sleep(tick) => {
                let quiet = progress.since_last();
                let first_byte = first_byte();
                if progress.body_done.load(Ordering::Relaxed) {
                    if quiet >= first_byte {
                        return Err(SendError::NoResponse(first_byte));
                    }
                } else if quiet >= idle {
                    return Err(SendError::UploadStalled(idle));
                }
            }
        }
    }
}

/// What a hedged request came to: the answer used, and the copy that lost while it still
/// had time to answer, for a caller that must see what that copy did at the registry.
pub(crate) struct Hedged {
    pub(crate) answer: Result<reqwest::Response, SendError>,
    pub(crate) loser: Option<Loser>,
}

/// The copy of a hedged request whose twin answered first, still in flight.
pub(crate) struct Loser {
    send: Sending,
    deadline: Instant,
}

impl Loser {
    /// Its answer, if it comes within the response deadline it was sent under.
    pub(crate) async fn answer(self) -> Option<reqwest::Response> {
        tokio::time::timeout_at(self.deadline.into(), self.send)
            .await
            .ok()?
            .ok()
    }
}

/// Sends a request that is safe to send twice (`send.rs`: `Call::hedge`), and if it has
/// no answer after `hedge`, the same request again (`twin`) when `allowed()` agrees; the
/// first answer wins. A connection that took a request and went silent then costs the
/// hedge delay, not the response deadline and a retry: hung connections of one registry
/// no longer hold a promotion for seconds each. ("The Tail at Scale", Dean and Barroso:
/// hedged requests.) The losing copy is handed back rather than dropped: dropping it closes
/// its connection, but not what it may already have done at the registry.
pub(crate) async fn execute_hedged(
    request: reqwest::RequestBuilder,
    twin: reqwest::RequestBuilder,
    hedge: Duration,
    allowed: impl FnOnce() -> bool,
    progress: &Progress,
    first_byte: impl Fn() -> Duration,
    idle: Duration,
) -> Hedged {
    let alone = |answer| Hedged { answer, loser: None };
    progress.touch();
    let mut first: Sending = Box::pin(request.send());
    {
        let watched = watch(&mut first, progress, &first_byte, idle);
        tokio::pin!(watched);
        tokio::select! {
            result = &mut watched => return alone(result),
            () = tokio::time::sleep(hedge) => {}
        }
        if !allowed() {
            return alone(watched.await);
        }
    }
    let twin_progress = Progress::sent();
    let mut second: Sending = Box::pin(twin.send());
    // Which copy answered while the other still had time to.
    enum Winner {
        First,
        Second,
    }
    let (answer, winner) = {
        let first_watched = watch(&mut first, progress, &first_byte, idle);
        let second_watched = watch(&mut second, &twin_progress, &first_byte, idle);
        tokio::pin!(first_watched, second_watched);
        // One that fails leaves the other to answer.
        tokio::select! {
            result = &mut first_watched => match result {
                Ok(response) => (Ok(response), Some(Winner::First)),
                Err(_) => (second_watched.await, None),
            },
            result = &mut second_watched => match result {
                Ok(response) => (Ok(response), Some(Winner::Second)),
                Err(_) => (first_watched.await, None),
            },
        }
    };
    let loser = winner.map(|winner| match winner {
        Winner::First => Loser {
            send: second,
            deadline: twin_progress.deadline(first_byte()),
        },
        Winner::Second => Loser {
            send: first,
            deadline: progress.deadline(first_byte()),
        },
    });
    Hedged { answer, loser }
}

/// Wraps an upload body: records progress for the watchdog and counts bytes.
pub(crate) struct ProgressStream<S> {
    inner: S,
    progress: Arc<Progress>,
    written: Arc<AtomicU64>,
}

impl<S> ProgressStream<S> {
    pub(crate) fn new(inner: S, progress: Arc<Progress>, written: Arc<AtomicU64>) -> Self {
        Self {
            inner,
            progress,
            written,
        }
    }
}

impl<S, E> Stream for ProgressStream<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.poll_next_unpin(cx);
        match &polled {
            Poll::Ready(Some(Ok(chunk))) => {
                let len = chunk.len() as u64;
                self.written.fetch_add(len, Ordering::Relaxed);
                let sent = self.progress.bytes.fetch_add(len, Ordering::Relaxed) + len;
                if sent >= self.progress.total {
                    self.progress.body_done.store(true, Ordering::Relaxed);
                }
                self.progress.touch();
            }
            Poll::Ready(None) => {
                self.progress.touch();
                self.progress.body_done.store(true, Ordering::Relaxed);
            }
            _ => {}
        }
        polled
    }
}

/// Why a small body could not be read.
#[derive(Debug)]
pub(crate) struct ReadError {
    pub(crate) message: String,
    /// A broken or stalled connection (worth another request), not an oversized body.
    pub(crate) transient: bool,
    /// No progress within the idle timeout.
    pub(crate) stalled: bool,
}

/// Reads a whole (small) response body: manifests, tag lists, token answers. Bounded in
/// size, and each chunk must arrive within `idle`.
pub(crate) async fn read_limited(
    response: reqwest::Response,
    limit: usize,
    idle: Duration,
    read: &AtomicU64,
) -> Result<Bytes, ReadError> {
    let too_large = |message: String| ReadError {
        message,
        transient: false,
        stalled: false,
    };
    let broken = |message: String| ReadError {
        message,
        transient: true,
        stalled: false,
    };
    if let Some(len) = response.content_length()
        && len > limit as u64
    {
        return Err(too_large(format!(
            "response body of {len} bytes exceeds the {limit}-byte limit"
        )));
    }
    let mut stream = response.bytes_stream();
    let mut body = Vec::new();
    loop {
        let next = tokio::time::timeout(idle, stream.next()).await.map_err(|_| ReadError {
            message: format!("response body stalled for {}s", idle.as_secs()),
            transient: true,
            stalled: true,
        })?;
        match next {
            None => break,
            Some(Err(e)) => return Err(broken(format!("reading response body: {}", SendError::Http(e)))),
            Some(Ok(chunk)) => {
                read.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                if body.len() + chunk.len() > limit {
                    return Err(too_large(format!("response body exceeds the {limit}-byte limit")));
                }
                body.extend_from_slice(&chunk);
            }
        }
    }
    Ok(Bytes::from(body))
}

/// Why an HTTPS probe of a host that may also speak plain HTTP failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProbeFailure {
    /// It speaks TLS but its certificate is not trusted: report, never downgrade.
    Certificate,
    /// Nothing listens there: no scheme would help.
    Unreachable,
    /// Anything else (garbage or silence in answer to a TLS hello): try plain HTTP.
    NotTls,
}

pub(crate) fn classify_probe_failure(error: &SendError) -> ProbeFailure {
    let SendError::Http(e) = error else {
        return ProbeFailure::NotTls;
    };
    // io::Error::source skips the error it wraps, and rustls errors arrive wrapped in
    // io::Errors inside io::Errors: follow both `source()` and `get_ref()`.
    let mut pending: Vec<&(dyn std::error::Error + 'static)> = vec![e];
    while let Some(err) = pending.pop() {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return ProbeFailure::Unreachable;
            }
            if let Some(inner) = io.get_ref() {
                pending.push(inner);
            }
        }
        if let Some(tls) = err.downcast_ref::<rustls::Error>()
            && matches!(
                tls,
                rustls::Error::InvalidCertificate(_)
                    | rustls::Error::NoCertificatesPresented
                    | rustls::Error::InvalidCertRevocationList(_)
            )
        {
            return ProbeFailure::Certificate;
        }
        pending.extend(err.source());
    }
    ProbeFailure::NotTls
}
