//! End to end: the built `kpromo cip --thin-manifest-dir DIR --confirm` binary promotes
//! between real CNCF distribution registries on 127.0.0.1 (staging + 3 mirrors, started
//! by tests/support), with images the tests generate and push with the harness's own
//! client. Results are checked with skopeo (an independent client) and, where request
//! counts matter, through the harness's recording proxy rather than kpromo's own stats.
use crate::support::images::{Blob, Format, Image, Index};
use crate::support::world::World;
use crate::support::{RateLimitFront, within};

/// Staging and three mirrors, driven by the binary under test.
fn world() -> World {
    World::start(env!("CARGO_BIN_EXE_kpromo"), 3)
}

/// Bound of one ordinary run; the fault tests give theirs more.
const RUN_SECONDS: u64 = 120;

/// The staging world most tests start from: an OCI multi-arch index with a shared base
/// layer and one bigger layer, a Docker manifest list, and a single image.
struct Fixtures {
    multi: Index,
    list: Index,
    single: Image,
}

async fn push_fixtures(world: &World) -> Fixtures {
    let base = Blob::random(11, 256 * 1024);
    let big = Blob::big(12, 24 * 1024 * 1024);
    let mut multi = Index::multi_arch(Format::Oci, 1, &["amd64", "arm64/v8"], Some(&base));
    multi.children[0] = Image::new(Format::Oci, 21, "amd64", vec![base.clone(), big]);
    let multi = Index::new(Format::Oci, multi.children);
    let list = Index::multi_arch(Format::Docker, 2, &["amd64", "s390x"], Some(&base));
    let single = Image::simple(Format::Oci, 3);
    let pusher = world.staging.pusher();
    within(120, "push fixtures to staging", async {
        pusher.push_index("staging/foo", &multi, &["1.0"]).await;
        pusher.push_index("staging/bar", &list, &[]).await;
        pusher.push_image("staging/baz", &single, &[]).await;
    })
    .await;
    Fixtures { multi, list, single }
}

fn standard_project(world: &World, f: &Fixtures) {
    world.write_project(
        "p",
        &world.src(),
        &world.dsts(),
        &[
            (
                "foo",
                vec![
                    (f.multi.digest.as_str(), vec!["1.0", "latest"]),
                    (f.multi.children[0].digest.as_str(), vec![]),
                    (f.multi.children[1].digest.as_str(), vec![]),
                ],
            ),
            ("bar", vec![(f.list.digest.as_str(), vec!["2.0"])]),
            ("baz", vec![(f.single.digest.as_str(), vec![])]),
        ],
    );
}

fn distinct_blobs(f: &Fixtures) -> usize {
    let mut all: Vec<&str> = Vec::new();
    for image in f.multi.children.iter().chain(f.list.children.iter()).chain([&f.single]) {
        all.extend(image.blobs().map(|b| b.digest.as_str()));
    }
    all.sort();
    all.dedup();
    all.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_promotion_copies_everything_byte_exact_and_rerun_writes_nothing() {
    let world = world();
    let f = push_fixtures(&world).await;
    standard_project(&world, &f);

    // Dry run: prints the plan, writes nothing.
    let dry = world.spawn(&[]).wait(RUN_SECONDS);
    dry.expect_code(0);
    assert!(dry.stdout.contains("copy"), "{}", dry.stdout);
    assert_eq!(world.mirror_writes(), 0, "a dry run must not write");

    world.clear_seen();
    world.confirm(RUN_SECONDS).expect_code(0);
    for mirror in &world.mirrors {
        assert_eq!(mirror.skopeo_digest("prod/foo:1.0"), Some(f.multi.digest.clone()));
        assert_eq!(mirror.skopeo_digest("prod/foo:latest"), Some(f.multi.digest.clone()));
        for child in &f.multi.children {
            let raw = mirror.skopeo_raw(&format!("prod/foo@{}", child.digest));
            assert_eq!(raw.as_deref(), Some(&child.manifest[..]), "child {}", child.digest);
        }
        assert_eq!(mirror.skopeo_digest("prod/bar:2.0"), Some(f.list.digest.clone()));
        assert_eq!(
            mirror.skopeo_digest(&format!("prod/baz@{}", f.single.digest)),
            Some(f.single.digest.clone())
        );
        assert_eq!(mirror.skopeo_tags("prod/foo"), ["1.0", "latest"]);
    }
    // Every blob read from staging once, whatever the number of mirrors.
    let blob_gets = world.staging_proxy.count("GET", r"/blobs/sha256:");
    assert_eq!(blob_gets, distinct_blobs(&f), "source blob GETs");

    world.clear_seen();
    let rerun = world.confirm(RUN_SECONDS);
    rerun.expect_code(0);
    assert_eq!(world.mirror_writes(), 0, "rerun must not write");
    assert_eq!(world.staging_proxy.count("GET", r"/blobs/"), 0);
    assert_eq!(rerun.num(&["decisions", "copy"]), 0);
    assert_eq!(rerun.num(&["write_requests"]), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retag_then_tag_move_refused_with_nothing_written() {
    let world = world();
    let f = push_fixtures(&world).await;
    let project = |tags: Vec<&str>, other: Vec<(&str, Vec<&str>)>| {
        let mut dmap = vec![(f.multi.digest.as_str(), tags)];
        dmap.extend(other);
        world.write_project("p", &world.src(), &world.dsts(), &[("foo", dmap)]);
    };
    project(vec!["1.0"], vec![]);
    world.confirm(RUN_SECONDS).expect_code(0);

    // Retag: the digest is there, only the new tag is written.
    project(vec!["1.0", "stable"], vec![]);
    world.clear_seen();
    let retag = world.confirm(RUN_SECONDS);
    retag.expect_code(0);
    assert_eq!(retag.num(&["decisions", "retag"]), 3);
    assert_eq!(retag.num(&["blobs_uploaded"]), 0);
    assert_eq!(world.staging_proxy.count("GET", r"/blobs/"), 0);
    for (mirror, proxy) in world.mirrors.iter().zip(&world.proxies) {
        assert_eq!(mirror.skopeo_digest("prod/foo:stable"), Some(f.multi.digest.clone()));
        assert_eq!(proxy.count("PUT", r"/manifests/stable$"), 1);
        assert_eq!(proxy.count("PUT", r"/manifests/"), 1, "only the tag");
    }

    // Tag move: 1.0 now claimed by another digest; refused before anything is written.
    world.write_project(
        "p",
        &world.src(),
        &world.dsts(),
        &[("foo", vec![(f.list.digest.as_str(), vec!["1.0"])])],
    );
    world.staging.pusher().push_index("staging/foo", &f.list, &[]).await;
    world.clear_seen();
    let moved = world.confirm(RUN_SECONDS);
    moved.expect_code(1);
    assert!(moved.stderr.contains("tag move"), "{}", moved.stderr);
    assert!(moved.stdout.contains("TAG MOVE"), "{}", moved.stdout);
    assert_eq!(world.mirror_writes(), 0);
    for mirror in &world.mirrors {
        assert_eq!(mirror.skopeo_digest("prod/foo:1.0"), Some(f.multi.digest.clone()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlap_is_refused_with_exit_2_and_lost_is_reported() {
    let world = world();
    let f = push_fixtures(&world).await;
    let dsts = world.dsts();
    world.write_project(
        "a",
        &world.src(),
        &dsts,
        &[("foo", vec![(f.multi.digest.as_str(), vec!["1.0"])])],
    );
    world.write_project(
        "b",
        &world.src(),
        &dsts,
        &[("foo", vec![(f.list.digest.as_str(), vec!["1.0"])])],
    );
    let overlap = world.confirm(RUN_SECONDS);
    overlap.expect_code(2);
    assert!(overlap.stderr.contains("overlapping"), "{}", overlap.stderr);
    assert_eq!(world.mirror_writes(), 0);
    assert_eq!(
        world.proxies[0].seen().len(),
        0,
        "overlaps are found before any registry read"
    );

    // _LOST_: a digest staging never had. Reported, exit 0, the rest promoted.
    std::fs::remove_dir_all(world.dir.path().join("manifests/b")).expect("drop project b");
    std::fs::remove_dir_all(world.dir.path().join("images/b")).expect("drop project b");
    let ghost = Image::simple(Format::Oci, 99);
    world.write_project(
        "a",
        &world.src(),
        &dsts,
        &[(
            "foo",
            vec![
                (f.multi.digest.as_str(), vec!["1.0"]),
                (ghost.digest.as_str(), vec!["9.9"]),
            ],
        )],
    );
    let lost = world.confirm(RUN_SECONDS);
    lost.expect_code(0);
    assert!(lost.stderr.contains("_LOST_"), "{}", lost.stderr);
    assert_eq!(lost.num(&["decisions", "lost"]), 3);
    assert_eq!(
        world.mirrors[0].skopeo_digest("prod/foo:1.0"),
        Some(f.multi.digest.clone())
    );
    assert!(!world.mirrors[0].skopeo_tags("prod/foo").contains(&"9.9".to_string()));

    let strict = world.spawn_confirm(&["--fail-on-lost"]).wait(RUN_SECONDS);
    strict.expect_code(1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_with_some_blobs_gets_only_the_rest() {
    let world = world();
    let f = push_fixtures(&world).await;
    // Mirror 0 already has the shared base layer and the amd64 image.
    let amd64 = &f.multi.children[0];
    world.mirrors[0].pusher().push_image("prod/foo", amd64, &[]).await;
    world.write_project(
        "p",
        &world.src(),
        &world.dsts(),
        &[("foo", vec![(f.multi.digest.as_str(), vec!["1.0"])])],
    );
    let run = world.confirm(RUN_SECONDS);
    run.expect_code(0);
    let uploads_of = |digest: &str| {
        world.proxies[0]
            .seen()
            .iter()
            .filter(|s| s.method == "PUT" && s.query.as_deref().is_some_and(|q| q.contains(&digest[7..])))
            .count()
    };
    for blob in amd64.blobs() {
        assert_eq!(
            uploads_of(&blob.digest),
            0,
            "mirror 0 must not receive {} again",
            blob.digest
        );
    }
    // The arm64 image's own layer was missing: uploaded exactly once.
    let arm64_layer = f.multi.children[1].layers.last().expect("arm64 layer");
    assert_eq!(uploads_of(&arm64_layer.digest), 1);
    assert_eq!(
        world.proxies[0].count("PUT", &format!("/manifests/{}$", amd64.digest)),
        0,
        "present child not pushed again"
    );
    for mirror in &world.mirrors {
        assert_eq!(mirror.skopeo_digest("prod/foo:1.0"), Some(f.multi.digest.clone()));
    }
    assert!(run.num(&["blobs_present"]) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_registry_destination_is_mounted() {
    let world = world();
    let f = push_fixtures(&world).await;
    // The destination is another repository path on the staging registry itself.
    let same = format!("{}/prod", world.staging_proxy.host());
    world.write_project(
        "p",
        &world.src(),
        &[same],
        &[("foo", vec![(f.multi.digest.as_str(), vec!["1.0"])])],
    );
    let run = world.confirm(RUN_SECONDS);
    run.expect_code(0);
    assert!(run.num(&["blobs_mounted"]) > 0);
    assert_eq!(run.num(&["blobs_uploaded"]), 0);
    assert_eq!(world.staging_proxy.count("GET", r"/blobs/"), 0, "no blob bytes read");
    assert_eq!(
        world.staging.skopeo_digest("prod/foo:1.0"),
        Some(f.multi.digest.clone())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_mirror_still_converges() {
    let world = world();
    let f = push_fixtures(&world).await;
    // Mirror 2 sits behind nginx answering 429 (Retry-After: 1) above 5 req/s.
    let front = RateLimitFront::start(world.mirrors[2].port(), 5, 5, 1);
    let mut dsts = world.dsts();
    dsts[2] = format!("{}/prod", front.host());
    world.write_project(
        "p",
        &world.src(),
        &dsts,
        &[
            ("foo", vec![(f.multi.digest.as_str(), vec!["1.0"])]),
            ("bar", vec![(f.list.digest.as_str(), vec!["2.0"])]),
        ],
    );
    let run = world.confirm(180);
    run.expect_code(0);
    assert!(front.rejected() > 0, "the front must have throttled");
    assert!(run.num(&["retries"]) > 0, "retries reported in the summary");
    // The throttled mirror's concurrency limit went down from its start (8); the others
    // report theirs too.
    let throttled = front.host();
    assert!(run.num(&["registries", &throttled, "concurrency", "lowest"]) < 8);
    let healthy = dsts[0].split('/').next().unwrap_or_default();
    assert!(run.num(&["registries", healthy, "concurrency", "limit"]) >= 1);
    for mirror in &world.mirrors {
        assert_eq!(mirror.skopeo_digest("prod/foo:1.0"), Some(f.multi.digest.clone()));
        assert_eq!(mirror.skopeo_digest("prod/bar:2.0"), Some(f.list.digest.clone()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_mirror_fails_with_exit_1_and_rerun_converges() {
    let mut world = world();
    let f = push_fixtures(&world).await;
    standard_project(&world, &f);
    world.mirrors[1].stop();
    let failed = world.confirm(240);
    failed.expect_code(1);
    assert!(
        failed.stderr.contains(&world.proxies[1].host()),
        "the error names the registry: {}",
        failed.stderr
    );
    world.mirrors[1].restart();
    world.confirm(RUN_SECONDS).expect_code(0);
    for mirror in &world.mirrors {
        assert_eq!(mirror.skopeo_digest("prod/foo:1.0"), Some(f.multi.digest.clone()));
    }
}
