//! The adaptive concurrency limit against real distribution: with more work waiting than
//! the starting limit admits, and a registry that keeps up, the limit grows past its start
//! but never past the configured cap. (Throttling lowering it is checked through the nginx
//! 429 front in `solo::registry_rate_limit`, server errors in `registry_faults`.) Run alone
//! (see `solo`): the growth depends on the registry's latency, which other tests sharing
//! the CPU would inflate.
use kpromo::registry::ClientOptions;

use crate::support::client::{digest, open, options_for};
use crate::support::images::Blob;
use crate::support::{RegistryOptions, TestRegistry, within};

const CAP: usize = 12;
const TASKS: usize = 64;
const HEADS_PER_TASK: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run alone by scripts/test.sh"]
async fn concurrency_grows_under_load_up_to_the_cap() {
    let registry = TestRegistry::start(RegistryOptions::plain());
    let blobs: Vec<Blob> = (0..4).map(|i| Blob::random(900 + i, 1_000)).collect();
    for blob in &blobs {
        registry.pusher().push_blob("adapt", blob).await;
    }
    let options = ClientOptions {
        // The rate limiter must not be the bottleneck: the limit only grows when it is the
        // concurrency that holds requests back.
        rate_limit: Some(100_000),
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
