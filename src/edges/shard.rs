//! Sharding one promotion over N processes (`--shard i/N`, or a Kubernetes Indexed Job's
//! `JOB_COMPLETION_INDEX` with `--shards N`): a pure, deterministic partition of an
//! [`EdgeSet`], so every process computes the same one from the same manifests and
//! together they do the whole promotion exactly once, with no coordinator.
//!
//! The unit of work is not an edge but a group of repositories:
//! - every edge of one digest stays in one shard (its tags, its mirrors, and its index
//!   children, which the manifests list under the same image name), so it is copied,
//!   signed and attested by exactly one shard;
//! - every edge of one image name (a repository, on every registry) stays in one shard
//!   too, because different digests of one repository share layers and distribution
//!   races on concurrent uploads of one blob to one repository: no (registry,
//!   repository, blob) is ever written by two shards.
//!
//! Image names that share a digest are joined (union-find), and the groups are dealt to
//! the shards largest first, each to the least loaded (LPT), ties by name.
//!
//! The load is estimated bytes under a uniform image-size model: one image copy (a
//! digest into a destination repository) counts 1. The manifests carry no sizes, and the
//! partition must not depend on registry reads: shards start at different times, and a
//! shard that reads after another has written would see other sizes and decisions, and
//! could deal a digest to no shard or to two.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use super::{EdgeSet, NameId};

/// One shard of N: `index` from 0, `index < count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// Why `--shard` (or `JOB_COMPLETION_INDEX` with `--shards`) cannot name a shard.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("{0:?} is not a shard: write INDEX/COUNT, such as 0/3 (indexes count from 0)")]
    Syntax(String),
    #[error("there is no shard {index} of {count}: indexes run from 0 to {}", .count.saturating_sub(1))]
    OutOfRange { index: u32, count: u32 },
    #[error("a promotion cannot be split into 0 shards")]
    Zero,
}

impl Shard {
    /// Shard `index` of `count`, checked.
    pub fn new(index: u32, count: u32) -> Result<Self, ShardError> {
        if count == 0 {
            return Err(ShardError::Zero);
        }
        if index >= count {
            return Err(ShardError::OutOfRange { index, count });
        }
        Ok(Self { index, count })
    }

    /// `INDEX/COUNT`, as `--shard` takes it.
    pub fn parse(text: &str) -> Result<Self, ShardError> {
        let syntax = || ShardError::Syntax(text.to_string());
        let (index, count) = text.trim().split_once('/').ok_or_else(syntax)?;
        let number = |s: &str| s.trim().parse::<u32>().map_err(|_| syntax());
        Self::new(number(index)?, number(count)?)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The shard of every edge, index-aligned with `edges.edges()`.
pub fn partition(edges: &EdgeSet, count: u32) -> Vec<u32> {
    let count = count.max(1);
    let groups = ImageGroups::of(edges);
    // Load per group: distinct image copies, (destination registry, image, digest).
    let mut load: BTreeMap<NameId, u64> = BTreeMap::new();
    let mut copies = HashSet::new();
    for edge in edges.edges() {
        if copies.insert((edge.dst_registry, edge.image, edge.digest)) {
            *load.entry(groups.root(edge.image)).or_default() += 1;
        }
    }
    // Largest first; equal loads in name order (ids are in name order).
    let mut order: Vec<(NameId, u64)> = load.into_iter().collect();
    order.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut shard_load = vec![0u64; count as usize];
    let mut shard_of: HashMap<NameId, u32> = HashMap::with_capacity(order.len());
    for (group, weight) in order {
        let lightest = (0..count as usize)
            .min_by_key(|s| (shard_load[*s], *s))
            .unwrap_or_default();
        shard_load[lightest] += weight;
        shard_of.insert(group, lightest as u32);
    }
    edges
        .edges()
        .iter()
        .map(|e| shard_of.get(&groups.root(e.image)).copied().unwrap_or_default())
        .collect()
}

/// Image names joined when they share a digest (union-find over name ids). Each group is
/// named by its smallest id, so the result does not depend on the order of joins.
struct ImageGroups {
    parent: HashMap<NameId, NameId>,
}

impl ImageGroups {
    fn of(edges: &EdgeSet) -> Self {
        let mut groups = Self { parent: HashMap::new() };
        let mut first_image_of = HashMap::new();
        for edge in edges.edges() {
            groups.parent.entry(edge.image).or_insert(edge.image);
            let first = *first_image_of.entry(edge.digest).or_insert(edge.image);
            groups.join(first, edge.image);
        }
        groups
    }

    fn root(&self, mut id: NameId) -> NameId {
        while let Some(&up) = self.parent.get(&id) {
            if up == id {
                break;
            }
            id = up;
        }
        id
    }

    fn join(&mut self, a: NameId, b: NameId) {
        let (ra, rb) = (self.root(a), self.root(b));
        if ra != rb {
            let (low, high) = if ra < rb { (ra, rb) } else { (rb, ra) };
            self.parent.insert(high, low);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;
    use crate::digest::Digest;
    use crate::edges::Edge;
    use crate::manifest::Manifest;

    #[test]
    fn shard_syntax_and_range() {
        assert_eq!(Shard::parse("0/3"), Ok(Shard { index: 0, count: 3 }));
        assert_eq!(Shard::parse(" 2/3 "), Ok(Shard { index: 2, count: 3 }));
        assert_eq!(Shard::parse("3/2"), Err(ShardError::OutOfRange { index: 3, count: 2 }));
        assert_eq!(Shard::parse("2/2"), Err(ShardError::OutOfRange { index: 2, count: 2 }));
        assert_eq!(Shard::parse("0/0"), Err(ShardError::Zero));
        for bad in ["", "1", "a/b", "-1/2", "1/2/3", "1.0/2", "/2"] {
            assert!(matches!(Shard::parse(bad), Err(ShardError::Syntax(_))), "{bad}");
        }
        assert_eq!(
            Shard::parse("3/2").unwrap_err().to_string(),
            "there is no shard 3 of 2: indexes run from 0 to 1"
        );
    }

    fn digest(n: u32) -> String {
        Digest::of(&n.to_le_bytes()).to_string()
    }

    /// A manifest of `images` (name, [(digest number, tags)]) to `dsts`.
    /// An image name and its [(digest number, tags)].
    type ImageSpec = (String, Vec<(u32, Vec<&'static str>)>);

    fn manifest(path: &str, dsts: &[&str], images: &[ImageSpec]) -> Manifest {
        let images: Vec<_> = images
            .iter()
            .map(|(name, dmap)| {
                (
                    name.as_str(),
                    dmap.iter().map(|(d, tags)| (digest(*d), tags.clone())).collect(),
                )
            })
            .collect();
        Manifest::for_test(path, "staging.example/s", dsts, &images)
    }

    /// The shard of each edge, by edge value (comparable across edge sets).
    fn by_edge(edges: &EdgeSet, count: u32) -> BTreeMap<(String, Edge), u32> {
        edges
            .edges()
            .iter()
            .zip(partition(edges, count))
            .map(|(e, s)| ((edges.destination(e), *e), s))
            .collect()
    }

    #[test]
    fn a_digest_under_two_names_joins_them() {
        let m = manifest(
            "m.yaml",
            &["a.example/p", "b.example/p"],
            &[
                ("pause".into(), vec![(1, vec!["3.9"])]),
                ("kubernetes/pause".into(), vec![(1, vec!["3.9"]), (2, vec!["3.10"])]),
                ("other".into(), vec![(3, vec!["1"])]),
            ],
        );
        let edges = EdgeSet::from_manifests(&[m]);
        for count in 1..5 {
            let shards = partition(&edges, count);
            let pause: BTreeSet<u32> = edges
                .edges()
                .iter()
                .zip(&shards)
                .filter(|(e, _)| edges.name(e.image).ends_with("pause"))
                .map(|(_, s)| *s)
                .collect();
            assert_eq!(pause.len(), 1, "{count} shards: {shards:?}");
        }
    }

    /// Random manifests: images with digests (some shared between names) and tags.
    fn arbitrary_images() -> impl Strategy<Value = Vec<ImageSpec>> {
        let tags = prop::sample::subsequence(vec!["1.0", "1.1", "latest"], 0..=2);
        let dmap = prop::collection::vec((0u32..40, tags), 1..5);
        prop::collection::vec((0u32..25, dmap), 1..20).prop_map(|images| {
            let mut seen = BTreeSet::new();
            images
                .into_iter()
                .filter(|(n, _)| seen.insert(*n))
                .map(|(n, dmap)| {
                    let mut digests = BTreeSet::new();
                    let dmap = dmap.into_iter().filter(|(d, _)| digests.insert(*d)).collect();
                    (format!("img{n}"), dmap)
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn every_edge_in_one_shard_digests_and_repositories_never_split(
            images in arbitrary_images(),
            count in 1u32..6,
        ) {
            let m = manifest("m.yaml", &["a.example/p", "b.example/q"], &images);
            let edges = EdgeSet::from_manifests(&[m]);
            let shards = partition(&edges, count);
            prop_assert_eq!(shards.len(), edges.len());
            prop_assert!(shards.iter().all(|s| *s < count));
            let mut digest_shard: HashMap<Digest, u32> = HashMap::new();
            let mut image_shard: HashMap<NameId, u32> = HashMap::new();
            for (edge, shard) in edges.edges().iter().zip(&shards) {
                prop_assert_eq!(*digest_shard.entry(edge.digest).or_insert(*shard), *shard);
                prop_assert_eq!(*image_shard.entry(edge.image).or_insert(*shard), *shard);
            }
        }

        #[test]
        fn the_same_partition_whatever_the_file_order(
            images in arbitrary_images(),
            count in 1u32..6,
        ) {
            let (left, right) = images.split_at(images.len() / 2);
            let a = manifest("a/m.yaml", &["a.example/p"], left);
            let b = manifest("b/m.yaml", &["a.example/p"], right);
            let forward = EdgeSet::from_manifests(&[a.clone(), b.clone()]);
            let backward = EdgeSet::from_manifests(&[b, a]);
            prop_assert_eq!(by_edge(&forward, count), by_edge(&backward, count));
        }
    }
}
