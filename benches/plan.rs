//! Planning cost on the real registry.k8s.io tree (`testdata/registry.k8s.io`):
//! loading and validating every manifest, then expanding them into promotion edges.
//!
//! The real promoter manifests already name 20 to 60 destination regions each (median
//! 22), so the tree as found is the "whole tree x 20 regions" case (about 0.6M edges).
//! A second case doubles every manifest onto a second set of destinations (about 1.2M
//! edges), the size Go kpromo reports for its largest runs.
//!
//! First prints one-shot figures (wall time, edge count, peak RSS from
//! `/proc/self/status`), then runs criterion. `-- --summary` prints the figures only.
//! Run through `scripts/bench-plan.sh`.
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use criterion::Criterion;
use kpromo::check;
use kpromo::edges::EdgeSet;
use kpromo::manifest::load::{self, Loaded};
use kpromo::manifest::{Manifest, ManifestSource};

fn real_tree() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/registry.k8s.io")
}

/// Loads the tree, keeping whatever loads: the copy has known upstream quirks
/// (projects without images.yaml, one malformed digest) that are reported, not fatal.
fn load_tree() -> Loaded {
    load::collect(&ManifestSource::ThinDir(real_tree()), None)
}

/// Every manifest again under another path, promoting to a second set of
/// destinations: twice the edges, same shape.
fn doubled(manifests: &[Manifest]) -> Vec<Manifest> {
    let mut out = manifests.to_vec();
    out.extend(manifests.iter().map(|m| {
        let mut copy = m.clone();
        copy.path = Arc::new(m.path.with_extension("mirror.yaml"));
        for r in copy.registries.iter_mut().filter(|r| !r.src) {
            r.name = format!("mirror.{}", r.name);
        }
        copy
    }));
    out
}

/// Peak resident set size of this process so far, in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

fn summary() {
    let rss = || peak_rss_mib().map_or_else(|| "unknown".to_string(), |m| format!("{m:.0} MiB"));
    println!("plan benchmark on {}", real_tree().display());
    println!("peak RSS before loading: {}", rss());

    let start = Instant::now();
    let loaded = load_tree();
    let load_time = start.elapsed();
    let start = Instant::now();
    let set = EdgeSet::from_manifests(&loaded.manifests);
    let edge_time = start.elapsed();
    println!(
        "real tree: {} manifests, {} problems (known quirks); load {:.0} ms + edges {:.0} ms = {:.0} ms; \
         {} edges; peak RSS {}",
        loaded.manifests.len(),
        loaded.problems.len(),
        load_time.as_secs_f64() * 1e3,
        edge_time.as_secs_f64() * 1e3,
        (load_time + edge_time).as_secs_f64() * 1e3,
        set.len(),
        rss()
    );
    drop(set);

    let start = Instant::now();
    let report = check::report(load_tree());
    println!(
        "validate (load + rules + edges + overlap): {:.0} ms; {}",
        start.elapsed().as_secs_f64() * 1e3,
        report.to_string().lines().last().unwrap_or_default()
    );

    let manifests = doubled(&loaded.manifests);
    let start = Instant::now();
    let set = EdgeSet::from_manifests(&manifests);
    println!(
        "doubled tree: {} manifests; edges {:.0} ms; {} edges; peak RSS {}",
        manifests.len(),
        start.elapsed().as_secs_f64() * 1e3,
        set.len(),
        rss()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo test --all-targets` runs this without `--bench`: criterion then only
    // smoke-tests each function once, and the one-shot figures would be meaningless.
    if args.iter().any(|a| a == "--bench" || a == "--summary") {
        summary();
    }
    if args.iter().any(|a| a == "--summary") {
        return;
    }
    let mut c = Criterion::default().sample_size(10).configure_from_args();
    let loaded = load_tree();
    let twice = doubled(&loaded.manifests);
    let mut group = c.benchmark_group("plan");
    group.bench_function("load real tree", |b| b.iter(|| black_box(load_tree())));
    group.bench_function("edges real tree", |b| {
        b.iter(|| black_box(EdgeSet::from_manifests(&loaded.manifests)))
    });
    group.bench_function("validate real tree", |b| {
        b.iter(|| black_box(check::check_path(&real_tree())))
    });
    group.bench_function("edges doubled tree", |b| {
        b.iter(|| black_box(EdgeSet::from_manifests(&twice)))
    });
    group.finish();
    c.final_summary();
}
