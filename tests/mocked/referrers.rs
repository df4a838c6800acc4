//! Referrers: the OCI 1.1 API where the registry has it, the `sha256-<hex>` tag-schema
//! fallback index otherwise, and concurrent referrers of one subject that all land.
use std::time::Duration;

use bytes::Bytes;
use kpromo::digest::Digest;
use kpromo::registry::{RawManifest, Registry, media};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::mock::{MANIFEST, open, options};

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

#[tokio::test]
async fn a_second_put_to_a_registry_with_the_api_writes_nothing() {
    // The referrer is already there and the registry's referrers API answers: it keeps
    // the list itself, so neither the referrer nor a fallback index is written.
    let server = MockServer::start().await;
    let subject = RawManifest::new(media::OCI_MANIFEST, Bytes::from_static(MANIFEST));
    let sig = referrer_manifest(&subject, "application/vnd.dev.sigstore.bundle.v0.3+json");
    Mock::given(method("HEAD"))
        .and(path(format!("/v2/r/manifests/{}", sig.digest)))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Content-Type", media::OCI_MANIFEST)
                .insert_header("Content-Length", sig.bytes.len().to_string().as_str())
                .insert_header("Docker-Content-Digest", sig.digest.to_string().as_str()),
        )
        .mount(&server)
        .await;
    let listed = json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": [
        {"mediaType": media::OCI_MANIFEST, "digest": sig.digest.to_string(), "size": sig.bytes.len()}
    ]});
    Mock::given(method("GET"))
        .and(path(format!("/v2/r/referrers/{}", subject.digest)))
        .respond_with(ResponseTemplate::new(200).set_body_raw(listed.to_string(), media::OCI_INDEX))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(201))
        .expect(0)
        .mount(&server)
        .await;
    let (_registries, remote) = open(&server, options());
    remote.put_referrer("r", &sig).await.expect("put referrer");
}
