//! Unit tests of Provenance and Attest over in-memory registries (`registry::memory`),
//! with attestations signed by a key made by ring: where attestations go, once, what they
//! say, what is carried, and how bad input ends. The e2e tests check the same against
//! real registries, with staging attestations and verdicts from tools kpromo did not
//! write.
use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::{Value, json};

use super::tests::{World, foo_1_0, key_signer, manifest, multi_arch, plan_and_promote, signing_state};
use super::{Error, Phase, plan, run_phases};
use crate::digest::Digest;
use crate::registry::media::OCI_MANIFEST;
use crate::registry::memory::MemoryRegistry;
use crate::registry::test_image::TestImage;
use crate::registry::{ManifestRef, RawManifest, Registry};
use crate::trust::Signer;
use crate::trust::attestation::{
    IN_TOTO_PAYLOAD_TYPE, PREDICATE_TYPE_ANNOTATION, PROMOTION_PREDICATE_TYPE, SLSA_PROVENANCE_V1, StatementView,
    bundle, bundle_layer, referrer_manifest,
};
use crate::trust::cosign::{DSSE_ENVELOPE, PREDICATE_TYPE_ANNOTATION as ATT_PREDICATE, attestation_tag};
use crate::trust::provenance::Outcome;
use crate::trust::verify::{Policy, SignedStatement};

/// An SLSA-shaped Statement about `subject` of `predicate_type`, built by `builder`.
fn statement(subject: &Digest, predicate_type: &str, builder: &str) -> Vec<u8> {
    json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "stage/staging/foo", "digest": {"sha256": subject.hex()}}],
        "predicateType": predicate_type,
        "predicate": {
            "buildDefinition": {"externalParameters": {"source": "https://github.com/kubernetes/foo"}},
            "runDetails": {"builder": {"id": builder}},
        },
    })
    .to_string()
    .into_bytes()
}

/// A DSSE envelope of `payload` signed by `signer`, as JSON bytes.
async fn envelope(signer: &Signer, payload: &[u8]) -> Vec<u8> {
    let (envelope, _) = signer.sign_dsse(IN_TOTO_PAYLOAD_TYPE, payload).await.unwrap();
    serde_json::to_vec(&envelope).unwrap()
}

/// Attaches `payload`, signed by `signer`, to `image` in `repo` as a sigstore bundle
/// referrer (as cosign v3 does).
async fn attach_bundle(registry: &MemoryRegistry, repo: &str, image: &TestImage, signer: &Signer, payload: &[u8]) {
    let (envelope, material) = signer.sign_dsse(IN_TOTO_PAYLOAD_TYPE, payload).await.unwrap();
    let bundle = bundle(&envelope, &material);
    let declared: Value = serde_json::from_slice(payload).unwrap();
    let predicate_type = declared["predicateType"].as_str().unwrap();
    let manifest = referrer_manifest(
        &image.manifest.descriptor(),
        &bundle,
        predicate_type,
        "2026-01-01T00:00:00Z",
    );
    registry.seed_blob(repo, b"{}");
    registry.seed_blob(repo, &bundle);
    registry.put_referrer(repo, &manifest).await.unwrap();
}

/// Pushes `image`'s `.att` manifest in `repo`: one DSSE envelope layer per entry, with
/// cosign's `predicateType` annotation.
async fn attach_att(registry: &MemoryRegistry, repo: &str, image: &TestImage, layers: &[(Vec<u8>, &str)]) {
    let config = br#"{"architecture":"","os":"","config":{}}"#;
    registry.seed_blob(repo, config);
    let descriptors: Vec<Value> = layers
        .iter()
        .map(|(envelope, predicate_type)| {
            registry.seed_blob(repo, envelope);
            json!({
                "mediaType": DSSE_ENVELOPE,
                "digest": Digest::of(envelope).to_string(),
                "size": envelope.len(),
                "annotations": {ATT_PREDICATE: predicate_type},
            })
        })
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": Digest::of(config).to_string(), "size": config.len()},
        "layers": descriptors,
    });
    let manifest = RawManifest::new(OCI_MANIFEST, Bytes::from(manifest.to_string()));
    registry
        .put_manifest(repo, &ManifestRef::Tag(attestation_tag(&image.digest())), &manifest)
        .await
        .unwrap();
}

/// The promotion attestations of `image` that `host` lists in `repo` and that verify
/// with `policy`: their Statements.
async fn promotions(world: &World, host: &str, repo: &str, image: Digest, policy: &Policy) -> Vec<StatementView> {
    let registry = world.host(host);
    let stored = registry.repo(repo);
    let mut out = Vec::new();
    for referrer in registry.list_referrers(repo, &image, None).await.unwrap() {
        if referrer.annotations.get(PREDICATE_TYPE_ANNOTATION).map(String::as_str) != Some(PROMOTION_PREDICATE_TYPE) {
            continue;
        }
        let manifest = &stored.manifests[&referrer.digest];
        let (layer, _) = bundle_layer(manifest).expect("a bundle layer");
        let signed = SignedStatement::from_bundle(&stored.blobs[&layer]).expect("a bundle");
        signed.verify(&image, policy).expect("verifies with the signer's key");
        out.push(signed.statement().clone());
    }
    out
}

#[tokio::test]
async fn every_promoted_digest_is_attested_once_at_the_canonical_destination_and_a_rerun_adds_nothing() {
    let world = World::new(&["stage", "a-mirror", "b-mirror"]);
    let img = multi_arch();
    let loose = TestImage::single("loose", &[b"tagless"]);
    world.host("stage").seed("staging/foo", &img, &[]);
    world.host("stage").seed("staging/foo", &loose, &[]);
    let m = manifest(
        "stage/staging",
        &["b-mirror/prod", "a-mirror/prod"],
        &[(
            "foo",
            vec![(img.digest(), vec!["1.0", "1.1"]), (loose.digest(), vec![])],
        )],
    );
    let mut state = signing_state(&world, std::slice::from_ref(&m));
    let policy = state.signer.as_ref().unwrap().policy().await;
    plan_and_promote(&mut state).await;
    run_phases(&mut state, &[Phase::Sign, Phase::Attest])
        .await
        .expect("sign, attest");

    let digests = [
        img.digest(),
        img.children[0].digest(),
        img.children[1].digest(),
        loose.digest(),
    ];
    let mut timestamps = Vec::new();
    for digest in digests {
        let found = promotions(&world, "a-mirror", "prod/foo", digest, &policy).await;
        assert_eq!(found.len(), 1, "{digest}: one attestation, whatever the tags");
        let statement = &found[0];
        assert_eq!(statement.subject[0].name, "registry.example/foo");
        assert_eq!(statement.subject_digests(), [digest.to_string()]);
        let predicate = &statement.predicate;
        assert_eq!(predicate["srcRef"], format!("stage/staging/foo@{digest}"));
        assert_eq!(predicate["dstRef"], format!("a-mirror/prod/foo@{digest}"));
        assert_eq!(predicate["digest"], digest.to_string());
        assert!(
            predicate["builderId"]
                .as_str()
                .unwrap()
                .starts_with("https://k8s.io/promo-tools@v")
        );
        timestamps.push(predicate["timestamp"].as_str().unwrap().to_string());
        assert!(
            promotions(&world, "b-mirror", "prod/foo", digest, &policy)
                .await
                .is_empty(),
            "not replicated"
        );
    }
    timestamps.dedup();
    assert_eq!(timestamps.len(), 1, "one timestamp per run: {timestamps:?}");
    assert!(timestamps[0].ends_with('Z'), "{timestamps:?}");
    assert_eq!(state.attesting.attested.iter().filter(|a| a.newly).count(), 4);

    // A rerun (nothing to copy) signs and attests nothing again, and writes nothing.
    world.clear_logs();
    let mut rerun = signing_state(&world, &[m]);
    rerun.signer = state.signer.take();
    plan_and_promote(&mut rerun).await;
    run_phases(&mut rerun, &[Phase::Sign, Phase::Attest])
        .await
        .expect("rerun");
    assert_eq!(world.writes(), 0, "{:?}", world.host("a-mirror").writes());
    assert_eq!(rerun.attesting.attested.iter().filter(|a| !a.newly).count(), 4);
}

#[tokio::test]
async fn staging_referrers_are_carried_byte_for_byte_and_replicated_with_our_attestation() {
    let world = World::new(&["stage", "a-mirror", "b-mirror"]);
    let img = TestImage::single("x", &[b"layer"]);
    let stage = world.host("stage");
    stage.seed("staging/foo", &img, &[]);
    let sbom = TestImage::referrer(&img, "application/spdx+json", 1);
    let signature = TestImage::referrer(&img, "application/vnd.dev.sigstore.bundle.v0.3+json", 2);
    for referrer in [&sbom, &signature] {
        referrer.push_blobs(stage.as_ref(), "staging/foo").await.unwrap();
        stage.put_referrer("staging/foo", &referrer.manifest).await.unwrap();
    }
    world.clear_logs();
    let m = foo_1_0(&["a-mirror/prod", "b-mirror/prod"], img.digest());
    let mut state = signing_state(&world, std::slice::from_ref(&m));
    state.options.trust.replicate = true;
    plan::plan_edges(&mut state).await.expect("plan");
    run_phases(
        &mut state,
        &[Phase::Provenance, Phase::Promote, Phase::Sign, Phase::Attest],
    )
    .await
    .expect("promote, sign, attest");
    assert_eq!(state.provenance_report[0].outcome, Outcome::Absent);
    assert_eq!(state.attesting.carried, 2);
    assert_eq!(state.attesting.replicated, 3, "two carried and ours");
    for mirror in ["a-mirror", "b-mirror"] {
        let registry = world.host(mirror);
        let listed = registry.list_referrers("prod/foo", &img.digest(), None).await.unwrap();
        assert_eq!(listed.len(), 3, "{mirror}: {listed:?}");
        let stored = registry.repo("prod/foo");
        for referrer in [&sbom, &signature] {
            assert_eq!(
                stored.manifests.get(&referrer.digest()),
                Some(&referrer.manifest),
                "{mirror}: byte for byte"
            );
            assert!(listed.iter().any(|r| r.digest == referrer.digest()), "{mirror}");
        }
    }
    // Staging's referrers were listed once, by Provenance.
    let lists = stage
        .log()
        .iter()
        .filter(|l| **l == format!("GET manifest staging/foo:sha256-{}", img.digest().hex()))
        .count();
    assert_eq!(lists, 1, "{:?}", stage.log());

    world.clear_logs();
    let mut rerun = signing_state(&world, &[m]);
    rerun.options.trust.replicate = true;
    rerun.signer = state.signer.take();
    plan_and_promote(&mut rerun).await;
    run_phases(&mut rerun, &[Phase::Sign, Phase::Attest])
        .await
        .expect("rerun");
    // The replicated `.sig` manifest and the referrers are found in place: no write.
    assert!(
        world.host("b-mirror").writes().is_empty(),
        "{:?}",
        world.host("b-mirror").writes()
    );
    assert!(world.host("a-mirror").writes().is_empty());
    assert_eq!(rerun.signing.replicated, 0);
    assert_eq!((rerun.attesting.carried, rerun.attesting.replicated), (0, 0));
}

/// Seven staging images, each with another kind of attestation, checked in one run with
/// `--provenance-key`: every outcome, recorded per source digest, read once each.
#[tokio::test]
async fn provenance_verifies_ignores_or_refuses_once_per_source_digest() {
    let world = World::new(&["stage", "m1", "m2"]);
    let stage = world.host("stage");
    let builder = key_signer();
    let images: Vec<TestImage> = (0..7)
        .map(|n| TestImage::single(&format!("img{n}"), &[format!("layer {n}").as_bytes()]))
        .collect();
    for image in &images {
        stage.seed("staging/foo", image, &[]);
    }
    let [valid, other_type, tampered, elsewhere, none, huge, unreadable] = &images[..] else {
        unreachable!()
    };
    let repo = "staging/foo";
    let builder_id = "https://builder.example/v1";
    attach_bundle(
        &stage,
        repo,
        valid,
        &builder,
        &statement(&valid.digest(), SLSA_PROVENANCE_V1, builder_id),
    )
    .await;
    let spdx = statement(&other_type.digest(), "https://spdx.dev/Document", builder_id);
    attach_att(
        &stage,
        repo,
        other_type,
        &[(envelope(&builder, &spdx).await, "https://spdx.dev/Document")],
    )
    .await;
    // Signed, then the payload changed.
    let mut forged: Value = serde_json::from_slice(
        &envelope(&builder, &statement(&tampered.digest(), SLSA_PROVENANCE_V1, builder_id)).await,
    )
    .unwrap();
    let evil = statement(&tampered.digest(), SLSA_PROVENANCE_V1, "https://evil.example");
    forged["payload"] = json!(base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        &evil
    ));
    attach_att(
        &stage,
        repo,
        tampered,
        &[(forged.to_string().into_bytes(), SLSA_PROVENANCE_V1)],
    )
    .await;
    // A valid signature over a Statement about another image.
    let about_valid = statement(&valid.digest(), SLSA_PROVENANCE_V1, builder_id);
    attach_bundle(&stage, repo, elsewhere, &builder, &about_valid).await;
    // More than the cap, and not an envelope at all.
    attach_att(&stage, repo, huge, &[(vec![b' '; (8 << 20) + 1], SLSA_PROVENANCE_V1)]).await;
    attach_att(&stage, repo, unreadable, &[(b"not json".to_vec(), SLSA_PROVENANCE_V1)]).await;

    let dmap: Vec<(Digest, Vec<&str>)> = images.iter().map(|i| (i.digest(), vec![])).collect();
    let m = manifest("stage/staging", &["m1/prod", "m2/prod"], &[("foo", dmap)]);
    let keys = tempfile::tempdir().unwrap();
    let public = keys.path().join("builder.pub");
    let Signer::Key { key, .. } = &builder else {
        unreachable!()
    };
    std::fs::write(&public, crate::trust::key::public_key_pem(key).unwrap()).unwrap();
    let mut state = world.state(&[m], true);
    state.options.trust.provenance.key = Some(public);
    plan::plan_edges(&mut state).await.expect("plan");
    world.clear_logs();
    let err = run_phases(&mut state, &[Phase::Provenance, Phase::Validate, Phase::Promote])
        .await
        .expect_err("refused");
    assert!(matches!(err, Error::Provenance { count: 4, .. }), "{err}");
    assert_eq!(world.writes(), 0, "nothing written");

    let outcomes: BTreeMap<Digest, (Outcome, String)> = state
        .provenance_report
        .iter()
        .map(|r| {
            let digest: Digest = r.image.rsplit_once('@').unwrap().1.parse().unwrap();
            (digest, (r.outcome, r.notes.join("; ")))
        })
        .collect();
    let outcome = |image: &TestImage| outcomes[&image.digest()].clone();
    assert_eq!(outcome(valid).0, Outcome::Verified);
    let verified: Vec<_> = state.evidence.iter().filter(|(_, e)| e.provenance.verified).collect();
    assert_eq!(verified.len(), 1, "only verified provenance is recorded");
    assert_eq!(verified[0].0.1, valid.digest());
    let facts = &verified[0].1.provenance;
    assert_eq!(
        (
            facts.builder_id.as_str(),
            facts.source_repo.as_str(),
            facts.predicate_type.as_str()
        ),
        (builder_id, "https://github.com/kubernetes/foo", SLSA_PROVENANCE_V1)
    );
    let (o, why) = outcome(other_type);
    assert_eq!(o, Outcome::Ignored);
    assert!(why.contains("predicate type https://spdx.dev/Document"), "{why}");
    let (o, why) = outcome(tampered);
    assert_eq!(o, Outcome::Failed);
    assert!(why.contains("does not verify"), "{why}");
    let (o, why) = outcome(elsewhere);
    assert_eq!(o, Outcome::Failed);
    assert!(why.contains(&format!("not {}", elsewhere.digest())), "{why}");
    assert_eq!(outcome(none).0, Outcome::Absent);
    let (o, why) = outcome(huge);
    assert_eq!(o, Outcome::Failed);
    assert!(
        why.contains("larger than 8388608 bytes") && why.contains(".att"),
        "{why}"
    );
    let (o, why) = outcome(unreadable);
    assert_eq!(o, Outcome::Failed);
    assert!(why.contains("not a DSSE envelope"), "{why}");

    // Once per source digest, whatever the mirrors: one `.att` read and one referrers
    // list each (the in-memory registry lists through the fallback tag).
    for image in &images {
        for tag in [
            attestation_tag(&image.digest()),
            format!("sha256-{}", image.digest().hex()),
        ] {
            let reads = stage
                .log()
                .iter()
                .filter(|l| **l == format!("GET manifest {repo}:{tag}"))
                .count();
            assert_eq!(reads, 1, "{tag}");
        }
    }
}

#[tokio::test]
async fn a_registry_refusing_referrers_leaves_the_image_unattested_and_lists_nothing() {
    let mut world = World::new(&["stage"]);
    world.hosts.insert(
        "old".into(),
        std::sync::Arc::new(MemoryRegistry::new("old").refusing_subjects()),
    );
    let img = TestImage::single("x", &[b"layer"]);
    world.host("stage").seed("staging/foo", &img, &[]);
    let mut state = signing_state(&world, &[foo_1_0(&["old/prod"], img.digest())]);
    plan_and_promote(&mut state).await;
    let err = run_phases(&mut state, &[Phase::Sign, Phase::Attest])
        .await
        .expect_err("not attested");
    let text = err.to_string();
    assert!(
        text.contains("not attested") && text.contains(&img.digest().to_string()),
        "{text}"
    );
    assert!(
        text.contains("PUT manifest") && text.contains("MANIFEST_INVALID"),
        "{text}"
    );
    let stored = world.host("old").repo("prod/foo");
    assert!(
        !stored.tags.contains_key(&format!("sha256-{}", img.digest().hex())),
        "no fallback index for a referrer that is not there"
    );
    assert_eq!(state.attesting.failed.len(), 1);
    assert_eq!(state.signing.signed.len(), 1, "signed all the same");
}
