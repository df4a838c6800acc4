//! Bad input and failure, end to end: the built `kpromo cip --thin-manifest-dir DIR
//! --confirm` against real CNCF distribution registries on 127.0.0.1 that are down,
//! locked, lying about their bytes, dying part-way, flaky, or whose promotion is
//! interrupted with SIGINT. After every failure the mirrors are read with the harness's
//! own client: no tag may point at a manifest, child or blob that is missing. After
//! recovery a rerun must converge (checked with skopeo) and a further rerun write nothing.
use std::time::{Duration, Instant};

use crate::support;
use crate::support::images::{Blob, Format, Image, Index};
use crate::support::world::{ImageSpec, Run, World, assert_complete, is_write, tags};
use crate::support::{Action, RegistryOptions, Rule, TestRegistry, Times, within};

/// Images promoted by every test: an OCI index (children tagless in the manifest), a
/// Docker manifest list and a single image, as staging/{foo,bar,baz}.
struct Fixtures {
    multi: Index,
    list: Index,
    single: Image,
}

impl Fixtures {
    /// A few hundred KiB in all: for failures that do not depend on timing.
    fn small() -> Fixtures {
        let base = Blob::random(11, 256 * 1024);
        Fixtures {
            multi: Index::multi_arch(Format::Oci, 1, &["amd64", "arm64/v8"], Some(&base)),
            list: Index::multi_arch(Format::Docker, 2, &["amd64", "s390x"], Some(&base)),
            single: Image::simple(Format::Oci, 3),
        }
    }

    /// Four 24 MiB layers (streamed, never in memory): enough for a promotion through a
    /// slowed-down source to last a few seconds, so something can happen part-way.
    fn big() -> Fixtures {
        let base = Blob::random(31, 256 * 1024);
        let layer = |seed| Blob::big(seed, 24 << 20);
        let amd64 = Image::new(Format::Oci, 41, "amd64", vec![base.clone(), layer(42), layer(43)]);
        let arm64 = Image::new(Format::Oci, 44, "arm64/v8", vec![base.clone(), layer(45)]);
        Fixtures {
            multi: Index::new(Format::Oci, vec![amd64, arm64]),
            list: Index::multi_arch(Format::Docker, 5, &["amd64", "s390x"], Some(&base)),
            single: Image::new(Format::Docker, 6, "amd64", vec![layer(46)]),
        }
    }

    async fn push(&self, world: &World) {
        let pusher = world.staging.pusher();
        within(180, "push fixtures to staging", async {
            pusher.push_index("staging/foo", &self.multi, &[]).await;
            pusher.push_index("staging/bar", &self.list, &[]).await;
            pusher.push_image("staging/baz", &self.single, &[]).await;
        })
        .await;
    }

    /// Pushes the fixtures to staging and writes project `p`, promoting them to `dsts`.
    async fn stage(&self, world: &World, dsts: &[String]) {
        self.push(world).await;
        world.write_project("p", &world.src(), dsts, &self.images());
    }

    /// (image name, top digest, tags) as promoted.
    fn promoted(&self) -> [(&str, &str, Vec<&str>); 3] {
        [
            ("foo", self.multi.digest.as_str(), vec!["1.0", "latest"]),
            ("bar", self.list.digest.as_str(), vec!["2.0"]),
            ("baz", self.single.digest.as_str(), vec!["3.0"]),
        ]
    }

    /// The images.yaml entries: `promoted()`, plus the index children by digest.
    fn images(&self) -> Vec<ImageSpec<'_>> {
        self.promoted()
            .into_iter()
            .map(|(name, digest, tags)| {
                let mut dmap = vec![(digest, tags)];
                if name == "foo" {
                    dmap.extend(self.multi.children.iter().map(|c| (c.digest.as_str(), vec![])));
                }
                (name, dmap)
            })
            .collect()
    }

    /// What skopeo must read at `mirror` after a successful promotion: every tag at the
    /// source digest, byte-exact children, and nothing dangling.
    async fn assert_promoted(&self, mirror: &TestRegistry) {
        for (name, digest, want) in self.promoted() {
            let repo = format!("prod/{name}");
            assert_eq!(mirror.skopeo_tags(&repo), want, "{}/{repo} tags", mirror.host());
            for tag in want {
                let reference = format!("{repo}:{tag}");
                assert_eq!(
                    mirror.skopeo_digest(&reference).as_deref(),
                    Some(digest),
                    "{}/{reference}",
                    mirror.host()
                );
            }
            assert_complete(mirror, &repo).await;
        }
        for child in &self.multi.children {
            let raw = mirror.skopeo_raw(&format!("prod/foo@{}", child.digest));
            assert_eq!(raw.as_deref(), Some(&child.manifest[..]), "child {}", child.digest);
        }
    }
}

/// Staging and `mirrors` mirrors, driven by the binary under test.
fn world(mirrors: usize) -> World {
    World::start(env!("CARGO_BIN_EXE_kpromo"), mirrors)
}

/// Every repository a promotion may write at `mirror` is complete (possibly empty).
async fn assert_nothing_dangling(mirror: &TestRegistry) {
    for name in ["foo", "bar", "baz"] {
        assert_complete(mirror, &format!("prod/{name}")).await;
    }
}

/// No repository a promotion may write at `mirror` has any tag.
async fn assert_untagged(mirror: &TestRegistry) {
    for name in ["foo", "bar", "baz"] {
        let repo = format!("prod/{name}");
        assert_eq!(
            tags(mirror, &repo).await,
            Vec::<String>::new(),
            "{}/{repo}",
            mirror.host()
        );
    }
}

/// The error the run ended with, as the user reads it last (`Error: …`).
fn final_error(run: &Run) -> &str {
    run.stderr.rfind("Error: ").map_or("", |at| &run.stderr[at..])
}

fn assert_mentions(run: &Run, needles: &[&str]) {
    for needle in needles {
        assert!(
            run.stderr.contains(needle),
            "stderr must mention {needle:?}:\n{}",
            run.stderr
        );
    }
}

/// Every image the run's `--summary-json` lists as not promoted: (image, class).
fn failed_images(run: &Run) -> Vec<(String, String)> {
    let listed = run.summary["failed_images"]
        .as_array()
        .unwrap_or_else(|| panic!("summary without failed_images: {}", run.summary));
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let mut images: Vec<(String, String)> = listed.iter().map(|f| (text(&f["image"]), text(&f["class"]))).collect();
    images.sort();
    images
}

/// The final error and the summary agree that `count` images failed, all of `class`.
fn assert_failed_as(run: &Run, class: &str, count: usize) {
    let images = failed_images(run);
    assert_eq!(images.len(), count, "{images:#?}");
    assert!(images.iter().all(|(_, c)| c == class), "all {class}: {images:#?}");
    let error = final_error(run);
    let (says, never) = match class {
        "permanent" => (
            "fix the source or the manifest; a rerun will not help",
            "rerun converges",
        ),
        _ => ("(rerun converges)", "a rerun will not help"),
    };
    assert!(error.contains(says), "the final error must say {says:?}: {error}");
    assert!(
        !error.contains(never),
        "the final error must not say {never:?}: {error}"
    );
    let summary_lines = run.stderr.lines().filter(|l| l.contains("summary: not promoted ("));
    assert_eq!(
        summary_lines.count(),
        count,
        "one summary line per image:\n{}",
        run.stderr
    );
}

/// Polls `done` every 50 ms for at most `seconds`.
fn wait_until(seconds: u64, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !done() {
        assert!(Instant::now() < deadline, "{what} did not happen within {seconds} s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Staging blob bodies at 8 MiB/s: a 24 MiB layer takes 3 s to copy.
fn slow_source(world: &World) {
    world.staging_proxy.set_rules(vec![Rule::new(
        Some("GET"),
        "/blobs/sha256:",
        Action::Slow { bytes_per_sec: 8 << 20 },
        Times::Always,
    )]);
}

/// A rerun after recovery converges, and the run after that writes nothing at all.
async fn assert_rerun_converges(world: &World, f: &Fixtures) {
    world.staging_proxy.set_rules(vec![]);
    world.confirm(300).expect_code(0);
    for mirror in &world.mirrors {
        f.assert_promoted(mirror).await;
    }
    world.clear_seen();
    let noop = world.confirm(120);
    noop.expect_code(0);
    assert_eq!(
        world.mirror_writes(),
        0,
        "a converged rerun must not write to any mirror"
    );
    assert_eq!(noop.num(&["write_requests"]), 0, "summary write_requests");
    assert_eq!(world.staging_proxy.count("GET", "/blobs/"), 0, "no blob read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_mirror_fails_naming_it_and_leaves_nothing_dangling() {
    let world = world(2);
    let f = Fixtures::small();
    // A port nothing listens on: connections are refused.
    let closed = format!("127.0.0.1:{}", support::free_port());
    let mut dsts = world.dsts();
    dsts.insert(1, format!("{closed}/prod"));
    f.stage(&world, &dsts).await;

    let run = world.confirm(180);
    run.expect_code(1);
    let error = final_error(&run);
    for needle in [
        closed.as_str(),
        "connect",
        "Connection refused",
        "nothing listens there",
    ] {
        assert!(
            error.contains(needle),
            "the final error must mention {needle:?}: {error}"
        );
    }
    for mirror in &world.mirrors {
        assert_nothing_dangling(mirror).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_refusing_anonymous_access_fails_with_an_auth_error_and_gets_nothing() {
    let world = world(1);
    let locked = TestRegistry::start(RegistryOptions::basic());
    let f = Fixtures::small();
    let mut dsts = world.dsts();
    dsts.push(format!("{}/prod", locked.host()));
    f.stage(&world, &dsts).await;

    // The docker config kpromo sees is an empty directory: no credentials for it.
    let run = world.confirm(120);
    run.expect_code(1);
    let error = final_error(&run);
    for needle in [locked.host().as_str(), "authentication failed", "list tags of prod/"] {
        assert!(
            error.contains(needle),
            "the final error must mention {needle:?}: {error}"
        );
    }
    let repositories = locked.storage().join("docker/registry/v2/repositories");
    assert!(
        !repositories.exists(),
        "nothing may be written to the locked registry: {} exists",
        repositories.display()
    );
    assert_nothing_dangling(&world.mirrors[0]).await;
}

/// Two mirrors, the small fixtures staged, and staging's proxy flipping a byte in the
/// body of every GET whose path matches `path`.
async fn staged_with_corrupt_gets(path: &str) -> (World, Fixtures) {
    let world = world(2);
    let f = Fixtures::small();
    f.stage(&world, &world.dsts()).await;
    world
        .staging_proxy
        .set_rules(vec![Rule::new(Some("GET"), path, Action::FlipByte, Times::Always)]);
    (world, f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_blobs_not_matching_their_digest_are_refused() {
    let (world, f) = staged_with_corrupt_gets("/blobs/sha256:").await;

    let run = world.confirm(180);
    run.expect_code(1);
    assert_mentions(&run, &["digest mismatch", &world.staging_proxy.host()]);
    assert!(world.staging_proxy.faults() > 0, "the proxy must have corrupted blobs");
    // A corrupt source fails the same way on a rerun: every image at both mirrors (three
    // tagged, two children listed by digest) says so.
    assert_failed_as(&run, "permanent", 10);
    for mirror in &world.mirrors {
        assert_untagged(mirror).await;
        let pusher = mirror.pusher();
        for blob in f.multi.children.iter().flat_map(Image::blobs) {
            assert!(
                !pusher.has_blob("prod/foo", &blob.digest).await,
                "corrupted blob {} committed at {}",
                blob.digest,
                mirror.host()
            );
        }
    }
    assert_rerun_converges(&world, &f).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_manifests_not_matching_their_digest_are_refused() {
    let (world, f) = staged_with_corrupt_gets("/manifests/").await;

    let run = world.confirm(180);
    run.expect_code(1);
    assert_mentions(&run, &["digest mismatch"]);
    assert!(
        world.staging_proxy.faults() > 0,
        "the proxy must have corrupted manifests"
    );
    assert_failed_as(&run, "permanent", 10);
    for mirror in &world.mirrors {
        assert_untagged(mirror).await;
    }
    assert_eq!(
        world
            .proxies
            .iter()
            .map(|p| p.count("PUT", "/manifests/"))
            .sum::<usize>(),
        0,
        "no manifest may be pushed from corrupted bytes"
    );
    assert_rerun_converges(&world, &f).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_dying_mid_run_fails_then_rerun_converges_and_then_writes_nothing() {
    let mut world = world(3);
    let f = Fixtures::big();
    f.stage(&world, &world.dsts()).await;
    slow_source(&world);

    let running = world.spawn_confirm(&[]);
    // Mirror 1 dies once it has committed its first blob, while big layers still stream.
    let committed = |world: &World| {
        world.proxies[1]
            .seen()
            .iter()
            .any(|s| s.method == "PUT" && s.path.contains("/blobs/uploads/") && s.status == Some(201))
    };
    wait_until(120, "a committed blob upload on mirror 1", || committed(&world));
    world.mirrors[1].stop();
    let failed = running.wait(300);
    failed.expect_code(1);
    assert_mentions(&failed, &[&world.proxies[1].host()]);
    // A mirror that went away: a rerun converges, and the run says so for each image.
    let images = failed_images(&failed);
    assert!(!images.is_empty(), "{}", failed.summary);
    assert!(
        images
            .iter()
            .all(|(image, _)| image.starts_with(&world.proxies[1].host())),
        "only mirror 1 failed: {images:#?}"
    );
    assert_failed_as(&failed, "transient", images.len());
    assert!(
        world.proxies[1].seen().iter().any(|s| s.status == Some(502)),
        "mirror 1 must have died while kpromo still talked to it"
    );
    // The surviving mirrors got everything; the dead one, once back, holds no dangling tag.
    for i in [0, 2] {
        f.assert_promoted(&world.mirrors[i]).await;
    }
    world.mirrors[1].restart();
    assert_nothing_dangling(&world.mirrors[1]).await;

    assert_rerun_converges(&world, &f).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_stops_promptly_without_dangling_tags_and_rerun_converges() {
    let world = world(2);
    let f = Fixtures::big();
    f.stage(&world, &world.dsts()).await;
    slow_source(&world);

    let running = world.spawn_confirm(&[]);
    // Interrupt once the promote phase streams blobs (the Ctrl-C handler is armed by then).
    wait_until(120, "a blob read from staging", || {
        world.staging_proxy.count("GET", "/blobs/sha256:") > 0
    });
    std::thread::sleep(Duration::from_millis(500));
    running.interrupt();
    let sent = Instant::now();
    // In-flight blob copies finish (3 s each at the slowed source), nothing new starts.
    let run = running.wait(60);
    let took = sent.elapsed();
    assert!(
        matches!(run.code, Some(code) if code != 0),
        "an interrupted run exits with a non-zero code, not a signal (took {took:?}): {:?}\n{}",
        run.code,
        run.stderr
    );
    let error = final_error(&run);
    assert!(
        error.contains("interrupted"),
        "the run must end as interrupted: {error}"
    );
    for mirror in &world.mirrors {
        assert_nothing_dangling(mirror).await;
    }
    assert_rerun_converges(&world, &f).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_errors_on_every_request_are_absorbed() {
    let world = world(2);
    let f = Fixtures::small();
    f.stage(&world, &world.dsts()).await;
    let status = |status| Action::Status {
        status,
        retry_after: None,
    };
    // Mirror 0: the first attempt of every distinct request fails (503 for reads, 500 for
    // writes). Upload session URLs are new on every attempt, so for those the first two
    // commits fail instead.
    world.proxies[0].set_rules(vec![
        Rule::new(Some("PUT"), "/blobs/uploads/.", status(500), Times::First(2)),
        Rule::new(Some("PATCH"), "/blobs/uploads/.", status(500), Times::First(1)),
        Rule::new(Some("GET"), "^/v2/.", status(503), Times::FirstPerRequest(1)),
        Rule::new(Some("HEAD"), "^/v2/.", status(503), Times::FirstPerRequest(1)),
        Rule::new(
            None,
            "^/v2/.+/(manifests/|blobs/uploads/$)",
            status(500),
            Times::FirstPerRequest(1),
        ),
    ]);

    let run = world.confirm(240);
    run.expect_code(0);
    assert!(world.proxies[0].faults() > 0, "faults must have been injected");
    assert!(
        world.proxies[0]
            .seen()
            .iter()
            .any(|s| is_write(&s.method) && s.fault.is_some()),
        "writes must have failed too"
    );
    assert!(run.num(&["retries"]) > 0, "retries reported in the summary");
    for mirror in &world.mirrors {
        f.assert_promoted(mirror).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failure_of_a_big_layer_upload_is_retried() {
    let world = world(2);
    let f = Fixtures::big();
    f.stage(&world, &world.dsts()).await;
    // Mirror 0 already holds every small blob, so the only uploads it gets are 24 MiB
    // layers: too big to be kept for a resend, they must be read from the source again.
    let pusher = world.mirrors[0].pusher();
    let images = f
        .multi
        .children
        .iter()
        .map(|c| ("prod/foo", c))
        .chain(f.list.children.iter().map(|c| ("prod/bar", c)))
        .chain([("prod/baz", &f.single)]);
    within(60, "seed mirror 0 with the small blobs", async {
        for (repo, image) in images {
            for blob in image.blobs().filter(|b| b.size < 1 << 20) {
                pusher.push_blob(repo, blob).await;
            }
        }
    })
    .await;
    // The first two layer commits fail after their whole body was sent.
    world.proxies[0].set_rules(vec![Rule::new(
        Some("PUT"),
        "/blobs/uploads/.",
        Action::Status {
            status: 500,
            retry_after: None,
        },
        Times::First(2),
    )]);

    let run = world.confirm(300);
    run.expect_code(0);
    assert_eq!(world.proxies[0].faults(), 2, "both faults must have fired");
    for mirror in &world.mirrors {
        f.assert_promoted(mirror).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_resets_and_truncated_source_reads_are_absorbed() {
    let world = world(2);
    let f = Fixtures::big();
    f.stage(&world, &world.dsts()).await;
    // Staging cuts every blob body in half (then resets) on its first read; mirror 0
    // resets the connection on the first attempt of every manifest write and on the
    // first two blob commits.
    world.staging_proxy.set_rules(vec![Rule::new(
        Some("GET"),
        "/blobs/sha256:",
        Action::Truncate,
        Times::FirstPerRequest(1),
    )]);
    world.proxies[0].set_rules(vec![
        Rule::new(Some("PUT"), "/blobs/uploads/.", Action::Reset, Times::First(2)),
        Rule::new(Some("PUT"), "/manifests/", Action::Reset, Times::FirstPerRequest(1)),
    ]);

    let run = world.confirm(300);
    run.expect_code(0);
    assert!(world.staging_proxy.faults() > 0, "source reads must have been cut");
    assert!(world.proxies[0].faults() > 2, "mirror 0 must have reset connections");
    for mirror in &world.mirrors {
        f.assert_promoted(mirror).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_interrupt_aborts_at_once_and_rerun_converges() {
    let world = world(1);
    let f = Fixtures::big();
    f.stage(&world, &world.dsts()).await;
    slow_source(&world);

    let running = world.spawn_confirm(&[]);
    wait_until(120, "a blob read from staging", || {
        world.staging_proxy.count("GET", "/blobs/sha256:") > 0
    });
    running.interrupt();
    std::thread::sleep(Duration::from_millis(300));
    running.interrupt();
    // A graceful stop would end with 1 once in-flight copies finish; 130 means it aborted.
    let run = running.wait(10);
    assert_eq!(run.code, Some(130), "a second Ctrl-C aborts with 130:\n{}", run.stderr);
    assert_nothing_dangling(&world.mirrors[0]).await;
    assert_rerun_converges(&world, &f).await;
}

/// Issue 14: a body cut off mid-stream used to be read twice at most. It is read again
/// within the client's transient budget (six retries by default), so four cuts in a row
/// on every blob still end in a promotion on the first run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_bodies_cut_off_again_and_again_are_read_within_the_retry_budget() {
    let world = world(1);
    let f = Fixtures::small();
    f.stage(&world, &world.dsts()).await;
    world.staging_proxy.set_rules(vec![Rule::new(
        Some("GET"),
        "/blobs/sha256:",
        Action::Truncate,
        Times::FirstPerRequest(4),
    )]);

    let run = world.confirm(300);
    run.expect_code(0);
    let blobs = world.staging_proxy.count("GET", "/blobs/sha256:");
    assert!(
        world.staging_proxy.faults() >= 4 && blobs >= 5 * world.staging_proxy.faults() / 4,
        "every cut blob was read again after its fourth cut: {blobs} reads, {} cut",
        world.staging_proxy.faults()
    );
    f.assert_promoted(&world.mirrors[0]).await;
}

/// Issue 14: a staging registry whose `Content-Type` calls every manifest an OCI index.
/// The body says what each manifest is, so the mirror gets the right type (and no 400
/// after the blobs were uploaded), and the log says which type was used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_content_type_lying_about_a_manifest_is_overruled_by_its_body() {
    let world = world(1);
    let f = Fixtures::small();
    f.stage(&world, &world.dsts()).await;
    world.staging_proxy.set_rules(vec![Rule::new(
        None,
        "/manifests/",
        Action::ContentType("application/vnd.oci.image.index.v1+json"),
        Times::Always,
    )]);

    let run = world.confirm(180);
    run.expect_code(0);
    assert_mentions(
        &run,
        &[
            "the registry sent Content-Type application/vnd.oci.image.index.v1+json but the manifest is \
             application/vnd.oci.image.manifest.v1+json: using the manifest's own type",
        ],
    );
    f.assert_promoted(&world.mirrors[0]).await;
    let pusher = world.mirrors[0].pusher();
    let (status, media_type, _) = pusher.get_manifest("prod/baz", "3.0").await;
    assert_eq!((status, media_type.as_str()), (200, f.single.media_type()));
}
