//! Promotions (the built binary, staging and three mirrors of real distribution) against
//! registries that throttle or fail at random, keep a per-window quota, or share a quota:
//! every run converges with nothing half-written, and a shared budget holds. Outcomes
//! only (converged, no failed image, every tag at every mirror, counts within a tolerance
//! computed from counts), never wall-clock targets; the figures are the benchmark's
//! (`tests/e2e/throttle_bench.rs`). Run alone (see `solo`): the controllers react to
//! latency, and a loaded machine is latency.
use std::time::Duration;

use crate::support::throttle::Scene;
use crate::support::{Action, Rule, Times};

const MIRRORS: usize = 3;
const IMAGES: usize = 8;
/// Generous bound of one run: a fault-free run takes a few seconds here.
const RUN_SECONDS: u64 = 600;

async fn scene() -> Scene {
    Scene::start(env!("CARGO_BIN_EXE_kpromo"), MIRRORS, IMAGES, 32).await
}

/// Every image at every mirror under `prefix`, and no failed image in the summary.
async fn assert_converged(scene: &Scene, prefix: &str, run: &crate::support::world::Run, what: &str) {
    run.expect_code(0);
    assert_eq!(
        run.summary["failed_images"].as_array().map(Vec::len),
        Some(0),
        "{what}: {}",
        run.summary
    );
    for mirror in 0..MIRRORS {
        scene.assert_delivered(mirror, prefix).await;
    }
}

fn status(status: u16) -> Action {
    Action::Status {
        status,
        retry_after: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run alone by scripts/test.sh"]
async fn random_faults_at_staging_or_a_mirror_converge_in_one_run() {
    let mut scene = scene().await;
    let mirrors = scene.mirrors();
    // Hangs wait for the response deadline; a shorter cap than the default 60 s keeps
    // this test short while the deadline adapts (the benchmark runs the defaults).
    let flags = ["--registry-response-timeout", "10s"];
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
                // A promotion into fresh repositories reads no response body from a mirror
                // (its tags lists are 404s): nothing there to cut short.
                continue;
            }
            let proxy = match side {
                "staging" => &scene.world.staging_proxy,
                _ => &scene.world.proxies[0],
            };
            proxy.set_rules(vec![Rule::new(
                *method,
                "^/v2/.+",
                action.clone(),
                Times::Random {
                    probability: 0.15,
                    seed: 13,
                },
            )]);
            let what = format!("15 % {name} at {side}");
            let (promotion, prefix) = scene.promote(&mirrors, &flags, RUN_SECONDS);
            let faults: usize = promotion.faults.iter().sum();
            assert!(faults > 0, "{what}: no fault was injected");
            // Truncation may leave a blob a rerun copies (one rerun at most).
            if *name == "truncation" && promotion.run.code != Some(0) {
                let rerun = scene.promote_into(&prefix, &mirrors, &flags, RUN_SECONDS);
                assert_converged(&scene, &prefix, &rerun.run, &what).await;
            } else {
                assert_converged(&scene, &prefix, &promotion.run, &what).await;
            }
            scene.world.staging_proxy.set_rules(Vec::new());
            scene.world.proxies[0].set_rules(Vec::new());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run alone by scripts/test.sh"]
async fn an_exhausted_quota_window_causes_no_failure_and_no_retry_storm() {
    let mut scene = scene().await;
    let mirrors = scene.mirrors();
    // Mirror 0 takes 40 requests per 5 s window, then answers 429 (without Retry-After,
    // as the worst quota fronts do) until the window ends.
    let window = Duration::from_secs(5);
    scene.world.proxies[0].set_rules(vec![Rule::new(
        None,
        "^/v2/",
        status(429),
        Times::Quota { allowed: 40, window },
    )]);
    let (promotion, prefix) = scene.promote(&mirrors, &[], RUN_SECONDS);
    assert_converged(&scene, &prefix, &promotion.run, "quota windows").await;
    let forwarded = scene.world.proxies[0].forwarded().len();
    let rejected = scene.world.proxies[0].faults();
    assert!(forwarded > 40, "the run needed more than one window: {forwarded}");
    // Not a storm: the 429s are a fraction of what got through, not a multiple of it.
    assert!(
        rejected <= forwarded,
        "{rejected} requests rejected for {forwarded} forwarded"
    );
    let throttled = promotion
        .run
        .num(&["registries", &mirrors[0].host, "throttling", "throttled"]);
    assert_eq!(throttled as usize, rejected, "every 429 reached the summary");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run alone by scripts/test.sh"]
async fn hosts_sharing_a_quota_stay_within_its_budget_together() {
    let mut scene = scene().await;
    let mirrors = scene.mirrors();
    const BUDGET: f64 = 25.0;
    let config = scene.world.dir.path().join("registries.yaml");
    std::fs::write(
        &config,
        format!(
            "hosts:\n- host: '{}'\n  quota: shared\n- host: '{}'\n  quota: shared\nquotas:\n  shared: {BUDGET}/s\n",
            mirrors[0].host, mirrors[1].host
        ),
    )
    .expect("write the settings file");
    let config = config.to_string_lossy().into_owned();
    let (promotion, prefix) = scene.promote(&mirrors, &["--registry-config", &config], RUN_SECONDS);
    assert_converged(&scene, &prefix, &promotion.run, "shared quota").await;
    let mut sent: Vec<std::time::Instant> = scene.world.proxies[..2]
        .iter()
        .flat_map(|p| p.seen().into_iter().map(|s| s.at))
        .collect();
    sent.sort();
    let (first, last) = (sent[0], sent[sent.len() - 1]);
    let span = last.duration_since(first).as_secs_f64();
    // n requests evenly spaced at the budget span (n - 1) / budget seconds; allow 10 %.
    let intervals = (sent.len() - 1) as f64;
    assert!(
        intervals / span <= BUDGET * 1.1,
        "{} requests in {span:.2} s: {:.1}/s over a shared {BUDGET}/s",
        sent.len(),
        intervals / span
    );
    for host in [&mirrors[0].host, &mirrors[1].host] {
        let quota = &promotion.run.summary["registries"][host.as_str()]["throttling"]["quota"];
        assert_eq!(quota.as_str(), Some("shared"), "{host}");
    }
    let other = &promotion.run.summary["registries"][mirrors[2].host.as_str()]["throttling"]["quota"];
    assert!(other.is_null(), "mirror 2 is outside the group: {other}");
}
