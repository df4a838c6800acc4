//! Signing benchmark (run by `scripts/bench-sign.sh`, ignored in normal test runs): 100
//! multi-arch indexes of 4 children each (500 digests) promoted to one real registry
//! without signing, then the same run again signing them with a key, so the second run
//! does nothing but sign. Prints both wall times, their ratio, and the requests each
//! signed manifest cost at the registry (from the recording proxy, not kpromo's counters),
//! split into blob uploads and the rest. Asserts only correctness (every digest has one
//! signature, a rerun writes nothing), never timings.
use std::collections::BTreeMap;
use std::time::Instant;

use crate::support::images::{Blob, Format, Image, Index};
use crate::support::pki::SigningKey;
use crate::support::within;
use crate::support::world::{ImageSpec, World};

const INDEXES: u64 = 100;
const ARCHS: [&str; 4] = ["amd64", "arm64/v8", "ppc64le", "s390x"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: scripts/bench-sign.sh runs it"]
async fn bench_sign() {
    let world = World::start(env!("CARGO_BIN_EXE_kpromo"), 1);
    let keys = tempfile::tempdir().expect("tempdir");
    let key = SigningKey::generate(keys.path(), "bench");
    let base = Blob::random(7, 64 * 1024);
    let indexes: Vec<Index> = (0..INDEXES)
        .map(|i| {
            let children = ARCHS
                .iter()
                .enumerate()
                .map(|(a, arch)| {
                    let seed = 1000 + i * 10 + a as u64;
                    Image::new(
                        Format::Oci,
                        seed,
                        arch,
                        vec![base.clone(), Blob::random(seed, 4 * 1024)],
                    )
                })
                .collect();
            Index::new(Format::Oci, children)
        })
        .collect();
    let pusher = world.staging.pusher();
    within(600, "push the staging images", async {
        for (i, index) in indexes.iter().enumerate() {
            pusher.push_index(&format!("staging/img{i:03}"), index, &["1.0"]).await;
        }
    })
    .await;
    let names: Vec<String> = (0..INDEXES).map(|i| format!("img{i:03}")).collect();
    let specs: Vec<ImageSpec> = names
        .iter()
        .zip(&indexes)
        .map(|(name, index)| (name.as_str(), vec![(index.digest.as_str(), vec!["1.0"])]))
        .collect();
    world.write_project("p", &world.src(), &world.dsts(), &specs);
    let rate = [
        "--registry-rate-limit",
        "5000",
        "--registry-burst",
        "500",
        "--log-level",
        "warn",
    ];

    let started = Instant::now();
    world.spawn_confirm(&rate).wait(900).expect_code(0);
    let promote = started.elapsed().as_secs_f64();

    world.clear_seen();
    let signing = [&rate[..], &["--signing-key", key.private.to_str().expect("utf-8")]].concat();
    let started = Instant::now();
    let run = world.spawn_confirm(&signing).wait(900);
    run.expect_code(0);
    let sign = started.elapsed().as_secs_f64();
    let signed = INDEXES as usize * (1 + ARCHS.len());
    let seen = world.proxies[0].seen();
    let sig_puts = seen
        .iter()
        .filter(|s| s.method == "PUT" && s.path.ends_with(".sig"))
        .count();
    assert_eq!(sig_puts, signed, "one signature manifest per digest");
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &seen {
        let kind = match (s.method.as_str(), s.path.contains("/blobs/")) {
            ("POST" | "PUT" | "PATCH", true) => "blob upload",
            ("HEAD", true) => "blob HEAD",
            (_, false) if s.path.contains(".sig") => ".sig manifest",
            _ => "other manifest",
        };
        *by_kind.entry(kind).or_default() += 1;
    }
    let uploads = by_kind.get("blob upload").copied().unwrap_or(0);
    let rest = seen.len() - uploads;
    println!(
        "signing benchmark: {signed} digests ({INDEXES} indexes x {} children + the indexes)",
        ARCHS.len()
    );
    println!("  promote (no signing): {promote:.2} s");
    println!(
        "  sign (nothing to copy): {sign:.2} s ({:.1} signatures/s)",
        signed as f64 / sign
    );
    println!("  ratio sign/promote: {:.2}", sign / promote);
    println!(
        "  requests at the registry: {} in all, {:.2} per signed manifest ({:.2} blob uploads + {:.2} others); {by_kind:?}",
        seen.len(),
        seen.len() as f64 / signed as f64,
        uploads as f64 / signed as f64,
        rest as f64 / signed as f64
    );

    world.clear_seen();
    world.spawn_confirm(&signing).wait(900).expect_code(0);
    assert_eq!(world.mirror_writes(), 0, "a rerun signs nothing");
}
