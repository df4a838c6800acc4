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
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::digest::Digest;
use crate::manifest::Manifest;

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
}

#[derive(Default)]
struct Interner {
    ids: HashMap<Box<str>, NameId>,
    names: Vec<Box<str>>,
}

impl Interner {
    fn intern(&mut self, name: &str) -> NameId {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = NameId::try_from(self.names.len()).expect("fewer than 2^32 distinct names");
        self.names.push(name.into());
        self.ids.insert(name.into(), id);
        id
    }

    /// Renumbers ids so that id order equals string order; returns the sorted names
    /// and the old-id -> new-id map.
    fn into_sorted(self) -> (Vec<Box<str>>, Vec<NameId>) {
        let mut order: Vec<NameId> = (0..self.names.len() as NameId).collect();
        order.sort_unstable_by(|&a, &b| self.names[a as usize].cmp(&self.names[b as usize]));
        let mut remap = vec![0; self.names.len()];
        for (new, &old) in order.iter().enumerate() {
            remap[old as usize] = new as NameId;
        }
        let mut names: Vec<Option<Box<str>>> = self.names.into_iter().map(Some).collect();
        let sorted = order
            .iter()
            .map(|&old| names[old as usize].take().expect("each id once"))
            .collect();
        (sorted, remap)
    }
}

impl EdgeSet {
    /// Expands manifests into edges. Entries whose digest does not parse are skipped:
    /// validation reports them with their position, and they can never be promoted.
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

        let mut interner = Interner::default();
        // (edge, rank of the manifest it came from)
        let mut raw: Vec<(Edge, u32)> = Vec::with_capacity(estimated_edges(manifests));
        for (origin, manifest) in manifests.iter().enumerate() {
            let Some(src) = manifest.source() else {
                continue;
            };
            let src_id = interner.intern(&src.name);
            let dsts: Vec<NameId> = manifest.destinations().map(|d| interner.intern(&d.name)).collect();
            let mut tags: Vec<Option<NameId>> = Vec::new();
            for image in &manifest.images {
                let image_id = interner.intern(&image.name);
                for entry in &image.dmap {
                    let Ok(digest) = entry.digest.parse::<Digest>() else {
                        continue;
                    };
                    tags.clear();
                    if entry.tags.is_empty() {
                        tags.push(None);
                    } else {
                        tags.extend(entry.tags.iter().map(|t| Some(interner.intern(t))));
                    }
                    for &dst in &dsts {
                        for &tag in &tags {
                            let edge = Edge {
                                dst_registry: dst,
                                image: image_id,
                                tag,
                                digest,
                                src_registry: src_id,
                            };
                            raw.push((edge, rank[origin]));
                        }
                    }
                }
            }
        }

        let (names, remap) = interner.into_sorted();
        for (edge, _) in &mut raw {
            edge.dst_registry = remap[edge.dst_registry as usize];
            edge.image = remap[edge.image as usize];
            edge.tag = edge.tag.map(|t| remap[t as usize]);
            edge.src_registry = remap[edge.src_registry as usize];
        }
        raw.sort_unstable();
        // The same edge twice from one manifest (a registry or tag listed twice) is
        // not worth a note; from two manifests it is a redundancy, found in merge.
        raw.dedup();

        let mut set = EdgeSet {
            names,
            ..Default::default()
        };
        set.merge(raw, manifests, &by_rank);
        set
    }

    /// Walks edges grouped by destination (they are sorted that way) and keeps one
    /// edge per (destination, tag, digest), recording overlaps and redundancies.
    fn merge(&mut self, raw: Vec<(Edge, u32)>, manifests: &[Manifest], by_rank: &[usize]) {
        let path_of = |rank: u32| manifests[by_rank[rank as usize]].path.clone();
        let mut edges = Vec::with_capacity(raw.len());
        let mut start = 0;
        while start < raw.len() {
            let (first, _) = raw[start];
            let mut end = start + 1;
            while end < raw.len() && same_destination(&raw[end].0, &first) {
                end += 1;
            }
            let group = &raw[start..end];
            let distinct_digests = {
                let mut n = 1;
                for pair in group.windows(2) {
                    if pair[0].0.digest != pair[1].0.digest {
                        n += 1;
                    }
                }
                n
            };
            if first.tag.is_some() && distinct_digests > 1 {
                self.overlaps.push(Overlap {
                    destination: self.destination(&first),
                    sources: group
                        .iter()
                        .map(|(e, o)| (self.src_reference(e), path_of(*o)))
                        .collect(),
                    origins: group.iter().map(|(e, o)| (*e, by_rank[*o as usize])).collect(),
                });
            }
            // Within a group, entries for one digest are adjacent; keep the first of each.
            let mut i = 0;
            while i < group.len() {
                let (edge, _) = group[i];
                let mut j = i + 1;
                while j < group.len() && group[j].0.digest == edge.digest {
                    j += 1;
                }
                if j - i > 1 {
                    let mut ranks: Vec<u32> = group[i..j].iter().map(|(_, o)| *o).collect();
                    ranks.sort_unstable();
                    ranks.dedup();
                    let paths = ranks.into_iter().map(path_of).collect();
                    self.redundant.push(Redundant {
                        destination: self.destination(&edge),
                        digest: edge.digest,
                        manifests: paths,
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

fn same_destination(a: &Edge, b: &Edge) -> bool {
    a.dst_registry == b.dst_registry
        && a.image == b.image
        && a.tag == b.tag
        && (a.tag.is_some() || a.digest == b.digest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{DigestEntry, Image, Position, RegistryContext};

    fn reg(name: &str, src: bool) -> RegistryContext {
        RegistryContext {
            name: name.into(),
            service_account: None,
            src,
            pos: Position::default(),
        }
    }

    /// (image name, [(digest fill character, tags)])
    type ImageSpec<'a> = (&'a str, &'a [(char, &'a [&'a str])]);

    fn manifest(path: &str, src: &str, dsts: &[&str], images: &[ImageSpec]) -> Manifest {
        let mut registries = vec![reg(src, true)];
        registries.extend(dsts.iter().map(|d| reg(d, false)));
        let images = images
            .iter()
            .map(|(name, dmap)| Image {
                name: name.to_string(),
                dmap: dmap
                    .iter()
                    .map(|(c, tags)| DigestEntry {
                        digest: format!("sha256:{}", c.to_string().repeat(64)),
                        tags: tags.iter().map(|t| t.to_string()).collect(),
                        pos: Position::default(),
                    })
                    .collect(),
                pos: Position::default(),
            })
            .collect();
        let path = Arc::new(PathBuf::from(path));
        Manifest {
            path: path.clone(),
            images_path: path,
            registries,
            images,
        }
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
}
