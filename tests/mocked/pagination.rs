//! Paged listings: tags lists followed across `Link` headers (never to another server, never
//! in a loop) and catalog pages of at most 1000.
use kpromo::registry::Registry;
use wiremock::matchers::{path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::mock::{open, options};

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
