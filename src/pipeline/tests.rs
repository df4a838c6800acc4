//! Unit tests of planning and promotion over in-memory registries (`registry::memory`;
//! the real backends against real registries are the e2e tests' job): decisions against
//! registry state, graph ordering, fan-out, reruns.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::decide::Decision;
use super::plan::{Counts, Plan, PlanSink, SinkError};
use super::state::RunState;
use super::{Error, Options, Phase, plan, promote, run_phases};
use crate::audit::memory::MemorySink;
use crate::audit::{AuditLog, Event, WriteKind};
use crate::digest::Digest;
use crate::edges::EdgeSet;
use crate::manifest::{Manifest, ManifestSource};
use crate::policy::{Actor, ActorSource};
use crate::registry::memory::MemoryRegistry;
use crate::registry::oci_layout::{self, OciLayout};
use crate::registry::test_image::TestImage;
use crate::registry::{ClientOptions, ManifestRef, Registry, RepoRoot};

pub(super) fn options(confirm: bool) -> Options {
    Options {
        manifests: ManifestSource::Plain(PathBuf::from("unused.yaml")),
        diff: None,
        confirm,
        parse_only: false,
        fail_on_lost: false,
        sign: false,
        trust: Default::default(),
        registry: ClientOptions::default(),
        rollout: Default::default(),
        shard: None,
        policy: None,
        actor: Actor {
            name: "alice".into(),
            source: ActorSource::Flag,
        },
        audit: None,
    }
}

/// Keeps the counts of every plan it is handed (what the CLI would print).
#[derive(Default, Clone)]
struct Plans(Arc<std::sync::Mutex<Vec<Counts>>>);

impl Plans {
    fn handed(&self) -> Vec<Counts> {
        crate::sync::lock(&self.0).clone()
    }
}

impl PlanSink for Plans {
    fn plan(&mut self, plan: &Plan<'_>) -> Result<(), SinkError> {
        crate::sync::lock(&self.0).push(plan.counts);
        Ok(())
    }
}

/// (image name, [(digest, tags)])
pub(super) type ImageSpec<'a> = (&'a str, Vec<(Digest, Vec<&'a str>)>);

pub(super) fn manifest(src: &str, dsts: &[&str], images: &[ImageSpec]) -> Manifest {
    let images: Vec<_> = images
        .iter()
        .map(|(name, dmap)| {
            (
                *name,
                dmap.iter().map(|(d, tags)| (d.to_string(), tags.clone())).collect(),
            )
        })
        .collect();
    Manifest::for_test("promoter-manifest.yaml", src, dsts, &images)
}

/// In-memory registries by host; manifest registry names are `host/prefix`.
pub(super) struct World {
    pub(super) hosts: BTreeMap<String, Arc<MemoryRegistry>>,
    /// Hosts that are real OCI layout directories instead (the backend that checks a
    /// manifest's references through the same rule as the copier).
    layouts: BTreeMap<String, (tempfile::TempDir, Arc<OciLayout>)>,
    plans: Plans,
}

impl World {
    pub(super) fn new(hosts: &[&str]) -> Self {
        Self {
            hosts: hosts
                .iter()
                .map(|h| (h.to_string(), Arc::new(MemoryRegistry::new(h))))
                .collect(),
            layouts: BTreeMap::new(),
            plans: Plans::default(),
        }
    }

    /// Adds `host` as an OCI layout directory.
    fn with_layout(mut self, host: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = Arc::new(oci_layout::open(dir.path()).expect("layout"));
        self.layouts.insert(host.to_string(), (dir, layout));
        self
    }

    pub(super) fn host(&self, host: &str) -> Arc<MemoryRegistry> {
        self.hosts[host].clone()
    }

    fn layout(&self, host: &str) -> Arc<OciLayout> {
        self.layouts[host].1.clone()
    }

    fn backend(&self, host: &str) -> Arc<dyn Registry> {
        match self.layouts.get(host) {
            Some((_, layout)) => layout.clone(),
            None => self.host(host),
        }
    }

    pub(super) fn state(&self, manifests: &[Manifest], confirm: bool) -> RunState {
        let edges = EdgeSet::from_manifests(manifests);
        let mut state = RunState::new(options(confirm), Box::new(self.plans.clone()));
        state.manifests = manifests.len();
        for e in edges.edges() {
            for id in [e.src_registry, e.dst_registry] {
                let name = edges.name(id);
                let (host, prefix) = name.split_once('/').unwrap_or((name, ""));
                state.roots.insert(
                    id,
                    RepoRoot {
                        registry: self.backend(host),
                        prefix: prefix.to_string(),
                    },
                );
            }
        }
        state.edges = edges;
        state
    }

    pub(super) fn writes(&self) -> usize {
        self.hosts.values().map(|h| h.writes().len()).sum()
    }

    pub(super) fn clear_logs(&self) {
        self.hosts.values().for_each(|h| h.clear_log());
    }
}

/// The most common manifest here: staging's `foo` at `digest`, tagged 1.0, to `dsts`.
pub(super) fn foo_1_0(dsts: &[&str], digest: Digest) -> Manifest {
    manifest("stage/staging", dsts, &[("foo", vec![(digest, vec!["1.0"])])])
}

pub(super) async fn plan_and_promote(state: &mut RunState) {
    plan::plan_edges(state).await.expect("plan");
    promote::run(state).await.expect("promote");
}

pub(super) fn multi_arch() -> TestImage {
    let base: &[u8] = b"shared base layer";
    TestImage::index(vec![
        TestImage::single("amd64", &[base, b"amd64 layer"]),
        TestImage::single("arm64", &[base, b"arm64 layer"]),
    ])
}

#[tokio::test]
async fn children_before_index_before_tags() {
    let world = World::new(&["stage", "m1"]);
    let img = multi_arch();
    world.host("stage").seed("staging/foo", &img, &["1.0"]);
    // The k8s.io convention: children are listed tagless next to the tagged index.
    let dmap = vec![
        (img.digest(), vec!["1.0", "latest"]),
        (img.children[0].digest(), vec![]),
        (img.children[1].digest(), vec![]),
    ];
    let m = manifest("stage/staging", &["m1/prod"], &[("foo", dmap)]);
    let mut state = world.state(&[m], true);
    plan_and_promote(&mut state).await;

    let log = world.host("m1").writes();
    let pos = |needle: &str| {
        log.iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} not written: {log:#?}"))
    };
    let last_blob = log
        .iter()
        .rposition(|l| l.starts_with("PUT blob"))
        .expect("blobs uploaded");
    let children = [img.children[0].digest(), img.children[1].digest()].map(|d| pos(&format!("manifest prod/foo@{d}")));
    let index = pos(&format!("manifest prod/foo@{}", img.digest()));
    let tags = [pos("manifest prod/foo:1.0"), pos("manifest prod/foo:latest")];
    assert!(children.iter().all(|c| *c > last_blob && *c < index), "{log:#?}");
    assert!(tags.iter().all(|t| *t > index), "{log:#?}");
    // Each child pushed once although it is both a tagless edge and an index child.
    assert_eq!(world.host("m1").count("PUT manifest"), 5, "{log:#?}");
    let repo = world.host("m1").repo("prod/foo");
    assert_eq!(repo.tags["1.0"], img.digest());
    assert_eq!(repo.tags["latest"], img.digest());
    assert_eq!(repo.manifests[&img.digest()].bytes, img.manifest.bytes, "byte-exact");
    assert_eq!(state.promote.counters.blobs_uploaded, img.all_blobs().len() as u64);
}

#[tokio::test]
async fn fan_out_reads_each_source_blob_once_for_three_mirrors() {
    let world = World::new(&["stage", "m1", "m2", "m3"]);
    let img = multi_arch();
    world.host("stage").seed("staging/foo", &img, &["1.0"]);
    let m = foo_1_0(&["m1/prod", "m2/prod", "m3/prod"], img.digest());
    let mut state = world.state(&[m], true);
    plan_and_promote(&mut state).await;

    let blobs = img.all_blobs().len();
    assert_eq!(world.host("stage").count("GET blob"), blobs, "each blob read once");
    for mirror in ["m1", "m2", "m3"] {
        let repo = world.host(mirror).repo("prod/foo");
        assert_eq!(repo.tags.get("1.0"), Some(&img.digest()), "{mirror}");
        assert_eq!(repo.blobs.len(), blobs, "{mirror}");
        assert_eq!(world.host(mirror).count("PUT blob"), blobs, "{mirror}");
    }
    let blob_bytes: u64 = [&img.children[0], &img.children[1]]
        .iter()
        .flat_map(|c| c.blobs.iter())
        .map(|b| (Digest::of(b), b.len() as u64))
        .collect::<BTreeMap<_, _>>()
        .values()
        .sum();
    assert_eq!(state.promote.counters.source_bytes_read, blob_bytes);
    assert_eq!(state.promote.counters.bytes_uploaded, 3 * blob_bytes);
}

#[tokio::test]
async fn rerun_plans_skips_and_writes_nothing() {
    let world = World::new(&["stage", "m1", "m2"]);
    let img = multi_arch();
    world.host("stage").seed("staging/foo", &img, &[]);
    let dmap = vec![(img.digest(), vec!["1.0"]), (img.children[0].digest(), vec![])];
    let m = manifest("stage/staging", &["m1/prod", "m2/prod"], &[("foo", dmap)]);
    plan_and_promote(&mut world.state(std::slice::from_ref(&m), true)).await;
    world.clear_logs();

    let mut rerun = world.state(&[m], true);
    plan_and_promote(&mut rerun).await;
    assert!(
        rerun.decisions.iter().all(|d| *d == Decision::Skip),
        "{:?}",
        rerun.decisions
    );
    assert_eq!(world.writes(), 0);
    assert_eq!(world.host("stage").count("GET blob"), 0);
    assert_eq!(
        world.host("stage").count("HEAD"),
        1,
        "already promoted edges need no source reads, except one HEAD per tagless digest \
         (to report it if staging lost it), whatever the number of mirrors"
    );
}

#[tokio::test]
async fn untagged_only_repositories_are_not_mistaken_for_missing() {
    // distribution answers NAME_UNKNOWN to a tags list of a repository holding only
    // untagged manifests; the digests must still be found (source) and skipped (rerun).
    let world = World::new(&["stage", "m1"]);
    let img = multi_arch();
    world.host("stage").seed("staging/foo", &img, &[]);
    let m = manifest("stage/staging", &["m1/prod"], &[("foo", vec![(img.digest(), vec![])])]);
    let mut first = world.state(std::slice::from_ref(&m), true);
    plan_and_promote(&mut first).await;
    assert_eq!(first.decisions, [Decision::Copy]);
    assert!(world.host("m1").repo("prod/foo").manifests.contains_key(&img.digest()));
    world.clear_logs();
    let mut rerun = world.state(&[m], true);
    plan_and_promote(&mut rerun).await;
    assert_eq!(rerun.decisions, [Decision::Skip]);
    assert_eq!(world.writes(), 0);
}

#[tokio::test]
async fn tag_move_is_refused_and_nothing_is_written() {
    let world = World::new(&["stage", "m1", "m2"]);
    let img = multi_arch();
    let old = TestImage::single("old", &[b"old layer"]);
    world.host("stage").seed("staging/foo", &img, &[]);
    world.host("m1").seed("prod/foo", &old, &["1.0"]);
    let m = foo_1_0(&["m1/prod", "m2/prod"], img.digest());
    let mut state = world.state(&[m], true);
    let err = plan::plan_edges(&mut state).await.expect_err("tag move must be fatal");
    assert!(matches!(err, Error::TagMoves(1)), "{err}");
    let handed = world.plans.handed();
    assert_eq!(handed.len(), 1, "the refused plan is still shown: {handed:?}");
    assert_eq!((handed[0].tag_moves, handed[0].copy), (1, 1));
    assert!(err.to_string().contains("tag move"), "{err}");
    assert!(state.decisions.contains(&Decision::TagMove {
        current: old.digest(),
        digest_in_dst: false
    }));
    assert!(state.decisions.contains(&Decision::Copy), "m2 alone would be a copy");
    assert_eq!(world.writes(), 0);
    assert_eq!(world.host("m1").repo("prod/foo").tags["1.0"], old.digest());
}

#[tokio::test]
async fn nop_when_source_lacks_the_digest_lost_is_reported_not_fatal() {
    let world = World::new(&["stage", "m1"]);
    let present = TestImage::single("present", &[b"p"]);
    let missing = TestImage::single("missing", &[b"m"]);
    world.host("stage").seed("staging/foo", &present, &[]);
    let m = manifest(
        "stage/staging",
        &["m1/prod"],
        &[(
            "foo",
            vec![(present.digest(), vec!["1.0"]), (missing.digest(), vec!["2.0"])],
        )],
    );
    let mut state = world.state(std::slice::from_ref(&m), true);
    plan_and_promote(&mut state).await;
    assert_eq!(Counts::of(&state.decisions).lost, 1);
    let repo = world.host("m1").repo("prod/foo");
    assert_eq!(repo.tags.get("1.0"), Some(&present.digest()));
    assert_eq!(repo.tags.get("2.0"), None);

    let mut strict = world.state(&[m], true);
    strict.options.fail_on_lost = true;
    world.clear_logs();
    let err = plan::plan_edges(&mut strict).await.expect_err("--fail-on-lost");
    assert!(matches!(err, Error::Lost(1)), "{err}");
    assert_eq!(world.writes(), 0);
}

#[tokio::test]
async fn promoted_tagless_image_lost_from_staging_is_reported_not_fatal() {
    let world = World::new(&["stage", "m1"]);
    let img = TestImage::single("gone", &[b"g"]);
    // Promoted earlier; staging has lost it since.
    world.host("m1").seed("prod/foo", &img, &[]);
    let m = manifest("stage/staging", &["m1/prod"], &[("foo", vec![(img.digest(), vec![])])]);
    let mut state = world.state(&[m], true);
    state.options.fail_on_lost = true;
    plan_and_promote(&mut state).await;
    assert_eq!(state.decisions, [Decision::SkipStillLost]);
    assert_eq!(Counts::of(&state.decisions).skip, 1);
    assert_eq!(world.writes(), 0);
}

#[tokio::test]
async fn add_1_tag_for_2_registries_writes_only_tags() {
    let world = World::new(&["stage", "m1", "m2"]);
    let img = multi_arch();
    world.host("stage").seed("staging/foo", &img, &[]);
    world.host("m1").seed("prod/foo", &img, &["1.0"]);
    world.host("m2").seed("prod/foo", &img, &["1.0"]);
    let m = manifest(
        "stage/staging",
        &["m1/prod", "m2/prod"],
        &[("foo", vec![(img.digest(), vec!["1.0", "stable"])])],
    );
    let mut state = world.state(&[m], true);
    plan_and_promote(&mut state).await;
    assert_eq!(Counts::of(&state.decisions).retag, 2);
    for mirror in ["m1", "m2"] {
        assert_eq!(
            world.host(mirror).writes(),
            ["PUT manifest prod/foo:stable"],
            "{mirror}"
        );
    }
    assert_eq!(world.host("stage").count("GET blob"), 0);
}

#[tokio::test]
async fn promote_1_tag_as_a_rebase_under_the_destination_prefix() {
    let world = World::new(&["stage", "m1"]);
    let img = TestImage::single("x", &[b"layer"]);
    world.host("stage").seed("staging/foo", &img, &[]);
    let m = foo_1_0(&["m1/prod/rebased"], img.digest());
    plan_and_promote(&mut world.state(&[m], true)).await;
    assert_eq!(world.host("m1").repo("prod/rebased/foo").tags["1.0"], img.digest());
}

#[tokio::test]
async fn same_registry_destination_mounts_instead_of_copying() {
    let world = World::new(&["stage", "m1"]);
    let img = multi_arch();
    world.host("stage").seed("staging/foo", &img, &[]);
    let m = foo_1_0(&["stage/prod", "m1/prod"], img.digest());
    let mut state = world.state(&[m], true);
    plan_and_promote(&mut state).await;
    let blobs = img.all_blobs().len();
    assert_eq!(world.host("stage").count("POST mount prod/foo"), blobs);
    assert_eq!(world.host("stage").count("PUT blob"), 0);
    assert_eq!(world.host("stage").count("GET blob"), blobs, "read once, for m1 only");
    assert_eq!(world.host("stage").repo("prod/foo").tags["1.0"], img.digest());
    assert_eq!(state.promote.counters.blobs_mounted, blobs as u64);
}

#[tokio::test]
async fn second_repository_on_a_mirror_mounts_from_the_first_upload() {
    let world = World::new(&["stage", "m1"]);
    let img = TestImage::single("x", &[b"layer one", b"layer two"]);
    world.host("stage").seed("staging/foo", &img, &[]);
    let m = foo_1_0(&["m1/eu", "m1/us"], img.digest());
    plan_and_promote(&mut world.state(&[m], true)).await;
    let m1 = world.host("m1");
    assert_eq!(m1.count("PUT blob eu/foo"), 3);
    assert_eq!(m1.count("POST mount us/foo"), 3);
    assert_eq!(m1.repo("us/foo").tags["1.0"], img.digest());
}

#[tokio::test]
async fn mirror_with_some_blobs_gets_only_the_missing_ones() {
    let world = World::new(&["stage", "m1"]);
    let img = TestImage::single("x", &[b"base", b"top"]);
    world.host("stage").seed("staging/foo", &img, &[]);
    // The mirror's repository already serves an older image on the same base layer.
    world
        .host("m1")
        .seed("prod/foo", &TestImage::single("old", &[b"base"]), &["0.9"]);
    let m = foo_1_0(&["m1/prod"], img.digest());
    let mut state = world.state(&[m], true);
    plan_and_promote(&mut state).await;
    assert_eq!(state.promote.counters.blobs_present, 1);
    assert_eq!(world.host("m1").count("PUT blob"), 2);
    assert!(
        world
            .host("m1")
            .writes()
            .iter()
            .all(|w| !w.contains(&Digest::of(b"base").to_string()))
    );
}

#[tokio::test]
async fn a_repository_the_mirror_does_not_know_gets_its_blobs_without_heads() {
    let world = World::new(&["stage", "m1", "m2"]);
    let img = multi_arch();
    world.host("stage").seed("staging/foo", &img, &["1.0"]);
    // m2 holds a blob in prod/foo but no manifest (a run interrupted mid-copy): like
    // distribution, it answers NAME_UNKNOWN for the tags list.
    let base = Digest::of(&img.children[0].blobs[0]);
    world.host("m2").seed_blob("prod/foo", &img.children[0].blobs[0]);
    let m = foo_1_0(&["m1/prod", "m2/prod"], img.digest());
    let mut state = world.state(&[m], true);
    plan_and_promote(&mut state).await;
    assert!(state.promote.failures.is_empty(), "{:?}", state.promote.failures);
    for mirror in ["m1", "m2"] {
        let host = world.host(mirror);
        assert_eq!(host.count("HEAD blob"), 0, "{mirror}: {:?}", host.log());
        assert_eq!(host.repo("prod/foo").tags.get("1.0"), Some(&img.digest()), "{mirror}");
        assert_eq!(host.repo("prod/foo").blobs.len(), img.all_blobs().len(), "{mirror}");
    }
    // The price, documented on `copy::Request::fresh`: that blob went again.
    assert!(world.host("m2").writes().iter().any(|w| w.contains(&base.to_string())));
}

#[tokio::test]
async fn a_repository_holding_a_child_still_gets_blob_heads() {
    let world = World::new(&["stage", "m1"]);
    let img = multi_arch();
    world.host("stage").seed("staging/foo", &img, &["1.0"]);
    // An earlier run pushed the first child before it stopped.
    world.host("m1").seed("prod/foo", &img.children[0], &[]);
    let m = foo_1_0(&["m1/prod"], img.digest());
    let mut state = world.state(&[m], true);
    plan_and_promote(&mut state).await;
    assert!(state.promote.failures.is_empty(), "{:?}", state.promote.failures);
    let host = world.host("m1");
    assert!(host.count("HEAD blob") > 0, "{:?}", host.log());
    for blob in &img.children[0].blobs {
        let digest = Digest::of(blob).to_string();
        assert!(
            !host.writes().iter().any(|w| w.contains("blob") && w.contains(&digest)),
            "{digest} uploaded again"
        );
    }
    assert_eq!(host.repo("prod/foo").tags.get("1.0"), Some(&img.digest()));
}

#[tokio::test]
async fn corrupt_source_blob_is_refused_and_no_manifest_or_tag_written() {
    let world = World::new(&["stage", "m1", "m2"]);
    let img = TestImage::single("x", &[b"good layer"]);
    world.host("stage").seed("staging/foo", &img, &[]);
    world
        .host("stage")
        .seed_corrupt_blob("staging/foo", Digest::of(b"good layer"), b"evil layer");
    let m = foo_1_0(&["m1/prod", "m2/prod"], img.digest());
    let mut state = world.state(&[m], true);
    plan::plan_edges(&mut state).await.expect("plan");
    let err = promote::run(&mut state).await.expect_err("digest mismatch");
    assert!(matches!(err, Error::Failed { .. }), "{err}");
    assert!(err.to_string().contains("digest mismatch"), "{err}");
    for mirror in ["m1", "m2"] {
        let repo = world.host(mirror).repo("prod/foo");
        assert!(repo.manifests.is_empty() && repo.tags.is_empty(), "{mirror}: {repo:?}");
        assert!(!repo.blobs.contains_key(&Digest::of(b"good layer")), "{mirror}");
    }
}

/// Issue 14: a failure says whether a rerun helps. A corrupt source is permanent, a
/// registry error 5xx transient; the report lists every image not promoted with its class.
#[tokio::test]
async fn failures_say_whether_a_rerun_helps_and_every_failed_image_is_listed() {
    let world = World::new(&["stage", "m1", "m2"]);
    let corrupt = TestImage::single("x", &[b"good layer"]);
    let flaky = TestImage::single("y", &[b"other layer"]);
    world.host("stage").seed("staging/foo", &corrupt, &[]);
    world.host("stage").seed("staging/bar", &flaky, &[]);
    world
        .host("stage")
        .seed_corrupt_blob("staging/foo", Digest::of(b"good layer"), b"evil layer");
    world.host("stage").break_manifest(flaky.digest());
    let m = manifest(
        "stage/staging",
        &["m1/prod", "m2/prod"],
        &[
            ("foo", vec![(corrupt.digest(), vec!["1.0"])]),
            ("bar", vec![(flaky.digest(), vec!["2.0"])]),
        ],
    );
    let mut state = world.state(&[m], true);
    plan::plan_edges(&mut state).await.expect("plan");
    let err = promote::run(&mut state).await.expect_err("failures");
    let text = err.to_string();
    assert!(
        text.contains(", 2 images not promoted (and 2 images that a rerun would promote): fix the source or the manifest; a rerun will not help; first: stage/staging/foo: blob "),
        "{text}"
    );
    assert!(
        text.contains("digest mismatch"),
        "the permanent root cause comes first: {text}"
    );
    assert!(!text.contains("rerun converges"), "{text}");
    let report = super::RunReport::of(&state, std::time::Duration::ZERO, Some(&err));
    let mut listed: Vec<(String, String)> = report
        .failed_images
        .iter()
        .map(|f| (f.image.clone(), f.class.to_string()))
        .collect();
    listed.sort();
    let at = |registry: &str, image: &str, digest: Digest| format!("{registry}/{image}@{digest}");
    assert_eq!(
        listed,
        [
            (at("m1/prod", "bar", flaky.digest()), "transient".to_string()),
            (at("m1/prod", "foo", corrupt.digest()), "permanent".to_string()),
            (at("m2/prod", "bar", flaky.digest()), "transient".to_string()),
            (at("m2/prod", "foo", corrupt.digest()), "permanent".to_string()),
        ]
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["failed_images"].as_array().map(Vec::len), Some(4));
    assert_eq!(json["failed_images"][0]["class"], "transient");
    assert_eq!(json["failed_images"][0]["tags"][0], "2.0");

    // Only transient failures: the rerun converges, and the message says so.
    let world = World::new(&["stage", "m1"]);
    world.host("stage").seed("staging/bar", &flaky, &[]);
    world.host("stage").break_manifest(flaky.digest());
    let m = manifest(
        "stage/staging",
        &["m1/prod"],
        &[("bar", vec![(flaky.digest(), vec!["2.0"])])],
    );
    let mut state = world.state(&[m], true);
    plan::plan_edges(&mut state).await.expect("plan");
    let err = promote::run(&mut state).await.expect_err("a 500");
    let text = err.to_string();
    assert!(
        text.starts_with("running image promotion: 3 operations failed (rerun converges); first: "),
        "{text}"
    );
    assert!(
        state
            .promote
            .failed
            .iter()
            .all(|f| f.failure.class() == crate::copy::Class::Transient),
        "{:?}",
        state.promote.failed
    );
}

#[tokio::test]
async fn dry_run_stops_after_validate_without_writing() {
    let world = World::new(&["stage", "m1"]);
    let img = TestImage::single("x", &[b"layer"]);
    world.host("stage").seed("staging/foo", &img, &[]);
    let m = foo_1_0(&["m1/prod"], img.digest());
    let mut state = world.state(&[m], false);
    plan::plan_edges(&mut state).await.expect("plan");
    run_phases(
        &mut state,
        &[
            Phase::Provenance,
            Phase::Validate,
            Phase::Promote,
            Phase::Sign,
            Phase::Attest,
        ],
    )
    .await
    .expect("dry run is a clean stop");
    let ran: Vec<&str> = state.phases.iter().map(|p| p.name).collect();
    assert_eq!(ran, ["provenance", "validate"]);
    assert_eq!(world.writes(), 0);
}

#[tokio::test]
async fn cancelled_run_stops_before_the_next_phase() {
    let world = World::new(&["stage", "m1"]);
    let img = TestImage::single("x", &[b"layer"]);
    world.host("stage").seed("staging/foo", &img, &[]);
    let m = foo_1_0(&["m1/prod"], img.digest());
    let mut state = world.state(&[m], true);
    plan::plan_edges(&mut state).await.expect("plan");
    state.cancel.cancel();
    let err = run_phases(&mut state, &[Phase::Validate, Phase::Promote])
        .await
        .expect_err("cancelled");
    assert!(err.to_string().contains("interrupted"), "{err}");
    assert_eq!(world.writes(), 0);
}

#[tokio::test]
async fn google_extended_listing_plans_with_one_request_per_repository() {
    let mut world = World::new(&["m1"]);
    world
        .hosts
        .insert("gcr".into(), Arc::new(MemoryRegistry::new("gcr").with_google_listing()));
    world
        .hosts
        .insert("ar".into(), Arc::new(MemoryRegistry::new("ar").with_google_listing()));
    let img = multi_arch();
    let other = TestImage::single("other", &[b"o"]);
    world.host("gcr").seed("staging/foo", &img, &[]);
    world.host("ar").seed("prod/foo", &other, &["0.9"]);
    let dmap = vec![(img.digest(), vec!["1.0"]), (img.children[0].digest(), vec![])];
    let m = manifest("gcr/staging", &["ar/prod", "m1/prod"], &[("foo", dmap)]);
    let mut state = world.state(&[m], true);
    plan::plan_edges(&mut state).await.expect("plan");
    assert_eq!(Counts::of(&state.decisions).copy, 4);
    assert_eq!(world.host("gcr").log(), ["GET tags staging/foo"]);
    assert_eq!(world.host("ar").log(), ["GET tags prod/foo"]);
    // The standard registry lists, then HEADs only the digests the manifests name.
    assert_eq!(world.host("m1").count("GET tags prod/foo"), 1);
    assert_eq!(world.host("m1").count("HEAD manifest prod/foo@"), 2);
    assert_eq!(world.host("m1").log().len(), 3);
}

#[tokio::test]
async fn non_distributable_layers_without_urls_are_copied_and_foreign_ones_are_not() {
    // The copier and the destination backend apply one rule (distribution's): the layout
    // mirror used to refuse the first image, whose non-distributable layer the copier
    // skipped although the layer names no `urls` to fetch it from.
    let world = World::new(&["stage"]).with_layout("mirror");
    let local = TestImage::with_non_distributable_layer("local", &[b"layer"]);
    let foreign = TestImage::with_foreign_layer("foreign", &[b"other layer"]);
    world.host("stage").seed("staging/local", &local, &[]);
    world.host("stage").seed("staging/foreign", &foreign, &[]);
    let m = manifest(
        "stage/staging",
        &["mirror/prod"],
        &[
            ("local", vec![(local.digest(), vec!["1.0"])]),
            ("foreign", vec![(foreign.digest(), vec!["1.0"])]),
        ],
    );
    let mut state = world.state(&[m], true);
    plan_and_promote(&mut state).await;
    let mirror = world.layout("mirror");
    for (repo, image) in [("prod/local", &local), ("prod/foreign", &foreign)] {
        let tagged = mirror
            .get_manifest(repo, &ManifestRef::Tag("1.0".into()))
            .await
            .unwrap();
        assert_eq!(tagged.as_ref(), Some(&image.manifest), "{repo}");
        for blob in &image.blobs {
            let size = mirror.blob_size(repo, &Digest::of(blob)).await.unwrap();
            assert_eq!(size, Some(blob.len() as u64), "{repo}: every required blob copied");
        }
    }
    assert_eq!(
        state.promote.counters.blobs_uploaded,
        (local.blobs.len() + foreign.blobs.len()) as u64,
        "the foreign layer, fetched from its urls, is not copied"
    );
}

#[tokio::test]
async fn an_oci_artifact_manifest_is_copied_with_its_blobs() {
    // OCI 1.0 artifact manifests list their content under `blobs`, which the copier's
    // graph reading used to ignore: the mirror got a manifest whose content was missing.
    let world = World::new(&["stage"]).with_layout("mirror");
    let sbom = TestImage::artifact("application/spdx+json", &[b"{\"spdxVersion\":\"SPDX-2.3\"}"]);
    world.host("stage").seed("staging/sbom", &sbom, &[]);
    let m = manifest(
        "stage/staging",
        &["mirror/prod"],
        &[("sbom", vec![(sbom.digest(), vec!["v1"])])],
    );
    plan_and_promote(&mut world.state(&[m], true)).await;
    let mirror = world.layout("mirror");
    let tagged = mirror
        .get_manifest("prod/sbom", &ManifestRef::Tag("v1".into()))
        .await
        .unwrap();
    assert_eq!(tagged.as_ref(), Some(&sbom.manifest));
    let blob = &sbom.blobs[0];
    assert_eq!(
        mirror.blob_size("prod/sbom", &Digest::of(blob)).await.unwrap(),
        Some(blob.len() as u64)
    );
}

/// A policy that lets alice promote anything but the `1.0` tag.
fn no_1_0_policy() -> crate::policy::Policy {
    crate::policy::parse(
        std::path::Path::new("policy.yaml"),
        "roles:\n  rm: [alice]\nrules:\n- name: rm-promote\n  effect: allow\n  roles: [rm]\n- name: no-1.0\n  effect: deny\n  tags: [\"1.0\"]\n",
    )
    .expect("policy")
}

#[tokio::test]
async fn a_denied_edge_refuses_the_plan_before_anything_is_written() {
    let world = World::new(&["stage", "m1"]);
    let img = multi_arch();
    world.host("stage").seed("staging/foo", &img, &[]);
    let dmap = vec![(img.digest(), vec!["1.0", "2.0"])];
    let m = manifest("stage/staging", &["m1/prod"], &[("foo", dmap)]);
    let mut state = world.state(&[m], true);
    state.policy = Some(no_1_0_policy());
    plan::plan_edges(&mut state).await.expect("the plan itself is clean");
    let err = run_phases(&mut state, &[Phase::Provenance, Phase::Validate, Phase::Promote])
        .await
        .unwrap_err();
    let Error::PolicyDenied { count, first } = &err else {
        panic!("{err}");
    };
    assert_eq!(*count, 1);
    assert_eq!(
        first, "m1/prod/foo:1.0: denied by rule 'no-1.0' (policy.yaml:7)",
        "the rule that denied it, with its position"
    );
    assert_eq!(state.policy_denied, 1);
    assert_eq!(world.writes(), 0);
    assert_eq!(world.plans.handed().len(), 1, "the plan is still reported");
}

#[tokio::test]
async fn every_shard_refuses_an_edge_the_policy_denies_whatever_the_evidence() {
    use crate::edges::shard::{Shard, partition};
    let world = World::new(&["stage", "m1"]);
    let (foo, bar) = (multi_arch(), TestImage::single("bar", &[b"bar layer"]));
    world.host("stage").seed("staging/foo", &foo, &[]);
    world.host("stage").seed("staging/bar", &bar, &[]);
    let m = manifest(
        "stage/staging",
        &["m1/prod"],
        &[
            ("foo", vec![(foo.digest(), vec!["1.0"])]),
            ("bar", vec![(bar.digest(), vec!["2.0"])]),
        ],
    );
    let edges = EdgeSet::from_manifests(std::slice::from_ref(&m));
    let shards = partition(&edges, 2);
    assert_ne!(shards[0], shards[1], "foo and bar are in different shards");
    let bar_shard = edges
        .edges()
        .iter()
        .zip(&shards)
        .find_map(|(e, s)| (edges.name(e.image) == "bar").then_some(*s))
        .expect("bar's edge");
    for index in 0..2 {
        let sink = Arc::new(MemorySink::default());
        let mut state = world.state(std::slice::from_ref(&m), true);
        state.options.shard = Some(Shard { index, count: 2 });
        state.options.audit = Some(Arc::new(AuditLog::new(sink.clone(), &[])));
        state.policy = Some(no_1_0_policy());
        let err = plan::plan_edges(&mut state).await.expect_err("denied in every shard");
        let Error::PolicyDenied { count, first } = &err else {
            panic!("shard {index}: {err}");
        };
        assert_eq!(*count, 1, "shard {index}");
        assert_eq!(first, "m1/prod/foo:1.0: denied by rule 'no-1.0' (policy.yaml:7)");
        assert_eq!(state.edges.len(), 2, "shard {index}: refused before the partition");
        let verdicts: Vec<(String, String)> = sink
            .records()
            .iter()
            .filter_map(|r| match &r.event {
                Event::Policy(p) => Some((p.edge.tag.clone(), p.effect.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(verdicts, [("1.0".to_string(), "deny".to_string())], "shard {index}");
    }
    assert_eq!(world.writes(), 0);

    // A denial that hinges on evidence (unknown before Provenance) is left to the shard
    // that owns the edge: the other shard plans its own edges and goes on.
    let evidence_deny = crate::policy::parse(
        std::path::Path::new("policy.yaml"),
        "rules:\n- name: all\n  effect: allow\n- name: unproven-1.0\n  effect: deny\n  tags: [\"1.0\"]\n  condition: '!provenance.verified'\n",
    )
    .expect("policy");
    let mut state = world.state(std::slice::from_ref(&m), true);
    state.options.shard = Some(Shard {
        index: bar_shard,
        count: 2,
    });
    state.policy = Some(evidence_deny);
    plan::plan_edges(&mut state).await.expect("no definite denial");
    assert_eq!(state.edges.len(), 1, "only bar, this shard's");
}

#[tokio::test]
async fn an_audited_run_records_every_write_and_every_verdict() {
    let world = World::new(&["stage", "m1"]);
    let img = multi_arch();
    world.host("stage").seed("staging/foo", &img, &[]);
    let dmap = vec![(img.digest(), vec!["2.0"]), (img.children[0].digest(), vec![])];
    let m = manifest("stage/staging", &["m1/prod"], &[("foo", dmap)]);
    let sink = Arc::new(MemorySink::default());
    let mut state = world.state(&[m], true);
    state.options.audit = Some(Arc::new(AuditLog::new(sink.clone(), &[])));
    state.policy = Some(no_1_0_policy());
    super::record::install(&mut state);
    plan::plan_edges(&mut state).await.expect("plan");
    run_phases(&mut state, &[Phase::Provenance, Phase::Validate, Phase::Promote])
        .await
        .expect("the policy allows every edge; promote");

    let records = sink.records();
    let mut audited: Vec<String> = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::Write(w) => {
                assert_eq!(w.result, "ok");
                Some(match w.kind {
                    WriteKind::Blob => format!("PUT blob {}@{}", w.repository, w.reference),
                    WriteKind::Tag => format!("PUT manifest {}:{}", w.repository, w.reference),
                    _ => format!("PUT manifest {}@{}", w.repository, w.reference),
                })
            }
            _ => None,
        })
        .collect();
    let mut seen = world.host("m1").writes();
    audited.sort();
    seen.sort();
    assert_eq!(
        audited, seen,
        "every write the registry saw is audited once, and nothing else"
    );
    assert!(!seen.is_empty());

    let verdicts: Vec<(String, String, Option<String>)> = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::Policy(p) => Some((p.edge.tag.clone(), p.effect.clone(), p.rule.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            (String::new(), "allow".into(), Some("rm-promote".into())),
            ("2.0".into(), "allow".into(), Some("rm-promote".into())),
        ]
    );
    let decisions = records.iter().filter(|r| matches!(r.event, Event::Decision(_))).count();
    assert_eq!(decisions, 2, "one record per edge to write");
    assert!(records.iter().all(|r| r.run_id == records[0].run_id));
}

/// A signer with a fresh key made by ring (not by the code under test).
pub(super) fn key_signer() -> crate::trust::Signer {
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &ring::rand::SystemRandom::new()).unwrap();
    let key = sigstore_sign::crypto::KeyPair::from_pkcs8_der(pkcs8.as_ref()).unwrap();
    let der = key.public_key_der().unwrap();
    let public = crate::trust::key::public_key_from_der(der.as_bytes()).unwrap();
    crate::trust::Signer::Key {
        key,
        public: Arc::new(public),
    }
}

/// A confirmed, signing run whose mirrors (`*/prod`) all serve `registry.example`.
pub(super) fn signing_state(world: &World, manifests: &[Manifest]) -> RunState {
    let mut state = world.state(manifests, true);
    state.options.sign = true;
    state.options.trust.max_ops = 4;
    state.options.trust.target.rewrites = vec![crate::trust::IdentityRewrite::parse("prod=registry.example").unwrap()];
    state.signer = Some(key_signer());
    state
}

/// The signature layers of `image` in `repo` of `host`, with their payloads.
fn signatures(world: &World, host: &str, repo: &str, image: Digest) -> Vec<(crate::trust::cosign::Payload, String)> {
    use crate::trust::cosign::{Payload, SIGNATURE_ANNOTATION, Signatures, signature_tag};
    let r = world.host(host).repo(repo);
    let Some(digest) = r.tags.get(&signature_tag(&image)) else {
        return Vec::new();
    };
    let sigs = Signatures::parse(&r.manifests[digest]).unwrap();
    sigs.layers
        .iter()
        .map(|l| {
            let payload = Payload::parse(&r.blobs[&l.digest]).unwrap();
            (payload, l.annotations[SIGNATURE_ANNOTATION].clone())
        })
        .collect()
}

#[tokio::test]
async fn every_promoted_digest_is_signed_once_at_the_canonical_destination() {
    let world = World::new(&["stage", "a-mirror", "b-mirror"]);
    let img = multi_arch();
    let loose = TestImage::single("loose", &[b"tagless"]);
    world.host("stage").seed("staging/foo", &img, &[]);
    world.host("stage").seed("staging/foo", &loose, &[]);
    let m = manifest(
        "stage/staging",
        &["b-mirror/prod", "a-mirror/prod"],
        &[("foo", vec![(img.digest(), vec!["1.0"]), (loose.digest(), vec![])])],
    );
    let mut state = signing_state(&world, std::slice::from_ref(&m));
    plan_and_promote(&mut state).await;
    run_phases(&mut state, &[Phase::Sign]).await.expect("sign");

    // Both mirrors serve one public name; a-mirror sorts first: the canonical
    // destination. The index, both children and the tagless image: one signature each.
    for digest in [
        img.digest(),
        img.children[0].digest(),
        img.children[1].digest(),
        loose.digest(),
    ] {
        let sigs = signatures(&world, "a-mirror", "prod/foo", digest);
        assert_eq!(sigs.len(), 1, "{digest}");
        assert_eq!(sigs[0].0.critical.identity.docker_reference, "registry.example/foo");
        assert_eq!(sigs[0].0.critical.image.docker_manifest_digest, digest.to_string());
        assert!(
            signatures(&world, "b-mirror", "prod/foo", digest).is_empty(),
            "not replicated"
        );
    }
    assert_eq!(state.signing.signed.iter().filter(|s| s.newly).count(), 4);

    // A rerun (nothing to copy) signs nothing again and writes nothing.
    world.clear_logs();
    let mut rerun = signing_state(&world, &[m]);
    rerun.signer = state.signer.take();
    plan_and_promote(&mut rerun).await;
    run_phases(&mut rerun, &[Phase::Sign]).await.expect("sign");
    assert_eq!(world.writes(), 0, "{:?}", world.host("a-mirror").writes());
    assert_eq!(rerun.signing.signed.iter().filter(|s| !s.newly).count(), 4);
}

#[tokio::test]
async fn staging_signatures_are_carried_and_replicated_with_ours() {
    let world = World::new(&["stage", "a-mirror", "b-mirror"]);
    let img = TestImage::single("x", &[b"layer"]);
    world.host("stage").seed("staging/foo", &img, &[]);
    // The builder signed the staging image with its own key.
    let builder = key_signer();
    let stage_repo = crate::copy::Repo {
        registry: world.host("stage"),
        path: "staging/foo".into(),
        display: "stage/staging/foo".into(),
    };
    let built = crate::trust::sign::sign_image(&builder, &stage_repo, &img.digest(), "builder/foo", None, "0")
        .await
        .unwrap();
    assert_eq!(built, crate::trust::sign::Outcome::Signed);
    let m = foo_1_0(&["a-mirror/prod", "b-mirror/prod"], img.digest());
    let mut state = signing_state(&world, &[m]);
    state.options.trust.replicate = true;
    plan_and_promote(&mut state).await;
    run_phases(&mut state, &[Phase::Sign]).await.expect("sign");
    for mirror in ["a-mirror", "b-mirror"] {
        let names: Vec<String> = signatures(&world, mirror, "prod/foo", img.digest())
            .into_iter()
            .map(|(p, _)| p.critical.identity.docker_reference)
            .collect();
        assert_eq!(
            names,
            ["builder/foo", "registry.example/foo"],
            "{mirror}: the builder's first, then ours"
        );
    }
    assert_eq!(state.signing.replicated, 1);
}

#[tokio::test]
async fn a_confirmed_run_without_a_signer_fails_in_setup() {
    let world = World::new(&["stage", "m1"]);
    let img = TestImage::single("x", &[b"layer"]);
    world.host("stage").seed("staging/foo", &img, &[]);
    let mut state = world.state(&[foo_1_0(&["m1/prod"], img.digest())], true);
    state.options.sign = true;
    let err = run_phases(&mut state, &[Phase::Setup]).await.expect_err("no signer");
    assert!(matches!(err, Error::NoSigner(_)), "{err}");
    assert!(err.to_string().contains("--sign=false"), "{err}");
    assert_eq!(world.writes(), 0);
}

/// A staged run: `canary` first, then the rest, each wave read back before the next.
fn staged(state: &mut RunState, canary: &str) {
    state.options.rollout.canaries = vec![canary.to_string()];
    state.waves = super::rollout::waves(&state.edges, &state.options.rollout).expect("waves");
}

#[tokio::test]
async fn a_healthy_canary_lets_every_wave_through_in_order() {
    let world = World::new(&["stage", "m1", "m2", "m3"]);
    let img = multi_arch();
    world.host("stage").seed("staging/foo", &img, &["1.0"]);
    let mut state = world.state(&[foo_1_0(&["m1/prod", "m2/prod", "m3/prod"], img.digest())], true);
    staged(&mut state, "m2");
    plan_and_promote(&mut state).await;

    for host in ["m1", "m2", "m3"] {
        assert_eq!(world.host(host).repo("prod/foo").tags["1.0"], img.digest(), "{host}");
    }
    let report = state.rollout.as_ref().expect("rollout report");
    let waves: Vec<(&Vec<String>, &str)> = report
        .waves
        .iter()
        .map(|w| (&w.registries, w.verdict.as_str()))
        .collect();
    assert_eq!(
        waves,
        [
            (&vec!["m2/prod".to_string()], "passed"),
            (
                &vec!["m1/prod".to_string(), "m3/prod".to_string()],
                "not read back: last wave, nothing left to gate"
            )
        ]
    );
    assert_eq!(report.waves[1].images, 0, "nothing left to gate after the last wave");
    // Read back: the index, its two children, every blob (HEAD, or GET when sampled).
    assert_eq!(report.waves[0].manifests_verified, 3);
    let wave = &report.waves[0];
    assert_eq!(wave.blobs_headed + wave.blobs_read, img.all_blobs().len());
    assert!(report.stopped.is_none() && report.untouched.is_empty());
    // The canary was read back (GETs of its manifests) before m1 saw any write.
    let canary_reads = world.host("m2").count("GET manifest");
    assert!(canary_reads >= 3, "{:#?}", world.host("m2").log());
    for host in ["m1", "m3"] {
        assert_eq!(world.host(host).count("GET manifest"), 0, "{host}: not read back");
    }
}

#[tokio::test]
async fn a_canary_that_does_not_serve_what_it_took_stops_the_rollout() {
    let world = World::new(&["stage", "m1", "m2", "m3"]);
    let img = multi_arch();
    world.host("stage").seed("staging/foo", &img, &["1.0"]);
    let mut state = world.state(&[foo_1_0(&["m1/prod", "m2/prod", "m3/prod"], img.digest())], true);
    staged(&mut state, "m2");
    // The canary takes the child's PUT, then fails every GET of it.
    world.host("m2").break_manifest(img.children[1].digest());
    plan::plan_edges(&mut state).await.expect("plan");
    let err = promote::run(&mut state).await.expect_err("the gate closes");

    let text = err.to_string();
    assert!(
        matches!(&err, Error::RolloutStopped(s) if s.wave == 1 && s.waves == 2),
        "{text}"
    );
    assert!(text.contains("rollout stopped after wave 1 of 2 (m2/prod)"), "{text}");
    assert!(text.contains("not written: m1/prod, m3/prod"), "{text}");
    assert!(
        text.contains(&format!("m2/prod/foo@{}", img.children[1].digest())),
        "{text}"
    );
    assert_eq!(world.host("m1").writes(), Vec::<String>::new());
    assert_eq!(world.host("m3").writes(), Vec::<String>::new());
    let report = state.rollout.as_ref().expect("rollout report");
    assert_eq!(report.untouched, ["m1/prod", "m3/prod"]);
    assert_eq!(report.waves.len(), 1);
    assert_eq!(report.waves[0].problems.len(), 1, "{:?}", report.waves[0].problems);
}

#[tokio::test]
async fn rollback_deletes_only_what_the_failed_wave_created() {
    let world = World::new(&["stage", "m1", "m2"]);
    let img = multi_arch();
    let old = TestImage::single("amd64", &[b"old layer"]);
    let kept = TestImage::single("amd64", &[b"kept layer"]);
    world.host("stage").seed("staging/foo", &img, &["1.0"]);
    world.host("stage").seed("staging/foo", &kept, &[]);
    // Before the run the canary holds `old` (0.9) and `kept` untagged.
    world.host("m2").seed("prod/foo", &old, &["0.9"]);
    world.host("m2").seed("prod/foo", &kept, &[]);
    let dmap = vec![(img.digest(), vec!["1.0"]), (kept.digest(), vec!["stable"])];
    let m = manifest("stage/staging", &["m1/prod", "m2/prod"], &[("foo", dmap)]);
    let mut state = world.state(&[m], true);
    staged(&mut state, "m2");
    state.options.rollout.rollback_on_failure = true;
    let sink = Arc::new(MemorySink::default());
    state.options.audit = Some(Arc::new(AuditLog::new(sink.clone(), &[])));
    super::record::install(&mut state);
    world.host("m2").break_manifest(img.children[0].digest());
    plan::plan_edges(&mut state).await.expect("plan");
    promote::run(&mut state)
        .await
        .expect_err("the canary fails its read-back");

    let repo = world.host("m2").repo("prod/foo");
    assert!(
        !repo.manifests.contains_key(&img.digest()),
        "created by the run: deleted"
    );
    assert!(!repo.tags.contains_key("1.0"), "its tag went with it");
    assert_eq!(repo.tags["0.9"], old.digest(), "existed before: untouched");
    assert_eq!(repo.tags["stable"], kept.digest(), "a retag is left in place");
    assert!(repo.manifests.contains_key(&kept.digest()));
    let rollback = state
        .rollout
        .as_ref()
        .and_then(|r| r.rollback.as_ref())
        .expect("rollback report");
    assert_eq!(rollback.deleted, [format!("m2/prod/foo@{}", img.digest())]);
    assert_eq!(rollback.tags_left, ["m2/prod/foo:stable"]);
    assert!(rollback.failed.is_empty());
    let deletes: Vec<String> = world
        .host("m2")
        .log()
        .into_iter()
        .filter(|l| l.starts_with("DELETE"))
        .collect();
    assert_eq!(deletes, [format!("DELETE manifest prod/foo@{}", img.digest())]);
    let audited: Vec<(String, String)> = sink
        .records()
        .into_iter()
        .filter_map(|r| match r.event {
            Event::Write(w) if w.kind == WriteKind::ManifestDeletion => Some((w.repository, w.reference)),
            _ => None,
        })
        .collect();
    assert_eq!(
        audited,
        [("prod/foo".to_string(), img.digest().to_string())],
        "every deletion is audited"
    );
    assert_eq!(
        world.host("m1").writes(),
        Vec::<String>::new(),
        "the second wave never started"
    );
}

#[tokio::test]
async fn signing_writes_are_audited_as_signatures() {
    let world = World::new(&["stage", "m1"]);
    let img = TestImage::single("amd64", &[b"one layer"]);
    world.host("stage").seed("staging/foo", &img, &[]);
    let m = foo_1_0(&["m1/prod"], img.digest());
    let sink = Arc::new(MemorySink::default());
    let mut state = signing_state(&world, &[m]);
    state.options.audit = Some(Arc::new(AuditLog::new(sink.clone(), &[])));
    super::record::install(&mut state);
    plan_and_promote(&mut state).await;
    run_phases(&mut state, &[Phase::Sign]).await.expect("sign");

    let kinds: Vec<WriteKind> = sink
        .records()
        .into_iter()
        .filter_map(|r| match r.event {
            Event::Write(w) => Some(w.kind),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == WriteKind::Signature).count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.len(),
        world.host("m1").writes().len(),
        "the Sign phase's writes go through the audited backends too"
    );
}
