//! Planning cost on the real registry.k8s.io tree (`testdata/registry.k8s.io`):
//! loading and validating every manifest, then expanding them into promotion edges.
//!
//! The real promoter manifests already name 20 to 60 destination regions each (median
//! 22), so the tree as found is the "whole tree x 20 regions" case (about 0.6M edges).
//! A second case doubles every manifest onto a second set of destinations (about 1.2M
//! edges), the size Go kpromo reports for its largest runs.
//!
//! It also checks the 50-rule benchmark policy (`testdata/policy/fifty-rules.yaml`, CEL
//! conditions on every rule) against every edge of the real tree, as `cip` enforces it and
//! as `kpromo policy check` asks it offline.
//!
//! First prints one-shot figures (wall time, edge count, peak RSS from
//! `/proc/self/status`), then runs criterion. `-- --summary` prints the figures only.
//! Run through `scripts/bench-plan.sh`.
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use criterion::Criterion;
use kpromo::check;
use kpromo::edges::EdgeSet;
use kpromo::manifest::load::{self, Loaded};
use kpromo::manifest::{Manifest, ManifestSource};
use kpromo::policy::{self, Actor, ActorSource, Evaluator, Evidence, Policy, Verdict};

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
    status_mib("VmHWM:")
}

/// A memory figure of `/proc/self/status` (`VmHWM:`, `VmRSS:`), in MiB.
fn status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
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
    policy_summary(&set);
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

fn benchmark_policy() -> Policy {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/policy/fifty-rules.yaml");
    policy::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// A release manager's robot: the rules that apply to most edges apply to it.
fn benchmark_actor() -> Actor {
    Actor {
        name: "robot-promoter".into(),
        source: ActorSource::Flag,
    }
}

/// Every edge as `cip` checks it on a fresh mirror: a copy, no evidence verified yet.
/// Returns the edges denied and the distinct condition evaluations.
fn enforce(policy: &Policy, actor: &Actor, set: &EdgeSet) -> (usize, usize) {
    let mut evaluator = Evaluator::new(policy, actor, set, SystemTime::now());
    let evidence = Evidence::default();
    let denied = set
        .edges()
        .iter()
        .filter(|edge| {
            !matches!(
                evaluator.verdict(edge, Some("copy"), Some(&evidence)),
                Verdict::Allow(_)
            )
        })
        .count();
    (denied, evaluator.evaluations())
}

/// The benchmark policy over the real tree: time, and memory on top of what loading and
/// the edges already hold (the peak is reset first, so it is this step's own).
fn policy_summary(set: &EdgeSet) {
    let policy = benchmark_policy();
    let actor = benchmark_actor();
    let mib = |m: Option<f64>| m.map_or_else(|| "unknown".to_string(), |m| format!("{m:.1} MiB"));
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let resident = status_mib("VmRSS:");
    let start = Instant::now();
    let (denied, evaluations) = enforce(&policy, &actor, set);
    println!(
        "policy ({} rules, all with CEL) as cip enforces it: {} edges in {:.0} ms, {denied} denied, \
         {evaluations} distinct condition evaluations; resident before {}, peak during {}",
        policy.rules.len(),
        set.len(),
        start.elapsed().as_secs_f64() * 1e3,
        mib(resident),
        mib(peak_rss_mib()),
    );
    let (copy, policy) = (set.clone(), benchmark_policy());
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let start = Instant::now();
    let report = policy::check::report(policy, actor, copy, SystemTime::now());
    println!(
        "policy check (offline) of the same: {:.0} ms; {} allowed, {} denied, {} depend on registry state; \
         peak during {}",
        start.elapsed().as_secs_f64() * 1e3,
        report.allowed,
        report.denied.len(),
        report.depends.len(),
        mib(peak_rss_mib()),
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
    let edges = EdgeSet::from_manifests(&loaded.manifests);
    let (policy, actor) = (benchmark_policy(), benchmark_actor());
    group.bench_function("policy 50 rules real tree", |b| {
        b.iter(|| black_box(enforce(&policy, &actor, &edges)))
    });
    group.finish();
    c.final_summary();
}
