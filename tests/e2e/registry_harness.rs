//! Self-tests of the test harness (tests/support): real registries start in every variant,
//! the fixture pusher writes what skopeo (an independent client) reads back, and every
//! fault the proxy and nginx front inject is observable. Tests of kpromo's client rely on
//! these behaving.
use bytes::Bytes;
use futures_util::StreamExt;

use crate::support;
use crate::support::images::{Blob, Format, Image, Index, sha256_digest};
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
