//! The `kpromo` command line as a user meets it: help texts, refusals of flags Go
//! removed, usage errors and their exit codes, version and completion output.
use std::process::{Command, Output};

/// A manifest directory that does not exist: runs get past flag parsing, log, and stop
/// offline.
const MISSING_DIR: &str = "/nonexistent/kpromo-cli-test";

fn kpromo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kpromo"))
        .args(args)
        .env_remove("JOB_TYPE")
        .env_remove("PULL_BASE_SHA")
        .output()
        .expect("run kpromo")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every `kpromo cip` flag of Go kpromo (its `cip` command's persistent flags) with its default as shown in help.
const GO_FLAGS: &[(&str, Option<&str>)] = &[
    ("--confirm", Some("false")),
    ("--manifest", None),
    ("--thin-manifest-dir", None),
    ("--use-prow-manifest-diff", Some("false")),
    ("--manifest-diff-since", None),
    ("--parse-only", Some("false")),
    ("--snapshot", None),
    ("--snapshot-tag", None),
    ("--minimal-snapshot", Some("false")),
    ("--output", Some("yaml")),
    ("--manifest-based-snapshot-of", None),
    ("--max-image-size", Some("0")),
    (
        "--signer-account",
        Some("krel-trust@k8s-releng-prod.iam.gserviceaccount.com"),
    ),
    (
        "--certificate-identity",
        Some("krel-trust@k8s-releng-prod.iam.gserviceaccount.com"),
    ),
    ("--certificate-oidc-issuer", Some("https://accounts.google.com")),
    ("--certificate-identity-regexp", None),
    ("--certificate-oidc-issuer-regexp", None),
    ("--sign", Some("true")),
    ("--max-signature-ops", Some("50")),
    ("--vuln-severity-threshold", Some("-1")),
];

const KPROMO_FLAGS: &[(&str, Option<&str>)] = &[
    ("--fail-on-lost", Some("false")),
    ("--plan-out", None),
    ("--summary-json", None),
    // A ceiling only when given: each host starts at 50/s and adapts.
    ("--registry-rate-limit", None),
    ("--registry-burst", Some("16")),
    ("--registry-max-concurrency", Some("32")),
    ("--registry-quota", None),
    ("--registry-config", None),
    ("--registry-response-timeout", Some("60s")),
    ("--registry-stall-timeout", Some("30s")),
    ("--registry-min-transfer-rate", Some("100000")),
    ("--registry-retry-timeout", Some("15m")),
    ("--registry-ca-file", None),
    ("--insecure-registry", None),
    ("--signing-key", None),
    ("--signing-key-password-file", None),
    ("--identity-token", None),
    ("--fulcio-url", Some("https://fulcio.sigstore.dev")),
    ("--rekor-url", Some("https://rekor.sigstore.dev")),
    ("--signature-registry", None),
    ("--canonical-registry-prefix", Some("us-central1-docker.pkg.dev")),
    (
        "--signing-identity-rewrite",
        Some("k8s-artifacts-prod/images=registry.k8s.io"),
    ),
    ("--replicate-signatures", Some("false")),
    ("--staging-signature-key", None),
    ("--require-staging-signature", Some("false")),
    ("--trusted-root", None),
    ("--registry-max-tag-pages", Some("1000")),
    ("--registry-max-tags", Some("1000000")),
    ("--registry-max-catalog-pages", Some("1000")),
    ("--registry-max-referrers-bytes", Some("4194304")),
    ("--canary", None),
    ("--rollout-waves", None),
    ("--verify-sample", Some("0.1")),
    ("--max-error-rate", Some("5%")),
    ("--rollback-on-failure", Some("false")),
    ("--shard", None),
    ("--shards", None),
];

/// The help paragraph of one flag: from its line to the next flag line.
fn flag_help<'a>(help: &'a str, flag: &str) -> Option<&'a str> {
    let start = help
        .find(&format!("      {flag} "))
        .or_else(|| help.find(&format!("      {flag}[")))?;
    let rest = &help[start + 6..];
    let end = rest.find("\n      --").map_or(rest.len(), |i| i + 1);
    Some(&rest[..end])
}

#[test]
fn cip_long_help_explains_every_go_and_kpromo_flag_with_its_default() {
    let out = kpromo(&["cip", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = stdout(&out);
    for (flag, default) in GO_FLAGS.iter().chain(KPROMO_FLAGS) {
        let text = flag_help(&help, flag).unwrap_or_else(|| panic!("{flag} missing from cip --help:\n{help}"));
        let words = text.split_whitespace().count();
        assert!(words >= 6, "{flag} has no real explanation: {text:?}");
        if let Some(default) = default {
            assert!(
                text.contains(&format!("[default: {default}]")),
                "{flag} should show default {default}: {text:?}"
            );
        }
    }
}

#[test]
fn max_image_size_is_hidden_from_short_help_but_explained_in_long_help() {
    let short = stdout(&kpromo(&["cip", "-h"]));
    assert!(!short.contains("--max-image-size"), "{short}");
    let long = stdout(&kpromo(&["cip", "--help"]));
    let text = flag_help(&long, "--max-image-size").expect("in --help");
    assert!(text.contains("No effect"), "{text}");
}

#[test]
fn root_help_lists_the_commands_and_logging_flags() {
    let out = kpromo(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = stdout(&out);
    for needle in [
        "cip",
        "manifest",
        "version",
        "completion",
        "--log-level",
        "--log-format",
    ] {
        assert!(help.contains(needle), "{needle} missing:\n{help}");
    }
    let manifest = stdout(&kpromo(&["manifest", "validate", "--help"]));
    assert!(manifest.contains("file:line:col"), "{manifest}");
}

#[test]
fn removed_flags_are_refused_with_exit_2_and_their_replacement() {
    let cases: &[(&[&str], &str)] = &[
        (&["--use-legacy-pipeline"], "phased pipeline"),
        (&["--require-provenance=true"], "attestation"),
        (&["--allowed-builders", "a,b"], "--certificate-identity"),
        (&["--allowed-source-repos=x"], "--certificate-identity"),
        (&["--generate-promotion-provenance"], "attest phase"),
        (&["--json-log-summary"], "--summary-json"),
        (&["--key-files", "k.json"], "Docker config"),
        (&["--snapshot-service-account=sa@x"], "Docker config"),
        (&["--use-service-account"], "Docker config"),
        (&["--max-signature-copies", "5"], "--max-signature-ops"),
    ];
    for (args, replacement) in cases {
        let mut argv = vec!["cip", "--thin-manifest-dir", "."];
        argv.extend_from_slice(args);
        let out = kpromo(&argv);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        let flag = args[0].split('=').next().unwrap_or_default();
        assert!(err.starts_with("Error: "), "{err}");
        assert!(err.contains(&format!("{flag} was removed")), "{args:?}: {err}");
        assert!(
            err.contains(replacement),
            "{args:?} should mention {replacement}: {err}"
        );
        assert!(stdout(&out).is_empty());
    }
}

#[test]
fn replicate_signatures_subcommand_is_refused() {
    let out = kpromo(&["cip", "replicate-signatures", "--whatever", "x"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("replicate-signatures` was removed"), "{err}");
    assert!(err.contains("no longer copied"), "{err}");
}

#[test]
fn promotion_without_manifests_is_a_usage_error() {
    let out = kpromo(&["cip", "--confirm"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("Error: at least a manifest file or thin manifest directory have to be specified"),
        "{}",
        stderr(&out)
    );
    // Go treats an empty flag value as unset.
    let out = kpromo(&["cip", "--manifest="]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn unknown_flags_and_bad_values_exit_2() {
    for args in [
        &["cip", "--no-such-flag"][..],
        &["cip", "--confirm=maybe", "--thin-manifest-dir", "."],
        &["cip", "--registry-rate-limit", "0", "--thin-manifest-dir", "."],
        &[
            "cip",
            "--registry-quota",
            "*-docker.pkg.dev=0/s",
            "--thin-manifest-dir",
            ".",
        ],
        &["cip", "--registry-quota", "host/path=5/s", "--thin-manifest-dir", "."],
        &["cip", "--registry-quota", "*=-5/s", "--thin-manifest-dir", "."],
        &["cip", "--registry-retry-timeout", "0s", "--thin-manifest-dir", "."],
        &["cip", "--registry-stall-timeout", "soon", "--thin-manifest-dir", "."],
        &["cip", "--max-signature-ops", "-3", "--thin-manifest-dir", "."],
        &["--log-level", "verbose", "version"],
        &["--log-format", "xml", "version"],
        &["nonsense"],
    ] {
        let out = kpromo(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).is_empty());
    }
}

#[test]
fn a_bad_registry_settings_file_exits_2_at_its_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        (
            "hosts:\n- host: '*.pkg.dev'\n  rate_limit: 5\n",
            ":3:3: unknown field `rate_limit`",
        ),
        ("hosts:\n- host: a\n  max-concurrency: -1\n", ":3:20: "),
        (
            "hosts:\n- host: a\n  rate-limit: 0\n",
            ":3:15: rate-limit must be at least 1",
        ),
        ("quotas:\n  ar: 0/min\n", ":2:7: "),
        ("hosts:\n- host: 'a/b'\n", ":2:9: "),
    ];
    for (i, (text, expected)) in cases.into_iter().enumerate() {
        let file = dir.path().join(format!("registries-{i}.yaml"));
        std::fs::write(&file, text).expect("write");
        let out = kpromo(&[
            "cip",
            "--registry-config",
            file.to_str().expect("utf-8 path"),
            "--thin-manifest-dir",
            ".",
        ]);
        assert_eq!(out.status.code(), Some(2), "{text:?}: {}", stderr(&out));
        let want = format!("registries-{i}.yaml{expected}");
        assert!(stderr(&out).contains(&want), "{want:?} in {}", stderr(&out));
    }
}

#[test]
fn go_style_booleans_and_logrus_levels_parse() {
    // These all get past flag parsing to the manifest check (exit 2 with Go's message),
    // proving the values themselves were accepted.
    for args in [
        &["cip", "--confirm=True", "--sign=false"][..],
        &["cip", "--parse-only=1", "--minimal-snapshot=F"],
        &["--log-level", "Warning", "cip"],
        &["cip", "--log-level=fatal"],
        &["cip", "--vuln-severity-threshold", "-1"],
    ] {
        let out = kpromo(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&out).contains("at least a manifest file"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn security_scan_mode_is_refused_with_an_explanation() {
    let out = kpromo(&["cip", "--thin-manifest-dir", ".", "--vuln-severity-threshold", "3"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("Container Analysis"), "{err}");
    assert!(err.contains("not supported"), "{err}");
}

#[test]
fn invalid_snapshot_output_format_is_named() {
    let out = kpromo(&["cip", "--snapshot", "127.0.0.1:1/x", "--output", "json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("Error: invalid snapshot output format: json"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn manifest_based_snapshot_needs_manifests_and_excludes_snapshot() {
    let out = kpromo(&["cip", "--manifest-based-snapshot-of", "gcr.io/prod"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("needs --manifest or --thin-manifest-dir"),
        "{}",
        stderr(&out)
    );

    let out = kpromo(&["cip", "--snapshot", "a", "--manifest-based-snapshot-of", "b"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot be used with"), "{}", stderr(&out));
}

#[test]
fn version_reports_version_commit_and_compiler() {
    let out = kpromo(&["version"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0], format!("kpromo {}", env!("CARGO_PKG_VERSION")));
    let commit = lines[1].strip_prefix("git commit: ").expect("commit line");
    assert!(
        commit == "unknown" || (commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{commit}"
    );
    assert!(lines[2].starts_with("rustc: rustc 1."), "{}", lines[2]);
}

#[test]
fn bash_completion_covers_subcommands_and_flags_but_not_removed_ones() {
    let out = kpromo(&["completion", "bash"]);
    assert_eq!(out.status.code(), Some(0));
    let script = stdout(&out);
    assert!(script.contains("complete -F _kpromo"), "not a bash completion script");
    for needle in [
        "cip",
        "validate",
        "--thin-manifest-dir",
        "--registry-rate-limit",
        "--log-level",
    ] {
        assert!(script.contains(needle), "{needle} missing");
    }
    assert!(!script.contains("--use-legacy-pipeline"));
    // The removed subcommand is not offered (the flag --replicate-signatures is kpromo's).
    assert!(!script.contains(" replicate-signatures"), "{script}");

    let out = kpromo(&["completion", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn json_logs_are_json_lines_on_stderr() {
    let out = kpromo(&["--log-format", "json", "cip", "--thin-manifest-dir", MISSING_DIR]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("Options to check the Signatures"), "{err}");
    // Every stderr line is one JSON object, the final error included.
    let lines: Vec<serde_json::Value> = err
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect();
    assert!(
        lines
            .iter()
            .all(|v| v.get("timestamp").is_some() && v.get("level").is_some()),
        "{err}"
    );
    let last = lines.last().expect("an error line");
    assert_eq!(last["level"], "ERROR", "{err}");
    assert_eq!(last["fields"]["exit_code"], 2, "{err}");
    assert!(
        last["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(MISSING_DIR)),
        "{err}"
    );
}

#[test]
fn text_logs_carry_go_style_clock_timestamps() {
    let out = kpromo(&["cip", "--thin-manifest-dir", MISSING_DIR]);
    let err = stderr(&out);
    let first = err.lines().next().unwrap_or_default();
    let stamp = first.split_whitespace().next().unwrap_or_default();
    let ok = stamp.len() == 12
        && stamp.chars().enumerate().all(|(i, c)| match i {
            2 | 5 => c == ':',
            8 => c == '.',
            _ => c.is_ascii_digit(),
        });
    assert!(ok, "expected HH:MM:SS.mmm at the start of {first:?}");
    assert!(first.contains("Options to check the Signatures"), "{first}");
}

/// Bad sharding and rollout input: exit 2 with a message naming the problem, before any
/// manifest is read (the manifest directory does not even exist).
#[test]
fn bad_shard_and_rollout_flags_exit_2_with_a_clear_message() {
    let dir = format!("--thin-manifest-dir={MISSING_DIR}");
    let cases: [(&[&str], Option<&str>, &str); 15] = [
        (&["--shard=3/2"], None, "there is no shard 3 of 2"),
        (&["--shard=0/0"], None, "cannot be split into 0 shards"),
        (&["--shard=one/two"], None, "is not a shard"),
        (&["--shard=1"], None, "\"1\" is not a shard: write INDEX/COUNT"),
        (&["--shard=-1/3"], None, "is not a shard"),
        (&["--shard=1/3x"], None, "is not a shard"),
        (&["--shards=three"], Some("1"), "invalid value"),
        (&["--shards=0"], Some("0"), "invalid value '0'"),
        (
            &["--shards=3"],
            Some("one"),
            "JOB_COMPLETION_INDEX=\"one\" is not a shard index",
        ),
        (
            &["--shard=1/3", "--shards=3"],
            Some("1"),
            "'--shard <INDEX/COUNT>' cannot be used with '--shards <N>'",
        ),
        (&["--shards=3"], None, "JOB_COMPLETION_INDEX"),
        (&["--shards=3"], Some("3"), "there is no shard 3 of 3"),
        (
            &["--shard=1/3"],
            Some("2"),
            "--shard 1/3 conflicts with JOB_COMPLETION_INDEX=2",
        ),
        (
            &["--rollback-on-failure"],
            None,
            "--rollback-on-failure needs a staged rollout",
        ),
        (&["--canary=x", "--max-error-rate=120%"], None, "is not a rate"),
    ];
    for (args, job_index, message) in cases {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kpromo"));
        command
            .arg("cip")
            .arg(&dir)
            .args(args)
            .env_remove("JOB_COMPLETION_INDEX");
        if let Some(index) = job_index {
            command.env("JOB_COMPLETION_INDEX", index);
        }
        let out = command.output().expect("run kpromo");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
}

/// A `--canary` that names none of the destinations: exit 2 naming it and the
/// destinations, before any registry is opened (the demo's `oci:` mirrors are not created).
#[test]
fn a_canary_that_is_not_a_destination_exits_2_before_any_registry_is_opened() {
    let work = tempfile::tempdir().expect("tempdir");
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo");
    for (sub, file) in [("manifests", "promoter-manifest.yaml"), ("images", "images.yaml")] {
        let dir = work.path().join(sub).join("demo");
        std::fs::create_dir_all(&dir).expect("create manifest dir");
        std::fs::copy(demo.join(sub).join("demo").join(file), dir.join(file)).expect("copy the demo's manifests");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_kpromo"))
        .current_dir(work.path())
        .args(["cip", "--thin-manifest-dir=.", "--confirm", "--sign=false"])
        .args(["--canary=oci:./mirrors/mars", "--rollback-on-failure"])
        .env_remove("JOB_COMPLETION_INDEX")
        .output()
        .expect("run kpromo");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--canary oci:./mirrors/mars: no destination registry is named so")
            && stderr(&out).contains("oci:./mirrors/eu"),
        "{}",
        stderr(&out)
    );
    let mut created: Vec<String> = std::fs::read_dir(work.path())
        .expect("read the work dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    created.sort();
    assert_eq!(created, ["images", "manifests"], "no registry was opened or written");
}
