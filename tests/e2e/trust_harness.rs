//! Self-tests of the trust oracles (tests/support/verifiers.rs, sigstore_fake.rs): each
//! independent verifier accepts a good signature or attestation and refuses a tampered payload,
//! a wrong key and a wrong digest or identity, in its own words. The artifacts are made by
//! independent means too: openssl keys and signatures over payloads written here by hand, and
//! sigstore-js's own signer against the fake Fulcio/Rekor. Tests of kpromo's signing rely on
//! these verdicts.
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use serde_json::{Value, json};

use crate::support::cosign::{
    BUNDLE_V03, IN_TOTO, SIGNATURE_ANNOTATION, SignatureLayer, in_toto_statement, key_dsse_bundle, keyless_layer,
    push_signatures, simple_signing_payload,
};
use crate::support::images::{Format, Image, sha256_digest};
use crate::support::pki::SigningKey;
use crate::support::sigstore_fake::{SigstoreFake, identity_token};
use crate::support::verifiers::{self, BundleTrust, CosignTrust, KeylessPolicy, SignedIdentity};
use crate::support::{RegistryOptions, TestRegistry, within};

const ISSUER: &str = "https://oidc.example";
const SIGNER: &str = "promoter@example.com";
/// Where the images are read (a test mirror) and the public name they are signed for.
const MIRROR_REPO: &str = "k8s-artifacts-prod/images/pause";
const PUBLIC_REPO: &str = "registry.k8s.io/pause";

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

fn refusal(verdict: verifiers::Verdict, what: &str) -> String {
    match verdict {
        Ok(accepted) => panic!("{what} was accepted: {accepted}"),
        Err(reason) => reason,
    }
}

fn assert_refused(verdict: verifiers::Verdict, what: &str, expected: &str) {
    let reason = refusal(verdict, what);
    assert!(reason.contains(expected), "{what}: expected {expected:?} in: {reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_verifies_cosign_signatures_made_with_a_key() {
    let registry = TestRegistry::start(RegistryOptions::basic());
    let dir = tempfile::tempdir().expect("tempdir");
    let key = SigningKey::generate(dir.path(), "promoter");
    let foreign = SigningKey::generate(dir.path(), "foreign");
    let pusher = registry.pusher();
    let [signed, tampered, misdirected, unsigned, resigned] =
        [21, 22, 23, 24, 25].map(|seed| Image::simple(Format::Oci, seed));
    let good = SignatureLayer::signed_with_key(simple_signing_payload(PUBLIC_REPO, &signed.digest), &key);
    // Signed over one payload, carrying another: the identity is unchanged, only bytes differ.
    let mut forged = SignatureLayer::signed_with_key(simple_signing_payload(PUBLIC_REPO, &tampered.digest), &key);
    forged.payload = String::from_utf8(forged.payload)
        .expect("utf-8 payload")
        .replace("trust-harness", "trust-harnesz")
        .into_bytes();
    within(60, "push images and signatures", async {
        for (image, tag) in [
            (&signed, "signed"),
            (&tampered, "tampered"),
            (&misdirected, "misdirected"),
            (&unsigned, "unsigned"),
            (&resigned, "resigned"),
        ] {
            pusher.push_image(MIRROR_REPO, image, &[tag]).await;
        }
        push_signatures(&pusher, MIRROR_REPO, &signed.digest, &[good]).await;
        push_signatures(&pusher, MIRROR_REPO, &tampered.digest, &[forged]).await;
        // A valid signature, for another image's digest.
        let elsewhere = SignatureLayer::signed_with_key(simple_signing_payload(PUBLIC_REPO, &signed.digest), &key);
        push_signatures(&pusher, MIRROR_REPO, &misdirected.digest, &[elsewhere]).await;
        // A foreign signature first, ours appended after it (as a re-signing keeps the old ones).
        let theirs = SignatureLayer::signed_with_key(simple_signing_payload(PUBLIC_REPO, &resigned.digest), &foreign);
        let ours = SignatureLayer::signed_with_key(simple_signing_payload(PUBLIC_REPO, &resigned.digest), &key);
        push_signatures(&pusher, MIRROR_REPO, &resigned.digest, &[theirs, ours]).await;
    })
    .await;

    let ours = CosignTrust::Key(&key.public);
    let public_name = SignedIdentity::ExactRepository(PUBLIC_REPO);
    let creds = registry.credentials();
    let at = |reference: &str| format!("{}/{MIRROR_REPO}{reference}", registry.host());
    for reference in [at(":signed"), at(&format!("@{}", signed.digest)), at(":resigned")] {
        let accepted = verifiers::skopeo_cosign(&reference, &ours, &public_name, creds)
            .unwrap_or_else(|e| panic!("{reference} must verify: {e}"));
        assert!(accepted.contains("sigstoreSigned accepted"), "{accepted}");
    }
    // The signature names the public repository, not the mirror the image is read from.
    assert_refused(
        verifiers::skopeo_cosign(&at(":signed"), &ours, &SignedIdentity::MatchRepository, creds),
        "another repository's identity under matchRepository",
        &format!("Signature for identity \"{PUBLIC_REPO}\" is not accepted"),
    );
    assert_refused(
        verifiers::skopeo_cosign(
            &at(":signed"),
            &ours,
            &SignedIdentity::ExactRepository("registry.k8s.io/other"),
            creds,
        ),
        "another identity",
        &format!("Signature for identity \"{PUBLIC_REPO}\" is not accepted"),
    );
    assert_refused(
        verifiers::skopeo_cosign(&at(":signed"), &CosignTrust::Key(&foreign.public), &public_name, creds),
        "a wrong key",
        "cryptographic signature verification failed: invalid signature",
    );
    assert_refused(
        verifiers::skopeo_cosign(&at(":tampered"), &ours, &public_name, creds),
        "a tampered payload",
        "cryptographic signature verification failed: invalid signature",
    );
    assert_refused(
        verifiers::skopeo_cosign(&at(":misdirected"), &ours, &public_name, creds),
        "another digest's signature",
        &format!("Signature for digest {} does not match", signed.digest),
    );
    assert_refused(
        verifiers::skopeo_cosign(&at(":unsigned"), &ours, &public_name, creds),
        "no signature",
        "A signature was required, but no signature exists",
    );

    // OpenSSL over the exact payload bytes the registry holds.
    let sig_tag = format!("{}.sig", signed.digest.replace(':', "-"));
    let (status, _, manifest) = pusher.get_manifest(MIRROR_REPO, &sig_tag).await;
    assert_eq!(status, 200, "{sig_tag}");
    let manifest: Value = serde_json::from_slice(&manifest).expect("signature manifest JSON");
    let layer = &manifest["layers"][0];
    let signature = STANDARD
        .decode(
            layer["annotations"][SIGNATURE_ANNOTATION]
                .as_str()
                .expect("signature annotation"),
        )
        .expect("base64 signature");
    let payload = simple_signing_payload(PUBLIC_REPO, &signed.digest);
    assert_eq!(layer["digest"], sha256_digest(&payload), "the layer is the payload");
    let payload_file = write(dir.path(), "payload.json", &payload);
    let signature_file = write(dir.path(), "payload.sig", &signature);
    let accepted = verifiers::openssl_ecdsa(&payload_file, &signature_file, &key.public).expect("openssl verifies");
    assert!(accepted.contains("Verified OK"), "{accepted}");
    assert_refused(
        verifiers::openssl_ecdsa(&payload_file, &signature_file, &foreign.public),
        "openssl with a wrong key",
        "Verification failure",
    );
    let other_payload = write(
        dir.path(),
        "other.json",
        simple_signing_payload(PUBLIC_REPO, &tampered.digest),
    );
    assert_refused(
        verifiers::openssl_ecdsa(&other_payload, &signature_file, &key.public),
        "openssl over other bytes",
        "Verification failure",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_verifies_keyless_cosign_signatures_against_the_fake() {
    let registry = TestRegistry::start(RegistryOptions::plain());
    let fake = SigstoreFake::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let image = Image::simple(Format::Oci, 31);
    let payload = simple_signing_payload(PUBLIC_REPO, &image.digest);
    let payload_file = write(dir.path(), "payload.json", &payload);
    let bundle_file = dir.path().join("bundle.json");
    let token = identity_token(ISSUER, SIGNER, 600);
    fake.sign_with_sigstore_js(&token, &payload_file, None, &bundle_file)
        .expect("sigstore-js signs against the fake");
    // The message-signature bundle itself verifies against the payload, in both sigstore libraries.
    let trusted_root = fake.trusted_root();
    let policy = KeylessPolicy {
        trusted_root: &trusted_root,
        identity: SIGNER,
        issuer: ISSUER,
    };
    verifiers::sigstore_js(&bundle_file, Some(&payload_file), &BundleTrust::Keyless(policy))
        .expect("sigstore-js verifies the message signature");
    let accepted = verifiers::sigstore_python_keyless(&bundle_file, Some(&payload_file), &policy)
        .expect("sigstore-python verifies the message signature");
    assert!(accepted.contains(&sha256_digest(&payload)), "{accepted}");
    let other = simple_signing_payload(PUBLIC_REPO, &Image::simple(Format::Oci, 32).digest);
    let other_file = write(dir.path(), "other.json", other);
    assert_refused(
        verifiers::sigstore_python_keyless(&bundle_file, Some(&other_file), &policy),
        "sigstore-python: another payload",
        "VerificationError",
    );
    let bundle: Value =
        serde_json::from_slice(&std::fs::read(&bundle_file).expect("read bundle")).expect("bundle JSON");
    let chain = std::fs::read_to_string(fake.fulcio_root_pem()).expect("read Fulcio root");
    let pusher = registry.pusher();
    within(60, "push image and keyless signature", async {
        pusher.push_image(MIRROR_REPO, &image, &["keyless"]).await;
        push_signatures(
            &pusher,
            MIRROR_REPO,
            &image.digest,
            &[keyless_layer(payload, &bundle, &chain)],
        )
        .await;
    })
    .await;

    let reference = format!("{}/{MIRROR_REPO}@{}", registry.host(), image.digest);
    let identity = SignedIdentity::ExactRepository(PUBLIC_REPO);
    let (fulcio_ca, rekor_key) = (fake.fulcio_root_pem(), fake.rekor_public_key_pem());
    let trust = |issuer, email, rekor_key| CosignTrust::Keyless {
        fulcio_ca: &fulcio_ca,
        rekor_key,
        issuer,
        email,
    };
    verifiers::skopeo_cosign(&reference, &trust(ISSUER, SIGNER, &rekor_key), &identity, None)
        .expect("skopeo 1.18 verifies a keyless signature against the fake's CA and Rekor key");
    assert_refused(
        verifiers::skopeo_cosign(
            &reference,
            &trust(ISSUER, "other@example.com", &rekor_key),
            &identity,
            None,
        ),
        "another signer",
        &format!("Required email \"other@example.com\" not found (got [\"{SIGNER}\"])"),
    );
    assert_refused(
        verifiers::skopeo_cosign(
            &reference,
            &trust("https://other.example", SIGNER, &rekor_key),
            &identity,
            None,
        ),
        "another issuer",
        &format!("Unexpected Fulcio OIDC issuer \"{ISSUER}\""),
    );
    assert_refused(
        verifiers::skopeo_cosign(
            &reference,
            &trust(ISSUER, SIGNER, &fake.ctfe_public_key_pem()),
            &identity,
            None,
        ),
        "a SET checked with a key that is not Rekor's",
        "cryptographic signature verification of Rekor SET failed",
    );
}

/// An in-toto v1 Statement about `digest`, written out by hand.
fn statement(digest: &str) -> Vec<u8> {
    let predicate = json!({"buildDefinition": {"buildType": "https://k8s.io/kpromo/promotion@v1"}});
    in_toto_statement(PUBLIC_REPO, digest, "https://slsa.dev/provenance/v1", &predicate)
}

#[test]
fn bundle_verifiers_check_attestations_signed_with_a_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = SigningKey::generate(dir.path(), "promoter");
    let foreign = SigningKey::generate(dir.path(), "foreign");
    let subject = Image::simple(Format::Oci, 41).digest;
    let payload = statement(&subject);
    let good = key_dsse_bundle(&payload, &key);
    let good_file = write(dir.path(), "good.json", good.to_string());
    let ours = BundleTrust::Key(&key.public);

    let accepted = verifiers::sigstore_js(&good_file, None, &ours).expect("sigstore-js verifies");
    assert!(
        accepted.contains("predicateType=https://slsa.dev/provenance/v1"),
        "{accepted}"
    );
    verifiers::securesystemslib_dsse(&good_file, &key.public, None).expect("securesystemslib verifies");
    verifiers::securesystemslib_dsse(&good_file, &key.public, Some("")).expect("the empty keyid matches");
    let accepted = verifiers::in_toto_statement(&good_file, Some(&subject)).expect("an in-toto Statement");
    assert!(accepted.contains(&subject), "{accepted}");
    let accepted = verifiers::sigstore_models_schema(&good_file).expect("the strict schema");
    assert!(accepted.contains(BUNDLE_V03), "{accepted}");

    // A payload changed after signing, and a wrong key: refused by both cryptographic checks.
    let mut tampered = good.clone();
    tampered["dsseEnvelope"]["payload"] = json!(STANDARD.encode(statement(&Image::simple(Format::Oci, 42).digest)));
    let tampered_file = write(dir.path(), "tampered.json", tampered.to_string());
    for (bundle, public_key, what) in [
        (&tampered_file, &key.public, "a tampered payload"),
        (&good_file, &foreign.public, "a wrong key"),
    ] {
        assert_refused(
            verifiers::sigstore_js(bundle, None, &BundleTrust::Key(public_key)),
            &format!("sigstore-js: {what}"),
            "VerificationError [SIGNATURE_ERROR]: signature verification failed",
        );
        assert_refused(
            verifiers::securesystemslib_dsse(bundle, public_key, None),
            &format!("securesystemslib: {what}"),
            "VerificationError: Accepted signatures do not match threshold, Found: 0",
        );
    }
    assert_refused(
        verifiers::in_toto_statement(&tampered_file, Some(&subject)),
        "a statement about another digest",
        &format!("no subject has digest {subject}"),
    );
    assert_refused(
        verifiers::securesystemslib_dsse(&good_file, &key.public, Some("another-key")),
        "securesystemslib: another keyid",
        "Found: 0",
    );

    // sigstore-js is lenient on form: it accepts a signature without keyid and unpadded base64,
    // which securesystemslib and the schema refuse. This is why both run.
    let mut no_keyid = good.clone();
    no_keyid["dsseEnvelope"]["signatures"][0]
        .as_object_mut()
        .expect("signature object")
        .remove("keyid");
    let no_keyid_file = write(dir.path(), "no-keyid.json", no_keyid.to_string());
    verifiers::sigstore_js(&no_keyid_file, None, &ours).expect("sigstore-js ignores a missing keyid");
    assert_refused(
        verifiers::securesystemslib_dsse(&no_keyid_file, &key.public, None),
        "securesystemslib: no keyid",
        "KeyError",
    );
    let mut unpadded = good.clone();
    unpadded["dsseEnvelope"]["payload"] = json!(STANDARD_NO_PAD.encode(&payload));
    let unpadded_file = write(dir.path(), "unpadded.json", unpadded.to_string());
    assert_ne!(payload.len() % 3, 0, "the statement's base64 must need padding");
    verifiers::sigstore_js(&unpadded_file, None, &ours).expect("sigstore-js reads unpadded base64");
    assert_refused(
        verifiers::sigstore_models_schema(&unpadded_file),
        "the schema: unpadded base64",
        "dsseEnvelope.payload",
    );
    let mut no_tlog = good.clone();
    no_tlog["verificationMaterial"]
        .as_object_mut()
        .expect("verification material")
        .remove("tlogEntries");
    let no_tlog_file = write(dir.path(), "no-tlog.json", no_tlog.to_string());
    verifiers::sigstore_js(&no_tlog_file, None, &ours).expect("sigstore-js reads a bundle without tlogEntries");
    assert_refused(
        verifiers::sigstore_models_schema(&no_tlog_file),
        "the schema: no tlogEntries",
        "tlogEntries",
    );
    let mut v04 = good.clone();
    v04["mediaType"] = json!("application/vnd.dev.sigstore.bundle.v0.4+json");
    let v04_file = write(dir.path(), "v04.json", v04.to_string());
    verifiers::sigstore_js(&v04_file, None, &ours).expect("sigstore-js reads a v0.4 media type");
    assert_refused(
        verifiers::sigstore_models_schema(&v04_file),
        "the schema: v0.4",
        "mediaType",
    );
    let mut wrong_type = good.clone();
    wrong_type["dsseEnvelope"]["payloadType"] = json!("application/json");
    let wrong_type_file = write(dir.path(), "wrong-type.json", wrong_type.to_string());
    assert_refused(
        verifiers::in_toto_statement(&wrong_type_file, None),
        "another payload type",
        "is not application/vnd.in-toto+json",
    );

    // A message signature over an artifact: sigstore-js checks the signature against the
    // artifact, and does not compare messageDigest when there is no log entry.
    let artifact = write(dir.path(), "artifact.bin", b"promoted bytes");
    let message = json!({
        "mediaType": BUNDLE_V03,
        "verificationMaterial": {"publicKey": {"hint": ""}, "tlogEntries": []},
        "messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256", "digest": STANDARD.encode([0u8; 32])},
            "signature": STANDARD.encode(key.sign(b"promoted bytes")),
        },
    });
    let message_file = write(dir.path(), "message.json", message.to_string());
    verifiers::sigstore_js(&message_file, Some(&artifact), &ours)
        .expect("sigstore-js accepts a wrong messageDigest without a log entry");
    let other = write(dir.path(), "other.bin", b"other bytes");
    assert_refused(
        verifiers::sigstore_js(&message_file, Some(&other), &ours),
        "sigstore-js: another artifact",
        "SIGNATURE_ERROR",
    );
}

#[test]
fn bundle_verifiers_check_keyless_attestations_against_the_fake() {
    let fake = SigstoreFake::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let subject = Image::simple(Format::Oci, 51).digest;
    let statement_file = write(dir.path(), "statement.json", statement(&subject));
    let bundle_file = dir.path().join("bundle.json");
    let token = identity_token(ISSUER, SIGNER, 600);
    fake.sign_with_sigstore_js(&token, &statement_file, Some(IN_TOTO), &bundle_file)
        .expect("sigstore-js attests against the fake");
    assert_eq!(fake.rekor_entries().len(), 1, "one dsse entry");
    assert_eq!(fake.rekor_entries()[0]["kind"], "dsse");
    assert_eq!(fake.certificates_issued().len(), 1, "one certificate");
    assert_eq!(fake.certificates_issued()[0]["subject"], SIGNER);

    let trusted_root = fake.trusted_root();
    let policy = |identity, issuer| KeylessPolicy {
        trusted_root: &trusted_root,
        identity,
        issuer,
    };
    let accepted = verifiers::sigstore_js(&bundle_file, None, &BundleTrust::Keyless(policy(SIGNER, ISSUER)))
        .expect("sigstore-js verifies the chain, SCT, log entry and signer");
    assert!(
        accepted.contains(&format!("signer={SIGNER} issuer={ISSUER}")),
        "{accepted}"
    );
    let accepted = verifiers::sigstore_python_keyless(&bundle_file, None, &policy(SIGNER, ISSUER))
        .expect("sigstore-python verifies the same bundle");
    assert!(accepted.contains("DSSE application/vnd.in-toto+json"), "{accepted}");
    verifiers::in_toto_statement(&bundle_file, Some(&subject)).expect("the attested statement");

    assert_refused(
        verifiers::sigstore_js(
            &bundle_file,
            None,
            &BundleTrust::Keyless(policy("other@example.com", ISSUER)),
        ),
        "sigstore-js: another signer",
        &format!("UNTRUSTED_SIGNER_ERROR]: certificate identity error - expected other@example.com, got {SIGNER}"),
    );
    assert_refused(
        verifiers::sigstore_python_keyless(&bundle_file, None, &policy("other@example.com", ISSUER)),
        "sigstore-python: another signer",
        &format!("Certificate's SANs do not match other@example.com; actual SANs: {{'{SIGNER}'}}"),
    );
    assert_refused(
        verifiers::sigstore_js(
            &bundle_file,
            None,
            &BundleTrust::Keyless(policy(SIGNER, "https://other.example")),
        ),
        "sigstore-js: another issuer",
        &format!(
            "UNTRUSTED_SIGNER_ERROR]: invalid certificate extension - expected issuer=https://other.example, got issuer={ISSUER}"
        ),
    );
    assert_refused(
        verifiers::sigstore_python_keyless(&bundle_file, None, &policy(SIGNER, "https://other.example")),
        "sigstore-python: another issuer",
        &format!("Certificate's OIDCIssuer does not match (got '{ISSUER}', expected 'https://other.example')"),
    );

    // A payload changed after logging: the envelope no longer matches the signature or the entry.
    let mut tampered: Value = serde_json::from_slice(&std::fs::read(&bundle_file).expect("read bundle")).expect("JSON");
    tampered["dsseEnvelope"]["payload"] = json!(STANDARD.encode(statement(&Image::simple(Format::Oci, 52).digest)));
    let tampered_file = write(dir.path(), "tampered.json", tampered.to_string());
    assert_refused(
        verifiers::sigstore_js(&tampered_file, None, &BundleTrust::Keyless(policy(SIGNER, ISSUER))),
        "sigstore-js: a tampered payload",
        "VerificationError [TLOG_BODY_ERROR]: DSSE payload hash mismatch",
    );
    assert_refused(
        verifiers::sigstore_python_keyless(&tampered_file, None, &policy(SIGNER, ISSUER)),
        "sigstore-python: a tampered payload",
        "VerificationError: DSSE: invalid signature",
    );

    // Another instance's trust root: nothing chains to it.
    let other = SigstoreFake::start();
    let other_root = other.trusted_root();
    let foreign = KeylessPolicy {
        trusted_root: &other_root,
        identity: SIGNER,
        issuer: ISSUER,
    };
    assert_refused(
        verifiers::sigstore_js(&bundle_file, None, &BundleTrust::Keyless(foreign)),
        "sigstore-js: another trust root",
        "VerificationError [CERTIFICATE_ERROR]: Failed to verify certificate chain",
    );
    assert_refused(
        verifiers::sigstore_python_keyless(&bundle_file, None, &foreign),
        "sigstore-python: another trust root",
        "CertValidationError: failed to build timestamp certificate chain",
    );
    assert_eq!(other.rekor_entries().len(), 0, "verification writes nothing");
}

/// POSTs JSON to the fake: the status, the JSON answer and the `Location` header.
async fn post(url: &str, body: &Value) -> (u16, Value, Option<String>) {
    let response = crate::support::http_client()
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|v| v.to_str().expect("ASCII Location").to_string());
    (status, response.json().await.expect("JSON answer"), location)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_fulcio_and_rekor_behave_like_the_real_services() {
    let fake = SigstoreFake::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let key = SigningKey::generate(dir.path(), "ephemeral");
    let public_pem = std::fs::read_to_string(&key.public).expect("read public key");
    let certificate_request = |token: String, proof: Vec<u8>| {
        json!({
            "credentials": {"oidcIdentityToken": token},
            "publicKeyRequest": {
                "publicKey": {"algorithm": "ECDSA", "content": public_pem},
                "proofOfPossession": STANDARD.encode(proof),
            },
        })
    };
    let fulcio = format!("{}/api/v2/signingCert", fake.url());
    let proof = key.sign(SIGNER.as_bytes());

    // Fulcio: a certificate for the token's verified email, and the refusals of real Fulcio.
    let (status, answer, _) = post(
        &fulcio,
        &certificate_request(identity_token(ISSUER, SIGNER, 600), proof.clone()),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let chain = &answer["signedCertificateEmbeddedSct"]["chain"]["certificates"];
    assert_eq!(chain.as_array().map(Vec::len), Some(2), "leaf and root: {answer}");
    let (status, answer, _) = post(
        &fulcio,
        &certificate_request(identity_token(ISSUER, SIGNER, -60), proof.clone()),
    )
    .await;
    assert_eq!(
        (status, answer["message"].as_str()),
        (401, Some("the identity token has expired"))
    );
    let other_signer = identity_token(ISSUER, "other@example.com", 600);
    let (status, answer, _) = post(&fulcio, &certificate_request(other_signer, proof.clone())).await;
    assert_eq!(
        (status, answer["message"].as_str()),
        (
            400,
            Some("the proof of possession is not a signature over the token's email")
        )
    );
    let (status, answer, _) = post(&fulcio, &certificate_request("not-a-jwt".into(), proof)).await;
    assert_eq!(
        (status, answer["message"].as_str()),
        (401, Some("the identity token is not a JWT"))
    );
    assert_eq!(
        fake.certificates_issued().len(),
        1,
        "only the good request got a certificate"
    );

    // Rekor: an entry once, 409 with its location the second time, readable by UUID.
    let rekor = format!("{}/api/v1/log/entries", fake.url());
    let artifact = b"promoted bytes";
    let entry = json!({
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": sha256_digest(artifact).trim_start_matches("sha256:")}},
            "signature": {"content": STANDARD.encode(key.sign(artifact)), "publicKey": {"content": STANDARD.encode(&public_pem)}},
        },
    });
    let (status, created, location) = post(&rekor, &entry).await;
    assert_eq!(status, 201, "{created}");
    let uuid = created
        .as_object()
        .and_then(|o| o.keys().next().cloned())
        .expect("entry keyed by UUID");
    assert_eq!(location, Some(format!("/api/v1/log/entries/{uuid}")));
    let (status, duplicate, location) = post(&rekor, &entry).await;
    assert_eq!(status, 409, "{duplicate}");
    assert_eq!(location, Some(format!("/api/v1/log/entries/{uuid}")));
    let read_back: Value = crate::support::http_client()
        .get(format!("{}/api/v1/log/entries/{uuid}", fake.url()))
        .send()
        .await
        .expect("GET entry")
        .json()
        .await
        .expect("entry JSON");
    assert_eq!(read_back, created);
    let entries = fake.rekor_entries();
    assert_eq!(entries.len(), 1, "a duplicate adds no entry: {entries:?}");
    assert_eq!(entries[0]["uuid"], uuid.as_str());

    // A dsse entry whose signature does not verify is refused, as Rekor verifies envelopes.
    let envelope = json!({
        "payload": STANDARD.encode(statement(&Image::simple(Format::Oci, 61).digest)),
        "payloadType": IN_TOTO,
        "signatures": [{"sig": STANDARD.encode(key.sign(b"something else")), "keyid": ""}],
    });
    let dsse = json!({
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {"proposedContent": {"envelope": envelope.to_string(), "verifiers": [STANDARD.encode(&public_pem)]}},
    });
    let (status, answer, _) = post(&rekor, &dsse).await;
    assert_eq!(
        (status, answer["message"].as_str()),
        (400, Some("dsse: signatures[0] does not verify with any verifier"))
    );
    let (status, _, _) = post(&rekor, &json!({"apiVersion": "0.0.1", "kind": "intoto", "spec": {}})).await;
    assert_eq!(status, 400, "only hashedrekord and dsse entries");
    assert_eq!(fake.rekor_entries().len(), 1, "refused entries are not counted");
}
