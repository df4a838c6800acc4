//! The bundled demo end to end: `scripts/demo.sh` with the built binary promotes
//! `examples/demo/staging` into three OCI-layout mirrors; the mirrors are then checked
//! with kpromo's own layout reader and with skopeo (independent client), and one more
//! rerun must not write a single file.
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use kpromo::digest::Digest;
use kpromo::registry::oci_layout;
use kpromo::registry::{ManifestRef, Registry};

use crate::layout::{files, tag};

/// Every file below `dir` with its inode: the layout backend writes only through new
/// files renamed into place, so an unchanged map means nothing was written.
fn inodes(dir: &Path) -> BTreeMap<String, u64> {
    files(dir)
        .into_iter()
        .map(|f| {
            let ino = std::fs::metadata(dir.join(&f)).expect("stat").ino();
            (f, ino)
        })
        .collect()
}

fn kpromo(dir: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_kpromo"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run kpromo");
    assert!(
        out.status.success(),
        "kpromo {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Copies `examples/demo` into `dir` (what scripts/demo.sh does first).
fn copy_demo(dir: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo");
    for file in files(&src) {
        let to = dir.join(&file);
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(src.join(&file), to).expect("copy");
    }
}

#[test]
fn the_dry_run_plans_and_writes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    copy_demo(tmp.path());
    let out = kpromo(
        tmp.path(),
        &["cip", "--thin-manifest-dir", tmp.path().to_str().expect("utf-8 path")],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("oci:./mirrors/eu/multi:2.0"),
        "the plan names every destination:\n{stdout}"
    );
    assert!(
        !tmp.path().join("mirrors").exists(),
        "a dry run must not create the mirrors"
    );
}

#[tokio::test]
async fn demo_promotes_into_every_mirror_and_reruns_as_a_no_op() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let work = tmp.path().join("demo");
    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/demo.sh"))
        .env("KPROMO", env!("CARGO_BIN_EXE_kpromo"))
        .env("KPROMO_DEMO_DIR", &work)
        .output()
        .expect("run scripts/demo.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let staging = oci_layout::open(&work.join("staging")).expect("staging");
    let expected_tags = [
        ("hello", vec!["1.0", "1.1", "latest"]),
        ("multi", vec!["2.0"]),
        ("tools/pause", vec!["3.10"]),
    ];
    let unpromoted = staging
        .head_manifest("hello", &tag("1.2-rc.0"))
        .await
        .unwrap()
        .expect("rc in staging");
    for mirror in ["eu", "us", "asia"] {
        let reg = oci_layout::open(&work.join("mirrors").join(mirror)).expect("mirror");
        assert_eq!(
            reg.catalog().await.unwrap(),
            ["hello", "multi", "tools/pause"],
            "{mirror}"
        );
        for (repo, tags) in &expected_tags {
            let listed = reg.list_tags(repo).await.unwrap().expect("repo").tags;
            // Signatures (`.sig`) and the fallback indexes listing attestations
            // (`sha256-<hex>`, OCI layouts have no referrers API) are attachments.
            let attachment = |t: &String| t.ends_with(".sig") || (t.starts_with("sha256-") && t.len() == 71);
            let (attachments, promoted): (Vec<String>, Vec<String>) = listed.into_iter().partition(attachment);
            assert_eq!(&promoted, tags, "{mirror}/{repo}");
            // Signed and attested once, at the first mirror in sort order (all three serve
            // one name).
            let signatures = attachments.iter().filter(|t| t.ends_with(".sig")).count();
            let attested = attachments.len() - signatures;
            let canonical = mirror == "asia";
            assert_eq!(
                (signatures > 0, attested > 0),
                (canonical, canonical),
                "{mirror}/{repo}: {attachments:?}"
            );
            for t in tags {
                // Staging tags differ from production ones ("latest" is only in the
                // manifest), so compare by the digest the manifest promotes.
                let got = reg.get_manifest(repo, &tag(t)).await.unwrap().expect("tag");
                let want = staging
                    .get_manifest(repo, &ManifestRef::Digest(got.digest))
                    .await
                    .unwrap();
                assert_eq!(want.as_ref(), Some(&got), "{mirror}/{repo}:{t}");
            }
        }
        // Every child of the index, and the tagless amd64 promotion, by digest.
        let index = reg.get_manifest("multi", &tag("2.0")).await.unwrap().expect("index");
        let parsed: serde_json::Value = serde_json::from_slice(&index.bytes).unwrap();
        for child in parsed["manifests"].as_array().expect("children") {
            let digest: Digest = child["digest"].as_str().unwrap().parse().unwrap();
            assert!(
                reg.head_manifest("multi", &ManifestRef::Digest(digest))
                    .await
                    .unwrap()
                    .is_some()
            );
        }
        let rc = reg
            .head_manifest("hello", &ManifestRef::Digest(unpromoted.digest))
            .await
            .unwrap();
        assert_eq!(rc, None, "{mirror}: hello:1.2-rc.0 is not in the manifest");
    }

    // skopeo, an independent client, reads what kpromo wrote.
    let raw = Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}/mirrors/asia/multi:2.0", work.display()))
        .output()
        .expect("skopeo must be installed (scripts/test.sh installs it)");
    assert!(raw.status.success(), "{}", String::from_utf8_lossy(&raw.stderr));
    let staged = staging
        .get_manifest("multi", &tag("2.0"))
        .await
        .unwrap()
        .expect("staging index");
    assert_eq!(raw.stdout, staged.bytes);

    // OpenSSL, not kpromo, checks a signature: payload and signature read from the files.
    let sig_tag = format!("sha256-{}.sig", staged.digest.hex());
    let sig_manifest = Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}/mirrors/asia/multi:{sig_tag}", work.display()))
        .output()
        .expect("skopeo");
    assert!(
        sig_manifest.status.success(),
        "{}",
        String::from_utf8_lossy(&sig_manifest.stderr)
    );
    let sig_manifest: serde_json::Value = serde_json::from_slice(&sig_manifest.stdout).unwrap();
    let layer = &sig_manifest["layers"][0];
    let payload_hex = layer["digest"].as_str().unwrap().trim_start_matches("sha256:");
    let payload = work.join("mirrors/asia/multi/blobs/sha256").join(payload_hex);
    let payload_json: serde_json::Value = serde_json::from_slice(&std::fs::read(&payload).unwrap()).unwrap();
    assert_eq!(
        payload_json["critical"]["identity"]["docker-reference"],
        "demo.example/multi"
    );
    assert_eq!(
        payload_json["critical"]["image"]["docker-manifest-digest"],
        staged.digest.to_string()
    );
    let signature = base64::engine::general_purpose::STANDARD
        .decode(
            layer["annotations"]["dev.cosignproject.cosign/signature"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    let signature_file = tmp.path().join("signature.der");
    std::fs::write(&signature_file, signature).unwrap();
    let verified = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(work.join("signing.pub"))
        .arg("-signature")
        .arg(&signature_file)
        .arg(&payload)
        .output()
        .expect("openssl");
    assert!(
        String::from_utf8_lossy(&verified.stdout).contains("Verified OK"),
        "openssl: {}",
        String::from_utf8_lossy(&verified.stderr)
    );

    let before = inodes(&work.join("mirrors"));
    let mut rerun = vec![
        "cip",
        "--thin-manifest-dir",
        work.to_str().expect("utf-8 path"),
        "--confirm",
        "--signing-key",
        "signing.key",
    ];
    for rewrite in [
        "mirrors/eu=demo.example",
        "mirrors/us=demo.example",
        "mirrors/asia=demo.example",
    ] {
        rerun.extend(["--signing-identity-rewrite", rewrite]);
    }
    kpromo(&work, &rerun);
    assert_eq!(inodes(&work.join("mirrors")), before, "a rerun must not write anything");
}
