//! Identity tokens for keyless signing, minted by Google's IAM Credentials API for a
//! service account with application-default credentials (a service-account key, a gcloud
//! user's refresh token, the metadata server).
//!
//! No Google Cloud is reachable here, so Google's endpoints (OAuth token, metadata server,
//! IAM Credentials) are wiremock servers on 127.0.0.1 that expect exactly the requests
//! Google documents; the service-account key is a throw-away RSA key made with `openssl`,
//! and the assertion kpromo signs with it is verified with ring against the key's public
//! half as openssl exports it. Every error and every log line (captured at TRACE) is
//! scanned for the keys and tokens involved.
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kpromo::trust::Error;
use kpromo::trust::token::{GoogleEndpoints, IdentityToken, Step, TokenSource};
use serde_json::{Value, json};
use wiremock::matchers::{body_json, body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::support::logs::captured_logs;

const ACCOUNT: &str = "krel-trust@k8s-releng-prod.iam.gserviceaccount.com";
const CALLER: &str = "promoter@ci-project.iam.gserviceaccount.com";
const KEY_ID: &str = "0123456789abcdef0123456789abcdef01234567";
const ACCESS_TOKEN: &str = "ya29.access-token-must-not-leak";
const REFRESH_TOKEN: &str = "1//refresh-token-must-not-leak";
const CLIENT_SECRET: &str = "client-secret-must-not-leak";
/// The signature part of the identity tokens served: what makes a JWT a credential.
const ID_TOKEN_SIGNATURE: &str = "aWQtdG9rZW4tc2lnbmF0dXJlLW11c3Qtbm90LWxlYWs";
const GOOGLE_ISSUER: &str = "https://accounts.google.com";
const GENERATE_ID_TOKEN: &str =
    "/v1/projects/-/serviceAccounts/krel-trust@k8s-releng-prod.iam.gserviceaccount.com:generateIdToken";
const METADATA_TOKEN: &str = "/computeMetadata/v1/instance/service-accounts/default/token";

/// A throw-away RSA key as a service-account key file holds it (PKCS#8 PEM), and its
/// public half as openssl exports it (PKCS#1 DER, what ring verifies with). Made once
/// per test binary: RSA key generation is slow.
struct RsaKey {
    pem: String,
    public_der: Vec<u8>,
}

fn rsa_key() -> &'static RsaKey {
    static KEY: OnceLock<RsaKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let (pem, public) = (dir.path().join("key.pem"), dir.path().join("public.der"));
        openssl(
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
            ],
            &pem,
        );
        openssl(
            &[
                "rsa",
                "-in",
                &pem.display().to_string(),
                "-RSAPublicKey_out",
                "-outform",
                "DER",
                "-out",
            ],
            &public,
        );
        RsaKey {
            pem: std::fs::read_to_string(&pem).expect("read key"),
            public_der: std::fs::read(&public).expect("read public key"),
        }
    })
}

fn openssl(args: &[&str], out: &Path) {
    let status = std::process::Command::new("openssl")
        .args(args)
        .arg(out)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs (scripts/test.sh installs it)");
    assert!(status.success(), "openssl {args:?} failed");
}

/// A service-account key file for `CALLER` whose `token_uri` is `token_uri`.
fn service_account_key(dir: &Path, token_uri: &str, private_key: &str) -> PathBuf {
    let path = dir.join("key.json");
    let key = json!({
        "type": "service_account", "project_id": "ci-project", "private_key_id": KEY_ID,
        "private_key": private_key, "client_email": CALLER, "client_id": "1000000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": token_uri,
    });
    std::fs::write(&path, key.to_string()).expect("write key file");
    path
}

/// A socket bound to a port of 127.0.0.1 that never listens: connecting is refused at
/// once, and nothing else can take the port while the socket lives.
fn refusing_port() -> (socket2::Socket, String) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket
        .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind");
    let port = socket.local_addr().expect("address").as_socket().expect("inet").port();
    (socket, format!("http://127.0.0.1:{port}"))
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// An identity token as IAM mints it for `ACCOUNT` (unsigned: only Fulcio checks).
fn id_token(claims: Value) -> String {
    let part = |value: Value| URL_SAFE_NO_PAD.encode(value.to_string());
    format!(
        "{}.{}.{ID_TOKEN_SIGNATURE}",
        part(json!({"alg": "RS256", "kid": "google-key", "typ": "JWT"})),
        part(claims)
    )
}

fn google_claims(exp: i64) -> Value {
    json!({
        "aud": "sigstore", "azp": "1000000000000000000002", "email": ACCOUNT, "email_verified": true,
        "exp": exp, "iat": exp - 3600, "iss": GOOGLE_ISSUER, "sub": "1000000000000000000002",
    })
}

/// IAM Credentials answering `generateIdToken` for `ACCOUNT` with `token`, to callers
/// presenting `ACCESS_TOKEN` with Google's request body.
async fn mount_iam(server: &MockServer, token: &str) {
    Mock::given(method("POST"))
        .and(path(GENERATE_ID_TOKEN))
        .and(header("authorization", format!("Bearer {ACCESS_TOKEN}").as_str()))
        .and(body_json(json!({"audience": "sigstore", "includeEmail": true})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"token": token})))
        .expect(1)
        .mount(server)
        .await;
}

fn access_token_reply() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "access_token": ACCESS_TOKEN, "expires_in": 3599, "token_type": "Bearer",
    }))
}

fn endpoints(server: &MockServer, metadata: &str) -> GoogleEndpoints {
    GoogleEndpoints {
        iam_credentials: server.uri(),
        oauth_token: None,
        metadata: metadata.to_string(),
        credentials_file: None,
        gcloud_file: None,
    }
}

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().expect("client")
}

async fn fetch(account: &str, endpoints: GoogleEndpoints) -> Result<IdentityToken, Error> {
    TokenSource::Google {
        account: account.to_string(),
        endpoints,
    }
    .fetch(&http())
    .await
}

/// The one request the server received at `at`.
async fn request_to(server: &MockServer, at: &str) -> Request {
    let mut matching: Vec<Request> = server
        .received_requests()
        .await
        .expect("request recording")
        .into_iter()
        .filter(|request| request.url.path() == at)
        .collect();
    assert_eq!(matching.len(), 1, "requests to {at}");
    matching.remove(0)
}

fn form(request: &Request) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&request.body).into_owned().collect()
}

fn header_of<'r>(request: &'r Request, name: &str) -> &'r str {
    request
        .headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .expect("ASCII header")
}

/// Scans `texts` (errors, `Debug` output) and every captured log line for the keys and
/// tokens of these tests, and for `more` (assertions kpromo signed).
fn assert_no_secret(texts: &[String], more: &[String]) {
    let logs = String::from_utf8_lossy(&captured_logs().lock().expect("log buffer")).to_string();
    assert!(
        logs.contains("kpromo::trust::token"),
        "kpromo logged nothing: the scan would prove nothing"
    );
    let key_lines = rsa_key().pem.lines().filter(|line| !line.starts_with("-----"));
    let secrets: Vec<String> = [ACCESS_TOKEN, REFRESH_TOKEN, CLIENT_SECRET, ID_TOKEN_SIGNATURE]
        .into_iter()
        .map(str::to_string)
        .chain(key_lines.map(str::to_string))
        .chain(
            more.iter()
                .flat_map(|jwt| [jwt.clone(), jwt.rsplit('.').next().unwrap_or_default().to_string()]),
        )
        .collect();
    for secret in &secrets {
        for line in logs.lines() {
            assert!(!line.contains(secret.as_str()), "a secret reached the logs: {line}");
        }
        for text in texts {
            assert!(
                !text.contains(secret.as_str()),
                "a secret reached an error or Debug text: {text}"
            );
        }
    }
}

#[tokio::test]
async fn a_service_account_key_signs_an_rs256_assertion_and_iam_mints_the_accounts_token() {
    captured_logs();
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let token_uri = format!("{}/token", server.uri());
    let key_file = service_account_key(dir.path(), &token_uri, &rsa_key().pem);
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer",
        ))
        .respond_with(access_token_reply())
        .expect(1)
        .mount(&server)
        .await;
    let exp = now() + 3600;
    let minted = id_token(google_claims(exp));
    mount_iam(&server, &minted).await;
    // A gcloud file that is there too: GOOGLE_APPLICATION_CREDENTIALS wins, as in Google's
    // libraries (its refresh grant would not match the mock above).
    let gcloud_file = dir.path().join("application_default_credentials.json");
    std::fs::write(
        &gcloud_file,
        json!({"type": "authorized_user", "client_id": "c", "client_secret": CLIENT_SECRET,
            "refresh_token": REFRESH_TOKEN})
        .to_string(),
    )
    .expect("write gcloud file");
    let (_closed, metadata) = refusing_port();
    let before = now();

    let token = fetch(
        ACCOUNT,
        GoogleEndpoints {
            credentials_file: Some(key_file),
            gcloud_file: Some(gcloud_file),
            ..endpoints(&server, &metadata)
        },
    )
    .await
    .expect("a token");

    assert_eq!(token.identity(), ACCOUNT);
    assert_eq!(token.email(), Some(ACCOUNT));
    assert_eq!(token.issuer(), GOOGLE_ISSUER);
    assert_eq!(token.expires_at().as_second(), exp);
    assert_eq!(token.expose_jwt(), minted);

    // The assertion: Google's JWT-bearer grant, RS256 over the key, for the token endpoint.
    let exchange = request_to(&server, "/token").await;
    assert_eq!(
        header_of(&exchange, "content-type"),
        "application/x-www-form-urlencoded"
    );
    let fields = form(&exchange);
    assert_eq!(
        fields.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>(),
        ["grant_type", "assertion"]
    );
    assert_eq!(fields[0].1, "urn:ietf:params:oauth:grant-type:jwt-bearer");
    let assertion = fields[1].1.clone();
    let parts: Vec<&str> = assertion.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWS in compact form");
    let decode = |part: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
    };
    assert_eq!(decode(parts[0]), json!({"alg": "RS256", "typ": "JWT", "kid": KEY_ID}));
    let claims = decode(parts[1]);
    assert_eq!(claims["iss"], CALLER);
    assert_eq!(claims["aud"], token_uri.as_str());
    assert_eq!(claims["scope"], "https://www.googleapis.com/auth/cloud-platform");
    let iat = claims["iat"].as_i64().expect("iat");
    assert!((before..=now()).contains(&iat), "iat {iat} is the time of signing");
    assert_eq!(claims["exp"].as_i64(), Some(iat + 3600));
    assert_eq!(claims.as_object().map(|c| c.len()), Some(5), "{claims}");
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).expect("base64url signature");
    ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, &rsa_key().public_der)
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .expect("the assertion verifies with the key's public half");

    // generateIdToken: the bearer token and body the mock required, as JSON, no user project.
    let generate = request_to(&server, GENERATE_ID_TOKEN).await;
    assert_eq!(header_of(&generate, "content-type"), "application/json");
    assert!(generate.headers.get("x-goog-user-project").is_none());

    assert_no_secret(&[format!("{token:?}")], &[assertion, minted]);
}

#[tokio::test]
async fn a_gcloud_user_refreshes_its_token_and_bills_its_quota_project() {
    captured_logs();
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let gcloud_file = dir.path().join("application_default_credentials.json");
    let client_id = "764086051850-6qr4p6gpi6hn506pt8ejuq83di341hur.apps.googleusercontent.com";
    std::fs::write(
        &gcloud_file,
        json!({"type": "authorized_user", "client_id": client_id, "client_secret": CLIENT_SECRET,
            "refresh_token": REFRESH_TOKEN, "quota_project_id": "ci-project"})
        .to_string(),
    )
    .expect("write gcloud file");
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .respond_with(access_token_reply())
        .expect(1)
        .mount(&server)
        .await;
    let minted = id_token(google_claims(now() + 3600));
    Mock::given(method("POST"))
        .and(path(GENERATE_ID_TOKEN))
        .and(header("x-goog-user-project", "ci-project"))
        .and(header("authorization", format!("Bearer {ACCESS_TOKEN}").as_str()))
        .and(body_json(json!({"audience": "sigstore", "includeEmail": true})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"token": minted})))
        .expect(1)
        .mount(&server)
        .await;
    let (_closed, metadata) = refusing_port();

    let token = fetch(
        ACCOUNT,
        GoogleEndpoints {
            oauth_token: Some(format!("{}/oauth2/token", server.uri())),
            gcloud_file: Some(gcloud_file),
            ..endpoints(&server, &metadata)
        },
    )
    .await
    .expect("a token");

    assert_eq!(token.identity(), ACCOUNT);
    let refresh = request_to(&server, "/oauth2/token").await;
    assert_eq!(header_of(&refresh, "content-type"), "application/x-www-form-urlencoded");
    assert_eq!(
        form(&refresh),
        [
            ("grant_type", "refresh_token"),
            ("client_id", client_id),
            ("client_secret", CLIENT_SECRET),
            ("refresh_token", REFRESH_TOKEN),
        ]
        .map(|(name, value)| (name.to_string(), value.to_string()))
    );
    assert_no_secret(&[format!("{token:?}")], &[minted]);
}

#[tokio::test]
async fn without_credential_files_the_metadata_server_gives_the_access_token() {
    captured_logs();
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    Mock::given(method("GET"))
        .and(path(METADATA_TOKEN))
        .and(header("metadata-flavor", "Google"))
        .respond_with(access_token_reply().insert_header("Metadata-Flavor", "Google"))
        .expect(1)
        .mount(&server)
        .await;
    let minted = id_token(google_claims(now() + 3600));
    mount_iam(&server, &minted).await;

    let token = fetch(
        ACCOUNT,
        GoogleEndpoints {
            gcloud_file: Some(dir.path().join("application_default_credentials.json")),
            ..endpoints(&server, &server.uri())
        },
    )
    .await
    .expect("a token");

    assert_eq!(token.identity(), ACCOUNT);
    let asked = request_to(&server, METADATA_TOKEN).await;
    assert_eq!(header_of(&asked, "metadata-flavor"), "Google");
    assert!(asked.headers.get("authorization").is_none());
    assert_no_secret(&[format!("{token:?}")], &[minted]);
}

#[tokio::test]
async fn iam_refusing_the_caller_names_the_account_the_caller_and_the_role_it_needs() {
    captured_logs();
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let key_file = service_account_key(dir.path(), &format!("{}/token", server.uri()), &rsa_key().pem);
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(access_token_reply())
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(GENERATE_ID_TOKEN))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({"error": {
            "code": 403,
            "message": "Permission 'iam.serviceAccounts.getOpenIdToken' denied on resource (or it may not exist).",
            "status": "PERMISSION_DENIED",
        }})))
        .expect(1)
        .mount(&server)
        .await;
    let (_closed, metadata) = refusing_port();

    let error = fetch(
        ACCOUNT,
        GoogleEndpoints {
            credentials_file: Some(key_file.clone()),
            ..endpoints(&server, &metadata)
        },
    )
    .await
    .expect_err("IAM refuses");

    assert!(
        matches!(
            error,
            Error::IdentityToken {
                step: Step::GenerateIdToken,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "identity token for service account {ACCOUNT}: IAM Credentials generateIdToken: {}{GENERATE_ID_TOKEN}: \
             answered 403 Forbidden: PERMISSION_DENIED: Permission 'iam.serviceAccounts.getOpenIdToken' denied on \
             resource (or it may not exist); the caller, {CALLER} with the service-account key {} (named by \
             GOOGLE_APPLICATION_CREDENTIALS), needs roles/iam.serviceAccountTokenCreator on {ACCOUNT}",
            server.uri(),
            key_file.display()
        )
    );
    let assertion = form(&request_to(&server, "/token").await).remove(1).1;
    assert_no_secret(&[error.to_string(), format!("{error:?}")], &[assertion]);
}

#[tokio::test]
async fn a_malformed_key_file_fails_before_any_request_and_quotes_no_key_material() {
    captured_logs();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(access_token_reply())
        .expect(0)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().expect("temp dir");
    // The real key, cut in half: PEM framing broken, base64 lines of a secret still there.
    let half = &rsa_key().pem[..rsa_key().pem.len() / 2];
    let key_file = service_account_key(dir.path(), &format!("{}/token", server.uri()), half);
    let (_closed, metadata) = refusing_port();

    let error = fetch(
        ACCOUNT,
        GoogleEndpoints {
            credentials_file: Some(key_file.clone()),
            ..endpoints(&server, &metadata)
        },
    )
    .await
    .expect_err("no usable key");

    assert!(
        matches!(
            error,
            Error::IdentityToken {
                step: Step::Credentials,
                ..
            }
        ),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(
        text.starts_with(&format!(
            "identity token for service account {ACCOUNT}: loading Google application-default credentials: {} \
             (named by GOOGLE_APPLICATION_CREDENTIALS): its `private_key` is not a PEM private key (",
            key_file.display()
        )),
        "{text}"
    );
    assert_no_secret(&[text, format!("{error:?}")], &[]);
}

#[tokio::test]
async fn a_named_credentials_file_that_is_missing_is_an_error_not_a_reason_to_look_elsewhere() {
    captured_logs();
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(access_token_reply())
        .expect(0)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let named = dir.path().join("absent.json");
    let gcloud_file = dir.path().join("application_default_credentials.json");
    std::fs::write(
        &gcloud_file,
        json!({"type": "authorized_user", "client_id": "c", "client_secret": CLIENT_SECRET,
            "refresh_token": REFRESH_TOKEN})
        .to_string(),
    )
    .expect("write gcloud file");

    let error = fetch(
        ACCOUNT,
        GoogleEndpoints {
            credentials_file: Some(named.clone()),
            gcloud_file: Some(gcloud_file),
            oauth_token: Some(format!("{}/token", server.uri())),
            ..endpoints(&server, &server.uri())
        },
    )
    .await
    .expect_err("the named file is missing");

    assert_eq!(
        error.to_string(),
        format!(
            "identity token for service account {ACCOUNT}: loading Google application-default credentials: {} \
             (named by GOOGLE_APPLICATION_CREDENTIALS): no such file",
            named.display()
        )
    );
}

#[tokio::test]
async fn no_credentials_anywhere_lists_the_three_places_looked_at() {
    captured_logs();
    let dir = tempfile::tempdir().expect("temp dir");
    let gcloud_file = dir.path().join("application_default_credentials.json");
    let (_closed, metadata) = refusing_port();

    let error = fetch(
        ACCOUNT,
        GoogleEndpoints {
            iam_credentials: metadata.clone(),
            oauth_token: None,
            metadata: metadata.clone(),
            credentials_file: None,
            gcloud_file: Some(gcloud_file.clone()),
        },
    )
    .await
    .expect_err("nothing to authenticate with");

    let Error::NoGoogleCredentials { account, looked } = &error else {
        panic!("not a no-credentials error: {error:?}");
    };
    assert_eq!(account, ACCOUNT);
    assert_eq!(looked.len(), 3, "{looked:?}");
    assert_eq!(looked[0], "GOOGLE_APPLICATION_CREDENTIALS: not set");
    assert_eq!(
        looked[1],
        format!(
            "{}: no such file (`gcloud auth application-default login` writes it)",
            gcloud_file.display()
        )
    );
    assert!(
        looked[2].starts_with(&format!("the GCE/GKE metadata server {metadata}: unreachable (")),
        "{}",
        looked[2]
    );
    assert_eq!(
        error.to_string(),
        format!(
            "no Google credentials to mint an identity token for {ACCOUNT}; looked at: {}",
            looked.join("; ")
        )
    );
}

#[tokio::test]
async fn a_minted_token_without_an_email_is_refused() {
    captured_logs();
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(METADATA_TOKEN))
        .respond_with(access_token_reply())
        .mount(&server)
        .await;
    let mut claims = google_claims(now() + 3600);
    claims.as_object_mut().expect("claims").remove("email");
    let minted = id_token(claims);
    mount_iam(&server, &minted).await;

    let error = fetch(ACCOUNT, endpoints(&server, &server.uri()))
        .await
        .expect_err("no email claim");

    assert!(
        matches!(error, Error::IdentityToken { step: Step::Claims, .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "identity token for service account {ACCOUNT}: reading the token's claims: the token IAM minted \
             (issuer {GOOGLE_ISSUER}) has no `email` claim although it was asked for one; Fulcio certifies a \
             Google service account by its email"
        )
    );
    assert_no_secret(&[error.to_string(), format!("{error:?}")], &[minted]);
}

#[tokio::test]
async fn a_minted_token_for_another_account_is_refused() {
    captured_logs();
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(METADATA_TOKEN))
        .respond_with(access_token_reply())
        .mount(&server)
        .await;
    let mut claims = google_claims(now() + 3600);
    claims["email"] = serde_json::json!(CALLER);
    let minted = id_token(claims);
    mount_iam(&server, &minted).await;

    let error = fetch(ACCOUNT, endpoints(&server, &server.uri()))
        .await
        .expect_err("a token for the caller, not the account");

    assert!(
        matches!(error, Error::IdentityToken { step: Step::Claims, .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains(&format!(
            "the token IAM minted is for {CALLER}, not for --signer-account {ACCOUNT}"
        )),
        "{error}"
    );
    assert_no_secret(&[error.to_string(), format!("{error:?}")], &[minted]);
}
