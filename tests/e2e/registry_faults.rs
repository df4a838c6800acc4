//! The remote client under injected faults, through the harness's fault proxy in front of
//! real distribution: corrupted bodies are refused (digest mismatch), transient failures
//! (5xx, 429, resets, truncated bodies) are retried until they pass, permanent answers
//! (404) are not retried, a burst of 5xx lowers the host's concurrency limit once (not
//! once per answer), and tags lists are followed across `Link` pages (distribution 2.8
//! cannot paginate tags itself; the proxy pages them like GCR or distribution 3 do).
use futures_util::StreamExt;
use kpromo::registry::{ClientOptions, Error, ManifestRef};

use crate::support::client::{copy_blob, digest, open, options_for, read_blob};
use crate::support::images::{Blob, Format, Image};
use crate::support::{Action, FaultProxy, RegistryOptions, Rule, TestRegistry, Times, within};

struct Bed {
    registry: TestRegistry,
    proxy: FaultProxy,
    image: Image,
}

async fn bed() -> Bed {
    let registry = TestRegistry::start(RegistryOptions::plain());
    let image = Image::new(
        Format::Oci,
        41,
        "amd64",
        vec![Blob::random(41, 3 << 20), Blob::random(42, 5_000)],
    );
    registry.pusher().push_image("app", &image, &["v1"]).await;
    let proxy = FaultProxy::start(registry.port());
    Bed { registry, proxy, image }
}

fn is_digest_mismatch(error: &Error) -> bool {
    matches!(error, Error::DigestMismatch { .. })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_blob_is_refused_and_never_lands_at_the_destination() {
    let bed = bed().await;
    let layer = &bed.image.layers[0];
    bed.proxy.set_rules(vec![Rule::new(
        Some("GET"),
        "^/v2/app/blobs/",
        Action::FlipByte,
        Times::Always,
    )]);
    let (_registries, root) = open(&bed.proxy.host(), options_for(&bed.registry));
    let reg = root.registry.as_ref();
    within(120, "reads of a corrupted blob", async {
        let error = read_blob(reg, "app", &digest(&layer.digest))
            .await
            .expect_err("a flipped byte must fail the read");
        assert!(is_digest_mismatch(&error), "expected a digest mismatch, got: {error}");
        let message = error.to_string();
        assert!(
            message.contains(&layer.digest) && message.contains(&bed.proxy.host()),
            "error names digest and registry: {message}"
        );

        // Streamed straight into an upload: the destination must refuse (or never commit) it.
        let result = copy_blob(reg, "app", reg, "copy", &digest(&layer.digest), layer.size).await;
        assert!(result.is_err(), "a corrupted copy must fail");
        assert_eq!(reg.blob_size("copy", &digest(&layer.digest)).await.expect("HEAD"), None);
    })
    .await;
    assert!(
        !bed.registry.pusher().has_blob("copy", &layer.digest).await,
        "nothing half-written"
    );
    assert!(bed.proxy.faults() >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_manifest_is_refused() {
    let bed = bed().await;
    bed.proxy.set_rules(vec![Rule::new(
        Some("GET"),
        "/manifests/",
        Action::FlipByte,
        Times::Always,
    )]);
    let (_registries, root) = open(&bed.proxy.host(), options_for(&bed.registry));
    let reg = root.registry.as_ref();
    for reference in [
        ManifestRef::Tag("v1".into()),
        ManifestRef::Digest(digest(&bed.image.digest)),
    ] {
        let error = within(60, "GET corrupted manifest", reg.get_manifest("app", &reference))
            .await
            .expect_err("a flipped manifest byte must be refused");
        assert!(
            is_digest_mismatch(&error),
            "{reference}: expected a digest mismatch, got: {error}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_faults_are_retried_until_they_pass() {
    let bed = bed().await;
    let layer = &bed.image.layers[0];
    let (_registries, root) = open(&bed.proxy.host(), options_for(&bed.registry));
    let reg = root.registry.as_ref();
    let faults = [
        Action::Status {
            status: 503,
            retry_after: None,
        },
        Action::Status {
            status: 500,
            retry_after: None,
        },
        Action::Status {
            status: 429,
            retry_after: Some(1),
        },
        Action::Reset,
    ];
    for action in faults {
        bed.proxy.clear_seen();
        bed.proxy.set_rules(vec![Rule::new(
            None,
            "^/v2/app/",
            action.clone(),
            Times::FirstPerRequest(2),
        )]);
        within(120, &format!("operations under {action:?}"), async {
            let head = reg.head_manifest("app", &ManifestRef::Tag("v1".into())).await;
            assert_eq!(
                head.expect("HEAD retried").map(|d| d.digest.to_string()),
                Some(bed.image.digest.clone())
            );
            let raw = reg
                .get_manifest("app", &ManifestRef::Digest(digest(&bed.image.digest)))
                .await;
            assert_eq!(raw.expect("GET retried").expect("exists").bytes, bed.image.manifest);
            assert_eq!(
                reg.blob_size("app", &digest(&layer.digest))
                    .await
                    .expect("blob HEAD retried"),
                Some(layer.size)
            );
            assert_eq!(
                read_blob(reg, "app", &digest(&layer.digest))
                    .await
                    .expect("blob GET retried")
                    .len() as u64,
                layer.size
            );
        })
        .await;
        assert!(
            bed.proxy.faults() >= 8,
            "{action:?}: each of 4 requests failed twice first, saw {}",
            bed.proxy.faults()
        );
    }
    assert!(reg.stats().retries >= 32, "retries counted: {:?}", reg.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_manifest_body_is_retried() {
    let bed = bed().await;
    bed.proxy.set_rules(vec![Rule::new(
        Some("GET"),
        "/manifests/",
        Action::Truncate,
        Times::FirstPerRequest(1),
    )]);
    let (_registries, root) = open(&bed.proxy.host(), options_for(&bed.registry));
    let raw = within(
        60,
        "GET truncated manifest",
        root.registry.get_manifest("app", &ManifestRef::Tag("v1".into())),
    )
    .await
    .expect("retried after a truncated body")
    .expect("exists");
    assert_eq!(raw.bytes, bed.image.manifest);
    assert_eq!(bed.proxy.faults(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_blob_stream_ends_in_an_error_not_a_short_blob() {
    let bed = bed().await;
    let layer = &bed.image.layers[0];
    bed.proxy
        .set_rules(vec![Rule::new(Some("GET"), "/blobs/", Action::Truncate, Times::Always)]);
    let (_registries, root) = open(&bed.proxy.host(), options_for(&bed.registry));
    let reg = root.registry.as_ref();
    let outcome = within(120, "read a truncated blob", async {
        let mut stream = reg.get_blob("app", &digest(&layer.digest)).await?;
        let mut total = 0u64;
        while let Some(chunk) = stream.next().await {
            total += chunk?.len() as u64;
        }
        Ok::<u64, Error>(total)
    })
    .await;
    assert!(outcome.is_err(), "a truncated body must not end cleanly: {outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_and_auth_answers_are_not_retried() {
    let bed = bed().await;
    let (_registries, root) = open(&bed.proxy.host(), options_for(&bed.registry));
    let reg = root.registry.as_ref();
    assert_eq!(
        reg.head_manifest("app", &ManifestRef::Tag("nope".into()))
            .await
            .expect("404 is not an error"),
        None
    );
    assert_eq!(
        bed.proxy.count("HEAD", "^/v2/app/manifests/nope$"),
        1,
        "404 must not be retried"
    );
    bed.proxy.set_rules(vec![Rule::new(
        None,
        "^/v2/app/",
        Action::Status {
            status: 403,
            retry_after: None,
        },
        Times::Always,
    )]);
    let error = reg
        .get_manifest("app", &ManifestRef::Tag("v1".into()))
        .await
        .expect_err("403 is an error");
    assert!(!error.is_transient(), "403 is permanent: {error}");
    assert_eq!(
        bed.proxy.count("GET", "^/v2/app/manifests/v1$"),
        1,
        "403 must not be retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_are_followed_across_link_pages() {
    let registry = TestRegistry::start(RegistryOptions::plain());
    let image = Image::simple(Format::Docker, 51);
    let tags: Vec<String> = (0..57).map(|i| format!("v1.{i}.0")).collect();
    let refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    within(
        120,
        "push 57 tags",
        registry.pusher().push_image("paged", &image, &refs),
    )
    .await;
    let proxy = FaultProxy::start(registry.port());
    proxy.paginate_tags(Some(10));
    let (_registries, root) = open(&proxy.host(), options_for(&registry));
    let list = within(60, "paginated tags", root.registry.list_tags("paged"))
        .await
        .expect("tags")
        .expect("repo exists");
    let mut got = list.tags.clone();
    got.sort();
    let mut want = tags.clone();
    want.sort();
    assert_eq!(got, want, "every tag across all pages, none twice");
    assert_eq!(proxy.count("GET", "^/v2/paged/tags/list$"), 6, "57 tags in pages of 10");
}

/// A registry that stops sending mid-body, or never answers, must become an error after
/// the configured timeouts (and a retry may then succeed), never a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_answers_time_out_instead_of_hanging() {
    let bed = bed().await;
    let layer = &bed.image.layers[0];
    let mut options = options_for(&bed.registry);
    options.response_timeout = std::time::Duration::from_secs(1);
    options.idle_timeout = std::time::Duration::from_secs(1);
    let (_registries, root) = open(&bed.proxy.host(), options);
    let reg = root.registry.as_ref();

    // Headers never come for the first attempt of each request: a timeout, then a retry.
    bed.proxy.set_rules(vec![Rule::new(
        Some("HEAD"),
        "/manifests/",
        Action::Delay(std::time::Duration::from_secs(30)),
        Times::FirstPerRequest(1),
    )]);
    let head = within(
        25,
        "HEAD behind a silent first answer",
        reg.head_manifest("app", &ManifestRef::Tag("v1".into())),
    )
    .await
    .expect("retried after a response timeout");
    assert_eq!(head.map(|d| d.digest.to_string()), Some(bed.image.digest.clone()));

    // A body trickling at 100 bytes/s in 16 KiB pieces goes silent for minutes at a time.
    bed.proxy.set_rules(vec![Rule::new(
        Some("GET"),
        "/blobs/",
        Action::Slow { bytes_per_sec: 100 },
        Times::Always,
    )]);
    let outcome = within(60, "read a stalled blob", read_blob(reg, "app", &digest(&layer.digest))).await;
    assert!(outcome.is_err(), "a stalled body must end in an error");
}

/// A small read whose connection goes silent is sent again once it is late by this
/// host's standards, and the first answer is used: it is not waited out to the response
/// deadline and retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_that_hangs_is_sent_again_instead_of_waited_out() {
    let bed = bed().await;
    let (_registries, root) = open(&bed.proxy.host(), options_for(&bed.registry));
    let reg = root.registry.as_ref();
    learn_latency(reg).await;
    bed.proxy.set_rules(vec![Rule::new(
        Some("HEAD"),
        "/manifests/sha256:",
        Action::Hang,
        Times::FirstPerRequest(1),
    )]);
    let digest = digest(&bed.image.digest);
    let head = within(
        30,
        "HEAD whose first connection hangs",
        reg.head_manifest("app", &ManifestRef::Digest(digest)),
    )
    .await
    .expect("answered");
    assert_eq!(head.map(|d| d.digest), Some(digest));
    assert_answered_by_a_second_copy(reg);
    assert_eq!(bed.proxy.count("HEAD", "/manifests/sha256:"), 2);
}

/// The request was sent a second time and that copy's answer used: one hedge, and no
/// request abandoned at its deadline.
fn assert_answered_by_a_second_copy(reg: &dyn kpromo::registry::Registry) {
    let throttling = reg.stats().throttling.expect("a remote registry's throttling");
    assert_eq!(throttling.hedged, 1, "{throttling:?}");
    assert_eq!(
        throttling.stalls, 0,
        "answered by the second copy, not abandoned: {throttling:?}"
    );
}

/// Healthy answers through the proxy, so that the host's latency becomes known (a request
/// is sent a second time only once the host's usual latency is).
async fn learn_latency(reg: &dyn kpromo::registry::Registry) {
    for _ in 0..24 {
        within(30, "HEAD", reg.head_manifest("app", &ManifestRef::Tag("v1".into())))
            .await
            .expect("HEAD");
    }
}

/// A manifest PUT is safe to send twice (the same bytes to the same reference): one whose
/// connection goes silent is sent again like a slow read, not waited out and retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_put_that_hangs_is_sent_again_instead_of_waited_out() {
    let bed = bed().await;
    let (_registries, root) = open(&bed.proxy.host(), options_for(&bed.registry));
    let reg = root.registry.as_ref();
    let manifest = within(30, "GET", reg.get_manifest("app", &ManifestRef::Tag("v1".into())))
        .await
        .expect("GET")
        .expect("the image is there");
    learn_latency(reg).await;
    bed.proxy.set_rules(vec![Rule::new(
        Some("PUT"),
        "/manifests/",
        Action::Hang,
        Times::FirstPerRequest(1),
    )]);
    let v2 = ManifestRef::Tag("v2".into());
    within(
        30,
        "PUT whose first connection hangs",
        reg.put_manifest("app", &v2, &manifest),
    )
    .await
    .expect("answered");
    assert_answered_by_a_second_copy(reg);
    assert_eq!(bed.proxy.count("PUT", "/manifests/v2$"), 2);
    assert_eq!(
        bed.registry.skopeo_digest("app:v2").as_deref(),
        Some(bed.image.digest.as_str()),
        "the tag is there, as another client sees it"
    );
}

/// The POST that starts an upload is sent twice when slow too. Each copy opens an upload
/// session: the upload uses the first answered, and the other is cancelled rather than
/// left in the registry's storage until it purges old sessions (distribution: after a week).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upload_start_is_sent_again_and_the_spare_session_cancelled() {
    let bed = bed().await;
    let (_registries, root) = open(&bed.proxy.host(), options_for(&bed.registry));
    let reg = root.registry.as_ref();
    learn_latency(reg).await;
    // Both copies reach the registry: the first is held until the second arrives.
    bed.proxy.set_rules(vec![Rule::new(
        Some("POST"),
        "/blobs/uploads/$",
        Action::HoldForNext,
        Times::FirstPerRequest(1),
    )]);
    let layer = &bed.image.layers[1];
    let layer_digest = digest(&layer.digest);
    within(
        30,
        "upload whose first POST is held",
        copy_blob(reg, "app", reg, "fresh", &layer_digest, layer.size),
    )
    .await
    .expect("uploaded");
    assert_answered_by_a_second_copy(reg);
    assert!(bed.registry.pusher().has_blob("fresh", &layer.digest).await);
    // The spare session is cancelled in the background, once its POST is answered (the
    // proxy records a request when its answer has gone back).
    within(30, "the spare session cancelled", async {
        while bed.proxy.count("DELETE", "/blobs/uploads/") == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(bed.proxy.count("POST", "/blobs/uploads/$"), 2);
    let cancelled: Vec<_> = bed
        .proxy
        .seen()
        .into_iter()
        .filter(|s| s.method == "DELETE")
        .map(|s| s.path)
        .collect();
    assert_eq!(cancelled.len(), 1, "{cancelled:?}");
    let asked = crate::support::http_client()
        .get(format!("{}{}", bed.registry.url(), cancelled[0]))
        .send()
        .await
        .expect("GET the cancelled session");
    assert_eq!(
        asked.status(),
        404,
        "the registry no longer knows the cancelled session"
    );
    // Distribution 2.8 keeps a cancelled session's hash state on disk, but not its data.
    let sessions = bed
        .registry
        .storage()
        .join("docker/registry/v2/repositories/fresh/_uploads");
    let with_data = std::fs::read_dir(&sessions)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|session| session.path().join("data").exists())
        .count();
    assert_eq!(with_data, 0, "upload sessions with data in {}", sessions.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_server_errors_lowers_the_limit_once_and_requests_still_succeed() {
    let registry = TestRegistry::start(RegistryOptions::plain());
    let blobs: Vec<Blob> = (0..8).map(|i| Blob::random(950 + i, 1_000)).collect();
    for blob in &blobs {
        registry.pusher().push_blob("flaky", blob).await;
    }
    let proxy = FaultProxy::start(registry.port());
    // The first attempt of each blob's HEAD answers 500 (late enough for all eight to be
    // out by then); its retry goes through.
    proxy.set_rules(vec![Rule::new(
        Some("HEAD"),
        "/blobs/",
        Action::StatusAfter {
            status: 500,
            after: std::time::Duration::from_secs(1),
        },
        Times::FirstPerRequest(1),
    )]);
    let options = ClientOptions {
        rate_limit: Some(100_000),
        burst: 100_000,
        ..options_for(&registry)
    };
    let (_registries, root) = open(&proxy.host(), options);
    // Eight HEADs at once: all admitted under the starting limit of 8, all answered 500.
    let results = within(60, "HEADs through a failing proxy", async {
        let tasks = blobs.iter().map(|blob| {
            let (registry, d) = (root.registry.clone(), digest(&blob.digest));
            tokio::spawn(async move { registry.blob_size("flaky", &d).await })
        });
        futures_util::future::join_all(tasks).await
    })
    .await;
    for (result, blob) in results.into_iter().zip(&blobs) {
        assert_eq!(result.expect("task").expect("retried past the 500"), Some(blob.size));
    }
    assert_eq!(proxy.faults(), blobs.len(), "every planned 500 was served");
    let concurrency = root.registry.stats().concurrency.expect("remote registry");
    println!("after a burst of 8 answers of 500: concurrency {concurrency:?}");
    assert!(concurrency.lowest < 8, "5xx lowered the limit: {concurrency:?}");
    // Cutting by 0.75 for each of the 8 answers would end at 1 (8, 6, 4, 3, 2, 1, ...);
    // answers to requests sent under the same limit count once.
    assert_eq!(
        concurrency.in_flight_peak, 8,
        "the burst was in flight at once: {concurrency:?}"
    );
    assert_eq!(
        concurrency.lowest, 6,
        "one burst is one decrease (x0.75), not eight: {concurrency:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_throttles_forever_fails_after_the_retry_timeout_naming_its_quota() {
    let bed = bed().await;
    bed.proxy.set_rules(vec![Rule::new(
        Some("PUT"),
        "/manifests/",
        Action::Status {
            status: 429,
            retry_after: Some(1),
        },
        Times::Always,
    )]);
    let options = ClientOptions {
        retry_timeout: std::time::Duration::from_secs(3),
        ..options_for(&bed.registry)
    };
    let (_registries, root) = open(&bed.proxy.host(), options);
    let reg = root.registry.as_ref();
    let manifest = reg
        .get_manifest("app", &ManifestRef::Tag("v1".into()))
        .await
        .expect("GET")
        .expect("exists");
    let error = within(
        60,
        "PUT throttled forever",
        reg.put_manifest("app", &ManifestRef::Tag("v2".into()), &manifest),
    )
    .await
    .expect_err("429 forever fails once the retry timeout has passed");
    let message = error.to_string();
    for needle in [
        bed.proxy.host().as_str(),
        "429",
        "--registry-retry-timeout",
        "--registry-rate-limit",
        "--registry-quota",
    ] {
        assert!(message.contains(needle), "{needle:?} in {message}");
    }
    let tries = bed.proxy.faults();
    assert!(
        (2..=6).contains(&tries),
        "retried at Retry-After pace, not stormed: {tries}"
    );
    let (status, _, _) = bed.registry.pusher().get_manifest("app", "v2").await;
    assert_eq!(status, 404, "nothing half-written");
}
