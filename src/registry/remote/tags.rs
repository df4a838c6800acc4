//! Listing: tags (with Google's extended answer) and the catalog, following `Link`
//! pagination (RFC 8288), bounded: a registry that loops, or whose pages never end, meets
//! the caps of `--registry-max-tag-pages`, `--registry-max-tags` and
//! `--registry-max-catalog-pages`, and a listing that takes long says so in the log.
use std::collections::{BTreeMap, HashSet};

use reqwest::Method;
use reqwest::header;
use serde::Deserialize;
use url::Url;

use super::send::{BodyCap, Call};
use super::{RemoteRegistry, auth};
use crate::digest::Digest;
use crate::registry::{Error, GoogleManifestInfo, MediaType, TagList};

/// Largest listing page read into memory.
const PAGE_CAP: BodyCap = BodyCap {
    bytes: 32 << 20,
    what: "bytes in one listing page",
    flag: None,
};
/// Page size asked of the catalog (distribution rejects n > 1000).
const CATALOG_PAGE: usize = 1000;

/// The caps of one paginated listing, and the flags that raise them.
struct Caps {
    pages: usize,
    pages_flag: &'static str,
    /// Entries over all pages (tags, digests, repositories).
    entries: usize,
    entries_flag: &'static str,
    /// What a page is a page of, for messages: `tag-list`, `catalog`.
    what: &'static str,
}

#[derive(Deserialize)]
struct TagsPage {
    #[serde(default)]
    tags: Option<Vec<String>>,
    /// Google (gcr.io, Artifact Registry): digest -> tags, media type, timestamps.
    #[serde(default)]
    manifest: Option<BTreeMap<String, GoogleEntry>>,
    /// Google: sub-repositories.
    #[serde(default)]
    child: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GoogleEntry {
    #[serde(default)]
    media_type: MediaType,
    #[serde(default)]
    tag: Vec<String>,
}

#[derive(Deserialize)]
struct CatalogPage {
    #[serde(default)]
    repositories: Option<Vec<String>>,
}

impl RemoteRegistry {
    pub(super) async fn list_tags(&self, repo: &str) -> Result<Option<TagList>, Error> {
        let op = format!("list tags of {repo}");
        let first = self.repo_url(&op, repo, "tags/list").await?;
        let scopes = vec![auth::repo_scope(repo, false)];
        let mut out = TagList::default();
        let mut seen_tags = HashSet::new();
        let mut google: BTreeMap<Digest, GoogleManifestInfo> = BTreeMap::new();
        let mut any_google = false;
        let caps = Caps {
            pages: self.limits.tag_pages,
            pages_flag: "registry-max-tag-pages",
            entries: self.limits.tags,
            entries_flag: "registry-max-tags",
            what: "tag-list",
        };
        let found = self
            .paginate(&op, first, &scopes, caps, |body| {
                let page: TagsPage = serde_json::from_slice(body).map_err(|e| format!("tags list: {e}"))?;
                let entries = page.tags.as_ref().map_or(0, Vec::len)
                    + page.manifest.as_ref().map_or(0, BTreeMap::len)
                    + page.child.as_ref().map_or(0, Vec::len);
                for t in page.tags.unwrap_or_default() {
                    if seen_tags.insert(t.clone()) {
                        out.tags.push(t);
                    }
                }
                if let Some(manifests) = page.manifest {
                    any_google = true;
                    for (digest, entry) in manifests {
                        let digest: Digest = digest.parse().map_err(|e| format!("tags list manifest map: {e}"))?;
                        let info = google.entry(digest).or_insert_with(|| GoogleManifestInfo {
                            digest,
                            media_type: entry.media_type.clone(),
                            tags: Vec::new(),
                        });
                        for t in entry.tag {
                            if !info.tags.contains(&t) {
                                info.tags.push(t);
                            }
                        }
                    }
                }
                for c in page.child.unwrap_or_default() {
                    if !out.children.contains(&c) {
                        out.children.push(c);
                    }
                }
                Ok(entries)
            })
            .await?;
        if !found {
            return Ok(None);
        }
        if any_google {
            out.google_manifests = Some(google.into_values().collect());
        }
        Ok(Some(out))
    }

    pub(super) async fn catalog(&self) -> Result<Vec<String>, Error> {
        let op = "list catalog".to_string();
        let mut first = self.url("/v2/_catalog").await?;
        first.query_pairs_mut().append_pair("n", &CATALOG_PAGE.to_string());
        let scopes = vec![auth::CATALOG_SCOPE.to_string()];
        let mut repos = Vec::new();
        let mut seen = HashSet::new();
        let caps = Caps {
            pages: self.limits.catalog_pages,
            pages_flag: "registry-max-catalog-pages",
            // A full page for every page allowed: a registry that ignores `n` and sends
            // more repositories per page is held to the same total.
            entries: self.limits.catalog_pages.saturating_mul(CATALOG_PAGE),
            entries_flag: "registry-max-catalog-pages",
            what: "catalog",
        };
        let found = self
            .paginate(&op, first, &scopes, caps, |body| {
                let page: CatalogPage = serde_json::from_slice(body).map_err(|e| format!("catalog: {e}"))?;
                let repositories = page.repositories.unwrap_or_default();
                let entries = repositories.len();
                for r in repositories {
                    if seen.insert(r.clone()) {
                        repos.push(r);
                    }
                }
                Ok(entries)
            })
            .await?;
        if !found {
            return Err(self.protocol(&op, "the registry has no catalog API (404)".into()));
        }
        Ok(repos)
    }

    /// GETs `first` and every `rel="next"` page after it, handing each body to `page`,
    /// which returns how many entries it held; stops at the `caps`. Returns `false` when
    /// the first page is 404.
    async fn paginate(
        &self,
        op: &str,
        first: Url,
        scopes: &[String],
        caps: Caps,
        mut page: impl FnMut(&[u8]) -> Result<usize, String>,
    ) -> Result<bool, Error> {
        let limit = |what: String, cap: usize, flag: &'static str| Error::Limit {
            registry: self.name.clone(),
            operation: op.to_string(),
            what,
            cap: cap as u64,
            flag: Some(flag),
        };
        let mut next = Some(first);
        let mut visited = HashSet::new();
        let mut first_page = true;
        let mut entries = 0usize;
        let started = tokio::time::Instant::now();
        let mut next_log = started + self.listing_progress;
        while let Some(url) = next.take() {
            if !visited.insert(url.to_string()) {
                return Err(self.protocol(op, format!("pagination loops back to {url}")));
            }
            if visited.len() > caps.pages {
                return Err(limit(format!("{} pages", caps.what), caps.pages, caps.pages_flag));
            }
            let call = Call::new(op.to_string(), Method::GET, url.clone(), scopes.to_vec())
                .header(header::ACCEPT, "application/json")
                .hedgeable();
            // A log line at least every `listing_progress`, even while one page is slow.
            let fetch = self.fetch(call, PAGE_CAP);
            tokio::pin!(fetch);
            let fetched = loop {
                tokio::select! {
                    fetched = &mut fetch => break fetched?,
                    () = tokio::time::sleep_until(next_log) => {
                        tracing::info!(
                            registry = %self.name,
                            %op,
                            pages = visited.len() - 1,
                            entries,
                            seconds = started.elapsed().as_secs(),
                            "still listing"
                        );
                        next_log += self.listing_progress;
                    }
                }
            };
            if first_page && fetched.status == reqwest::StatusCode::NOT_FOUND {
                return Ok(false);
            }
            first_page = false;
            if !fetched.status.is_success() {
                return Err(self.error_for(op, fetched.status.as_u16(), &fetched.body));
            }
            next = fetched
                .headers
                .get_all(header::LINK)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(next_link)
                .map(|target| url.join(&target))
                .transpose()
                .map_err(|e| self.protocol(op, format!("bad Link header: {e}")))?;
            // Credentials go with every page: never follow a link to another server.
            if let Some(n) = &next
                && n.origin() != url.origin()
            {
                return Err(self.protocol(op, format!("pagination link leaves the registry: {n}")));
            }
            let body = fetched.body;
            entries = entries.saturating_add(page(&body).map_err(|m| self.protocol(op, m))?);
            if entries > caps.entries {
                return Err(limit(
                    format!("entries in one {} listing", caps.what),
                    caps.entries,
                    caps.entries_flag,
                ));
            }
        }
        Ok(true)
    }
}

/// The target of the `rel="next"` link in one `Link` header value, if any.
fn next_link(value: &str) -> Option<String> {
    // Each link is `<target>; param; param`, links separated by commas (targets may
    // contain commas, so split on the closing '>' rather than on commas first).
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        let close = open + rest[open..].find('>')?;
        let target = &rest[open + 1..close];
        let after = &rest[close + 1..];
        let params_end = after.find('<').unwrap_or(after.len());
        let params = &after[..params_end];
        let is_next = params.split(';').any(|p| {
            let p = p.trim().trim_end_matches(',').trim();
            p.split_once('=').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("rel")
                    && v.trim()
                        .trim_matches('"')
                        .split_whitespace()
                        .any(|r| r.eq_ignore_ascii_case("next"))
            })
        });
        if is_next {
            return Some(target.to_string());
        }
        rest = &after[params_end..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::next_link;

    #[test]
    fn finds_the_next_link() {
        assert_eq!(
            next_link(r#"</v2/_catalog?last=proj00%2Fimg000&n=2>; rel="next""#).as_deref(),
            Some("/v2/_catalog?last=proj00%2Fimg000&n=2")
        );
        assert_eq!(
            next_link(r#"<https://a/x?p=1>; rel="prev", <https://a/x?p=3>; rel=next"#).as_deref(),
            Some("https://a/x?p=3")
        );
        assert_eq!(next_link(r#"</v2/x>; rel="prev""#), None);
        assert_eq!(next_link("garbage"), None);
    }
}
