//! A fault-injecting reverse proxy in front of a registry: statuses (429 with Retry-After,
//! 5xx), connection resets, truncated, slow or corrupted bodies, connections that hang
//! (accept, then silence), deterministic fail-first-N, a seeded random fraction of
//! requests, a per-window quota (N requests per window, then the fault until the window
//! ends), and tags-list pagination (distribution 2.8 ignores `n`/`last`, real registries
//! don't).
//!
//! Requests are forwarded untouched: repeated headers (several `Accept` lines) stay
//! separate and `Host` is kept, so the registry's `Location` URLs point back here.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use regex::Regex;

use super::http_server::{Body, BoxError, Conn, Server, full, json};

/// What to do to a matching request.
#[derive(Debug, Clone)]
pub enum Action {
    /// Answer this status without forwarding; 429 and 503 carry `Retry-After` when given.
    Status { status: u16, retry_after: Option<u32> },
    /// Wait, then answer this status without forwarding: a burst of requests is all in
    /// flight before the first answer comes back, however loaded the machine.
    StatusAfter { status: u16, after: Duration },
    /// Close the connection with a TCP RST before any response byte.
    Reset,
    /// Forward, then send only the first half of the response body and reset.
    Truncate,
    /// Forward, throttling the response body to this many bytes per second.
    Slow { bytes_per_sec: u64 },
    /// Forward, flipping one bit in the middle of the response body's first chunk (the
    /// headers, `Docker-Content-Digest` included, are untouched): a digest mismatch.
    FlipByte,
    /// Wait, then forward.
    Delay(Duration),
    /// Forward, answering with this `Content-Type` instead of the registry's (a lie about
    /// what the body is).
    ContentType(&'static str),
    /// Accept the request, then neither read it nor answer: the connection stays silent
    /// until the client gives up on it.
    Hang,
    /// Hold the request until another of the same `METHOD path` arrives (a client's second
    /// copy of a slow request), then forward it: both copies reach the registry, whichever
    /// answer the client then takes.
    HoldForNext,
    /// Answer this status, `Content-Type` and body without forwarding (a registry that
    /// answers garbage).
    Answer {
        status: u16,
        content_type: &'static str,
        body: &'static str,
    },
}

/// How often a rule fires among the requests it matches.
#[derive(Debug, Clone, Copy)]
pub enum Times {
    Always,
    /// The first N attempts of each distinct `METHOD path`, then never: retries converge.
    FirstPerRequest(u32),
    /// The first N matching requests in total.
    First(u32),
    /// Each matching request with this probability, drawn from a generator seeded with
    /// `seed` (the same run of faults every time).
    Random {
        probability: f64,
        seed: u64,
    },
    /// A quota: `allowed` matching requests pass in each `window` (counted from the
    /// first), then the rule fires until the window ends.
    Quota {
        allowed: u32,
        window: Duration,
    },
}

/// A fault: requests whose method matches (if set) and whose path matches `path`.
#[derive(Debug, Clone)]
pub struct Rule {
    pub method: Option<String>,
    pub path: Regex,
    pub action: Action,
    pub times: Times,
}

impl Rule {
    /// `path` is a regular expression on the URL path (not the query).
    pub fn new(method: Option<&str>, path: &str, action: Action, times: Times) -> Rule {
        Rule {
            method: method.map(str::to_string),
            path: Regex::new(path).expect("valid fault rule path regex"),
            action,
            times,
        }
    }
}

/// One request seen by the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// The status sent back (`None` for resets).
    pub status: Option<u16>,
    /// Which fault fired, if any.
    pub fault: Option<String>,
    /// Whether the registry got it (rather than a fault answering in its place).
    pub forwarded: bool,
    pub at: std::time::Instant,
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<Rule>,
    /// Matches per rule, and per (rule, "METHOD path") for `FirstPerRequest`.
    fired: HashMap<usize, u32>,
    per_request: HashMap<(usize, String), u32>,
    /// Requests seen per "METHOD path", faulted or not (what `HoldForNext` waits on).
    arrivals: HashMap<String, u32>,
    /// Per rule: the generator state of `Random`, the window of `Quota`.
    random: HashMap<usize, u64>,
    windows: HashMap<usize, (std::time::Instant, u32)>,
    paginate_tags: Option<usize>,
    seen: Vec<Seen>,
}

/// The running proxy; stops on drop.
#[derive(Debug)]
pub struct FaultProxy {
    server: Server,
    state: Arc<Mutex<State>>,
}

impl FaultProxy {
    /// Proxies a new 127.0.0.1 port to `127.0.0.1:upstream_port` (plain HTTP).
    pub fn start(upstream_port: u16) -> FaultProxy {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let server = Server::start("fault-proxy", move |req, conn| {
            let state = shared.clone();
            async move { handle(state, upstream_port, req, conn).await }
        });
        FaultProxy { server, state }
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// `127.0.0.1:PORT`: the registry name to hand to the client under test.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port())
    }

    /// Replaces the fault rules (first matching rule that fires wins) and their counters.
    pub fn set_rules(&self, rules: Vec<Rule>) {
        let mut state = self.state.lock().expect("proxy state lock");
        state.rules = rules;
        state.fired.clear();
        state.per_request.clear();
        state.random.clear();
        state.windows.clear();
    }

    /// Serves `GET /v2/<name>/tags/list` sorted and paginated, at most `page` tags per
    /// page (fewer if the client asks with `n`), with a `Link: <…>; rel="next"` header.
    pub fn paginate_tags(&self, page: Option<usize>) {
        self.state.lock().expect("proxy state lock").paginate_tags = page;
    }

    /// Every request seen so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().expect("proxy state lock").seen.clone()
    }

    /// Requests whose method is `method` and whose path matches the regex `path`.
    pub fn count(&self, method: &str, path: &str) -> usize {
        let path = Regex::new(path).expect("valid path regex");
        self.seen()
            .iter()
            .filter(|s| s.method == method && path.is_match(&s.path))
            .count()
    }

    /// Requests that got a fault injected.
    pub fn faults(&self) -> usize {
        self.seen().iter().filter(|s| s.fault.is_some()).count()
    }

    /// Requests the registry got (not answered by a fault instead), and when.
    pub fn forwarded(&self) -> Vec<std::time::Instant> {
        self.seen().iter().filter(|s| s.forwarded).map(|s| s.at).collect()
    }

    pub fn clear_seen(&self) {
        self.state.lock().expect("proxy state lock").seen.clear();
    }
}

/// Picks the fault for this request, if any, and updates the counters.
fn choose(state: &mut State, method: &str, path: &str) -> Option<Action> {
    let key = format!("{method} {path}");
    for (i, rule) in state.rules.iter().enumerate() {
        if rule.method.as_deref().is_some_and(|m| m != method) || !rule.path.is_match(path) {
            continue;
        }
        let total = state.fired.entry(i).or_insert(0);
        *total += 1;
        let fires = match rule.times {
            Times::Always => true,
            Times::First(n) => *total <= n,
            Times::FirstPerRequest(n) => {
                let attempts = state.per_request.entry((i, key.clone())).or_insert(0);
                *attempts += 1;
                *attempts <= n
            }
            Times::Random { probability, seed } => {
                let x = state.random.entry(i).or_insert(seed);
                *x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((*x >> 11) as f64 / (1u64 << 53) as f64) < probability
            }
            Times::Quota { allowed, window } => {
                let now = std::time::Instant::now();
                let (start, passed) = state.windows.entry(i).or_insert((now, 0));
                if now.duration_since(*start) >= window {
                    *start = now;
                    *passed = 0;
                }
                if *passed < allowed {
                    *passed += 1;
                    false
                } else {
                    true
                }
            }
        };
        if fires {
            return Some(rule.action.clone());
        }
    }
    None
}

async fn handle(
    state: Arc<Mutex<State>>,
    upstream: u16,
    req: Request<Incoming>,
    conn: Conn,
) -> Result<Response<Body>, BoxError> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let key = format!("{method} {path}");
    let (action, paginate, arrived) = {
        let mut state = state.lock().expect("proxy state lock");
        let arrived = *state.arrivals.entry(key.clone()).and_modify(|n| *n += 1).or_insert(1);
        (choose(&mut state, &method, &path), state.paginate_tags, arrived)
    };
    let record = |status: Option<u16>, fault: Option<&Action>, forwarded: bool| {
        state.lock().expect("proxy state lock").seen.push(Seen {
            method: method.clone(),
            path: path.clone(),
            query: query.clone(),
            status,
            fault: fault.map(|a| format!("{a:?}")),
            forwarded,
            at: std::time::Instant::now(),
        });
    };
    let answer = match &action {
        Some(Action::Status { status, retry_after }) => Some((*status, *retry_after)),
        Some(Action::StatusAfter { status, after }) => {
            tokio::time::sleep(*after).await;
            Some((*status, None))
        }
        _ => None,
    };
    if let Some((status, retry_after)) = answer {
        // Read the body first so the client gets the answer, not a broken pipe.
        let _ = req.into_body().collect().await;
        record(Some(status), action.as_ref(), false);
        let mut response = json(
            status,
            &serde_json::json!({"errors": [{"code": "INJECTED", "message": "injected by the test fault proxy"}]}),
        )?;
        if let Some(seconds) = retry_after {
            response.headers_mut().insert("retry-after", HeaderValue::from(seconds));
        }
        return Ok(response);
    }
    if let Some(Action::Answer {
        status,
        content_type,
        body,
    }) = &action
    {
        let _ = req.into_body().collect().await;
        record(Some(*status), action.as_ref(), false);
        return Ok(Response::builder()
            .status(*status)
            .header("content-type", *content_type)
            .body(full(Bytes::from_static(body.as_bytes())))?);
    }
    match &action {
        Some(Action::Reset) => {
            record(None, action.as_ref(), false);
            conn.arm_reset();
            return Err("injected connection reset".into());
        }
        Some(Action::Hang) => {
            record(None, action.as_ref(), false);
            // Hyper drops this future when the client closes the connection.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return Err("injected hang".into());
        }
        Some(Action::Delay(pause)) => tokio::time::sleep(*pause).await,
        Some(Action::HoldForNext) => {
            // Polled: a hold is rare and short, and the state is a plain mutex.
            let next_arrived = || state.lock().expect("proxy state lock").arrivals.get(&key) > Some(&arrived);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while !next_arrived() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        _ => {}
    }
    let tags_list = path.strip_suffix("/tags/list").and_then(|p| p.strip_prefix("/v2/"));
    if let (Some(page), Some(name), "GET") = (paginate, tags_list, method.as_str()) {
        let response = paginated_tags(upstream, req, name, page).await?;
        record(Some(response.status().as_u16()), None, true);
        return Ok(response);
    }
    // An upstream that is down (stopped registry) answers 502, as a load balancer would.
    let response = match forward(upstream, req).await {
        Ok(response) => response,
        Err(e) => {
            record(Some(502), action.as_ref(), false);
            return json(
                502,
                &serde_json::json!({"errors": [{"code": "UNAVAILABLE", "message": format!("upstream: {e}")}]}),
            );
        }
    };
    record(Some(response.status().as_u16()), action.as_ref(), true);
    let (mut parts, body) = response.into_parts();
    if let Some(Action::ContentType(lie)) = &action {
        parts.headers.insert("content-type", HeaderValue::from_static(lie));
    }
    let has_body = parts.status.is_success() && method != "HEAD";
    let body = match (&action, has_body) {
        (Some(Action::Truncate), true) => {
            let length = content_length(&parts.headers).unwrap_or(0);
            truncate(body, length / 2, conn)
        }
        (Some(Action::Slow { bytes_per_sec }), true) => slow(body, *bytes_per_sec),
        (Some(Action::FlipByte), true) => flip(body),
        _ => body.map_err(|e| Box::new(e) as BoxError).boxed_unsync(),
    };
    Ok(Response::from_parts(parts, body))
}

const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "upgrade",
];

/// Sends the request upstream on a fresh connection, headers as received (minus hop-by-hop).
async fn forward(upstream: u16, req: Request<Incoming>) -> Result<Response<Incoming>, BoxError> {
    let (mut parts, body) = req.into_parts();
    for name in HOP_BY_HOP {
        parts.headers.remove(name);
    }
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    parts.uri = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/")
        .parse()?;
    Ok(sender.send_request(Request::from_parts(parts, body)).await?)
}

fn content_length(headers: &hyper::HeaderMap) -> Option<u64> {
    headers.get("content-length")?.to_str().ok()?.parse().ok()
}

fn data_stream(body: Incoming) -> impl futures_util::Stream<Item = Result<Bytes, BoxError>> + Send {
    body.into_data_stream().map(|r| r.map_err(|e| Box::new(e) as BoxError))
}

fn boxed(stream: impl futures_util::Stream<Item = Result<Bytes, BoxError>> + Send + 'static) -> Body {
    StreamBody::new(stream.map(|r| r.map(Frame::data))).boxed_unsync()
}

/// Sends `keep` bytes, then fails the body: hyper aborts the connection (RST armed).
fn truncate(body: Incoming, keep: u64, conn: Conn) -> Body {
    let head = data_stream(body).scan(keep, |left, item| {
        let out = match item {
            Ok(_) if *left == 0 => None,
            Ok(chunk) => {
                let n = chunk.len().min(*left as usize);
                *left -= n as u64;
                Some(Ok(chunk.slice(..n)))
            }
            Err(e) => Some(Err(e)),
        };
        std::future::ready(out)
    });
    let tail = stream::once(async move {
        conn.arm_reset();
        Err::<Bytes, BoxError>("injected truncated body".into())
    });
    boxed(head.chain(tail))
}

/// Paces the body to `bytes_per_sec`, in 16 KiB pieces.
fn slow(body: Incoming, bytes_per_sec: u64) -> Body {
    let pieces = data_stream(body).flat_map(|item| {
        let pieces: Vec<Result<Bytes, BoxError>> = match item {
            Ok(chunk) => (0..chunk.len())
                .step_by(16 * 1024)
                .map(|at| Ok(chunk.slice(at..(at + 16 * 1024).min(chunk.len()))))
                .collect(),
            Err(e) => vec![Err(e)],
        };
        stream::iter(pieces)
    });
    boxed(pieces.then(move |item| async move {
        if let Ok(piece) = &item {
            tokio::time::sleep(Duration::from_secs_f64(
                piece.len() as f64 / bytes_per_sec.max(1) as f64,
            ))
            .await;
        }
        item
    }))
}

/// Flips one bit in the middle of the first non-empty chunk.
fn flip(body: Incoming) -> Body {
    let mut flipped = false;
    boxed(data_stream(body).map(move |item| {
        item.map(|chunk| {
            if flipped || chunk.is_empty() {
                return chunk;
            }
            flipped = true;
            let mut bytes = chunk.to_vec();
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0x01;
            Bytes::from(bytes)
        })
    }))
}

/// Distribution 2.8 ignores `n` and `last`: fetch the whole list and page it here,
/// sorted, the way the OCI distribution spec describes.
async fn paginated_tags(
    upstream: u16,
    req: Request<Incoming>,
    name: &str,
    max_page: usize,
) -> Result<Response<Body>, BoxError> {
    let query: HashMap<String, String> = url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let (mut parts, body) = req.into_parts();
    parts.uri = parts.uri.path().parse()?;
    let response = forward(upstream, Request::from_parts(parts, body)).await?;
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await?.to_bytes();
    if !parts.status.is_success() {
        let mut response = Response::from_parts(parts, full(bytes));
        response.headers_mut().remove("content-length");
        return Ok(response);
    }
    let list: serde_json::Value = serde_json::from_slice(&bytes)?;
    let mut tags: Vec<String> = list["tags"]
        .as_array()
        .map(|t| t.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    tags.sort();
    let page = query
        .get("n")
        .and_then(|n| n.parse().ok())
        .unwrap_or(max_page)
        .clamp(1, max_page.max(1));
    if let Some(last) = query.get("last") {
        tags.retain(|t| t > last);
    }
    let more = tags.len() > page;
    tags.truncate(page);
    let mut response = json(200, &serde_json::json!({"name": name, "tags": tags}))?;
    if let (true, Some(last)) = (more, tags.last()) {
        let next: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("n", &page.to_string())
            .append_pair("last", last)
            .finish();
        let link = format!("</v2/{name}/tags/list?{next}>; rel=\"next\"");
        response
            .headers_mut()
            .insert(HeaderName::from_static("link"), HeaderValue::from_str(&link)?);
    }
    Ok(response)
}
