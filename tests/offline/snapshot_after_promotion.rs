//! After a real promotion of the bundled demo (OCI layout directories, no server), what
//! each mirror holds (`--snapshot`) must be exactly what the manifests promise it
//! (`--manifest-based-snapshot-of`), once the tagless children of indexes that a walk
//! cannot see are trimmed from the promise (`--minimal-snapshot`).
use std::path::Path;
use std::process::{Command, Output};

const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/demo");

fn kpromo(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_kpromo"))
        .current_dir(dir)
        .args(["--log-level", "error"])
        .args(args)
        .output()
        .expect("run kpromo");
    assert_eq!(
        out.status.code(),
        Some(0),
        "kpromo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read demo") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[test]
fn each_mirror_holds_what_the_manifests_promise() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(Path::new(DEMO), dir.path());
    // Unsigned: signatures are tags (`sha256-<hex>.sig`) the manifests do not promise.
    kpromo(
        dir.path(),
        &["cip", "--thin-manifest-dir", ".", "--confirm", "--sign=false"],
    );

    // `kpromo cip ARGS` must succeed; its stdout.
    let cip = |args: &[&str]| {
        let out = kpromo(dir.path(), &[&["cip"], args].concat()).stdout;
        String::from_utf8(out).expect("UTF-8")
    };
    for mirror in ["oci:./mirrors/eu", "oci:./mirrors/us", "oci:./mirrors/asia"] {
        let promise = ["--thin-manifest-dir", ".", "--manifest-based-snapshot-of", mirror];
        let walked = cip(&["--snapshot", mirror]);
        let promised = cip(&promise);
        let trimmed = cip(&[&promise[..], &["--minimal-snapshot"]].concat());
        assert!(
            walked.contains("- name: tools/pause\n"),
            "{mirror} was promoted:\n{walked}"
        );
        assert_eq!(walked, trimmed, "{mirror}: walked inventory vs minimal promise");
        // The demo promotes one index child on its own, by digest: the full promise has
        // exactly one more (tagless) line than what a walk can see.
        assert_eq!(
            promised.lines().count(),
            walked.lines().count() + 1,
            "{mirror}:\n{promised}"
        );
        assert_eq!(
            promised.lines().filter(|l| l.ends_with(": []")).count(),
            1,
            "{promised}"
        );
    }
}
