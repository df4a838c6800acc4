//! Throttling benchmark (run by `scripts/bench-throttle.sh`, ignored in normal test runs):
//! the figures issue 13 asks for, on one loopback scene (staging and three mirrors of real
//! distribution, each behind a fault proxy; `support::throttle`), each printed with the
//! load average at the time:
//!
//! 1. default settings vs fixed ceilings (rate lifted, concurrency 8/16/32/64), and the
//!    registry-side floor: the harness's pusher writing exactly what the promotion writes
//!    (every image into fresh repositories of the three mirrors, 8 in flight per registry,
//!    no source reads), straight into the registries, through the mirrors' proxies as
//!    kpromo's requests go, and through them while staging is read at the same time; each
//!    with the CPU time every process of the scene used (on loopback they share the cores);
//! 2. one mirror behind nginx `limit_req` at 20 and 100 req/s: useful rate, share rejected;
//! 3. one mirror behind a per-window quota (the fault proxy: N requests per 5 s window,
//!    then 429 until it ends): useful rate against the quota;
//! 4. two mirrors sharing a quota (settings file): their rate together against the budget;
//! 5. random faults (429, 503, reset, truncation, hang at 5, 15 and 27 % of requests) at
//!    staging or at one mirror: runs needed, time against the fault-free run;
//! 6. one sick mirror (15 % 429s, 15 % hangs): when the healthy mirrors held every tag.
//!
//! Asserts nothing about time; prints. `BENCH_PARTS` (default `1,2,3,4,5,6`) picks parts;
//! `BENCH_IMAGES` (default 120: 240 tags, 720 edges)
//! sizes parts 1–4 and 6, `BENCH_MATRIX_IMAGES` (default 24) part 5, `BENCH_MATRIX=0` skips
//! part 5, `BENCH_LAYER_KB` (default 32) the size of each image's own layer.
use std::time::{Duration, Instant};

use futures_util::{StreamExt, stream};

use crate::support::throttle::{Destination, Promotion, Scene};
use crate::support::{Action, FaultProxy, Pusher, RateLimitFront, Rule, Times};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Whether part `n` is to run (`BENCH_PARTS`, comma-separated; all by default).
fn part(n: u32) -> bool {
    std::env::var("BENCH_PARTS").map_or(true, |parts| parts.split(',').any(|p| p.trim() == n.to_string()))
}

fn load() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let parts: Vec<&str> = text.split_whitespace().take(3).collect();
    format!("load {}", parts.join(" "))
}

fn kpromo() -> &'static str {
    env!("CARGO_BIN_EXE_kpromo")
}

fn outcome(p: &Promotion) -> String {
    let failed = p.run.summary["failed_images"].as_array().map_or(0, Vec::len);
    match p.run.code {
        Some(0) => "ok".into(),
        code => format!("exit {code:?}, {failed} images failed"),
    }
}

/// Requests per second between the first and the last of `times`.
fn rate(mut times: Vec<Instant>) -> f64 {
    times.sort();
    match (times.first(), times.last()) {
        (Some(first), Some(last)) if times.len() > 1 => {
            (times.len() - 1) as f64 / last.duration_since(*first).as_secs_f64().max(1e-3)
        }
        _ => 0.0,
    }
}

/// How a host's controller moved in run `p` (from the summary).
fn controller(p: &Promotion, host: &str) -> String {
    let t = &p.run.summary["registries"][host]["throttling"];
    format!(
        "rate {}/{}/{} req/s, concurrency {}/{}/{}, decreases {}, undone {}, noise {}",
        t["rate_per_s"]["min"].as_f64().map_or(f64::NAN, |v| v.round()),
        t["rate_per_s"]["median"].as_f64().map_or(f64::NAN, |v| v.round()),
        t["rate_per_s"]["max"].as_f64().map_or(f64::NAN, |v| v.round()),
        t["concurrency"]["min"],
        t["concurrency"]["median"],
        t["concurrency"]["max"],
        t["decreases"],
        t["undone"],
        t["noise"].as_f64().map_or(f64::NAN, |v| (v * 1000.0).round() / 1000.0),
    )
}

fn last_tag(p: &Promotion) -> f64 {
    p.last_tag
        .iter()
        .flatten()
        .max()
        .map_or(f64::NAN, Duration::as_secs_f64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: scripts/bench-throttle.sh"]
async fn throttle_figures() {
    let layer_kb = env("BENCH_LAYER_KB", 32);
    let mut scene = Scene::start(kpromo(), 3, env("BENCH_IMAGES", 120), layer_kb).await;
    let mirrors = scene.mirrors();
    let edges = scene.images.iter().map(|i| i.tags.len()).sum::<usize>() * mirrors.len();
    println!("scene: {} images, {edges} edges, 3 mirrors", scene.images.len());

    // 1. Default vs fixed ceilings, and the floor. (The default run is also the
    // fault-free baseline of part 6.)
    let cpu = Cpu::now(&scene);
    let (default, _) = scene.promote(&mirrors, &[], 1800);
    println!(
        "figure: default settings: {:.1} s ({}), requests {:?}, phases {:?}; {}; {}",
        default.elapsed.as_secs_f64(),
        outcome(&default),
        default.requests,
        phases(&default),
        Cpu::now(&scene).since(cpu, default.elapsed),
        load()
    );
    let mut best = f64::INFINITY;
    let fixed: &[&str] = if part(1) { &["8", "16", "32", "64"] } else { &[] };
    for concurrency in fixed {
        let flags = [
            "--registry-rate-limit",
            "100000",
            "--registry-max-concurrency",
            concurrency,
        ];
        let cpu = Cpu::now(&scene);
        let (fixed, _) = scene.promote(&mirrors, &flags, 1800);
        best = best.min(fixed.elapsed.as_secs_f64());
        println!(
            "figure: rate ceiling lifted, concurrency ceiling {concurrency}: {:.1} s ({}); {}; {}",
            fixed.elapsed.as_secs_f64(),
            outcome(&fixed),
            Cpu::now(&scene).since(cpu, fixed.elapsed),
            load()
        );
    }
    let default_s = default.elapsed.as_secs_f64();
    if part(1) {
        let mut floors = Vec::new();
        for (name, path) in [
            ("into the registries directly", Floor::Direct),
            ("through the mirrors' proxies, as kpromo", Floor::Proxied),
            (
                "through the proxies, reading staging at the same time",
                Floor::ProxiedWithReads,
            ),
        ] {
            let cpu = Cpu::now(&scene);
            let elapsed = floor(&scene, path).await;
            println!(
                "figure: floor, harness pusher {name} (8 in flight per registry, 3 registries at once): \
                 {:.1} s; {}; {}",
                elapsed.as_secs_f64(),
                Cpu::now(&scene).since(cpu, elapsed),
                load()
            );
            floors.push(elapsed.as_secs_f64());
        }
        println!(
            "figure: default / best fixed = {:.2}; default / floor = {:.2} (direct), {:.2} (proxied), \
             {:.2} (proxied, staging read); best fixed / floor = {:.2}, {:.2}, {:.2}",
            default_s / best,
            default_s / floors[0],
            default_s / floors[1],
            default_s / floors[2],
            best / floors[0],
            best / floors[1],
            best / floors[2],
        );
    }

    // 2. nginx limit_req in front of mirror 0 (chained to its proxy, which counts).
    let fronts: &[u32] = if part(2) { &[20, 100] } else { &[] };
    for &r in fronts {
        let front = RateLimitFront::start(scene.world.proxies[0].port(), r, (r / 4).max(1), 1);
        let dst = [Destination {
            host: front.host(),
            mirror: 0,
        }];
        let (p, _) = scene.promote(&dst, &[], 1800);
        let (passed, rejected) = (front.passed(), front.rejected());
        let useful = rate(scene.world.proxies[0].forwarded());
        println!(
            "figure: nginx limit_req {r} r/s: {} in {:.1} s, useful {useful:.1} req/s = {:.2} R, \
             rejected {rejected} of {} = {:.1} %; {}; {}",
            outcome(&p),
            p.elapsed.as_secs_f64(),
            useful / f64::from(r),
            passed + rejected,
            100.0 * rejected as f64 / (passed + rejected).max(1) as f64,
            controller(&p, &front.host()),
            load()
        );
    }

    // 3. A per-window quota at mirror 0: 20/s as 100 per 5 s window.
    if part(3) {
        quota_window(&mut scene).await;
    }
    // 4. Two mirrors sharing 40/s.
    if part(4) {
        quota_group(&mut scene).await;
    }
    if part(6) {
        sick_mirror(&mut scene, &default).await;
    }
    drop(scene);
    if part(5) && env("BENCH_MATRIX", 1) != 0 {
        matrix(layer_kb).await;
    }
}

async fn quota_window(scene: &mut Scene) {
    let mirrors = scene.mirrors();
    let quota_per_s = 20.0;
    scene.world.proxies[0].set_rules(vec![Rule::new(
        None,
        "^/v2/",
        Action::Status {
            status: 429,
            retry_after: None,
        },
        Times::Quota {
            allowed: 100,
            window: Duration::from_secs(5),
        },
    )]);
    let (p, _) = scene.promote(&mirrors[..1], &[], 1800);
    let useful = rate(scene.world.proxies[0].forwarded());
    println!(
        "figure: quota 100 per 5 s window (20/s): {} in {:.1} s, useful {useful:.1} req/s = {:.2} of the quota, \
         {} rejected; {}; {}",
        outcome(&p),
        p.elapsed.as_secs_f64(),
        useful / quota_per_s,
        scene.world.proxies[0].faults(),
        controller(&p, &mirrors[0].host),
        load()
    );
    scene.world.proxies[0].set_rules(Vec::new());
}

async fn quota_group(scene: &mut Scene) {
    let mirrors = scene.mirrors();
    let budget = 40.0;
    let config = scene.world.dir.path().join("registries.yaml");
    std::fs::write(
        &config,
        format!(
            "hosts:\n- host: '{}'\n  quota: group\n- host: '{}'\n  quota: group\nquotas:\n  group: {budget}/s\n",
            mirrors[0].host, mirrors[1].host
        ),
    )
    .expect("write the settings file");
    let config = config.to_string_lossy().into_owned();
    let (p, _) = scene.promote(&mirrors[..2], &["--registry-config", &config], 1800);
    let together = rate(
        scene.world.proxies[..2]
            .iter()
            .flat_map(|x| x.seen().into_iter().map(|s| s.at))
            .collect(),
    );
    println!(
        "figure: quota group of 2 hosts at {budget}/s: {} in {:.1} s, together {together:.1} req/s = {:.2} of the budget; {}",
        outcome(&p),
        p.elapsed.as_secs_f64(),
        together / budget,
        load()
    );
}

/// 6. One sick mirror, against the default run's fault-free figures.
async fn sick_mirror(scene: &mut Scene, default: &Promotion) {
    let mirrors = scene.mirrors();
    let healthy = |p: &Promotion| {
        p.last_tag[1..]
            .iter()
            .flatten()
            .max()
            .map_or(f64::NAN, Duration::as_secs_f64)
    };
    let baseline = healthy(default);
    for (name, action) in [
        (
            "429",
            Action::Status {
                status: 429,
                retry_after: None,
            },
        ),
        ("hang", Action::Hang),
    ] {
        scene.world.proxies[0].set_rules(vec![Rule::new(
            None,
            "^/v2/.+",
            action,
            Times::Random {
                probability: 0.15,
                seed: 5,
            },
        )]);
        let (p, _) = scene.promote(&mirrors, &[], 1800);
        println!(
            "figure: one sick mirror (15 % {name}): {} in {:.1} s; healthy mirrors' last tag at {:.1} s \
             (fault-free {baseline:.1} s) = {:.2}x, of which the plan (every mirror's tags listed) {}; \
             sick mirror's at {:.1} s; {}",
            outcome(&p),
            p.elapsed.as_secs_f64(),
            healthy(&p),
            healthy(&p) / baseline,
            plan_time(&p),
            p.last_tag[0].map_or(f64::NAN, |d| d.as_secs_f64()),
            load()
        );
        scene.world.proxies[0].set_rules(Vec::new());
    }
}

/// How long run `p`'s plan phase took, as its log says: the part of a run every mirror
/// waits for, sick or not.
fn plan_time(p: &Promotion) -> String {
    phases(p)
        .into_iter()
        .find_map(|(name, took)| (name == "plan").then_some(took))
        .unwrap_or_else(|| "unknown".into())
}

/// Each phase of run `p` and how long it took, from its log ("phase 3/7 plan … done in
/// 1.2s").
fn phases(p: &Promotion) -> Vec<(String, String)> {
    p.run
        .stderr
        .lines()
        .filter_map(|line| {
            let (head, took) = line.split_once(" … done in ")?;
            let name = head.rsplit(' ').next()?;
            Some((name.to_string(), took.trim().to_string()))
        })
        .collect()
}

/// 5. The fault matrix, on a smaller scene.
async fn matrix(layer_kb: usize) {
    let mut scene = Scene::start(kpromo(), 3, env("BENCH_MATRIX_IMAGES", 24), layer_kb).await;
    let mirrors = scene.mirrors();
    let (clean, _) = scene.promote(&mirrors, &[], 600);
    let clean_s = clean.elapsed.as_secs_f64();
    println!(
        "figure: matrix scene fault-free: {clean_s:.1} s ({}), last tag {:.1} s; {}",
        outcome(&clean),
        last_tag(&clean),
        load()
    );
    let status = |status| Action::Status {
        status,
        retry_after: None,
    };
    let cells: [(&str, Action, Option<&str>); 5] = [
        ("429", status(429), None),
        ("503", status(503), None),
        ("reset", Action::Reset, None),
        ("truncation", Action::Truncate, Some("GET")),
        ("hang", Action::Hang, None),
    ];
    for side in ["staging", "mirror"] {
        for (name, action, method) in &cells {
            if side == "mirror" && *name == "truncation" {
                println!("figure: matrix {side} {name}: n/a (a promotion reads no response body from a mirror)");
                continue;
            }
            for percent in [5u32, 15, 27] {
                side_proxy(&scene, side).set_rules(vec![Rule::new(
                    *method,
                    "^/v2/.+",
                    action.clone(),
                    Times::Random {
                        probability: f64::from(percent) / 100.0,
                        seed: 1000 + u64::from(percent),
                    },
                )]);
                let (first, prefix) = scene.promote(&mirrors, &[], 600);
                let mut runs = 1;
                let mut total = first.elapsed.as_secs_f64();
                let mut last = first;
                while last.run.code != Some(0) && runs < 3 {
                    last = scene.promote_into(&prefix, &mirrors, &[], 600);
                    runs += 1;
                    total += last.elapsed.as_secs_f64();
                }
                let throttling = |host: &str, field: &str| {
                    last.run.summary["registries"][host]["throttling"][field]
                        .as_u64()
                        .unwrap_or(0)
                };
                let host = if side == "staging" {
                    scene.world.staging_proxy.host()
                } else {
                    mirrors[0].host.clone()
                };
                println!(
                    "figure: matrix {side} {name} {percent} %: {} after {runs} run(s), {total:.1} s = {:.2}x fault-free; \
                     faults {}, decreases {}, undone {}, stalls {}; {}",
                    outcome(&last),
                    total / clean_s,
                    last.faults.iter().sum::<usize>(),
                    throttling(&host, "decreases"),
                    throttling(&host, "undone"),
                    throttling(&host, "stalls"),
                    load()
                );
                side_proxy(&scene, side).set_rules(Vec::new());
            }
        }
    }
}

fn side_proxy<'a>(scene: &'a Scene, side: &str) -> &'a FaultProxy {
    if side == "staging" {
        &scene.world.staging_proxy
    } else {
        &scene.world.proxies[0]
    }
}

/// Which path the floor's pusher takes.
#[derive(Clone, Copy, PartialEq)]
enum Floor {
    /// Straight into the mirrors' registries.
    Direct,
    /// Through the mirrors' fault proxies, the path kpromo's requests take (the proxies
    /// share the machine's cores with everything else).
    Proxied,
    /// As `Proxied`, while a reader GETs every manifest and blob of the scene from staging
    /// through its proxy (8 in flight): the source reads a promotion cannot skip, on the
    /// same cores, but none of its checks.
    ProxiedWithReads,
}

/// The registries' ingest of exactly what the promotion writes: every image pushed by the
/// harness's pusher (from memory: no source reads unless `path` asks for them) into fresh
/// repositories of each mirror, 8 images in flight per registry, the three registries at
/// once.
async fn floor(scene: &Scene, path: Floor) -> Duration {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let prefix = format!("floor{}", RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let started = Instant::now();
    let pushes = scene
        .world
        .mirrors
        .iter()
        .zip(&scene.world.proxies)
        .map(|(mirror, proxy)| {
            let prefix = &prefix;
            async move {
                let pusher = match path {
                    Floor::Direct => mirror.pusher(),
                    Floor::Proxied | Floor::ProxiedWithReads => {
                        Pusher::new(&format!("http://{}", proxy.host()), None, None)
                    }
                };
                stream::iter(&scene.images)
                    .for_each_concurrent(8, |image| image.push(&pusher, prefix))
                    .await;
            }
        });
    let reads = async {
        if path == Floor::ProxiedWithReads {
            let reader = Pusher::new(&format!("http://{}", scene.world.staging_proxy.host()), None, None);
            stream::iter(&scene.images)
                .for_each_concurrent(8, |image| image.read(&reader, "staging"))
                .await;
        }
    };
    futures_util::future::join(futures_util::future::join_all(pushes), reads).await;
    started.elapsed()
}

/// CPU time (user + system, seconds) the scene's processes have used so far, from
/// `/proc`: staging's and the mirrors' registries, this process (the fault proxies, and
/// the floor's pusher and reader), and its finished children (every kpromo run). On a
/// loopback scene every one of them shares the machine's cores, so a run whose CPU over
/// its wall time is near the core count is bound by work, and is as fast as the work it
/// does allows.
#[derive(Clone, Copy)]
struct Cpu {
    staging: f64,
    mirrors: f64,
    harness: f64,
    kpromo: f64,
}

impl Cpu {
    fn now(scene: &Scene) -> Cpu {
        let registry = |r: &crate::support::TestRegistry| r.pid().map_or(0.0, |pid| proc_cpu(&pid.to_string())[0]);
        let [harness, children] = proc_cpu("self");
        Cpu {
            staging: registry(&scene.world.staging),
            mirrors: scene.world.mirrors.iter().map(registry).sum(),
            harness,
            kpromo: children,
        }
    }

    /// What was used since `before`, against `wall` and the machine's cores.
    fn since(self, before: Cpu, wall: Duration) -> String {
        let (staging, mirrors, harness, kpromo) = (
            self.staging - before.staging,
            self.mirrors - before.mirrors,
            self.harness - before.harness,
            self.kpromo - before.kpromo,
        );
        let total = staging + mirrors + harness + kpromo;
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        format!(
            "CPU s: staging {staging:.1}, mirrors {mirrors:.1}, harness {harness:.1}, kpromo {kpromo:.1}, \
             total {total:.1} = {:.2} of {cores} cores busy",
            total / wall.as_secs_f64()
        )
    }
}

/// `[own, waited-for children's]` CPU seconds of a process, from `/proc/<pid>/stat`
/// (utime + stime, cutime + cstime; Linux counts them in 1/100 s).
fn proc_cpu(pid: &str) -> [f64; 2] {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let fields: Vec<f64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().map(|f| f.parse().unwrap_or(0.0)).collect())
        .unwrap_or_default();
    let tick = |i: usize| fields.get(i).copied().unwrap_or(0.0) / 100.0;
    // Fields 14–17 of proc(5); the state (field 3) is the first after the name.
    [tick(11) + tick(12), tick(13) + tick(14)]
}
