//! A small hostile registry for what no real registry does on demand: tag and catalog
//! listings whose pages never end, token challenges that send credentials elsewhere, and
//! referrers lists of any size. Built on [`super::http_server`]; it counts what it serves,
//! so a test can show that a cap stopped the client exactly where it says.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hyper::{Request, Response};

use super::http_server::{Body, BoxError, Server, full, json};

/// What the registry does wrong.
#[derive(Debug, Clone)]
pub enum Trick {
    /// Every `GET /v2/<name>/tags/list` is a page of `page` tags never seen before, with a
    /// `Link` to the next page: the listing never ends.
    EndlessTags { page: usize },
    /// The same for `GET /v2/_catalog`.
    EndlessCatalog { page: usize },
    /// Every request is answered 401 with this `WWW-Authenticate` value.
    Challenge(String),
    /// `GET /v2/<name>/referrers/<digest>` is an OCI index listing `entries` referrers.
    Referrers { entries: usize },
}

/// The running server; stops on drop.
#[derive(Debug)]
pub struct HostileRegistry {
    server: Server,
    served: Arc<AtomicU64>,
}

impl HostileRegistry {
    pub fn start(trick: Trick) -> HostileRegistry {
        let served = Arc::new(AtomicU64::new(0));
        let counter = served.clone();
        let server = Server::start("hostile-registry", move |req, _conn| {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            let trick = trick.clone();
            async move { answer(&trick, n, req) }
        });
        HostileRegistry { server, served }
    }

    /// `127.0.0.1:PORT`: the registry name to hand to the client under test.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.server.port())
    }

    /// Requests answered so far.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}

fn answer(trick: &Trick, n: u64, req: Request<hyper::body::Incoming>) -> Result<Response<Body>, BoxError> {
    let path = req.uri().path().to_string();
    if path == "/v2/" && !matches!(trick, Trick::Challenge(_)) {
        return json(200, &serde_json::json!({}));
    }
    match trick {
        Trick::Challenge(value) => Ok(Response::builder()
            .status(401)
            .header("www-authenticate", value.as_str())
            .header("content-type", "application/json")
            .body(full(
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            ))?),
        Trick::EndlessTags { page } => match path.strip_prefix("/v2/").and_then(|p| p.strip_suffix("/tags/list")) {
            Some(name) => {
                let tags: Vec<String> = (0..*page).map(|i| format!("t{n}-{i}")).collect();
                endless_page(
                    serde_json::json!({"name": name, "tags": tags}),
                    &format!("/v2/{name}/tags/list?last=t{n}"),
                )
            }
            None => not_found(),
        },
        Trick::EndlessCatalog { page } if path == "/v2/_catalog" => {
            let repositories: Vec<String> = (0..*page).map(|i| format!("r{n}/x{i}")).collect();
            endless_page(
                serde_json::json!({"repositories": repositories}),
                &format!("/v2/_catalog?n=1000&last=r{n}"),
            )
        }
        Trick::Referrers { entries } if path.contains("/referrers/") => {
            let manifests: Vec<serde_json::Value> = (0..*entries)
                .map(|i| {
                    serde_json::json!({
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": format!("sha256:{i:064x}"),
                        "size": 100,
                        "artifactType": "application/example",
                    })
                })
                .collect();
            let index = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": manifests,
            });
            Ok(Response::builder()
                .status(200)
                .header("content-type", "application/vnd.oci.image.index.v1+json")
                .body(full(index.to_string()))?)
        }
        _ => not_found(),
    }
}

/// A listing page whose `Link` points at `next`.
fn endless_page(body: serde_json::Value, next: &str) -> Result<Response<Body>, BoxError> {
    let mut response = json(200, &body)?;
    response
        .headers_mut()
        .insert("link", format!("<{next}>; rel=\"next\"").parse()?);
    Ok(response)
}

fn not_found() -> Result<Response<Body>, BoxError> {
    json(
        404,
        &serde_json::json!({"errors": [{"code": "NAME_UNKNOWN", "message": "not here"}]}),
    )
}
