//! Attestations end to end: the built binary promotes between real registries (CNCF
//! distribution 2.8, whose referrers live in the tag-schema fallback index, and
//! go-containerregistry's registry with the referrers API), attests every promoted digest
//! once at the canonical mirror, checks the staging images' build provenance, and carries
//! their referrers. Everything is read back with the harness's own client, and every
//! attestation proven by verifiers kpromo did not write: sigstore-js and securesystemslib
//! (signature), sigstore-models (strict bundle schema), in-toto-attestation (Statement),
//! sigstore-python (keyless). Staging attestations are made by independent means too:
//! openssl over a hand-written PAE, or sigstore-js's signer against the fake Fulcio/Rekor.
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::support::cosign::{
    IN_TOTO, in_toto_statement, key_dsse_bundle, keyless_attestation_layer, push_attestations,
};
use crate::support::ggcr::GgcrRegistry;
use crate::support::images::{Format, Image, Index};
use crate::support::pki::SigningKey;
use crate::support::referrers::{self, PROMOTION, Referrer, SLSA_V1, SPDX, Subject};
use crate::support::sigstore_fake::{SigstoreFake, identity_token};
use crate::support::verifiers::{self, BundleTrust, KeylessPolicy};
use crate::support::world::{World, is_write, tags};
use crate::support::{Action, FaultProxy, Rule, Times, within};

const ISSUER: &str = "https://oidc.example";
const PROMOTER: &str = "promoter@example.com";
const BUILDER: &str = "builder@example.com";
const PUBLIC_NAME: &str = "registry.example/foo";

fn world() -> World {
    World::start(env!("CARGO_BIN_EXE_kpromo"), 3)
}

/// The mirror that holds signatures and attestations: the first in sort order.
fn canonical(world: &World) -> usize {
    (0..world.mirrors.len())
        .min_by_key(|i| world.dsts()[*i].clone())
        .expect("a mirror")
}

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// The Statement inside a bundle's DSSE envelope, read with serde_json.
fn statement_of(bundle: &[u8]) -> Value {
    let bundle: Value = serde_json::from_slice(bundle).expect("bundle JSON");
    let payload = STANDARD
        .decode(bundle["dsseEnvelope"]["payload"].as_str().expect("payload"))
        .expect("base64 payload");
    serde_json::from_slice(&payload).expect("Statement JSON")
}

/// An SLSA v1 provenance Statement about `digest` by `builder_id` (also used by the policy
/// tests, whose conditions read these facts).
pub(crate) fn provenance(digest: &str, predicate_type: &str, builder_id: &str) -> Vec<u8> {
    let predicate = json!({
        "buildDefinition": {
            "buildType": "https://builder.example/build@v1",
            "externalParameters": {"source": "https://github.com/kubernetes/foo"},
        },
        "runDetails": {"builder": {"id": builder_id}},
    });
    in_toto_statement("staging/foo", digest, predicate_type, &predicate)
}

/// Checks one promotion attestation as a user would: both signature verifiers accept it
/// with `trust` and refuse it tampered; the strict schema and the in-toto reader accept it;
/// the Statement says what kpromo promoted.
fn assert_promotion_attestation(dir: &Path, bundle: &[u8], digest: &str, trust: &BundleTrust, key: Option<&Path>) {
    let file = write(dir, "bundle.json", bundle);
    let accepted = verifiers::sigstore_js(&file, None, trust).unwrap_or_else(|e| panic!("{digest}: sigstore-js: {e}"));
    assert!(accepted.contains(&format!("predicateType={PROMOTION}")), "{accepted}");
    verifiers::sigstore_models_schema(&file).unwrap_or_else(|e| panic!("{digest}: schema: {e}"));
    verifiers::in_toto_statement(&file, Some(digest)).unwrap_or_else(|e| panic!("{digest}: in-toto: {e}"));
    if let Some(key) = key {
        verifiers::securesystemslib_dsse(&file, key, Some("")).unwrap_or_else(|e| panic!("{digest}: sslib: {e}"));
    }
    let statement = statement_of(bundle);
    assert_eq!(statement["subject"][0]["name"], PUBLIC_NAME);
    assert_eq!(
        statement["subject"][0]["digest"]["sha256"],
        digest.trim_start_matches("sha256:")
    );
    let predicate = &statement["predicate"];
    assert_eq!(predicate["digest"], digest);
    assert!(
        predicate["srcRef"]
            .as_str()
            .expect("srcRef")
            .ends_with(&format!("/staging/foo@{digest}"))
    );
    assert!(
        predicate["dstRef"]
            .as_str()
            .expect("dstRef")
            .ends_with(&format!("/prod/foo@{digest}"))
    );
    assert!(
        predicate["builderId"]
            .as_str()
            .expect("builderId")
            .starts_with("https://k8s.io/promo-tools@")
    );
    assert!(predicate["timestamp"].as_str().expect("timestamp").ends_with('Z'));

    // The payload changed after signing: refused by both signature verifiers.
    let mut tampered: Value = serde_json::from_slice(bundle).expect("bundle JSON");
    let other = statement.to_string().replace("promo-tools@", "promo-toolz@");
    tampered["dsseEnvelope"]["payload"] = json!(STANDARD.encode(other));
    let tampered = write(dir, "tampered.json", tampered.to_string());
    assert!(
        verifiers::sigstore_js(&tampered, None, trust).is_err(),
        "{digest}: tampered"
    );
    if let Some(key) = key {
        assert!(verifiers::securesystemslib_dsse(&tampered, key, Some("")).is_err());
    }
}

/// The images of the first test: a multi-arch index with many tags, and a tagless image.
struct Staged {
    index: Index,
    loose: Image,
    sbom: Referrer,
    built: Referrer,
}

impl Staged {
    fn new(seed: u64, builder: &SigningKey) -> Staged {
        let index = Index::multi_arch(Format::Oci, seed, &["amd64", "arm64/v8"], None);
        let loose = Image::simple(Format::Oci, seed + 1);
        let subject = Subject {
            media_type: index.media_type(),
            digest: &index.digest,
            size: index.manifest.len() as u64,
        };
        let sbom = Referrer::new(
            subject,
            SPDX,
            r#"{"spdxVersion":"SPDX-2.3"}"#,
            json!({"org.example": "sbom"}),
        );
        let statement = provenance(&index.digest, SLSA_V1, "https://builder.example/v1");
        let built = Referrer::bundle(subject, key_dsse_bundle(&statement, builder).to_string(), SLSA_V1);
        Staged {
            index,
            loose,
            sbom,
            built,
        }
    }

    /// Pushes everything to staging (`fallback`: a registry without the referrers API).
    async fn push(&self, world: &World, fallback: bool) {
        let pusher = world.staging.pusher();
        within(60, "push fixtures", async {
            pusher.push_index("staging/foo", &self.index, &[]).await;
            pusher.push_image("staging/foo", &self.loose, &[]).await;
            for referrer in [&self.sbom, &self.built] {
                referrer
                    .attach(&pusher, "staging/foo", &self.index.digest, fallback)
                    .await;
            }
        })
        .await;
    }

    fn digests(&self) -> [&str; 4] {
        [
            &self.index.digest,
            &self.index.children[0].digest,
            &self.index.children[1].digest,
            &self.loose.digest,
        ]
    }

    /// The project: the index under four tags, the loose image tagless, to `dsts`.
    fn project(&self, world: &World, dsts: &[String]) {
        world.write_project(
            "p",
            &world.src(),
            dsts,
            &[(
                "foo",
                vec![
                    (self.index.digest.as_str(), vec!["1.0", "1.1", "latest", "stable"]),
                    (self.loose.digest.as_str(), vec![]),
                ],
            )],
        );
    }

    /// Checks that `pusher`'s `prod/foo` holds the staging referrers of the index byte for
    /// byte, and lists them.
    async fn assert_carried(&self, pusher: &crate::support::Pusher, at: &str) {
        let listed: Vec<String> = referrers::list(pusher, "prod/foo", &self.index.digest)
            .await
            .iter()
            .map(|r| r["digest"].as_str().expect("digest").to_string())
            .collect();
        for referrer in [&self.sbom, &self.built] {
            assert!(
                listed.contains(&referrer.digest),
                "{at}: {} not listed: {listed:?}",
                referrer.digest
            );
            let (status, _, manifest) = pusher.get_manifest("prod/foo", &referrer.digest).await;
            assert_eq!((status, &manifest), (200, &referrer.manifest), "{at}: byte for byte");
            for blob in &referrer.blobs {
                let copied = pusher.get_blob("prod/foo", &blob.digest).await;
                assert_eq!(copied, Some(blob.bytes()), "{at}: blob {}", blob.digest);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_distribution_every_promoted_digest_has_one_attestation_that_independent_verifiers_accept() {
    let world = world();
    let dir = tempfile::tempdir().expect("tempdir");
    let key = SigningKey::generate(dir.path(), "signing");
    let other = SigningKey::generate(dir.path(), "other");
    let builder = SigningKey::generate(dir.path(), "builder");
    let staged = Staged::new(101, &builder);
    staged.push(&world, true).await;
    staged.project(&world, &world.dsts());
    let args = [
        "--signing-key",
        key.private.to_str().expect("utf-8"),
        "--signing-identity-rewrite",
        "prod=registry.example",
        "--provenance-key",
        builder.public.to_str().expect("utf-8"),
    ];
    let run = world.spawn_confirm(&args).wait(180);
    run.expect_code(0);
    // The index's build provenance verified with the builder's key; the loose image has none.
    let provenance = &run.summary["provenance"];
    assert_eq!(
        (provenance["verified"].as_u64(), provenance["absent"].as_u64()),
        (Some(1), Some(1))
    );
    let verified = provenance["images"]
        .as_array()
        .expect("images")
        .iter()
        .find(|i| i["outcome"] == "verified")
        .expect("a verified image");
    assert_eq!(verified["builder_id"], "https://builder.example/v1");
    assert_eq!(verified["source_repo"], "https://github.com/kubernetes/foo");
    assert_eq!(run.summary["attestations"]["attested"].as_u64(), Some(4));
    assert_eq!(run.summary["attestations"]["carried"].as_u64(), Some(2));

    let canonical = canonical(&world);
    let pusher = world.mirrors[canonical].pusher();
    for digest in staged.digests() {
        let found = referrers::bundles(&pusher, "prod/foo", digest, PROMOTION).await;
        assert_eq!(
            found.len(),
            1,
            "{digest}: one attestation, whatever the tags and mirrors"
        );
        let bundle = &found[0].1;
        assert_promotion_attestation(
            dir.path(),
            bundle,
            digest,
            &BundleTrust::Key(&key.public),
            Some(&key.public),
        );
        let file = write(dir.path(), "bundle.json", bundle);
        assert!(verifiers::sigstore_js(&file, None, &BundleTrust::Key(&other.public)).is_err());
        assert!(verifiers::securesystemslib_dsse(&file, &other.public, Some("")).is_err());
        for (i, mirror) in world.mirrors.iter().enumerate().filter(|(i, _)| *i != canonical) {
            let elsewhere = referrers::bundles(&mirror.pusher(), "prod/foo", digest, PROMOTION).await;
            assert!(
                elsewhere.is_empty(),
                "mirror {i}: attestations only at the canonical mirror"
            );
        }
    }
    staged.assert_carried(&pusher, "canonical").await;
    assert!(
        tags(&world.mirrors[canonical], "prod/foo")
            .await
            .iter()
            .all(|t| !t.ends_with(".att")),
        "referrers, not .att tags"
    );

    // `kpromo verify --attestations`, as a release manager checks a promotion.
    let verify = |key: &Path| {
        Command::new(env!("CARGO_BIN_EXE_kpromo"))
            .args([
                "verify",
                "--attestations",
                "--predicate-type",
                PROMOTION,
                "--output",
                "json",
                "--key",
            ])
            .arg(key)
            .arg(format!("{}/prod/foo:1.0", world.mirrors[canonical].host()))
            .output()
            .expect("run kpromo verify")
    };
    let ok = verify(&key.public);
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stderr));
    let report: Value = serde_json::from_slice(&ok.stdout).expect("JSON report");
    let verdicts: Vec<&str> = report[0]["attestations"]
        .as_array()
        .expect("attestations")
        .iter()
        .map(|a| a["verdict"].as_str().expect("verdict"))
        .collect();
    let mut sorted = verdicts.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["skipped", "verified"],
        "ours, and the carried build provenance: {report}"
    );
    assert_eq!(verify(&other.public).status.code(), Some(1));

    // A rerun attests, signs and carries nothing again.
    world.clear_seen();
    let rerun = world.spawn_confirm(&args).wait(180);
    rerun.expect_code(0);
    assert_eq!(world.mirror_writes(), 0, "a rerun writes nothing");
    assert_eq!(rerun.summary["attestations"]["already_attested"].as_u64(), Some(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_referrers_api_attestations_and_staging_referrers_reach_every_mirror_once() {
    let world = World::start(env!("CARGO_BIN_EXE_kpromo"), 0);
    let registries = [GgcrRegistry::start(), GgcrRegistry::start()];
    let proxies: Vec<FaultProxy> = registries.iter().map(|r| FaultProxy::start(r.port())).collect();
    let dsts: Vec<String> = proxies.iter().map(|p| format!("{}/prod", p.host())).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let key = SigningKey::generate(dir.path(), "signing");
    let builder = SigningKey::generate(dir.path(), "builder");
    let staged = Staged::new(111, &builder);
    staged.push(&world, true).await;
    staged.project(&world, &dsts);
    let args = [
        "--signing-key",
        key.private.to_str().expect("utf-8"),
        "--signing-identity-rewrite",
        "prod=registry.example",
        "--replicate-signatures",
    ];
    let run = world.spawn_confirm(&args).wait(180);
    run.expect_code(0);
    assert_eq!(run.summary["attestations"]["attested"].as_u64(), Some(4));
    for (i, registry) in registries.iter().enumerate() {
        let pusher = registry.pusher();
        for digest in staged.digests() {
            let (status, _) = pusher.get_referrers("prod/foo", digest).await;
            assert_eq!(status, 200, "listed through the referrers API");
            let found = referrers::bundles(&pusher, "prod/foo", digest, PROMOTION).await;
            assert_eq!(found.len(), 1, "mirror {i}, {digest}: one attestation each");
            let trust = BundleTrust::Key(&key.public);
            assert_promotion_attestation(dir.path(), &found[0].1, digest, &trust, Some(&key.public));
        }
        staged.assert_carried(&pusher, &format!("mirror {i}")).await;
    }

    // A rerun: nothing attested, carried or replicated again; the signatures
    // --replicate-signatures copied are found in place, so no mirror sees a write.
    proxies.iter().for_each(FaultProxy::clear_seen);
    let rerun = world.spawn_confirm(&args).wait(180);
    rerun.expect_code(0);
    let attestations = &rerun.summary["attestations"];
    assert_eq!(
        (
            attestations["already_attested"].as_u64(),
            attestations["carried"].as_u64(),
            attestations["replicated"].as_u64()
        ),
        (Some(4), Some(0), Some(0))
    );
    let canonical = (0..2).min_by_key(|i| dsts[*i].clone()).expect("a mirror");
    let writes = |i: usize| -> Vec<String> {
        proxies[i]
            .seen()
            .into_iter()
            .filter(|s| is_write(&s.method))
            .map(|s| s.path)
            .collect()
    };
    assert!(writes(canonical).is_empty(), "{:?}", writes(canonical));
    assert!(writes(1 - canonical).is_empty(), "{:?}", writes(1 - canonical));
    assert_eq!(rerun.summary["signatures"]["replicated"].as_u64(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_attestations_verify_with_sigstore_js_and_sigstore_python_against_the_fake() {
    let fake = SigstoreFake::start();
    let world = world();
    let dir = tempfile::tempdir().expect("tempdir");
    let token = write(dir.path(), "token", identity_token(ISSUER, PROMOTER, 3600));
    let index = Index::multi_arch(Format::Oci, 121, &["amd64", "arm64/v8"], None);
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
        &[("foo", vec![(index.digest.as_str(), vec!["1.0", "1.1"])])],
    );
    let args = fake.keyless_args(&token);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let trusted_root = fake.trusted_root();
    world.spawn_confirm(&args).wait(180).expect_code(0);
    let digests = [&index.digest, &index.children[0].digest, &index.children[1].digest];
    assert_eq!(
        fake.certificates_issued().len(),
        1,
        "one certificate signs and attests the whole run"
    );
    let kinds: Vec<String> = fake
        .rekor_entries()
        .iter()
        .map(|e| e["kind"].as_str().expect("kind").to_string())
        .collect();
    assert_eq!(kinds.iter().filter(|k| *k == "hashedrekord").count(), 3, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "dsse").count(), 3, "{kinds:?}");

    let pusher = world.mirrors[canonical(&world)].pusher();
    let policy = |identity| KeylessPolicy {
        trusted_root: &trusted_root,
        identity,
        issuer: ISSUER,
    };
    for digest in digests {
        let found = referrers::bundles(&pusher, "prod/foo", digest, PROMOTION).await;
        assert_eq!(found.len(), 1, "{digest}");
        let bundle = &found[0].1;
        assert_promotion_attestation(
            dir.path(),
            bundle,
            digest,
            &BundleTrust::Keyless(policy(PROMOTER)),
            None,
        );
        let file = write(dir.path(), "keyless.json", bundle);
        let accepted = verifiers::sigstore_python_keyless(&file, None, &policy(PROMOTER))
            .unwrap_or_else(|e| panic!("{digest}: sigstore-python: {e}"));
        assert!(accepted.contains(&format!("DSSE {IN_TOTO}")), "{accepted}");
        for refused in [
            verifiers::sigstore_js(&file, None, &BundleTrust::Keyless(policy("someone@example.com"))),
            verifiers::sigstore_python_keyless(&file, None, &policy("someone@example.com")),
        ] {
            assert!(refused.is_err(), "{digest}: another identity");
        }
    }
    let verify = |identity: &str| {
        Command::new(env!("CARGO_BIN_EXE_kpromo"))
            .args(["verify", "--attestations", "--certificate-identity", identity])
            .args(["--certificate-oidc-issuer", ISSUER, "--trusted-root"])
            .arg(&trusted_root)
            .arg(format!("{}/prod/foo:1.1", world.mirrors[canonical(&world)].host()))
            .output()
            .expect("run kpromo verify")
    };
    let ok = verify(PROMOTER);
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stdout));
    assert!(String::from_utf8_lossy(&ok.stdout).contains(&format!("verified {PROMOTION}")));
    let foreign = verify("someone@example.com");
    assert_eq!(foreign.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&foreign.stdout).contains("foreign"));

    // A rerun: no Rekor entry, no certificate, no write.
    world.clear_seen();
    world.spawn_confirm(&args).wait(180).expect_code(0);
    assert_eq!(world.mirror_writes(), 0);
    assert_eq!(fake.rekor_entries().len(), 6, "a rerun logs nothing");
}

/// One case of the provenance matrix: what staging holds for the image.
enum Attached {
    /// sigstore-js's bundle of a Statement, attached as an OCI referrer.
    Referrer {
        signer: &'static str,
        predicate_type: &'static str,
        about_other: bool,
    },
    /// sigstore-js's bundle turned into a cosign `.att` layer; `tampered`: the payload changed after signing.
    Att {
        signer: &'static str,
        tampered: bool,
    },
    Nothing,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staging_provenance_passes_warns_or_refuses_once_per_source_digest() {
    let fake = SigstoreFake::start();
    let world = world();
    let dir = tempfile::tempdir().expect("tempdir");
    let chain = std::fs::read_to_string(fake.fulcio_root_pem()).expect("Fulcio root");
    let trusted_root = fake.trusted_root();
    let cases = [
        (
            "valid SLSA v1",
            Attached::Referrer {
                signer: BUILDER,
                predicate_type: SLSA_V1,
                about_other: false,
            },
            0,
            "1 of 1 source images verified",
        ),
        (
            "foreign identity",
            Attached::Att {
                signer: "someone@example.com",
                tampered: false,
            },
            0,
            "no provenance by the expected signer",
        ),
        (
            "other predicate type",
            Attached::Referrer {
                signer: BUILDER,
                predicate_type: "https://spdx.dev/Document",
                about_other: false,
            },
            0,
            "predicate type https://spdx.dev/Document",
        ),
        (
            "tampered",
            Attached::Att {
                signer: BUILDER,
                tampered: true,
            },
            1,
            "invalid provenance",
        ),
        (
            "another digest",
            Attached::Referrer {
                signer: BUILDER,
                predicate_type: SLSA_V1,
                about_other: true,
            },
            1,
            "the Statement is about",
        ),
        ("none", Attached::Nothing, 0, "1 absent"),
    ];
    for (n, (what, attached, code, needle)) in cases.into_iter().enumerate() {
        let image = Image::simple(Format::Oci, 130 + n as u64);
        let pusher = world.staging.pusher();
        within(
            60,
            "push the staging image",
            pusher.push_image("staging/foo", &image, &[]),
        )
        .await;
        let about = if matches!(attached, Attached::Referrer { about_other: true, .. }) {
            Image::simple(Format::Oci, 199).digest
        } else {
            image.digest.clone()
        };
        let sign = |signer: &str, predicate_type: &str| {
            let statement = write(
                dir.path(),
                "statement.json",
                provenance(&about, predicate_type, "https://builder.example/v1"),
            );
            let bundle = dir.path().join("bundle.json");
            fake.sign_with_sigstore_js(&identity_token(ISSUER, signer, 600), &statement, Some(IN_TOTO), &bundle)
                .expect("sigstore-js attests");
            serde_json::from_slice::<Value>(&std::fs::read(&bundle).expect("bundle")).expect("bundle JSON")
        };
        match attached {
            Attached::Referrer {
                signer, predicate_type, ..
            } => {
                let subject = Subject {
                    media_type: image.media_type(),
                    digest: &image.digest,
                    size: image.manifest.len() as u64,
                };
                let bundle = sign(signer, predicate_type).to_string();
                let referrer = Referrer::bundle(subject, bundle, predicate_type);
                within(
                    60,
                    "attach",
                    referrer.attach(&pusher, "staging/foo", &image.digest, true),
                )
                .await;
            }
            Attached::Att { signer, tampered } => {
                let bundle = sign(signer, SLSA_V1);
                let mut layer = keyless_attestation_layer(&bundle, &chain, SLSA_V1);
                if tampered {
                    let mut envelope: Value = serde_json::from_slice(&layer.payload).expect("envelope");
                    let forged = provenance(&image.digest, SLSA_V1, "https://evil.example");
                    envelope["payload"] = json!(STANDARD.encode(forged));
                    layer.payload = envelope.to_string().into_bytes();
                }
                within(
                    60,
                    "attach",
                    push_attestations(&pusher, "staging/foo", &image.digest, &[layer]),
                )
                .await;
            }
            Attached::Nothing => {}
        }
        // Three mirrors and three tags: one check.
        let tags: Vec<String> = ["a", "b", "c"].iter().map(|t| format!("{t}{n}")).collect();
        let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
        world.write_project(
            "p",
            &world.src(),
            &world.dsts(),
            &[("foo", vec![(image.digest.as_str(), tags)])],
        );
        world.clear_seen();
        let run = world
            .spawn_confirm(&[
                "--certificate-identity",
                BUILDER,
                "--certificate-oidc-issuer",
                ISSUER,
                "--trusted-root",
                trusted_root.to_str().expect("utf-8"),
            ])
            .wait(180);
        run.expect_code(code);
        assert!(run.stderr.contains(needle), "{what}: {needle}:\n{}", run.stderr);
        if code != 0 {
            assert_eq!(world.mirror_writes(), 0, "{what}: a refused run writes nothing");
            assert!(run.stderr.contains(&image.digest), "{what}: the error names the image");
        }
        let hex = image.digest.trim_start_matches("sha256:");
        for path in [
            format!(r"^/v2/staging/foo/manifests/sha256-{hex}\.att$"),
            format!(r"^/v2/staging/foo/referrers/sha256:{hex}$"),
        ] {
            // Read once by kpromo; a read slower than staging usually answers may be sent
            // a second time on the wire (hedged), which the summary counts.
            let hedged = run.summary["registries"][world.staging_proxy.host()]["throttling"]["hedged"]
                .as_u64()
                .unwrap_or(0) as usize;
            let reads = world.staging_proxy.count("GET", &path);
            assert!(
                reads >= 1 && reads <= 1 + hedged,
                "{what}: {path} read once ({reads} GETs, {hedged} hedged)"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_referrers_api_answering_garbage_refuses_the_run_naming_the_image_and_step() {
    let world = world();
    let image = Image::simple(Format::Oci, 141);
    within(
        60,
        "push",
        world.staging.pusher().push_image("staging/foo", &image, &[]),
    )
    .await;
    world.write_project(
        "p",
        &world.src(),
        &world.dsts(),
        &[("foo", vec![(image.digest.as_str(), vec!["1.0"])])],
    );
    world.staging_proxy.set_rules(vec![Rule::new(
        Some("GET"),
        "/referrers/",
        Action::Answer {
            status: 200,
            content_type: "application/vnd.oci.image.index.v1+json",
            body: "{\"manifests\": 42}",
        },
        Times::Always,
    )]);
    let run = world.confirm(120);
    run.expect_code(1);
    for needle in ["provenance", "list referrers", image.digest.as_str()] {
        assert!(run.stderr.contains(needle), "{needle}: {}", run.stderr);
    }
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    assert_eq!(world.mirror_writes(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_refusing_referrers_leaves_the_image_unattested_and_a_rerun_only_attests() {
    let world = world();
    let dir = tempfile::tempdir().expect("tempdir");
    let key = SigningKey::generate(dir.path(), "signing");
    let image = Image::simple(Format::Oci, 151);
    within(
        60,
        "push",
        world.staging.pusher().push_image("staging/foo", &image, &[]),
    )
    .await;
    world.write_project(
        "p",
        &world.src(),
        &world.dsts(),
        &[("foo", vec![(image.digest.as_str(), vec!["1.0"])])],
    );
    world.confirm(120).expect_code(0);

    // The canonical mirror refuses manifests pushed by digest: the image, already there, is
    // not pushed again; the `.sig` goes by tag; the attestation is refused.
    let canonical = canonical(&world);
    world.proxies[canonical].set_rules(vec![Rule::new(
        Some("PUT"),
        r"/manifests/sha256:",
        Action::Status {
            status: 400,
            retry_after: None,
        },
        Times::Always,
    )]);
    let args = [
        "--signing-key",
        key.private.to_str().expect("utf-8"),
        "--signing-identity-rewrite",
        "prod=registry.example",
    ];
    let refused = world.spawn_confirm(&args).wait(120);
    refused.expect_code(1);
    for needle in ["not attested", "rerun to attest", image.digest.as_str(), "PUT manifest"] {
        assert!(refused.stderr.contains(needle), "{needle}: {}", refused.stderr);
    }
    let fallback = format!("sha256-{}", image.digest.trim_start_matches("sha256:"));
    let mirror = &world.mirrors[canonical];
    assert!(
        !tags(mirror, "prod/foo").await.contains(&fallback),
        "no fallback index for a missing referrer"
    );
    assert_eq!(refused.summary["attestations"]["failed"].as_u64(), Some(1));

    world.proxies[canonical].set_rules(Vec::new());
    world.clear_seen();
    let rerun = world.spawn_confirm(&args).wait(120);
    rerun.expect_code(0);
    assert_eq!(rerun.summary["attestations"]["attested"].as_u64(), Some(1));
    assert_eq!(
        referrers::bundles(&mirror.pusher(), "prod/foo", &image.digest, PROMOTION)
            .await
            .len(),
        1
    );
    let manifests: Vec<String> = world.proxies[canonical]
        .seen()
        .into_iter()
        .filter(|s| s.method == "PUT" && s.path.contains("/manifests/"))
        .map(|s| s.path)
        .collect();
    assert_eq!(
        manifests.len(),
        2,
        "the attestation and its fallback index only: {manifests:?}"
    );
    assert!(manifests.iter().any(|p| p.ends_with(&fallback)), "{manifests:?}");
}
