//! Blob transfers: digests verified while streaming in both directions, mounts, upload
//! sessions (reused, chunked fallback, cancelled) and stalled sources.
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use kpromo::digest::Digest;
use kpromo::registry::{BlobStream, ClientOptions, Error, MountOutcome, Registry};
use wiremock::matchers::{body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::mock::{open, options};

fn stream_of(data: Bytes, chunk: usize) -> BlobStream {
    let chunks: Vec<Result<Bytes, Error>> = (0..data.len())
        .step_by(chunk)
        .map(|at| Ok(data.slice(at..(at + chunk).min(data.len()))))
        .collect();
    BlobStream::new(futures_util::stream::iter(chunks))
}

fn body_of(data: &'static [u8]) -> BlobStream {
    stream_of(Bytes::from_static(data), 3)
}

#[tokio::test]
async fn a_corrupted_blob_stream_ends_with_an_error() {
    let server = MockServer::start().await;
    let good = vec![7u8; 300_000];
    let mut bad = good.clone();
    bad[150_000] ^= 1;
    let digest = Digest::of(&good);
    Mock::given(path(format!("/v2/r/blobs/{digest}")))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(bad))
        .mount(&server)
        .await;
    let (_r, remote) = open(&server, options());
    let mut stream = remote.get_blob("r", &digest).await.unwrap();
    let mut received = 0;
    let mut last = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(chunk) => received += chunk.len(),
            Err(e) => last = Some(e),
        }
    }
    // The verdict comes with the last byte, which is held back: a consumer never sees
    // the whole corrupt blob, even one that stops reading at the expected size.
    assert!(received < good.len(), "{received}");
    assert!(matches!(last, Some(Error::DigestMismatch { .. })), "{last:?}");
}

#[tokio::test]
async fn mount_created_needs_no_upload() {
    let server = MockServer::start().await;
    let digest = Digest::of(b"layer");
    Mock::given(method("POST"))
        .and(path("/v2/dst/blobs/uploads/"))
        .respond_with(ResponseTemplate::new(201))
        .expect(1)
        .mount(&server)
        .await;
    let (_r, remote) = open(&server, options());
    assert_eq!(
        remote.mount_blob("dst", &digest, "src").await.unwrap(),
        MountOutcome::Mounted
    );
}

#[tokio::test]
async fn a_refused_mount_session_is_reused_for_the_upload() {
    let server = MockServer::start().await;
    let data: &'static [u8] = b"layer bytes";
    let digest = Digest::of(data);
    Mock::given(method("POST"))
        .and(path("/v2/dst/blobs/uploads/"))
        .respond_with(
            ResponseTemplate::new(202).insert_header("Location", "/v2/dst/blobs/uploads/session-1?_state=abc"),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/v2/dst/blobs/uploads/session-1"))
        .and(query_param("_state", "abc"))
        .and(query_param("digest", digest.to_string().as_str()))
        .and(body_string_contains("layer bytes"))
        .respond_with(ResponseTemplate::new(201).insert_header("Docker-Content-Digest", digest.to_string().as_str()))
        .expect(1)
        .mount(&server)
        .await;
    let (_r, remote) = open(&server, options());
    assert_eq!(
        remote.mount_blob("dst", &digest, "src").await.unwrap(),
        MountOutcome::NotMounted
    );
    remote
        .put_blob("dst", &digest, data.len() as u64, body_of(data))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_refused_monolithic_put_falls_back_to_chunks() {
    let server = MockServer::start().await;
    let data: &'static [u8] = b"chunked upload body";
    let digest = Digest::of(data);
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(202).insert_header("Location", "/v2/r/blobs/uploads/s"))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(query_param("digest", digest.to_string().as_str()))
        .and(header("content-length", data.len().to_string().as_str()))
        .respond_with(ResponseTemplate::new(405))
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/v2/r/blobs/uploads/s"))
        .and(header("content-range", format!("0-{}", data.len() - 1).as_str()))
        .respond_with(ResponseTemplate::new(202).insert_header("Location", "/v2/r/blobs/uploads/s2"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/v2/r/blobs/uploads/s2"))
        .and(header("content-length", "0"))
        .respond_with(ResponseTemplate::new(201))
        .expect(1)
        .mount(&server)
        .await;
    let (_r, remote) = open(&server, options());
    remote
        .put_blob("r", &digest, data.len() as u64, body_of(data))
        .await
        .unwrap();
    let requests = server.received_requests().await.unwrap();
    assert!(
        requests
            .iter()
            .any(|r| r.method.as_str() == "DELETE" && r.url.path() == "/v2/r/blobs/uploads/s"),
        "the refused session is cancelled, not left behind"
    );
}

#[tokio::test]
async fn a_stalled_upload_source_is_an_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(202).insert_header("Location", "/v2/r/blobs/uploads/s"))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(201))
        .mount(&server)
        .await;
    let (_r, remote) = open(
        &server,
        ClientOptions {
            idle_timeout: Duration::from_millis(300),
            ..options()
        },
    );
    // 5 MiB arrive (more than the client reads ahead), then the source hangs forever.
    let first: Result<Bytes, Error> = Ok(Bytes::from(vec![1u8; 5 << 20]));
    let body: BlobStream = BlobStream::new(futures_util::stream::iter([first]).chain(futures_util::stream::pending()));
    let err = remote
        .put_blob("r", &Digest::of(b"never"), 10 << 20, body)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no progress"), "{err}");
}

#[tokio::test]
async fn a_corrupt_upload_source_is_never_committed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(202).insert_header("Location", "/v2/r/blobs/uploads/s"))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(201))
        .expect(0)
        .mount(&server)
        .await;
    let (_r, remote) = open(&server, options());
    // Exactly the read-ahead size, so the verdict comes from the very end of the source.
    let data = Bytes::from(vec![5u8; 4 << 20]);
    let claimed = Digest::of(b"something else");
    let err = remote
        .put_blob("r", &claimed, data.len() as u64, stream_of(data.clone(), 64 << 10))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err:?}");
}

#[tokio::test]
async fn a_corrupt_streamed_source_is_reported_as_a_digest_mismatch() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(202).insert_header("Location", "/v2/r/blobs/uploads/s"))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(201))
        .mount(&server)
        .await;
    let (_r, remote) = open(&server, options());
    // Larger than the read-ahead: the mismatch is found while the PUT is streaming, and
    // the aborted request must not hide it behind a transport error.
    let data = Bytes::from(vec![6u8; 6 << 20]);
    let claimed = Digest::of(b"not these bytes");
    let err = remote
        .put_blob("r", &claimed, data.len() as u64, stream_of(data, 64 << 10))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err:?}");
    assert!(!err.is_transient());
}
