//! Registry authentication: `WWW-Authenticate` challenges, Basic, and the Docker token flow.
//!
//! The first 401 (or the ping) teaches the registry's challenge. From then on every request
//! carries credentials up front: Basic, or a bearer token for the exact set of scopes the
//! request needs (a cross-repository mount needs `pull` on the source and `pull,push` on the
//! destination in one token). Tokens are cached per scope set until shortly before they
//! expire. Secrets live in [`Secret`], whose `Debug` redacts.
use crate::sync::lock;
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::OnceCell;

use super::credentials::{self, Credential};
use super::transport;
use crate::registry::Error;
use crate::registry::reference::is_loopback;

/// Lifetime assumed for a token whose answer has no `expires_in` (the spec's default).
const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(60);
/// Tokens are renewed this long before they expire, so none expires in flight.
const EXPIRY_MARGIN: Duration = Duration::from_secs(10);
const TOKEN_BODY_LIMIT: usize = 1 << 20;

/// A string that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(pub(crate) String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// What a registry asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        /// Scopes the registry says this request needs (space-separated in the header).
        scopes: Vec<String>,
    },
}

/// Picks the challenge to answer from a `WWW-Authenticate` value: Bearer over Basic;
/// unknown schemes are ignored.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let parsed = http_auth::parse_challenges(header).ok()?;
    let mut basic = false;
    for challenge in &parsed {
        if challenge.scheme.eq_ignore_ascii_case("bearer") {
            let param = |name: &str| {
                challenge
                    .params
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.to_unescaped())
            };
            let realm = param("realm")?;
            return Some(Challenge::Bearer {
                realm,
                service: param("service"),
                scopes: param("scope")
                    .map(|s| s.split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect())
                    .unwrap_or_default(),
            });
        }
        basic |= challenge.scheme.eq_ignore_ascii_case("basic");
    }
    basic.then_some(Challenge::Basic)
}

/// The `Authorization` to put on a request.
#[derive(Debug, Clone)]
pub(crate) enum Authorization {
    Basic { username: String, password: Secret },
    Bearer(Secret),
}

impl Authorization {
    pub(crate) fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        // reqwest marks both headers sensitive, so they never appear in its Debug output.
        match self {
            Authorization::Basic { username, password } => request.basic_auth(username, Some(&password.0)),
            Authorization::Bearer(token) => request.bearer_auth(&token.0),
        }
    }
}

#[derive(Debug)]
struct CachedToken {
    token: Secret,
    expires: Instant,
}

/// The auth state of one registry host.
#[derive(Debug)]
pub(crate) struct Auth {
    registry: String,
    config_dir: Option<PathBuf>,
    /// `--insecure-registry` hosts: with loopback hosts, the only places a token realm
    /// may be reached over plain HTTP (see [`realm_refusal`]).
    insecure: Vec<String>,
    credential: OnceCell<Result<Option<Credential>, String>>,
    challenge: Mutex<Option<Challenge>>,
    tokens: Mutex<HashMap<String, CachedToken>>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl Auth {
    pub(crate) fn new(registry: &str, config_dir: Option<PathBuf>, insecure: &[String]) -> Self {
        Self {
            registry: registry.to_string(),
            config_dir,
            insecure: insecure.to_vec(),
            credential: OnceCell::new(),
            challenge: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    async fn credential(&self) -> Result<Option<Credential>, Error> {
        self.credential
            .get_or_init(|| credentials::lookup(self.config_dir.clone(), self.registry.clone()))
            .await
            .clone()
            .map_err(|message| self.unauthorized(0, message))
    }

    /// Whether a credential was found for this host (`false` also before any lookup).
    pub(crate) fn has_credential(&self) -> bool {
        matches!(self.credential.get(), Some(Ok(Some(_))))
    }

    fn challenge(&self) -> Option<Challenge> {
        lock(&self.challenge).clone()
    }

    /// Records the challenge of a 401 and returns the scopes to ask for on the retry: ours
    /// plus any the registry named. Drops the cached token for those scopes. `None` when
    /// the 401 carries no challenge kpromo can answer (retrying would not help).
    pub(crate) fn learn(&self, header: Option<&str>, scopes: &[String]) -> Option<Vec<String>> {
        let challenge = header.and_then(parse_challenge)?;
        let mut wanted = scopes.to_vec();
        if let Challenge::Bearer { scopes: asked, .. } = &challenge {
            for s in asked {
                if !wanted.contains(s) {
                    wanted.push(s.clone());
                }
            }
        }
        *lock(&self.challenge) = Some(challenge);
        let mut tokens = lock(&self.tokens);
        tokens.remove(&scope_key(scopes));
        tokens.remove(&scope_key(&wanted));
        Some(wanted)
    }

    /// The authorization for a request to `target` needing `scopes`, fetching a token if
    /// needed. `None` until the registry has challenged (anonymous registries never do).
    pub(crate) async fn authorization(
        &self,
        http: &reqwest::Client,
        target: &url::Url,
        scopes: &[String],
        timeouts: (Duration, Duration),
        read: &AtomicU64,
    ) -> Result<Option<Authorization>, Error> {
        let Some(challenge) = self.challenge() else {
            return Ok(None);
        };
        match challenge {
            Challenge::Basic => match self.credential().await? {
                Some(Credential::Basic { username, password }) => Ok(Some(Authorization::Basic {
                    username,
                    password: Secret(password),
                })),
                Some(Credential::IdentityToken(_)) => Err(self.unauthorized(
                    401,
                    "the registry wants Basic auth but the docker config holds only an identity token".into(),
                )),
                None => Ok(None),
            },
            Challenge::Bearer { realm, service, .. } => {
                // First of all, the docker config included: nothing goes to a realm that
                // breaks the rule, with credentials or without.
                let realm = self.realm_url(&realm, target)?;
                let key = scope_key(scopes);
                if let Some(cached) = lock(&self.tokens).get(&key)
                    && cached.expires > Instant::now()
                {
                    return Ok(Some(Authorization::Bearer(cached.token.clone())));
                }
                let credential = self.credential().await?;
                let (token, ttl) = self
                    .fetch_token(
                        http,
                        &realm,
                        service.as_deref(),
                        scopes,
                        credential.as_ref(),
                        timeouts,
                        read,
                    )
                    .await?;
                let expires = Instant::now() + ttl.saturating_sub(EXPIRY_MARGIN).max(Duration::from_secs(1));
                lock(&self.tokens).insert(
                    key,
                    CachedToken {
                        token: token.clone(),
                        expires,
                    },
                );
                Ok(Some(Authorization::Bearer(token)))
            }
        }
    }

    /// The realm as a URL, if credentials (and token requests) may go there for a
    /// request to `target`; else the refusal, naming registry and realm.
    fn realm_url(&self, realm: &str, target: &url::Url) -> Result<url::Url, Error> {
        let refused = |reason: String| Error::InsecureRealm {
            registry: self.registry.clone(),
            operation: "authenticate".into(),
            realm: realm.to_string(),
            reason,
        };
        let url = url::Url::parse(realm).map_err(|e| refused(format!("not a URL: {e}")))?;
        let plain_allowed = |host: &str| is_loopback(host) || self.insecure.iter().any(|h| h == host);
        match realm_refusal(&url, target.scheme() == "https", plain_allowed) {
            Some(reason) => Err(refused(reason)),
            None => Ok(url),
        }
    }

    fn unauthorized(&self, status: u16, message: String) -> Error {
        Error::Unauthorized {
            registry: self.registry.clone(),
            operation: "authenticate".into(),
            status,
            message,
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn fetch_token(
        &self,
        http: &reqwest::Client,
        realm_url: &url::Url,
        service: Option<&str>,
        scopes: &[String],
        credential: Option<&Credential>,
        (first_byte, idle): (Duration, Duration),
        read: &AtomicU64,
    ) -> Result<(Secret, Duration), Error> {
        let realm = realm_url.as_str();
        let mut last_error = String::new();
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
            }
            let request = match credential {
                // OAuth2 refresh-token grant: identity tokens only work this way.
                Some(Credential::IdentityToken(refresh)) => {
                    let mut form = url::form_urlencoded::Serializer::new(String::new());
                    form.append_pair("grant_type", "refresh_token")
                        .append_pair("refresh_token", refresh)
                        .append_pair("client_id", "kpromo");
                    if let Some(s) = service {
                        form.append_pair("service", s);
                    }
                    if !scopes.is_empty() {
                        form.append_pair("scope", &scopes.join(" "));
                    }
                    http.post(realm_url.clone())
                        .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                        .body(form.finish())
                }
                _ => {
                    let mut url = realm_url.clone();
                    {
                        let mut query = url.query_pairs_mut();
                        if let Some(s) = service {
                            query.append_pair("service", s);
                        }
                        for s in scopes {
                            query.append_pair("scope", s);
                        }
                    }
                    let request = http.get(url);
                    match credential {
                        Some(Credential::Basic { username, password }) => request.basic_auth(username, Some(password)),
                        _ => request,
                    }
                }
            };
            let response = match transport::execute(request, &transport::Progress::sent(), || first_byte, idle).await {
                Ok(r) => r,
                Err(e) => {
                    last_error = e.to_string();
                    continue;
                }
            };
            let status = response.status();
            let body = transport::read_limited(response, TOKEN_BODY_LIMIT, idle, read).await;
            if status.is_success() {
                let body = match body {
                    Ok(b) => b,
                    Err(e) => {
                        last_error = e.message;
                        continue;
                    }
                };
                let answer: TokenAnswer = serde_json::from_slice(&body)
                    .map_err(|e| self.unauthorized(status.as_u16(), format!("token server answer is not JSON: {e}")))?;
                let token = answer
                    .token
                    .filter(|t| !t.is_empty())
                    .or(answer.access_token)
                    .ok_or_else(|| self.unauthorized(status.as_u16(), "token server answer has no token".into()))?;
                let ttl = answer.expires_in.map_or(DEFAULT_TOKEN_TTL, Duration::from_secs);
                return Ok((Secret(token), ttl));
            }
            // A token server may echo what it was sent; never put its body into an error.
            last_error = format!("token server {realm} answered HTTP {status}");
            if !(status.is_server_error() || status.as_u16() == 429) {
                return Err(self.unauthorized(status.as_u16(), last_error));
            }
        }
        Err(self.unauthorized(0, last_error))
    }
}

/// Why credentials may not go to the token realm `realm` for a registry reached over
/// TLS (`registry_tls`) or not; `None` when they may. The rule: a realm is HTTPS, unless
/// the registry itself is reached over plain HTTP (a loopback or `--insecure-registry`
/// host without TLS) and the realm's host is one that may be reached over plain HTTP too
/// (`plain_allowed`: loopback or `--insecure-registry`). So a registry behind a verified
/// certificate never sends its Basic credentials or identity token in the clear, and a
/// plain local registry never sends them in the clear to another machine.
pub(crate) fn realm_refusal(
    realm: &url::Url,
    registry_tls: bool,
    plain_allowed: impl Fn(&str) -> bool,
) -> Option<String> {
    if !realm.username().is_empty() || realm.password().is_some() {
        return Some("a token realm carries no user info; credentials come from the docker config".into());
    }
    match realm.scheme() {
        "https" => None,
        "http" if registry_tls => Some(
            "the registry is reached over HTTPS but its token realm is plain HTTP: credentials would \
             travel in the clear"
                .into(),
        ),
        "http" => {
            let host = match (realm.host_str(), realm.port()) {
                (Some(host), Some(port)) => format!("{host}:{port}"),
                (Some(host), None) => host.to_string(),
                (None, _) => return Some("a token realm names a host".into()),
            };
            (!plain_allowed(&host)).then(|| {
                format!(
                    "a plain-HTTP token realm must be on a loopback host or one given with \
                     --insecure-registry, and {host} is neither"
                )
            })
        }
        other => Some(format!("a token realm is an https:// URL, not {other}:")),
    }
}

/// The cache key of a scope set: order and duplicates do not matter.
fn scope_key(scopes: &[String]) -> String {
    let mut sorted: Vec<&str> = scopes.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    sorted.join(" ")
}

/// `repository:<repo>:pull` or `:pull,push`.
pub(crate) fn repo_scope(repo: &str, push: bool) -> String {
    format!("repository:{repo}:{}", if push { "pull,push" } else { "pull" })
}

/// The token scope a manifest DELETE needs (distribution asks for the `delete` action).
pub(crate) fn repo_delete_scope(repo: &str) -> String {
    format!("repository:{repo}:delete")
}

pub(crate) const CATALOG_SCOPE: &str = "registry:catalog:*";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_with_scopes_and_prefers_it_over_basic() {
        let c = parse_challenge(
            r#"Basic realm="x", Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a:pull,push repository:b:pull""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scopes: vec!["repository:a:pull,push".into(), "repository:b:pull".into()],
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="testbed-basic""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge(r#"Negotiate abc"#), None);
        // Bearer without a realm cannot be answered.
        assert_eq!(parse_challenge(r#"Bearer service="x""#), None);
    }

    /// The token realm rule, case by case: (realm, registry over TLS, refused because).
    #[test]
    fn credentials_go_to_a_realm_only_over_tls_or_between_plain_local_hosts() {
        let plain_allowed = |host: &str| is_loopback(host) || host == "insecure.example:5000";
        let cases: [(&str, bool, Option<&str>); 10] = [
            ("https://auth.example/token", true, None),
            ("https://auth.example/token", false, None),
            ("http://127.0.0.1:5001/token", false, None),
            ("http://insecure.example:5000/token", false, None),
            (
                "http://127.0.0.1:5001/token",
                true,
                Some("the registry is reached over HTTPS"),
            ),
            (
                "http://auth.example/token",
                true,
                Some("the registry is reached over HTTPS"),
            ),
            ("http://auth.example/token", false, Some("auth.example is neither")),
            (
                "http://insecure.example:5001/token",
                false,
                Some("insecure.example:5001 is neither"),
            ),
            ("https://u:p@auth.example/token", true, Some("carries no user info")),
            ("ftp://auth.example/token", true, Some("not ftp:")),
        ];
        for (realm, tls, refused) in cases {
            let url = url::Url::parse(realm).unwrap();
            let got = realm_refusal(&url, tls, plain_allowed);
            match (refused, got) {
                (None, None) => {}
                (Some(want), Some(got)) => assert!(got.contains(want), "{realm} (TLS {tls}): {got}"),
                (want, got) => panic!("{realm} (TLS {tls}): expected {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn scope_keys_ignore_order() {
        let a = vec![repo_scope("x", true), repo_scope("y", false)];
        let b = vec![repo_scope("y", false), repo_scope("x", true), repo_scope("x", true)];
        assert_eq!(scope_key(&a), scope_key(&b));
    }

    #[test]
    fn learning_a_challenge_adds_its_scopes() {
        let auth = Auth::new("r", None, &[]);
        let ours = vec![repo_scope("a", true)];
        let wanted = auth.learn(
            Some(r#"Bearer realm="http://127.0.0.1:1/t",scope="repository:a:pull,push repository:b:pull""#),
            &ours,
        );
        assert_eq!(
            wanted,
            Some(vec![
                "repository:a:pull,push".to_string(),
                "repository:b:pull".to_string()
            ])
        );
        assert!(matches!(auth.challenge(), Some(Challenge::Bearer { .. })));
        assert_eq!(auth.learn(None, &ours), None);
    }

    #[test]
    fn authorization_debug_redacts() {
        let a = Authorization::Basic {
            username: "u".into(),
            password: Secret("pw-xyz".into()),
        };
        let b = Authorization::Bearer(Secret("tok-xyz".into()));
        let shown = format!("{a:?}{b:?}");
        assert!(!shown.contains("xyz"), "{shown}");
    }
}
