//! The harness's own minimal registry client for seeding fixtures: HEAD, POST+PUT uploads,
//! manifest PUTs, children before indexes, Basic and Bearer auth. Deliberately independent
//! of the client under test, so a bug there cannot hide in the fixtures.
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use reqwest::{Method, StatusCode};

use super::images::{Blob, Image, Index};

#[derive(Debug)]
pub struct Pusher {
    base: String,
    client: reqwest::Client,
    credentials: Option<(String, String)>,
    /// Authorization header per repository (Bearer scopes are per repository).
    auth: Mutex<HashMap<String, String>>,
}

impl Pusher {
    pub fn new(base: &str, credentials: Option<(&str, &str)>, ca_cert: Option<&Path>) -> Pusher {
        super::install_crypto_provider();
        let mut builder = reqwest::Client::builder();
        if let Some(ca) = ca_cert {
            let pem = std::fs::read(ca).unwrap_or_else(|e| panic!("read {}: {e}", ca.display()));
            let cert = reqwest::Certificate::from_pem(&pem).expect("parse test CA");
            builder = builder.tls_certs_only([cert]);
        }
        Pusher {
            base: base.trim_end_matches('/').to_string(),
            client: builder.build().expect("build fixture HTTP client"),
            credentials: credentials.map(|(u, p)| (u.to_string(), p.to_string())),
            auth: Mutex::new(HashMap::new()),
        }
    }

    /// Sends a request with a replayable body, authenticating once on a 401 challenge.
    async fn send(
        &self,
        repo: &str,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> reqwest::Response {
        for attempt in 0..2 {
            let mut request = self.client.request(method.clone(), url);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            if let Some(auth) = self.auth.lock().expect("auth lock").get(repo) {
                request = request.header("authorization", auth);
            }
            if let Some(body) = &body {
                request = request.body(body.clone());
            }
            let response = request
                .send()
                .await
                .unwrap_or_else(|e| panic!("fixture {method} {url}: {e}"));
            if response.status() != StatusCode::UNAUTHORIZED || attempt == 1 {
                return response;
            }
            let challenge = response
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let header = self.authenticate(&challenge).await;
            self.auth.lock().expect("auth lock").insert(repo.to_string(), header);
        }
        unreachable!("the loop returns on its second attempt")
    }

    async fn authenticate(&self, challenge: &str) -> String {
        let (user, password) = self
            .credentials
            .clone()
            .expect("registry wants credentials; the pusher has none");
        if challenge.starts_with("Basic") {
            return format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
        }
        let params = challenge_params(challenge.strip_prefix("Bearer ").expect("Basic or Bearer challenge"));
        let realm = params.get("realm").expect("realm in Bearer challenge");
        let mut query = vec![("service", params.get("service").cloned().unwrap_or_default())];
        if let Some(scope) = params.get("scope") {
            query.push(("scope", scope.clone()));
        }
        let response = self
            .client
            .get(realm)
            .query(&query)
            .basic_auth(user, Some(password))
            .send()
            .await
            .expect("token request");
        assert!(
            response.status().is_success(),
            "token server answered {}",
            response.status()
        );
        let body: serde_json::Value = response.json().await.expect("token JSON");
        let token = body["token"]
            .as_str()
            .or(body["access_token"].as_str())
            .expect("token in answer");
        format!("Bearer {token}")
    }

    /// Uploads a blob unless the repository already has it (HEAD, then POST + one PUT).
    pub async fn push_blob(&self, repo: &str, blob: &Blob) {
        let url = format!("{}/v2/{repo}/blobs/{}", self.base, blob.digest);
        if self.send(repo, Method::HEAD, &url, &[], None).await.status() == StatusCode::OK {
            return;
        }
        let response = self
            .send(
                repo,
                Method::POST,
                &format!("{}/v2/{repo}/blobs/uploads/", self.base),
                &[],
                None,
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::ACCEPTED,
            "fixture upload start in {repo}"
        );
        let location = response.headers()["location"]
            .to_str()
            .expect("Location header")
            .to_string();
        let location = if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            location
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let put_url = format!("{location}{separator}digest={}", blob.digest);
        let mut request = self
            .client
            .put(&put_url)
            .header("content-type", "application/octet-stream")
            .header("content-length", blob.size)
            .body(reqwest::Body::wrap_stream(blob.stream()));
        if let Some(auth) = self.auth.lock().expect("auth lock").get(repo) {
            request = request.header("authorization", auth);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("fixture PUT {}: {e}", blob.digest));
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "fixture blob {} in {repo}: {:?}",
            blob.digest,
            response.text().await
        );
    }

    /// PUTs manifest bytes under `reference` (a tag or a digest).
    pub async fn put_manifest(&self, repo: &str, reference: &str, media_type: &str, bytes: &Bytes) {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base);
        let response = self
            .send(
                repo,
                Method::PUT,
                &url,
                &[("content-type", media_type)],
                Some(bytes.clone()),
            )
            .await;
        let status = response.status();
        assert_eq!(
            status,
            StatusCode::CREATED,
            "fixture manifest {repo}:{reference}: {:?}",
            response.text().await
        );
    }

    /// Pushes an image's blobs, the manifest by digest, then each tag; returns the digest.
    pub async fn push_image(&self, repo: &str, image: &Image, tags: &[&str]) -> String {
        for blob in image.blobs() {
            self.push_blob(repo, blob).await;
        }
        for reference in std::iter::once(image.digest.as_str()).chain(tags.iter().copied()) {
            self.put_manifest(repo, reference, image.media_type(), &image.manifest)
                .await;
        }
        image.digest.clone()
    }

    /// Pushes every child (untagged, by digest), then the index by digest and under each
    /// tag: distribution refuses an index whose children are missing.
    pub async fn push_index(&self, repo: &str, index: &Index, tags: &[&str]) -> String {
        for child in &index.children {
            self.push_image(repo, child, &[]).await;
        }
        for reference in std::iter::once(index.digest.as_str()).chain(tags.iter().copied()) {
            self.put_manifest(repo, reference, index.media_type(), &index.manifest)
                .await;
        }
        index.digest.clone()
    }

    /// GET a manifest with every Accept type; `(status, content type, bytes)`.
    pub async fn get_manifest(&self, repo: &str, reference: &str) -> (u16, String, Bytes) {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base);
        let accept = [
            super::images::OCI_INDEX,
            super::images::OCI_MANIFEST,
            super::images::DOCKER_LIST,
            super::images::DOCKER_MANIFEST,
        ]
        .join(", ");
        let response = self.send(repo, Method::GET, &url, &[("accept", &accept)], None).await;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (status, content_type, response.bytes().await.expect("manifest body"))
    }

    /// GET `/v2/<repo>/referrers/<digest>` (OCI 1.1's referrers API); `(status, bytes)`.
    pub async fn get_referrers(&self, repo: &str, digest: &str) -> (u16, Bytes) {
        let url = format!("{}/v2/{repo}/referrers/{digest}", self.base);
        let accept = [("accept", super::images::OCI_INDEX)];
        let response = self.send(repo, Method::GET, &url, &accept, None).await;
        let status = response.status().as_u16();
        (status, response.bytes().await.expect("referrers body"))
    }

    /// GET a (small) blob whole; `None` when `repo` lacks it.
    pub async fn get_blob(&self, repo: &str, digest: &str) -> Option<Bytes> {
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base);
        let response = self.send(repo, Method::GET, &url, &[], None).await;
        (response.status() == StatusCode::OK).then_some(())?;
        Some(response.bytes().await.expect("blob body"))
    }

    /// DELETE a blob from `repo` (the registry must allow deletes; the harness's do):
    /// "the mirror lost a blob". Returns the status.
    pub async fn delete_blob(&self, repo: &str, digest: &str) -> u16 {
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base);
        self.send(repo, Method::DELETE, &url, &[], None).await.status().as_u16()
    }

    /// HEAD a blob: whether `repo` has it.
    pub async fn has_blob(&self, repo: &str, digest: &str) -> bool {
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base);
        self.send(repo, Method::HEAD, &url, &[], None).await.status() == StatusCode::OK
    }
}

/// `realm="…",service="…",scope="…"` → map (values may contain commas inside quotes).
fn challenge_params(params: &str) -> HashMap<String, String> {
    let mut map = HashMap::new();
    let mut rest = params.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key.trim().trim_start_matches(',').trim().to_string();
        let (value, tail) = match after.strip_prefix('"') {
            Some(quoted) => quoted.split_once('"').unwrap_or((quoted, "")),
            None => after.split_once(',').unwrap_or((after, "")),
        };
        map.insert(key, value.to_string());
        rest = tail.trim_start_matches(',').trim();
    }
    map
}
