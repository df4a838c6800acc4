//! Promotion edges: the unit of work.
//!
//! One edge is (source registry, image, digest, tag, destination registry); a digest
//! with an empty tag list gives one tagless edge per destination. The real
//! registry.k8s.io tree expands to about a million edges, so names are interned once
//! and an [`Edge`] is a small `Copy` struct of ids plus the raw digest.
//!
//! Everything here is pure and deterministic: ids are renumbered so that id order is
//! string order, and edges are sorted, so output never depends on hash-map order
//! (a Go kpromo quirk when picking among redundant edges).
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::digest::Digest;
use crate::manifest::{Manifest, Problem};
use crate::registry::reference::{RegistryName, quoted};
use intern::Interner;

mod intern;
pub mod report;
pub mod shard;

/// Index into [`EdgeSet`]'s name table.
pub type NameId = u32;

/// One promotion edge. Field order is the sort order: grouped by destination
/// repository and tag, which is what overlap detection and promotion need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Edge {
    pub dst_registry: NameId,
    pub image: NameId,
    /// `None` for a tagless (promote-by-digest) edge.
    pub tag: Option<NameId>,
    pub digest: Digest,
    pub src_registry: NameId,
}

/// Two or more different digests aimed at one destination `registry/image:tag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlap {
    /// `registry/image:tag`.
    pub destination: String,
    /// Each competing source as `src-registry/image@digest`, with the manifest that asked for it.
    pub sources: Vec<(String, Arc<PathBuf>)>,
    /// Parallel to `sources`: the edge and the index (in the slice given to
    /// [`EdgeSet::from_manifests`]) of the manifest that asked for it, so that callers
    /// can point at the `dmap` entry.
    pub origins: Vec<(Edge, usize)>,
}

impl fmt::Display for Overlap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "overlapping edges: {} is wanted by", self.destination)?;
        for (i, (src, path)) in self.sources.iter().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            write!(f, "{sep}{src} ({})", path.display())?;
        }
        Ok(())
    }
}

/// The same digest promoted to the same destination by more than one manifest or
/// source: harmless, kept once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redundant {
    /// `registry/image:tag` or `registry/image@digest` for tagless edges.
    pub destination: String,
    pub digest: Digest,
    pub manifests: Vec<Arc<PathBuf>>,
}

/// The deduplicated, sorted edges of a set of manifests, with the overlaps and
/// redundancies found while merging them.
#[derive(Debug, Clone, Default)]
pub struct EdgeSet {
    names: Vec<Box<str>>,
    edges: Vec<Edge>,
    overlaps: Vec<Overlap>,
    redundant: Vec<Redundant>,
    refused: Vec<Problem>,
}

/// `RawEdge::tag` for a tagless edge; tag ids are stored plus one, so that tagless
/// edges sort first, as `None` does in [`Edge`].
const NO_TAG: u32 = 0;

/// An edge while planning: 24 bytes instead of [`Edge`]'s 52, because the digest is
/// interned too. Field order is [`Edge`]'s order, then the manifest's rank.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct RawEdge {
    dst: NameId,
    image: NameId,
    tag: u32,
    digest: u32,
    src: NameId,
    origin: u32,
}

impl RawEdge {
    /// Same destination `registry/image:tag` (or `registry/image@digest` when tagless).
    fn same_destination(&self, other: &Self) -> bool {
        self.dst == other.dst
            && self.image == other.image
            && self.tag == other.tag
            && (self.tag != NO_TAG || self.digest == other.digest)
    }
}

impl EdgeSet {
    /// Expands manifests into edges. Entries whose digest does not parse are skipped:
    /// validation reports them with their position, and they can never be promoted.
    ///
    /// No edge is built whose repository would fall outside its registry's path (a
    /// registry or image name outside the grammar of `registry::reference`): validation
    /// refuses those names first, and this holds even if it did not. Each such name is
    /// in [`EdgeSet::refused`], which a caller must treat as a manifest problem.
    ///
    /// The result does not depend on the order of `manifests` (only on their paths):
    /// edges from several manifests are ordered by manifest path, so the same edge
    /// set, overlaps and redundancies come out whichever order the files were read in.
    pub fn from_manifests(manifests: &[Manifest]) -> Self {
        // rank[i]: position of manifest i in path order; by_rank is the inverse.
        let mut by_rank: Vec<usize> = (0..manifests.len()).collect();
        by_rank.sort_by(|&a, &b| manifests[a].path.cmp(&manifests[b].path).then(a.cmp(&b)));
        let mut rank = vec![0u32; manifests.len()];
        for (r, &i) in by_rank.iter().enumerate() {
            rank[i] = u32::try_from(r).expect("fewer than 2^32 manifests");
        }

        let mut names: Interner<Box<str>> = Interner::default();
        let mut digests: Interner<Digest> = Interner::default();
        let mut raw: Vec<RawEdge> = Vec::with_capacity(estimated_edges(manifests));
        let mut refused = Vec::new();
        for (origin, manifest) in manifests.iter().enumerate() {
            let Some(src) = manifest.source() else {
                continue;
            };
            let mut parse = |registry: &crate::manifest::RegistryContext| match RegistryName::parse(&registry.name) {
                Ok(parsed) => Some(parsed),
                Err(why) => {
                    let message = format!("registries: invalid name {}: {why}", quoted(&registry.name));
                    refused.push(Problem::at(manifest.path.as_path(), registry.pos, message));
                    None
                }
            };
            let Some(src_name) = parse(src) else {
                continue;
            };
            let src_id = names.intern(&src.name);
            let dsts: Vec<(NameId, &str, RegistryName)> = manifest
                .destinations()
                .filter_map(|d| parse(d).map(|parsed| (names.intern(&d.name), d.name.as_str(), parsed)))
                .collect();
            let mut tags: Vec<u32> = Vec::new();
            let mut image_dsts: Vec<NameId> = Vec::with_capacity(dsts.len());
            for image in &manifest.images {
                // The one place writes are decided: `<registry path>/<image>` for every
                // destination, and the source read the same way.
                image_dsts.clear();
                let mut inside = |registry: &RegistryName, name: &str| match registry.repository(&image.name) {
                    Ok(_) => true,
                    Err(why) => {
                        let message = format!("images: {} under {}: {why}", quoted(&image.name), quoted(name));
                        refused.push(Problem::at(manifest.images_path.as_path(), image.pos, message));
                        false
                    }
                };
                if !inside(&src_name, &src.name) {
                    continue;
                }
                for (id, name, dst) in &dsts {
                    if inside(dst, name) {
                        image_dsts.push(*id);
                    }
                }
                let image_id = names.intern(&image.name);
                for entry in &image.dmap {
                    let Ok(digest) = entry.digest.parse::<Digest>() else {
                        continue;
                    };
                    let digest_id = digests.intern(&digest);
                    tags.clear();
                    if entry.tags.is_empty() {
                        tags.push(NO_TAG);
                    } else {
                        tags.extend(entry.tags.iter().map(|t| names.intern(t) + 1));
                    }
                    for &dst in &image_dsts {
                        for &tag in &tags {
                            raw.push(RawEdge {
                                dst,
                                image: image_id,
                                tag,
                                digest: digest_id,
                                src: src_id,
                                origin: rank[origin],
                            });
                        }
                    }
                }
            }
        }

        let (names, remap) = names.into_sorted();
        let (digests, digest_remap) = digests.into_sorted();
        for e in &mut raw {
            e.dst = remap[e.dst as usize];
            e.image = remap[e.image as usize];
            if e.tag != NO_TAG {
                e.tag = remap[(e.tag - 1) as usize] + 1;
            }
            e.digest = digest_remap[e.digest as usize];
            e.src = remap[e.src as usize];
        }
        raw.sort_unstable();
        // The same edge twice from one manifest (a registry or tag listed twice) is
        // not worth a note; from two manifests it is a redundancy, found in merge.
        raw.dedup();

        refused.sort();
        refused.dedup();
        let mut set = EdgeSet {
            names,
            refused,
            ..Default::default()
        };
        set.merge(&raw, &digests, manifests, &by_rank);
        set
    }

    /// Walks edges grouped by destination (they are sorted that way) and keeps one
    /// edge per (destination, tag, digest), recording overlaps and redundancies.
    fn merge(&mut self, raw: &[RawEdge], digests: &[Digest], manifests: &[Manifest], by_rank: &[usize]) {
        let path_of = |rank: u32| manifests[by_rank[rank as usize]].path.clone();
        let edge_of = |e: &RawEdge| Edge {
            dst_registry: e.dst,
            image: e.image,
            tag: e.tag.checked_sub(1),
            digest: digests[e.digest as usize],
            src_registry: e.src,
        };
        let mut edges = Vec::with_capacity(raw.len());
        let mut start = 0;
        while start < raw.len() {
            let first = raw[start];
            let mut end = start + 1;
            while end < raw.len() && raw[end].same_destination(&first) {
                end += 1;
            }
            let group = &raw[start..end];
            if first.tag != NO_TAG && group.windows(2).any(|w| w[0].digest != w[1].digest) {
                let first_edge = edge_of(&first);
                self.overlaps.push(Overlap {
                    destination: self.destination(&first_edge),
                    sources: group
                        .iter()
                        .map(|e| (self.src_reference(&edge_of(e)), path_of(e.origin)))
                        .collect(),
                    origins: group.iter().map(|e| (edge_of(e), by_rank[e.origin as usize])).collect(),
                });
            }
            // Within a group, entries for one digest are adjacent; keep the first of each.
            let mut i = 0;
            while i < group.len() {
                let mut j = i + 1;
                while j < group.len() && group[j].digest == group[i].digest {
                    j += 1;
                }
                let edge = edge_of(&group[i]);
                if j - i > 1 {
                    let mut ranks: Vec<u32> = group[i..j].iter().map(|e| e.origin).collect();
                    ranks.sort_unstable();
                    ranks.dedup();
                    self.redundant.push(Redundant {
                        destination: self.destination(&edge),
                        digest: edge.digest,
                        manifests: ranks.into_iter().map(path_of).collect(),
                    });
                }
                edges.push(edge);
                i = j;
            }
            start = end;
        }
        edges.shrink_to_fit();
        self.edges = edges;
    }

    pub fn edges(&self) -> &[Edge] {
        &self.edges
    }

    /// Keeps the edges whose flag in `keep` (index-aligned with [`EdgeSet::edges`]) is
    /// set, in order; names, overlaps and redundancies stay as found on the whole set.
    pub fn retain(&mut self, keep: &[bool]) {
        let mut flags = keep.iter();
        self.edges.retain(|_| flags.next().copied().unwrap_or(false));
    }

    pub fn len(&self) -> usize {
        self.edges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.edges.is_empty()
    }

    /// Destinations claimed by more than one digest; any entry makes promotion fatal.
    pub fn overlaps(&self) -> &[Overlap] {
        &self.overlaps
    }

    /// Harmless duplicates that were merged.
    pub fn redundant(&self) -> &[Redundant] {
        &self.redundant
    }

    /// Registry and image names that would put a repository outside its registry's path,
    /// with their positions: no edge was built for them.
    pub fn refused(&self) -> &[Problem] {
        &self.refused
    }

    pub fn name(&self, id: NameId) -> &str {
        &self.names[id as usize]
    }

    pub fn tag(&self, edge: &Edge) -> Option<&str> {
        edge.tag.map(|t| self.name(t))
    }

    /// `src-registry/image@digest`.
    pub fn src_reference(&self, edge: &Edge) -> String {
        format!(
            "{}/{}@{}",
            self.name(edge.src_registry),
            self.name(edge.image),
            edge.digest
        )
    }

    /// `dst-registry/image:tag`, or `dst-registry/image@digest` for tagless edges.
    pub fn destination(&self, edge: &Edge) -> String {
        match self.tag(edge) {
            Some(tag) => format!("{}/{}:{tag}", self.name(edge.dst_registry), self.name(edge.image)),
            None => format!(
                "{}/{}@{}",
                self.name(edge.dst_registry),
                self.name(edge.image),
                edge.digest
            ),
        }
    }
}

/// Exact edge count before deduplication, so the edge vector is allocated once.
fn estimated_edges(manifests: &[Manifest]) -> usize {
    manifests
        .iter()
        .filter(|m| m.source().is_some())
        .map(|m| {
            let per_destination: usize = m.images.iter().flat_map(|i| &i.dmap).map(|e| e.tags.len().max(1)).sum();
            per_destination * m.destinations().count()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (image name, [(digest fill character, tags)])
    type ImageSpec<'a> = (&'a str, &'a [(char, &'a [&'a str])]);

    fn manifest(path: &str, src: &str, dsts: &[&str], images: &[ImageSpec]) -> Manifest {
        let images: Vec<_> = images
            .iter()
            .map(|(name, dmap)| {
                let entries = dmap
                    .iter()
                    .map(|(c, tags)| (format!("sha256:{}", c.to_string().repeat(64)), tags.to_vec()))
                    .collect();
                (*name, entries)
            })
            .collect();
        Manifest::for_test(path, src, dsts, &images)
    }

    #[test]
    fn one_edge_per_image_digest_tag_destination() {
        let m = manifest(
            "a.yaml",
            "gcr.io/stage",
            &["us.gcr.io/prod", "eu.gcr.io/prod"],
            &[("foo", &[('a', &["1.0", "latest"])])],
        );
        let set = EdgeSet::from_manifests(&[m]);
        assert_eq!(set.len(), 4);
        assert!(set.overlaps().is_empty());
        let dsts: Vec<String> = set.edges().iter().map(|e| set.destination(e)).collect();
        assert_eq!(
            dsts,
            [
                "eu.gcr.io/prod/foo:1.0",
                "eu.gcr.io/prod/foo:latest",
                "us.gcr.io/prod/foo:1.0",
                "us.gcr.io/prod/foo:latest"
            ]
        );
        assert!(set.edges().iter().all(|e| set.name(e.src_registry) == "gcr.io/stage"));
    }

    #[test]
    fn tagless_entry_gives_one_edge_per_destination() {
        let m = manifest("a.yaml", "gcr.io/stage", &["us.gcr.io/prod"], &[("foo", &[('a', &[])])]);
        let set = EdgeSet::from_manifests(&[m]);
        assert_eq!(set.len(), 1);
        assert_eq!(set.tag(&set.edges()[0]), None);
    }

    #[test]
    fn different_digests_on_one_tag_overlap_and_name_both_sources() {
        let a = manifest(
            "a.yaml",
            "gcr.io/a",
            &["us.gcr.io/prod"],
            &[("foo", &[('a', &["1.0"])])],
        );
        let b = manifest(
            "b.yaml",
            "gcr.io/b",
            &["us.gcr.io/prod"],
            &[("foo", &[('b', &["1.0"])])],
        );
        let set = EdgeSet::from_manifests(&[a, b]);
        assert_eq!(set.overlaps().len(), 1);
        let overlap = &set.overlaps()[0];
        assert_eq!(overlap.destination, "us.gcr.io/prod/foo:1.0");
        let srcs: Vec<&str> = overlap.sources.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(
            srcs,
            [
                format!("gcr.io/a/foo@sha256:{}", "a".repeat(64)),
                format!("gcr.io/b/foo@sha256:{}", "b".repeat(64))
            ]
        );
    }

    #[test]
    fn same_digest_twice_is_redundant_and_kept_once() {
        let a = manifest(
            "a.yaml",
            "gcr.io/a",
            &["us.gcr.io/prod"],
            &[("foo", &[('a', &["1.0"])])],
        );
        let b = manifest(
            "b.yaml",
            "gcr.io/b",
            &["us.gcr.io/prod"],
            &[("foo", &[('a', &["1.0"])])],
        );
        let set = EdgeSet::from_manifests(&[a, b]);
        assert!(set.overlaps().is_empty());
        assert_eq!(set.len(), 1);
        assert_eq!(
            set.name(set.edges()[0].src_registry),
            "gcr.io/a",
            "the smallest source wins, not map order"
        );
        assert_eq!(set.redundant().len(), 1);
        assert_eq!(set.redundant()[0].manifests.len(), 2);
    }

    /// Issue 14: `name: ../proj01/img000` in one project's images would have written into
    /// another project's path. Even when validation is bypassed (a manifest built in code),
    /// no edge leaves its registry's path, and the refusal says where and why.
    #[test]
    fn names_that_would_leave_their_registry_make_no_edges() {
        let m = manifest(
            "a.yaml",
            "gcr.io/stage/proj00",
            &["us.gcr.io/prod/proj00", "http://eu.gcr.io/prod"],
            &[("../proj01/img000", &[('a', &["1.0"])]), ("img001", &[('b', &["1.0"])])],
        );
        let set = EdgeSet::from_manifests(&[m]);
        let dsts: Vec<String> = set.edges().iter().map(|e| set.destination(e)).collect();
        assert_eq!(dsts, ["us.gcr.io/prod/proj00/img001:1.0"]);
        let refused: Vec<String> = set.refused().iter().map(|p| p.to_string()).collect();
        assert_eq!(refused.len(), 2, "{refused:#?}");
        assert!(
            refused[0].starts_with("a.yaml:0:0: images: \"../proj01/img000\" under \"gcr.io/stage/proj00\": "),
            "{refused:#?}"
        );
        assert!(
            refused[1].contains("registries: invalid name \"http://eu.gcr.io/prod\": a registry name has no scheme"),
            "{refused:#?}"
        );
    }

    #[test]
    fn invalid_digests_make_no_edges() {
        let mut m = manifest(
            "a.yaml",
            "gcr.io/a",
            &["us.gcr.io/prod"],
            &[("foo", &[('a', &["1.0"])])],
        );
        m.images[0].dmap[0].digest.pop();
        assert!(EdgeSet::from_manifests(&[m]).is_empty());
    }

    #[test]
    fn same_source_in_two_manifests_is_redundant_too() {
        // Identical edges (same source) from two files: kept once and noted.
        let a = manifest(
            "a.yaml",
            "gcr.io/s",
            &["us.gcr.io/prod"],
            &[("foo", &[('a', &["1.0"])])],
        );
        let b = manifest(
            "b.yaml",
            "gcr.io/s",
            &["us.gcr.io/prod"],
            &[("foo", &[('a', &["1.0"])])],
        );
        let set = EdgeSet::from_manifests(&[b, a]);
        assert_eq!(set.len(), 1);
        let paths: Vec<String> = set.redundant()[0]
            .manifests
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(paths, ["a.yaml", "b.yaml"], "path order, not input order");
    }

    #[test]
    fn a_registry_listed_twice_in_one_manifest_is_not_redundant() {
        let m = manifest(
            "a.yaml",
            "gcr.io/s",
            &["us.gcr.io/prod", "us.gcr.io/prod"],
            &[("foo", &[('a', &["1.0", "1.0"])])],
        );
        let set = EdgeSet::from_manifests(&[m]);
        assert_eq!(set.len(), 1);
        assert!(set.redundant().is_empty());
    }

    mod properties {
        use std::collections::{BTreeMap, BTreeSet};

        use proptest::prelude::*;

        use super::*;

        const SRCS: [&str; 3] = ["gcr.io/a", "gcr.io/b", "gcr.io/c"];
        const DSTS: [&str; 4] = ["us.gcr.io/p", "eu.gcr.io/p", "us.gcr.io/p/x", "asia.gcr.io/p"];
        const IMAGES: [&str; 3] = ["foo", "bar", "foo/baz"];
        const TAGS: [&str; 4] = ["1.0", "1.10", "latest", "v2"];
        const DIGESTS: [char; 4] = ['a', 'b', 'c', '0'];

        /// (src, destinations, [(image, [(digest, tags)])])
        type Spec = (usize, Vec<usize>, Vec<(usize, Vec<(usize, Vec<usize>)>)>);

        fn spec() -> impl Strategy<Value = Spec> {
            (
                0..SRCS.len(),
                prop::collection::vec(0..DSTS.len(), 0..4),
                prop::collection::vec(
                    (
                        0..IMAGES.len(),
                        prop::collection::vec((0..DIGESTS.len(), prop::collection::vec(0..TAGS.len(), 0..3)), 0..4),
                    ),
                    0..3,
                ),
            )
        }

        fn build(i: usize, (src, dsts, images): &Spec) -> Manifest {
            let dst_names: Vec<&str> = dsts.iter().map(|&d| DSTS[d]).collect();
            let images: Vec<_> = images
                .iter()
                .map(|(image, dmap)| {
                    let entries = dmap
                        .iter()
                        .map(|(d, tags)| {
                            let digest = format!("sha256:{}", DIGESTS[*d].to_string().repeat(64));
                            (digest, tags.iter().map(|&t| TAGS[t]).collect())
                        })
                        .collect();
                    (IMAGES[*image], entries)
                })
                .collect();
            Manifest::for_test(&format!("m{i}.yaml"), SRCS[*src], &dst_names, &images)
        }

        /// (edges, overlaps with their sources, redundancies), as strings.
        type Observed = (Vec<String>, Vec<(String, Vec<(String, String)>)>, Vec<String>);

        /// Everything observable about a set.
        fn observe(set: &EdgeSet) -> Observed {
            let edges = set
                .edges()
                .iter()
                .map(|e| format!("{} <- {}", set.destination(e), set.src_reference(e)))
                .collect();
            let overlaps = set
                .overlaps()
                .iter()
                .map(|o| {
                    let sources = o
                        .sources
                        .iter()
                        .map(|(s, p)| (s.clone(), p.display().to_string()))
                        .collect();
                    (o.destination.clone(), sources)
                })
                .collect();
            let redundant = set
                .redundant()
                .iter()
                .map(|r| format!("{} {} {:?}", r.destination, r.digest, r.manifests))
                .collect();
            (edges, overlaps, redundant)
        }

        /// Registry names and image names as a hostile manifest PR might write them.
        fn hostile_registry() -> impl Strategy<Value = String> {
            prop_oneof![
                "[a-z]{1,4}\\.io(/[a-z0-9._-]{1,5}){0,2}",
                "[a-zA-Z0-9.:/@?# %_-]{0,24}",
                "[a-z]{1,4}\\.io/(\\.\\./){1,3}[a-z]{1,4}",
            ]
        }

        fn hostile_image() -> impl Strategy<Value = String> {
            prop_oneof![
                "[a-z0-9]{1,5}(/[a-z0-9._-]{1,5}){0,2}",
                "[a-zA-Z0-9./%_ -]{0,16}",
                "(\\.\\./){1,3}[a-z]{1,5}(/[a-z]{1,5})?",
                "/?[a-z]{1,3}(/\\.{1,2}){1,2}(/[a-z]{1,3})?",
            ]
        }

        proptest! {
            /// Whatever the names, every destination repository an edge writes (the registry
            /// path, `/`, the image, as `RepoRoot::repo` joins them) lies under that
            /// registry's path, also once a URL has resolved its dot segments.
            #[test]
            fn no_destination_repository_leaves_its_registry(
                src in hostile_registry(),
                dsts in prop::collection::vec(hostile_registry(), 1..4),
                images in prop::collection::vec(hostile_image(), 1..4),
            ) {
                let dst_names: Vec<&str> = dsts.iter().map(String::as_str).collect();
                let digest = format!("sha256:{}", "a".repeat(64));
                let images: Vec<_> = images
                    .iter()
                    .map(|name| (name.as_str(), vec![(digest.clone(), vec!["1.0"])]))
                    .collect();
                let m = Manifest::for_test("m.yaml", &src, &dst_names, &images);
                let set = EdgeSet::from_manifests(&[m]);
                for edge in set.edges() {
                    let registry = RegistryName::parse(set.name(edge.dst_registry));
                    prop_assert!(registry.is_ok(), "an edge to an invalid registry name");
                    let prefix = registry.unwrap().prefix().to_string();
                    let image = set.name(edge.image);
                    let repository = if prefix.is_empty() { image.to_string() } else { format!("{prefix}/{image}") };
                    let under = format!("{prefix}/");
                    prop_assert!(prefix.is_empty() || repository.starts_with(&under));
                    prop_assert!(repository.len() <= 255);
                    let url = url::Url::parse("https://r.example/").unwrap().join(&format!("/v2/{repository}/tags/list")).unwrap();
                    prop_assert_eq!(url.path(), format!("/v2/{repository}/tags/list"));
                    prop_assert!(repository.split('/').all(|c| !c.is_empty() && c != "." && c != ".."));
                }
            }

            #[test]
            fn edges_are_sorted_without_duplicates(specs in prop::collection::vec(spec(), 0..5)) {
                let manifests: Vec<Manifest> = specs.iter().enumerate().map(|(i, s)| build(i, s)).collect();
                let set = EdgeSet::from_manifests(&manifests);
                prop_assert!(set.edges().windows(2).all(|w| w[0] < w[1]));
                // After merging, one edge per (destination, image, tag, digest).
                let keys: BTreeSet<_> = set.edges().iter().map(|e| (e.dst_registry, e.image, e.tag, e.digest)).collect();
                prop_assert_eq!(keys.len(), set.len());
                // Names are in string order, so id order is string order.
                let names: Vec<&str> = (0..set.names.len() as NameId).map(|i| set.name(i)).collect();
                prop_assert!(names.windows(2).all(|w| w[0] < w[1]));
            }

            #[test]
            fn result_does_not_depend_on_manifest_order(
                specs in prop::collection::vec(spec(), 0..5),
                rotate in 0usize..5,
            ) {
                let manifests: Vec<Manifest> = specs.iter().enumerate().map(|(i, s)| build(i, s)).collect();
                let want = observe(&EdgeSet::from_manifests(&manifests));
                let mut reversed = manifests.clone();
                reversed.reverse();
                prop_assert_eq!(observe(&EdgeSet::from_manifests(&reversed)), want.clone());
                let mut rotated = manifests;
                if !rotated.is_empty() {
                    let n = rotate % rotated.len();
                    rotated.rotate_left(n);
                }
                prop_assert_eq!(observe(&EdgeSet::from_manifests(&rotated)), want);
            }

            #[test]
            fn overlaps_are_exactly_tagged_destinations_with_several_digests(
                specs in prop::collection::vec(spec(), 0..5),
            ) {
                let manifests: Vec<Manifest> = specs.iter().enumerate().map(|(i, s)| build(i, s)).collect();
                // Independent model: destination "reg/image:tag" -> digests.
                let mut wanted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
                for m in &manifests {
                    for dst in m.destinations() {
                        for image in &m.images {
                            for entry in &image.dmap {
                                for tag in &entry.tags {
                                    wanted
                                        .entry(format!("{}/{}:{tag}", dst.name, image.name))
                                        .or_default()
                                        .insert(entry.digest.clone());
                                }
                            }
                        }
                    }
                }
                let expected: Vec<String> = wanted.into_iter().filter(|(_, d)| d.len() > 1).map(|(k, _)| k).collect();
                let set = EdgeSet::from_manifests(&manifests);
                let mut got: Vec<String> = set.overlaps().iter().map(|o| o.destination.clone()).collect();
                got.sort();
                prop_assert_eq!(got, expected);
                for o in set.overlaps() {
                    prop_assert_eq!(o.sources.len(), o.origins.len());
                    for ((src, path), (edge, index)) in o.sources.iter().zip(&o.origins) {
                        prop_assert_eq!(src, &set.src_reference(edge));
                        prop_assert_eq!(path, &manifests[*index].path);
                    }
                }
            }
        }
    }
}
