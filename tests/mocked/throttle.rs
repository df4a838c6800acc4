//! Retries and pauses: 429 with `Retry-After` (seconds or an HTTP date) pauses only that
//! registry, 5xx and stalled responses are retried, 401/403/404 never are.
use std::time::Duration;

use kpromo::digest::Digest;
use kpromo::registry::{ClientOptions, Error, Registry};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::mock::{MANIFEST, manifest_response, open, options, tag};

#[tokio::test]
async fn not_found_and_unauthorized_are_not_retried() {
    let server = MockServer::start().await;
    Mock::given(path("/v2/r/manifests/missing"))
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/v2/r/manifests/secret"))
        .respond_with(ResponseTemplate::new(401))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/v2/r/manifests/forbidden"))
        .respond_with(ResponseTemplate::new(403))
        .expect(1)
        .mount(&server)
        .await;
    let (_r, remote) = open(&server, options());
    assert_eq!(remote.head_manifest("r", &tag("missing")).await.unwrap(), None);
    let err = remote.get_manifest("r", &tag("secret")).await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { status: 401, .. }), "{err:?}");
    assert!(!err.is_transient());
    let err = remote.get_manifest("r", &tag("forbidden")).await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { status: 403, .. }), "{err:?}");
    assert_eq!(remote.stats().retries, 0);
}

#[tokio::test]
async fn too_many_requests_with_retry_after_seconds_pauses_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(path("/v2/r/manifests/v1"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path("/v2/r/manifests/v1"))
        .respond_with(manifest_response(MANIFEST))
        .mount(&server)
        .await;
    let (registries, remote) = open(&server, options());
    assert!(remote.get_manifest("r", &tag("v1")).await.unwrap().is_some());
    let stats = remote.stats();
    assert_eq!(stats.retries, 1);
    assert!(
        stats.paused_ms >= 900,
        "Retry-After: 1 must pause the registry: {stats:?}"
    );
    // The pause belongs to this registry only: another host is not held back.
    let other = MockServer::start().await;
    Mock::given(path("/v2/"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&other)
        .await;
    let other_remote = registries.remote(&other.address().to_string()).unwrap();
    other_remote.ping().await.unwrap();
    assert_eq!(other_remote.stats().paused_ms, 0);
}

#[tokio::test]
async fn too_many_requests_with_an_http_date_is_honoured() {
    let server = MockServer::start().await;
    let when = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(2));
    Mock::given(path(
        "/v2/r/blobs/sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ))
    .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", when.as_str()))
    .up_to_n_times(1)
    .with_priority(1)
    .mount(&server)
    .await;
    Mock::given(method("HEAD"))
        .respond_with(ResponseTemplate::new(200).insert_header("Content-Length", "0"))
        .mount(&server)
        .await;
    let (_r, remote) = open(&server, options());
    assert_eq!(remote.blob_size("r", &Digest::of(b"")).await.unwrap(), Some(0));
    let stats = remote.stats();
    // HTTP dates have one-second resolution: the pause is between 1 and 2 seconds.
    assert!(stats.paused_ms >= 500, "{stats:?}");
    assert_eq!(stats.requests.get("HEAD 429"), Some(&1));
}

#[tokio::test]
async fn server_errors_are_retried_until_success() {
    let server = MockServer::start().await;
    Mock::given(path("/v2/r/manifests/v1"))
        .respond_with(ResponseTemplate::new(500).set_body_string("invalid checksum digest format"))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path("/v2/r/manifests/v1"))
        .respond_with(manifest_response(MANIFEST))
        .mount(&server)
        .await;
    let (_r, remote) = open(&server, options());
    assert!(remote.get_manifest("r", &tag("v1")).await.unwrap().is_some());
    assert_eq!(remote.stats().retries, 2);
    assert_eq!(remote.stats().requests.get("GET 500"), Some(&2));
}

#[tokio::test]
async fn persistent_server_errors_end_in_a_transient_error() {
    let server = MockServer::start().await;
    Mock::given(path("/v2/r/manifests/v1"))
        .respond_with(ResponseTemplate::new(502))
        .mount(&server)
        .await;
    let (_r, remote) = open(
        &server,
        ClientOptions {
            max_retries: 2,
            ..options()
        },
    );
    let err = remote.get_manifest("r", &tag("v1")).await.unwrap_err();
    assert!(matches!(err, Error::Status { status: 502, .. }), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(remote.stats().retries, 2);
    assert_eq!(remote.stats().requests.get("GET 502"), Some(&3));
}

#[tokio::test]
async fn a_stalled_response_is_an_error() {
    let server = MockServer::start().await;
    Mock::given(path("/v2/r/manifests/v1"))
        .respond_with(manifest_response(MANIFEST).set_delay(Duration::from_secs(30)))
        .mount(&server)
        .await;
    let (_r, remote) = open(
        &server,
        ClientOptions {
            response_timeout: Duration::from_millis(200),
            max_retries: 1,
            ..options()
        },
    );
    let err = remote.get_manifest("r", &tag("v1")).await.unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert!(err.to_string().contains("no response"), "{err}");
    assert_eq!(
        remote.stats().retries,
        1,
        "a timeout is retried like any transient failure"
    );
}
