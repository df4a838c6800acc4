//! Authentication: bearer tokens fetched once per scope set and renewed when rejected,
//! Basic auth and OAuth2 refresh tokens from the docker config, and credentials that never
//! show in errors or `Debug` output.
use std::sync::atomic::{AtomicUsize, Ordering};

use kpromo::digest::Digest;
use kpromo::registry::{ClientOptions, Error, MountOutcome, Registry};
use wiremock::matchers::{body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::mock::{MANIFEST, manifest_response, open, options, tag};

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
