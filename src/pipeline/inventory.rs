//! What the registries hold, read in rounds so that a rerun costs as little as possible:
//! 1. list the tags of every source and destination repository (a repository that does
//!    not exist has no tags); Google's extended listing answers everything in one request;
//! 2. HEAD only the destination tags the manifests mention and that exist;
//! 3. HEAD destination digests only where the tag did not already settle the edge;
//! 4. HEAD source digests only for edges that are not already promoted (and tagless ones,
//!    to report those staging lost since).
//!
//! Each round runs concurrently; the backends apply per-host rate limits and gates.
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;

use futures_util::future::join_all;
use futures_util::{StreamExt, stream};
use tracing::error;

use crate::copy::PENDING_REQUESTS;
use crate::digest::Digest;
use crate::edges::{Edge, EdgeSet, NameId};
use crate::policy::{Evidence, ImageFacts};
use crate::registry::{self, Descriptor, ManifestRef, TagList};

use super::Error;
use super::decide::{Decision, DstTag, Facts, already_promoted, decide};
use super::state::{RepoKey, RunState};

/// What a tags listing told about a repository.
enum Listing {
    /// The registry does not know the repository: it has no tags. Distribution answers
    /// NAME_UNKNOWN for a repository that holds only untagged manifests too, so this
    /// never proves that a digest is absent.
    Unknown,
    /// A standard registry: tag names only; digests need HEADs.
    Tags(HashSet<String>),
    /// Google's extended listing: every digest and its tags, no HEADs needed.
    Complete {
        tags: HashMap<String, Digest>,
        digests: HashSet<Digest>,
    },
}

impl From<Option<TagList>> for Listing {
    fn from(list: Option<TagList>) -> Self {
        match list {
            None => Listing::Unknown,
            Some(TagList {
                google_manifests: Some(manifests),
                ..
            }) => {
                let mut tags = HashMap::new();
                let mut digests = HashSet::new();
                for m in manifests {
                    digests.insert(m.digest);
                    for t in m.tags {
                        tags.insert(t, m.digest);
                    }
                }
                Listing::Complete { tags, digests }
            }
            Some(list) => Listing::Tags(list.tags.into_iter().collect()),
        }
    }
}

/// Everything read so far; `None` from a query means "needs a HEAD".
#[derive(Default)]
struct Inventory {
    listings: HashMap<RepoKey, Listing>,
    tag_heads: HashMap<(RepoKey, NameId), Option<Digest>>,
    digest_heads: HashMap<(RepoKey, Digest), bool>,
    /// What the digest HEADs answered: media type and size, for the policy's `image`.
    descriptors: HashMap<(RepoKey, Digest), Descriptor>,
}

impl Inventory {
    fn tag(&self, key: RepoKey, tag_id: NameId, tag: &str) -> Option<Option<Digest>> {
        match self.listings.get(&key) {
            None | Some(Listing::Unknown) => Some(None),
            Some(Listing::Tags(names)) if !names.contains(tag) => Some(None),
            Some(Listing::Tags(_)) => self.tag_heads.get(&(key, tag_id)).copied(),
            Some(Listing::Complete { tags, .. }) => Some(tags.get(tag).copied()),
        }
    }

    fn has_digest(&self, key: RepoKey, digest: Digest) -> Option<bool> {
        match self.listings.get(&key) {
            None => Some(false),
            Some(Listing::Unknown | Listing::Tags(_)) => self.digest_heads.get(&(key, digest)).copied(),
            Some(Listing::Complete { digests, .. }) => Some(digests.contains(&digest)),
        }
    }

    fn dst_tag(&self, edges: &EdgeSet, edge: &Edge) -> DstTag {
        let Some(tag_id) = edge.tag else {
            return DstTag::Absent;
        };
        match self
            .tag(RepoKey::destination_of(edge), tag_id, edges.name(tag_id))
            .flatten()
        {
            None => DstTag::Absent,
            Some(d) if d == edge.digest => DstTag::Here,
            Some(d) => DstTag::Elsewhere(d),
        }
    }
}

/// Every source and destination repository the edges name.
pub(super) fn affected_repos(edges: &[Edge]) -> BTreeSet<RepoKey> {
    edges
        .iter()
        .flat_map(|e| [RepoKey::source_of(e), RepoKey::destination_of(e)])
        .collect()
}

/// Runs `job` over `items` and fails with the first error (every error is logged).
///
/// Each registry gets its own bound on pending requests, and every registry runs at once.
/// The items come sorted by repository, registry first: with one shared bound, every
/// registry but the first waited while that one's gate paced its requests (50 a second
/// until its controller grows), and the plan paid each registry's slow start in turn.
async fn each<K, T, F, Fut>(
    items: impl IntoIterator<Item = K>,
    registry_of: impl Fn(&K) -> NameId,
    job: F,
) -> Result<Vec<T>, Error>
where
    F: Fn(K) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let mut by_registry: BTreeMap<NameId, Vec<K>> = BTreeMap::new();
    for item in items {
        by_registry.entry(registry_of(&item)).or_default().push(item);
    }
    let job = &job;
    let lanes = by_registry.into_values().map(|items| {
        stream::iter(items)
            .map(job)
            .buffer_unordered(PENDING_REQUESTS)
            .collect::<Vec<Result<T, Error>>>()
    });
    let results = join_all(lanes).await.into_iter().flatten();
    let mut out = Vec::new();
    let mut first = None;
    for r in results {
        match r {
            Ok(v) => out.push(v),
            Err(e) => {
                error!("{e}");
                first.get_or_insert(e);
            }
        }
    }
    match first {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Names the planning round a registry failure happened in.
fn during(round: &'static str) -> impl Fn(registry::Error) -> Error {
    move |source| Error::Read {
        during: round,
        source: Box::new(source),
    }
}

fn check_cancel(state: &RunState) -> Result<(), Error> {
    if state.cancel.is_cancelled() {
        Err(Error::Interrupted)
    } else {
        Ok(())
    }
}

/// Reads the registries and decides every edge: fills `state.decisions` and
/// `state.fresh_destinations`.
pub(super) async fn decide_edges(state: &mut RunState) -> Result<(), Error> {
    let mut inv = Inventory::default();
    let st = &*state;
    let edges = st.edges.edges();

    const LISTING: &str = "reading registries";
    let listed = each(
        affected_repos(edges),
        |key| key.registry,
        |key| async move {
            let repo = st.repo(key)?;
            let list = repo.registry.list_tags(&repo.path).await.map_err(during(LISTING))?;
            Ok((key, Listing::from(list)))
        },
    )
    .await?;
    inv.listings.extend(listed);
    check_cancel(st)?;

    let tag_heads: BTreeSet<(RepoKey, NameId)> = edges
        .iter()
        .filter_map(|e| {
            let tag = e.tag?;
            let key = RepoKey::destination_of(e);
            inv.tag(key, tag, st.edges.name(tag)).is_none().then_some((key, tag))
        })
        .collect();
    const TAGS: &str = "reading destination tags";
    let heads = each(
        tag_heads,
        |(key, _)| key.registry,
        |(key, tag)| async move {
            let repo = st.repo(key)?;
            let reference = ManifestRef::Tag(st.edges.name(tag).to_string());
            let desc = repo
                .registry
                .head_manifest(&repo.path, &reference)
                .await
                .map_err(during(TAGS))?;
            Ok(((key, tag), desc.map(|d| d.digest)))
        },
    )
    .await?;
    for ((key, tag), digest) in heads {
        if let Some(d) = digest {
            inv.digest_heads.insert((key, d), true);
        }
        inv.tag_heads.insert((key, tag), digest);
    }
    check_cancel(st)?;

    let dst_digests: Vec<(RepoKey, Digest)> = edges
        .iter()
        .filter(|e| !(e.tag.is_some() && inv.dst_tag(&st.edges, e) == DstTag::Here))
        .map(|e| (RepoKey::destination_of(e), e.digest))
        .collect();
    head_digests(st, &mut inv, dst_digests, "reading destination digests").await?;
    check_cancel(st)?;
    let fresh = fresh_destinations(&inv, edges);

    // The source only matters for edges that are not already promoted, and for tagless
    // ones that are (reported when staging lost them since, as Go does).
    let src_digests: Vec<(RepoKey, Digest)> = edges
        .iter()
        .filter(|e| {
            let dst_has = inv.has_digest(RepoKey::destination_of(e), e.digest) == Some(true);
            e.tag.is_none() || !already_promoted(e.tag.is_some(), inv.dst_tag(&st.edges, e), dst_has)
        })
        .map(|e| (RepoKey::source_of(e), e.digest))
        .collect();
    head_digests(st, &mut inv, src_digests, "reading source digests").await?;

    let decisions: Vec<Decision> = edges
        .iter()
        .map(|e| {
            let dst = RepoKey::destination_of(e);
            decide(&Facts {
                tagged: e.tag.is_some(),
                dst_tag: inv.dst_tag(&st.edges, e),
                dst_has_digest: inv.has_digest(dst, e.digest).unwrap_or(false),
                src_has_digest: inv.has_digest(RepoKey::source_of(e), e.digest).unwrap_or(false),
            })
        })
        .collect();
    // What the source HEADs told about the images to write is the first evidence.
    let mut evidence = HashMap::new();
    for (edge, decision) in edges.iter().zip(&decisions) {
        let source = (RepoKey::source_of(edge), edge.digest);
        if let (true, Some(descriptor)) = (decision.writes(), inv.descriptors.get(&source)) {
            evidence.entry(source).or_insert_with(|| Evidence {
                image: ImageFacts {
                    media_type: descriptor.media_type.as_str().to_string(),
                    platforms: Vec::new(),
                    size: descriptor.size,
                },
                ..Evidence::default()
            });
        }
    }
    state.evidence.extend(evidence);
    state.decisions = decisions;
    state.fresh_destinations = fresh;
    Ok(())
}

/// Destination repositories the registry does not know and where none of the edges'
/// digests were found (every edge into an unknown repository has its digest HEADed).
fn fresh_destinations(inv: &Inventory, edges: &[Edge]) -> BTreeSet<RepoKey> {
    let inhabited: HashSet<RepoKey> = inv
        .digest_heads
        .iter()
        .filter(|(_, present)| **present)
        .map(|((key, _), _)| *key)
        .collect();
    edges
        .iter()
        .map(RepoKey::destination_of)
        .filter(|key| matches!(inv.listings.get(key), Some(Listing::Unknown)) && !inhabited.contains(key))
        .collect()
}

/// HEADs every (repository, digest) the inventory cannot answer yet, once each, and
/// records the answers.
async fn head_digests(
    st: &RunState,
    inv: &mut Inventory,
    wanted: Vec<(RepoKey, Digest)>,
    round: &'static str,
) -> Result<(), Error> {
    let unknown: BTreeSet<(RepoKey, Digest)> = wanted
        .into_iter()
        .filter(|(key, d)| inv.has_digest(*key, *d).is_none())
        .collect();
    let heads = each(
        unknown,
        |(key, _)| key.registry,
        |(key, digest)| async move {
            let repo = st.repo(key)?;
            let desc = repo
                .registry
                .head_manifest(&repo.path, &ManifestRef::Digest(digest))
                .await
                .map_err(during(round))?;
            Ok(((key, digest), desc))
        },
    )
    .await?;
    for (at, desc) in heads {
        inv.digest_heads.insert(at, desc.is_some());
        if let Some(desc) = desc {
            inv.descriptors.insert(at, desc);
        }
    }
    Ok(())
}
