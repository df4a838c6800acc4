//! Policy and audit, end to end: the built `kpromo` against CNCF distribution registries
//! on 127.0.0.1, each mirror behind the harness's recording proxy, which is the access
//! log these tests compare kpromo's audit log with.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use crate::attest_e2e::provenance;
use crate::support::client::DockerConfig;
use crate::support::cosign::key_dsse_bundle;
use crate::support::images::{Blob, Format, Image, Index};
use crate::support::pki::SigningKey;
use crate::support::referrers::{Referrer, SLSA_V1, Subject};
use crate::support::registry::{PASSWORD, USER};
use crate::support::world::{Run, World, is_write};
use crate::support::{Action, FaultProxy, RegistryOptions, Rule, TestRegistry, Times, within};

const KPROMO: &str = env!("CARGO_BIN_EXE_kpromo");

/// staging/foo: a two-arch OCI index tagged 1.0 and latest (children promoted tagless
/// too); staging/bar: a single image tagged 3.0. `layer` adds a big layer to bar's image.
struct Fixtures {
    foo: Index,
    bar: Image,
}

impl Fixtures {
    fn new(layer: Option<Blob>) -> Fixtures {
        let base = Blob::random(71, 64 * 1024);
        let bar = match layer {
            None => Image::simple(Format::Docker, 73),
            Some(layer) => Image::new(Format::Docker, 74, "amd64", vec![base.clone(), layer]),
        };
        Fixtures {
            foo: Index::multi_arch(Format::Oci, 72, &["amd64", "arm64/v8"], Some(&base)),
            bar,
        }
    }

    /// Pushes the images to staging and writes project `p` promoting them to `dsts`.
    async fn stage(&self, world: &World, dsts: &[String]) {
        let pusher = world.staging.pusher();
        within(180, "push fixtures to staging", async {
            pusher.push_index("staging/foo", &self.foo, &[]).await;
            pusher.push_image("staging/bar", &self.bar, &[]).await;
        })
        .await;
        let mut index = vec![(self.foo.digest.as_str(), vec!["1.0", "latest"])];
        index.extend(self.foo.children.iter().map(|c| (c.digest.as_str(), vec![])));
        let single = vec![(self.bar.digest.as_str(), vec!["3.0"])];
        world.write_project("p", &world.src(), dsts, &[("foo", index), ("bar", single)]);
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// Release managers may promote anything; `latest` may never be promoted.
const POLICY: &str = "\
roles:
  release-managers: [alice, \"robot-*\"]
rules:
- name: release-managers-promote
  effect: allow
  roles: [release-managers]
- name: no-latest
  effect: deny
  tags: [latest]
default: deny
";

/// The audit log as JSON values, one per line; every line must parse.
fn audit_records(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "the log ends mid-line:\n{text}"
    );
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {} is not JSON ({e}): {line}", i + 1))
        })
        .collect()
}

fn events<'a>(records: &'a [serde_json::Value], event: &str) -> Vec<&'a serde_json::Value> {
    records.iter().filter(|r| r["event"] == event).collect()
}

fn text(value: &serde_json::Value) -> String {
    value.as_str().unwrap_or_default().to_string()
}

/// What a mirror's access log shows as completed writes, as (method, resource): a
/// manifest or tag PUT, a blob upload's final PUT (by its digest), a performed mount.
/// The steps that open or feed an upload session (POST 202, PATCH 202) belong to the
/// upload they lead to and are not writes of their own.
fn access_log_writes(proxy: &FaultProxy) -> BTreeMap<(String, String), usize> {
    let mut writes = BTreeMap::new();
    for seen in proxy.seen().into_iter().filter(|s| is_write(&s.method)) {
        let query: BTreeMap<String, String> =
            url::form_urlencoded::parse(seen.query.as_deref().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let uploads = seen.path.find("/blobs/uploads/");
        let key = match (seen.method.as_str(), seen.status, uploads) {
            ("PUT", Some(201), None) => ("PUT".to_string(), seen.path.clone()),
            ("PUT", Some(201), Some(at)) => ("PUT".into(), format!("{}/blobs/{}", &seen.path[..at], query["digest"])),
            ("POST", Some(201), Some(at)) if query.contains_key("mount") => (
                "POST".into(),
                format!("{}/blobs/{} mounted", &seen.path[..at], query["mount"]),
            ),
            ("POST" | "PATCH", Some(202), Some(_)) => continue,
            _ => panic!("unexpected write request at {}: {seen:?}", proxy.host()),
        };
        *writes.entry(key).or_insert(0) += 1;
    }
    writes
}

/// The same, from the audit log's `write` records for `registry`.
fn audited_writes(records: &[serde_json::Value], registry: &str) -> BTreeMap<(String, String), usize> {
    let mut writes = BTreeMap::new();
    for w in events(records, "write")
        .into_iter()
        .filter(|w| w["registry"] == registry)
    {
        assert_eq!(w["result"], "ok", "{w}");
        let (repo, reference) = (text(&w["repository"]), text(&w["reference"]));
        let key = match (w["kind"].as_str(), w["mounted_from"].as_str()) {
            (Some("tag" | "manifest"), _) => ("PUT".to_string(), format!("/v2/{repo}/manifests/{reference}")),
            (Some("blob"), None) => ("PUT".into(), format!("/v2/{repo}/blobs/{reference}")),
            (Some("blob"), Some(_)) => ("POST".into(), format!("/v2/{repo}/blobs/{reference} mounted")),
            _ => panic!("unexpected write record {w}"),
        };
        *writes.entry(key).or_insert(0) += 1;
    }
    writes
}

#[tokio::test]
async fn an_allowed_run_promotes_and_audits_exactly_the_writes_the_mirrors_saw() {
    let world = World::start(KPROMO, 2);
    let f = Fixtures::new(None);
    let dsts = world.dsts();
    f.stage(&world, &dsts).await;
    let allow_all = POLICY.replace("- name: no-latest\n  effect: deny\n  tags: [latest]\n", "");
    let policy = write(world.dir.path(), "policy.yaml", &allow_all);
    let log = world.dir.path().join("audit.jsonl");
    let args = [
        "--policy",
        path(&policy),
        "--actor",
        "robot-ci",
        "--audit-log",
        path(&log),
    ];
    world.spawn_confirm(&args).wait(180).expect_code(0);
    for mirror in &world.mirrors {
        assert_eq!(mirror.skopeo_tags("prod/foo"), ["1.0", "latest"]);
        assert_eq!(mirror.skopeo_tags("prod/bar"), ["3.0"]);
    }

    let records = audit_records(&log);
    let kinds: Vec<String> = records.iter().map(|r| text(&r["event"])).collect();
    assert_eq!(kinds.first().map(String::as_str), Some("run_start"), "{kinds:?}");
    assert_eq!(kinds.last().map(String::as_str), Some("run_end"), "{kinds:?}");
    let start = &records[0];
    assert_eq!(start["actor"], "robot-ci");
    assert_eq!(start["actor_source"], "flag");
    assert_eq!(
        start["manifests"].as_array().map(Vec::len),
        Some(2),
        "promoter-manifest.yaml and images.yaml"
    );
    assert_eq!(start["policy"]["path"], path(&policy));
    let run_id = &start["run_id"];
    assert!(records.iter().all(|r| &r["run_id"] == run_id && r["time"].is_string()));
    let verdicts = events(&records, "policy");
    assert_eq!(verdicts.len(), 10, "5 edges to each of 2 mirrors");
    assert!(
        verdicts
            .iter()
            .all(|p| p["effect"] == "allow" && p["rule"] == "release-managers-promote")
    );
    let end = records.last().unwrap();
    assert_eq!(end["exit_code"], 0);
    assert_eq!(end["totals"]["copy"], 10);

    // Counted by method and resource, per mirror: the audit log and the access log agree.
    for proxy in &world.proxies {
        let seen = access_log_writes(proxy);
        assert!(!seen.is_empty());
        assert_eq!(audited_writes(&records, &proxy.host()), seen, "{}", proxy.host());
    }
    let total_writes: usize = world
        .proxies
        .iter()
        .map(|p| access_log_writes(p).values().sum::<usize>())
        .sum();
    assert_eq!(end["totals"]["writes"], total_writes);
    assert_eq!(end["totals"]["write_errors"], 0);

    // A second run appends: a no-op rerun writes a run of its own and no write record.
    world.clear_seen();
    world.spawn_confirm(&args).wait(120).expect_code(0);
    let again = audit_records(&log);
    assert!(again.len() > records.len());
    assert_eq!(
        &again[..records.len()],
        &records[..],
        "earlier records are never rewritten"
    );
    let rerun = &again[records.len()..];
    assert_eq!(rerun[0]["event"], "run_start");
    assert_ne!(rerun[0]["run_id"], *run_id);
    assert!(events(rerun, "write").is_empty());
    assert_eq!(world.mirror_writes(), 0);
}

#[tokio::test]
async fn a_denied_run_writes_nothing_exits_3_and_names_the_rule() {
    let world = World::start(KPROMO, 1);
    let f = Fixtures::new(None);
    let dsts = world.dsts();
    f.stage(&world, &dsts).await;
    let policy = write(world.dir.path(), "policy.yaml", POLICY);
    let log = world.dir.path().join("audit.jsonl");
    let run = world
        .spawn_confirm(&["--policy", path(&policy), "--actor", "alice", "--audit-log", path(&log)])
        .wait(120);
    run.expect_code(3);
    let rule_at = format!("denied by rule 'no-latest' ({}:7)", policy.display());
    assert!(run.stderr.contains(&rule_at), "{}", run.stderr);
    assert!(
        run.stderr.contains("1 edges denied by policy, nothing was promoted"),
        "{}",
        run.stderr
    );
    assert_eq!(world.mirror_writes(), 0, "access log: {:?}", world.proxies[0].seen());
    assert_eq!(
        crate::support::world::tags(&world.mirrors[0], "prod/foo").await,
        Vec::<String>::new()
    );

    let records = audit_records(&log);
    let denied: Vec<_> = events(&records, "policy")
        .into_iter()
        .filter(|p| p["effect"] == "deny")
        .collect();
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["edge"]["tag"], "latest");
    assert_eq!(denied[0]["rule"], "no-latest");
    assert_eq!(denied[0]["at"], format!("{}:7", policy.display()));
    assert!(events(&records, "write").is_empty());
    let end = records.last().unwrap();
    assert_eq!(end["event"], "run_end");
    assert_eq!(end["exit_code"], 3);
    assert_eq!(end["totals"]["denied"], 1);
    assert_eq!(run.summary["policy_denied"], 1);

    // An actor in no role is denied by default: every edge, still nothing written.
    let run = world
        .spawn_confirm(&["--policy", path(&policy), "--actor", "mallory"])
        .wait(120);
    run.expect_code(3);
    assert!(run.stderr.contains("5 edges denied by policy"), "{}", run.stderr);
    assert!(run.stderr.contains("no rule allows it (default deny"), "{}", run.stderr);
    assert_eq!(world.mirror_writes(), 0);
}

/// Only images built by our builder: a condition on the provenance facts.
const BUILT_BY_US: &str = "\
rules:
- name: built-by-our-builder
  effect: allow
  condition: 'provenance.verified && provenance.builder_id == \"https://builder.example/v1\"'
default: deny
";

/// The policy sees what the Provenance phase verified: an image whose staging attestation
/// (made with openssl over a hand-written DSSE envelope, not by kpromo) verifies with the
/// builder's key is allowed; one without is denied, before anything is written.
#[tokio::test]
async fn a_condition_on_verified_provenance_allows_the_attested_image_and_denies_the_other() {
    let world = World::start(KPROMO, 1);
    let builder = SigningKey::generate(world.dir.path(), "builder");
    let built = Image::simple(Format::Oci, 81);
    let plain = Image::simple(Format::Oci, 82);
    let pusher = world.staging.pusher();
    within(60, "push and attest staging images", async {
        pusher.push_image("staging/built", &built, &[]).await;
        pusher.push_image("staging/plain", &plain, &[]).await;
        let statement = provenance(&built.digest, SLSA_V1, "https://builder.example/v1");
        let subject = Subject {
            media_type: built.media_type(),
            digest: &built.digest,
            size: built.manifest.len() as u64,
        };
        let bundle = key_dsse_bundle(&statement, &builder).to_string();
        Referrer::bundle(subject, bundle, SLSA_V1)
            .attach(&pusher, "staging/built", &built.digest, true)
            .await;
    })
    .await;
    let policy = write(world.dir.path(), "policy.yaml", BUILT_BY_US);
    let log = world.dir.path().join("audit.jsonl");
    let args = [
        "--policy",
        path(&policy),
        "--actor",
        "alice",
        "--audit-log",
        path(&log),
        "--provenance-key",
        path(&builder.public),
    ];
    let project = |images: &[(&str, &Image)]| {
        let specs: Vec<_> = images
            .iter()
            .map(|(name, image)| (*name, vec![(image.digest.as_str(), vec!["1.0"])]))
            .collect();
        world.write_project("p", &world.src(), &world.dsts(), &specs);
    };

    project(&[("built", &built), ("plain", &plain)]);
    let run = world.spawn_confirm(&args).wait(120);
    run.expect_code(3);
    assert!(run.stderr.contains("1 edges denied by policy"), "{}", run.stderr);
    assert!(run.stderr.contains("prod/plain:1.0"), "{}", run.stderr);
    assert!(run.stderr.contains("no rule allows it (default deny"), "{}", run.stderr);
    assert_eq!(world.mirror_writes(), 0, "access log: {:?}", world.proxies[0].seen());
    let records = audit_records(&log);
    let verdicts: BTreeMap<String, (String, String)> = events(&records, "policy")
        .into_iter()
        .map(|p| (text(&p["edge"]["image"]), (text(&p["effect"]), text(&p["rule"]))))
        .collect();
    assert_eq!(
        verdicts,
        BTreeMap::from([
            ("built".into(), ("allow".into(), "built-by-our-builder".into())),
            ("plain".into(), ("deny".into(), String::new())),
        ])
    );
    assert!(events(&records, "write").is_empty());

    // The attested image alone is allowed and promoted.
    project(&[("built", &built)]);
    let run = world.spawn_confirm(&args).wait(120);
    run.expect_code(0);
    assert_eq!(run.summary["provenance"]["verified"].as_u64(), Some(1));
    assert_eq!(
        crate::support::world::tags(&world.mirrors[0], "prod/built").await,
        vec!["1.0".to_string()]
    );
}

#[tokio::test]
async fn bad_policies_and_unwritable_audit_logs_stop_before_any_registry_request() {
    let world = World::start(KPROMO, 1);
    let f = Fixtures::new(None);
    let dsts = world.dsts();
    f.stage(&world, &dsts).await;
    world.clear_seen();
    let bad = write(
        world.dir.path(),
        "bad.yaml",
        "rules:\n- name: x\n  effect: allow\n  condition: provenance.verifed\n",
    );
    let run = world.spawn_confirm(&["--policy", path(&bad)]).wait(60);
    run.expect_code(2);
    assert!(
        run.stderr.contains(&format!(
            "{}:4:14: rule 'x': condition: column 11: provenance has no field 'verifed'",
            bad.display()
        )),
        "{}",
        run.stderr
    );
    let missing = world.dir.path().join("missing.yaml");
    world
        .spawn_confirm(&["--policy", path(&missing)])
        .wait(60)
        .expect_code(2);
    let unwritable = world.dir.path().join("no-such-dir/audit.jsonl");
    let run = world.spawn_confirm(&["--audit-log", path(&unwritable)]).wait(60);
    run.expect_code(2);
    assert!(run.stderr.contains("cannot open it for appending"), "{}", run.stderr);
    assert!(world.staging_proxy.seen().is_empty() && world.proxies[0].seen().is_empty());
}

#[tokio::test]
async fn kill_9_mid_run_leaves_whole_records_and_the_next_run_appends() {
    let world = World::start(KPROMO, 1);
    let f = Fixtures::new(Some(Blob::big(75, 24 << 20)));
    let dsts = world.dsts();
    f.stage(&world, &dsts).await;
    // Staging blob bodies at 4 MiB/s: the big layer takes 6 s, small writes land first.
    world.staging_proxy.set_rules(vec![Rule::new(
        Some("GET"),
        "/blobs/sha256:",
        Action::Slow { bytes_per_sec: 4 << 20 },
        Times::Always,
    )]);
    let log = world.dir.path().join("audit.jsonl");
    let running = world.spawn_confirm(&["--audit-log", path(&log)]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("\"event\":\"write\"")
    {
        assert!(Instant::now() < deadline, "no write record within 120 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Dropping a running process kills it with SIGKILL: no handler, no flush.
    drop(running);
    let prefix = audit_records(&log);
    assert_eq!(prefix[0]["event"], "run_start");
    assert!(events(&prefix, "run_end").is_empty(), "killed before its end");
    assert!(!events(&prefix, "write").is_empty());

    world.staging_proxy.set_rules(vec![]);
    world
        .spawn_confirm(&["--audit-log", path(&log)])
        .wait(180)
        .expect_code(0);
    let all = audit_records(&log);
    assert_eq!(&all[..prefix.len()], &prefix[..]);
    let second = &all[prefix.len()..];
    assert_eq!(second[0]["event"], "run_start");
    assert_eq!(second.last().unwrap()["exit_code"], 0);
    assert_eq!(world.mirrors[0].skopeo_tags("prod/bar"), ["3.0"]);
}

#[tokio::test]
async fn no_secret_reaches_the_audit_log() {
    // A mirror that needs Basic credentials, from the run's docker config.
    let world = World::start(KPROMO, 0);
    let mirror = TestRegistry::start(RegistryOptions::basic());
    DockerConfig::at(&world.dir.path().join("empty-docker-config")).login(&mirror.host(), USER, PASSWORD);
    let f = Fixtures::new(None);
    f.stage(&world, &[format!("{}/prod", mirror.host())]).await;
    let log = world.dir.path().join("audit.jsonl");
    world
        .spawn_confirm(&["--audit-log", path(&log), "--actor", "alice"])
        .wait(180)
        .expect_code(0);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("\"event\":\"write\""),
        "the run wrote through the credentials"
    );
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    for secret in [PASSWORD, basic.as_str()] {
        assert!(!text.contains(secret), "a secret reached the audit log");
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 test path")
}

/// Runs `kpromo` with `args` (no credentials), bounded.
fn kpromo(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(KPROMO)
        .args(args)
        .env("DOCKER_CONFIG", dir.join("empty-docker-config"))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run kpromo");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
        summary: serde_json::Value::Null,
    }
}

/// A policy over the fixtures' names, from generated choices.
fn generated_policy(rules: &[(bool, u8, u8, u8, u8)], default_allow: bool) -> String {
    const ROLES: [&str; 3] = ["", "roles: [rm]", "roles: [bots]"];
    const IMAGES: [&str; 4] = ["", "images: [foo]", "images: [\"b*\"]", "images: [foo, bar]"];
    const TAGS: [&str; 5] = [
        "",
        "tags: [latest]",
        "tags: [\"?.0\"]",
        "tags: [\"\"]",
        "tags: [\"3.*\", latest]",
    ];
    const CONDITIONS: [&str; 8] = [
        "",
        "condition: 'decision == \"copy\"'",
        "condition: 'image.size > 1000'",
        "condition: 'provenance.verified'",
        "condition: 'edge.tag.startsWith(\"1\")'",
        "condition: '\"rm\" in actor.roles && edge.image == \"bar\"'",
        "condition: 'now > timestamp(\"2020-01-01T00:00:00Z\")'",
        "condition: 'staging_signature.present || edge.tag == \"latest\"'",
    ];
    let mut yaml = String::from("roles:\n  rm: [alice]\n  bots: [\"robot-*\"]\nrules:\n");
    for (i, (allow, role, image, tag, condition)) in rules.iter().enumerate() {
        yaml.push_str(&format!(
            "- name: r{i}\n  effect: {}\n",
            if *allow { "allow" } else { "deny" }
        ));
        for line in [
            ROLES[*role as usize % ROLES.len()],
            IMAGES[*image as usize % IMAGES.len()],
            TAGS[*tag as usize % TAGS.len()],
            CONDITIONS[*condition as usize % CONDITIONS.len()],
        ] {
            if !line.is_empty() {
                yaml.push_str(&format!("  {line}\n"));
            }
        }
    }
    yaml.push_str(if default_allow {
        "default: allow\n"
    } else {
        "default: deny\n"
    });
    yaml
}

/// `kpromo policy check` and `kpromo cip` on the same manifests, policy and actor agree:
/// an edge check allows, cip allows; an edge check denies, cip denies; an edge that
/// depends on registry state may go either way. The mirror stays empty (dry runs), so
/// every edge is a `copy` and cip checks them all.
#[test]
fn policy_check_agrees_with_what_cip_enforces() {
    let world = World::start(KPROMO, 1);
    let f = Fixtures::new(None);
    let dsts = world.dsts();
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(f.stage(&world, &dsts));
    let dir = world.dir.path().to_path_buf();
    let case = std::sync::atomic::AtomicUsize::new(0);
    let config = ProptestConfig {
        cases: 16,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(
        rules in proptest::collection::vec((any::<bool>(), 0..3u8, 0..4u8, 0..5u8, 0..8u8), 1..5),
        default_allow in any::<bool>(),
        actor in prop::sample::select(vec!["alice", "robot-x", "mallory"]),
    )| {
        let case = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let policy = write(&dir, &format!("policy-{case}.yaml"), &generated_policy(&rules, default_allow));
        let log = dir.join(format!("audit-{case}.jsonl"));
        let check = kpromo(&dir, &["policy", "check", "--policy", path(&policy), "--thin-manifest-dir", path(&dir), "--actor", actor, "--output", "json"]);
        let report: serde_json::Value = serde_json::from_str(&check.stdout)
            .unwrap_or_else(|e| panic!("policy check output ({e}):\n{}\n{}", check.stdout, check.stderr));
        let offline = |list: &str| -> Vec<String> {
            report[list].as_array().into_iter().flatten().map(|f| text(&f["destination"])).collect()
        };
        let (denied, depends) = (offline("denied"), offline("depends"));
        prop_assert_eq!(check.code, Some(if denied.is_empty() { 0 } else { 3 }));

        let cip = world.spawn(&["--policy", path(&policy), "--actor", actor, "--audit-log", path(&log)]).wait(120);
        let records = audit_records(&log);
        let verdicts = events(&records, "policy");
        prop_assert_eq!(verdicts.len(), 5, "every edge is a copy on the empty mirror");
        for v in verdicts {
            let e = &v["edge"];
            let destination = if text(&e["tag"]).is_empty() {
                format!("{}/{}@{}", text(&e["dst_registry"]), text(&e["image"]), text(&e["digest"]))
            } else {
                format!("{}/{}:{}", text(&e["dst_registry"]), text(&e["image"]), text(&e["tag"]))
            };
            if denied.contains(&destination) {
                prop_assert_eq!(&v["effect"], "deny", "{}: check denies it", destination);
            } else if !depends.contains(&destination) {
                prop_assert_eq!(&v["effect"], "allow", "{}: check allows it", destination);
            }
        }
        let cip_denied = events(&records, "policy").iter().any(|v| v["effect"] == "deny");
        prop_assert_eq!(cip.code, Some(if cip_denied { 3 } else { 0 }), "{}", cip.stderr);
        prop_assert_eq!(world.mirror_writes(), 0);
    });
}
