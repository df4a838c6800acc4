//! Benchmark of the registry client, driven by `scripts/bench-client.sh`:
//! 1. blob copy throughput between two local registries (CNCF distribution on /dev/shm)
//!    through `kpromo::registry`, against the destination's raw ingest rate measured with
//!    parallel `curl` uploads of the same bytes into a fresh registry;
//! 2. peak RSS growth while copying one 1 GiB blob.
//!
//! Usage: bench_client [BLOBS [MIB_PER_BLOB [BIG_MIB]]] (defaults 8 64 1024).
#[path = "../tests/support/mod.rs"]
#[allow(
    dead_code,
    unused_imports,
    reason = "the benchmark needs the harness's registries, pusher and client glue, not its fault fronts"
)]
mod support;

use std::time::Instant;

use support::client::{copy_blob, digest, open, options_for};
use support::images::Blob;
use support::{RegistryOptions, TestRegistry};

fn arg(index: usize, default: u64) -> u64 {
    std::env::args()
        .nth(index)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn mb_per_s(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / seconds / 1e6
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    support::require_tool("curl");
    let (count, mib, big_mib) = (arg(1, 8), arg(2, 64), arg(3, 1024));
    let size = mib << 20;
    let total = count * size;
    let source = TestRegistry::start(RegistryOptions::plain());
    let via_kpromo = TestRegistry::start(RegistryOptions::plain());
    let via_curl = TestRegistry::start(RegistryOptions::plain());
    let blobs: Vec<Blob> = (0..count).map(|i| Blob::big(1000 + i, size)).collect();
    let pusher = source.pusher();
    for blob in &blobs {
        pusher.push_blob("bench/src", blob).await;
    }
    println!(
        "blobs: {count} x {mib} MiB = {} MiB, registries on /dev/shm",
        total >> 20
    );

    // Raw ingest: the same bytes from files on tmpfs, one curl PUT per blob, all at once.
    let files = support::shm_tempdir("kpromo-bench-files-");
    for (i, blob) in blobs.iter().enumerate() {
        let mut file = tokio::fs::File::create(files.path().join(i.to_string()))
            .await
            .expect("create blob file");
        let mut stream = blob.stream();
        while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
            tokio::io::AsyncWriteExt::write_all(&mut file, &chunk.expect("chunk"))
                .await
                .expect("write blob file");
        }
    }
    let http = support::http_client();
    let cpu = |registry: &TestRegistry| support::cpu_seconds(&registry.pid().expect("running registry").to_string());
    let curl_dst_cpu = cpu(&via_curl);
    let started = Instant::now();
    let uploads = blobs.iter().enumerate().map(|(i, blob)| {
        let (http, base, path) = (http.clone(), via_curl.url(), files.path().join(i.to_string()));
        async move {
            let response = http
                .post(format!("{base}/v2/bench/raw{i}/blobs/uploads/"))
                .send()
                .await
                .expect("POST upload");
            let location = response.headers()["location"].to_str().expect("location").to_string();
            let location = if location.starts_with('/') {
                format!("{base}{location}")
            } else {
                location
            };
            let url = format!("{location}&digest={}", blob.digest);
            let status = tokio::process::Command::new("curl")
                .args([
                    "-sS",
                    "-f",
                    "-o",
                    "/dev/null",
                    "-X",
                    "PUT",
                    "-H",
                    "Content-Type: application/octet-stream",
                    "-T",
                ])
                .arg(&path)
                .arg(&url)
                .status()
                .await
                .expect("run curl");
            assert!(status.success(), "curl PUT of blob {i} failed");
        }
    });
    futures_util::future::join_all(uploads).await;
    let raw_secs = started.elapsed().as_secs_f64();
    let raw_rate = mb_per_s(total, raw_secs);
    println!(
        "raw ingest (parallel curl PUT): {raw_secs:.2} s, {raw_rate:.0} MB/s; destination registry CPU {:.2} s",
        cpu(&via_curl) - curl_dst_cpu
    );
    drop(files);

    // kpromo: every blob streamed from the source into the other fresh registry, all at once.
    let (_src_registries, src) = open(&source.host(), options_for(&source));
    let (_dst_registries, dst) = open(&via_kpromo.host(), options_for(&via_kpromo));
    let (client_cpu, src_cpu, dst_cpu) = (support::cpu_seconds("self"), cpu(&source), cpu(&via_kpromo));
    let started = Instant::now();
    let copies = blobs.iter().map(|blob| {
        let (src, dst) = (src.registry.clone(), dst.registry.clone());
        let (d, size) = (digest(&blob.digest), blob.size);
        async move { copy_blob(src.as_ref(), "bench/src", dst.as_ref(), "bench/dst", &d, size).await }
    });
    for result in futures_util::future::join_all(copies).await {
        result.expect("kpromo blob copy");
    }
    let copy_secs = started.elapsed().as_secs_f64();
    let copy_rate = mb_per_s(total, copy_secs);
    println!(
        "kpromo copy (source -> destination): {copy_secs:.2} s, {copy_rate:.0} MB/s; CPU: client {:.2} s, source registry {:.2} s, destination registry {:.2} s",
        support::cpu_seconds("self") - client_cpu,
        cpu(&source) - src_cpu,
        cpu(&via_kpromo) - dst_cpu
    );
    println!(
        "ratio kpromo / raw ingest: {:.2} (target >= 0.80)",
        copy_rate / raw_rate
    );

    // Peak RSS while copying one big blob.
    let big = Blob::big(7, big_mib << 20);
    pusher.push_blob("bench/big", &big).await;
    support::reset_peak_rss();
    let before = support::rss_bytes();
    let started = Instant::now();
    copy_blob(
        src.registry.as_ref(),
        "bench/big",
        dst.registry.as_ref(),
        "bench/big",
        &digest(&big.digest),
        big.size,
    )
    .await
    .expect("big blob copy");
    let secs = started.elapsed().as_secs_f64();
    let peak = support::peak_rss_bytes();
    println!(
        "{big_mib} MiB blob: {secs:.2} s, {:.0} MB/s; process peak RSS {} MiB (growth during copy {} MiB, target <= 100 MiB)",
        mb_per_s(big.size, secs),
        peak >> 20,
        peak.saturating_sub(before) >> 20
    );
}
