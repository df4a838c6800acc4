//! Phase 2, Plan: load manifests, compute edges, read only the affected repositories
//! and decide every edge (anchor §3.2, §3.4, §3.5).
//!
//! Registry reads come in rounds so that a rerun costs as little as possible:
//! 1. list the tags of every source and destination repository (a repository that does
//!    not exist has no tags); Google's extended listing answers everything in one request;
//! 2. HEAD only the destination tags the manifests mention and that exist;
//! 3. HEAD destination digests only where the tag did not already settle the edge;
//! 4. HEAD source digests only for edges that are not already promoted.
//!
//! Each round runs concurrently; the backends apply per-host rate limits and gates.
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::future::Future;
use std::io::{BufWriter, Write};

use futures_util::{StreamExt, stream};
use serde::Serialize;
use tracing::{debug, error, info};

use crate::digest::Digest;
use crate::edges::{Edge, EdgeSet, NameId};
use crate::error::KpromoError;
use crate::manifest::load;
use crate::registry::{ManifestRef, TagList};

use super::Flow;
use super::decide::{Decision, DstTag, Facts, already_promoted, decide};
use super::state::{PlanState, RepoKey};

/// Requests in flight across all registries while planning. The backends' per-host
/// gates do the real limiting; this only bounds the number of pending futures.
pub(crate) const GLOBAL_JOBS: usize = 64;

pub async fn run(state: &mut PlanState) -> Result<Flow, KpromoError> {
    let manifests = load::load(&state.options.manifests, state.options.diff.as_ref()).map_err(load_error)?;
    if manifests.is_empty() {
        return Ok(Flow::Stop("no manifests to process, nothing to promote"));
    }
    state.manifests = manifests.len();
    state.edges = EdgeSet::from_manifests(&manifests);
    drop(manifests);
    check_overlaps(&state.edges)?;
    open_roots(state)?;
    info!(
        "{} edges from {} manifests; reading {} repositories",
        state.edges.len(),
        state.manifests,
        affected_repos(state.edges.edges()).len()
    );
    plan_edges(state).await?;
    if state.options.parse_only {
        return Ok(Flow::Stop("--parse-only"));
    }
    Ok(Flow::Continue)
}

/// Logs every manifest problem as its own line (so `--log-format json` output stays one
/// JSON object per line) and returns a one-line error.
fn load_error(e: load::LoadError) -> KpromoError {
    for problem in &e.problems {
        error!("{problem}");
    }
    let message = match e.problems.as_slice() {
        [] => "parsing manifests: no manifests could be loaded".to_string(),
        [one] => format!("parsing manifests: {one}"),
        [first, rest @ ..] => format!(
            "parsing manifests: {} problems (each logged above); first: {first}",
            rest.len() + 1
        ),
    };
    KpromoError::usage(anyhow::anyhow!(message))
}

pub(crate) fn check_overlaps(edges: &EdgeSet) -> Result<(), KpromoError> {
    for redundant in edges.redundant() {
        debug!(
            "redundant edge {} ({}) kept once",
            redundant.destination, redundant.digest
        );
    }
    if edges.overlaps().is_empty() {
        return Ok(());
    }
    for overlap in edges.overlaps() {
        error!("{overlap}");
    }
    let first = &edges.overlaps()[0];
    Err(KpromoError::usage(anyhow::anyhow!(
        "overlapping edges detected: {} destinations claimed by different digests (each logged above); first: {first}",
        edges.overlaps().len()
    )))
}

/// Resolves every registry an edge names. Tests that inject roots have no
/// [`crate::registry::Registries`] and skip this.
fn open_roots(state: &mut PlanState) -> Result<(), KpromoError> {
    let Some(registries) = &state.registries else {
        return Ok(());
    };
    let ids: BTreeSet<NameId> = state
        .edges
        .edges()
        .iter()
        .flat_map(|e| [e.src_registry, e.dst_registry])
        .collect();
    for id in ids {
        let name = state.edges.name(id);
        let root = registries
            .open(name)
            .map_err(|e| KpromoError::usage(anyhow::Error::new(e).context(format!("manifest registry {name}"))))?;
        state.roots.insert(id, root);
    }
    Ok(())
}

fn affected_repos(edges: &[Edge]) -> BTreeSet<RepoKey> {
    edges
        .iter()
        .flat_map(|e| [RepoKey::source_of(e), RepoKey::destination_of(e)])
        .collect()
}

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

/// Runs `job` over `items` with bounded concurrency and fails with the first error
/// (every error is logged), wrapped as a promotion error with `context`.
async fn each<I, T, F, Fut>(items: I, context: &str, job: F) -> Result<Vec<T>, KpromoError>
where
    I: IntoIterator,
    F: Fn(I::Item) -> Fut,
    Fut: Future<Output = Result<T, anyhow::Error>>,
{
    let results: Vec<Result<T, anyhow::Error>> = stream::iter(items)
        .map(job)
        .buffer_unordered(GLOBAL_JOBS)
        .collect()
        .await;
    let mut out = Vec::with_capacity(results.len());
    let mut first = None;
    for r in results {
        match r {
            Ok(v) => out.push(v),
            Err(e) => {
                error!("{context}: {e:#}");
                first.get_or_insert(e);
            }
        }
    }
    match first {
        Some(e) => Err(KpromoError::promotion(e.context(context.to_string()))),
        None => Ok(out),
    }
}

fn check_cancel(state: &PlanState) -> Result<(), KpromoError> {
    if state.cancel.is_cancelled() {
        Err(super::interrupted())
    } else {
        Ok(())
    }
}

/// Decides every edge, reports the plan and refuses it when it is not clean. Split
/// from [`run`] so tests can start from injected edges and registries.
pub(crate) async fn plan_edges(state: &mut PlanState) -> Result<(), KpromoError> {
    decide_edges(state).await?;
    finish_plan(state)
}

/// Reads the registries and fills `state.decisions`.
async fn decide_edges(state: &mut PlanState) -> Result<(), KpromoError> {
    let mut inv = Inventory::default();
    let st = &*state;
    let edges = st.edges.edges();

    let listed = each(affected_repos(edges), "reading registries", |key| async move {
        let (registry, repo) = st.repo(key)?;
        let list = registry.list_tags(&repo).await?;
        Ok((key, Listing::from(list)))
    })
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
    let heads = each(tag_heads, "reading destination tags", |(key, tag)| async move {
        let (registry, repo) = st.repo(key)?;
        let reference = ManifestRef::Tag(st.edges.name(tag).to_string());
        let desc = registry.head_manifest(&repo, &reference).await?;
        Ok(((key, tag), desc.map(|d| d.digest)))
    })
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

    let decisions = edges
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
    st: &PlanState,
    inv: &mut Inventory,
    wanted: Vec<(RepoKey, Digest)>,
    context: &str,
) -> Result<(), KpromoError> {
    let unknown: BTreeSet<(RepoKey, Digest)> = wanted
        .into_iter()
        .filter(|(key, d)| inv.has_digest(*key, *d).is_none())
        .collect();
    let heads = each(unknown, context, |(key, digest)| head_digest(st, key, digest)).await?;
    inv.digest_heads.extend(heads);
    Ok(())
}

async fn head_digest(st: &PlanState, key: RepoKey, digest: Digest) -> Result<((RepoKey, Digest), bool), anyhow::Error> {
    let (registry, repo) = st.repo(key)?;
    let desc = registry.head_manifest(&repo, &ManifestRef::Digest(digest)).await?;
    Ok(((key, digest), desc.is_some()))
}

/// Edge counts by decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub copy: usize,
    pub retag: usize,
    pub skip: usize,
    pub lost: usize,
    pub tag_moves: usize,
}

pub fn counts(decisions: &[Decision]) -> Counts {
    let mut c = Counts::default();
    for d in decisions {
        match d {
            Decision::Copy => c.copy += 1,
            Decision::Retag => c.retag += 1,
            Decision::Skip | Decision::SkipStillLost => c.skip += 1,
            Decision::Lost => c.lost += 1,
            Decision::TagMove { .. } => c.tag_moves += 1,
        }
    }
    c
}

/// Prints the plan, writes `--plan-out`, and fails on tag moves (and on lost images
/// with `--fail-on-lost`) after reporting them, so nothing is written.
fn finish_plan(state: &PlanState) -> Result<(), KpromoError> {
    let c = counts(&state.decisions);
    let mut out = std::io::stdout().lock();
    print_plan(state, &c, &mut out)
        .map_err(|e| KpromoError::promotion(anyhow::Error::new(e).context("printing the plan")))?;
    if let Some(path) = &state.options.plan_out {
        write_plan_json(state, &c, path).map_err(|e| {
            KpromoError::promotion(anyhow::Error::new(e).context(format!("writing the plan to {}", path.display())))
        })?;
    }
    if c.tag_moves > 0 {
        return Err(KpromoError::promotion(anyhow::anyhow!(
            "{} tag moves detected; tag moves are not supported, nothing was promoted",
            c.tag_moves
        )));
    }
    if c.lost > 0 && state.options.fail_on_lost {
        return Err(KpromoError::promotion(anyhow::anyhow!(
            "{} edges are _LOST_ (not in their source registry) and --fail-on-lost is set; nothing was promoted",
            c.lost
        )));
    }
    Ok(())
}

fn print_plan(state: &PlanState, c: &Counts, out: &mut impl Write) -> std::io::Result<()> {
    let edges = &state.edges;
    writeln!(
        out,
        "plan: {} edges from {} manifests: {} copy, {} retag, {} already promoted, {} lost, {} tag moves",
        edges.len(),
        state.manifests,
        c.copy,
        c.retag,
        c.skip,
        c.lost,
        c.tag_moves
    )?;
    for (edge, decision) in state.decided() {
        let src = edges.src_reference(edge);
        let dst = edges.destination(edge);
        match decision {
            Decision::Skip => {}
            Decision::SkipStillLost => {
                error!(
                    "{dst} is already promoted, but it is still _LOST_ (can't find {src} in src registry! please backfill it!)"
                );
                writeln!(
                    out,
                    "  skip     {src} -> {dst} (already promoted; still _LOST_ in the source)"
                )?;
            }
            Decision::Copy | Decision::Retag => writeln!(out, "  {:<8} {src} -> {dst}", decision.label())?,
            Decision::Lost => {
                error!("cannot promote {src} to {dst} because it is _LOST_ (can't find it in src registry!)");
                writeln!(out, "  lost     {src} -> {dst} (_LOST_: not in the source registry)")?;
            }
            Decision::TagMove { current, digest_in_dst } => {
                let tag = edges.tag(edge).unwrap_or_default();
                if *digest_in_dst {
                    error!("{dst}: tag {tag}: tag move detected (it points to {current})");
                } else {
                    error!(
                        "{dst}: tag '{tag}' in dest points to {current}, not {}; tag moves are not supported",
                        edge.digest
                    );
                }
                writeln!(
                    out,
                    "  TAG MOVE {dst} points to {current}, manifests want {}",
                    edge.digest
                )?;
            }
        }
    }
    out.flush()
}

#[derive(Serialize)]
struct PlanEdge<'a> {
    source: String,
    destination: String,
    image: &'a str,
    tag: Option<&'a str>,
    digest: String,
    decision: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    current_digest: Option<String>,
}

/// Streams the plan as JSON, one edge at a time: the real tree has a million edges.
fn write_plan_json(state: &PlanState, c: &Counts, path: &std::path::Path) -> std::io::Result<()> {
    let mut w = BufWriter::new(File::create(path)?);
    write!(w, "{{\"manifests\":{},\"counts\":", state.manifests)?;
    serde_json::to_writer(&mut w, c)?;
    write!(w, ",\"edges\":[")?;
    let edges = &state.edges;
    for (i, (edge, decision)) in state.decided().enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        let entry = PlanEdge {
            source: edges.src_reference(edge),
            destination: edges.destination(edge),
            image: edges.name(edge.image),
            tag: edges.tag(edge),
            digest: edge.digest.to_string(),
            decision: decision.label(),
            current_digest: match decision {
                Decision::TagMove { current, .. } => Some(current.to_string()),
                _ => None,
            },
        };
        serde_json::to_writer(&mut w, &entry)?;
    }
    w.write_all(b"]}\n")?;
    w.flush()
}
