//! Sharding end to end: three processes running the command line of the Job in
//! docs/kubernetes.md (`--shards 3`), each with its own `JOB_COMPLETION_INDEX`, run at once
//! against one world (staging + 3 real distribution mirrors). Together they promote
//! everything exactly once: the mirrors end up with every image byte for byte (skopeo),
//! no blob or manifest is uploaded twice into one repository, every digest is signed and
//! attested once,
//! each shard's plan holds whole repositories and digests, `kpromo summary merge` adds the
//! summaries up, a rerun of a shard writes nothing, and a single unsharded run afterwards
//! has nothing left to do. A policy denying one shard's image refuses every shard.
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

use crate::support::images::{Format, Image, Index};
use crate::support::kube_job::{container_args, job};
use crate::support::pki::SigningKey;
use crate::support::referrers::{self, PROMOTION};
use crate::support::within;
use crate::support::world::World;

const RUN_SECONDS: u64 = 180;
const SHARDS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_shard_processes_promote_everything_exactly_once() {
    let world = World::start(env!("CARGO_BIN_EXE_kpromo"), 3);
    let keys = tempfile::tempdir().expect("tempdir");
    let key = SigningKey::generate(keys.path(), "signing");
    let index = Index::multi_arch(Format::Oci, 41, &["amd64", "arm64/v8"], None);
    let singles: Vec<Image> = (0..5).map(|i| Image::simple(Format::Oci, 42 + i)).collect();
    let pusher = world.staging.pusher();
    within(60, "push fixtures", async {
        pusher.push_index("staging/img0", &index, &["1.0"]).await;
        for (i, image) in singles.iter().enumerate() {
            pusher
                .push_image(&format!("staging/img{}", i + 1), image, &["1.0"])
                .await;
        }
    })
    .await;
    // (repository, digest) of everything promoted, index children included.
    let mut promoted: Vec<(String, String)> = vec![
        ("img0".into(), index.digest.clone()),
        ("img0".into(), index.children[0].digest.clone()),
        ("img0".into(), index.children[1].digest.clone()),
    ];
    promoted.extend(
        singles
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("img{}", i + 1), s.digest.clone())),
    );
    let mut images = vec![(
        "img0",
        vec![
            (index.digest.as_str(), vec!["1.0"]),
            (index.children[0].digest.as_str(), vec![]),
            (index.children[1].digest.as_str(), vec![]),
        ],
    )];
    let names: Vec<String> = (1..=singles.len()).map(|i| format!("img{i}")).collect();
    for (name, image) in names.iter().zip(&singles) {
        images.push((name.as_str(), vec![(image.digest.as_str(), vec!["1.0"])]));
    }
    world.write_project("p", &world.src(), &world.dsts(), &images);

    // The container's command line from docs/kubernetes.md. The harness gives every process
    // `cip`, its own manifest tree and summary file; the test adds a key to sign with
    // (the Job signs keyless as its Google identity) and `--plan-out`.
    let job_args = container_args(&job());
    let harness_given =
        |a: &String| a == "cip" || a.starts_with("--thin-manifest-dir=") || a.starts_with("--summary-json=");
    assert_eq!(job_args.iter().filter(|a| harness_given(a)).count(), 3, "{job_args:?}");
    let job_args: Vec<String> = job_args.into_iter().filter(|a| !harness_given(a)).collect();
    assert!(job_args.contains(&format!("--shards={SHARDS}")), "{job_args:?}");
    let out = |i: usize| world.dir.path().join(format!("shard-{i}"));
    let key_path = key.private.to_str().expect("utf-8 key path").to_string();
    // The Job's command line for shard `i`, or without `--shards` for `None`: one
    // unsharded process doing the whole promotion.
    let process = |i: Option<usize>| {
        let dir = out(i.unwrap_or(SHARDS));
        let plan = format!("--plan-out={}", dir.join("plan.json").display());
        let index = i.map(|i| i.to_string());
        let env: Vec<(&str, &str)> = index.iter().map(|i| ("JOB_COMPLETION_INDEX", i.as_str())).collect();
        let mut args: Vec<&str> = job_args
            .iter()
            .map(String::as_str)
            .filter(|a| i.is_some() || !a.starts_with("--shards"))
            .collect();
        args.extend([
            plan.as_str(),
            "--signing-key",
            &key_path,
            "--signing-identity-rewrite",
            "prod=registry.example",
        ]);
        world.spawn_process(&dir, &env, &args)
    };
    let shard = |i: usize| process(Some(i));
    // A dry run of one shard prints that shard's plan only, and writes nothing.
    let dry = world
        .spawn_process(&out(9), &[], &["--shard=0/3", "--sign=false"])
        .wait(RUN_SECONDS);
    dry.expect_code(0);
    let planned = |stdout: &str| stdout.lines().filter(|l| l.starts_with("  copy ")).count();
    let dry_edges = planned(&dry.stdout);
    assert!(dry_edges > 0 && dry_edges < 3 * (3 + singles.len()), "{}", dry.stdout);
    assert_eq!(world.mirror_writes(), 0);

    // Every shard refuses the same bad input, a policy denial included: a rule denying
    // img3 (all of whose edges are one shard's) refuses all three shards alike, exit 3
    // with the same error, before anything is read for provenance or written.
    let policy = world.dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "rules:\n- name: everyone\n  effect: allow\n- name: not-img3\n  effect: deny\n  images: [img3]\n",
    )
    .expect("write policy");
    let policy = format!("--policy={}", policy.display());
    world.clear_seen();
    let denied: Vec<_> = (0..SHARDS)
        .map(|i| {
            let shard = format!("--shard={i}/3");
            world.spawn_process(&out(10 + i), &[], &["--confirm", "--sign=false", &shard, &policy])
        })
        .collect();
    let errors: BTreeSet<String> = denied
        .into_iter()
        .map(|running| {
            let run = running.wait(RUN_SECONDS);
            run.expect_code(3);
            let error = run.stderr.lines().find(|l| l.contains("edges denied by policy"));
            error.expect("the denial").to_string()
        })
        .collect();
    assert_eq!(errors.len(), 1, "one error for all shards: {errors:?}");
    let error = errors.first().expect("an error");
    assert!(
        error.contains("3 edges denied by policy") && error.contains("/img3:1.0: denied by rule 'not-img3'"),
        "{error}"
    );
    assert_eq!(world.mirror_writes(), 0, "no shard wrote");
    assert_eq!(world.staging_proxy.count("GET", "/referrers/"), 0, "no provenance read");

    let running: Vec<_> = (0..SHARDS).map(shard).collect();
    let runs: Vec<_> = running.into_iter().map(|r| r.wait(RUN_SECONDS)).collect();
    for (i, run) in runs.iter().enumerate() {
        run.expect_code(0);
        assert_eq!(run.summary["shard"], format!("{i}/3"), "{}", run.summary);
    }
    assert!(
        world.staging_proxy.count("GET", "/referrers/") > 0,
        "provenance was read"
    );

    // The union is the whole promotion, byte for byte.
    for mirror in &world.mirrors {
        assert_eq!(mirror.skopeo_digest("prod/img0:1.0"), Some(index.digest.clone()));
        for child in &index.children {
            let raw = mirror.skopeo_raw(&format!("prod/img0@{}", child.digest));
            assert_eq!(raw.as_deref(), Some(&child.manifest[..]));
        }
        for (name, image) in names.iter().zip(&singles) {
            let raw = mirror.skopeo_raw(&format!("prod/{name}:1.0"));
            assert_eq!(raw.as_deref(), Some(&image.manifest[..]), "{name}");
        }
    }

    // Each shard's plan: whole repositories (so whole digests), and the plans partition
    // the edges.
    let mut shard_of_repo: BTreeMap<String, usize> = BTreeMap::new();
    let mut all_edges = BTreeSet::new();
    let mut busy_shards = 0;
    for i in 0..SHARDS {
        let plan: Value =
            serde_json::from_slice(&std::fs::read(out(i).join("plan.json")).expect("plan.json")).expect("plan JSON");
        let edges = plan["edges"].as_array().expect("edges");
        busy_shards += usize::from(!edges.is_empty());
        for edge in edges {
            let image = edge["image"].as_str().expect("image").to_string();
            assert_eq!(
                *shard_of_repo.entry(image.clone()).or_insert(i),
                i,
                "{image} in two shards"
            );
            assert!(
                all_edges.insert(edge["destination"].to_string()),
                "{edge} in two shards"
            );
        }
    }
    assert_eq!(
        all_edges.len(),
        3 * (3 + singles.len()),
        "every edge in exactly one shard"
    );
    assert!(busy_shards >= 2, "the work is spread: {shard_of_repo:?}");
    let first_plan: Value =
        serde_json::from_slice(&std::fs::read(out(0).join("plan.json")).expect("plan.json")).expect("plan JSON");
    assert_eq!(
        first_plan["edges"].as_array().map(Vec::len),
        Some(dry_edges),
        "the dry run planned shard 0"
    );

    // Nothing uploaded or pushed twice into one repository.
    for (m, proxy) in world.proxies.iter().enumerate() {
        let mut writes: BTreeMap<String, usize> = BTreeMap::new();
        for seen in proxy.seen() {
            let finishes_upload = seen.method == "PUT" && seen.path.contains("/blobs/uploads/");
            let pushes_by_digest = seen.method == "PUT" && seen.path.contains("/manifests/sha256:");
            if finishes_upload || pushes_by_digest {
                let repo = seen.path.split("/blobs/").next().unwrap_or_default();
                let repo = repo.split("/manifests/").next().unwrap_or_default();
                let what = seen.query.clone().unwrap_or_else(|| seen.path.clone());
                *writes.entry(format!("{repo} {what}")).or_default() += 1;
            }
        }
        let twice: Vec<_> = writes.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "mirror {m}: written twice: {twice:?}");
    }

    // Every digest signed and attested exactly once, at the canonical mirror (first in
    // name order).
    let canonical = (0..3).min_by_key(|i| world.dsts()[*i].clone()).expect("a mirror");
    let pusher = world.mirrors[canonical].pusher();
    for (repo, digest) in &promoted {
        let tag = format!("sha256-{}.sig", digest.trim_start_matches("sha256:"));
        let (status, _, body) = pusher.get_manifest(&format!("prod/{repo}"), &tag).await;
        assert_eq!(status, 200, "{repo}@{digest} is signed");
        let manifest: Value = serde_json::from_slice(&body).expect("signature manifest");
        assert_eq!(
            manifest["layers"].as_array().map(Vec::len),
            Some(1),
            "{repo}@{digest}: one signature"
        );
        let attestations = referrers::bundles(&pusher, &format!("prod/{repo}"), digest, PROMOTION).await;
        assert_eq!(attestations.len(), 1, "{repo}@{digest}: one promotion attestation");
    }

    // The summaries add up to the whole promotion.
    let merged = Command::new(env!("CARGO_BIN_EXE_kpromo"))
        .args(["summary", "merge"])
        .args((0..SHARDS).map(|i| out(i).join("summary.json")))
        .output()
        .expect("run kpromo summary merge");
    assert!(merged.status.success(), "{}", String::from_utf8_lossy(&merged.stderr));
    let merged: Value = serde_json::from_slice(&merged.stdout).expect("merged summary JSON");
    assert_eq!(merged["outcome"], "ok");
    assert_eq!(merged["edges"], all_edges.len());
    assert_eq!(merged["decisions"]["copy"], all_edges.len());
    assert_eq!(
        merged["signatures"]["signed"].as_array().map(Vec::len),
        Some(promoted.len())
    );
    assert_eq!(merged["attestations"]["attested"], promoted.len());
    let missing = Command::new(env!("CARGO_BIN_EXE_kpromo"))
        .args(["summary", "merge"])
        .arg(out(0).join("summary.json"))
        .output()
        .expect("run kpromo summary merge");
    assert_eq!(missing.status.code(), Some(2), "a missing shard is bad input");

    // A rerun of any shard writes nothing.
    world.clear_seen();
    let rerun = shard(1).wait(RUN_SECONDS);
    rerun.expect_code(0);
    assert_eq!(world.mirror_writes(), 0, "{}", rerun.stderr);

    // The union is exactly a full run's content: one unsharded process on the same
    // manifests plans nothing to copy or retag, and writes nothing (no image, signature
    // or attestation).
    let full = process(None).wait(RUN_SECONDS);
    full.expect_code(0);
    assert!(full.summary["shard"].is_null(), "{}", full.summary);
    assert_eq!(full.summary["edges"], all_edges.len(), "{}", full.summary);
    assert_eq!(full.summary["decisions"]["copy"], 0, "{}", full.summary);
    assert_eq!(full.summary["decisions"]["retag"], 0, "{}", full.summary);
    assert_eq!(full.summary["decisions"]["skip"], all_edges.len(), "{}", full.summary);
    assert_eq!(full.summary["write_requests"], 0, "{}", full.summary);
    assert_eq!(world.mirror_writes(), 0, "{}", full.stderr);
}
