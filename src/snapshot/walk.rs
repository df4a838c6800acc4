//! `--snapshot REG`: read a registry's inventory through the [`Registry`] trait, so it
//! works on any OCI registry and on OCI layout directories.
//!
//! Go kpromo only walks with Google's extended tags list (`gcr.io`, Artifact Registry),
//! which on other registries returns nothing. Here:
//! - when the root repository answers with Google's extension, the walk follows its
//!   `child` entries like Go's `google.Walk`, and every digest (tagged or not) comes
//!   with its tags and media type in one request per repository;
//! - otherwise the repositories come from the catalog API (filtered to the path below
//!   REG), and each tag is resolved with one manifest HEAD. A plain registry cannot list
//!   digests that carry no tag, so tagless manifests (such as the per-platform children
//!   of an index) are absent from such a snapshot.
use std::collections::{BTreeMap, HashMap};

use futures_util::stream::{self, StreamExt, TryStreamExt};

use crate::digest::Digest;
use crate::registry::{Error, ManifestRef, MediaType, Registry, RepoRoot, TagList};

use super::RegInvImage;

/// A walked registry: the inventory plus what `--minimal-snapshot` needs to know.
#[derive(Debug, Clone, Default)]
pub struct Walked {
    pub inventory: RegInvImage,
    /// Media type of every digest seen.
    pub media_types: HashMap<Digest, MediaType>,
}

/// What one repository holds: digest -> (media type, tags).
type RepoContent = BTreeMap<Digest, (MediaType, Vec<String>)>;

/// Walks every repository below `root`. With `tag`, only digests carrying that tag are
/// kept, each listed with that one tag (Go's `FilterByTag`); on a plain registry only
/// that tag is resolved, saving one HEAD per other tag. `concurrency` bounds the
/// requests this walk keeps in flight (the registry backend applies its own limits too).
pub async fn walk(root: &RepoRoot, tag: Option<&str>, concurrency: usize) -> Result<Walked, Error> {
    let registry = root.registry.as_ref();
    let concurrency = concurrency.max(1);
    let mut walked = Walked::default();

    if let Some(listing) = google_root_listing(registry, &root.prefix).await {
        tracing::debug!(registry = registry.name(), "walking with Google's extended tags list");
        let mut frontier: Vec<String> = listing.children.iter().map(|c| root.repo(c)).collect();
        while !frontier.is_empty() {
            let listings: Vec<(String, Option<TagList>)> = stream::iter(frontier)
                .map(|repo| async move { Ok::<_, Error>((repo.clone(), registry.list_tags(&repo).await?)) })
                .buffer_unordered(concurrency)
                .try_collect()
                .await?;
            frontier = Vec::new();
            for (repo, listing) in listings {
                let Some(listing) = listing else { continue };
                frontier.extend(listing.children.iter().map(|c| format!("{repo}/{c}")));
                let content = read_listing(registry, &repo, listing, tag, concurrency).await?;
                add_repo(&mut walked, root, &repo, content);
            }
        }
        return Ok(walked);
    }

    let repos: Vec<String> = registry
        .catalog()
        .await?
        .into_iter()
        .filter(|repo| image_name(root, repo).is_some_and(|name| !name.is_empty()))
        .collect();
    tracing::info!(
        registry = registry.name(),
        repositories = repos.len(),
        "walking repositories from the catalog"
    );
    let total = repos.len();
    let mut results = stream::iter(repos)
        .map(|repo| async move {
            let content = match registry.list_tags(&repo).await? {
                Some(listing) => read_listing(registry, &repo, listing, tag, concurrency).await?,
                None => RepoContent::new(),
            };
            Ok::<_, Error>((repo, content))
        })
        .buffer_unordered(concurrency);
    let mut done = 0;
    while let Some((repo, content)) = results.try_next().await? {
        add_repo(&mut walked, root, &repo, content);
        done += 1;
        // Large registries take minutes at the default rate limit: show that it moves.
        if done % 100 == 0 {
            tracing::info!(registry = registry.name(), "walked {done}/{total} repositories");
        }
    }
    Ok(walked)
}

/// The root repository's listing when it uses Google's extension. Any failure here
/// (some registries answer 401/403 for a path that is not a repository) falls back to
/// the catalog walk, which reports a real access problem clearly.
async fn google_root_listing(registry: &dyn Registry, prefix: &str) -> Option<TagList> {
    if prefix.is_empty() {
        return None;
    }
    match registry.list_tags(prefix).await {
        Ok(Some(listing)) if listing.google_manifests.is_some() => Some(listing),
        Ok(_) => None,
        Err(e) => {
            tracing::debug!(
                "{}: listing {prefix} failed ({e}); walking the catalog instead",
                registry.name()
            );
            None
        }
    }
}

/// The image name of `repo` relative to `root`: `None` when `repo` is outside it, `""`
/// for the root repository itself (which has no name relative to REG; Go leaves it out
/// too).
fn image_name<'a>(root: &RepoRoot, repo: &'a str) -> Option<&'a str> {
    if root.prefix.is_empty() {
        return Some(repo);
    }
    let rest = repo.strip_prefix(root.prefix.as_str())?;
    if rest.is_empty() {
        Some("")
    } else {
        rest.strip_prefix('/')
    }
}

fn add_repo(walked: &mut Walked, root: &RepoRoot, repo: &str, content: RepoContent) {
    let Some(name) = image_name(root, repo).filter(|n| !n.is_empty()) else {
        return;
    };
    for (digest, (media_type, tags)) in content {
        walked.inventory.insert_digest(name, digest);
        for tag in &tags {
            walked.inventory.insert_tag(name, digest, tag);
        }
        walked.media_types.insert(digest, media_type);
    }
}

/// Turns one tags listing into repository content: straight from Google's manifest
/// map when present, otherwise by resolving each (wanted) tag with a HEAD.
async fn read_listing(
    registry: &dyn Registry,
    repo: &str,
    listing: TagList,
    tag: Option<&str>,
    concurrency: usize,
) -> Result<RepoContent, Error> {
    let mut content = RepoContent::new();
    if let Some(manifests) = listing.google_manifests {
        for info in manifests {
            let tags: Vec<String> = match tag {
                Some(t) if info.tags.iter().any(|x| x == t) => vec![t.to_string()],
                Some(_) => continue,
                None => info.tags,
            };
            content.insert(info.digest, (info.media_type, tags));
        }
        return Ok(content);
    }
    let wanted: Vec<String> = listing
        .tags
        .into_iter()
        .filter(|t| tag.is_none_or(|want| want == t))
        .collect();
    let heads: Vec<(String, Option<crate::registry::Descriptor>)> = stream::iter(wanted)
        .map(|t| async move {
            let descriptor = registry.head_manifest(repo, &ManifestRef::Tag(t.clone())).await?;
            Ok::<_, Error>((t, descriptor))
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    for (t, descriptor) in heads {
        // A tag deleted between listing and HEAD is simply gone.
        let Some(descriptor) = descriptor else { continue };
        content
            .entry(descriptor.digest)
            .or_insert_with(|| (descriptor.media_type.clone(), Vec::new()))
            .1
            .push(t);
    }
    Ok(content)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::registry::memory::MemoryRegistry;
    use crate::registry::test_image::TestImage;

    fn root(registry: MemoryRegistry, prefix: &str) -> RepoRoot {
        RepoRoot {
            registry: Arc::new(registry),
            prefix: prefix.to_string(),
        }
    }

    /// A distinct single-platform image.
    fn image(name: &str) -> TestImage {
        TestImage::single(name, &[name.as_bytes()])
    }

    fn listed(walked: &Walked) -> Vec<(String, String, Vec<String>)> {
        walked
            .inventory
            .entries()
            .map(|(i, d, t)| (i.to_string(), d.to_string(), t.iter().cloned().collect()))
            .collect()
    }

    #[tokio::test]
    async fn plain_registry_walk_uses_catalog_and_heads_below_the_prefix() {
        let registry = MemoryRegistry::new("mem");
        let (img, other) = (image("foo"), image("bar"));
        registry.seed("prod/foo", &img, &["1.0", "latest"]);
        registry.seed("prod/sub/bar", &other, &["v1"]);
        registry.seed("prod-other/baz", &image("baz"), &["v1"]);
        registry.seed("prod", &image("root"), &["root-tag"]);
        let walked = walk(&root(registry, "prod"), None, 4).await.unwrap();
        assert_eq!(
            listed(&walked),
            [
                (
                    "foo".into(),
                    img.digest().to_string(),
                    vec!["1.0".into(), "latest".into()]
                ),
                ("sub/bar".into(), other.digest().to_string(), vec!["v1".into()]),
            ]
        );
        assert_eq!(walked.media_types.len(), 2);
    }

    #[tokio::test]
    async fn tag_filter_resolves_only_that_tag() {
        let registry = MemoryRegistry::new("mem");
        let a = image("foo");
        registry.seed("foo", &a, &["1.0", "latest"]);
        registry.seed("bar", &image("bar"), &["2.0"]);
        let registry_root = root(registry, "");
        let walked = walk(&registry_root, Some("latest"), 4).await.unwrap();
        assert_eq!(
            listed(&walked),
            [("foo".into(), a.digest().to_string(), vec!["latest".into()])]
        );
        let stats = registry_root.registry.stats();
        assert_eq!(
            stats.requests.get("HEAD 200"),
            Some(&1),
            "only foo:latest is resolved: {stats:?}"
        );
    }

    #[tokio::test]
    async fn google_listing_is_walked_through_children_and_keeps_tagless_digests() {
        let registry = MemoryRegistry::new("gcr").with_google_listing();
        let index = TestImage::index(vec![image("amd64"), image("arm64")]);
        registry.seed("prod/foo", &index, &["1.0"]);
        let child = index.children[0].digest();
        let walked = walk(&root(registry, "prod"), None, 4).await.unwrap();
        let entries = listed(&walked);
        assert_eq!(entries.len(), 3, "index plus two tagless children: {entries:?}");
        assert!(entries.contains(&("foo".into(), index.digest().to_string(), vec!["1.0".into()])));
        assert!(entries.contains(&("foo".into(), child.to_string(), vec![])));
    }

    #[tokio::test]
    async fn a_refused_root_listing_falls_back_to_the_catalog() {
        let registry = MemoryRegistry::new("mem").failing_tags_list("prod");
        let d = image("foo");
        registry.seed("prod/foo", &d, &["1.0"]);
        let walked = walk(&root(registry, "prod"), None, 4).await.unwrap();
        assert_eq!(
            listed(&walked),
            [("foo".into(), d.digest().to_string(), vec!["1.0".into()])]
        );
    }

    #[tokio::test]
    async fn registry_errors_name_the_operation() {
        let registry = MemoryRegistry::new("mem").failing_catalog();
        let err = walk(&root(registry, ""), None, 4).await.unwrap_err();
        assert!(err.to_string().contains("catalog"), "{err}");
    }
}
