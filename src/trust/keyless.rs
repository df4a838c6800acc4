//! Keyless signing, Go kpromo's default: an ephemeral P-256 key, certified by Fulcio for
//! the OIDC identity of a token, signs; each signature is entered in Rekor, and the
//! certificate, its chain and the log entry's signed timestamp travel in the signature
//! layer's annotations (cosign's `dev.sigstore.cosign/*`), so a verifier needs nothing
//! but the trusted root.
//!
//! One certificate serves the whole run (Fulcio's last ten minutes); a new key and
//! certificate are requested shortly before it expires, with a fresh token.
use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use sigstore_sign::crypto::{KeyPair, parse_certificate_info};
use sigstore_sign::fulcio::FulcioClient;
use sigstore_sign::oidc::IdentityToken;
use sigstore_sign::rekor::{DsseEntry, HashedRekord, LogEntry, RekorClient};
use sigstore_sign::types::encoding::{KeyId, PayloadBytes};
use sigstore_sign::types::{DerCertificate, DsseEnvelope, DsseSignature, KindVersion};

use super::Error;
use super::attestation::{Material, pae};
use super::cosign::{BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, SIGNATURE_ANNOTATION};

/// A certificate is renewed when less than this is left of it: a signature, its log
/// entry and a retry fit in it.
const RENEW_MARGIN: jiff::SignedDuration = jiff::SignedDuration::from_secs(120);

/// Where identity tokens come from (a file, or minted through Google's IAM API).
#[async_trait]
pub trait TokenProvider: Send + Sync {
    /// A token valid now. Asked again whenever a new certificate is needed.
    async fn token(&self) -> Result<IdentityToken, Error>;
}

/// A keyless signer.
pub struct Keyless {
    fulcio: FulcioClient,
    rekor: RekorClient,
    tokens: Box<dyn TokenProvider>,
    current: tokio::sync::Mutex<Arc<Certified>>,
}

/// An ephemeral key and Fulcio's certificate for it.
struct Certified {
    key: KeyPair,
    /// Leaf first.
    chain: Vec<DerCertificate>,
    not_after: jiff::Timestamp,
    /// The certificate's subject (email or URI) and OIDC issuer.
    identity: String,
    issuer: String,
}

impl Keyless {
    /// Connects to Fulcio and Rekor and gets the first certificate now, so that a token
    /// that cannot be had or a Fulcio that refuses fails before anything is written.
    pub async fn new(
        fulcio_url: &str,
        rekor_url: &str,
        tokens: Box<dyn TokenProvider>,
        http: reqwest::Client,
    ) -> Result<Self, Error> {
        let fulcio = FulcioClient::builder(fulcio_url)
            .with_http_client(http.clone())
            .build()
            .map_err(|e| Error::Signer(format!("Fulcio {fulcio_url}: {e}")))?;
        let rekor = RekorClient::builder(rekor_url)
            .with_http_client(http)
            .build()
            .map_err(|e| Error::Signer(format!("Rekor {rekor_url}: {e}")))?;
        let first = certify(&fulcio, tokens.as_ref()).await?;
        Ok(Self {
            fulcio,
            rekor,
            tokens,
            current: tokio::sync::Mutex::new(Arc::new(first)),
        })
    }

    /// The identity and issuer the certificates name.
    pub async fn identity(&self) -> (String, String) {
        let current = self.current.lock().await;
        (current.identity.clone(), current.issuer.clone())
    }

    /// Signs `payload`, enters the signature in Rekor, and returns the layer annotations.
    pub async fn sign(&self, payload: &[u8]) -> Result<BTreeMap<String, String>, Error> {
        let certified = self.certified().await?;
        let signature = certified.key.sign(payload).map_err(|e| Error::Crypto(e.to_string()))?;
        let hash = sigstore_sign::crypto::sha256(payload);
        let entry = self
            .rekor
            .create_entry(HashedRekord::new(&hash, &signature, &certified.chain[0]))
            .await
            .map_err(|e| Error::Signer(format!("Rekor: adding the signature to the log: {e}")))?;
        let pem = |certs: &[DerCertificate]| certs.iter().map(|c| c.to_pem()).collect::<String>();
        Ok(BTreeMap::from([
            (SIGNATURE_ANNOTATION.to_string(), STANDARD.encode(signature.as_bytes())),
            (CERTIFICATE_ANNOTATION.to_string(), pem(&certified.chain[..1])),
            (CHAIN_ANNOTATION.to_string(), pem(&certified.chain[1..])),
            (BUNDLE_ANNOTATION.to_string(), cosign_bundle(&entry)?),
        ]))
    }

    /// Signs the DSSE envelope of `payload` (the signature covers its PAE), enters the
    /// envelope in Rekor (a `dsse` entry), and returns the signature and what proves it:
    /// the certificate and the log entry, as a bundle carries them.
    pub async fn sign_dsse(&self, payload_type: &str, payload: &[u8]) -> Result<(Vec<u8>, Material), Error> {
        let certified = self.certified().await?;
        let signature = certified
            .key
            .sign(&pae(payload_type, payload))
            .map_err(|e| Error::Crypto(e.to_string()))?;
        let envelope = DsseEnvelope::new(
            payload_type,
            PayloadBytes::from_bytes(payload),
            DsseSignature::new(signature.clone(), KeyId::default()),
        );
        let rekor = |e: &dyn std::fmt::Display| Error::Signer(format!("Rekor: adding the attestation to the log: {e}"));
        let request = DsseEntry::new(&envelope, &certified.chain[0]).map_err(|e| rekor(&e))?;
        let entry = self.rekor.create_dsse_entry(request).await.map_err(|e| rekor(&e))?;
        let entry = entry.to_bundle_entry(KindVersion::DsseV001).map_err(|e| rekor(&e))?;
        let material = Material::Keyless {
            certificate: certified.chain[0].clone(),
            entry: Box::new(entry),
        };
        Ok((signature.as_bytes().to_vec(), material))
    }

    /// The current certificate, renewed first when it is about to expire.
    async fn certified(&self) -> Result<Arc<Certified>, Error> {
        let mut current = self.current.lock().await;
        if jiff::Timestamp::now() + RENEW_MARGIN >= current.not_after {
            *current = Arc::new(certify(&self.fulcio, self.tokens.as_ref()).await?);
            tracing::info!("renewed the signing certificate (valid until {})", current.not_after);
        }
        Ok(current.clone())
    }
}

/// A fresh key, certified by Fulcio for the identity of a fresh token.
async fn certify(fulcio: &FulcioClient, tokens: &dyn TokenProvider) -> Result<Certified, Error> {
    let token = tokens.token().await?;
    let key = KeyPair::generate_ecdsa_p256().map_err(|e| Error::Crypto(e.to_string()))?;
    let certificate = fulcio.create_signing_certificate(&token, &key).await.map_err(|e| {
        Error::Signer(format!(
            "Fulcio: getting a signing certificate for {}: {e}",
            token.identity()
        ))
    })?;
    let chain = certificate.certificate_chain().to_vec();
    let info = parse_certificate_info(&chain[0])
        .map_err(|e| Error::Signer(format!("Fulcio returned a certificate kpromo cannot read: {e}")))?;
    Ok(Certified {
        key,
        chain,
        not_after: info.not_after,
        identity: info.identity.map(|i| i.as_str().to_string()).unwrap_or_default(),
        issuer: info.issuer.unwrap_or_default(),
    })
}

/// cosign's `dev.sigstore.cosign/bundle` annotation: Rekor's signed entry timestamp and
/// what it signs.
fn cosign_bundle(entry: &LogEntry) -> Result<String, Error> {
    let set = entry
        .verification
        .as_ref()
        .and_then(|v| v.signed_entry_timestamp.as_ref())
        .ok_or_else(|| Error::Signer("Rekor returned no signed entry timestamp".into()))?;
    let integrated = entry
        .integrated_time
        .ok_or_else(|| Error::Signer("Rekor returned no integrated time".into()))?;
    let bundle = json!({
        "SignedEntryTimestamp": set.to_base64(),
        "Payload": {
            "body": entry.body.to_base64(),
            "integratedTime": integrated.as_second(),
            // A JSON number, as cosign and every verifier read it (sigstore's own types
            // write protobuf's int64-as-string, which the signed timestamp does not cover).
            "logIndex": entry.log_index.get(),
            "logID": entry.log_id,
        },
    });
    Ok(bundle.to_string())
}
