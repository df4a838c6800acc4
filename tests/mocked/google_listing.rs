//! Google's extended tags list (gcr.io, Artifact Registry): every digest with its tags and
//! media type in one answer.
use kpromo::digest::Digest;
use kpromo::registry::{Registries, media};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::mock::options;

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
