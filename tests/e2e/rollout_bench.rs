//! Rollout and sharding benchmark (run by `scripts/bench-rollout.sh`, ignored in normal
//! test runs), on the promotion benchmark's world (`promote_bench::world`, default 400 MB
//! of big layers here: `BENCH_BIG_MB`), from one staging registry to three fresh mirrors
//! each time:
//! - all three at once (one process, no waves): the baseline;
//! - a canary rollout: one canary, read back (default `--verify-sample`), then the other
//!   two (the last wave, not read back), as the target (≤ 1.3× the baseline)
//!   reads it;
//! - three `--shard i/3` processes at once, against the baseline's one process: on one
//!   machine the shards share its cores and network, the gain is across machines.
//!
//! Prints wall times and ratios; asserts only correctness (spot-checked digests), never
//! timings.
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use crate::support;
use crate::support::{RegistryOptions, TestRegistry, within};

use super::promote_bench::{Entry, check_mirror, kpromo, push_world, summary, timed, world, write_manifests};

/// Three fresh mirrors, the manifests pointing at them, and their names.
fn mirrors(world: &[Entry], dir: &Path, src: &str) -> (Vec<TestRegistry>, Vec<String>) {
    let mirrors: Vec<TestRegistry> = (0..3).map(|_| TestRegistry::start(RegistryOptions::plain())).collect();
    let names: Vec<String> = mirrors.iter().map(|m| format!("{}/prod", m.host())).collect();
    write_manifests(dir, world, src, &names);
    (mirrors, names)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run scripts/bench-rollout.sh"]
async fn bench_rollout() {
    support::install_crypto_provider();
    let big_mb: u64 = std::env::var("BENCH_BIG_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let scratch = support::shm_tempdir("kpromo-rollout-bench-");
    let dir = scratch.path().join("manifests-tree");
    let summary_path = scratch.path().join("summary.json");
    let world = world(big_mb);
    let staging = TestRegistry::start(RegistryOptions::plain());
    within(1800, "push the world", push_world(&staging.pusher(), "staging", &world)).await;
    let src = format!("{}/staging", staging.host());
    println!(
        "world: {} images, {big_mb} MB of big layers; load {}",
        world.len(),
        load()
    );

    let (all_at_once, _) = {
        let (mirrors, _) = mirrors(&world, &dir, &src);
        let timing = timed(
            "kpromo -> 3 mirrors at once",
            &mut kpromo(&dir, &summary_path),
            scratch.path(),
        );
        mirrors.iter().for_each(|m| check_mirror(&world, m));
        timing
    };

    let canary = {
        let (mirrors, names) = mirrors(&world, &dir, &src);
        let mut command = kpromo(&dir, &summary_path);
        command.arg(format!("--canary={}", names[0]));
        let (wall, _) = timed("kpromo canary -> 1, then -> 2", &mut command, scratch.path());
        mirrors.iter().for_each(|m| check_mirror(&world, m));
        let report = summary(&summary_path);
        for wave in report["rollout"]["waves"].as_array().into_iter().flatten() {
            let hosts: std::collections::BTreeSet<&str> = wave["registries"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r.as_str()?.split('/').next())
                .collect();
            let spool = &wave["spool"];
            println!(
                "  wave to {} mirror(s): copy {} ms, read-back {} ms ({} images, {} blobs HEADed, {} read in full); {} requests; \
                 spool: kept {} blobs ({} MB), served {} blobs ({} MB) and {} manifests",
                hosts.len(),
                wave["copy_ms"],
                wave["readback_ms"],
                wave["images"],
                wave["blobs_headed"],
                wave["blobs_read"],
                wave["requests"],
                spool["blobs_kept"],
                spool["bytes_kept"].as_u64().unwrap_or(0) >> 20,
                spool["blobs_served"],
                spool["bytes_served"].as_u64().unwrap_or(0) >> 20,
                spool["manifests_served"],
            );
        }
        wall
    };

    let sharded = {
        let (mirrors, _) = mirrors(&world, &dir, &src);
        let started = Instant::now();
        let children: Vec<_> = (0..3)
            .map(|i| {
                let summary = scratch.path().join(format!("summary-{i}.json"));
                kpromo(&dir, &summary)
                    .arg(format!("--shard={i}/3"))
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .expect("start a shard")
            })
            .collect();
        for mut child in children {
            assert!(child.wait().expect("wait for a shard").success(), "a shard failed");
        }
        let wall = started.elapsed().as_secs_f64();
        println!("{:<40} {wall:>8.2} s", "kpromo 3 shards at once -> 3 mirrors");
        mirrors.iter().for_each(|m| check_mirror(&world, m));
        wall
    };

    println!(
        "canary rollout / all at once: {:.2}x   3 shards / 1 process: {:.2}x   (load after: {})",
        canary / all_at_once,
        sharded / all_at_once,
        load()
    );
}

/// The 1-minute load average, for the figures' context (the machine is shared).
fn load() -> String {
    Command::new("cat")
        .arg("/proc/loadavg")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .next()
                .unwrap_or("?")
                .to_string()
        })
        .unwrap_or_else(|_| "?".into())
}
