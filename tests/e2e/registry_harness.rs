//! Self-tests of the test harness (tests/support): real registries start in every variant,
//! the fixture pusher writes what skopeo (an independent client) reads back, and every
//! fault the proxy and nginx front inject is observable. Tests of kpromo's client rely on
//! these behaving.
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::support;
use crate::support::ggcr::GgcrRegistry;
use crate::support::images::{Blob, Format, Image, Index, OCI_INDEX, OCI_MANIFEST, sha256_digest};
use crate::support::{Action, FaultProxy, RateLimitFront, RegistryOptions, Rule, TestRegistry, Times, within};

async fn push_and_read_back(options: RegistryOptions) {
    let registry = TestRegistry::start(options);
    let pusher = registry.pusher();
    let base = Blob::random(7, 64 * 1024);
    let oci = Index::multi_arch(Format::Oci, 1, &["amd64", "arm64/v8", "ppc64le"], Some(&base));
    let docker = Index::multi_arch(Format::Docker, 2, &["amd64", "arm64/v8"], Some(&base));
    let single = Image::simple(Format::Oci, 3);
    within(60, "push fixtures", async {
        pusher.push_index("proj/multi", &oci, &["v1", "latest"]).await;
        pusher.push_index("proj/list", &docker, &["v2"]).await;
        pusher.push_image("proj/single", &single, &["v3"]).await;
    })
    .await;
    let creds = registry.credentials();
    // skopeo reads exactly the bytes pushed, under every tag and by digest.
    for (reference, digest) in [
        ("proj/multi:v1", &oci.digest),
        ("proj/multi:latest", &oci.digest),
        ("proj/list:v2", &docker.digest),
        ("proj/single:v3", &single.digest),
    ] {
        let raw = registry
            .skopeo_raw(reference)
            .unwrap_or_else(|| panic!("{reference} missing"));
        assert_eq!(&sha256_digest(&raw), digest, "{reference} on {}", registry.host());
    }
    let child = &oci.children[1];
    let raw = registry
        .skopeo_raw(&format!("proj/multi@{}", child.digest))
        .expect("tagless child");
    assert_eq!(raw, child.manifest.to_vec());
    assert_eq!(registry.skopeo_tags("proj/multi"), vec!["latest", "v1"]);
    assert_eq!(registry.skopeo_raw("proj/multi:absent"), None);
    assert_eq!(
        support::skopeo::digest_of(&format!("{}/proj/list:v2", registry.host()), creds),
        Some(docker.digest.clone())
    );
    if let Some(tokens) = registry.token_server() {
        assert!(tokens.issued() > 0, "token auth must go through the token server");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_registry_round_trip() {
    push_and_read_back(RegistryOptions::plain()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_registry_round_trip() {
    push_and_read_back(RegistryOptions::basic()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_auth_registry_round_trip() {
    push_and_read_back(RegistryOptions::token()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_registry_round_trip() {
    push_and_read_back(RegistryOptions::tls()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_registries_refuse_anonymous_push() {
    for options in [RegistryOptions::basic(), RegistryOptions::token()] {
        let registry = TestRegistry::start(options);
        let response = support::http_client()
            .post(format!("{}/v2/x/blobs/uploads/", registry.url()))
            .send()
            .await
            .expect("POST upload");
        assert_eq!(response.status(), 401, "{options:?}");
        assert!(response.headers().contains_key("www-authenticate"));
    }
}

#[test]
fn stopped_registry_restarts_with_its_data() {
    let mut registry = TestRegistry::start(RegistryOptions::plain());
    let image = Image::simple(Format::Docker, 11);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(registry.pusher().push_image("keep/me", &image, &["t"]));
    registry.stop();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", registry.port())).is_err(),
        "stopped registry still answers"
    );
    registry.restart();
    assert_eq!(
        support::skopeo::digest_of(&format!("{}/keep/me:t", registry.host()), None),
        Some(image.digest)
    );
}

#[tokio::test]
async fn big_blob_digest_matches_its_stream() {
    let size = 5 * (1 << 20) + 12345;
    let blob = Blob::big(42, size);
    let mut hasher = Vec::new();
    let mut stream = blob.stream();
    while let Some(chunk) = stream.next().await {
        hasher.extend_from_slice(&chunk.expect("generated chunk"));
    }
    assert_eq!(hasher.len() as u64, size);
    assert_eq!(sha256_digest(&hasher), blob.digest);
    assert_ne!(Blob::big(43, size).digest, blob.digest, "seed must change the content");
    assert_eq!(Blob::big(42, size).digest, blob.digest, "same seed, same digest");
}

async fn get(url: &str, accept: &[&str]) -> reqwest::Result<(u16, reqwest::header::HeaderMap, Bytes)> {
    let mut request = support::http_client().get(url);
    for value in accept {
        request = request.header("accept", *value);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    Ok((status, headers, response.bytes().await?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_proxy_forwards_faithfully_and_injects_faults() {
    let registry = TestRegistry::start(RegistryOptions::plain());
    let index = Index::multi_arch(Format::Oci, 5, &["amd64", "arm64"], None);
    let layer = Blob::random(9, 300 * 1024);
    let image = Image::new(Format::Oci, 9, "amd64", vec![layer.clone()]);
    let pusher = registry.pusher();
    pusher.push_index("r", &index, &["v1"]).await;
    pusher.push_image("r", &image, &["img"]).await;
    let proxy = FaultProxy::start(registry.port());
    let base = format!("http://{}", proxy.host());

    // Two separate Accept lines: distribution serves an OCI index only if one of them names
    // it exactly, so a proxy that merged or dropped repeated headers would get a 404.
    let manifest_url = format!("{base}/v2/r/manifests/v1");
    let (status, headers, body) = get(
        &manifest_url,
        &[support::images::DOCKER_MANIFEST, support::images::OCI_INDEX],
    )
    .await
    .expect("GET index");
    assert_eq!(status, 200);
    assert_eq!(sha256_digest(&body), index.digest);
    assert_eq!(headers["docker-content-digest"], index.digest.as_str());

    // Location URLs point back at the proxy (Host is forwarded unchanged).
    let response = support::http_client()
        .post(format!("{base}/v2/r/blobs/uploads/"))
        .send()
        .await
        .expect("POST");
    let location = response.headers()["location"].to_str().expect("location").to_string();
    assert!(location.starts_with(&base) || location.starts_with('/'), "{location}");

    let blob_url = format!("{base}/v2/r/blobs/{}", layer.digest);
    proxy.set_rules(vec![Rule::new(
        Some("GET"),
        "/blobs/",
        Action::FlipByte,
        Times::First(1),
    )]);
    let (status, _, body) = get(&blob_url, &[]).await.expect("GET flipped blob");
    assert_eq!((status, body.len() as u64), (200, layer.size));
    assert_ne!(
        sha256_digest(&body),
        layer.digest,
        "flipped body must not match its digest"
    );
    let (_, _, body) = get(&blob_url, &[]).await.expect("GET blob");
    assert_eq!(sha256_digest(&body), layer.digest, "First(1) fires once");

    proxy.set_rules(vec![Rule::new(None, "/blobs/", Action::Truncate, Times::Always)]);
    assert!(get(&blob_url, &[]).await.is_err(), "truncated body must fail the read");

    proxy.set_rules(vec![Rule::new(None, "/blobs/", Action::Reset, Times::Always)]);
    assert!(get(&blob_url, &[]).await.is_err(), "reset must fail the request");

    proxy.set_rules(vec![Rule::new(
        Some("GET"),
        "/manifests/",
        Action::Status {
            status: 429,
            retry_after: Some(2),
        },
        Times::FirstPerRequest(2),
    )]);
    for expected in [429, 429, 200] {
        let (status, headers, _) = get(&manifest_url, &[support::images::OCI_INDEX]).await.expect("GET");
        assert_eq!(status, expected);
        if status == 429 {
            assert_eq!(headers["retry-after"], "2");
        }
    }
    let other = format!("{base}/v2/r/manifests/img");
    assert_eq!(
        get(&other, &[support::images::OCI_MANIFEST]).await.expect("GET").0,
        429,
        "per distinct request"
    );

    proxy.set_rules(vec![Rule::new(
        None,
        "/blobs/",
        Action::Slow {
            bytes_per_sec: 1_000_000,
        },
        Times::Always,
    )]);
    let started = std::time::Instant::now();
    let (_, _, body) = get(&blob_url, &[]).await.expect("slow GET");
    assert_eq!(sha256_digest(&body), layer.digest);
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(250),
        "300 KiB at 1 MB/s took {:?}",
        started.elapsed()
    );
    proxy.set_rules(vec![Rule::new(
        Some("GET"),
        "/referrers/",
        Action::Answer {
            status: 200,
            content_type: "application/vnd.oci.image.index.v1+json",
            body: "garbage",
        },
        Times::Always,
    )]);
    let referrers = format!("{base}/v2/r/referrers/{}", index.digest);
    let (status, headers, body) = get(&referrers, &[]).await.expect("GET referrers");
    assert_eq!((status, &body[..]), (200, &b"garbage"[..]));
    assert_eq!(headers["content-type"], "application/vnd.oci.image.index.v1+json");
    proxy.set_rules(Vec::new());

    assert_eq!(proxy.count("GET", "^/v2/r/blobs/"), 5);
    assert!(proxy.faults() >= 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_proxy_paginates_tags_sorted_with_link() {
    let registry = TestRegistry::start(RegistryOptions::plain());
    let image = Image::simple(Format::Oci, 21);
    let pusher = registry.pusher();
    let tags: Vec<String> = (0..7).map(|i| format!("t{}", 7 - i)).collect();
    let tag_refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    pusher.push_image("many", &image, &tag_refs).await;
    let proxy = FaultProxy::start(registry.port());
    proxy.paginate_tags(Some(3));
    let mut url = format!("http://{}/v2/many/tags/list", proxy.host());
    let mut pages = Vec::new();
    for _ in 0..10 {
        let (status, headers, body) = get(&url, &[]).await.expect("GET tags");
        assert_eq!(status, 200);
        let list: serde_json::Value = serde_json::from_slice(&body).expect("tags JSON");
        pages.push(
            list["tags"]
                .as_array()
                .expect("tags")
                .iter()
                .map(|t| t.as_str().expect("tag").to_string())
                .collect::<Vec<_>>(),
        );
        let Some(link) = headers.get("link") else { break };
        let target = link
            .to_str()
            .expect("link")
            .split(['<', '>'])
            .nth(1)
            .expect("<url>")
            .to_string();
        url = format!("http://{}{target}", proxy.host());
    }
    assert_eq!(pages, vec![vec!["t1", "t2", "t3"], vec!["t4", "t5", "t6"], vec!["t7"]]);
    assert!(
        support::skopeo::list_tags(&format!("{}/many", proxy.host()), None).len() == 7,
        "skopeo follows the Link pages"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_front_answers_429_with_retry_after_beyond_its_rate() {
    let registry = TestRegistry::start(RegistryOptions::plain());
    let front = RateLimitFront::start(registry.port(), 5, 2, 1);
    let url = format!("http://{}/v2/", front.host());
    // All at once, so the outcome does not depend on how fast this machine is.
    let answers = futures_util::future::join_all((0..20).map(|_| get(&url, &[]))).await;
    let mut statuses = Vec::new();
    for answer in answers {
        let (status, headers, _) = answer.expect("GET /v2/");
        if status == 429 {
            assert_eq!(headers["retry-after"], "1");
        }
        statuses.push(status);
    }
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert!(
        limited >= 10,
        "20 simultaneous requests at 5 r/s burst 2: only {limited} got 429: {statuses:?}"
    );
    assert!(statuses.contains(&200), "some requests pass: {statuses:?}");
    assert_eq!(front.rejected(), limited);
    assert_eq!(front.passed(), 20 - limited);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_proxy_answers_502_while_its_registry_is_down() {
    let mut registry = TestRegistry::start(RegistryOptions::plain());
    let proxy = FaultProxy::start(registry.port());
    let url = format!("http://{}/v2/", proxy.host());
    assert_eq!(get(&url, &[]).await.expect("GET /v2/").0, 200);
    registry.stop();
    assert_eq!(get(&url, &[]).await.expect("GET /v2/ while down").0, 502);
    registry.restart();
    assert_eq!(get(&url, &[]).await.expect("GET /v2/ after restart").0, 200);
}

const SIGNATURE_TYPE: &str = "application/vnd.kpromo.test.signature.v1+json";
const ATTESTATION_TYPE: &str = "application/vnd.kpromo.test.attestation.v1+json";
const EMPTY_CONFIG_TYPE: &str = "application/vnd.oci.empty.v1+json";

/// A manifest whose `subject` is an image, as a signature or an attestation is attached.
struct Referrer {
    blobs: [Blob; 2],
    manifest: Bytes,
    digest: String,
}

impl Referrer {
    /// With `artifact_type`, an OCI 1.1 artifact (the type in `artifactType`, the empty config);
    /// without, the type travels as the config's media type, as OCI 1.1 allows when
    /// `artifactType` is unset. Both carry an annotation.
    fn new(subject: &Image, artifact_type: Option<&str>, payload: Blob) -> Referrer {
        let (config_type, config) = match artifact_type {
            Some(_) => (EMPTY_CONFIG_TYPE, Blob::from_bytes("{}")),
            None => (SIGNATURE_TYPE, Blob::from_bytes(r#"{"kind":"signature"}"#)),
        };
        let descriptor =
            |media_type: &str, blob: &Blob| json!({"mediaType": media_type, "digest": blob.digest, "size": blob.size});
        let mut manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(config_type, &config),
            "layers": [descriptor("application/vnd.kpromo.test.payload.v1", &payload)],
            "subject": {"mediaType": subject.media_type(), "digest": subject.digest, "size": subject.manifest.len()},
            "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
        });
        if let Some(artifact_type) = artifact_type {
            manifest["artifactType"] = json!(artifact_type);
        }
        let manifest = Bytes::from(serde_json::to_vec(&manifest).expect("serialise referrer"));
        Referrer {
            blobs: [config, payload],
            digest: sha256_digest(&manifest),
            manifest,
        }
    }

    /// The descriptor a referrers listing should hold for this manifest.
    fn listed_as(&self, artifact_type: &str) -> Value {
        json!({"mediaType": OCI_MANIFEST, "digest": self.digest, "size": self.manifest.len(), "artifactType": artifact_type})
    }
}

/// `GET` a referrers listing: status, headers and the JSON body.
async fn referrers(url: reqwest::Url) -> (u16, reqwest::header::HeaderMap, Value) {
    let (status, headers, body) = get(url.as_str(), &[]).await.expect("GET referrers");
    let body = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {body:?}"));
    (status, headers, body)
}

/// Descriptors sorted by digest: listings come in no particular order.
fn by_digest(mut descriptors: Vec<Value>) -> Vec<Value> {
    descriptors.sort_by(|a, b| a["digest"].as_str().cmp(&b["digest"].as_str()));
    descriptors
}

/// A listing's descriptors, sorted by digest.
fn listed(index: &Value) -> Vec<Value> {
    by_digest(index["manifests"].as_array().expect("manifests array").clone())
}

/// The referrers test registry (tests/support/ggcr.rs) lists referrers through the OCI 1.1 API.
/// The quirks of this pristine go-containerregistry build are asserted too, each with what it
/// means for a test built on it: a new packaged version that changes any of them fails here
/// first, not in a kpromo test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ggcr_registry_serves_referrers_with_its_quirks() {
    const REPO: &str = "proj/signed";
    let registry = GgcrRegistry::start();
    let pusher = registry.pusher();
    let image = Image::simple(Format::Oci, 31);
    let signature = Referrer::new(&image, None, Blob::random(32, 512));
    let attestation = Referrer::new(&image, Some(ATTESTATION_TYPE), Blob::random(33, 512));
    let subject_headers = within(60, "push an image and two referrers", async {
        pusher.push_image(REPO, &image, &["v1"]).await;
        let mut subject_headers = Vec::new();
        for referrer in [&signature, &attestation] {
            for blob in &referrer.blobs {
                pusher.push_blob(REPO, blob).await;
            }
            let response = support::http_client()
                .put(format!("{}/v2/{REPO}/manifests/{}", registry.url(), referrer.digest))
                .header("content-type", OCI_MANIFEST)
                .body(referrer.manifest.clone())
                .send()
                .await
                .expect("PUT referrer manifest");
            assert_eq!(response.status(), 201, "PUT {}", referrer.digest);
            subject_headers.push(response.headers().get("oci-subject").cloned());
        }
        subject_headers
    })
    .await;
    // Quirk: a PUT with a `subject` is not acknowledged with `OCI-Subject`. A client that
    // follows the spec takes that for "no referrers API" and also writes the sha256-<hex>
    // fallback index; only a GET on the referrers endpoint shows the API is there.
    assert_eq!(subject_headers, vec![None, None]);
    // The manifests themselves round-trip byte for byte, as on distribution.
    assert_eq!(
        pusher.get_manifest(REPO, &signature.digest).await,
        (200, OCI_MANIFEST.to_string(), signature.manifest.clone())
    );

    let listing = |repo: &str, digest: &str, query: &[(&str, &str)]| {
        reqwest::Url::parse_with_params(&format!("{}/v2/{repo}/referrers/{digest}", registry.url()), query)
            .expect("referrers URL")
    };
    let (status, headers, index) = referrers(listing(REPO, &image.digest, &[])).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], OCI_INDEX);
    assert_eq!(
        (&index["schemaVersion"], &index["mediaType"]),
        (&json!(2), &json!(OCI_INDEX))
    );
    // Quirks, shown by comparing whole descriptors: each entry's `artifactType` is its config's
    // media type, even when the manifest sets `artifactType` (the attestation is listed with
    // the empty config's type: only a referrer whose config carries its type is listed with
    // that type), and annotations are dropped. Entries come in random order (a Go map walk), so
    // tests must compare them as a set.
    let expected = by_digest(vec![
        signature.listed_as(SIGNATURE_TYPE),
        attestation.listed_as(EMPTY_CONFIG_TYPE),
    ]);
    assert_eq!(listed(&index), expected);

    // Quirk: the `artifactType` filter is ignored, and not reported as applied.
    let (status, headers, filtered) =
        referrers(listing(REPO, &image.digest, &[("artifactType", SIGNATURE_TYPE)])).await;
    assert_eq!(status, 200);
    assert!(!headers.contains_key("oci-filters-applied"), "{headers:?}");
    assert_eq!(listed(&filtered), expected);

    // A digest that nothing refers to, in a repository that exists: an empty index.
    let (status, _, empty) = referrers(listing(REPO, &signature.digest, &[])).await;
    assert_eq!((status, &empty["manifests"]), (200, &json!([])));
    // Quirk: in a repository that does not exist the endpoint answers 404 NAME_UNKNOWN, so a
    // probe for the API must ask about a repository that exists.
    let (status, _, error) = referrers(listing("proj/absent", &image.digest, &[])).await;
    assert_eq!((status, &error["errors"][0]["code"]), (404, &json!("NAME_UNKNOWN")));

    // The registry keeps no sha256-<hex> fallback index of its own: only the pushed tag exists.
    let (status, _, tags) = get(&format!("{}/v2/{REPO}/tags/list", registry.url()), &[])
        .await
        .expect("GET tags");
    let tags: Value = serde_json::from_slice(&tags).expect("tags JSON");
    assert_eq!((status, &tags["tags"]), (200, &json!(["v1"])));

    // Quirk (for copies, not referrers): blobs are not per repository, so any repository
    // "has" a blob pushed to another. Tests that check where blobs were copied use distribution.
    assert!(pusher.has_blob("proj/elsewhere", &image.config.digest).await);
}
