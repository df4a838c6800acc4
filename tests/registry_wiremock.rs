//! HTTP-level tests of the remote registry client against wiremock.
//!
//! Fakes are used here for behaviours that no local registry offers or that cannot be
//! produced on demand with CNCF distribution 2.8 (the real-registry tests live elsewhere):
//! Google's extended tags list, the referrers API, exact 401/429/5xx sequences, corrupted
//! bodies, and mount/Location edge cases.
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use kpromo::digest::Digest;
use kpromo::registry::remote::RemoteRegistry;
use kpromo::registry::{
    BlobStream, ClientOptions, Error, ManifestRef, MountOutcome, RawManifest, Registries, Registry, media,
};
use wiremock::matchers::{body_string_contains, header, headers, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const MANIFEST: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;

fn tag(t: &str) -> ManifestRef {
    ManifestRef::Tag(t.to_string())
}

fn options() -> ClientOptions {
    ClientOptions {
        // Tests must never read the developer's own docker config.
        docker_config: Some(std::env::temp_dir().join("kpromo-no-docker-config")),
        ..ClientOptions::default()
    }
}

fn open(server: &MockServer, options: ClientOptions) -> (Registries, Arc<RemoteRegistry>) {
    let registries = Registries::new(options).unwrap();
    let remote = registries.remote(&server.address().to_string()).unwrap();
    (registries, remote)
}

fn manifest_response(bytes: &[u8]) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_raw(bytes.to_vec(), media::OCI_MANIFEST)
        .insert_header("Docker-Content-Digest", Digest::of(bytes).to_string().as_str())
}

fn docker_config(json: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), json).unwrap();
    dir
}

/// Answers with `token-1`, `token-2`, ... so tests can tell fetches apart.
struct TokenSequence(AtomicUsize);

impl Respond for TokenSequence {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        ResponseTemplate::new(200).set_body_json(serde_json::json!({"token": format!("token-{n}"), "expires_in": 300}))
    }
}

fn bearer_challenge(server: &MockServer, scope: &str) -> ResponseTemplate {
    ResponseTemplate::new(401).insert_header(
        "WWW-Authenticate",
        format!(
            r#"Bearer realm="{}/token",service="test-registry",scope="{scope}""#,
            server.uri()
        )
        .as_str(),
    )
}

#[tokio::test]
async fn bearer_flow_fetches_one_token_per_scope_set_and_caches_it() {
    let server = MockServer::start().await;
    let config = docker_config(&format!(
        r#"{{"auths":{{"{}":{{"username":"robot","password":"pa55-word"}}}}}}"#,
        server.address()
    ));
    Mock::given(method("GET"))
        .and(path("/v2/team/app/manifests/v1"))
        .and(header("authorization", "Bearer token-1"))
        .respond_with(manifest_response(MANIFEST))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path("/v2/team/app/manifests/v1"))
        .respond_with(bearer_challenge(&server, "repository:team/app:pull"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/token"))
        .and(query_param("service", "test-registry"))
        .and(query_param("scope", "repository:team/app:pull"))
        .and(header("authorization", "Basic cm9ib3Q6cGE1NS13b3Jk"))
        .respond_with(TokenSequence(AtomicUsize::new(0)))
        .expect(1)
        .mount(&server)
        .await;

    let (_registries, remote) = open(
        &server,
        ClientOptions {
            docker_config: Some(config.path().to_path_buf()),
            ..options()
        },
    );
    for _ in 0..3 {
        let got = remote.get_manifest("team/app", &tag("v1")).await.unwrap().unwrap();
        assert_eq!(got.bytes, MANIFEST);
    }
    // 1 anonymous 401 to learn the challenge, then 3 authorised GETs with one token.
    assert_eq!(remote.stats().requests.get("GET 401"), Some(&1));
    assert_eq!(remote.stats().requests.get("GET 200"), Some(&3));
    let debug = format!("{remote:?}");
    assert!(!debug.contains("pa55-word") && !debug.contains("token-1"), "{debug}");
}

#[tokio::test]
async fn a_rejected_token_is_renewed_once() {
    let server = MockServer::start().await;
    // token-1 is revoked by the time it is used; token-2 works.
    Mock::given(path("/v2/r/manifests/v1"))
        .and(header("authorization", "Bearer token-2"))
        .respond_with(manifest_response(MANIFEST))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path("/v2/r/manifests/v1"))
        .respond_with(bearer_challenge(&server, "repository:r:pull"))
        .mount(&server)
        .await;
    Mock::given(path("/token"))
        .respond_with(TokenSequence(AtomicUsize::new(0)))
        .expect(2)
        .mount(&server)
        .await;
    let (_r, remote) = open(&server, options());
    assert!(remote.get_manifest("r", &tag("v1")).await.unwrap().is_some());
}

#[tokio::test]
async fn mount_asks_for_one_token_covering_source_and_destination() {
    let server = MockServer::start().await;
    let digest = Digest::of(b"layer");
    Mock::given(method("POST"))
        .and(path("/v2/dst/blobs/uploads/"))
        .and(query_param("mount", digest.to_string().as_str()))
        .and(query_param("from", "src"))
        .and(header("authorization", "Bearer token-1"))
        .respond_with(ResponseTemplate::new(201).insert_header("Location", format!("/v2/dst/blobs/{digest}").as_str()))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(bearer_challenge(
            &server,
            "repository:dst:pull,push repository:src:pull",
        ))
        .mount(&server)
        .await;
    Mock::given(path("/token"))
        .and(query_param("scope", "repository:dst:pull,push"))
        .and(query_param("scope", "repository:src:pull"))
        .respond_with(TokenSequence(AtomicUsize::new(0)))
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
async fn basic_auth_from_the_docker_config() {
    let server = MockServer::start().await;
    Mock::given(path("/v2/r/tags/list"))
        .and(header("authorization", "Basic dTpzM2NyZXQ="))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"name":"r","tags":["a","b"]})))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path("/v2/r/tags/list"))
        .respond_with(ResponseTemplate::new(401).insert_header("WWW-Authenticate", r#"Basic realm="test""#))
        .mount(&server)
        .await;
    // "u:s3cret"
    let config = docker_config(&format!(
        r#"{{"auths":{{"{}":{{"auth":"dTpzM2NyZXQ="}}}}}}"#,
        server.address()
    ));
    let (_r, remote) = open(
        &server,
        ClientOptions {
            docker_config: Some(config.path().to_path_buf()),
            ..options()
        },
    );
    let tags = remote.list_tags("r").await.unwrap().unwrap();
    assert_eq!(tags.tags, vec!["a", "b"]);
}

#[tokio::test]
async fn wrong_credentials_fail_without_revealing_them() {
    let server = MockServer::start().await;
    Mock::given(path("/v2/r/manifests/v1"))
        .respond_with(bearer_challenge(&server, "repository:r:pull"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/token"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_string("bad credentials for robot:hunter2-secret (echoed by a careless server)"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let config = docker_config(&format!(
        r#"{{"auths":{{"{}":{{"username":"robot","password":"hunter2-secret"}}}}}}"#,
        server.address()
    ));
    let (registries, remote) = open(
        &server,
        ClientOptions {
            docker_config: Some(config.path().to_path_buf()),
            ..options()
        },
    );
    let err = remote.get_manifest("r", &tag("v1")).await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { status: 401, .. }), "{err:?}");
    for shown in [
        err.to_string(),
        format!("{err:?}"),
        format!("{remote:?}"),
        format!("{registries:?}"),
    ] {
        assert!(!shown.contains("hunter2"), "{shown}");
    }
    assert!(err.to_string().contains("GET manifest r:v1"), "{err}");
}

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

/// A tags-list page of repository `r`, with a `Link` to `next` when given.
fn page(tags: &[&str], next: Option<&str>) -> ResponseTemplate {
    let t = ResponseTemplate::new(200).set_body_json(serde_json::json!({"name": "r", "tags": tags}));
    match next {
        Some(n) => t.insert_header("Link", format!(r#"<{n}>; rel="next""#).as_str()),
        None => t,
    }
}

#[tokio::test]
async fn tags_follow_link_pagination() {
    let server = MockServer::start().await;
    Mock::given(path("/v2/r/tags/list"))
        .and(query_param_is_missing("last"))
        .respond_with(page(&["a", "b"], Some("/v2/r/tags/list?n=2&last=b")))
        .mount(&server)
        .await;
    Mock::given(path("/v2/r/tags/list"))
        .and(query_param("last", "b"))
        .respond_with(page(
            &["c", "d"],
            Some(&format!("{}/v2/r/tags/list?n=2&last=d", server.uri())),
        ))
        .mount(&server)
        .await;
    Mock::given(path("/v2/r/tags/list"))
        .and(query_param("last", "d"))
        .respond_with(page(&["e"], None))
        .mount(&server)
        .await;
    let (_r, remote) = open(&server, options());
    let tags = remote.list_tags("r").await.unwrap().unwrap();
    assert_eq!(tags.tags, vec!["a", "b", "c", "d", "e"]);
    assert_eq!(tags.google_manifests, None);
}

#[tokio::test]
async fn looping_pagination_is_an_error_not_a_hang() {
    let server = MockServer::start().await;
    Mock::given(path("/v2/r/tags/list"))
        .and(query_param_is_missing("last"))
        .respond_with(page(&["a"], Some("/v2/r/tags/list?last=a")))
        .mount(&server)
        .await;
    Mock::given(path("/v2/r/tags/list"))
        .and(query_param("last", "a"))
        .respond_with(page(&["b"], Some("/v2/r/tags/list?last=a")))
        .mount(&server)
        .await;
    let (_r, remote) = open(&server, options());
    let err = remote.list_tags("r").await.unwrap_err();
    assert!(err.to_string().contains("pagination loops"), "{err}");
}

#[tokio::test]
async fn catalog_pages_ask_for_at_most_1000() {
    let server = MockServer::start().await;
    Mock::given(path("/v2/_catalog"))
        .and(query_param("n", "1000"))
        .and(query_param_is_missing("last"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"repositories": ["a/x", "b"]}))
                .insert_header("Link", r#"</v2/_catalog?last=b&n=1000>; rel="next""#),
        )
        .mount(&server)
        .await;
    Mock::given(path("/v2/_catalog"))
        .and(query_param("last", "b"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"repositories": ["c"]})))
        .mount(&server)
        .await;
    let (_r, remote) = open(&server, options());
    assert_eq!(remote.catalog().await.unwrap(), vec!["a/x", "b", "c"]);
}

#[tokio::test]
async fn google_extended_tags_list_is_parsed() {
    // No local registry offers this extension (gcr.io and Artifact Registry do).
    let server = MockServer::start().await;
    let a = Digest::of(b"a");
    let b = Digest::of(b"b");
    let body = serde_json::json!({
        "child": ["sub1", "sub2"],
        "manifest": {
            a.to_string(): {"imageSizeBytes": "12", "layerId": "", "mediaType": media::OCI_INDEX,
                            "tag": ["v1", "latest"], "timeCreatedMs": "0", "timeUploadedMs": "1"},
            b.to_string(): {"mediaType": media::DOCKER_MANIFEST, "tag": []}
        },
        "name": "k8s-artifacts-prod/images/pause",
        "tags": ["latest", "v1"]
    });
    Mock::given(path("/v2/k8s-artifacts-prod/images/pause/tags/list"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&server)
        .await;
    let registries = Registries::new(options()).unwrap();
    let root = registries
        .open(&format!("{}/k8s-artifacts-prod/images", server.address()))
        .unwrap();
    let tags = root.registry.list_tags(&root.repo("pause")).await.unwrap().unwrap();
    assert_eq!(tags.tags, vec!["latest", "v1"]);
    assert_eq!(tags.children, vec!["sub1", "sub2"]);
    let google = tags.google_manifests.unwrap();
    let by_digest = |d: Digest| google.iter().find(|g| g.digest == d).unwrap();
    assert_eq!(by_digest(a).tags, vec!["v1", "latest"]);
    assert_eq!(by_digest(a).media_type, media::OCI_INDEX);
    assert!(by_digest(b).tags.is_empty());
}

fn referrer_manifest(subject: &RawManifest, artifact_type: &str) -> RawManifest {
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": Digest::of(b"{}").to_string(), "size": 2},
        "layers": [],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest.to_string(), "size": subject.bytes.len()},
        "annotations": {"org.example": "yes"}
    });
    RawManifest::new(media::OCI_MANIFEST, Bytes::from(serde_json::to_vec(&body).unwrap()))
}

#[tokio::test]
async fn referrers_api_is_used_when_present() {
    // No local registry offers the referrers API (distribution 2.8 has none).
    let server = MockServer::start().await;
    let subject = RawManifest::new(media::OCI_MANIFEST, Bytes::from_static(MANIFEST));
    let sig = referrer_manifest(&subject, "application/vnd.dev.sigstore.bundle.v0.3+json");
    let sbom = referrer_manifest(&subject, "application/spdx+json");
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": [
        {"mediaType": media::OCI_MANIFEST, "digest": sig.digest.to_string(), "size": sig.bytes.len(),
         "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json"},
        {"mediaType": media::OCI_MANIFEST, "digest": sbom.digest.to_string(), "size": sbom.bytes.len(),
         "artifactType": "application/spdx+json", "annotations": {"a": "b"}}
    ]});
    Mock::given(path(format!("/v2/r/referrers/{}", subject.digest)))
        .respond_with(ResponseTemplate::new(200).set_body_raw(serde_json::to_vec(&index).unwrap(), media::OCI_INDEX))
        .mount(&server)
        .await;
    // A registry with the API acknowledges the subject on PUT: no fallback tag is written.
    Mock::given(method("PUT"))
        .and(path(format!("/v2/r/manifests/{}", sbom.digest)))
        .respond_with(ResponseTemplate::new(201).insert_header("OCI-Subject", subject.digest.to_string().as_str()))
        .expect(1)
        .mount(&server)
        .await;
    let (_r, remote) = open(&server, options());
    let all = remote.list_referrers("r", &subject.digest, None).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].annotations.get("a").map(String::as_str), Some("b"));
    let sboms = remote
        .list_referrers("r", &subject.digest, Some("application/spdx+json"))
        .await
        .unwrap();
    assert_eq!(sboms.len(), 1);
    assert_eq!(sboms[0].digest, sbom.digest);
    remote.put_referrer("r", &sbom).await.unwrap();
    let puts = server.received_requests().await.unwrap();
    assert!(
        puts.iter().all(|r| !r.url.path().contains("sha256-")),
        "no fallback tag expected"
    );
}

#[tokio::test]
async fn referrers_fall_back_to_the_tag_schema() {
    // Distribution 2.8 has no referrers API: the `sha256-<hex>` index stands in for it.
    let server = MockServer::start().await;
    let subject = RawManifest::new(media::OCI_MANIFEST, Bytes::from_static(MANIFEST));
    let sig = referrer_manifest(&subject, "application/vnd.dev.cosign.artifact.sig.v1+json");
    let fallback = format!("/v2/r/manifests/sha256-{}", subject.digest.hex());
    Mock::given(path(format!("/v2/r/referrers/{}", subject.digest)))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(fallback.as_str()))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(201))
        .mount(&server)
        .await;
    let (_r, remote) = open(&server, options());
    assert!(
        remote
            .list_referrers("r", &subject.digest, None)
            .await
            .unwrap()
            .is_empty()
    );

    remote.put_referrer("r", &sig).await.unwrap();
    let requests = server.received_requests().await.unwrap();
    let put_index = requests
        .iter()
        .find(|r| r.method.as_str() == "PUT" && r.url.path() == fallback)
        .expect("the fallback index is written");
    assert_eq!(
        put_index.headers.get("content-type").unwrap().to_str().unwrap(),
        media::OCI_INDEX
    );
    let index: serde_json::Value = serde_json::from_slice(&put_index.body).unwrap();
    let entry = &index["manifests"][0];
    assert_eq!(entry["digest"], sig.digest.to_string());
    assert_eq!(entry["artifactType"], "application/vnd.dev.cosign.artifact.sig.v1+json");
    assert_eq!(entry["annotations"]["org.example"], "yes");
    assert!(
        requests
            .iter()
            .any(|r| r.method.as_str() == "PUT" && r.url.path() == format!("/v2/r/manifests/{}", sig.digest)),
        "the referrer itself is pushed by digest"
    );

    // Reading back through the fallback tag.
    server.reset().await;
    Mock::given(path(format!("/v2/r/referrers/{}", subject.digest)))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    Mock::given(path(fallback.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_raw(put_index.body.clone(), media::OCI_INDEX))
        .mount(&server)
        .await;
    let found = remote.list_referrers("r", &subject.digest, None).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].digest, sig.digest);
}

#[tokio::test]
async fn manifest_digest_mismatches_are_detected() {
    let server = MockServer::start().await;
    let wanted = Digest::of(b"something else");
    Mock::given(path(format!("/v2/r/manifests/{wanted}")))
        .respond_with(ResponseTemplate::new(200).set_body_raw(MANIFEST.to_vec(), media::OCI_MANIFEST))
        .mount(&server)
        .await;
    // By tag, the registry's own Docker-Content-Digest must match the bytes.
    Mock::given(path("/v2/r/manifests/v1"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(MANIFEST.to_vec(), media::OCI_MANIFEST)
                .insert_header("Docker-Content-Digest", wanted.to_string().as_str()),
        )
        .mount(&server)
        .await;
    let (_r, remote) = open(&server, options());
    let err = remote
        .get_manifest("r", &ManifestRef::Digest(wanted))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::DigestMismatch { expected, .. } if expected == wanted),
        "{err:?}"
    );
    let err = remote.get_manifest("r", &tag("v1")).await.unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err:?}");
    // And on the way out: bytes that do not match the claimed digest are never sent.
    let mut forged = RawManifest::new(media::OCI_MANIFEST, Bytes::from_static(MANIFEST));
    forged.digest = wanted;
    let err = remote.put_manifest("r", &tag("v2"), &forged).await.unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err:?}");
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
async fn a_manifest_put_without_location_succeeds() {
    let server = MockServer::start().await;
    let manifest = RawManifest::new(media::OCI_MANIFEST, Bytes::from_static(MANIFEST));
    Mock::given(method("PUT"))
        .and(path(format!("/v2/r/manifests/{}", manifest.digest)))
        .and(header("content-type", media::OCI_MANIFEST))
        .respond_with(ResponseTemplate::new(201))
        .expect(1)
        .mount(&server)
        .await;
    let (_r, remote) = open(&server, options());
    remote
        .put_manifest("r", &ManifestRef::Digest(manifest.digest), &manifest)
        .await
        .unwrap();
}

#[tokio::test]
async fn manifest_requests_send_the_full_accept_list() {
    // Distribution 2.8 answers 404 for an OCI index, and rewrites a Docker list to
    // schema1, unless the exact types are accepted: every manifest request names them all.
    let server = MockServer::start().await;
    let accept: Vec<&str> = media::ACCEPT_MANIFESTS.split(", ").collect();
    for verb in ["HEAD", "GET"] {
        Mock::given(method(verb))
            .and(path("/v2/r/manifests/v1"))
            .and(headers("accept", accept.clone()))
            .respond_with(
                manifest_response(MANIFEST).insert_header("Content-Length", MANIFEST.len().to_string().as_str()),
            )
            .expect(1)
            .mount(&server)
            .await;
    }
    let (_r, remote) = open(&server, options());
    let head = remote.head_manifest("r", &tag("v1")).await.unwrap().unwrap();
    assert_eq!(head.digest, Digest::of(MANIFEST));
    assert_eq!(head.size, MANIFEST.len() as u64);
    assert_eq!(head.media_type, media::OCI_MANIFEST);
    let got = remote.get_manifest("r", &tag("v1")).await.unwrap().unwrap();
    assert_eq!(got.descriptor(), head);
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

#[tokio::test]
async fn identity_tokens_use_the_oauth2_refresh_grant() {
    let server = MockServer::start().await;
    Mock::given(path("/v2/r/manifests/v1"))
        .and(header("authorization", "Bearer access-1"))
        .respond_with(manifest_response(MANIFEST))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path("/v2/r/manifests/v1"))
        .respond_with(bearer_challenge(&server, "repository:r:pull"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .and(body_string_contains("refresh_token=refresh-xyz"))
        .and(body_string_contains("scope=repository%3Ar%3Apull"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"access_token": "access-1"})))
        .expect(1)
        .mount(&server)
        .await;
    let config = docker_config(&format!(
        r#"{{"auths":{{"{}":{{"identitytoken":"refresh-xyz"}}}}}}"#,
        server.address()
    ));
    let (_r, remote) = open(
        &server,
        ClientOptions {
            docker_config: Some(config.path().to_path_buf()),
            ..options()
        },
    );
    assert!(remote.get_manifest("r", &tag("v1")).await.unwrap().is_some());
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
async fn a_manifest_put_racing_its_blob_links_is_retried() {
    // Distribution 2.8 can report a just-uploaded blob as unknown when uploads of the same
    // blob race; this sequence cannot be triggered reliably on a real instance.
    let server = MockServer::start().await;
    let manifest = RawManifest::new(media::OCI_MANIFEST, Bytes::from_static(MANIFEST));
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            serde_json::json!({"errors": [{"code": "MANIFEST_BLOB_UNKNOWN", "message": "blob unknown to registry"}]}),
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(201))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            serde_json::json!({"errors": [{"code": "NAME_INVALID", "message": "invalid repository name"}]}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let (_r, remote) = open(&server, options());
    remote.put_manifest("r", &tag("v1"), &manifest).await.unwrap();
    let err = remote.get_manifest("r", &tag("v1")).await.unwrap_err();
    assert!(
        err.to_string().contains("NAME_INVALID: invalid repository name"),
        "{err}"
    );
}

#[tokio::test]
async fn a_manifest_body_cut_off_mid_way_is_fetched_again() {
    // wiremock cannot cut a body short, so this test serves raw HTTP itself: the first
    // connection promises the whole manifest and closes after 10 bytes.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut request = [0u8; 4096];
            let n = socket.read(&mut request).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&request[..n]).to_string();
            if !head.starts_with("GET /v2/r/manifests/v1") {
                // The TLS probe (or anything else): not HTTP we serve.
                continue;
            }
            let attempt = counter.fetch_add(1, Ordering::SeqCst);
            let header = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                media::OCI_MANIFEST,
                MANIFEST.len()
            );
            let _ = socket.write_all(header.as_bytes()).await;
            let body = if attempt == 0 { &MANIFEST[..10] } else { MANIFEST };
            let _ = socket.write_all(body).await;
            let _ = socket.shutdown().await;
        }
    });
    let registries = Registries::new(options()).unwrap();
    let remote = registries.remote(&address.to_string()).unwrap();
    let got = remote.get_manifest("r", &tag("v1")).await.unwrap().unwrap();
    assert_eq!(got.bytes, MANIFEST);
    assert_eq!(served.load(Ordering::SeqCst), 2);
    assert_eq!(remote.stats().retries, 1);
}

#[tokio::test]
async fn pagination_never_follows_a_link_to_another_server() {
    let server = MockServer::start().await;
    Mock::given(path("/v2/r/tags/list"))
        .respond_with(page(&["a"], Some("http://127.0.0.2:1/v2/r/tags/list?last=a")))
        .mount(&server)
        .await;
    let (_r, remote) = open(&server, options());
    let err = remote.list_tags("r").await.unwrap_err();
    assert!(err.to_string().contains("leaves the registry"), "{err}");
}

#[tokio::test]
async fn schema1_manifests_are_refused_clearly() {
    let server = MockServer::start().await;
    Mock::given(path("/v2/r/manifests/old"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(b"{}".to_vec(), media::DOCKER_SCHEMA1_SIGNED))
        .mount(&server)
        .await;
    let (_r, remote) = open(&server, options());
    let err = remote.get_manifest("r", &tag("old")).await.unwrap_err();
    assert!(err.to_string().contains("schema1"), "{err}");
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

/// A fallback tag that remembers what was PUT and serves it on GET.
struct StoredIndex(std::sync::Mutex<Option<Vec<u8>>>);

impl Respond for StoredIndex {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut stored = self.0.lock().unwrap();
        match request.method.as_str() {
            "PUT" => {
                *stored = Some(request.body.clone());
                ResponseTemplate::new(201)
            }
            _ => match stored.as_ref() {
                Some(body) => ResponseTemplate::new(200)
                    .set_body_raw(body.clone(), media::OCI_INDEX)
                    .set_delay(Duration::from_millis(50)),
                None => ResponseTemplate::new(404).set_delay(Duration::from_millis(50)),
            },
        }
    }
}

#[tokio::test]
async fn concurrent_referrers_of_one_subject_all_land_in_the_fallback_index() {
    // Distribution 2.8 has no referrers API; the fallback index is read, extended and
    // written back, so two pushes for one subject must not overwrite each other.
    let server = MockServer::start().await;
    let subject = RawManifest::new(media::OCI_MANIFEST, Bytes::from_static(MANIFEST));
    Mock::given(path(format!("/v2/r/manifests/sha256-{}", subject.digest.hex())))
        .respond_with(StoredIndex(std::sync::Mutex::new(None)))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(201))
        .mount(&server)
        .await;
    let (_r, remote) = open(&server, options());
    let first = referrer_manifest(&subject, "application/one");
    let second = referrer_manifest(&subject, "application/two");
    let (a, b) = tokio::join!(remote.put_referrer("r", &first), remote.put_referrer("r", &second));
    a.unwrap();
    b.unwrap();
    let mut found: Vec<Digest> = remote
        .list_referrers("r", &subject.digest, None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.digest)
        .collect();
    found.sort();
    let mut expected = vec![first.digest, second.digest];
    expected.sort();
    assert_eq!(found, expected);
}
