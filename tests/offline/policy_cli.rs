//! `kpromo policy check` and `kpromo policy test` on the plain-manifest fixture, as a CI
//! job on a manifest or policy pull request runs them: exit codes, text and JSON
//! reports, problems with their positions.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/plain/manifest.yaml")
}

fn kpromo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kpromo"))
        .args(args)
        .env_remove("JOB_SPEC")
        .env_remove("GITHUB_ACTOR")
        .output()
        .expect("run kpromo")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn check(policy: &Path, actor: &str, extra: &[&str]) -> Output {
    let manifest = fixture();
    let mut args = vec![
        "policy",
        "check",
        "--policy",
        policy.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
        "--actor",
        actor,
    ];
    args.extend_from_slice(extra);
    kpromo(&args)
}

/// Owners may promote; `latest` never; `apple` needs verified provenance.
const POLICY: &str = "\
roles:
  owners: [alice]
rules:
- name: owners-promote
  effect: allow
  roles: [owners]
- name: no-latest
  effect: deny
  tags: [latest]
- name: apple-needs-provenance
  effect: deny
  images: [apple]
  condition: '!provenance.verified'
";

#[test]
fn check_exits_3_on_a_denied_edge_and_names_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, POLICY).unwrap();

    let out = check(&policy, "alice", &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    // Two destinations for apple:latest, denied whatever the registries say.
    let latest: Vec<&str> = report.lines().filter(|l| l.contains("apple:latest")).collect();
    assert_eq!(latest.len(), 2, "{report}");
    assert!(
        latest
            .iter()
            .all(|l| l.starts_with("deny: ")
                && l.ends_with(&format!("denied by rule 'no-latest' ({}:7)", policy.display()))),
        "{report}"
    );
    // The other apple edges hinge on provenance, which only the registries can show.
    assert!(
        report.contains(&format!(
            "depends on registry state (rule 'apple-needs-provenance' ({}:10))",
            policy.display()
        )),
        "{report}"
    );
    assert!(
        report.ends_with("8 edges for alice (roles: owners): 2 allowed, 2 denied, 4 depend on registry state\n"),
        "{report}"
    );

    let json = check(&policy, "alice", &["--output", "json"]);
    assert_eq!(json.status.code(), Some(3));
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON report");
    assert_eq!(json["actor"], "alice");
    assert_eq!(json["actor_source"], "flag");
    assert_eq!(json["allowed"], 2);
    assert_eq!(json["denied"][0]["rule"], "no-latest");
    assert_eq!(json["denied"][0]["at"], format!("{}:7", policy.display()));

    // An actor in no role: everything is denied by default.
    let out = check(&policy, "mallory", &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stdout)
            .ends_with("8 edges for mallory (no roles): 0 allowed, 8 denied, 0 depend on registry state\n")
    );
}

#[test]
fn check_exits_0_when_nothing_is_denied() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, "rules:\n- name: anyone\n  effect: allow\n").unwrap();
    let out = check(&policy, "bob", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).ends_with("8 edges for bob (no roles): 8 allowed, 0 denied, 0 depend on registry state\n")
    );
}

#[test]
fn invalid_policies_exit_2_with_every_problem_and_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "rules:\n- name: a\n  effect: allow\n  condition: 'edge.tag == 1'\n- name: a\n  effect: deny\n",
    )
    .unwrap();
    let out = check(&policy, "alice", &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    let p = policy.display();
    assert!(
        err.contains(&format!(
            "{p}:4:14: rule 'a': condition: column 10: no '==' for (string, int)"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("{p}:5:9: duplicate rule name 'a' (first at line 2)")),
        "{err}"
    );

    std::fs::write(&policy, "rules:\n- name: a\n  effect: allow\n  registry: [x]\n").unwrap();
    let out = check(&policy, "alice", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains(&format!("{p}:4:3: unknown field `registry`")),
        "{}",
        text(&out.stderr)
    );

    let out = check(&dir.path().join("missing.yaml"), "alice", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("missing.yaml: no such file or directory"));
}

#[test]
fn policy_test_runs_table_tests() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policy.yaml"), POLICY).unwrap();
    let edge = "{src_registry: gcr.io/example-staging, dst_registry: us-central1-docker.pkg.dev/example-prod/images";
    let tests = format!(
        "policy: policy.yaml\ncases:\n\
         - name: owners promote\n  actor: alice\n  edge: {edge}, image: banana/split, tag: \"1.0\"}}\n  expect: allow\n\
         - name: verified apple\n  actor: alice\n  edge: {edge}, image: apple, tag: \"1.10\"}}\n  provenance: {{verified: true}}\n  expect: allow\n\
         - name: unverified apple\n  actor: alice\n  edge: {edge}, image: apple, tag: \"1.10\"}}\n  expect: deny\n  rule: apple-needs-provenance\n"
    );
    let file = dir.path().join("policy_test.yaml");
    std::fs::write(&file, &tests).unwrap();
    let out = kpromo(&["policy", "test", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        text(&out.stdout).ends_with("3 cases: 3 passed, 0 failed\n"),
        "{}",
        text(&out.stdout)
    );

    std::fs::write(&file, tests.replace("expect: deny", "expect: allow")).unwrap();
    let out = kpromo(&["policy", "test", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let report = text(&out.stdout);
    assert!(
        report.contains("FAIL: unverified apple (")
            && report.contains(
                "expected allow by rule 'apple-needs-provenance', got: denied by rule 'apple-needs-provenance'"
            ),
        "{report}"
    );
}

#[test]
fn the_removed_allow_lists_point_at_policies() {
    for flag in ["--allowed-builders=x", "--allowed-source-repos=y"] {
        let out = kpromo(&["cip", "--thin-manifest-dir", "/nonexistent", flag]);
        assert_eq!(out.status.code(), Some(2));
        let err = text(&out.stderr);
        assert!(err.contains("--policy FILE") && err.contains("docs/policy.md"), "{err}");
    }
}
