//! A 429 storm from a real rate limiter (nginx `limit_req` with `Retry-After`) in front of
//! real distribution: the client must finish every request, at a pace close to what the
//! limiter allows, without hammering it with rejected requests. Run alone (see `solo`) so
//! no other test competes for the limiter or the CPU while it is timed.
use std::time::Instant;

use kpromo::registry::ManifestRef;

use crate::support::client::{open, options_for};
use crate::support::images::{Format, Image};
use crate::support::{RateLimitFront, RegistryOptions, TestRegistry, within};

const ALLOWED_PER_SEC: u32 = 20;
const REQUESTS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run alone by scripts/test.sh"]
async fn storm_of_429_is_absorbed_at_the_allowed_rate() {
    let registry = TestRegistry::start(RegistryOptions::plain());
    let image = Image::simple(Format::Oci, 71);
    let tags: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
    let refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    registry.pusher().push_image("storm", &image, &refs).await;
    let front = RateLimitFront::start(registry.port(), ALLOWED_PER_SEC, 5, 1);
    // Client defaults (50 req/s, burst 16) are well above what the front allows.
    let (_registries, root) = open(&front.host(), options_for(&registry));

    let started = Instant::now();
    let results = within(120, "200 HEADs through a 20 r/s limiter", async {
        let calls = (0..REQUESTS).map(|i| {
            let registry = root.registry.clone();
            let reference = ManifestRef::Tag(tags[i % tags.len()].clone());
            tokio::spawn(async move { registry.head_manifest("storm", &reference).await })
        });
        futures_util::future::join_all(calls).await
    })
    .await;
    let elapsed = started.elapsed().as_secs_f64();

    for result in results {
        let head = result.expect("task").expect("every request eventually succeeds");
        assert_eq!(head.map(|d| d.digest.to_string()), Some(image.digest.clone()));
    }
    let achieved = REQUESTS as f64 / elapsed;
    let (passed, rejected) = (front.passed(), front.rejected());
    let stats = root.registry.stats();
    let concurrency = stats.concurrency.expect("a remote registry reports its concurrency");
    println!(
        "429 storm: {REQUESTS} requests in {elapsed:.1} s = {achieved:.1} req/s (allowed {ALLOWED_PER_SEC}); \
         nginx passed {passed}, rejected {rejected}; client retries {}, paused {} ms; concurrency {concurrency:?}",
        stats.retries, stats.paused_ms
    );
    // The storm lowered the concurrency limit too (it starts at 8), not only the rate.
    assert!(concurrency.lowest < 8, "{concurrency:?}");
    assert!(concurrency.limit <= 8 && concurrency.peak <= 32, "{concurrency:?}");
    assert!(passed >= REQUESTS, "nginx passed only {passed} requests");
    assert!(
        rejected <= REQUESTS,
        "the client kept hammering: {rejected} rejected for {REQUESTS} requests"
    );
    assert!(stats.retries as usize >= rejected, "every 429 was retried and counted");
    // Generous bound (the machine is shared): below half the allowed rate means the client
    // over-reacted to Retry-After instead of pacing itself.
    assert!(
        achieved >= ALLOWED_PER_SEC as f64 * 0.5,
        "achieved only {achieved:.1} req/s"
    );
}
