//! Throw-away keys and certificates made with the `openssl` CLI for each test.
use std::path::{Path, PathBuf};

use super::process::run;

/// A private CA and a server certificate for 127.0.0.1 signed by it.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

/// Writes a CA plus a leaf with `IP:127.0.0.1` SAN under `dir`. A separate leaf (not one
/// self-signed cert) because webpki rejects a CA:TRUE certificate used as an end entity.
pub fn make_tls(dir: &Path) -> TlsFiles {
    super::require_tool("openssl");
    let p = |name: &str| dir.join(name);
    let s = |path: &PathBuf| path.to_str().expect("utf-8 temp path").to_string();
    let files = TlsFiles {
        ca_cert: p("ca.crt"),
        server_cert: p("server.crt"),
        server_key: p("server.key"),
    };
    let (ca_key, csr, ext) = (p("ca.key"), p("server.csr"), p("server.ext"));
    std::fs::write(
        &ext,
        "basicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\n\
         subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("write server.ext");
    #[rustfmt::skip]
    run("openssl", &["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-days", "2", "-subj", "/CN=kpromo-test-ca",
        "-keyout", &s(&ca_key), "-out", &s(&files.ca_cert)]);
    #[rustfmt::skip]
    run("openssl", &["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", &s(&files.server_key), "-out", &s(&csr)]);
    #[rustfmt::skip]
    run("openssl", &["x509", "-req", "-in", &s(&csr), "-CA", &s(&files.ca_cert),
        "-CAkey", &s(&ca_key), "-CAcreateserial", "-days", "2", "-extfile", &s(&ext),
        "-out", &s(&files.server_cert)]);
    files
}

/// The token issuer's signing key (P-256, PKCS#8 DER for ring) and its self-signed
/// certificate (DER for the JWT `x5c` header; the PEM `token.crt` stays in the directory
/// for distribution's `rootcertbundle`).
#[derive(Debug, Clone)]
pub struct TokenKey {
    pub pkcs8_der: Vec<u8>,
    pub cert_der: Vec<u8>,
}

pub fn make_token_key(dir: &Path) -> TokenKey {
    super::require_tool("openssl");
    let p = |name: &str| dir.join(name).to_str().expect("utf-8 temp path").to_string();
    #[rustfmt::skip]
    run("openssl", &["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-days", "2", "-subj", "/CN=kpromo-test-token-issuer",
        "-keyout", &p("token.key"), "-out", &p("token.crt")]);
    run(
        "openssl",
        &[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            &p("token.key"),
            "-outform",
            "DER",
            "-out",
            &p("token.p8"),
        ],
    );
    run(
        "openssl",
        &[
            "x509",
            "-in",
            &p("token.crt"),
            "-outform",
            "DER",
            "-out",
            &p("token.der"),
        ],
    );
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"));
    TokenKey {
        pkcs8_der: read("token.p8"),
        cert_der: read("token.der"),
    }
}

/// A P-256 signing key pair made by openssl, as cosign and sigstore use: `private` is
/// unencrypted PKCS#8 PEM (what `--signing-key` accepts), `public` SubjectPublicKeyInfo PEM.
#[derive(Debug, Clone)]
pub struct SigningKey {
    pub private: PathBuf,
    pub public: PathBuf,
}

impl SigningKey {
    /// Writes `NAME.key` and `NAME.pub` under `dir`.
    pub fn generate(dir: &Path, name: &str) -> SigningKey {
        super::require_tool("openssl");
        let key = SigningKey {
            private: dir.join(format!("{name}.key")),
            public: dir.join(format!("{name}.pub")),
        };
        let s = |path: &PathBuf| path.to_str().expect("utf-8 temp path").to_string();
        #[rustfmt::skip]
        run("openssl", &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-out", &s(&key.private)]);
        run(
            "openssl",
            &["pkey", "-in", &s(&key.private), "-pubout", "-out", &s(&key.public)],
        );
        key
    }

    /// openssl's ECDSA signature (SHA-256, DER) over exactly `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let file = tempfile::NamedTempFile::new().expect("temporary message file");
        std::fs::write(file.path(), message).expect("write message");
        let private = self.private.to_str().expect("utf-8 key path");
        let input = file.path().to_str().expect("utf-8 temp path");
        run("openssl", &["dgst", "-sha256", "-sign", private, input]).stdout
    }
}
