//! Canary rollout end to end: the built binary promotes from staging to three real
//! distribution mirrors (each behind the recording fault proxy) in waves, the canary
//! first. A canary that corrupts what it serves, or loses a blob between the write and
//! the read-back (`--pause-before-verify`, the documented testing hook), stops the
//! rollout: exit 1, and the proxies of the other mirrors saw no write.
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::fault_proxy::{Action, Rule, Times};
use crate::support::images::{Blob, Format, Image, Index};
use crate::support::within;
use crate::support::world::{World, is_write};

const RUN_SECONDS: u64 = 120;

struct Fixtures {
    multi: Index,
    single: Image,
}

/// Staging and three mirrors; staging holds a two-arch index and a single image.
async fn world_with_fixtures() -> (World, Fixtures) {
    let world = World::start(env!("CARGO_BIN_EXE_kpromo"), 3);
    let base = Blob::random(31, 64 * 1024);
    let multi = Index::multi_arch(Format::Oci, 32, &["amd64", "arm64/v8"], Some(&base));
    let single = Image::simple(Format::Docker, 33);
    let pusher = world.staging.pusher();
    within(60, "push fixtures to staging", async {
        pusher.push_index("staging/foo", &multi, &["1.0"]).await;
        pusher.push_image("staging/bar", &single, &["2.0"]).await;
    })
    .await;
    let f = Fixtures { multi, single };
    write_project(&world, &f);
    (world, f)
}

fn write_project(world: &World, f: &Fixtures) {
    world.write_project(
        "p",
        &world.src(),
        &world.dsts(),
        &[
            (
                "foo",
                vec![
                    (f.multi.digest.as_str(), vec!["1.0"]),
                    (f.multi.children[0].digest.as_str(), vec![]),
                    (f.multi.children[1].digest.as_str(), vec![]),
                ],
            ),
            ("bar", vec![(f.single.digest.as_str(), vec!["2.0"])]),
        ],
    );
}

/// Write requests the proxy of mirror `i` has seen.
fn writes_at(world: &World, i: usize) -> usize {
    world.proxies[i].seen().iter().filter(|s| is_write(&s.method)).count()
}

/// Waits (bounded) until `file` exists.
fn wait_for_file(file: &Path, seconds: u64) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !file.exists() {
        assert!(
            Instant::now() < deadline,
            "{} did not appear within {seconds} s",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_is_read_back_then_every_mirror_completes() {
    let (world, f) = world_with_fixtures().await;
    let dsts = world.dsts();
    let canary = dsts[0].clone();
    let mut rest: Vec<String> = dsts[1..].to_vec();
    rest.sort();

    // A canary that is not a destination: refused before any registry is read.
    let unknown = world.spawn_confirm(&["--canary=mirror.example"]).wait(RUN_SECONDS);
    unknown.expect_code(2);
    assert!(unknown.stderr.contains("--canary mirror.example"), "{}", unknown.stderr);
    assert!(
        world.proxies.iter().all(|p| p.seen().is_empty()),
        "nothing read, nothing written"
    );

    // The dry run's plan shows the waves.
    let dry = world.spawn(&[&format!("--canary={canary}")]).wait(RUN_SECONDS);
    dry.expect_code(0);
    assert!(dry.stdout.contains("rollout: 2 waves"), "{}", dry.stdout);
    assert!(
        dry.stdout.contains(&format!("wave 1 (canary): {canary}\n")),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains(&format!("wave 2: {}\n", rest.join(", "))),
        "{}",
        dry.stdout
    );
    assert_eq!(world.mirror_writes(), 0);

    // The canary named by its host, every blob read back in full.
    let host = world.proxies[0].host();
    let run = world
        .spawn_confirm(&[&format!("--canary={host}"), "--verify-sample=1"])
        .wait(RUN_SECONDS);
    run.expect_code(0);
    for mirror in &world.mirrors {
        assert_eq!(mirror.skopeo_digest("prod/foo:1.0"), Some(f.multi.digest.clone()));
        assert_eq!(mirror.skopeo_digest("prod/bar:2.0"), Some(f.single.digest.clone()));
    }
    let waves = run.summary["rollout"]["waves"]
        .as_array()
        .expect("rollout waves in the summary");
    assert_eq!(waves.len(), 2, "{}", run.summary);
    let canary_wave = &waves[0];
    assert_eq!(canary_wave["registries"], serde_json::json!([canary]));
    assert_eq!(canary_wave["verdict"], "passed", "{canary_wave}");
    // --verify-sample=1: every blob read in full, so none needs a HEAD.
    assert_eq!(canary_wave["blobs_headed"], 0, "{canary_wave}");
    assert!(
        canary_wave["blobs_read"].as_u64().is_some_and(|n| n > 0),
        "{canary_wave}"
    );
    // The read-back went to the canary: manifests by digest, blobs by GET.
    let canary_proxy = &world.proxies[0];
    assert!(
        canary_proxy.count("GET", r"/manifests/sha256:") >= 4,
        "{:?}",
        canary_proxy.seen()
    );
    assert!(
        canary_proxy.count("GET", r"/blobs/sha256:") >= 1,
        "{:?}",
        canary_proxy.seen()
    );
    // The last wave is not read back: nothing is left to gate.
    let last = &waves[1];
    assert_eq!(
        last["verdict"], "not read back: last wave, nothing left to gate",
        "{last}"
    );
    assert_eq!(last["images"], 0, "{last}");
    assert!(
        run.stderr.contains("wave 2/2 written") && run.stderr.contains("nothing left to gate"),
        "{}",
        run.stderr
    );
    for proxy in &world.proxies[1..] {
        assert_eq!(proxy.count("GET", r"/manifests/sha256:"), 0, "{:?}", proxy.seen());
        assert_eq!(proxy.count("GET", r"/blobs/sha256:"), 0, "{:?}", proxy.seen());
    }
    // Staging is read once for both waves: the second copies what the first read from
    // the spool, so no blob of staging is downloaded twice.
    let blob_reads: Vec<String> = world
        .staging_proxy
        .seen()
        .into_iter()
        .filter(|s| s.method == "GET" && s.path.contains("/blobs/sha256:"))
        .map(|s| s.path)
        .collect();
    let distinct: std::collections::BTreeSet<&String> = blob_reads.iter().collect();
    assert!(!blob_reads.is_empty());
    assert_eq!(distinct.len(), blob_reads.len(), "{blob_reads:?}");
    assert!(last["spool"]["blobs_served"].as_u64().is_some_and(|n| n > 0), "{last}");
    assert!(
        run.stderr.contains("from the spool instead of the sources"),
        "{}",
        run.stderr
    );

    // A rerun writes nothing and has nothing to read back.
    world.clear_seen();
    let rerun = world.spawn_confirm(&[&format!("--canary={canary}")]).wait(RUN_SECONDS);
    rerun.expect_code(0);
    assert_eq!(world.mirror_writes(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_that_corrupts_what_it_serves_stops_the_rollout() {
    let (world, f) = world_with_fixtures().await;
    let canary = world.dsts()[0].clone();
    // Writes go through untouched; every manifest the canary serves has one bit flipped.
    world.proxies[0].set_rules(vec![Rule::new(
        Some("GET"),
        r"/manifests/",
        Action::FlipByte,
        Times::Always,
    )]);
    let run = world.spawn_confirm(&[&format!("--canary={canary}")]).wait(RUN_SECONDS);
    run.expect_code(1);
    assert!(
        run.stderr.contains("rollout stopped after wave 1 of 2"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("digest"), "{}", run.stderr);
    assert!(writes_at(&world, 0) > 0, "the canary was written");
    for i in 1..3 {
        assert_eq!(writes_at(&world, i), 0, "mirror {i} must not be written");
        assert_eq!(world.mirrors[i].skopeo_digest("prod/foo:1.0"), None);
    }
    let rollout = &run.summary["rollout"];
    assert_eq!(rollout["waves"].as_array().map(Vec::len), Some(1), "{rollout}");
    assert_eq!(rollout["untouched"].as_array().map(Vec::len), Some(2), "{rollout}");
    assert!(
        rollout["stopped"].as_str().is_some_and(|s| s.contains("read-back")),
        "{rollout}"
    );
    // Nothing was signed or left half-written: the canary holds whole images.
    assert_eq!(
        world.mirrors[0].skopeo_digest("prod/foo:1.0"),
        Some(f.multi.digest.clone())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_the_canary_loses_after_the_write_stops_the_rollout() {
    let (world, f) = world_with_fixtures().await;
    let canary = world.dsts()[0].clone();
    let pause = world.dir.path().join("pause-before-verify");
    let running = world.spawn_confirm(&[
        &format!("--canary={canary}"),
        &format!("--pause-before-verify={}", pause.display()),
    ]);
    wait_for_file(&pause, RUN_SECONDS);
    assert_eq!(std::fs::read_to_string(&pause).unwrap_or_default(), "wave 1\n");
    // The canary loses a layer of the amd64 image behind kpromo's back (the registry's own
    // API, not through the proxy kpromo talks to).
    let lost = f.multi.children[0].layers.last().expect("a layer").digest.clone();
    let status = world.mirrors[0].pusher().delete_blob("prod/foo", &lost).await;
    assert_eq!(status, 202, "distribution deletes the blob link");
    std::fs::remove_file(&pause).expect("release kpromo");

    let run = running.wait(RUN_SECONDS);
    run.expect_code(1);
    assert!(
        run.stderr.contains("rollout stopped after wave 1 of 2"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!("blob {lost}: blob not found")),
        "{}",
        run.stderr
    );
    assert!(!pause.exists(), "kpromo paused once: the rollout stopped after wave 1");
    for i in 1..3 {
        assert_eq!(writes_at(&world, i), 0, "mirror {i} must not be written");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_removes_the_canarys_new_tags_and_keeps_what_was_there() {
    let (world, f) = world_with_fixtures().await;
    let canary = world.dsts()[0].clone();
    // Before the run the canary already holds an older foo, tagged 0.9.
    let old = Image::simple(Format::Oci, 34);
    world.mirrors[0].pusher().push_image("prod/foo", &old, &["0.9"]).await;
    world.proxies[0].set_rules(vec![Rule::new(
        Some("GET"),
        r"/manifests/",
        Action::FlipByte,
        Times::Always,
    )]);
    let run = world
        .spawn_confirm(&[&format!("--canary={canary}"), "--rollback-on-failure"])
        .wait(RUN_SECONDS);
    run.expect_code(1);
    assert!(
        run.stderr.contains("rollout stopped after wave 1 of 2"),
        "{}",
        run.stderr
    );

    let canary_registry = &world.mirrors[0];
    assert_eq!(crate::support::world::tags(canary_registry, "prod/foo").await, ["0.9"]);
    assert_eq!(
        crate::support::world::tags(canary_registry, "prod/bar").await,
        Vec::<String>::new()
    );
    assert_eq!(canary_registry.skopeo_digest("prod/foo:0.9"), Some(old.digest.clone()));
    assert_eq!(
        canary_registry.skopeo_digest(&format!("prod/foo@{}", f.multi.digest)),
        None
    );
    assert_eq!(
        canary_registry.skopeo_digest(&format!("prod/bar@{}", f.single.digest)),
        None
    );
    // Deleted by digest only, each logged and reported.
    let deletes: Vec<String> = world.proxies[0]
        .seen()
        .into_iter()
        .filter(|s| s.method == "DELETE")
        .map(|s| s.path)
        .collect();
    assert!(!deletes.is_empty());
    assert!(deletes.iter().all(|p| p.contains("/manifests/sha256:")), "{deletes:?}");
    let deleted = &run.summary["rollout"]["rollback"]["deleted"];
    let expected = [
        format!("{canary}/bar@{}", f.single.digest),
        format!("{canary}/foo@{}", f.multi.digest),
    ];
    for reference in &expected {
        assert!(
            deleted
                .as_array()
                .is_some_and(|d| d.iter().any(|x| x == reference.as_str())),
            "{reference} not in {deleted}"
        );
        assert!(
            run.stderr.contains(&format!("rollback: deleted {reference}")),
            "{}",
            run.stderr
        );
    }
    for i in 1..3 {
        assert_eq!(writes_at(&world, i), 0, "mirror {i} must not be written");
    }

    // The rollout converges once the canary is healthy again.
    world.proxies[0].set_rules(Vec::new());
    world
        .spawn_confirm(&[&format!("--canary={canary}")])
        .wait(RUN_SECONDS)
        .expect_code(0);
    for mirror in &world.mirrors {
        assert_eq!(mirror.skopeo_digest("prod/foo:1.0"), Some(f.multi.digest.clone()));
    }
    assert_eq!(canary_registry.skopeo_digest("prod/foo:0.9"), Some(old.digest.clone()));
}
