//! Blobs: HEAD, verified streaming GET, upload and cross-repository mount.
//!
//! Uploads are one POST (open a session) and one streaming monolithic PUT `?digest=`.
//! The first [`PEEK`] bytes are read before the PUT: a blob that fits (most configs and
//! small layers) can be re-sent on a transient failure, and if the registry refuses the
//! monolithic PUT before reading past them, the upload falls back to chunked PATCHes of
//! [`CHUNK`] bytes without losing the source stream. Larger bodies are never buffered.
use crate::sync::lock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, stream};
use reqwest::header;
use reqwest::{Method, StatusCode};
use url::Url;

use super::control::Outcome;
use super::gate::Reporter;
use super::send::{Call, Payload, Reply};
use super::{RemoteRegistry, auth, transport};
use crate::digest::{Digest, DigestWriter};
use crate::registry::{BlobStream, Error, MountOutcome, OciCode};

/// Bytes read ahead of an upload (see the module docs).
const PEEK: usize = 4 << 20;
/// PATCH size in the chunked fallback.
const CHUNK: usize = 16 << 20;
/// Fresh upload sessions tried when a monolithic PUT fails transiently.
const UPLOAD_ATTEMPTS: usize = 4;

/// Upload sessions opened by a refused mount (HTTP 202), kept for the upload that follows.
#[derive(Debug, Default)]
pub(crate) struct PendingSessions(Mutex<HashMap<(String, Digest), Url>>);

impl PendingSessions {
    fn put(&self, repo: &str, digest: Digest, url: Url) {
        lock(&self.0).insert((repo.to_string(), digest), url);
    }

    fn take(&self, repo: &str, digest: Digest) -> Option<Url> {
        lock(&self.0).remove(&(repo.to_string(), digest))
    }
}

enum Opened {
    Mounted,
    Session(Url),
}

/// A source stream shared between the monolithic attempt and the fallback: whoever
/// takes it first owns it.
type Rest = Arc<Mutex<Option<BlobStream>>>;

impl RemoteRegistry {
    async fn blob_url(&self, op: &str, repo: &str, digest: &Digest) -> Result<Url, Error> {
        self.repo_url(op, repo, &format!("blobs/{digest}")).await
    }

    pub(super) async fn blob_size(&self, repo: &str, digest: &Digest) -> Result<Option<u64>, Error> {
        let op = format!("HEAD blob {repo}@{digest}");
        let call = Call::new(
            op.clone(),
            Method::HEAD,
            self.blob_url(&op, repo, digest).await?,
            vec![auth::repo_scope(repo, false)],
        )
        .hedgeable();
        let reply = self.send(call).await?;
        match reply.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => reply
                .header(header::CONTENT_LENGTH)
                .and_then(|v| v.parse::<u64>().ok())
                .map(Some)
                .ok_or_else(|| self.protocol(&op, "blob HEAD without Content-Length".into())),
            _ => Err(self.failure(&op, reply).await),
        }
    }

    pub(super) async fn get_blob(&self, repo: &str, digest: &Digest) -> Result<BlobStream, Error> {
        let op = format!("GET blob {repo}@{digest}");
        let call = Call::new(
            op.clone(),
            Method::GET,
            self.blob_url(&op, repo, digest).await?,
            vec![auth::repo_scope(repo, false)],
        );
        let reply = self.send(call).await?;
        if !reply.status().is_success() {
            return Err(self.failure(&op, reply).await);
        }
        let length = reply.response.content_length();
        // The body may take its size at the slowest accepted rate, and no chunk longer than
        // the stall timeout.
        let deadline = length.map(|n| std::time::Instant::now() + self.idle + self.transfer_time(n));
        let state = VerifyState {
            length,
            seen: 0,
            inner: Box::pin(reply.response.bytes_stream()),
            check: DigestCheck::new(*digest),
            idle: self.idle,
            deadline,
            reporter: reply.permit.reporter(),
            read: self.counters.bytes_read.clone(),
            registry: self.name.clone(),
            op,
            finished: false,
        };
        // The concurrency slot covers the exchange, not the body: a copy within one
        // registry holds a download open while it uploads, and must not wait on itself.
        drop(reply.permit);
        let chunks = stream::unfold(state, VerifyState::next).fuse();
        // Without a length the verdict comes only at the end of the body, after the last
        // chunk: an upload of this stream must then check the bytes itself.
        Ok(match length {
            Some(_) => BlobStream::vouched(chunks, *digest),
            None => BlobStream::new(chunks),
        })
    }

    /// POST an upload session, optionally asking to mount `digest` from `from`.
    async fn open_upload(&self, repo: &str, mount: Option<(&Digest, &str)>) -> Result<Opened, Error> {
        let op = match mount {
            Some((digest, from)) => format!("mount blob {digest} from {from} into {repo}"),
            None => format!("start upload to {repo}"),
        };
        let mut url = self.repo_url(&op, repo, "blobs/uploads/").await?;
        let mut scopes = vec![auth::repo_scope(repo, true)];
        if let Some((digest, from)) = mount {
            // `from` goes into a query and a token scope, where a space would add scopes.
            self.check_repo(&op, from)?;
            url.query_pairs_mut()
                .append_pair("mount", &digest.to_string())
                .append_pair("from", from);
            scopes.push(auth::repo_scope(from, false));
        }
        let call = Call::new(op.clone(), Method::POST, url, scopes)
            .header(header::CONTENT_LENGTH, "0")
            .hedgeable_opening_session();
        let reply = self.send(call).await?;
        match reply.status() {
            StatusCode::CREATED if mount.is_some() => Ok(Opened::Mounted),
            StatusCode::ACCEPTED => Ok(Opened::Session(self.location(&op, &reply)?)),
            _ => Err(self.failure(&op, reply).await),
        }
    }

    fn location(&self, op: &str, reply: &Reply) -> Result<Url, Error> {
        let location = reply
            .header(header::LOCATION)
            .ok_or_else(|| self.protocol(op, "upload answer without Location".into()))?;
        // Relative locations are resolved against the request, absolute ones kept.
        reply
            .response
            .url()
            .join(location)
            .map_err(|e| self.protocol(op, format!("bad Location {location:?}: {e}")))
    }

    pub(super) async fn mount_blob(&self, repo: &str, digest: &Digest, from: &str) -> Result<MountOutcome, Error> {
        match self.open_upload(repo, Some((digest, from))).await? {
            Opened::Mounted => Ok(MountOutcome::Mounted),
            Opened::Session(url) => {
                // Refused: the registry opened an upload session instead; the upload that
                // follows uses it rather than leaving it behind.
                self.pending.put(repo, *digest, url);
                Ok(MountOutcome::NotMounted)
            }
        }
    }

    async fn session(&self, repo: &str, digest: &Digest) -> Result<Url, Error> {
        if let Some(url) = self.pending.take(repo, *digest) {
            return Ok(url);
        }
        match self.open_upload(repo, None).await? {
            Opened::Session(url) => Ok(url),
            Opened::Mounted => Err(self.protocol("start upload", "unexpected 201 to a plain upload POST".into())),
        }
    }

    pub(super) async fn put_blob(&self, repo: &str, digest: &Digest, size: u64, body: BlobStream) -> Result<(), Error> {
        let op = format!("upload blob {repo}@{digest}");
        let mut source = verified_source(body, *digest, size, self.name.clone(), op.clone());
        let first = read_up_to(&mut source, PEEK).await?;
        let whole = first.len() as u64 >= size;
        if whole {
            // Poll the end of the source: that is where its size and digest are checked.
            if let Some(extra) = source.next().await {
                extra?;
                return Err(self.protocol(&op, format!("source has more than the expected {size} bytes")));
            }
        }
        let rest: Rest = Arc::new(Mutex::new((!whole).then_some(source)));
        let mut last_error = None;
        for _ in 0..UPLOAD_ATTEMPTS {
            let session = self.session(repo, digest).await?;
            let touched = Arc::new(AtomicBool::new(false));
            let outcome = self
                .put_monolithic(
                    &op,
                    repo,
                    session.clone(),
                    digest,
                    size,
                    first.clone(),
                    rest.clone(),
                    touched.clone(),
                )
                .await;
            let error = match outcome {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            self.abandon(repo, session).await;
            if touched.load(Ordering::Relaxed) {
                // Part of the source went to a failed request: the stream cannot be
                // replayed here. The caller may retry the copy from a fresh source.
                return Err(error);
            }
            if error.is_transient() {
                last_error = Some(error);
                continue;
            }
            if refuses_monolithic(&error) {
                tracing::debug!(registry = %self.name, %op, %error, "monolithic upload refused; uploading in chunks");
                let session = self.session(repo, digest).await?;
                let rest = lock(&rest).take();
                return self.put_chunked(&op, repo, session, digest, first, rest).await;
            }
            return Err(error);
        }
        Err(last_error.unwrap_or_else(|| self.protocol(&op, "upload failed".into())))
    }

    /// Cancels an upload session that will not be used again, so that it does not linger
    /// in the registry's storage (best effort: it may already be gone).
    async fn abandon(&self, repo: &str, session: Url) {
        let op = format!("cancel upload to {repo}");
        let call = Call {
            retry: false,
            ..Call::new(op, Method::DELETE, session, vec![auth::repo_scope(repo, true)])
        };
        if let Ok(reply) = self.send(call).await {
            tracing::debug!(registry = %self.name, status = reply.status().as_u16(), "upload session cancelled");
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn put_monolithic(
        &self,
        op: &str,
        repo: &str,
        session: Url,
        digest: &Digest,
        size: u64,
        first: Bytes,
        rest: Rest,
        touched: Arc<AtomicBool>,
    ) -> Result<(), Error> {
        let mut url = session;
        url.query_pairs_mut().append_pair("digest", &digest.to_string());
        let head = stream::once(async move { Ok::<Bytes, Error>(first) });
        // A failing source (corrupt, short, broken) aborts the request; keep its error to
        // report instead of the transport error the abort causes.
        let source_error: Arc<Mutex<Option<Error>>> = Arc::default();
        let keep = source_error.clone();
        let tail = stream::once(async move {
            let taken = lock(&rest).take();
            if taken.is_some() {
                touched.store(true, Ordering::Relaxed);
            }
            taken.unwrap_or_else(|| BlobStream::new(stream::empty()))
        })
        .flatten()
        .map(move |item| {
            item.map_err(|e| {
                let stand_in = std::io::Error::other(e.to_string());
                *lock(&keep) = Some(e);
                stand_in
            })
        });
        let head = head.map(|item| item.map_err(|e| std::io::Error::other(e.to_string())));
        let progress = transport::Progress::streaming(size);
        let sent = progress.clone();
        let counted = transport::ProgressStream::new(
            Box::pin(head.chain(tail)),
            progress.clone(),
            self.counters.bytes_written.clone(),
        );
        let body = reqwest::Body::wrap_stream(counted);
        let call = Call::new(op.to_string(), Method::PUT, url, vec![auth::repo_scope(repo, true)])
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, &size.to_string())
            .body(Payload::Once(Some((body, progress))));
        let outcome = self.finish_upload(op, call, digest).await;
        if let Some(e) = lock(&source_error).take() {
            return Err(e);
        }
        if outcome.is_ok() && sent.bytes() != size {
            // The last chunk is released only once the source is verified: an answer
            // before it went out proves nothing.
            return Err(self.protocol(op, "the registry accepted the blob before receiving all of it".into()));
        }
        outcome
    }

    async fn finish_upload(&self, op: &str, call: Call, digest: &Digest) -> Result<(), Error> {
        let reply = self.send(call).await?;
        if reply.status() != StatusCode::CREATED && !reply.status().is_success() {
            return Err(self.failure(op, reply).await);
        }
        if let Some(said) = self.header_digest(op, reply.response.headers())?
            && said != *digest
        {
            return Err(self.mismatch(op, *digest, said));
        }
        Ok(())
    }

    async fn put_chunked(
        &self,
        op: &str,
        repo: &str,
        session: Url,
        digest: &Digest,
        first: Bytes,
        mut rest: Option<BlobStream>,
    ) -> Result<(), Error> {
        let scopes = vec![auth::repo_scope(repo, true)];
        let mut url = session;
        let mut offset = 0u64;
        let mut pending = BytesMut::from(&first[..]);
        loop {
            if let Some(source) = rest.as_mut() {
                let more = read_up_to(source, CHUNK.saturating_sub(pending.len())).await?;
                if more.is_empty() {
                    rest = None;
                }
                pending.extend_from_slice(&more);
            }
            if pending.is_empty() {
                break;
            }
            let chunk = pending.split().freeze();
            let end = offset + chunk.len() as u64;
            let call = Call::new(op.to_string(), Method::PATCH, url.clone(), scopes.clone())
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .header(header::CONTENT_RANGE, &format!("{offset}-{}", end - 1))
                .body(Payload::Bytes(chunk));
            let reply = self.send(call).await?;
            if reply.status() != StatusCode::ACCEPTED && !reply.status().is_success() {
                return Err(self.failure(op, reply).await);
            }
            url = self.location(op, &reply)?;
            offset = end;
            if rest.is_none() {
                break;
            }
        }
        url.query_pairs_mut().append_pair("digest", &digest.to_string());
        let call = Call::new(op.to_string(), Method::PUT, url, scopes).header(header::CONTENT_LENGTH, "0");
        self.finish_upload(op, call, digest).await
    }
}

/// Errors that mean "this registry does not take a monolithic PUT" rather than "this
/// content is wrong": worth one chunked attempt.
fn refuses_monolithic(error: &Error) -> bool {
    matches!(error, Error::Status { status, .. } if matches!(status, 400 | 404 | 405 | 411 | 413 | 416 | 501))
        && !error.has_code(OciCode::DigestInvalid)
}

/// Reads from `source` until `limit` bytes or its end.
async fn read_up_to(source: &mut BlobStream, limit: usize) -> Result<Bytes, Error> {
    let mut buf = BytesMut::new();
    while buf.len() < limit {
        match source.next().await {
            None => break,
            Some(chunk) => buf.extend_from_slice(&chunk?),
        }
    }
    Ok(buf.freeze())
}

/// Wraps an upload source: fails (instead of ending) if it yields more or fewer than
/// `size` bytes or bytes that do not hash to `digest`, so the registry never commits them.
/// A source that already vouches for `digest` is not hashed a second time; its length is
/// still checked.
///
/// The digest is checked when the last expected byte arrives, and that last chunk is
/// held back on a mismatch: an HTTP client stops reading a body at its `Content-Length`,
/// so the end of the stream may never be polled.
fn verified_source(source: BlobStream, digest: Digest, size: u64, registry: String, op: String) -> BlobStream {
    struct State {
        source: BlobStream,
        check: DigestCheck,
        seen: u64,
        done: bool,
        size: u64,
        registry: String,
        op: String,
    }
    impl State {
        fn fail(&self, message: String) -> Error {
            Error::Protocol {
                registry: self.registry.clone(),
                operation: self.op.clone(),
                message,
            }
        }

        fn verdict(&mut self) -> Option<Error> {
            self.check.verdict(&self.registry, &self.op)
        }

        async fn next(mut self) -> Option<(Result<Bytes, Error>, Self)> {
            if self.done {
                return None;
            }
            let size = self.size;
            let error = match self.source.next().await {
                Some(Ok(chunk)) => {
                    self.seen += chunk.len() as u64;
                    if self.seen > size {
                        Some(self.fail(format!("source has more than the expected {size} bytes")))
                    } else {
                        self.check.update(&chunk);
                        match if self.seen == size { self.verdict() } else { None } {
                            Some(mismatch) => Some(mismatch),
                            None => return Some((Ok(chunk), self)),
                        }
                    }
                }
                Some(Err(e)) => Some(e),
                // Verified when the last byte came (an empty blob is verified here).
                None if self.seen == size => self.verdict(),
                None => Some(self.fail(format!("source ended after {} of {size} bytes", self.seen))),
            };
            self.done = true;
            error.map(|e| (Err(e), self))
        }
    }
    let check = if source.vouched_digest() == Some(digest) {
        DigestCheck::vouched()
    } else {
        DigestCheck::new(digest)
    };
    let state = State {
        source,
        check,
        seen: 0,
        done: false,
        size,
        registry,
        op,
    };
    // Fused: the upload may poll it again after its end.
    BlobStream::new(stream::unfold(state, State::next).fuse())
}

/// State of a verified download stream.
struct VerifyState {
    inner: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<Bytes>> + Send>>,
    /// `Content-Length`, when sent: the digest is then checked as the last byte arrives
    /// and that chunk is held back on a mismatch, so a consumer that stops reading at the
    /// expected size never holds the whole corrupt blob.
    length: Option<u64>,
    seen: u64,
    check: DigestCheck,
    idle: std::time::Duration,
    /// When the whole body must have arrived (with a known length).
    deadline: Option<std::time::Instant>,
    /// A stall is a sign about the host, though the request's slot is long returned.
    reporter: Reporter,
    read: Arc<std::sync::atomic::AtomicU64>,
    registry: String,
    op: String,
    finished: bool,
}

impl VerifyState {
    async fn next(mut self) -> Option<(Result<Bytes, Error>, Self)> {
        if self.finished {
            return None;
        }
        let transport = |s: &Self, message: String| Error::Transport {
            registry: s.registry.clone(),
            operation: s.op.clone(),
            message,
        };
        let left = self
            .deadline
            .map_or(self.idle, |d| d.saturating_duration_since(std::time::Instant::now()));
        let next = match tokio::time::timeout(self.idle.min(left), self.inner.next()).await {
            Ok(n) => n,
            Err(_) => {
                self.finished = true;
                self.reporter.report(Outcome::Failed, true, None);
                let message = if left < self.idle {
                    format!(
                        "download too slow: {} of {} bytes by its deadline",
                        self.seen,
                        self.length.unwrap_or_default()
                    )
                } else {
                    format!("download stalled for {}s", self.idle.as_secs())
                };
                let e = transport(&self, message);
                return Some((Err(e), self));
            }
        };
        match next {
            Some(Ok(chunk)) => {
                self.read.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                self.seen += chunk.len() as u64;
                self.check.update(&chunk);
                if self.length == Some(self.seen)
                    && let Some(mismatch) = self.verdict()
                {
                    self.finished = true;
                    return Some((Err(mismatch), self));
                }
                Some((Ok(chunk), self))
            }
            Some(Err(e)) => {
                self.finished = true;
                let e = transport(&self, transport::SendError::Http(e).to_string());
                Some((Err(e), self))
            }
            None => {
                self.finished = true;
                self.verdict().map(|e| (Err(e), self))
            }
        }
    }

    fn verdict(&mut self) -> Option<Error> {
        self.check.verdict(&self.registry, &self.op)
    }
}

/// A digest check over a blob's bytes as they pass, made once: at its last expected byte
/// or at its end, whichever the stream sees first.
struct DigestCheck {
    /// `None` once the verdict is made, or from the start for a vouched source.
    pending: Option<(DigestWriter, Digest)>,
}

impl DigestCheck {
    fn new(expected: Digest) -> Self {
        Self {
            pending: Some((DigestWriter::new(), expected)),
        }
    }

    /// For bytes whose source already checks this digest: nothing to hash.
    fn vouched() -> Self {
        Self { pending: None }
    }

    fn update(&mut self, chunk: &[u8]) {
        if let Some((hasher, _)) = self.pending.as_mut() {
            hasher.update(chunk);
        }
    }

    /// The mismatch, if the bytes so far do not hash to the expected digest. Only the
    /// first call checks.
    fn verdict(&mut self, registry: &str, operation: &str) -> Option<Error> {
        let (hasher, expected) = self.pending.take()?;
        let actual = hasher.finish();
        (actual != expected).then(|| Error::DigestMismatch {
            registry: registry.to_string(),
            operation: operation.to_string(),
            expected,
            actual,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&'static [u8]]) -> BlobStream {
        let items: Vec<Result<Bytes, Error>> = parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        BlobStream::new(stream::iter(items))
    }

    async fn drain(mut s: BlobStream) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        while let Some(c) = s.next().await {
            out.extend_from_slice(&c?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn verified_source_passes_good_bytes_and_fails_bad_ones() {
        let d = Digest::of(b"hello world");
        let ok = verified_source(chunks(&[b"hello ", b"world"]), d, 11, "r".into(), "op".into());
        assert_eq!(drain(ok).await.unwrap(), b"hello world");

        // The last chunk is held back: a consumer that stops at 11 bytes never gets them all.
        let mut flipped = verified_source(chunks(&[b"hello ", b"World"]), d, 11, "r".into(), "op".into());
        assert_eq!(flipped.next().await.unwrap().unwrap(), "hello ");
        assert!(matches!(flipped.next().await, Some(Err(Error::DigestMismatch { .. }))));
        assert!(flipped.next().await.is_none());

        let empty = verified_source(chunks(&[]), Digest::of(b""), 0, "r".into(), "op".into());
        assert_eq!(drain(empty).await.unwrap(), b"");
        let not_empty = verified_source(chunks(&[]), d, 0, "r".into(), "op".into());
        assert!(matches!(drain(not_empty).await, Err(Error::DigestMismatch { .. })));

        let short = verified_source(chunks(&[b"hello"]), d, 11, "r".into(), "op".into());
        assert!(matches!(drain(short).await, Err(Error::Protocol { .. })));

        let long = verified_source(chunks(&[b"hello world!"]), d, 11, "r".into(), "op".into());
        assert!(matches!(drain(long).await, Err(Error::Protocol { .. })));
    }

    #[tokio::test]
    async fn only_a_vouch_for_the_same_digest_skips_the_second_hash() {
        let d = Digest::of(b"hello world");
        let vouched = |parts: &[&'static [u8]], digest| {
            let items: Vec<Result<Bytes, Error>> = parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
            BlobStream::vouched(stream::iter(items), digest)
        };
        // A stream vouching for `d` is trusted to have checked its bytes (this one lies, which
        // shows that the upload side did not hash them again)...
        let trusted = verified_source(vouched(&[b"hello World"], d), d, 11, "r".into(), "op".into());
        assert_eq!(drain(trusted).await.unwrap(), b"hello World");
        // ...but its length is still checked,
        let short = verified_source(vouched(&[b"hello"], d), d, 11, "r".into(), "op".into());
        assert!(matches!(drain(short).await, Err(Error::Protocol { .. })));
        // and a vouch for another digest counts for nothing.
        let other = verified_source(
            vouched(&[b"hello World"], Digest::of(b"x")),
            d,
            11,
            "r".into(),
            "op".into(),
        );
        assert!(matches!(drain(other).await, Err(Error::DigestMismatch { .. })));
    }

    #[test]
    fn digest_errors_do_not_trigger_the_chunked_fallback() {
        let status = |status, codes: Vec<OciCode>| Error::Status {
            registry: "r".into(),
            operation: "o".into(),
            status,
            message: String::new(),
            codes,
        };
        assert!(refuses_monolithic(&status(405, vec![])));
        assert!(!refuses_monolithic(&status(400, vec![OciCode::DigestInvalid])));
        assert!(!refuses_monolithic(&status(401, vec![])));
    }
}
