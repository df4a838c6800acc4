//! Phase 5, Promote: copy what the plan decided, with the fewest reads and writes.
//!
//! Work is grouped by source image (repository + digest), not by edge: a digest with
//! three tags going to twenty mirrors is one graph read, not sixty copies. Steps, each
//! running concurrently across images and destinations:
//! 1. read each source manifest graph once (index children by digest);
//! 2. HEAD child manifests at each destination repository; present children (and
//!    everything under them) are not copied again;
//! 3. HEAD the blobs the missing manifests need at each destination, except in
//!    repositories the plan found not to exist and where no child manifest turned up
//!    (they hold nothing; on a new mirror this saves a third of its requests);
//! 4. copy each missing blob once: a cross-repository mount when the destination is on
//!    the source's registry, otherwise one source read streamed to every destination
//!    that lacks it (then mounted into further repositories of the same registry);
//! 5. per destination repository, push manifests by digest from the leaves up, then
//!    the tags — a tag only after everything it points to exists.
//!
//! Each (registry, repository, blob) is handled by exactly one task, because
//! distribution races on concurrent uploads of the same blob to one repository.
//! Manifest bytes pass through untouched, so destination digests equal source digests.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use futures_util::{StreamExt, stream};
use tracing::{error, info, warn};

use crate::sync::lock;

use crate::digest::Digest;
use crate::edges::NameId;
use crate::error::KpromoError;
use crate::registry::{ManifestRef, MountOutcome, RawManifest, Registry};

use super::Flow;
use super::decide::Decision;
use super::fanout::{Target, fan_out};
use super::graph::{self, Refs};
use super::plan::GLOBAL_JOBS;
use super::progress::Progress;
use super::state::{Cancel, PlanState, PromoteReport, RepoKey};

/// Blob copies in flight. Kept well under a host's connection gate: a copy holds a
/// source read open while its uploads wait for slots, and source and destination can
/// be the same host.
const BLOB_JOBS: usize = 8;
/// Manifest pushes in flight within one destination repository.
const PUSHES_PER_REPO: usize = 8;
/// Index nesting deeper than this is refused rather than followed.
const MAX_DEPTH: usize = 4;
/// Source reads per blob copy for destinations whose upload failed transiently: the
/// client resends small bodies itself, but a large one is already partly sent by then.
/// Each attempt already includes the client's per-request retries, so one more is enough
/// for a blip without making a dead mirror take much longer to report.
const COPY_ATTEMPTS: usize = 2;

/// A source image: its repository and top manifest digest.
type SrcImage = (RepoKey, Digest);

/// What one destination repository needs for one source image.
#[derive(Debug, Clone, Default)]
struct Needs {
    /// The destination lacks the manifest (a copy), as opposed to a retag.
    push: bool,
    tags: BTreeSet<NameId>,
}

/// A fetched source manifest and what it references.
#[derive(Debug)]
struct Node {
    raw: RawManifest,
    refs: Refs,
}

type Nodes = HashMap<(RepoKey, Digest), Node>;

pub async fn run(state: &mut PlanState) -> Result<Flow, KpromoError> {
    let work = collect_work(state);
    if work.is_empty() {
        info!("nothing to promote");
        return Ok(Flow::Continue);
    }
    let report = promote(state, &work).await;
    let errors = report.errors.len();
    let first = report.errors.first().cloned();
    state.promote = report;
    if state.cancel.is_cancelled() {
        return Err(super::interrupted());
    }
    if let Some(first) = first {
        return Err(KpromoError::promotion(anyhow::anyhow!(
            "running image promotion: {errors} operations failed (rerun converges); first: {first}"
        )));
    }
    Ok(Flow::Continue)
}

/// Groups written edges by source image, then by destination repository.
fn collect_work(state: &PlanState) -> BTreeMap<SrcImage, BTreeMap<RepoKey, Needs>> {
    let mut work: BTreeMap<SrcImage, BTreeMap<RepoKey, Needs>> = BTreeMap::new();
    for (edge, decision) in state.decided() {
        if !decision.writes() {
            continue;
        }
        let needs = work
            .entry((RepoKey::source_of(edge), edge.digest))
            .or_default()
            .entry(RepoKey::destination_of(edge))
            .or_default();
        needs.push |= *decision == Decision::Copy;
        needs.tags.extend(edge.tag);
    }
    work
}

/// Everything one run of the phase shares.
struct Ctx<'a> {
    state: &'a PlanState,
    cancel: Cancel,
    report: std::sync::Mutex<PromoteReport>,
}

impl Ctx<'_> {
    fn fail(&self, message: String) {
        error!("{message}");
        self.with(|r| r.errors.push(message));
    }

    fn with(&self, f: impl FnOnce(&mut PromoteReport)) {
        // A poisoned lock only means another task panicked mid-update; counters stay usable.
        f(&mut lock(&self.report));
    }

    fn repo(&self, key: RepoKey) -> Option<(Arc<dyn Registry>, String)> {
        match self.state.repo(key) {
            Ok(r) => Some(r),
            Err(e) => {
                self.fail(e.to_string());
                None
            }
        }
    }
}

async fn promote(state: &PlanState, work: &BTreeMap<SrcImage, BTreeMap<RepoKey, Needs>>) -> PromoteReport {
    let ctx = Ctx {
        state,
        cancel: state.cancel.clone(),
        report: std::sync::Mutex::new(PromoteReport::default()),
    };
    info!(
        "promoting {} source images to {} destination repositories",
        work.len(),
        work.values().flat_map(|d| d.keys()).collect::<BTreeSet<_>>().len()
    );

    let nodes = fetch_graphs(&ctx, work).await;
    let mut by_dst: BTreeMap<RepoKey, Vec<(SrcImage, &Needs)>> = BTreeMap::new();
    for (src, dsts) in work {
        for (dst, needs) in dsts {
            by_dst.entry(*dst).or_default().push((*src, needs));
        }
    }
    let needed = missing_manifests(&ctx, &nodes, &by_dst).await;
    let (jobs, total_bytes) = missing_blobs(&ctx, &nodes, &needed).await;
    let total_images: u64 = by_dst.values().map(|v| v.len() as u64).sum();
    let (progress, ticker) = Progress::start(total_bytes, total_images);

    let failed_blobs = copy_blobs(&ctx, jobs, &progress).await;
    stream::iter(by_dst.iter())
        .for_each_concurrent(GLOBAL_JOBS, |(dst, images)| {
            let needed = needed.manifests.get(dst).cloned().unwrap_or_default();
            push_repo(&ctx, &nodes, *dst, images, needed, &failed_blobs, &progress)
        })
        .await;
    progress.finish(ticker);
    ctx.report.into_inner().unwrap_or_else(|p| p.into_inner())
}

/// Step 1: reads every source manifest graph once. Retag-only images need just the top.
async fn fetch_graphs(ctx: &Ctx<'_>, work: &BTreeMap<SrcImage, BTreeMap<RepoKey, Needs>>) -> Nodes {
    let mut nodes = Nodes::new();
    let mut frontier: BTreeSet<(SrcImage, bool)> = work
        .iter()
        .map(|(src, dsts)| (*src, dsts.values().any(|n| n.push)))
        .collect();
    for _depth in 0..=MAX_DEPTH {
        if frontier.is_empty() || ctx.cancel.is_cancelled() {
            break;
        }
        let fetched: Vec<Option<(SrcImage, bool, Node)>> = stream::iter(std::mem::take(&mut frontier))
            .map(|((key, digest), recurse)| async move {
                let what = ctx.state.reference(key, &digest);
                let (registry, repo) = ctx.repo(key)?;
                match registry.get_manifest(&repo, &ManifestRef::Digest(digest)).await {
                    Ok(Some(raw)) => match graph::refs(&raw, &what) {
                        Ok(refs) => Some(((key, digest), recurse, Node { raw, refs })),
                        Err(e) => {
                            ctx.fail(format!("{e:#}"));
                            None
                        }
                    },
                    Ok(None) => {
                        ctx.fail(format!("{what}: manifest disappeared from the source since planning"));
                        None
                    }
                    Err(e) => {
                        ctx.fail(format!("{what}: {e}"));
                        None
                    }
                }
            })
            .buffer_unordered(GLOBAL_JOBS)
            .collect()
            .await;
        for (src, recurse, node) in fetched.into_iter().flatten() {
            if recurse {
                for child in &node.refs.children {
                    if !nodes.contains_key(&(src.0, *child)) {
                        frontier.insert(((src.0, *child), true));
                    }
                }
            }
            nodes.insert(src, node);
        }
    }
    if !frontier.is_empty() && !ctx.cancel.is_cancelled() {
        ctx.fail(format!(
            "image indexes nested deeper than {MAX_DEPTH} levels are not supported"
        ));
    }
    nodes
}

/// Every descendant manifest of `top` (not `top` itself), in no particular order.
fn descendants(nodes: &Nodes, src: RepoKey, top: Digest) -> BTreeSet<Digest> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![top];
    while let Some(d) = todo.pop() {
        if let Some(node) = nodes.get(&(src, d)) {
            for child in &node.refs.children {
                if seen.insert(*child) {
                    todo.push(*child);
                }
            }
        }
    }
    seen
}

/// What step 2 found.
#[derive(Debug, Default)]
struct Needed {
    /// Per destination repository, the manifests (by source repository and digest) to push.
    manifests: BTreeMap<RepoKey, BTreeSet<SrcImage>>,
    /// Destination repositories known to hold nothing (see `PlanState::fresh_destinations`),
    /// less those where a child manifest turned up.
    fresh: BTreeSet<RepoKey>,
}

/// Step 2: per destination repository, the manifests (by source repository and digest)
/// that must be pushed: copied tops, plus their children the destination lacks.
async fn missing_manifests(
    ctx: &Ctx<'_>,
    nodes: &Nodes,
    by_dst: &BTreeMap<RepoKey, Vec<(SrcImage, &Needs)>>,
) -> Needed {
    let mut to_head: BTreeSet<(RepoKey, RepoKey, Digest)> = BTreeSet::new();
    for (dst, images) in by_dst {
        for ((src, top), needs) in images {
            if needs.push {
                to_head.extend(descendants(nodes, *src, *top).into_iter().map(|d| (*dst, *src, d)));
            }
        }
    }
    let present: BTreeSet<(RepoKey, Digest)> = stream::iter(to_head)
        .map(|(dst, _src, digest)| async move {
            let (registry, repo) = ctx.repo(dst)?;
            match registry.head_manifest(&repo, &ManifestRef::Digest(digest)).await {
                Ok(found) => found.map(|_| (dst, digest)),
                Err(e) => {
                    // Unknown counts as missing: the push is idempotent.
                    warn!("{}: {e}", ctx.state.reference(dst, &digest));
                    None
                }
            }
        })
        .buffer_unordered(GLOBAL_JOBS)
        .filter_map(|x| async move { x })
        .collect()
        .await;

    // A repository holding a child is not fresh: an earlier run got that far.
    let inhabited: BTreeSet<RepoKey> = present.iter().map(|(dst, _)| *dst).collect();
    let mut needed = Needed {
        fresh: ctx.state.fresh_destinations.difference(&inhabited).copied().collect(),
        ..Needed::default()
    };
    for (dst, images) in by_dst {
        for ((src, top), needs) in images {
            if !needs.push {
                continue;
            }
            let set = needed.manifests.entry(*dst).or_default();
            let mut todo = vec![*top];
            while let Some(d) = todo.pop() {
                if !set.insert((*src, d)) {
                    continue;
                }
                if let Some(node) = nodes.get(&(*src, d)) {
                    todo.extend(node.refs.children.iter().filter(|c| !present.contains(&(*dst, **c))));
                }
            }
        }
    }
    needed
}

/// One blob to copy: where it can be read, and every destination repository lacking it.
#[derive(Debug)]
struct BlobJob {
    digest: Digest,
    size: u64,
    /// Source repositories holding it (any one will do).
    sources: BTreeSet<RepoKey>,
    targets: BTreeSet<RepoKey>,
}

/// Step 3: HEADs the blobs of the missing manifests at their destinations and returns
/// the copies to make, with the number of bytes they will upload.
async fn missing_blobs(ctx: &Ctx<'_>, nodes: &Nodes, needed: &Needed) -> (Vec<BlobJob>, u64) {
    let mut wanted: BTreeMap<(RepoKey, Digest), (u64, RepoKey)> = BTreeMap::new();
    for (dst, manifests) in &needed.manifests {
        for (src, digest) in manifests {
            if let Some(node) = nodes.get(&(*src, *digest)) {
                for blob in &node.refs.blobs {
                    wanted.entry((*dst, blob.digest)).or_insert((blob.size, *src));
                }
            }
        }
    }
    // A fresh repository lacks every blob: no HEADs there.
    let (fresh, known): (Vec<_>, Vec<_>) = wanted.into_iter().partition(|((dst, _), _)| needed.fresh.contains(dst));
    let mut lacking: Vec<((RepoKey, Digest), (u64, RepoKey))> = stream::iter(known)
        .map(|((dst, digest), info)| async move {
            let (registry, repo) = ctx.repo(dst)?;
            match registry.blob_size(&repo, &digest).await {
                Ok(Some(_)) => {
                    ctx.with(|r| r.counters.blobs_present += 1);
                    None
                }
                Ok(None) => Some(((dst, digest), info)),
                Err(e) => {
                    warn!("{}: {e}", ctx.state.reference(dst, &digest));
                    Some(((dst, digest), info))
                }
            }
        })
        .buffer_unordered(GLOBAL_JOBS)
        .filter_map(|x| async move { x })
        .collect()
        .await;
    lacking.extend(fresh);

    let mut jobs: BTreeMap<Digest, BlobJob> = BTreeMap::new();
    let mut total = 0;
    for ((dst, digest), (size, src)) in lacking {
        total += size;
        let job = jobs.entry(digest).or_insert_with(|| BlobJob {
            digest,
            size,
            sources: BTreeSet::new(),
            targets: BTreeSet::new(),
        });
        job.sources.insert(src);
        job.targets.insert(dst);
    }
    (jobs.into_values().collect(), total)
}

/// A resolved repository: key, backend and path.
#[derive(Debug, Clone)]
struct Place {
    key: RepoKey,
    registry: Arc<dyn Registry>,
    repo: String,
    display: String,
}

impl Place {
    fn resolve(ctx: &Ctx<'_>, key: RepoKey) -> Option<Self> {
        let (registry, repo) = ctx.repo(key)?;
        Some(Self {
            key,
            registry,
            repo,
            display: ctx.state.repo_display(key),
        })
    }

    fn target(&self) -> Target {
        Target {
            registry: self.registry.clone(),
            repo: self.repo.clone(),
        }
    }
}

/// What happened to one (destination, blob) during a copy.
#[derive(Debug)]
enum Placed {
    Uploaded,
    Mounted,
}

/// The outcome of one (destination repository, blob) copy.
type BlobResult = (RepoKey, Digest, Result<Placed, String>);

/// A blob copy with everything resolved, so it can run on its own task.
struct BlobTask {
    digest: Digest,
    size: u64,
    sources: Vec<Place>,
    targets: Vec<Place>,
}

/// Step 4: runs every blob copy; returns the (destination, blob) pairs that failed.
async fn copy_blobs(ctx: &Ctx<'_>, jobs: Vec<BlobJob>, progress: &Progress) -> BTreeSet<(RepoKey, Digest)> {
    let tasks: Vec<BlobTask> = jobs
        .into_iter()
        .filter_map(|job| {
            Some(BlobTask {
                digest: job.digest,
                size: job.size,
                sources: job
                    .sources
                    .iter()
                    .map(|k| Place::resolve(ctx, *k))
                    .collect::<Option<_>>()?,
                targets: job
                    .targets
                    .iter()
                    .map(|k| Place::resolve(ctx, *k))
                    .collect::<Option<_>>()?,
            })
        })
        .collect();
    let results: Vec<Vec<BlobResult>> = stream::iter(tasks)
        .map(|task| {
            let cancel = ctx.cancel.clone();
            let progress = progress.clone();
            // Own task per blob: hashing and copying use every core.
            let digest = task.digest;
            let keys: Vec<RepoKey> = task.targets.iter().map(|t| t.key).collect();
            async move {
                match tokio::spawn(copy_blob(task, cancel, progress)).await {
                    Ok(r) => r,
                    Err(e) => keys
                        .into_iter()
                        .map(|k| (k, digest, Err(format!("blob {digest}: copy task failed: {e}"))))
                        .collect(),
                }
            }
        })
        .buffer_unordered(BLOB_JOBS)
        .collect()
        .await;

    let mut failed = BTreeSet::new();
    for (dst, digest, outcome) in results.into_iter().flatten() {
        match outcome {
            Ok(Placed::Uploaded) => ctx.with(|r| r.counters.blobs_uploaded += 1),
            Ok(Placed::Mounted) => ctx.with(|r| r.counters.blobs_mounted += 1),
            Err(message) => {
                ctx.fail(message);
                failed.insert((dst, digest));
            }
        }
    }
    ctx.with(|r| {
        r.counters.source_bytes_read = progress.source_bytes();
        r.counters.bytes_uploaded = progress.uploaded_bytes();
    });
    failed
}

/// Copies one blob to every target: mount where the registry is shared, one source
/// read for the rest, then mounts inside each destination registry.
async fn copy_blob(task: BlobTask, cancel: Cancel, progress: Progress) -> Vec<BlobResult> {
    let digest = task.digest;
    let mut done: Vec<BlobResult> = Vec::new();
    if cancel.is_cancelled() {
        return task
            .targets
            .iter()
            .map(|t| {
                (
                    t.key,
                    digest,
                    Err(format!("{}: blob {digest}: not copied (interrupted)", t.display)),
                )
            })
            .collect();
    }

    // Mount from a source repository on the same registry, if any.
    let mut to_stream: Vec<Place> = Vec::new();
    for target in &task.targets {
        let local = task
            .sources
            .iter()
            .find(|s| s.registry.name() == target.registry.name());
        match local {
            Some(src) => match target.registry.mount_blob(&target.repo, &digest, &src.repo).await {
                Ok(MountOutcome::Mounted) => done.push((target.key, digest, Ok(Placed::Mounted))),
                Ok(MountOutcome::NotMounted) => to_stream.push(target.clone()),
                Err(e) => done.push((target.key, digest, Err(e.to_string()))),
            },
            None => to_stream.push(target.clone()),
        }
    }
    if to_stream.is_empty() {
        return done;
    }

    // One upload per destination registry; its other repositories mount from it.
    let mut firsts: Vec<Place> = Vec::new();
    let mut followers: Vec<(Place, usize)> = Vec::new();
    for target in to_stream {
        match firsts.iter().position(|f| f.registry.name() == target.registry.name()) {
            Some(i) => followers.push((target, i)),
            None => firsts.push(target),
        }
    }
    let Some(source) = task.sources.first() else {
        return done;
    };
    let streamed = stream_with_retries(source, &firsts, digest, task.size, &progress, &cancel).await;
    let mut ok_firsts = vec![false; firsts.len()];
    for (i, (first, result)) in firsts.iter().zip(streamed).enumerate() {
        ok_firsts[i] = result.is_ok();
        done.push((first.key, digest, result.map(|_| Placed::Uploaded)));
    }
    for (follower, i) in followers {
        if !ok_firsts[i] {
            let message = format!(
                "{}: blob {digest}: not copied because its upload to {} failed",
                follower.display, firsts[i].display
            );
            done.push((follower.key, digest, Err(message)));
            continue;
        }
        let result = match follower
            .registry
            .mount_blob(&follower.repo, &digest, &firsts[i].repo)
            .await
        {
            Ok(MountOutcome::Mounted) => Ok(Placed::Mounted),
            // No mount support: copy within the destination registry, not from the source.
            Ok(MountOutcome::NotMounted) => stream_with_retries(
                &firsts[i],
                std::slice::from_ref(&follower),
                digest,
                task.size,
                &progress,
                &cancel,
            )
            .await
            .remove(0)
            .map(|_| Placed::Uploaded),
            Err(e) => Err(e.to_string()),
        };
        done.push((follower.key, digest, result));
    }
    done
}

/// A failed copy to one target, and whether another source read may succeed.
#[derive(Debug, Clone)]
struct CopyFailure {
    message: String,
    transient: bool,
}

impl CopyFailure {
    fn new(at: &str, digest: Digest, e: &crate::registry::Error) -> Self {
        Self {
            message: format!("{at}: blob {digest}: {e}"),
            transient: e.is_transient(),
        }
    }
}

/// [`stream_to`], then again from a fresh source read for the targets whose copy failed
/// transiently (at most [`COPY_ATTEMPTS`] reads in all); one result per target.
async fn stream_with_retries(
    from: &Place,
    targets: &[Place],
    digest: Digest,
    size: u64,
    progress: &Progress,
    cancel: &Cancel,
) -> Vec<Result<(), String>> {
    let mut results = stream_to(from, targets, digest, size, progress).await;
    for _ in 1..COPY_ATTEMPTS {
        let again: Vec<usize> = (0..results.len())
            .filter(|i| matches!(&results[*i], Err(f) if f.transient))
            .collect();
        if again.is_empty() || cancel.is_cancelled() {
            break;
        }
        let subset: Vec<Place> = again.iter().map(|i| targets[*i].clone()).collect();
        for i in &again {
            if let Err(f) = &results[*i] {
                warn!("{} (reading the source again)", f.message);
            }
        }
        let retried = stream_to(from, &subset, digest, size, progress).await;
        for (i, result) in again.into_iter().zip(retried) {
            results[i] = result;
        }
    }
    results.into_iter().map(|r| r.map_err(|f| f.message)).collect()
}

/// Opens `from` once and streams it to `targets`; one result per target.
async fn stream_to(
    from: &Place,
    targets: &[Place],
    digest: Digest,
    size: u64,
    progress: &Progress,
) -> Vec<Result<(), CopyFailure>> {
    let body = match from.registry.get_blob(&from.repo, &digest).await {
        Ok(body) => body,
        Err(e) => {
            let failure = CopyFailure::new(&from.display, digest, &e);
            return targets.iter().map(|_| Err(failure.clone())).collect();
        }
    };
    let fan = targets.len() as u64;
    let outs: Vec<Target> = targets.iter().map(Place::target).collect();
    let result = fan_out(body, from.registry.name(), digest, size, &outs, |n| {
        progress.add_read(n, fan)
    })
    .await;
    let read_error = result.read.err().map(|e| CopyFailure::new(&from.display, digest, &e));
    targets
        .iter()
        .zip(result.uploads)
        .map(|(t, up)| match (&read_error, up) {
            (Some(failure), _) => Err(failure.clone()),
            (None, Ok(())) => Ok(()),
            (None, Err(e)) => Err(CopyFailure::new(&t.display, digest, &e)),
        })
        .collect()
}

/// Step 5: pushes one destination repository's manifests from the leaves up, then its
/// tags. A manifest is skipped (and reported) when anything it references failed.
async fn push_repo(
    ctx: &Ctx<'_>,
    nodes: &Nodes,
    dst: RepoKey,
    images: &[(SrcImage, &Needs)],
    needed: BTreeSet<SrcImage>,
    failed_blobs: &BTreeSet<(RepoKey, Digest)>,
    progress: &Progress,
) {
    let Some(place) = Place::resolve(ctx, dst) else {
        return;
    };
    // Leaves first: a manifest's level is one more than its deepest needed child.
    let mut level: HashMap<SrcImage, usize> = HashMap::new();
    fn level_of(
        nodes: &Nodes,
        needed: &BTreeSet<SrcImage>,
        level: &mut HashMap<SrcImage, usize>,
        at: SrcImage,
        depth: usize,
    ) -> usize {
        if let Some(l) = level.get(&at) {
            return *l;
        }
        let mut l = 0;
        if depth <= MAX_DEPTH
            && let Some(node) = nodes.get(&at)
        {
            for child in &node.refs.children {
                let c = (at.0, *child);
                if needed.contains(&c) {
                    l = l.max(level_of(nodes, needed, level, c, depth + 1) + 1);
                }
            }
        }
        level.insert(at, l);
        l
    }
    let mut by_level: BTreeMap<usize, Vec<SrcImage>> = BTreeMap::new();
    for m in &needed {
        by_level
            .entry(level_of(nodes, &needed, &mut level, *m, 0))
            .or_default()
            .push(*m);
    }

    let mut failed: BTreeSet<SrcImage> = BTreeSet::new();
    for manifests in by_level.values() {
        let results: Vec<(SrcImage, Result<(), String>)> = stream::iter(manifests.iter().copied())
            .map(|m| {
                let (place, failed, needed) = (&place, &failed, &needed);
                async move {
                    (
                        m,
                        push_manifest(ctx, nodes, place, m, needed, failed, failed_blobs).await,
                    )
                }
            })
            .buffer_unordered(PUSHES_PER_REPO)
            .collect()
            .await;
        for (m, result) in results {
            match result {
                Ok(()) => ctx.with(|r| r.counters.manifests_pushed += 1),
                Err(message) => {
                    ctx.fail(message);
                    failed.insert(m);
                }
            }
        }
    }

    let tag_jobs: Vec<(SrcImage, &Needs)> = images.to_vec();
    stream::iter(tag_jobs)
        .for_each_concurrent(PUSHES_PER_REPO, |(src, needs)| {
            let place = &place;
            let failed = &failed;
            async move {
                let reference = ctx.state.reference(dst, &src.1);
                if failed.contains(&src) {
                    ctx.fail(format!(
                        "{reference}: tags not written because the image could not be copied"
                    ));
                    return;
                }
                let Some(node) = nodes.get(&src) else {
                    ctx.fail(format!(
                        "{reference}: tags not written because the source manifest could not be read"
                    ));
                    return;
                };
                for tag in &needs.tags {
                    if ctx.cancel.is_cancelled() {
                        return;
                    }
                    let tag = ctx.state.edges.name(*tag);
                    match place
                        .registry
                        .put_manifest(&place.repo, &ManifestRef::Tag(tag.to_string()), &node.raw)
                        .await
                    {
                        Ok(()) => ctx.with(|r| r.counters.tags_pushed += 1),
                        Err(e) => {
                            ctx.fail(format!("{}:{tag}: {e}", place.display));
                            return;
                        }
                    }
                }
                ctx.with(|r| r.promoted.push(reference));
                progress.image_done();
            }
        })
        .await;
}

/// Pushes one manifest by digest, unless something it needs is missing.
async fn push_manifest(
    ctx: &Ctx<'_>,
    nodes: &Nodes,
    place: &Place,
    m: SrcImage,
    needed: &BTreeSet<SrcImage>,
    failed: &BTreeSet<SrcImage>,
    failed_blobs: &BTreeSet<(RepoKey, Digest)>,
) -> Result<(), String> {
    let reference = format!("{}@{}", place.display, m.1);
    if ctx.cancel.is_cancelled() {
        return Err(format!("{reference}: not pushed (interrupted)"));
    }
    let node = nodes
        .get(&m)
        .ok_or_else(|| format!("{reference}: not pushed because the source manifest could not be read"))?;
    if let Some(child) =
        node.refs.children.iter().find(|c| {
            failed.contains(&(m.0, **c)) || (needed.contains(&(m.0, **c)) && !nodes.contains_key(&(m.0, **c)))
        })
    {
        return Err(format!(
            "{reference}: not pushed because child {child} could not be copied"
        ));
    }
    if let Some(blob) = node
        .refs
        .blobs
        .iter()
        .find(|b| failed_blobs.contains(&(place.key, b.digest)))
    {
        return Err(format!(
            "{reference}: not pushed because blob {} could not be copied",
            blob.digest
        ));
    }
    place
        .registry
        .put_manifest(&place.repo, &ManifestRef::Digest(m.1), &node.raw)
        .await
        .map_err(|e| format!("{reference}: {e}"))
}
