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

use crate::support::cosign::{
    SignatureLayer as StagedSignature, keyless_layer, push_signatures, simple_signing_payload,
};
use crate::support::images::{Format, Image, Index};
use crate::support::pki::SigningKey;
use crate::support::sigstore_fake::{SigstoreFake, identity_token};
use crate::support::trust_tools::TrustTools;
use crate::support::verifiers::{self, CosignTrust, SignedIdentity};
use crate::support::world::{World, assert_complete, is_write};
use crate::support::{Action, Rule, TestRegistry, Times, within};

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

/// Signatures the fake Rekor logged (`hashedrekord` entries; attestations are `dsse`).
fn signatures_logged(fake: &SigstoreFake) -> usize {
    fake.rekor_entries()
        .iter()
        .filter(|e| e["kind"] == "hashedrekord")
        .count()
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

    // `kpromo verify`, as a release manager checks a promotion: every tag and digest
    // verifies with the key, nothing with another key, and an unsigned image fails.
    let host = world.mirrors[canonical].host();
    let by_tag = format!("{host}/prod/foo:1.0");
    let by_digest = format!("{host}/prod/foo@{}", loose.digest);
    let verify = |key: &Path, images: &[&str], extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_kpromo"))
            .args(["verify", "--key"])
            .arg(key)
            .args(extra)
            .args(images)
            .output()
            .expect("run kpromo verify")
    };
    let ok = verify(&key.public, &[&by_tag, &by_digest], &["--output", "json"]);
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stderr));
    let report: Value = serde_json::from_slice(&ok.stdout).expect("JSON report");
    assert_eq!(report[0]["digest"], index.digest.as_str());
    assert_eq!(report[0]["signed_for"][0], "registry.example/foo");
    let wrong = verify(&other.public, &[&by_tag], &[]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stdout).contains("NOT VERIFIED"));
    let elsewhere = (canonical + 1) % 3;
    let unsigned = verify(
        &key.public,
        &[&format!("{}/prod/foo:1.0", world.mirrors[elsewhere].host())],
        &[],
    );
    assert_eq!(unsigned.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unsigned.stdout).contains("NOT SIGNED"));

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

/// Staging: `image` in `staging/foo`, its `.sig` holding `layers` (made by independent
/// means), promoted to every mirror under `1.0`.
async fn stage_signed(world: &World, image: &Image, layers: &[StagedSignature]) {
    let pusher = world.staging.pusher();
    within(60, "push the staging image and its signatures", async {
        pusher.push_image("staging/foo", image, &[]).await;
        if !layers.is_empty() {
            push_signatures(&pusher, "staging/foo", &image.digest, layers).await;
        }
    })
    .await;
    world.write_project(
        "p",
        &world.src(),
        &world.dsts(),
        &[("foo", vec![(image.digest.as_str(), vec!["1.0"])])],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staging_signatures_are_checked_once_and_carried_to_the_canonical_mirror() {
    let world = world();
    let keys = tempfile::tempdir().expect("tempdir");
    let builder = SigningKey::generate(keys.path(), "builder");
    let ours = SigningKey::generate(keys.path(), "ours");
    let image = Image::simple(Format::Oci, 61);
    let built =
        StagedSignature::signed_with_key(simple_signing_payload("registry.example/foo", &image.digest), &builder);
    stage_signed(&world, &image, &[built]).await;
    world
        .spawn_confirm(&[
            "--staging-signature-key",
            builder.public.to_str().expect("utf-8"),
            "--signing-key",
            ours.private.to_str().expect("utf-8"),
            "--signing-identity-rewrite",
            "prod=registry.example",
        ])
        .wait(120)
        .expect_code(0);
    assert_eq!(
        world
            .staging_proxy
            .count("GET", r"^/v2/staging/foo/manifests/sha256-.*\.sig$"),
        1,
        "the staging signature is read once, whatever the number of mirrors"
    );
    // At the canonical mirror, skopeo finds a valid signature by the builder and by us.
    let canonical = (0..3).min_by_key(|i| world.dsts()[*i].clone()).expect("a mirror");
    let pulled = format!("{}/prod/foo:1.0", world.mirrors[canonical].host());
    let public_name = SignedIdentity::ExactRepository("registry.example/foo");
    for key in [&builder, &ours] {
        verifiers::skopeo_cosign(&pulled, &CosignTrust::Key(&key.public), &public_name, None)
            .unwrap_or_else(|e| panic!("skopeo: {e}"));
    }
    assert_eq!(
        signature_layers(&world.mirrors[canonical], "prod/foo", &image.digest)
            .await
            .len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_staging_signature_stops_the_run_before_any_write() {
    let world = world();
    let keys = tempfile::tempdir().expect("tempdir");
    let builder = SigningKey::generate(keys.path(), "builder");
    let ours = SigningKey::generate(keys.path(), "ours");
    let image = Image::simple(Format::Oci, 62);
    // Signed, then the payload changed: the signature no longer covers it.
    let mut tampered =
        StagedSignature::signed_with_key(simple_signing_payload("registry.example/foo", &image.digest), &builder);
    tampered.payload = simple_signing_payload("registry.example/other", &image.digest);
    stage_signed(&world, &image, &[tampered]).await;
    let run = world
        .spawn_confirm(&[
            "--staging-signature-key",
            builder.public.to_str().expect("utf-8"),
            "--signing-key",
            ours.private.to_str().expect("utf-8"),
        ])
        .wait(120);
    run.expect_code(1);
    assert!(
        run.stderr.contains("staging signatures") && run.stderr.contains(&image.digest),
        "{}",
        run.stderr
    );
    assert_eq!(world.mirror_writes(), 0, "nothing may be written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_staging_images_pass_unless_a_signature_is_required() {
    let world = world();
    let image = Image::simple(Format::Oci, 63);
    stage_signed(&world, &image, &[]).await;
    let required = world.spawn_confirm(&["--require-staging-signature"]).wait(120);
    required.expect_code(1);
    assert!(required.stderr.contains("not signed"), "{}", required.stderr);
    assert_eq!(world.mirror_writes(), 0);
    world.confirm(120).expect_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_staging_signatures_are_verified_against_the_trusted_root_and_identity() {
    let fake = SigstoreFake::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (issuer, builder) = ("https://oidc.example", "builder@example.com");
    let image = Image::simple(Format::Oci, 64);
    // sigstore-js signs the payload keylessly against the fake: a builder's signature.
    let payload = simple_signing_payload("registry.example/foo", &image.digest);
    let payload_file = dir.path().join("payload.json");
    std::fs::write(&payload_file, &payload).expect("write payload");
    let bundle_file = dir.path().join("bundle.json");
    fake.sign_with_sigstore_js(&identity_token(issuer, builder, 600), &payload_file, None, &bundle_file)
        .expect("sigstore-js signs");
    let bundle: Value = serde_json::from_slice(&std::fs::read(&bundle_file).expect("bundle")).expect("JSON");
    let chain = std::fs::read_to_string(fake.fulcio_root_pem()).expect("Fulcio root");
    let layer = keyless_layer(payload, &bundle, &chain);
    let trusted_root = fake.trusted_root();
    let root = trusted_root.to_str().expect("utf-8");

    for (identity, extra, code, needle) in [
        // The expected builder: verified.
        (builder, None, 0, "1 of 1 source images verified"),
        // Another identity: a sound signature by someone else passes with a warning...
        (
            "someone-else@example.com",
            None,
            0,
            "staging signature by another signer",
        ),
        // ...unless a signature by the expected signer is required.
        (
            "someone-else@example.com",
            Some("--require-staging-signature"),
            1,
            "no signature by the expected signer",
        ),
    ] {
        let world = world();
        stage_signed(&world, &image, std::slice::from_ref(&layer)).await;
        let mut args = vec![
            "--trusted-root",
            root,
            "--certificate-identity",
            identity,
            "--certificate-oidc-issuer",
            issuer,
        ];
        args.extend(extra);
        // A dry run: the staging check happens before anything would be written.
        let run = world.spawn(&args).wait(120);
        run.expect_code(code);
        assert!(run.stderr.contains(needle), "{identity} {extra:?}: {}", run.stderr);
        assert_eq!(world.mirror_writes(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_signatures_from_the_fake_fulcio_and_rekor_verify_with_skopeo_and_reruns_log_nothing() {
    let fake = SigstoreFake::start();
    let world = world();
    let dir = tempfile::tempdir().expect("tempdir");
    let (issuer, signer) = ("https://oidc.example", "promoter@example.com");
    let token = dir.path().join("token");
    std::fs::write(&token, identity_token(issuer, signer, 3600)).expect("write token");
    let index = Index::multi_arch(Format::Oci, 71, &["amd64", "arm64/v8"], None);
    within(
        60,
        "push fixtures",
        world.staging.pusher().push_index("staging/foo", &index, &["1.0"]),
    )
    .await;
    world.write_project(
        "p",
        &world.src(),
        &world.dsts(),
        &[("foo", vec![(index.digest.as_str(), vec!["1.0"])])],
    );
    let args = fake.keyless_args(&token);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let trusted_root = fake.trusted_root();
    world.spawn_confirm(&args).wait(120).expect_code(0);
    let digests = [&index.digest, &index.children[0].digest, &index.children[1].digest];
    assert_eq!(
        signatures_logged(&fake),
        digests.len(),
        "one Rekor entry per signature (attestations are dsse entries)"
    );
    let logged = fake.rekor_entries().len();
    assert_eq!(fake.certificates_issued().len(), 1, "one certificate for the whole run");

    let canonical = (0..3).min_by_key(|i| world.dsts()[*i].clone()).expect("a mirror");
    let (fulcio_ca, rekor_key) = (fake.fulcio_root_pem(), fake.rekor_public_key_pem());
    let trust = |email| CosignTrust::Keyless {
        fulcio_ca: &fulcio_ca,
        rekor_key: &rekor_key,
        issuer,
        email,
    };
    let public_name = SignedIdentity::ExactRepository("registry.example/foo");
    for digest in digests {
        let pulled = format!("{}/prod/foo@{digest}", world.mirrors[canonical].host());
        verifiers::skopeo_cosign(&pulled, &trust(signer), &public_name, None)
            .unwrap_or_else(|e| panic!("{digest}: skopeo refuses: {e}"));
        let refused = verifiers::skopeo_cosign(&pulled, &trust("someone@example.com"), &public_name, None);
        assert!(refused.is_err(), "{digest}: skopeo accepts another identity");
    }

    // kpromo verify, keyless, agrees; another identity does not verify.
    let verify = |identity: &str| {
        Command::new(env!("CARGO_BIN_EXE_kpromo"))
            .args([
                "verify",
                "--certificate-identity",
                identity,
                "--certificate-oidc-issuer",
                issuer,
                "--trusted-root",
            ])
            .arg(&trusted_root)
            .arg(format!("{}/prod/foo:1.0", world.mirrors[canonical].host()))
            .output()
            .expect("run kpromo verify")
    };
    assert_eq!(verify(signer).status.code(), Some(0));
    assert_eq!(verify("someone@example.com").status.code(), Some(1));

    // A rerun: nothing signed again, no Rekor entry, no write.
    world.clear_seen();
    world.spawn_confirm(&args).wait(120).expect_code(0);
    assert_eq!(world.mirror_writes(), 0);
    assert_eq!(fake.rekor_entries().len(), logged, "a rerun logs nothing");

    // Rekor unreachable: the image is promoted, reported unsigned, and a rerun signs it.
    let third = Image::simple(Format::Oci, 73);
    within(
        60,
        "push fixtures",
        world.staging.pusher().push_image("staging/baz", &third, &[]),
    )
    .await;
    world.write_project(
        "r",
        &world.src(),
        &world.dsts(),
        &[("baz", vec![(third.digest.as_str(), vec!["1.0"])])],
    );
    let mut no_rekor = args.to_vec();
    no_rekor[5] = "http://127.0.0.1:9";
    let unsigned = world.spawn_confirm(&no_rekor).wait(120);
    unsigned.expect_code(1);
    for needle in ["promoted but unsigned", "rekor", third.digest.as_str()] {
        assert!(
            unsigned.stderr.to_lowercase().contains(needle),
            "{needle}: {}",
            unsigned.stderr
        );
    }
    world.spawn_confirm(&args).wait(120).expect_code(0);
    assert_eq!(signatures_logged(&fake), digests.len() + 1, "the rerun signs it");

    // An expired token fails in Setup, before anything is written.
    std::fs::write(&token, identity_token(issuer, signer, -60)).expect("write token");
    let other = Image::simple(Format::Oci, 72);
    within(
        60,
        "push fixtures",
        world.staging.pusher().push_image("staging/bar", &other, &[]),
    )
    .await;
    world.write_project(
        "q",
        &world.src(),
        &world.dsts(),
        &[("bar", vec![(other.digest.as_str(), vec!["1.0"])])],
    );
    world.clear_seen();
    let expired = world.spawn_confirm(&args).wait(120);
    expired.expect_code(1);
    assert!(expired.stderr.contains("expired"), "{}", expired.stderr);
    assert_eq!(world.mirror_writes(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_signature_push_reports_promoted_but_unsigned_and_a_rerun_only_signs() {
    let world = world();
    let keys = tempfile::tempdir().expect("tempdir");
    let key = SigningKey::generate(keys.path(), "signing");
    let image = Image::simple(Format::Oci, 81);
    within(
        60,
        "push fixtures",
        world.staging.pusher().push_image("staging/foo", &image, &["1.0"]),
    )
    .await;
    world.write_project(
        "p",
        &world.src(),
        &world.dsts(),
        &[("foo", vec![(image.digest.as_str(), vec!["1.0"])])],
    );
    let canonical = (0..3).min_by_key(|i| world.dsts()[*i].clone()).expect("a mirror");
    let sig_manifest = r"/manifests/sha256-[0-9a-f]{64}\.sig$";
    world.proxies[canonical].set_rules(vec![Rule::new(
        Some("PUT"),
        sig_manifest,
        Action::Status {
            status: 403,
            retry_after: None,
        },
        Times::Always,
    )]);
    // One public name for every mirror, so one signature at the canonical one.
    let args = [
        "--signing-key",
        key.private.to_str().expect("utf-8"),
        "--signing-identity-rewrite",
        "prod=registry.example",
    ];
    let refused = world.spawn_confirm(&args).wait(120);
    refused.expect_code(1);
    for needle in ["promoted but unsigned", "rerun to sign", image.digest.as_str()] {
        assert!(refused.stderr.contains(needle), "{needle}: {}", refused.stderr);
    }
    let failed = refused.summary["signatures"]["failed"]
        .as_array()
        .expect("signatures.failed");
    assert_eq!(failed.len(), 1, "{}", refused.summary);
    for mirror in &world.mirrors {
        assert_eq!(assert_complete(mirror, "prod/foo").await, ["1.0"], "promoted, unsigned");
    }

    // The registry takes the push again: the rerun signs (and attests) and copies nothing.
    world.proxies[canonical].set_rules(vec![]);
    world.clear_seen();
    world.spawn_confirm(&args).wait(120).expect_code(0);
    let writes: Vec<String> = world
        .proxies
        .iter()
        .flat_map(|p| p.seen())
        .filter(|s| is_write(&s.method) && !s.path.contains("/blobs/uploads/"))
        .map(|s| s.path)
        .collect();
    // The `.sig` manifest, then the attestation (a referrer by digest) and its entry in the
    // fallback index: Attest runs after Sign, so the refused run never got there.
    let hex = image.digest.trim_start_matches("sha256:");
    assert_eq!(
        writes.len(),
        3,
        "only the .sig manifest and the attestation: {writes:?}"
    );
    assert!(
        writes[0].ends_with(&format!("/manifests/sha256-{hex}.sig")),
        "{writes:?}"
    );
    assert!(writes[1].contains("/manifests/sha256:"), "{writes:?}");
    assert!(writes[2].ends_with(&format!("/manifests/sha256-{hex}")), "{writes:?}");
    let layers = signature_layers(&world.mirrors[canonical], "prod/foo", &image.digest).await;
    assert_eq!(layers.len(), 1);
    assert!(openssl_verifies(keys.path(), &key.public, &layers[0]));
}
