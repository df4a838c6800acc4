//! The Indexed Job of docs/kubernetes.md, exactly as documented, validated against the
//! Kubernetes OpenAPI schema by `kubernetes-validate` (PyPI, strict: unknown fields are
//! errors), installed into the test cache by scripts/kube-tools.sh. No API server runs
//! here; the Job's command line is run by tests/e2e/shard_e2e.rs.
use std::process::Command;

use crate::support::kube_job::{container_args, job, job_yaml};

/// Path of the validator program, installed on first use.
fn validator() -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kube-tools.sh");
    let out = Command::new("bash")
        .arg(script)
        .output()
        .expect("run scripts/kube-tools.sh");
    assert!(
        out.status.success(),
        "kube-tools.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 path").trim().to_string()
}

fn validate(yaml: &str) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("job.yaml");
    std::fs::write(&file, yaml).expect("write job.yaml");
    let out = Command::new(validator())
        .args(["--strict", "--kubernetes-version", "1.33.0"])
        .arg(&file)
        .output()
        .expect("run kubernetes-validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_documented_job_is_a_valid_indexed_job_running_one_shard_per_index() {
    let (valid, text) = validate(&job_yaml());
    assert!(valid, "{text}");
    assert!(text.contains("passed for resource job/kpromo-promote"), "{text}");
    // The validator is not a rubber stamp.
    let broken = job_yaml().replace("  parallelism: 3\n", "  parallelism: 3\n  parallelismo: 3\n");
    let (valid, text) = validate(&broken);
    assert!(!valid && text.contains("parallelismo"), "{text}");

    let job = job();
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    assert_eq!(spec["completions"], spec["parallelism"]);
    let args = container_args(&job);
    let shards = format!("--shards={}", spec["completions"]);
    assert!(args.contains(&shards), "{args:?} should hold {shards}");
    assert_eq!(args[0], "cip");
    assert!(args.iter().any(|a| a == "--confirm"), "{args:?}");
    assert!(
        args.iter().any(|a| a.contains("$(JOB_COMPLETION_INDEX)")),
        "one summary per shard: {args:?}"
    );
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["restartPolicy"], "Never");
}
