//! A 1 GiB blob copied between two real registries by the client under test, with flat
//! memory: the copy streams, it never holds the layer. Run alone (see `solo`), and the
//! peak RSS is reset just before the copy, so the growth measured is this copy's only.
use std::time::Instant;

use crate::support;
use crate::support::client::{copy_blob, digest, open, options_for};
use crate::support::images::Blob;
use crate::support::{RegistryOptions, TestRegistry, within};

const SIZE: u64 = 1 << 30;
const MAX_RSS_GROWTH: u64 = 150 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run alone by scripts/test.sh"]
async fn one_gib_blob_copies_with_flat_memory() {
    let source = TestRegistry::start(RegistryOptions::plain());
    let destination = TestRegistry::start(RegistryOptions::plain());
    let blob = Blob::big(1234, SIZE);
    within(300, "push 1 GiB fixture", source.pusher().push_blob("big/layer", &blob)).await;

    let (_registries, src) = open(&source.host(), options_for(&source));
    let (_registries2, dst) = open(&destination.host(), options_for(&destination));
    let d = digest(&blob.digest);
    support::reset_peak_rss();
    let before = support::rss_bytes();
    let started = Instant::now();
    within(
        600,
        "copy 1 GiB",
        copy_blob(
            src.registry.as_ref(),
            "big/layer",
            dst.registry.as_ref(),
            "mirror/layer",
            &d,
            SIZE,
        ),
    )
    .await
    .expect("1 GiB copy");
    let elapsed = started.elapsed().as_secs_f64();
    let growth = support::peak_rss_bytes().saturating_sub(before);
    println!(
        "1 GiB copy: {elapsed:.1} s ({:.0} MB/s), peak RSS growth {} MiB",
        SIZE as f64 / elapsed / 1e6,
        growth >> 20
    );
    assert_eq!(
        dst.registry.blob_size("mirror/layer", &d).await.expect("HEAD"),
        Some(SIZE)
    );
    assert!(
        destination.pusher().has_blob("mirror/layer", &blob.digest).await,
        "visible to another client"
    );
    assert!(
        growth < MAX_RSS_GROWTH,
        "peak RSS grew by {} MiB while copying 1 GiB",
        growth >> 20
    );
    let stats = dst.registry.stats();
    assert!(stats.bytes_written >= SIZE, "bytes written counted: {stats:?}");
}
