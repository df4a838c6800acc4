//! Names as a grammar (issue 14): every registry and image name a run refuses, `kpromo
//! manifest validate` refuses too, offline, at its `file:line:col`, and both exit 2. A run
//! refuses them while loading, before any registry is contacted.
use std::path::Path;
use std::process::{Command, Output};

/// Registry names an outside tester found `manifest validate` accepting and runs refusing,
/// each with the start of its message.
fn hostile_registries() -> Vec<(String, &'static str)> {
    [
        ("http://gcr.io/proj", "a registry name has no scheme: drop \"http://\""),
        (
            "https://gcr.io/proj",
            "a registry name has no scheme: drop \"https://\"",
        ),
        ("user:pw@gcr.io/proj", "'@' has no place in a registry name"),
        ("gcr.io:99999/proj", "invalid port \"99999\""),
        ("gcr.io:5x02/proj", "invalid port \"5x02\""),
        ("gcr.io:0/proj", "invalid port \"0\""),
        ("gcr.io/proj?x=1", "a registry name has no query or fragment ('?')"),
        ("gcr.io/proj#x", "a registry name has no query or fragment ('#')"),
        ("gcr.io/my proj", "contains whitespace (' ')"),
        ("gcr.io/proj\\0", "contains a control character ('\\0')"),
        ("gcr.io/../proj", "path \"../proj\": \"..\" is not a path component"),
        ("gcr.io/Proj", "path \"Proj\": \"Proj\" has upper-case letters"),
        ("GCR.io/proj", "host \"GCR.io\" has upper-case letters"),
        ("gcr.iö/proj", "contains the non-ASCII character 'ö'"),
    ]
    .into_iter()
    .map(|(n, m)| (n.to_string(), m))
    .chain(std::iter::once((
        format!("gcr.io/{}", "a".repeat(100_000)),
        "100007 characters long; a registry name is at most",
    )))
    .collect()
}

fn kpromo(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kpromo"))
        .args(args)
        .arg(dir)
        .env("DOCKER_CONFIG", dir.join("no-docker-config"))
        .env_remove("JOB_TYPE")
        .env_remove("PULL_BASE_SHA")
        .output()
        .expect("run kpromo")
}

/// A thin tree with one project whose registries are `staging` plus `destinations`, and
/// whose images.yaml lists `images`.
fn tree(destinations: &[String], images: &[String]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut registries = String::from("registries:\n- name: gcr.io/k8s-staging-proj00\n  src: true\n");
    for d in destinations {
        // Double-quoted YAML, so that `\0` is a NUL and the rest stays verbatim.
        registries.push_str(&format!("- name: \"{d}\"\n"));
    }
    let mut listed = String::new();
    for image in images {
        listed.push_str(&format!(
            "- name: \"{image}\"\n  dmap:\n    \"sha256:{}\": [\"1.0\"]\n",
            "a".repeat(64)
        ));
    }
    for (sub, file, body) in [
        ("manifests/proj00", "promoter-manifest.yaml", registries),
        ("images/proj00", "images.yaml", listed),
    ] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        std::fs::write(dir.path().join(sub).join(file), body).unwrap();
    }
    dir
}

#[test]
fn every_registry_name_a_run_refuses_is_refused_offline_at_its_position() {
    let names = hostile_registries();
    let destinations: Vec<String> = names.iter().map(|(n, _)| n.clone()).collect();
    let dir = tree(&destinations, &["img000".to_string()]);
    let manifest = dir.path().join("manifests/proj00/promoter-manifest.yaml");

    let validate = kpromo(&["manifest", "validate"], dir.path());
    assert_eq!(validate.status.code(), Some(2));
    let report = String::from_utf8_lossy(&validate.stdout);
    let lines: Vec<&str> = report
        .lines()
        .filter(|l| l.contains("registries: invalid name"))
        .collect();
    assert_eq!(lines.len(), names.len(), "one problem per name:\n{report}");
    for (i, ((_, message), line)) in names.iter().zip(&lines).enumerate() {
        // Entry i starts on line 4 + i (after `registries:` and the two-line source).
        let at = format!("{}:{}:3: registries: invalid name ", manifest.display(), 4 + i);
        assert!(line.starts_with(&at), "{line}\nexpected at {at}");
        assert!(line.contains(&format!(": {message}")), "{line}\nexpected {message}");
        assert!(
            line.len() < 600,
            "a long name is not echoed whole: {} bytes",
            line.len()
        );
    }

    // The run refuses the same tree while loading (exit 2), naming the file and position.
    let run = kpromo(&["cip", "--thin-manifest-dir"], dir.path());
    assert_eq!(run.status.code(), Some(2), "{}", String::from_utf8_lossy(&run.stderr));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:4:3: registries: invalid name \"http://gcr.io/proj\"",
            manifest.display()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("phase 3/7"), "refused in the plan phase: {stderr}");
}

#[test]
fn image_names_cannot_leave_their_project_path_or_exceed_255() {
    let images = [
        "../proj01/img000".to_string(),
        "../../etc".to_string(),
        "a/./b".to_string(),
        "/abs".to_string(),
        "Img".to_string(),
        "i".repeat(300),
        "ok".to_string(),
    ];
    let dir = tree(&["us.gcr.io/k8s-artifacts-prod/proj00".to_string()], &images);
    let file = dir.path().join("images/proj00/images.yaml");
    let validate = kpromo(&["manifest", "validate"], dir.path());
    assert_eq!(validate.status.code(), Some(2));
    let report = String::from_utf8_lossy(&validate.stdout);
    let expected = [
        (
            1,
            "images: invalid name \"../proj01/img000\": \"..\" is not a path component",
        ),
        (4, "images: invalid name \"../../etc\": \"..\" is not a path component"),
        (7, "images: invalid name \"a/./b\": \".\" is not a path component"),
        (10, "images: invalid name \"/abs\": starts with '/'"),
        (13, "images: invalid name \"Img\": \"Img\" has upper-case letters"),
        (16, "images: invalid name \""),
    ];
    for (line, message) in expected {
        let at = format!("{}:{line}:3: {message}", file.display());
        assert!(report.contains(&at), "missing {at}\n{report}");
    }
    assert!(
        report.contains("300 characters long; a repository path is at most 255"),
        "{report}"
    );
    assert!(!report.contains(":19:3:"), "`ok` is fine: {report}");
    assert!(
        report.ends_with("1 manifests, 7 images, 7 digests, 7 tags, 1 edges\n"),
        "{report}"
    );

    // Within 255 alone, but not under the registry's path: refused too.
    let long = "i".repeat(230);
    let dir = tree(&["us.gcr.io/k8s-artifacts-prod/proj00".to_string()], &[long]);
    let report = String::from_utf8_lossy(&kpromo(&["manifest", "validate"], dir.path()).stdout).to_string();
    assert!(
        report.contains(":1:3: images: \"iiii")
            && report.contains(
                "under \"us.gcr.io/k8s-artifacts-prod/proj00\": the repository path would be 256 characters long"
            ),
        "{report}"
    );
}
