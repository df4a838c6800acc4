//! cosign `.sig` signatures and `.att` attestations made by independent means (openssl over a
//! payload written by hand; sigstore-js's signer against the fake Fulcio/Rekor), pushed with the
//! harness's own client: staging signatures and attestations for kpromo to check, and known-good
//! signatures for the verifier self-tests.
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::{Value, json};

use super::Pusher;
use super::images::{Blob, OCI_CONFIG, OCI_MANIFEST};
use super::pki::SigningKey;

pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer media type of cosign's `.att` manifests: a DSSE envelope.
pub const DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// A cosign simple-signing payload, written out by hand as cosign writes it.
pub fn simple_signing_payload(docker_reference: &str, digest: &str) -> Vec<u8> {
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{docker_reference}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":{{"org.kubernetes.kpromo.version":"trust-harness"}}}}"#
    )
    .into_bytes()
}

pub const IN_TOTO: &str = "application/vnd.in-toto+json";
pub const BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

/// An in-toto v1 Statement about `digest` published as `name`, written out by hand.
pub fn in_toto_statement(name: &str, digest: &str, predicate_type: &str, predicate: &Value) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    format!(
        r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"name":"{name}","digest":{{"sha256":"{hex}"}}}}],"predicateType":"{predicate_type}","predicate":{predicate}}}"#
    )
    .into_bytes()
}

/// DSSE's pre-authentication encoding: what a DSSE signature signs.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut message = format!("DSSEv1 {} {payload_type} {} ", payload_type.len(), payload.len()).into_bytes();
    message.extend_from_slice(payload);
    message
}

/// A sigstore bundle v0.3 with a DSSE envelope of `payload` (an in-toto Statement) signed by
/// `key` (openssl over the PAE) and a public-key hint.
pub fn key_dsse_bundle(payload: &[u8], key: &SigningKey) -> Value {
    json!({
        "mediaType": BUNDLE_V03,
        "verificationMaterial": {"publicKey": {"hint": ""}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": STANDARD.encode(payload),
            "payloadType": IN_TOTO,
            "signatures": [{"sig": STANDARD.encode(key.sign(&pae(IN_TOTO, payload))), "keyid": ""}],
        },
    })
}

/// One layer of a `.sig` manifest: the payload and its annotations.
pub struct SignatureLayer {
    pub payload: Vec<u8>,
    pub annotations: Value,
}

impl SignatureLayer {
    pub fn signed_with_key(payload: Vec<u8>, key: &SigningKey) -> SignatureLayer {
        let signature = STANDARD.encode(key.sign(&payload));
        SignatureLayer {
            payload,
            annotations: json!({ SIGNATURE_ANNOTATION: signature }),
        }
    }
}

/// Pushes `<repo>:sha256-<hex>.sig` for `digest` as cosign lays it out: an OCI image manifest, one
/// simple-signing layer per signature, the config listing the layers' digests.
pub async fn push_signatures(pusher: &Pusher, repo: &str, digest: &str, layers: &[SignatureLayer]) {
    push_cosign_manifest(
        pusher,
        repo,
        &format!("{}.sig", digest.replace(':', "-")),
        SIMPLE_SIGNING,
        layers,
    )
    .await;
}

/// Pushes `<repo>:sha256-<hex>.att` for `digest` as cosign `attest` lays it out: one DSSE envelope
/// layer per attestation (`payload` is the envelope JSON).
pub async fn push_attestations(pusher: &Pusher, repo: &str, digest: &str, layers: &[SignatureLayer]) {
    push_cosign_manifest(
        pusher,
        repo,
        &format!("{}.att", digest.replace(':', "-")),
        DSSE_ENVELOPE,
        layers,
    )
    .await;
}

/// A cosign manifest under `tag`: one `media_type` layer per entry, the config listing them.
async fn push_cosign_manifest(pusher: &Pusher, repo: &str, tag: &str, media_type: &str, layers: &[SignatureLayer]) {
    let blobs: Vec<Blob> = layers.iter().map(|l| Blob::from_bytes(l.payload.clone())).collect();
    let config = Blob::from_bytes(
        json!({
            "architecture": "", "os": "", "config": {},
            "rootfs": {"type": "layers", "diff_ids": blobs.iter().map(|b| b.digest.clone()).collect::<Vec<_>>()},
        })
        .to_string(),
    );
    let descriptors: Vec<Value> = blobs
        .iter()
        .zip(layers)
        .map(|(blob, layer)| {
            json!({"mediaType": media_type, "digest": blob.digest, "size": blob.size, "annotations": layer.annotations})
        })
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config.digest, "size": config.size},
        "layers": descriptors,
    });
    for blob in blobs.iter().chain([&config]) {
        pusher.push_blob(repo, blob).await;
    }
    let bytes = Bytes::from(manifest.to_string());
    pusher.put_manifest(repo, tag, OCI_MANIFEST, &bytes).await;
}

/// A keyless cosign signature layer made from sigstore-js's message-signature bundle over the
/// payload: cosign's annotations are the bundle's signature, certificate and log entry (the SET
/// and what it signs), plus the CA chain.
pub fn keyless_layer(payload: Vec<u8>, bundle: &Value, chain_pem: &str) -> SignatureLayer {
    let mut annotations = keyless_annotations(bundle, chain_pem);
    annotations[SIGNATURE_ANNOTATION] = bundle["messageSignature"]["signature"].clone();
    SignatureLayer { payload, annotations }
}

/// A keyless cosign `.att` layer made from sigstore-js's DSSE bundle: the envelope as the layer,
/// cosign's certificate and log entry annotations, the predicate type, and an empty signature
/// annotation (cosign writes one; the signature is in the envelope).
pub fn keyless_attestation_layer(bundle: &Value, chain_pem: &str, predicate_type: &str) -> SignatureLayer {
    let mut annotations = keyless_annotations(bundle, chain_pem);
    annotations[SIGNATURE_ANNOTATION] = json!("");
    annotations["predicateType"] = json!(predicate_type);
    SignatureLayer {
        payload: bundle["dsseEnvelope"].to_string().into_bytes(),
        annotations,
    }
}

/// cosign's keyless annotations for a sigstore bundle's signature: the certificate (PEM), the CA
/// chain, and the log entry's signed timestamp with what it signs.
fn keyless_annotations(bundle: &Value, chain_pem: &str) -> Value {
    let material = &bundle["verificationMaterial"];
    let certificate = material["certificate"]["rawBytes"]
        .as_str()
        .or(material["x509CertificateChain"]["certificates"][0]["rawBytes"].as_str())
        .expect("signing certificate in the bundle");
    let der = STANDARD.decode(certificate).expect("certificate base64");
    let pem_body: Vec<String> = STANDARD
        .encode(der)
        .as_bytes()
        .chunks(64)
        .map(|line| String::from_utf8_lossy(line).into_owned())
        .collect();
    let certificate_pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        pem_body.join("\n")
    );
    let entry = &material["tlogEntries"][0];
    let number = |field: &Value| {
        field
            .as_str()
            .and_then(|s| s.parse::<i64>().ok())
            .expect("integer string")
    };
    let log_id = STANDARD
        .decode(entry["logId"]["keyId"].as_str().expect("logId"))
        .expect("logId base64");
    let set = json!({
        "SignedEntryTimestamp": entry["inclusionPromise"]["signedEntryTimestamp"],
        "Payload": {
            "body": entry["canonicalizedBody"],
            "integratedTime": number(&entry["integratedTime"]),
            "logIndex": number(&entry["logIndex"]),
            "logID": hex::encode(log_id),
        },
    });
    json!({
        "dev.sigstore.cosign/certificate": certificate_pem,
        "dev.sigstore.cosign/chain": chain_pem,
        "dev.sigstore.cosign/bundle": set.to_string(),
    })
}
