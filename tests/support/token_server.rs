//! A minimal registry token server (Docker registry v2 token auth, as CNCF distribution's
//! `auth.token` expects): `GET /token?service=&scope=` with optional Basic credentials, and
//! the OAuth2 `POST /token` form (`grant_type=password|refresh_token`). Tokens are ES256
//! JWTs carrying the signing certificate in `x5c`. No packaged token server exists in
//! Debian, hence this one.
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http_body_util::BodyExt;
use hyper::{Method, Request};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::json;

use super::http_server::{Server, json};
use super::pki::TokenKey;

pub const ISSUER: &str = "kpromo-test-issuer";
pub const SERVICE: &str = "kpromo-test-registry";

struct State {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    x5c: String,
    users: HashMap<String, String>,
    ttl_secs: u64,
    refresh_tokens: Mutex<HashMap<String, String>>,
    issued: AtomicU64,
    /// Every request that reached the server, answered or not.
    requests: AtomicU64,
    /// Token requests still to be answered 503 (a flaky auth service).
    fail_next: AtomicU64,
    /// Every token handed out, so tests can prove none of them reached a log line.
    tokens: Mutex<Vec<String>>,
}

/// The running token server; stops on drop.
#[derive(Debug)]
pub struct TokenServer {
    server: Server,
    state: Arc<State>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").field("users", &self.users.keys()).finish()
    }
}

impl TokenServer {
    /// Anonymous callers get `pull` only; named users get what they ask for.
    pub fn start(key: &TokenKey, users: &[(&str, &str)], ttl_secs: u64) -> TokenServer {
        let key_pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &key.pkcs8_der, &SystemRandom::new())
            .expect("load the token signing key (PKCS#8 P-256 from openssl)");
        let state = Arc::new(State {
            key: key_pair,
            rng: SystemRandom::new(),
            x5c: STANDARD.encode(&key.cert_der),
            users: users.iter().map(|(u, p)| (u.to_string(), p.to_string())).collect(),
            ttl_secs,
            refresh_tokens: Mutex::new(HashMap::new()),
            issued: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            fail_next: AtomicU64::new(0),
            tokens: Mutex::new(Vec::new()),
        });
        let shared = state.clone();
        let server = Server::start("token-server", move |req, _conn| {
            let state = shared.clone();
            async move { handle(&state, req).await }
        });
        TokenServer { server, state }
    }

    /// The `realm` to put in the registry config.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.server.addr)
    }

    pub fn issued(&self) -> u64 {
        self.state.issued.load(Ordering::Relaxed)
    }

    /// Requests that reached the server at all (a refused realm gets none).
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// Answers the next `n` token requests with 503, like an auth service having a bad moment.
    pub fn fail_next(&self, n: u64) {
        self.state.fail_next.store(n, Ordering::Relaxed);
    }

    /// Every token (and refresh token) issued so far.
    pub fn tokens(&self) -> Vec<String> {
        self.state.tokens.lock().expect("token list lock").clone()
    }
}

async fn handle(
    state: &State,
    req: Request<hyper::body::Incoming>,
) -> Result<hyper::Response<super::http_server::Body>, super::http_server::BoxError> {
    state.requests.fetch_add(1, Ordering::Relaxed);
    if req.uri().path() != "/token" {
        return json(404, &json!({"error": "not found"}));
    }
    let failing = state
        .fail_next
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    if failing.is_ok() {
        return json(
            503,
            &json!({"errors": [{"code": "UNAVAILABLE", "message": "injected token server failure"}]}),
        );
    }
    match *req.method() {
        Method::GET => {
            let query: HashMap<String, Vec<String>> = pairs(req.uri().query().unwrap_or(""));
            let user = match basic_user(state, &req) {
                Ok(user) => user,
                Err(()) => return refuse(401, "bad credentials"),
            };
            let service = first(&query, "service");
            let scopes = query.get("scope").cloned().unwrap_or_default();
            issue(state, user, &service, &scopes, None)
        }
        Method::POST => {
            let body = req.into_body().collect().await?.to_bytes();
            let form = pairs(std::str::from_utf8(&body).unwrap_or(""));
            let user = match first(&form, "grant_type").as_str() {
                "password" => {
                    let user = first(&form, "username");
                    if state.users.get(&user) != Some(&first(&form, "password")) {
                        return refuse(401, "invalid_grant");
                    }
                    user
                }
                "refresh_token" => {
                    let known = state
                        .refresh_tokens
                        .lock()
                        .expect("refresh lock")
                        .get(&first(&form, "refresh_token"))
                        .cloned();
                    match known {
                        Some(user) => user,
                        None => return refuse(401, "invalid_grant"),
                    }
                }
                _ => return refuse(400, "unsupported_grant_type"),
            };
            let refresh = random_hex(state, 16);
            state
                .refresh_tokens
                .lock()
                .expect("refresh lock")
                .insert(refresh.clone(), user.clone());
            let scopes: Vec<String> = first(&form, "scope").split(' ').map(str::to_string).collect();
            issue(state, Some(user), &first(&form, "service"), &scopes, Some(refresh))
        }
        _ => json(405, &json!({"error": "method not allowed"})),
    }
}

fn issue(
    state: &State,
    user: Option<String>,
    service: &str,
    scopes: &[String],
    refresh: Option<String>,
) -> Result<hyper::Response<super::http_server::Body>, super::http_server::BoxError> {
    if service != SERVICE {
        return refuse(400, "unknown service");
    }
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .flat_map(|s| s.split(' '))
        .filter_map(parse_scope)
        .map(|(kind, name, actions)| {
            let granted: Vec<&str> = actions
                .iter()
                .copied()
                .filter(|a| {
                    if user.is_some() {
                        ["pull", "push", "delete", "*"].contains(a)
                    } else {
                        *a == "pull"
                    }
                })
                .collect();
            json!({"type": kind, "name": name, "actions": granted})
        })
        .collect();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let claims = json!({
        "iss": ISSUER, "sub": user.clone().unwrap_or_default(), "aud": SERVICE,
        "exp": now + state.ttl_secs, "nbf": now - 5, "iat": now,
        "jti": random_hex(state, 12), "access": access,
    });
    let header = json!({"typ": "JWT", "alg": "ES256", "x5c": [state.x5c]});
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = state
        .key
        .sign(&state.rng, signing_input.as_bytes())
        .map_err(|_| "ES256 signing failed")?;
    let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()));
    state.issued.fetch_add(1, Ordering::Relaxed);
    let mut remembered = state.tokens.lock().expect("token list lock");
    remembered.push(token.clone());
    let mut body = json!({"token": token, "access_token": token, "expires_in": state.ttl_secs});
    if let Some(refresh) = refresh {
        remembered.push(refresh.clone());
        body["refresh_token"] = json!(refresh);
    }
    json(200, &body)
}

fn refuse(status: u16, why: &str) -> Result<hyper::Response<super::http_server::Body>, super::http_server::BoxError> {
    json(status, &json!({"errors": [{"code": "UNAUTHORIZED", "message": why}]}))
}

/// `Ok(None)` for anonymous, `Ok(Some(user))` for valid Basic credentials, `Err` otherwise.
fn basic_user(state: &State, req: &Request<hyper::body::Incoming>) -> Result<Option<String>, ()> {
    let Some(value) = req.headers().get("authorization") else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ())?;
    let encoded = value.strip_prefix("Basic ").ok_or(())?;
    let decoded = String::from_utf8(STANDARD.decode(encoded).map_err(|_| ())?).map_err(|_| ())?;
    let (user, password) = decoded.split_once(':').ok_or(())?;
    match state.users.get(user) {
        Some(expected) if expected == password => Ok(Some(user.to_string())),
        _ => Err(()),
    }
}

/// `repository:a/b:pull,push` → (type, name, actions).
fn parse_scope(scope: &str) -> Option<(&str, &str, Vec<&str>)> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    Some((kind, name, actions.split(',').filter(|a| !a.is_empty()).collect()))
}

fn pairs(encoded: &str) -> HashMap<String, Vec<String>> {
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(encoded.as_bytes()) {
        map.entry(k.into_owned()).or_default().push(v.into_owned());
    }
    map
}

fn first(map: &HashMap<String, Vec<String>>, key: &str) -> String {
    map.get(key).and_then(|v| v.first()).cloned().unwrap_or_default()
}

fn random_hex(state: &State, bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    ring::rand::SecureRandom::fill(&state.rng, &mut buf).expect("system randomness");
    hex::encode(buf)
}
