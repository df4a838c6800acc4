//! Signing end to end: the built binary promotes with `--confirm` between real
//! distribution registries and signs cosign-style with a key. Every signature is read
//! back with the harness's own client and proven by OpenSSL (`openssl dgst -verify` over
//! the exact payload bytes), never by kpromo's own verifier.
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::support::images::{Format, Image, Index};
use crate::support::world::World;
use crate::support::{TestRegistry, within};

const SIG_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

fn world() -> World {
    World::start(env!("CARGO_BIN_EXE_kpromo"), 3)
}

/// An EC P-256 key pair made by OpenSSL: `(private PKCS#8 PEM, public SPKI PEM)`.
fn openssl_key(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    crate::support::require_tool("openssl");
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    let ok = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&private)
        .status()
        .expect("run openssl")
        .success()
        && Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&private)
            .arg("-out")
            .arg(&public)
            .status()
            .expect("run openssl")
            .success();
    assert!(ok, "openssl could not make a key pair");
    (private, public)
}

/// One signature layer as the harness's client reads it: payload bytes and signature.
struct SignatureLayer {
    payload: Vec<u8>,
    signature: Vec<u8>,
}

/// The signature layers of `image` in `repo` at `registry` (empty when there is no
/// `.sig` tag), read with the harness's own client and serde_json.
async fn signature_layers(registry: &TestRegistry, repo: &str, image: &str) -> Vec<SignatureLayer> {
    let pusher = registry.pusher();
    let tag = format!("sha256-{}.sig", image.trim_start_matches("sha256:"));
    let (status, _, body) = pusher.get_manifest(repo, &tag).await;
    if status == 404 {
        return Vec::new();
    }
    assert_eq!(status, 200, "GET {repo}:{tag}");
    let manifest: Value = serde_json::from_slice(&body).expect("signature manifest JSON");
    let mut out = Vec::new();
    for layer in manifest["layers"].as_array().expect("layers") {
        assert_eq!(layer["mediaType"], "application/vnd.dev.cosign.simplesigning.v1+json");
        let digest = layer["digest"].as_str().expect("layer digest");
        let payload = pusher.get_blob(repo, digest).await.expect("payload blob").to_vec();
        let signature = STANDARD
            .decode(
                layer["annotations"][SIG_ANNOTATION]
                    .as_str()
                    .expect("signature annotation"),
            )
            .expect("base64 signature");
        out.push(SignatureLayer { payload, signature });
    }
    out
}

/// `openssl dgst -sha256 -verify PUB -signature SIG PAYLOAD`: OpenSSL's verdict.
fn openssl_verifies(dir: &Path, public: &Path, layer: &SignatureLayer) -> bool {
    let payload = dir.join("payload.json");
    let signature = dir.join("signature.der");
    std::fs::write(&payload, &layer.payload).expect("write payload");
    std::fs::write(&signature, &layer.signature).expect("write signature");
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(public)
        .arg("-signature")
        .arg(&signature)
        .arg(&payload)
        .output()
        .expect("run openssl");
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Verified OK")
}

fn payload_json(layer: &SignatureLayer) -> Value {
    serde_json::from_slice(&layer.payload).expect("payload JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_promoted_digest_is_signed_once_at_the_canonical_mirror_and_openssl_agrees() {
    let world = world();
    let keys = tempfile::tempdir().expect("tempdir");
    let (key, public) = openssl_key(keys.path(), "signing");
    let (_, other_public) = openssl_key(keys.path(), "other");
    let index = Index::multi_arch(Format::Oci, 31, &["amd64", "arm64/v8"], None);
    let loose = Image::simple(Format::Oci, 32);
    let pusher = world.staging.pusher();
    within(60, "push fixtures", async {
        pusher.push_index("staging/foo", &index, &["1.0"]).await;
        pusher.push_image("staging/foo", &loose, &[]).await;
    })
    .await;
    let digests = [
        index.digest.as_str(),
        index.children[0].digest.as_str(),
        index.children[1].digest.as_str(),
        loose.digest.as_str(),
    ];
    world.write_project(
        "p",
        &world.src(),
        &world.dsts(),
        &[(
            "foo",
            vec![(index.digest.as_str(), vec!["1.0"]), (loose.digest.as_str(), vec![])],
        )],
    );
    // Every mirror serves one public name; the canonical one is the first in sort order.
    let args = [
        "--signing-key",
        key.to_str().expect("utf-8"),
        "--signing-identity-rewrite",
        "prod=registry.example",
    ];
    world.spawn_confirm(&args).wait(120).expect_code(0);
    let canonical = (0..3).min_by_key(|i| world.dsts()[*i].clone()).expect("a mirror");

    for digest in digests {
        let layers = signature_layers(&world.mirrors[canonical], "prod/foo", digest).await;
        assert_eq!(layers.len(), 1, "{digest}: exactly one signature");
        let payload = payload_json(&layers[0]);
        assert_eq!(payload["critical"]["image"]["docker-manifest-digest"], digest);
        assert_eq!(
            payload["critical"]["identity"]["docker-reference"],
            "registry.example/foo"
        );
        assert_eq!(payload["critical"]["type"], "cosign container image signature");
        assert!(
            openssl_verifies(keys.path(), &public, &layers[0]),
            "{digest}: OpenSSL verifies the signature"
        );
        assert!(
            !openssl_verifies(keys.path(), &other_public, &layers[0]),
            "{digest}: another key does not"
        );
        for (i, mirror) in world.mirrors.iter().enumerate().filter(|(i, _)| *i != canonical) {
            assert!(
                signature_layers(mirror, "prod/foo", digest).await.is_empty(),
                "mirror {i}: signatures only at the canonical mirror"
            );
        }
    }

    // A rerun signs nothing again and writes nothing.
    world.clear_seen();
    let rerun = world.spawn_confirm(&args).wait(120);
    rerun.expect_code(0);
    assert_eq!(world.mirror_writes(), 0, "a rerun writes nothing");
    for digest in digests {
        assert_eq!(
            signature_layers(&world.mirrors[canonical], "prod/foo", digest)
                .await
                .len(),
            1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_only_another_mirror_needed_is_still_signed_at_the_canonical_one() {
    let world = world();
    let keys = tempfile::tempdir().expect("tempdir");
    let (key, public) = openssl_key(keys.path(), "signing");
    let image = Image::simple(Format::Oci, 41);
    let canonical = (0..3).min_by_key(|i| world.dsts()[*i].clone()).expect("a mirror");
    within(60, "push fixtures", async {
        world.staging.pusher().push_image("staging/foo", &image, &[]).await;
        // The canonical mirror already has the image: only the others need a copy.
        world.mirrors[canonical]
            .pusher()
            .push_image("prod/foo", &image, &["1.0"])
            .await;
    })
    .await;
    world.write_project(
        "p",
        &world.src(),
        &world.dsts(),
        &[("foo", vec![(image.digest.as_str(), vec!["1.0"])])],
    );
    let args = [
        "--signing-key",
        key.to_str().expect("utf-8"),
        "--signing-identity-rewrite",
        "prod=registry.example",
    ];
    world.spawn_confirm(&args).wait(120).expect_code(0);
    let layers = signature_layers(&world.mirrors[canonical], "prod/foo", &image.digest).await;
    assert_eq!(layers.len(), 1);
    assert!(openssl_verifies(keys.path(), &public, &layers[0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_run_without_a_signer_writes_nothing_and_says_how_to_sign() {
    let world = world();
    let image = Image::simple(Format::Oci, 51);
    within(
        60,
        "push fixtures",
        world.staging.pusher().push_image("staging/foo", &image, &[]),
    )
    .await;
    world.write_project(
        "p",
        &world.src(),
        &world.dsts(),
        &[("foo", vec![(image.digest.as_str(), vec!["1.0"])])],
    );
    // `--sign` left at its default (true), and no key, token or Google credentials.
    let run = world.spawn_confirm(&["--sign=true"]).wait(60);
    run.expect_code(2);
    for needle in ["--signing-key", "--identity-token", "--sign=false"] {
        assert!(run.stderr.contains(needle), "the error names {needle}:\n{}", run.stderr);
    }
    assert_eq!(world.mirror_writes(), 0);
}
