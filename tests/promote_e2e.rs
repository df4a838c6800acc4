//! End to end: the built `kpromo cip --thin-manifest-dir DIR --confirm` binary promotes
//! between real CNCF distribution registries on 127.0.0.1 (staging + 3 mirrors, started
//! by tests/support), with images the tests generate and push with the harness's own
//! client. Results are checked with skopeo (an independent client) and, where request
//! counts matter, through the harness's recording proxy rather than kpromo's own stats.
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::images::{Blob, Format, Image, Index};
use support::{FaultProxy, RateLimitFront, RegistryOptions, TestRegistry, within};

/// (image name, [(digest, tags)]) as in an images.yaml.
type ImageSpec<'a> = (&'a str, Vec<(&'a str, Vec<&'a str>)>);

/// A staging registry and three mirrors, each mirror behind a recording proxy.
struct Bed {
    staging: TestRegistry,
    /// Records every request kpromo sends to staging.
    staging_proxy: FaultProxy,
    mirrors: Vec<TestRegistry>,
    proxies: Vec<FaultProxy>,
    dir: tempfile::TempDir,
}

impl Bed {
    fn start() -> Bed {
        let staging = TestRegistry::start(RegistryOptions::plain());
        let staging_proxy = FaultProxy::start(staging.port());
        let mirrors: Vec<TestRegistry> = (0..3).map(|_| TestRegistry::start(RegistryOptions::plain())).collect();
        let proxies = mirrors.iter().map(|m| FaultProxy::start(m.port())).collect();
        Bed {
            staging,
            staging_proxy,
            mirrors,
            proxies,
            dir: support::shm_tempdir("kpromo-promote-"),
        }
    }

    /// The manifest registry name of staging (through its proxy).
    fn src(&self) -> String {
        format!("{}/staging", self.staging_proxy.host())
    }

    /// The manifest registry names of the mirrors (through their proxies).
    fn dsts(&self) -> Vec<String> {
        self.proxies.iter().map(|p| format!("{}/prod", p.host())).collect()
    }

    /// Writes `manifests/<project>/promoter-manifest.yaml` and its `images.yaml`.
    fn write_project(&self, project: &str, src: &str, dsts: &[String], images: &[ImageSpec]) {
        let root = self.dir.path();
        let mut registries = format!("registries:\n- name: {src}\n  src: true\n");
        for d in dsts {
            registries.push_str(&format!("- name: {d}\n"));
        }
        let mut yaml = String::new();
        for (name, dmap) in images {
            yaml.push_str(&format!("- name: {name}\n  dmap:\n"));
            for (digest, tags) in dmap {
                let tags: Vec<String> = tags.iter().map(|t| format!("\"{t}\"")).collect();
                yaml.push_str(&format!("    \"{digest}\": [{}]\n", tags.join(", ")));
            }
        }
        for (sub, file, body) in [
            ("manifests", "promoter-manifest.yaml", &registries),
            ("images", "images.yaml", &yaml),
        ] {
            let dir = root.join(sub).join(project);
            std::fs::create_dir_all(&dir).expect("create thin manifest dir");
            std::fs::write(dir.join(file), body).expect("write thin manifest");
        }
    }

    fn clear_seen(&self) {
        self.staging_proxy.clear_seen();
        self.proxies.iter().for_each(FaultProxy::clear_seen);
    }

    /// Write requests (PUT, POST, PATCH, DELETE) the mirrors received.
    fn mirror_writes(&self) -> usize {
        self.proxies
            .iter()
            .flat_map(|p| p.seen())
            .filter(|s| matches!(s.method.as_str(), "PUT" | "POST" | "PATCH" | "DELETE"))
            .count()
    }
}

/// One `kpromo cip` run.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    summary: serde_json::Value,
}

fn kpromo(dir: &Path, extra: &[&str]) -> Run {
    let summary_path: PathBuf = dir.join("summary.json");
    let _ = std::fs::remove_file(&summary_path);
    let output = Command::new(env!("CARGO_BIN_EXE_kpromo"))
        .arg("cip")
        .arg("--thin-manifest-dir")
        .arg(dir)
        .arg("--summary-json")
        .arg(&summary_path)
        .args(extra)
        .output()
        .expect("run the kpromo binary");
    let summary = std::fs::read(&summary_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null);
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        summary,
    }
}

fn confirm(bed: &Bed) -> Run {
    kpromo(bed.dir.path(), &["--confirm"])
}

impl Run {
    fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    fn num(&self, path: &[&str]) -> u64 {
        let mut v = &self.summary;
        for p in path {
            v = &v[*p];
        }
        v.as_u64()
            .unwrap_or_else(|| panic!("summary {path:?} missing: {}", self.summary))
    }
}

/// `host/repo:tag` digest as skopeo reads it.
fn digest_at(registry: &TestRegistry, reference: &str) -> Option<String> {
    support::skopeo::digest_of(&format!("{}/{reference}", registry.host()), None)
}

/// The staging world most tests start from: an OCI multi-arch index with a shared base
/// layer and one bigger layer, a Docker manifest list, and a single image.
struct Fixtures {
    multi: Index,
    list: Index,
    single: Image,
}

async fn push_fixtures(bed: &Bed) -> Fixtures {
    let base = Blob::random(11, 256 * 1024);
    let big = Blob::big(12, 24 * 1024 * 1024);
    let mut multi = Index::multi_arch(Format::Oci, 1, &["amd64", "arm64/v8"], Some(&base));
    multi.children[0] = Image::new(Format::Oci, 21, "amd64", vec![base.clone(), big]);
    let multi = Index::new(Format::Oci, multi.children);
    let list = Index::multi_arch(Format::Docker, 2, &["amd64", "s390x"], Some(&base));
    let single = Image::simple(Format::Oci, 3);
    let pusher = bed.staging.pusher();
    within(120, "push fixtures to staging", async {
        pusher.push_index("staging/foo", &multi, &["1.0"]).await;
        pusher.push_index("staging/bar", &list, &[]).await;
        pusher.push_image("staging/baz", &single, &[]).await;
    })
    .await;
    Fixtures { multi, list, single }
}

fn standard_project(bed: &Bed, f: &Fixtures) {
    bed.write_project(
        "p",
        &bed.src(),
        &bed.dsts(),
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
    let bed = Bed::start();
    let f = push_fixtures(&bed).await;
    standard_project(&bed, &f);

    // Dry run: prints the plan, writes nothing.
    let dry = kpromo(bed.dir.path(), &[]);
    dry.expect_code(0);
    assert!(dry.stdout.contains("copy"), "{}", dry.stdout);
    assert_eq!(bed.mirror_writes(), 0, "a dry run must not write");

    bed.clear_seen();
    confirm(&bed).expect_code(0);
    for mirror in &bed.mirrors {
        assert_eq!(digest_at(mirror, "prod/foo:1.0"), Some(f.multi.digest.clone()));
        assert_eq!(digest_at(mirror, "prod/foo:latest"), Some(f.multi.digest.clone()));
        for child in &f.multi.children {
            let raw = mirror.skopeo_raw(&format!("prod/foo@{}", child.digest));
            assert_eq!(raw.as_deref(), Some(&child.manifest[..]), "child {}", child.digest);
        }
        assert_eq!(digest_at(mirror, "prod/bar:2.0"), Some(f.list.digest.clone()));
        assert_eq!(
            digest_at(mirror, &format!("prod/baz@{}", f.single.digest)),
            Some(f.single.digest.clone())
        );
        assert_eq!(mirror.skopeo_tags("prod/foo"), ["1.0", "latest"]);
    }
    // Every blob read from staging once, whatever the number of mirrors.
    let blob_gets = bed.staging_proxy.count("GET", r"/blobs/sha256:");
    assert_eq!(blob_gets, distinct_blobs(&f), "source blob GETs");

    bed.clear_seen();
    let rerun = confirm(&bed);
    rerun.expect_code(0);
    assert_eq!(bed.mirror_writes(), 0, "rerun must not write");
    assert_eq!(bed.staging_proxy.count("GET", r"/blobs/"), 0);
    assert_eq!(rerun.num(&["decisions", "copy"]), 0);
    assert_eq!(rerun.num(&["write_requests"]), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retag_then_tag_move_refused_with_nothing_written() {
    let bed = Bed::start();
    let f = push_fixtures(&bed).await;
    let project = |tags: Vec<&str>, other: Vec<(&str, Vec<&str>)>| {
        let mut dmap = vec![(f.multi.digest.as_str(), tags)];
        dmap.extend(other);
        bed.write_project("p", &bed.src(), &bed.dsts(), &[("foo", dmap)]);
    };
    project(vec!["1.0"], vec![]);
    confirm(&bed).expect_code(0);

    // Retag: the digest is there, only the new tag is written.
    project(vec!["1.0", "stable"], vec![]);
    bed.clear_seen();
    let retag = confirm(&bed);
    retag.expect_code(0);
    assert_eq!(retag.num(&["decisions", "retag"]), 3);
    assert_eq!(retag.num(&["blobs_uploaded"]), 0);
    assert_eq!(bed.staging_proxy.count("GET", r"/blobs/"), 0);
    for (mirror, proxy) in bed.mirrors.iter().zip(&bed.proxies) {
        assert_eq!(digest_at(mirror, "prod/foo:stable"), Some(f.multi.digest.clone()));
        assert_eq!(proxy.count("PUT", r"/manifests/stable$"), 1);
        assert_eq!(proxy.count("PUT", r"/manifests/"), 1, "only the tag");
    }

    // Tag move: 1.0 now claimed by another digest; refused before anything is written.
    bed.write_project(
        "p",
        &bed.src(),
        &bed.dsts(),
        &[("foo", vec![(f.list.digest.as_str(), vec!["1.0"])])],
    );
    bed.staging.pusher().push_index("staging/foo", &f.list, &[]).await;
    bed.clear_seen();
    let moved = confirm(&bed);
    moved.expect_code(1);
    assert!(moved.stderr.contains("tag move"), "{}", moved.stderr);
    assert!(moved.stdout.contains("TAG MOVE"), "{}", moved.stdout);
    assert_eq!(bed.mirror_writes(), 0);
    for mirror in &bed.mirrors {
        assert_eq!(digest_at(mirror, "prod/foo:1.0"), Some(f.multi.digest.clone()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlap_is_refused_with_exit_2_and_lost_is_reported() {
    let bed = Bed::start();
    let f = push_fixtures(&bed).await;
    let dsts = bed.dsts();
    bed.write_project(
        "a",
        &bed.src(),
        &dsts,
        &[("foo", vec![(f.multi.digest.as_str(), vec!["1.0"])])],
    );
    bed.write_project(
        "b",
        &bed.src(),
        &dsts,
        &[("foo", vec![(f.list.digest.as_str(), vec!["1.0"])])],
    );
    let overlap = confirm(&bed);
    overlap.expect_code(2);
    assert!(overlap.stderr.contains("overlapping"), "{}", overlap.stderr);
    assert_eq!(bed.mirror_writes(), 0);
    assert_eq!(
        bed.proxies[0].seen().len(),
        0,
        "overlaps are found before any registry read"
    );

    // _LOST_: a digest staging never had. Reported, exit 0, the rest promoted.
    std::fs::remove_dir_all(bed.dir.path().join("manifests/b")).expect("drop project b");
    std::fs::remove_dir_all(bed.dir.path().join("images/b")).expect("drop project b");
    let ghost = Image::simple(Format::Oci, 99);
    bed.write_project(
        "a",
        &bed.src(),
        &dsts,
        &[(
            "foo",
            vec![
                (f.multi.digest.as_str(), vec!["1.0"]),
                (ghost.digest.as_str(), vec!["9.9"]),
            ],
        )],
    );
    let lost = confirm(&bed);
    lost.expect_code(0);
    assert!(lost.stderr.contains("_LOST_"), "{}", lost.stderr);
    assert_eq!(lost.num(&["decisions", "lost"]), 3);
    assert_eq!(digest_at(&bed.mirrors[0], "prod/foo:1.0"), Some(f.multi.digest.clone()));
    assert!(!bed.mirrors[0].skopeo_tags("prod/foo").contains(&"9.9".to_string()));

    let strict = kpromo(bed.dir.path(), &["--confirm", "--fail-on-lost"]);
    strict.expect_code(1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_with_some_blobs_gets_only_the_rest() {
    let bed = Bed::start();
    let f = push_fixtures(&bed).await;
    // Mirror 0 already has the shared base layer and the amd64 image.
    let amd64 = &f.multi.children[0];
    bed.mirrors[0].pusher().push_image("prod/foo", amd64, &[]).await;
    bed.write_project(
        "p",
        &bed.src(),
        &bed.dsts(),
        &[("foo", vec![(f.multi.digest.as_str(), vec!["1.0"])])],
    );
    let run = confirm(&bed);
    run.expect_code(0);
    let uploads_of = |digest: &str| {
        bed.proxies[0]
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
        bed.proxies[0].count("PUT", &format!("/manifests/{}$", amd64.digest)),
        0,
        "present child not pushed again"
    );
    for mirror in &bed.mirrors {
        assert_eq!(digest_at(mirror, "prod/foo:1.0"), Some(f.multi.digest.clone()));
    }
    assert!(run.num(&["blobs_present"]) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_registry_destination_is_mounted() {
    let bed = Bed::start();
    let f = push_fixtures(&bed).await;
    // The destination is another repository path on the staging registry itself.
    let same = format!("{}/prod", bed.staging_proxy.host());
    bed.write_project(
        "p",
        &bed.src(),
        &[same],
        &[("foo", vec![(f.multi.digest.as_str(), vec!["1.0"])])],
    );
    let run = confirm(&bed);
    run.expect_code(0);
    assert!(run.num(&["blobs_mounted"]) > 0);
    assert_eq!(run.num(&["blobs_uploaded"]), 0);
    assert_eq!(bed.staging_proxy.count("GET", r"/blobs/"), 0, "no blob bytes read");
    assert_eq!(digest_at(&bed.staging, "prod/foo:1.0"), Some(f.multi.digest.clone()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_mirror_still_converges() {
    let bed = Bed::start();
    let f = push_fixtures(&bed).await;
    // Mirror 2 sits behind nginx answering 429 (Retry-After: 1) above 5 req/s.
    let front = RateLimitFront::start(bed.mirrors[2].port(), 5, 5, 1);
    let mut dsts = bed.dsts();
    dsts[2] = format!("{}/prod", front.host());
    bed.write_project(
        "p",
        &bed.src(),
        &dsts,
        &[
            ("foo", vec![(f.multi.digest.as_str(), vec!["1.0"])]),
            ("bar", vec![(f.list.digest.as_str(), vec!["2.0"])]),
        ],
    );
    let run = within(180, "promotion through a 429 front", async { confirm(&bed) }).await;
    run.expect_code(0);
    assert!(front.rejected() > 0, "the front must have throttled");
    assert!(run.num(&["retries"]) > 0, "retries reported in the summary");
    for mirror in &bed.mirrors {
        assert_eq!(digest_at(mirror, "prod/foo:1.0"), Some(f.multi.digest.clone()));
        assert_eq!(digest_at(mirror, "prod/bar:2.0"), Some(f.list.digest.clone()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_mirror_fails_with_exit_1_and_rerun_converges() {
    let mut bed = Bed::start();
    let f = push_fixtures(&bed).await;
    standard_project(&bed, &f);
    bed.mirrors[1].stop();
    let failed = within(240, "promotion with a dead mirror", async { confirm(&bed) }).await;
    failed.expect_code(1);
    assert!(
        failed.stderr.contains(&bed.proxies[1].host()),
        "the error names the registry: {}",
        failed.stderr
    );
    bed.mirrors[1].restart();
    confirm(&bed).expect_code(0);
    for mirror in &bed.mirrors {
        assert_eq!(digest_at(mirror, "prod/foo:1.0"), Some(f.multi.digest.clone()));
    }
}
