//! Signing end to end: the built binary promotes with `--confirm` between real
//! distribution registries and signs cosign-style with a key. Every signature is read
//! back with the harness's own client and proven by verifiers kpromo did not write:
//! OpenSSL over the exact payload bytes, and skopeo 1.18's cosign verification
//! (`sigstoreSigned` policy) of the image as a client pulls it.
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::support::images::{Format, Image, Index};
use crate::support::pki::SigningKey;
use crate::support::trust_tools::TrustTools;
use crate::support::verifiers::{self, CosignTrust, SignedIdentity};
use crate::support::world::World;
use crate::support::{TestRegistry, within};

const SIG_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

fn world() -> World {
    World::start(env!("CARGO_BIN_EXE_kpromo"), 3)
}

/// A cosign encrypted key pair made by skopeo 1.18 (`generate-sigstore-key`), not by
/// kpromo: `(private key, public key, password)`.
fn skopeo_cosign_key(dir: &Path) -> (PathBuf, PathBuf, String) {
    let password = "correct horse battery staple".to_string();
    let passphrase = dir.join("passphrase");
    std::fs::write(&passphrase, &password).expect("write passphrase");
    let prefix = dir.join("cosign");
    let out = Command::new(&TrustTools::locate().skopeo)
        .arg("generate-sigstore-key")
        .arg("--output-prefix")
        .arg(&prefix)
        .arg("--passphrase-file")
        .arg(&passphrase)
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo generate-sigstore-key: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (prefix.with_extension("private"), prefix.with_extension("pub"), password)
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

/// OpenSSL's verdict on one layer's signature with `public`.
fn openssl_verifies(dir: &Path, public: &Path, layer: &SignatureLayer) -> bool {
    let payload = dir.join("payload.json");
    let signature = dir.join("signature.der");
    std::fs::write(&payload, &layer.payload).expect("write payload");
    std::fs::write(&signature, &layer.signature).expect("write signature");
    verifiers::openssl_ecdsa(&payload, &signature, public).is_ok()
}

fn payload_json(layer: &SignatureLayer) -> Value {
    serde_json::from_slice(&layer.payload).expect("payload JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_promoted_digest_is_signed_once_at_the_canonical_mirror_and_openssl_agrees() {
    let world = world();
    let keys = tempfile::tempdir().expect("tempdir");
    let key = SigningKey::generate(keys.path(), "signing");
    let other = SigningKey::generate(keys.path(), "other");
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
        key.private.to_str().expect("utf-8"),
        "--signing-identity-rewrite",
        "prod=registry.example",
    ];
    world.spawn_confirm(&args).wait(120).expect_code(0);
    let canonical = (0..3).min_by_key(|i| world.dsts()[*i].clone()).expect("a mirror");

    for digest in digests {
        let pulled = format!("{}/prod/foo@{digest}", world.mirrors[canonical].host());
        let public_name = SignedIdentity::ExactRepository("registry.example/foo");
        verifiers::skopeo_cosign(&pulled, &CosignTrust::Key(&key.public), &public_name, None)
            .unwrap_or_else(|e| panic!("{digest}: skopeo refuses the signature: {e}"));
        let refused = verifiers::skopeo_cosign(&pulled, &CosignTrust::Key(&other.public), &public_name, None);
        assert!(refused.is_err(), "{digest}: skopeo accepts another key");
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
            openssl_verifies(keys.path(), &key.public, &layers[0]),
            "{digest}: OpenSSL verifies the signature"
        );
        assert!(
            !openssl_verifies(keys.path(), &other.public, &layers[0]),
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
async fn an_image_only_another_mirror_needed_is_still_signed_at_the_canonical_one_with_a_cosign_key() {
    let world = world();
    let keys = tempfile::tempdir().expect("tempdir");
    // An encrypted cosign key made by skopeo; its password comes from COSIGN_PASSWORD.
    let (key, public, password) = skopeo_cosign_key(keys.path());
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
    let password_file = keys.path().join("password");
    std::fs::write(&password_file, format!("{password}\n")).expect("write password");
    let args = [
        "--signing-key",
        key.to_str().expect("utf-8"),
        "--signing-key-password-file",
        password_file.to_str().expect("utf-8"),
        "--signing-identity-rewrite",
        "prod=registry.example",
    ];
    world.spawn_confirm(&args).wait(120).expect_code(0);
    let layers = signature_layers(&world.mirrors[canonical], "prod/foo", &image.digest).await;
    assert_eq!(layers.len(), 1);
    assert!(openssl_verifies(keys.path(), &public, &layers[0]));
    let pulled = format!("{}/prod/foo:1.0", world.mirrors[canonical].host());
    verifiers::skopeo_cosign(
        &pulled,
        &CosignTrust::Key(&public),
        &SignedIdentity::ExactRepository("registry.example/foo"),
        None,
    )
    .expect("skopeo verifies the signature made with its own key");
    // The password reaches no log line.
    let logs = std::fs::read_to_string(world.dir.path().join("kpromo.stderr")).expect("stderr");
    assert!(!logs.contains(&password), "the password leaked into the log");
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
