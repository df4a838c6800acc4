//! Signing keys and verification keys from files, in the formats cosign users have.
//!
//! - cosign's encrypted private keys (PEM `ENCRYPTED SIGSTORE PRIVATE KEY`, or the older
//!   `ENCRYPTED COSIGN PRIVATE KEY`): a JSON document holding scrypt parameters, a salt, a
//!   NaCl secretbox nonce and the sealed PKCS#8 key, as `cosign generate-key-pair` and
//!   `skopeo generate-sigstore-key` write them;
//! - unencrypted PKCS#8 (`PRIVATE KEY`), as `openssl genpkey` writes it;
//! - public keys as SPKI PEM (`PUBLIC KEY`).
//!
//! Only ECDSA P-256 keys sign (the key type cosign generates). Secrets are zeroed on
//! drop and never appear in an error message.
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Nonce, XSalsa20Poly1305};
use serde::Deserialize;
use sigstore_sign::crypto::{KeyPair, VerificationKey};
use sigstore_sign::types::DerPublicKey;
use zeroize::Zeroizing;

use super::Error;

const ENCRYPTED_LABELS: [&str; 2] = ["ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY"];
const PLAIN_LABEL: &str = "PRIVATE KEY";
const PUBLIC_LABEL: &str = "PUBLIC KEY";
/// Largest scrypt work factor accepted (cosign uses 2^15): a hostile key file must not
/// make kpromo allocate gigabytes.
const MAX_SCRYPT_LOG_N: u8 = 20;

/// The password of an encrypted key.
pub type Password = Zeroizing<String>;

/// Loads a private key for signing. `password` is needed for encrypted keys only.
pub fn load_signing_key(path: &Path, password: Option<&Password>) -> Result<KeyPair, Error> {
    let key_error = |why: String| Error::Key {
        path: path.display().to_string(),
        why,
    };
    let text = Zeroizing::new(std::fs::read(path).map_err(|e| key_error(format!("cannot read it: {e}")))?);
    let block = pem::parse(&*text).map_err(|e| key_error(format!("not a PEM file: {e}")))?;
    let pkcs8 = match block.tag() {
        tag if ENCRYPTED_LABELS.contains(&tag) => {
            let password = password.ok_or_else(|| {
                key_error(
                    "the key is encrypted: give its password in COSIGN_PASSWORD or with --signing-key-password-file"
                        .into(),
                )
            })?;
            decrypt(block.contents(), password).map_err(key_error)?
        }
        PLAIN_LABEL => Zeroizing::new(block.contents().to_vec()),
        other => {
            return Err(key_error(format!(
                "a PEM `{other}` block: expected a cosign key (`ENCRYPTED SIGSTORE PRIVATE KEY`) or an \
                 unencrypted PKCS#8 EC P-256 key (`PRIVATE KEY`)"
            )));
        }
    };
    KeyPair::from_pkcs8_der(&pkcs8).map_err(|e| {
        key_error(format!(
            "not a PKCS#8 ECDSA P-256 private key ({e}); cosign keys are P-256"
        ))
    })
}

/// Loads a public key (SPKI PEM) for verification.
pub fn load_public_key(path: &Path) -> Result<VerificationKey, Error> {
    let key_error = |why: String| Error::Key {
        path: path.display().to_string(),
        why,
    };
    let text = std::fs::read(path).map_err(|e| key_error(format!("cannot read it: {e}")))?;
    let block = pem::parse(&text).map_err(|e| key_error(format!("not a PEM file: {e}")))?;
    if block.tag() != PUBLIC_LABEL {
        return Err(key_error(format!(
            "a PEM `{}` block: expected a public key (`PUBLIC KEY`)",
            block.tag()
        )));
    }
    public_key_from_der(block.contents()).map_err(key_error)
}

/// A verification key from SPKI DER.
pub fn public_key_from_der(spki: &[u8]) -> Result<VerificationKey, String> {
    VerificationKey::from_spki(&DerPublicKey::from(spki.to_vec())).map_err(|e| format!("not a usable public key: {e}"))
}

/// The SPKI PEM of a signing key's public half (what `cosign verify --key` takes).
pub fn public_key_pem(key: &KeyPair) -> Result<String, Error> {
    let der = key.public_key_der().map_err(|e| Error::Crypto(e.to_string()))?;
    Ok(pem::encode(&pem::Pem::new(PUBLIC_LABEL, der.as_bytes().to_vec())))
}

/// The JSON inside an encrypted cosign key's PEM block.
#[derive(Deserialize)]
struct Sealed {
    kdf: Kdf,
    cipher: Cipher,
    #[serde(with = "b64")]
    ciphertext: Vec<u8>,
}

#[derive(Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    #[serde(with = "b64")]
    salt: Vec<u8>,
}

#[derive(Deserialize)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Deserialize)]
struct Cipher {
    name: String,
    #[serde(with = "b64")]
    nonce: Vec<u8>,
}

/// Opens a sealed key: scrypt derives a 32-byte key from the password, which opens the
/// NaCl secretbox (XSalsa20-Poly1305) holding the PKCS#8 DER.
fn decrypt(sealed: &[u8], password: &Password) -> Result<Zeroizing<Vec<u8>>, String> {
    let sealed: Sealed =
        serde_json::from_slice(sealed).map_err(|e| format!("the encrypted key is not cosign's format: {e}"))?;
    if sealed.kdf.name != "scrypt" || sealed.cipher.name != "nacl/secretbox" {
        return Err(format!(
            "unsupported encryption {} + {} (cosign uses scrypt + nacl/secretbox)",
            sealed.kdf.name, sealed.cipher.name
        ));
    }
    let ScryptParams { n, r, p } = sealed.kdf.params;
    let log_n = (n.is_power_of_two() && n > 1)
        .then(|| n.trailing_zeros() as u8)
        .filter(|log_n| *log_n <= MAX_SCRYPT_LOG_N)
        .ok_or_else(|| format!("unsupported scrypt N = {n} (a power of two up to 2^{MAX_SCRYPT_LOG_N})"))?;
    let params = scrypt::Params::new(log_n, r, p).map_err(|e| format!("bad scrypt parameters: {e}"))?;
    let mut derived = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(password.as_bytes(), &sealed.kdf.salt, &params, derived.as_mut_slice())
        .map_err(|e| format!("scrypt: {e}"))?;
    if sealed.cipher.nonce.len() != 24 {
        return Err("the secretbox nonce is not 24 bytes".into());
    }
    let cipher = XSalsa20Poly1305::new_from_slice(derived.as_slice()).map_err(|e| format!("secretbox key: {e}"))?;
    cipher
        .decrypt(Nonce::from_slice(&sealed.cipher.nonce), sealed.ciphertext.as_slice())
        .map(Zeroizing::new)
        .map_err(|_| "wrong password (or a damaged key file): the key does not decrypt".to_string())
}

/// Standard base64 with padding, as Go's `encoding/json` writes `[]byte`.
mod b64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        super::STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    /// Seals `pkcs8` the way cosign does, for tests (kpromo itself never writes keys).
    pub(crate) fn seal(pkcs8: &[u8], password: &str, log_n: u8) -> String {
        let salt = [7u8; 32];
        let nonce = [9u8; 24];
        let params = scrypt::Params::new(log_n, 8, 1).unwrap();
        let mut derived = [0u8; 32];
        scrypt::scrypt(password.as_bytes(), &salt, &params, &mut derived).unwrap();
        let sealed = XSalsa20Poly1305::new_from_slice(&derived)
            .unwrap()
            .encrypt(Nonce::from_slice(&nonce), pkcs8)
            .unwrap();
        let json = serde_json::json!({
            "kdf": {"name": "scrypt", "params": {"N": 1u64 << log_n, "r": 8, "p": 1}, "salt": STANDARD.encode(salt)},
            "cipher": {"name": "nacl/secretbox", "nonce": STANDARD.encode(nonce)},
            "ciphertext": STANDARD.encode(sealed),
        });
        pem::encode(&pem::Pem::new(ENCRYPTED_LABELS[0], json.to_string().into_bytes()))
    }

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A fresh P-256 key as PKCS#8 DER, made by ring (not by the code under test).
    pub(crate) fn pkcs8() -> Vec<u8> {
        use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
        let rng = ring::rand::SystemRandom::new();
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .unwrap()
            .as_ref()
            .to_vec()
    }

    #[test]
    fn encrypted_plain_and_public_keys_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let pkcs8 = pkcs8();
        let key = KeyPair::from_pkcs8_der(&pkcs8).unwrap();
        let password: Password = Zeroizing::new("hunter2".into());
        let encrypted = write(&dir, "cosign.key", &seal(&pkcs8, "hunter2", 10));
        let plain = write(
            &dir,
            "plain.key",
            &pem::encode(&pem::Pem::new(PLAIN_LABEL, pkcs8.clone())),
        );
        let public = write(&dir, "cosign.pub", &public_key_pem(&key).unwrap());
        let verifier = load_public_key(&public).unwrap();
        for loaded in [
            load_signing_key(&encrypted, Some(&password)).unwrap(),
            load_signing_key(&plain, None).unwrap(),
        ] {
            let signature = loaded.sign(b"payload").unwrap();
            verifier.verify(b"payload", &signature).expect("same key");
        }
    }

    #[test]
    fn bad_keys_say_what_is_wrong_without_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let pkcs8 = pkcs8();
        let key = KeyPair::from_pkcs8_der(&pkcs8).unwrap();
        let encrypted = write(&dir, "cosign.key", &seal(&pkcs8, "right", 10));
        let wrong: Password = Zeroizing::new("wrong-password-value".into());
        let err = load_signing_key(&encrypted, Some(&wrong)).unwrap_err().to_string();
        assert!(err.contains("wrong password") && err.contains("cosign.key"), "{err}");
        assert!(!err.contains("wrong-password-value"), "{err}");
        let err = load_signing_key(&encrypted, None).unwrap_err().to_string();
        assert!(err.contains("COSIGN_PASSWORD"), "{err}");
        let public = write(&dir, "cosign.pub", &public_key_pem(&key).unwrap());
        assert!(
            load_signing_key(&public, None)
                .unwrap_err()
                .to_string()
                .contains("PUBLIC KEY")
        );
        let junk = write(&dir, "junk", "not pem");
        assert!(
            load_signing_key(&junk, None)
                .unwrap_err()
                .to_string()
                .contains("not a PEM file")
        );
        let huge = write(&dir, "huge.key", &seal_with_n(&pkcs8, "right", 1 << 40));
        let err = load_signing_key(&huge, Some(&wrong)).unwrap_err().to_string();
        assert!(err.contains("scrypt N"), "{err}");
    }

    /// An encrypted key whose header claims scrypt work factor `n` (the body is junk).
    fn seal_with_n(pkcs8: &[u8], password: &str, n: u64) -> String {
        let good = seal(pkcs8, password, 10);
        let block = pem::parse(good.as_bytes()).unwrap();
        let mut json: serde_json::Value = serde_json::from_slice(block.contents()).unwrap();
        json["kdf"]["params"]["N"] = n.into();
        pem::encode(&pem::Pem::new(ENCRYPTED_LABELS[0], json.to_string().into_bytes()))
    }
}
