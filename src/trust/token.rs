//! OIDC identity tokens for keyless signing: Fulcio certifies an ephemeral key for the
//! identity such a token names.
//!
//! - [`TokenSource::File`]: a JWT that something else keeps in a file (CI systems do, and
//!   rotate it), read again on every [`TokenSource::fetch`];
//! - [`TokenSource::Google`]: Go kpromo's way. The IAM Credentials API mints a token for a
//!   service account (`generateIdToken`, audience `sigstore`, with its email), called with
//!   Google application-default credentials found where Google's libraries find them
//!   (`token/adc.rs`).
//!
//! [`TokenFetcher`] is the [`super::keyless::TokenProvider`] the keyless signer asks for
//! a token whenever it needs a new certificate.
//!
//! Claims are read, not verified: Fulcio verifies the token. No token, private key,
//! refresh token or client secret ever appears in an error or a log line.
mod adc;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use sigstore_sign::oidc;
use zeroize::Zeroizing;

use super::Error;
use crate::registry::remote::{SendError, read_limited};

/// The audience Fulcio accepts.
const AUDIENCE: &str = "sigstore";
const IAM_CREDENTIALS: &str = "https://iamcredentials.googleapis.com";
const METADATA_SERVER: &str = "http://metadata.google.internal";
/// Largest token or credentials file read.
const MAX_SECRET_FILE: u64 = 64 << 10;
/// Largest answer read from a token endpoint: tokens and error documents are small.
const MAX_REPLY: usize = 1 << 20;
/// Longest any one request to a token endpoint may take, so that Setup fails rather than
/// hangs on an endpoint that accepted the connection and then went silent.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest excerpt of a non-JSON error answer quoted in a message.
const MAX_QUOTE: usize = 200;

/// Where the OIDC identity token for keyless signing comes from.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// A JWT in a file, read again whenever a new token is needed: CI systems rotate such
    /// files.
    File(PathBuf),
    /// Go kpromo's default: minted for `account` (a service account's email) through the
    /// IAM Credentials `generateIdToken` API (audience `sigstore`, `includeEmail: true`),
    /// authenticated with application-default credentials.
    Google {
        account: String,
        endpoints: GoogleEndpoints,
    },
}

/// Where Google's services and application-default credentials are. [`from_env`] gives
/// Google's own; tests point them at 127.0.0.1 and temporary files.
///
/// [`from_env`]: GoogleEndpoints::from_env
#[derive(Debug, Clone)]
pub struct GoogleEndpoints {
    /// Base URL of the IAM Credentials API.
    pub iam_credentials: String,
    /// Where OAuth access tokens are requested, instead of a service-account key's
    /// `token_uri` or, for a gcloud user, `https://oauth2.googleapis.com/token`.
    pub oauth_token: Option<String>,
    /// Base URL of the GCE/GKE metadata server.
    pub metadata: String,
    /// The credentials file named by `GOOGLE_APPLICATION_CREDENTIALS`: when set, it is the
    /// only one used.
    pub credentials_file: Option<PathBuf>,
    /// gcloud's application-default credentials file (`gcloud auth application-default
    /// login` writes it); `None` without a home directory.
    pub gcloud_file: Option<PathBuf>,
}

impl GoogleEndpoints {
    /// Google's endpoints and the credential files Google's libraries would read, with the
    /// environment variables they honour: `GOOGLE_APPLICATION_CREDENTIALS`,
    /// `CLOUDSDK_CONFIG` (gcloud's configuration directory, default `~/.config/gcloud`) and
    /// `GCE_METADATA_HOST`.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
        let gcloud_dir = var("CLOUDSDK_CONFIG")
            .map(PathBuf::from)
            .or_else(|| var("HOME").map(|home| Path::new(&home).join(".config").join("gcloud")));
        GoogleEndpoints {
            iam_credentials: IAM_CREDENTIALS.to_string(),
            oauth_token: None,
            metadata: var("GCE_METADATA_HOST")
                .map(|host| format!("http://{}", host.to_string_lossy()))
                .unwrap_or_else(|| METADATA_SERVER.to_string()),
            credentials_file: var("GOOGLE_APPLICATION_CREDENTIALS").map(PathBuf::from),
            gcloud_file: gcloud_dir.map(|dir| dir.join("application_default_credentials.json")),
        }
    }
}

/// An identity token and what it says. The JWT is zeroed on drop and never printed:
/// `Debug` shows the claims only.
#[derive(Clone)]
pub struct IdentityToken {
    token: oidc::IdentityToken,
}

impl IdentityToken {
    /// Reads the claims of a JWT (without checking its signature: Fulcio does). The error
    /// says what is wrong with the claims, never the token.
    fn parse(jwt: &str) -> Result<Self, String> {
        oidc::IdentityToken::from_jwt(jwt)
            .map(|token| IdentityToken { token })
            .map_err(|e| {
                let why = match e {
                    oidc::Error::Token(why) => why,
                    other => other.to_string(),
                };
                format!("not a JWT with `iss`, `sub` and `exp` claims ({why})")
            })
    }

    /// The identity Fulcio certifies: the `email` claim, else `sub`.
    pub fn identity(&self) -> &str {
        self.token.identity()
    }

    /// The `email` claim, if any.
    pub fn email(&self) -> Option<&str> {
        self.token.email()
    }

    /// The `iss` claim: the OIDC issuer Fulcio will name in the certificate.
    pub fn issuer(&self) -> &str {
        self.token.issuer()
    }

    /// The `exp` claim: fetch a new token before this.
    pub fn expires_at(&self) -> jiff::Timestamp {
        self.token.expiration()
    }

    /// The JWT itself, for presenting to Fulcio and nothing else.
    pub fn expose_jwt(&self) -> &str {
        self.token.expose_secret()
    }

    /// The same token as sigstore's signing client takes it.
    pub fn into_sigstore(self) -> oidc::IdentityToken {
        self.token
    }
}

impl std::fmt::Debug for IdentityToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityToken")
            .field("identity", &self.identity())
            .field("issuer", &self.issuer())
            .field("expires", &self.expires_at())
            .finish_non_exhaustive()
    }
}

/// A [`TokenSource`] with the HTTP client it fetches through: what the keyless signer asks
/// for a token whenever it needs a new certificate.
pub struct TokenFetcher {
    pub source: TokenSource,
    pub http: reqwest::Client,
}

#[async_trait::async_trait]
impl super::keyless::TokenProvider for TokenFetcher {
    async fn token(&self) -> Result<oidc::IdentityToken, Error> {
        Ok(self.source.fetch(&self.http).await?.into_sigstore())
    }
}

/// The step of getting an identity token that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Reading a token file.
    ReadFile,
    /// Reading the token's claims.
    Claims,
    /// A token file holding a token that has expired.
    Expired,
    /// Loading Google application-default credentials.
    Credentials,
    /// Getting an OAuth access token with those credentials.
    AccessToken,
    /// Asking the IAM Credentials API for the identity token.
    GenerateIdToken,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::ReadFile => "reading the token file",
            Step::Claims => "reading the token's claims",
            Step::Expired => "the token has expired",
            Step::Credentials => "loading Google application-default credentials",
            Step::AccessToken => "getting an OAuth access token",
            Step::GenerateIdToken => "IAM Credentials generateIdToken",
        })
    }
}

impl TokenSource {
    /// Gets a token: reads the file again, or mints a new one.
    pub async fn fetch(&self, http: &reqwest::Client) -> Result<IdentityToken, Error> {
        match self {
            TokenSource::File(path) => read_token_file(path),
            TokenSource::Google { account, endpoints } => mint_for_service_account(account, endpoints, http).await,
        }
    }
}

fn read_token_file(path: &Path) -> Result<IdentityToken, Error> {
    let fail = |step, why: String| Error::IdentityToken {
        origin: format!("identity token file {}", path.display()),
        step,
        why,
    };
    let jwt = read_secret_file(path).map_err(|e| fail(Step::ReadFile, e.to_string()))?;
    let token = IdentityToken::parse(jwt.trim()).map_err(|why| fail(Step::Claims, why))?;
    // Fulcio would refuse it too, but only after the run built everything else; and a stale
    // file means whatever rotates it has stopped, which is what the user needs to hear.
    if token.expires_at() <= jiff::Timestamp::now() {
        return Err(fail(
            Step::Expired,
            format!(
                "it expired at {}; CI systems rewrite such files before they expire: is whatever writes it still running?",
                token.expires_at()
            ),
        ));
    }
    tracing::debug!(
        identity = token.identity(),
        issuer = token.issuer(),
        "identity token read from {}",
        path.display()
    );
    Ok(token)
}

/// Reads a small file holding secrets (a token, a credentials file), zeroed on drop. Bounded:
/// such files are a few kilobytes, and a path to something endless must not exhaust memory.
fn read_secret_file(path: &Path) -> std::io::Result<Zeroizing<String>> {
    let mut text = Zeroizing::new(String::new());
    std::fs::File::open(path)?
        .take(MAX_SECRET_FILE + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_SECRET_FILE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "larger than {} KiB, too large for a token or credentials file",
                MAX_SECRET_FILE >> 10
            ),
        ));
    }
    Ok(text)
}

/// Checks that a token IAM minted certifies the service account it was asked for: Fulcio
/// puts the token's `email` in the certificate, and that is the identity verifiers pin, so a
/// token for another account (a misconfigured impersonation chain, a proxy answering for
/// someone else) would sign every image under a name nobody trusts. An account given by its
/// numeric unique ID cannot be compared and only needs an email to be present.
fn minted_for(account: &str, token: &IdentityToken) -> Result<(), String> {
    let Some(email) = token.email() else {
        return Err(format!(
            "the token IAM minted (issuer {}) has no `email` claim although it was asked for one; \
             Fulcio certifies a Google service account by its email",
            token.issuer()
        ));
    };
    if account.contains('@') && !email.eq_ignore_ascii_case(account) {
        return Err(format!(
            "the token IAM minted is for {email}, not for --signer-account {account}; \
             images would be signed under an identity verifiers do not expect"
        ));
    }
    Ok(())
}

/// Go kpromo's way: application-default credentials call IAM Credentials `generateIdToken`
/// for `account`.
async fn mint_for_service_account(
    account: &str,
    endpoints: &GoogleEndpoints,
    http: &reqwest::Client,
) -> Result<IdentityToken, Error> {
    let fail = |step, why: String| Error::IdentityToken {
        origin: format!("identity token for service account {account}"),
        step,
        why,
    };
    // The account goes into the URL's path: anything but an email or a numeric ID would
    // change which resource is asked for.
    if account.is_empty() || !account.chars().all(|c| c.is_ascii_alphanumeric() || "@.-_".contains(c)) {
        return Err(fail(
            Step::GenerateIdToken,
            "not a service account email or unique ID".to_string(),
        ));
    }
    let caller = adc::access_token(endpoints, http)
        .await
        .map_err(|failure| match failure {
            adc::Failure::NotFound(looked) => Error::NoGoogleCredentials {
                account: account.to_string(),
                looked,
            },
            adc::Failure::Step(step, why) => fail(step, why),
        })?;
    tracing::debug!("minting an identity token for {account} as {}", caller.who);
    let url = format!(
        "{}/v1/projects/-/serviceAccounts/{account}:generateIdToken",
        endpoints.iam_credentials.trim_end_matches('/')
    );
    let mut request = http
        .post(&url)
        .bearer_auth(caller.access_token.expose_secret())
        .json(&serde_json::json!({"audience": AUDIENCE, "includeEmail": true}));
    if let Some(project) = &caller.quota_project {
        // What Google's libraries send for user credentials: bills and authorises the
        // call against the user's project, not gcloud's own.
        request = request.header("x-goog-user-project", project);
    }
    #[derive(Deserialize)]
    struct Minted {
        token: oidc::SecretString,
    }
    let minted: Minted = send_json(request, &url, &[caller.access_token.expose_secret()])
        .await
        .map_err(|failure| {
            let why = if failure.status == Some(reqwest::StatusCode::FORBIDDEN) {
                format!(
                    "{}; the caller, {}, needs roles/iam.serviceAccountTokenCreator on {account}",
                    failure.why.trim_end_matches('.'),
                    caller.who
                )
            } else {
                failure.why
            };
            fail(Step::GenerateIdToken, why)
        })?;
    let token = IdentityToken::parse(minted.token.expose_secret())
        .map_err(|why| fail(Step::Claims, format!("IAM answered with {why}")))?;
    minted_for(account, &token).map_err(|why| fail(Step::Claims, why))?;
    tracing::debug!(
        identity = token.identity(),
        issuer = token.issuer(),
        "identity token minted by IAM Credentials"
    );
    Ok(token)
}

/// Why an exchange with a token endpoint failed: the answer's status (if one came) and a
/// message without secrets.
struct HttpFailure {
    status: Option<reqwest::StatusCode>,
    why: String,
}

/// Sends `request` to `url` and reads a JSON answer. `secrets` (what the request carried)
/// are cut out of anything quoted from the answer, in case an endpoint echoes them.
async fn send_json<T: DeserializeOwned>(
    request: reqwest::RequestBuilder,
    url: &str,
    secrets: &[&str],
) -> Result<T, HttpFailure> {
    let failed = |status, why: String| HttpFailure {
        status,
        why: format!("{url}: {}", redact(&why, secrets)),
    };
    let response = request
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .map_err(|e| failed(None, SendError::Http(e).to_string()))?;
    let status = response.status();
    let body = read_limited(response, MAX_REPLY, REQUEST_TIMEOUT, &Default::default())
        .await
        .map_err(|e| failed(Some(status), format!("answered {status}, then {}", e.message)))?;
    if !status.is_success() {
        return Err(failed(
            Some(status),
            format!("answered {status}: {}", error_message(&body)),
        ));
    }
    serde_json::from_slice(&body)
        .map_err(|e| failed(Some(status), format!("answered with an unexpected document: {e}")))
}

/// What a Google error answer says: the API error (`{"error": {"status", "message"}}`),
/// the OAuth error (`{"error", "error_description"}`), or the start of whatever else came.
fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum GoogleError {
        Api {
            error: ApiError,
        },
        OAuth {
            error: String,
            error_description: Option<String>,
        },
    }
    #[derive(Deserialize)]
    struct ApiError {
        status: Option<String>,
        message: Option<String>,
    }
    let parts = match serde_json::from_slice::<GoogleError>(body) {
        Ok(GoogleError::Api { error }) => vec![error.status, error.message],
        Ok(GoogleError::OAuth {
            error,
            error_description,
        }) => vec![Some(error), error_description],
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
            vec![Some(line.chars().take(MAX_QUOTE).collect())]
        }
    };
    let said: Vec<String> = parts.into_iter().flatten().filter(|part| !part.is_empty()).collect();
    if said.is_empty() {
        "(no explanation)".to_string()
    } else {
        said.join(": ")
    }
}

/// `text` with every non-empty secret replaced.
fn redact(text: &str, secrets: &[&str]) -> String {
    secrets
        .iter()
        .filter(|secret| !secret.is_empty())
        .fold(text.to_string(), |text, secret| text.replace(secret, "<redacted>"))
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    fn jwt(claims: serde_json::Value) -> String {
        let part = |json: serde_json::Value| URL_SAFE_NO_PAD.encode(json.to_string());
        format!(
            "{}.{}.c2lnbmF0dXJlLW5vdC1jaGVja2Vk",
            part(serde_json::json!({"alg": "RS256", "typ": "JWT"})),
            part(claims)
        )
    }

    fn in_an_hour() -> i64 {
        jiff::Timestamp::now().as_second() + 3600
    }

    /// A client like the one Setup passes in (whose TLS needs a crypto provider).
    pub(super) fn http() -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder().build().expect("client")
    }

    fn token_file(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let path = dir.path().join("token");
        std::fs::write(&path, text).expect("write token file");
        path
    }

    #[test]
    fn claims_give_identity_issuer_and_expiry_and_debug_never_shows_the_jwt() {
        let exp = in_an_hour();
        let text = jwt(serde_json::json!({
            "iss": "https://accounts.google.com", "sub": "1234", "email": "signer@p.iam.gserviceaccount.com",
            "aud": "sigstore", "exp": exp,
        }));
        let token = IdentityToken::parse(&text).expect("a valid JWT");
        assert_eq!(token.identity(), "signer@p.iam.gserviceaccount.com");
        assert_eq!(token.issuer(), "https://accounts.google.com");
        assert_eq!(token.expires_at().as_second(), exp);
        assert_eq!(token.expose_jwt(), text);
        let debug = format!("{token:?}");
        assert!(debug.contains("signer@p.iam.gserviceaccount.com"), "{debug}");
        assert!(
            !debug.contains("c2lnbmF0dXJl") && !debug.contains(&text[..20]),
            "{debug}"
        );
    }

    #[test]
    fn without_email_the_identity_is_the_subject() {
        let text = jwt(serde_json::json!({
            "iss": "https://token.actions.githubusercontent.com",
            "sub": "repo:kubernetes/k8s.io:ref:refs/heads/main", "exp": in_an_hour(),
        }));
        let token = IdentityToken::parse(&text).expect("a valid JWT");
        assert_eq!(token.identity(), "repo:kubernetes/k8s.io:ref:refs/heads/main");
        assert_eq!(token.email(), None);
    }

    #[test]
    fn what_is_not_a_jwt_is_refused_without_quoting_it() {
        for text in ["", "one.two", "a.%%%.c", "eyJhIjoxfQ.eyJhIjoxfQ.sig"] {
            let why = IdentityToken::parse(text).expect_err(text);
            assert!(why.starts_with("not a JWT with `iss`, `sub` and `exp` claims"), "{why}");
        }
        let no_exp = jwt(serde_json::json!({"iss": "i", "sub": "s"}));
        let why = IdentityToken::parse(&no_exp).expect_err("no exp");
        assert!(why.contains("exp"), "{why}");
        assert!(!why.contains("c2lnbmF0dXJl"), "{why}");
    }

    #[tokio::test]
    async fn a_token_file_is_read_again_whenever_the_signer_needs_a_token() {
        use crate::trust::keyless::TokenProvider as _;
        let dir = tempfile::tempdir().expect("temp dir");
        let claims = |sub: &str| serde_json::json!({"iss": "https://ci.example", "sub": sub, "exp": in_an_hour()});
        let path = token_file(&dir, &format!("{}\n", jwt(claims("first"))));
        let tokens = TokenFetcher {
            source: TokenSource::File(path.clone()),
            http: http(),
        };
        assert_eq!(tokens.token().await.expect("first token").identity(), "first");
        std::fs::write(&path, jwt(claims("rotated"))).expect("rotate");
        assert_eq!(tokens.token().await.expect("rotated token").identity(), "rotated");
    }

    #[tokio::test]
    async fn token_file_errors_name_the_file_and_the_step() {
        let dir = tempfile::tempdir().expect("temp dir");
        let http = http();
        let fetch = |path: PathBuf| {
            let http = http.clone();
            async move { TokenSource::File(path).fetch(&http).await.expect_err("must fail") }
        };
        let step_of = |e: &Error| match e {
            Error::IdentityToken { step, .. } => *step,
            other => panic!("not a token error: {other}"),
        };

        let missing = fetch(dir.path().join("absent")).await;
        assert_eq!(step_of(&missing), Step::ReadFile);
        assert!(missing.to_string().starts_with(&format!(
            "identity token file {}: reading the token file: ",
            dir.path().join("absent").display()
        )));

        let expired = jwt(serde_json::json!({"iss": "https://ci.example", "sub": "s", "exp": 1_000_000_000}));
        let stale = fetch(token_file(&dir, &expired)).await;
        assert_eq!(step_of(&stale), Step::Expired);
        assert!(stale.to_string().contains("expired at 2001-09-09T01:46:40Z"), "{stale}");
        assert!(!stale.to_string().contains(&expired), "{stale}");

        let garbage = fetch(token_file(&dir, "not a token")).await;
        assert_eq!(step_of(&garbage), Step::Claims);
        assert!(garbage.to_string().ends_with("(invalid JWT format)"), "{garbage}");

        let huge = fetch(token_file(&dir, &"a".repeat(MAX_SECRET_FILE as usize + 1))).await;
        assert!(
            huge.to_string()
                .ends_with("larger than 64 KiB, too large for a token or credentials file"),
            "{huge}"
        );
    }

    #[tokio::test]
    async fn an_account_that_would_change_the_url_is_refused_before_any_request() {
        let endpoints = GoogleEndpoints {
            iam_credentials: "http://127.0.0.1:9".into(),
            oauth_token: None,
            metadata: "http://127.0.0.1:9".into(),
            credentials_file: None,
            gcloud_file: None,
        };
        let http = http();
        for account in ["", "a/../b@p.iam.gserviceaccount.com", "x?y", "x#y", "x y"] {
            let source = TokenSource::Google {
                account: account.into(),
                endpoints: endpoints.clone(),
            };
            let e = source.fetch(&http).await.expect_err(account);
            assert!(
                e.to_string().ends_with("not a service account email or unique ID"),
                "{e}"
            );
        }
    }

    #[test]
    fn a_minted_token_must_certify_the_account_it_was_asked_for() {
        let token = |claims: serde_json::Value| IdentityToken::parse(&jwt(claims)).expect("token");
        let with_email = |email: &str| {
            token(
                serde_json::json!({"iss": "https://accounts.google.com", "sub": "1", "email": email, "exp": in_an_hour()}),
            )
        };
        let account = "signer@p.iam.gserviceaccount.com";
        assert_eq!(minted_for(account, &with_email(account)), Ok(()));
        assert_eq!(
            minted_for(account, &with_email("Signer@P.iam.gserviceaccount.com")),
            Ok(())
        );
        assert_eq!(minted_for("1234567890", &with_email(account)), Ok(()));
        let other = minted_for(account, &with_email("other@p.iam.gserviceaccount.com")).expect_err("other account");
        assert!(
            other.contains("is for other@p.iam.gserviceaccount.com, not for --signer-account"),
            "{other}"
        );
        let no_email =
            token(serde_json::json!({"iss": "https://accounts.google.com", "sub": "1", "exp": in_an_hour()}));
        assert!(
            minted_for(account, &no_email)
                .expect_err("no email")
                .contains("no `email` claim")
        );
    }

    #[test]
    fn google_error_answers_are_summarised() {
        let api = br#"{"error":{"code":403,"message":"Permission 'iam.serviceAccounts.getOpenIdToken' denied","status":"PERMISSION_DENIED"}}"#;
        assert_eq!(
            error_message(api),
            "PERMISSION_DENIED: Permission 'iam.serviceAccounts.getOpenIdToken' denied"
        );
        let oauth = br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#;
        assert_eq!(error_message(oauth), "invalid_grant: Invalid JWT Signature.");
        let html = format!("<html>\n  <body>{}</body></html>", "x".repeat(500));
        let quoted = error_message(html.as_bytes());
        assert!(
            quoted.starts_with("<html> <body>xxx") && quoted.chars().count() == MAX_QUOTE,
            "{quoted}"
        );
        assert_eq!(error_message(b""), "(no explanation)");
    }

    #[test]
    fn redaction_removes_every_secret() {
        assert_eq!(
            redact("refresh r3fr3sh with s3cr3t, again r3fr3sh", &["r3fr3sh", "s3cr3t", ""]),
            "refresh <redacted> with <redacted>, again <redacted>"
        );
    }
}
