//! Google application-default credentials, found where Google's libraries look, in their
//! order, and turned into an OAuth access token:
//!
//! 1. the file `GOOGLE_APPLICATION_CREDENTIALS` names (when set, it is used or the lookup
//!    fails: a user who named a file meant it);
//! 2. gcloud's well-known file (`gcloud auth application-default login`);
//! 3. the GCE/GKE metadata server, if it answers a connection within a second.
//!
//! A file is either a service-account key (`service_account`: an RS256 JWT assertion,
//! signed with its key, exchanged at its `token_uri`) or a gcloud user
//! (`authorized_user`: a refresh-token grant).
use std::path::Path;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde::Deserialize;
use sigstore_sign::oidc::SecretString;
use zeroize::Zeroizing;

use super::{GoogleEndpoints, Step, read_secret_file, send_json};

/// Google's OAuth token endpoint, for credentials that do not name one.
const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// The scope IAM Credentials requires of the caller's access token.
const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Lifetime of a service-account assertion: Google accepts at most an hour.
const ASSERTION_LIFETIME: u64 = 3600;
/// How long the metadata server gets to accept a connection. On GCE/GKE it is one local
/// hop; elsewhere its name does not resolve or nothing answers, and an offline machine
/// must fail in a second, not after the system's connect timeout of minutes.
const METADATA_CONNECT: Duration = Duration::from_secs(1);
const METADATA_TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";

/// Credentials that can call Google APIs.
pub(super) struct Caller {
    pub(super) access_token: SecretString,
    /// Who the credentials are and where they came from, for messages.
    pub(super) who: String,
    /// The project a gcloud user's calls are billed to (`quota_project_id`).
    pub(super) quota_project: Option<String>,
}

/// Why no access token came.
pub(super) enum Failure {
    /// No credentials in any of the places looked at, each with why.
    NotFound(Vec<String>),
    /// Credentials were found, and this step with them failed.
    Step(Step, String),
}

/// Finds application-default credentials and gets an access token with them.
pub(super) async fn access_token(endpoints: &GoogleEndpoints, http: &reqwest::Client) -> Result<Caller, Failure> {
    if let Some(path) = &endpoints.credentials_file {
        let origin = format!("{} (named by GOOGLE_APPLICATION_CREDENTIALS)", path.display());
        let json =
            read_file(path)?.ok_or_else(|| Failure::Step(Step::Credentials, format!("{origin}: no such file")))?;
        return from_file(&json, &origin, endpoints, http).await;
    }
    let mut looked = vec!["GOOGLE_APPLICATION_CREDENTIALS: not set".to_string()];
    match &endpoints.gcloud_file {
        Some(path) => match read_file(path)? {
            Some(json) => {
                let origin = format!("{} (gcloud's application-default credentials)", path.display());
                return from_file(&json, &origin, endpoints, http).await;
            }
            None => looked.push(format!(
                "{}: no such file (`gcloud auth application-default login` writes it)",
                path.display()
            )),
        },
        None => looked.push(
            "gcloud's application-default credentials: no home directory (neither HOME nor CLOUDSDK_CONFIG is set)"
                .to_string(),
        ),
    }
    let metadata = endpoints.metadata.trim_end_matches('/');
    if let Err(why) = connects(metadata).await {
        looked.push(format!("the GCE/GKE metadata server {metadata}: {why}"));
        return Err(Failure::NotFound(looked));
    }
    from_metadata_server(metadata, http).await
}

/// A credentials file's text (zeroed on drop), or `None` when it does not exist.
fn read_file(path: &Path) -> Result<Option<Zeroizing<String>>, Failure> {
    match read_secret_file(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Failure::Step(Step::Credentials, format!("{}: {e}", path.display()))),
    }
}

#[derive(Deserialize)]
struct Kind {
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct ServiceAccountKey {
    client_email: String,
    private_key: SecretString,
    private_key_id: Option<String>,
    token_uri: Option<String>,
}

#[derive(Deserialize)]
struct AuthorizedUser {
    client_id: String,
    client_secret: SecretString,
    refresh_token: SecretString,
    quota_project_id: Option<String>,
}

/// What OAuth token endpoints and the metadata server answer.
#[derive(Deserialize)]
struct AccessToken {
    access_token: SecretString,
}

/// Gets an access token with the credentials file `json`, described by `origin`.
async fn from_file(
    json: &str,
    origin: &str,
    endpoints: &GoogleEndpoints,
    http: &reqwest::Client,
) -> Result<Caller, Failure> {
    // serde's messages name fields and positions; a string value would only be quoted
    // from a field that is not a string, and every secret field is one.
    let unreadable = |e: serde_json::Error| Failure::Step(Step::Credentials, format!("{origin}: {e}"));
    // The type first, so that an unsupported one is named as such rather than as a
    // missing field of some other type.
    let kind = serde_json::from_str::<Kind>(json).map_err(unreadable)?.kind;
    // Which credentials a run used is the first question when minting fails; the file's
    // path and type are no secret.
    tracing::debug!(
        credentials = origin,
        kind = kind.as_deref().unwrap_or("(none)"),
        "Google credentials found"
    );
    match kind.as_deref() {
        Some("service_account") => {
            let key: ServiceAccountKey = serde_json::from_str(json).map_err(unreadable)?;
            with_service_account_key(&key, origin, endpoints, http).await
        }
        Some("authorized_user") => {
            let user: AuthorizedUser = serde_json::from_str(json).map_err(unreadable)?;
            with_refresh_token(&user, origin, endpoints, http).await
        }
        other => Err(Failure::Step(
            Step::Credentials,
            format!(
                "{origin}: credentials of type {}, but only a service-account key (`service_account`) or \
                 a gcloud user (`authorized_user`, from `gcloud auth application-default login`) can mint \
                 identity tokens here",
                other.map_or_else(|| "(none)".to_string(), |kind| format!("`{kind}`"))
            ),
        )),
    }
}

/// A service-account key: an RS256 JWT assertion signed with it, exchanged for an access
/// token (Google's two-legged OAuth for service accounts).
async fn with_service_account_key(
    key: &ServiceAccountKey,
    origin: &str,
    endpoints: &GoogleEndpoints,
    http: &reqwest::Client,
) -> Result<Caller, Failure> {
    let who = format!("{} with the service-account key {origin}", key.client_email);
    let token_uri = endpoints
        .oauth_token
        .as_deref()
        .or(key.token_uri.as_deref())
        .unwrap_or(GOOGLE_TOKEN_URI);
    let assertion = assertion(key, token_uri, unix_now())
        .map_err(|why| Failure::Step(Step::Credentials, format!("{origin}: {why}")))?;
    let request = http
        .post(token_uri)
        .form(&[("grant_type", JWT_BEARER), ("assertion", assertion.as_str())]);
    let reply: AccessToken = send_json(request, token_uri, &[assertion.as_str()])
        .await
        .map_err(|failure| Failure::Step(Step::AccessToken, format!("as {who}: {}", failure.why)))?;
    Ok(Caller {
        access_token: reply.access_token,
        who,
        quota_project: None,
    })
}

/// The signed JWT a service account presents at `audience` (its token endpoint).
fn assertion(key: &ServiceAccountKey, audience: &str, now: u64) -> Result<Zeroizing<String>, String> {
    let pem = pem::parse(key.private_key.expose_secret())
        .map_err(|e| format!("its `private_key` is not a PEM private key ({e})"))?;
    if pem.tag() != "PRIVATE KEY" {
        return Err(format!(
            "its `private_key` is a PEM `{}` block, not a PKCS#8 `PRIVATE KEY`",
            pem.tag()
        ));
    }
    let der = Zeroizing::new(pem.into_contents());
    let signer =
        RsaKeyPair::from_pkcs8(&der).map_err(|e| format!("its `private_key` is not a PKCS#8 RSA key ({e})"))?;
    let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
    if let Some(kid) = &key.private_key_id {
        // Lets Google pick the public key without trying each of the account's keys.
        header["kid"] = kid.as_str().into();
    }
    let claims = serde_json::json!({
        "iss": key.client_email,
        "scope": CLOUD_PLATFORM,
        "aud": audience,
        "iat": now,
        "exp": now + ASSERTION_LIFETIME,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut signature = vec![0; signer.public().modulus_len()];
    signer
        .sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            signing_input.as_bytes(),
            &mut signature,
        )
        .map_err(|_| "its `private_key` could not sign".to_string())?;
    Ok(Zeroizing::new(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    )))
}

/// A gcloud user: the refresh-token grant with gcloud's OAuth client.
async fn with_refresh_token(
    user: &AuthorizedUser,
    origin: &str,
    endpoints: &GoogleEndpoints,
    http: &reqwest::Client,
) -> Result<Caller, Failure> {
    let who = format!("the gcloud user of {origin}");
    let token_uri = endpoints.oauth_token.as_deref().unwrap_or(GOOGLE_TOKEN_URI);
    let (client_secret, refresh_token) = (user.client_secret.expose_secret(), user.refresh_token.expose_secret());
    let request = http.post(token_uri).form(&[
        ("grant_type", "refresh_token"),
        ("client_id", user.client_id.as_str()),
        ("client_secret", client_secret),
        ("refresh_token", refresh_token),
    ]);
    let reply: AccessToken = send_json(request, token_uri, &[client_secret, refresh_token])
        .await
        .map_err(|failure| Failure::Step(Step::AccessToken, format!("as {who}: {}", failure.why)))?;
    Ok(Caller {
        access_token: reply.access_token,
        who,
        quota_project: user.quota_project_id.clone(),
    })
}

/// The metadata server's token for the machine's (or the GKE workload's) service account.
async fn from_metadata_server(metadata: &str, http: &reqwest::Client) -> Result<Caller, Failure> {
    let who = format!("the default service account of the metadata server {metadata}");
    let url = format!("{metadata}{METADATA_TOKEN_PATH}");
    // The metadata server refuses requests without it: its guard against request forgery
    // through proxies and redirects.
    let request = http.get(&url).header("Metadata-Flavor", "Google");
    let reply: AccessToken = send_json(request, &url, &[])
        .await
        .map_err(|failure| Failure::Step(Step::AccessToken, format!("as {who}: {}", failure.why)))?;
    Ok(Caller {
        access_token: reply.access_token,
        who,
        quota_project: None,
    })
}

/// Whether something accepts a connection at the host and port of `base` within
/// [`METADATA_CONNECT`] (name resolution included).
async fn connects(base: &str) -> Result<(), String> {
    let url = url::Url::parse(base).map_err(|e| format!("not a URL ({e})"))?;
    let host = match url.host() {
        Some(url::Host::Ipv6(address)) => address.to_string(),
        Some(host) => host.to_string(),
        None => return Err("the URL has no host".to_string()),
    };
    let port = url.port_or_known_default().ok_or("the URL has no port")?;
    match tokio::time::timeout(METADATA_CONNECT, tokio::net::TcpStream::connect((host.as_str(), port))).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("unreachable ({e})")),
        Err(_) => Err(format!(
            "no connection within {}s (not on GCE or GKE?)",
            METADATA_CONNECT.as_secs()
        )),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

#[cfg(test)]
mod tests {
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};

    use super::*;

    /// Loads `json` as a credentials file; every case here fails before any request.
    async fn load(json: &str) -> String {
        let endpoints = GoogleEndpoints {
            iam_credentials: "http://127.0.0.1:9".into(),
            oauth_token: Some("http://127.0.0.1:9/token".into()),
            metadata: "http://127.0.0.1:9".into(),
            credentials_file: None,
            gcloud_file: None,
        };
        match from_file(json, "key.json", &endpoints, &super::super::tests::http()).await {
            Err(Failure::Step(Step::Credentials, why)) => why,
            Err(Failure::Step(step, why)) => panic!("failed at {step}, not on the file: {why}"),
            Err(Failure::NotFound(looked)) => panic!("not found: {looked:?}"),
            Ok(caller) => panic!("loaded as {}", caller.who),
        }
    }

    fn pem_block(tag: &str, der: &[u8]) -> String {
        pem::encode(&pem::Pem::new(tag, der.to_vec()))
    }

    #[tokio::test]
    async fn unusable_credential_files_say_what_is_wrong_without_quoting_secrets() {
        assert_eq!(load("not json").await, "key.json: expected ident at line 1 column 2");
        assert!(
            load(r#"{"type":"external_account","audience":"x"}"#)
                .await
                .starts_with("key.json: credentials of type `external_account`, but only a service-account key"),
        );
        assert!(
            load(r#"{"client_email":"a@b"}"#)
                .await
                .contains("credentials of type (none)")
        );
        assert_eq!(
            load(r#"{"type":"authorized_user","client_id":"id","client_secret":"s3cr3t"}"#).await,
            "key.json: missing field `refresh_token` at line 1 column 68"
        );

        let key = |private_key: &str| {
            serde_json::json!({"type": "service_account", "client_email": "sa@p.iam.gserviceaccount.com",
                "private_key": private_key})
            .to_string()
        };
        let garbage = load(&key(
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END PRIVATE KEY-----\n",
        ))
        .await;
        assert!(
            garbage.starts_with("key.json: its `private_key` is not a PKCS#8 RSA key ("),
            "{garbage}"
        );
        assert!(!garbage.contains("c2VjcmV0"), "{garbage}");
        let truncated = load(&key("-----BEGIN PRIVATE KEY-----\nc2VjcmV0")).await;
        assert!(
            truncated.starts_with("key.json: its `private_key` is not a PEM private key ("),
            "{truncated}"
        );
        let rsa_public = load(&key(&pem_block("PUBLIC KEY", b"public"))).await;
        assert!(
            rsa_public.ends_with("a PEM `PUBLIC KEY` block, not a PKCS#8 `PRIVATE KEY`"),
            "{rsa_public}"
        );
        let ec = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new()).expect("EC key");
        let ec_key = load(&key(&pem_block("PRIVATE KEY", ec.as_ref()))).await;
        assert!(
            ec_key.starts_with("key.json: its `private_key` is not a PKCS#8 RSA key ("),
            "{ec_key}"
        );
    }
}
