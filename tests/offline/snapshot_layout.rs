//! `kpromo cip --snapshot oci:DIR` on the committed demo staging area (one OCI image
//! layout per repository): offline, and the output must list exactly the tags found in
//! the layouts' index.json files, read here with serde_json as an independent reader.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const STAGING: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/demo/staging");
const REF_NAME: &str = "org.opencontainers.image.ref.name";

type Inventory = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn kpromo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kpromo"))
        .args(args)
        .output()
        .expect("run kpromo")
}

fn layouts(dir: &Path, out: &mut Vec<PathBuf>) {
    if dir.join("oci-layout").is_file() {
        out.push(dir.to_path_buf());
    }
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() && path.file_name().is_some_and(|n| n != "blobs") {
            layouts(&path, out);
        }
    }
}

/// Tagged manifests of every layout under STAGING, by repository path.
fn expected() -> Inventory {
    let mut dirs = Vec::new();
    layouts(Path::new(STAGING), &mut dirs);
    assert!(dirs.len() >= 3, "demo staging has several repositories: {dirs:?}");
    let mut inventory = Inventory::new();
    for dir in dirs {
        let repo = dir
            .strip_prefix(STAGING)
            .expect("below staging")
            .to_string_lossy()
            .into_owned();
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("index.json")).expect("index.json")).expect("JSON");
        for m in index["manifests"].as_array().expect("manifests") {
            let Some(tag) = m["annotations"][REF_NAME].as_str() else {
                continue;
            };
            let digest = m["digest"].as_str().expect("digest").to_string();
            inventory
                .entry(repo.clone())
                .or_default()
                .entry(digest)
                .or_default()
                .insert(tag.to_string());
        }
    }
    inventory
}

/// Go's ToYAML rules, restated: sorted names, digests and tags; `%q` quoting (plain
/// double quotes for these ASCII values); fmt.Println's trailing newline.
fn go_yaml(inventory: &Inventory) -> String {
    let mut out = String::new();
    for (name, dmap) in inventory {
        out.push_str(&format!("- name: {name}\n  dmap:\n"));
        for (digest, tags) in dmap {
            let tags: Vec<String> = tags.iter().map(|t| format!("\"{t}\"")).collect();
            out.push_str(&format!("    \"{digest}\": [{}]\n", tags.join(", ")));
        }
    }
    out.push('\n');
    out
}

#[test]
fn layout_snapshot_lists_every_tag_of_every_repository() {
    let expected = expected();
    let out = kpromo(&["--log-level", "error", "cip", "--snapshot", &format!("oci:{STAGING}")]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), go_yaml(&expected));
}

#[test]
fn layout_snapshot_with_tag_filter_as_csv() {
    let mut lines = String::new();
    for (repo, dmap) in expected() {
        for (digest, tags) in dmap {
            if tags.contains("1.0") {
                lines.push_str(&format!("{repo}@{digest},{repo}:1.0\n"));
            }
        }
    }
    assert!(!lines.is_empty(), "the demo has a 1.0 tag");
    let out = kpromo(&[
        "--log-level",
        "error",
        "cip",
        "--snapshot",
        &format!("oci:{STAGING}"),
        "--snapshot-tag",
        "1.0",
        "--output",
        "csv",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{lines}\n"));
}
