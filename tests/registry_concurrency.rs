//! The adaptive concurrency limit against real distribution: with more work waiting than
//! the starting limit admits, and a registry that keeps up, the limit grows past its start
//! but never past the configured cap; and server errors (5xx through the Rust fault proxy)
//! lower it gently while every request still succeeds. (Throttling lowering it is checked
//! through the nginx 429 front in `registry_rate_limit.rs`.) Alone in its own test binary:
//! the growth depends on the registry's latency, which other tests sharing the CPU would
//! inflate.
mod support;

use kpromo::registry::ClientOptions;
use support::client::{digest, open, options_for};
use support::fault_proxy::{Action, FaultProxy, Rule, Times};
use support::images::Blob;
use support::{RegistryOptions, TestRegistry, within};

const CAP: usize = 12;
const TASKS: usize = 64;
const HEADS_PER_TASK: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_grows_under_load_up_to_the_cap() {
    let registry = TestRegistry::start(RegistryOptions::plain());
    let blobs: Vec<Blob> = (0..4).map(|i| Blob::random(900 + i, 1_000)).collect();
    for blob in &blobs {
        registry.pusher().push_blob("adapt", blob).await;
    }
    let options = ClientOptions {
        // The rate limiter must not be the bottleneck: the limit only grows when it is the
        // concurrency that holds requests back.
        rate_limit: 100_000,
        burst: 100_000,
        max_concurrency: CAP,
        ..options_for(&registry)
    };
    let (_registries, root) = open(&registry.host(), options);

    let results = within(60, "HEADs from 64 tasks", async {
        let tasks = (0..TASKS).map(|t| {
            let registry = root.registry.clone();
            let blobs: Vec<(String, u64)> = blobs.iter().map(|b| (b.digest.clone(), b.size)).collect();
            tokio::spawn(async move {
                let mut sizes = Vec::new();
                for i in 0..HEADS_PER_TASK {
                    let (d, size) = &blobs[(t + i) % blobs.len()];
                    let got = registry.blob_size("adapt", &digest(d)).await;
                    sizes.push((got, *size));
                }
                sizes
            })
        });
        futures_util::future::join_all(tasks).await
    })
    .await;

    for result in results {
        for (got, size) in result.expect("task") {
            assert_eq!(got.expect("every HEAD succeeds"), Some(size));
        }
    }
    let stats = root.registry.stats();
    let concurrency = stats.concurrency.expect("a remote registry reports its concurrency");
    println!(
        "{} HEADs from {TASKS} tasks: requests {:?}, concurrency {concurrency:?}",
        TASKS * HEADS_PER_TASK,
        stats.requests
    );
    assert_eq!(concurrency.lowest, 8, "started at 8 and never throttled");
    assert!(concurrency.peak > 8, "the limit grew under load: {concurrency:?}");
    assert!(
        concurrency.in_flight_peak > 8,
        "the grown limit was used: {concurrency:?}"
    );
    assert!(
        concurrency.peak <= CAP && concurrency.limit <= CAP && concurrency.in_flight_peak <= CAP,
        "the cap holds: {concurrency:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_server_errors_lowers_the_limit_once_and_requests_still_succeed() {
    let registry = TestRegistry::start(RegistryOptions::plain());
    let blobs: Vec<Blob> = (0..8).map(|i| Blob::random(950 + i, 1_000)).collect();
    for blob in &blobs {
        registry.pusher().push_blob("flaky", blob).await;
    }
    let proxy = FaultProxy::start(registry.port());
    // The first attempt of each blob's HEAD answers 500; its retry goes through.
    proxy.set_rules(vec![Rule::new(
        Some("HEAD"),
        "/blobs/",
        Action::Status {
            status: 500,
            retry_after: None,
        },
        Times::FirstPerRequest(1),
    )]);
    let options = ClientOptions {
        rate_limit: 100_000,
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
    // Cutting by 0.75 for each of the 8 answers would end at 1 (8, 6, 4, 3, 2, 1, ...).
    // Answers to requests sent under the old limit count once; requests admitted while the
    // first answers came back (a busy machine spreads them out) may add a decrease or two.
    assert!(
        concurrency.lowest >= 2,
        "one burst is not eight decreases: {concurrency:?}"
    );
}
