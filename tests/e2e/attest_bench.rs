//! Attestation benchmark (run by `scripts/bench-attest.sh`, ignored in normal test runs):
//!
//! 1. Provenance: 500 staging digests, each with a build provenance bundle (an OCI
//!    referrer signed with a key by openssl), promoted to 3 mirrors under 3 tags each, in a
//!    dry run; then the same digests to 1 mirror under 1 tag. Prints the Provenance phase's
//!    time and requests for both: they must be the same, whatever the mirrors and tags.
//! 2. Attest: 500 other digests promoted, signed and attested with a key in one run. Prints
//!    the Attest phase's time and its requests per attested digest, writes (uploads, the
//!    referrer, the fallback index) apart from the rest.
//!
//! The requests come from kpromo's per-phase counters in `--summary-json`, and the
//! mirror's total from the recording proxy. Asserts only correctness (every digest
//! verified once; one attestation each; a rerun writes nothing), never timings.
use serde_json::{Value, json};

use crate::support::cosign::{in_toto_statement, key_dsse_bundle};
use crate::support::images::{Format, Image};
use crate::support::pki::SigningKey;
use crate::support::referrers::{Referrer, SLSA_V1, Subject};
use crate::support::within;
use crate::support::world::{ImageSpec, Run, World};

const REPOS: u64 = 50;
const PER_REPO: u64 = 10;

/// `(repository, image)` for every digest of one set (`prov` or `att`).
fn images(set: &str, seed: u64) -> Vec<(String, Image)> {
    (0..REPOS)
        .flat_map(|r| (0..PER_REPO).map(move |i| (r, i)))
        .map(|(r, i)| {
            (
                format!("{set}{r:02}"),
                Image::simple(Format::Oci, seed + r * PER_REPO + i),
            )
        })
        .collect()
}

/// The project promoting `images` to `dsts`, each digest under `tags` tags of its own.
fn project(world: &World, images: &[(String, Image)], dsts: &[String], tags: usize) {
    let tag_names: Vec<Vec<String>> = images
        .iter()
        .enumerate()
        .map(|(n, _)| (0..tags).map(|t| format!("v{n}-{t}")).collect())
        .collect();
    let mut by_repo: Vec<ImageSpec> = Vec::new();
    for ((repo, image), tags) in images.iter().zip(&tag_names) {
        let entry = (image.digest.as_str(), tags.iter().map(String::as_str).collect());
        match by_repo.last_mut() {
            Some((last, dmap)) if last == repo => dmap.push(entry),
            _ => by_repo.push((repo, vec![entry])),
        }
    }
    world.write_project("p", &world.src(), dsts, &by_repo);
}

/// The `phase`'s milliseconds and requests in a run's summary.
fn phase(run: &Run, name: &str) -> (u64, u64, u64) {
    let ms = run.summary["phases_ms"]
        .as_array()
        .expect("phases_ms")
        .iter()
        .find(|p| p[0] == name)
        .and_then(|p| p[1].as_u64())
        .unwrap_or_else(|| panic!("phase {name} in {}", run.summary));
    let requests: &Value = run.summary["phase_requests"]
        .as_array()
        .expect("phase_requests")
        .iter()
        .find(|p| p["phase"] == name)
        .expect("phase requests");
    (
        ms,
        requests["all"].as_u64().expect("all"),
        requests["writes"].as_u64().expect("writes"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: scripts/bench-attest.sh runs it"]
async fn bench_attest() {
    let world = World::start(env!("CARGO_BIN_EXE_kpromo"), 3);
    let keys = tempfile::tempdir().expect("tempdir");
    let builder = SigningKey::generate(keys.path(), "builder");
    let promoter = SigningKey::generate(keys.path(), "promoter");
    let digests = (REPOS * PER_REPO) as usize;
    let prov = images("prov", 10_000);
    let att = images("att", 20_000);
    let pusher = world.staging.pusher();
    within(1800, "push the staging images and their provenance", async {
        for (repo, image) in prov.iter().chain(&att) {
            pusher.push_image(&format!("staging/{repo}"), image, &[]).await;
        }
        for (repo, image) in &prov {
            let predicate = json!({"runDetails": {"builder": {"id": "https://builder.example/v1"}}});
            let statement = in_toto_statement(repo, &image.digest, SLSA_V1, &predicate);
            let subject = Subject {
                media_type: image.media_type(),
                digest: &image.digest,
                size: image.manifest.len() as u64,
            };
            let bundle = Referrer::bundle(subject, key_dsse_bundle(&statement, &builder).to_string(), SLSA_V1);
            bundle
                .attach(&pusher, &format!("staging/{repo}"), &image.digest, true)
                .await;
        }
    })
    .await;
    let quiet = [
        "--registry-rate-limit",
        "5000",
        "--registry-burst",
        "500",
        "--log-level",
        "warn",
    ];
    let provenance_key = ["--provenance-key", builder.public.to_str().expect("utf-8")];

    // 1. Provenance, 3 mirrors x 3 tags, then 1 mirror x 1 tag: a dry run each.
    println!("attestation benchmark: {digests} digests per part");
    let mut per_digest = Vec::new();
    for (mirrors, tags) in [(3, 3), (1, 1)] {
        project(&world, &prov, &world.dsts()[..mirrors], tags);
        world.clear_seen();
        let run = world.spawn(&[&quiet[..], &provenance_key[..]].concat()).wait(1800);
        run.expect_code(0);
        assert_eq!(run.summary["provenance"]["verified"].as_u64(), Some(digests as u64));
        let (ms, all, writes) = phase(&run, "provenance");
        assert_eq!(writes, 0);
        let staging = world.staging_proxy.seen().len();
        println!(
            "  provenance, {mirrors} mirrors x {tags} tags ({} edges): {:.2} s, {all} requests ({:.2} per source digest; staging saw {staging} in the whole dry run)",
            digests * mirrors * tags,
            ms as f64 / 1000.0,
            all as f64 / digests as f64
        );
        per_digest.push(all);
    }
    assert_eq!(
        per_digest[0], per_digest[1],
        "provenance requests do not depend on mirrors and tags"
    );

    // 2. Promote, sign and attest 500 other digests in one run, to 3 mirrors: one public
    // name for all three (as registry.k8s.io is for its mirrors), so one attestation each.
    project(&world, &att, &world.dsts(), 1);
    world.clear_seen();
    let signing = [
        &quiet[..],
        &["--signing-key", promoter.private.to_str().expect("utf-8")],
        &["--signing-identity-rewrite", "prod=registry.example"],
    ]
    .concat();
    let run = world.spawn_confirm(&signing).wait(1800);
    run.expect_code(0);
    let attestations = &run.summary["attestations"];
    assert_eq!(attestations["attested"].as_u64(), Some(digests as u64));
    let (ms, all, writes) = phase(&run, "attest");
    let reads = all - writes;
    println!(
        "  attest (after promote and sign in the same run): {:.2} s ({:.1} attestations/s), {all} requests: {:.2} per attested digest beyond writes ({reads} reads), {:.2} writes per digest (bundle upload, empty config once per repository, referrer manifest, fallback index)",
        ms as f64 / 1000.0,
        digests as f64 / (ms as f64 / 1000.0),
        reads as f64 / digests as f64,
        writes as f64 / digests as f64
    );
    let (sign_ms, sign_all, _) = phase(&run, "sign");
    println!(
        "  for comparison, sign in the same run: {:.2} s, {sign_all} requests",
        sign_ms as f64 / 1000.0
    );

    world.clear_seen();
    let rerun = world.spawn_confirm(&signing).wait(1800);
    rerun.expect_code(0);
    assert_eq!(world.mirror_writes(), 0, "a rerun attests nothing");
    let (ms, all, _) = phase(&rerun, "attest");
    println!(
        "  attest rerun (all already attested): {:.2} s, {all} requests ({:.2} per digest)",
        ms as f64 / 1000.0,
        all as f64 / digests as f64
    );
}
