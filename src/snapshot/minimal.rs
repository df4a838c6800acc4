//! `--minimal-snapshot`: hide the tagless per-platform children of indexes, which
//! nobody lists in `images.yaml` by hand.
//!
//! Like Go's `removeChildDigests`, every index or manifest list in the inventory is
//! fetched and its children collected; tagless entries whose digest is such a child are
//! dropped. A list that cannot be read or parsed is logged as a warning and skipped.
//! Where Go learns media types by walking the whole registry with Google's extension
//! (so it only works on gcr.io / Artifact Registry), digests with an unknown media type
//! are looked up with one HEAD each, so this also works on any OCI registry.
use std::collections::{BTreeSet, HashMap};

use futures_util::stream::{self, StreamExt};

use crate::digest::Digest;
use crate::registry::media::ManifestLinks;
use crate::registry::{ManifestRef, MediaType, RepoRoot};

use super::RegInvImage;

/// Returns `inventory` without the tagless children of its indexes. `media_types` holds
/// what a walk already learned; other digests are looked up in `root`.
pub async fn remove_child_digests(
    root: &RepoRoot,
    inventory: &RegInvImage,
    media_types: &HashMap<Digest, MediaType>,
    concurrency: usize,
) -> RegInvImage {
    if !inventory.entries().any(|(_, _, tags)| tags.is_empty()) {
        return inventory.clone();
    }
    // One repository to read each digest from (the content is the same in all of them).
    let mut where_found: HashMap<Digest, &str> = HashMap::new();
    for (image, digest, _) in inventory.entries() {
        where_found.entry(*digest).or_insert(image);
    }
    let children: Vec<Vec<Digest>> = stream::iter(where_found)
        .map(|(digest, image)| {
            let known = media_types.get(&digest).cloned();
            async move { children_of(root, &root.repo(image), digest, known).await }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let children: BTreeSet<Digest> = children.into_iter().flatten().collect();
    tracing::info!(
        children = children.len(),
        "removing tagless child digests of manifest lists"
    );
    inventory.without_tagless(&children)
}

/// The children of `digest` if it is an index; empty otherwise or on failure.
async fn children_of(root: &RepoRoot, repo: &str, digest: Digest, media_type: Option<MediaType>) -> Vec<Digest> {
    let registry = root.registry.as_ref();
    let reference = ManifestRef::Digest(digest);
    let media_type = match media_type {
        Some(m) => m,
        None => match registry.head_manifest(repo, &reference).await {
            Ok(Some(descriptor)) => descriptor.media_type,
            Ok(None) => return Vec::new(),
            Err(e) => {
                tracing::warn!("{repo}@{digest}: cannot read the media type, keeping its children: {e}");
                return Vec::new();
            }
        },
    };
    if !media_type.is_index() {
        return Vec::new();
    }
    let manifest = match registry.get_manifest(repo, &reference).await {
        Ok(Some(m)) => m,
        Ok(None) => return Vec::new(),
        Err(e) => {
            tracing::warn!("{repo}@{digest}: cannot read the manifest list, keeping its children: {e}");
            return Vec::new();
        }
    };
    match ManifestLinks::parse(&manifest.bytes) {
        Ok(index) => index.manifests.iter().map(|m| m.digest).collect(),
        Err(e) => {
            tracing::warn!("{repo}@{digest}: cannot parse the manifest list, keeping its children: {e}");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::registry::memory::MemoryRegistry;
    use crate::registry::test_image::TestImage;
    use crate::snapshot::walk::walk;

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

    /// An index over `children` distinct images named after `name`.
    fn index(name: &str, children: usize) -> TestImage {
        TestImage::index((0..children).map(|i| image(&format!("{name}-{i}"))).collect())
    }

    fn children_of(index: &TestImage) -> Vec<Digest> {
        index.children.iter().map(TestImage::digest).collect()
    }

    #[tokio::test]
    async fn drops_tagless_children_and_keeps_other_tagless_digests() {
        let registry = MemoryRegistry::new("mem");
        let (foo, lone, bar) = (index("foo", 2), image("lone"), index("bar", 1));
        registry.seed("foo", &foo, &["1.0"]);
        registry.seed("foo", &lone, &[]);
        registry.seed("bar", &bar, &["2.0"]);
        let (index, children, lone) = (foo.digest(), children_of(&foo), lone.digest());
        let (tagged_index, tagged_child) = (bar.digest(), children_of(&bar)[0]);
        // A plain registry cannot list tagless digests, so the inventory is built by hand
        // as a manifest-based snapshot would: media types are unknown and looked up.
        let mut inventory = RegInvImage::new();
        inventory.insert_tag("foo", index, "1.0");
        inventory.insert_digest("foo", lone);
        for child in &children {
            inventory.insert_digest("foo", *child);
        }
        inventory.insert_tag("bar", tagged_index, "2.0");
        inventory.insert_tag("bar", tagged_child, "2.0-amd64");
        let root = root(registry, "");
        let out = remove_child_digests(&root, &inventory, &HashMap::new(), 4).await;
        let mut kept: Vec<Digest> = out.entries().map(|(_, d, _)| *d).collect();
        kept.sort();
        let mut expected = vec![index, lone, tagged_index, tagged_child];
        expected.sort();
        assert_eq!(kept, expected, "only the tagless children of foo's index are gone");
    }

    #[tokio::test]
    async fn known_media_types_avoid_heads_and_broken_lists_are_skipped() {
        let registry = MemoryRegistry::new("gcr").with_google_listing();
        let (good, broken) = (index("foo", 1), index("bar", 1));
        registry.seed("prod/foo", &good, &["1.0"]);
        registry.seed("prod/bar", &broken, &["1.0"]);
        registry.break_manifest(broken.digest());
        let root = root(registry, "prod");
        let walked = walk(&root, None, 4).await.unwrap();
        assert_eq!(walked.inventory.entries().count(), 4);
        let out = remove_child_digests(&root, &walked.inventory, &walked.media_types, 4).await;
        let names: Vec<(String, Digest)> = out.entries().map(|(i, d, _)| (i.to_string(), *d)).collect();
        assert_eq!(names.len(), 3, "only the readable index's child is dropped: {names:?}");
        assert!(names.contains(&("foo".to_string(), good.digest())));
        let stats = root.registry.stats();
        assert_eq!(stats.requests.get("HEAD 200"), None, "media types came from the walk");
    }

    #[tokio::test]
    async fn nothing_tagless_means_no_requests() {
        let registry = MemoryRegistry::new("mem");
        let d = image("foo").digest();
        registry.seed("foo", &image("foo"), &["1.0"]);
        let root = root(registry, "");
        let mut inventory = RegInvImage::new();
        inventory.insert_tag("foo", d, "1.0");
        let out = remove_child_digests(&root, &inventory, &HashMap::new(), 4).await;
        assert_eq!(out, inventory);
        assert!(root.registry.stats().requests.is_empty());
    }
}
