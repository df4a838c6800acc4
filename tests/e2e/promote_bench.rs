//! Promotion benchmark (run by `scripts/bench-promote.sh`, ignored in normal test runs):
//! a world like the test bed's (about 600 tags, 1.8 GB, registries on /dev/shm), then
//! kpromo → 1 mirror and → 3 mirrors, each followed by a no-op rerun, `skopeo sync` doing
//! the same (one sync per mirror, in parallel), and the ingest limits (the harness's plain
//! pusher writing the same world into one, and into three empty registries at once).
//! Prints figures and ratios, comparing like with like (a 3-mirror no-op with skopeo's
//! 3-mirror no-op); asserts only correctness (digests equal, each source byte read once,
//! no writes on a rerun), never timings.
//!
//! Scale with `BENCH_BIG_MB` (total size of the big layers, default 1700),
//! `BENCH_SKOPEO=0` to skip the skopeo runs, and `BENCH_RATE` (kpromo's per-host
//! request rate, default 5000/s on loopback; the production default is 50).
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use futures_util::{StreamExt, stream};

use crate::support;
use crate::support::images::{Blob, Format, Image, Index};
use crate::support::{Pusher, RegistryOptions, TestRegistry, within};

const ARCHS: [&str; 3] = ["amd64", "arm64/v8", "ppc64le"];

/// One thing to push and promote: `project/image` with tags.
pub(crate) enum Item {
    Index(Index),
    Image(Image),
}

impl Item {
    fn digest(&self) -> &str {
        match self {
            Item::Index(i) => &i.digest,
            Item::Image(i) => &i.digest,
        }
    }

    fn blobs(&self) -> Vec<&Blob> {
        match self {
            Item::Index(i) => i.children.iter().flat_map(|c| c.blobs()).collect(),
            Item::Image(i) => i.blobs().collect(),
        }
    }
}

pub(crate) struct Entry {
    project: String,
    image: String,
    item: Item,
    tags: Vec<String>,
}

/// The test bed's "small set" plus its big layers (see the module docs).
pub(crate) fn world(big_mb: u64) -> Vec<Entry> {
    let mut out = Vec::new();
    let bases: Vec<Blob> = (0..3).map(|a| Blob::random(1000 + a, 900 * 1024)).collect();
    let mut seed = 10_000;
    let mut next = || {
        seed += 1;
        seed
    };
    for p in 0..4 {
        for i in 0..10 {
            let format = if i % 5 == 4 { Format::Docker } else { Format::Oci };
            for v in 0..5 {
                let children = ARCHS
                    .iter()
                    .enumerate()
                    .map(|(a, arch)| {
                        let s = next();
                        let own: Vec<Blob> = (0..1 + s % 3)
                            .map(|k| Blob::random(s * 10 + k, 4096 << (s % 5)))
                            .collect();
                        let mut layers = vec![bases[a].clone()];
                        layers.extend(own);
                        Image::new(format, s, arch, layers)
                    })
                    .collect();
                let mut tags = vec![format!("v1.{v}.0")];
                if v == 4 {
                    tags.extend(["latest".to_string(), "v1".to_string()]);
                }
                out.push(Entry {
                    project: format!("proj{p:02}"),
                    image: format!("img{i:03}"),
                    item: Item::Index(Index::new(format, children)),
                    tags,
                });
            }
        }
    }
    for t in 0..300 {
        out.push(Entry {
            project: "many".into(),
            image: "tags".into(),
            item: Item::Image(Image::simple(Format::Oci, next())),
            tags: vec![format!("t{t:04}")],
        });
    }
    for s in 0..10 {
        out.push(Entry {
            project: "single".into(),
            image: format!("img{s:02}"),
            item: Item::Image(Image::simple(Format::Oci, next())),
            tags: vec!["v1".into()],
        });
    }
    let per_layer = big_mb * 1024 * 1024 / (8 * ARCHS.len() as u64);
    for b in 0..8u64 {
        let children = ARCHS
            .iter()
            .map(|arch| {
                let s = next();
                // 50 % to 150 % of the mean, so layers differ in size as in the test bed.
                let size = per_layer / 2 + (s * 7919 % 100) * per_layer / 100;
                Image::new(Format::Oci, s, arch, vec![Blob::big(s, size.max(1))])
            })
            .collect();
        out.push(Entry {
            project: "big".into(),
            image: format!("big{b}"),
            item: Item::Index(Index::new(Format::Oci, children)),
            tags: vec!["v1.0.0".into()],
        });
    }
    out
}

pub(crate) async fn push_world(pusher: &Pusher, prefix: &str, world: &[Entry]) {
    stream::iter(world)
        .for_each_concurrent(8, |e| async move {
            let repo = format!("{prefix}/{}/{}", e.project, e.image);
            let tags: Vec<&str> = e.tags.iter().map(String::as_str).collect();
            match &e.item {
                Item::Index(i) => {
                    pusher.push_index(&repo, i, &tags).await;
                }
                Item::Image(i) => {
                    pusher.push_image(&repo, i, &tags).await;
                }
            }
        })
        .await;
}

pub(crate) fn write_manifests(dir: &Path, world: &[Entry], src: &str, dsts: &[String]) {
    let _ = std::fs::remove_dir_all(dir);
    // project -> image -> dmap lines
    let mut projects: BTreeMap<&str, BTreeMap<&str, Vec<String>>> = BTreeMap::new();
    for e in world {
        let tags: Vec<String> = e.tags.iter().map(|t| format!("\"{t}\"")).collect();
        projects
            .entry(&e.project)
            .or_default()
            .entry(&e.image)
            .or_default()
            .push(format!("    \"{}\": [{}]", e.item.digest(), tags.join(", ")));
    }
    for (project, images) in projects {
        let mut yaml = String::new();
        for (name, lines) in images {
            yaml.push_str(&format!("- name: {name}\n  dmap:\n{}\n", lines.join("\n")));
        }
        let mut registries = format!("registries:\n- name: {src}/{project}\n  src: true\n");
        for d in dsts {
            registries.push_str(&format!("- name: {d}/{project}\n"));
        }
        for (sub, file, body) in [
            ("manifests", "promoter-manifest.yaml", &registries),
            ("images", "images.yaml", &yaml),
        ] {
            let d = dir.join(sub).join(project);
            std::fs::create_dir_all(&d).expect("create manifest dir");
            std::fs::write(d.join(file), body).expect("write manifest");
        }
    }
}

/// Wall seconds and peak RSS (KiB) of a command, measured by GNU time.
pub(crate) fn timed(what: &str, command: &mut Command, scratch: &Path) -> (f64, u64) {
    let out = scratch.join("time.txt");
    let program = command.get_program().to_owned();
    let args: Vec<_> = command.get_args().map(|a| a.to_owned()).collect();
    let started = Instant::now();
    let output = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%e %M %U %S")
        .arg("-o")
        .arg(&out)
        .arg(program)
        .args(args)
        .output()
        .expect("run /usr/bin/time");
    let wall = started.elapsed().as_secs_f64();
    assert!(
        output.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let fields: Vec<&str> = text.split_whitespace().collect();
    let rss: u64 = fields.get(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let cpu: f64 = fields[2.min(fields.len())..]
        .iter()
        .filter_map(|s| s.parse::<f64>().ok())
        .sum();
    println!(
        "{what:<40} {wall:>8.2} s   peak RSS {:>6} MB   CPU {cpu:>6.1} s",
        rss / 1024
    );
    (wall, rss)
}

/// CPU seconds used so far by these registries' processes.
fn registries_cpu(registries: &[&TestRegistry]) -> f64 {
    registries
        .iter()
        .map(|r| support::cpu_seconds(&r.pid().expect("running registry").to_string()))
        .sum()
}

pub(crate) fn kpromo(dir: &Path, summary: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kpromo"));
    // Loopback registries: lift the production per-host cap (50 req/s, Go's AR budget)
    // so the figures measure kpromo, not the limiter. `BENCH_RATE` overrides.
    let rate = std::env::var("BENCH_RATE").unwrap_or_else(|_| "5000".into());
    c.args([
        "cip",
        "--confirm",
        // Promotion alone; signing has its own benchmark.
        "--sign=false",
        "--log-level",
        "warn",
        "--registry-rate-limit",
        &rate,
    ])
    .args(["--registry-burst", "500", "--thin-manifest-dir"])
    .arg(dir)
    .arg("--summary-json")
    .arg(summary);
    c
}

/// Reruns kpromo on an already promoted world: asserts it writes nothing, prints its
/// request count, returns its wall time.
fn noop_rerun(what: &str, dir: &Path, summary_path: &Path, scratch: &Path) -> f64 {
    let (wall, _) = timed(what, &mut kpromo(dir, summary_path), scratch);
    let s = summary(summary_path);
    assert_eq!(s["write_requests"].as_u64(), Some(0), "a no-op rerun writes nothing");
    let requests: u64 = s["registries"]
        .as_object()
        .map(|r| {
            r.values()
                .flat_map(|v| v["requests"].as_object().into_iter().flat_map(|m| m.values()))
                .filter_map(|n| n.as_u64())
                .sum()
        })
        .unwrap_or(0);
    println!("{:<40} {requests:>8} requests", "");
    wall
}

pub(crate) fn summary(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("summary")).expect("summary JSON")
}

/// A shell script syncing the world from `src` to `dst` with skopeo. skopeo sync keeps
/// only the basename of each repository, so it syncs project by project.
fn skopeo_sync(world: &[Entry], src: &TestRegistry, dst: &TestRegistry, scratch: &Path) -> String {
    let mut projects: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for e in world {
        projects.entry(&e.project).or_default().insert(&e.image);
    }
    let mut script = String::new();
    for (project, images) in projects {
        let yaml_path = scratch.join(format!("sync-{project}-{}.yaml", dst.port()));
        let mut yaml = format!("{}:\n  tls-verify: false\n  images:\n", src.host());
        for image in images {
            yaml.push_str(&format!("    staging/{project}/{image}: []\n"));
        }
        std::fs::write(&yaml_path, yaml).expect("write skopeo sync yaml");
        script.push_str(&format!(
            "skopeo sync --all --preserve-digests --dest-tls-verify=false --src yaml --dest docker {} {}/prod/{project} >/dev/null && ",
            yaml_path.display(),
            dst.host()
        ));
    }
    script.push_str("true");
    script
}

fn bash(script: String) -> Command {
    let mut c = Command::new("bash");
    c.arg("-c").arg(script);
    c
}

pub(crate) fn check_mirror(world: &[Entry], mirror: &TestRegistry) {
    for e in world.iter().step_by(7) {
        let tag = &e.tags[0];
        let digest =
            support::skopeo::digest_of(&format!("{}/prod/{}/{}:{tag}", mirror.host(), e.project, e.image), None);
        assert_eq!(
            digest.as_deref(),
            Some(e.item.digest()),
            "{}/{}:{tag}",
            e.project,
            e.image
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run scripts/bench-promote.sh"]
async fn bench_promote() {
    support::install_crypto_provider();
    let big_mb: u64 = std::env::var("BENCH_BIG_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1700);
    let with_skopeo = std::env::var("BENCH_SKOPEO").map_or(true, |v| v != "0");
    let scratch = support::shm_tempdir("kpromo-bench-");
    let dir = scratch.path().join("manifests-tree");
    let summary_path = scratch.path().join("summary.json");

    let world = world(big_mb);
    let mut blobs: BTreeMap<&str, u64> = BTreeMap::new();
    for e in &world {
        for b in e.item.blobs() {
            blobs.insert(&b.digest, b.size);
        }
    }
    let world_bytes: u64 = blobs.values().sum();
    let tags: usize = world.iter().map(|e| e.tags.len()).sum();
    println!(
        "world: {} images, {tags} tags, {} distinct blobs, {:.2} GB",
        world.len(),
        blobs.len(),
        world_bytes as f64 / 1e9
    );

    let staging = TestRegistry::start(RegistryOptions::plain());
    let t = Instant::now();
    within(1800, "push the world", push_world(&staging.pusher(), "staging", &world)).await;
    let ingest = t.elapsed().as_secs_f64();
    println!(
        "{:<40} {ingest:>8.2} s   (harness pusher into an empty registry: ingest limit)",
        "push world to staging"
    );
    let src = format!("{}/staging", staging.host());
    // Three mirrors need three registries' worth of ingest work on the same cores: the
    // floor of any 3-mirror promotion on this machine.
    let ingest3 = {
        let sinks: Vec<TestRegistry> = (0..3).map(|_| TestRegistry::start(RegistryOptions::plain())).collect();
        let all: Vec<&TestRegistry> = sinks.iter().collect();
        let cpu = registries_cpu(&all);
        let t = Instant::now();
        let pushers: Vec<Pusher> = sinks.iter().map(TestRegistry::pusher).collect();
        let pushes = pushers.iter().map(|p| push_world(p, "prod", &world));
        within(1800, "push the world 3x", futures_util::future::join_all(pushes)).await;
        let wall = t.elapsed().as_secs_f64();
        println!(
            "{:<40} {wall:>8.2} s   (the same into 3 empty registries at once: 3-mirror ingest limit; registries CPU {:.1} s)",
            "push world to 3 registries",
            registries_cpu(&all) - cpu
        );
        wall
    };

    // kpromo -> 1 mirror, then a no-op rerun.
    let (one, noop1) = {
        let mirror = TestRegistry::start(RegistryOptions::plain());
        write_manifests(&dir, &world, &src, &[format!("{}/prod", mirror.host())]);
        let cpu = registries_cpu(&[&staging, &mirror]);
        let (wall, _) = timed("kpromo -> 1 mirror", &mut kpromo(&dir, &summary_path), scratch.path());
        println!(
            "{:<40} {:>8.1} s CPU (staging + mirror)",
            "",
            registries_cpu(&[&staging, &mirror]) - cpu
        );
        let s = summary(&summary_path);
        assert_eq!(
            s["source_bytes_read"].as_u64(),
            Some(world_bytes),
            "each blob read once"
        );
        check_mirror(&world, &mirror);
        let noop = noop_rerun("kpromo no-op rerun (1 mirror)", &dir, &summary_path, scratch.path());
        (wall, noop)
    };

    // kpromo -> 3 mirrors, then a no-op rerun.
    let (three, noop3, rss, staging_gets) = {
        let mirrors: Vec<TestRegistry> = (0..3).map(|_| TestRegistry::start(RegistryOptions::plain())).collect();
        let dsts: Vec<String> = mirrors.iter().map(|m| format!("{}/prod", m.host())).collect();
        write_manifests(&dir, &world, &src, &dsts);
        let all: Vec<&TestRegistry> = std::iter::once(&staging).chain(&mirrors).collect();
        let cpu = registries_cpu(&all);
        let (wall, rss) = timed("kpromo -> 3 mirrors", &mut kpromo(&dir, &summary_path), scratch.path());
        println!(
            "{:<40} {:>8.1} s CPU (staging + mirrors)",
            "",
            registries_cpu(&all) - cpu
        );
        let s = summary(&summary_path);
        assert_eq!(
            s["source_bytes_read"].as_u64(),
            Some(world_bytes),
            "each blob read once for 3 mirrors"
        );
        let gets = s["registries"][staging.host()]["requests"].clone();
        for m in &mirrors {
            check_mirror(&world, m);
        }
        let noop = noop_rerun("kpromo no-op rerun (3 mirrors)", &dir, &summary_path, scratch.path());
        (wall, noop, rss, gets)
    };
    println!("  staging requests during the 3-mirror run: {staging_gets}");
    println!("  distinct blobs in the world: {}", blobs.len());

    if with_skopeo {
        let (sk1, sk_noop1) = {
            let mirror = TestRegistry::start(RegistryOptions::plain());
            let sync = || bash(skopeo_sync(&world, &staging, &mirror, scratch.path()));
            let (wall, _) = timed("skopeo sync -> 1 mirror", &mut sync(), scratch.path());
            let (noop, _) = timed("skopeo sync no-op", &mut sync(), scratch.path());
            (wall, noop)
        };
        let (sk3, sk_noop3) = {
            let mirrors: Vec<TestRegistry> = (0..3).map(|_| TestRegistry::start(RegistryOptions::plain())).collect();
            let jobs: Vec<String> = mirrors
                .iter()
                .map(|m| format!("( {} ) &\n", skopeo_sync(&world, &staging, m, scratch.path())))
                .collect();
            // `wait` alone forgets the jobs' exit codes: wait for each one.
            let script = format!("set -e\n{}for job in $(jobs -p); do wait $job; done\n", jobs.concat());
            let (wall, _) = timed(
                "3x skopeo sync in parallel -> 3 mirrors",
                &mut bash(script.clone()),
                scratch.path(),
            );
            let (noop, _) = timed("3x skopeo sync no-op in parallel", &mut bash(script), scratch.path());
            (wall, noop)
        };
        println!(
            "ratios kpromo/skopeo: 1 mirror {:.3}, 3 mirrors {:.3} (target <= 0.15), no-op 1 mirror {:.3}, no-op 3 mirrors {:.3} (target <= 0.10)",
            one / sk1,
            three / sk3,
            noop1 / sk_noop1,
            noop3 / sk_noop3
        );
        println!(
            "ratios to the ingest limits: skopeo 1 mirror {:.2}, skopeo 3 mirrors {:.2}",
            sk1 / ingest,
            sk3 / ingest3
        );
    }
    println!(
        "ratios to the ingest limits: kpromo 1 mirror {:.2}, kpromo 3 mirrors {:.2}; peak RSS 3 mirrors {} MB",
        one / ingest,
        three / ingest3,
        rss / 1024
    );
}
