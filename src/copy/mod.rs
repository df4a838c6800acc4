//! The copy engine: brings source images (manifest graphs, their blobs, their tags) into
//! destination repositories with the fewest reads and writes, leaves first.
//!
//! Promote hands it the edges the plan decided; Sign hands it signatures and Attest
//! referrers (attestations, SBOMs) to carry to every mirror. It knows repositories only as
//! [`Repo`]s (a backend and a path), never manifests files, edges or flags, and reports
//! what it did as typed data ([`Report`]).
//!
//! Work is grouped by source image (repository + digest), not by destination: a digest
//! with three tags going to twenty mirrors is one graph read, not sixty copies. Steps,
//! each concurrent across images and destinations:
//! 1. [`graph`]: read each source manifest graph once (index children by digest);
//! 2. [`discover`]: HEAD child manifests at each destination (present children, and
//!    everything under them, are not copied again), then the blobs the missing manifests
//!    need, except in repositories known to be fresh;
//! 3. [`blobs`]: copy each missing blob once per destination: a cross-repository mount
//!    when the destination is on the source's registry, otherwise one source read streamed
//!    to every destination registry that lacks it ([`fanout`]), then mounted into further
//!    repositories of the same registry;
//! 4. [`push`]: per destination repository, push manifests by digest from the leaves up
//!    ([`order::levels`]), then the tags: a tag only after everything it points to exists.
//!
//! Steps 3 and 4 run together: a repository pushes a manifest as soon as the blobs it
//! references are in that repository ([`arrivals`]), and a destination registry that falls
//! behind is left to catch up on its own ([`blobs`]' lanes). One slow or throttled mirror
//! delays only itself.
//!
//! Each (registry, repository, blob) is handled by exactly one task, because
//! distribution races on concurrent uploads of the same blob to one repository; that is
//! why [`Request`] names each repository once. Manifest bytes pass through untouched, so
//! destination digests equal source digests.
mod arrivals;
mod blobs;
mod discover;
mod fanout;
mod graph;
mod order;
mod progress;
mod push;
mod report;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use tracing::{error, info};

use crate::digest::Digest;
use crate::registry::Registry;
use crate::sync::{Cancel, lock};

use arrivals::Arrivals;

pub use report::{Cause, Class, Counters, Delivered, Failure, Missing, Report, Undelivered, Write};

/// Registry requests a caller keeps pending at once, across all registries. The backends'
/// per-host gates do the real limiting; this only bounds the number of futures.
pub const PENDING_REQUESTS: usize = 64;
/// Index nesting deeper than this is refused rather than followed.
const MAX_DEPTH: usize = 4;

/// A repository the engine reads or writes.
#[derive(Debug, Clone)]
pub struct Repo {
    pub registry: Arc<dyn Registry>,
    /// The repository path inside the registry.
    pub path: String,
    /// How messages name it (`registry/image` as the manifests write it).
    pub display: String,
}

/// A repository of a [`Request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RepoId(u32);

/// A source image: its repository and top manifest digest.
pub type Source = (RepoId, Digest);

/// What one destination repository needs of one source image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Want {
    /// The destination lacks the manifest (copy it), as opposed to only adding tags.
    pub push: bool,
    pub tags: BTreeSet<String>,
    /// The image is a referrer (a manifest naming a `subject`): it is pushed with
    /// [`Registry::put_referrer`], so the destination lists it among its subject's
    /// referrers (through its referrers API, or the tag-schema fallback index).
    pub referrer: bool,
}

/// Everything to copy: which source images go to which destination repositories.
#[derive(Debug, Default)]
pub struct Request {
    repos: Vec<Repo>,
    ids: HashMap<(String, String), RepoId>,
    images: BTreeMap<Source, BTreeMap<RepoId, Want>>,
    fresh: BTreeSet<RepoId>,
    transient_retries: usize,
}

impl Request {
    /// Names a repository, once: the same registry and path always get the same id, so
    /// no two tasks ever write one blob into one repository.
    pub fn repo(&mut self, repo: Repo) -> RepoId {
        let key = (repo.registry.name().to_string(), repo.path.clone());
        if let Some(id) = self.ids.get(&key) {
            return *id;
        }
        let id = RepoId(u32::try_from(self.repos.len()).expect("fewer than 2^32 repositories"));
        self.repos.push(repo);
        self.ids.insert(key, id);
        id
    }

    /// Asks for `source` in `destination`: its whole graph when `push` (the destination
    /// lacks it), and `tag` on it if any.
    pub fn want(&mut self, source: Source, destination: RepoId, push: bool, tag: Option<String>) {
        let want = self.images.entry(source).or_default().entry(destination).or_default();
        want.push |= push;
        want.tags.extend(tag);
    }

    /// Asks for the referrer `source` (a manifest naming a `subject` that `destination`
    /// already holds) in `destination`, pushed and listed there as a referrer of its
    /// subject: how signatures, SBOMs and attestations travel with an image.
    pub fn want_referrer(&mut self, source: Source, destination: RepoId) {
        let want = self.images.entry(source).or_default().entry(destination).or_default();
        want.push = true;
        want.referrer = true;
    }

    /// Declares that `destination` holds nothing yet (the caller listed it and found no
    /// repository there), so no blob HEAD is spent on it: on a new mirror that is a third
    /// of its requests. The price: blobs that an interrupted run left there before pushing
    /// any manifest are uploaded again. A destination where a child manifest turns up is
    /// no longer treated as fresh.
    pub fn fresh(&mut self, destination: RepoId) {
        self.fresh.insert(destination);
    }

    /// Further reads of a blob's source after a transient failure (a body cut off, an
    /// upload that broke), with backoff: the same budget the registry client has for one
    /// request, because a body cut off mid-stream is only noticed after the request
    /// succeeded. None by default.
    pub fn transient_retries(&mut self, retries: usize) {
        self.transient_retries = retries;
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    pub fn repository(&self, id: RepoId) -> &Repo {
        &self.repos[id.0 as usize]
    }

    /// `registry/image@digest` for messages.
    fn reference(&self, (repo, digest): Source) -> String {
        format!("{}@{digest}", self.repository(repo).display)
    }

    /// Destination repositories, and the images each needs.
    fn by_destination(&self) -> BTreeMap<RepoId, Vec<(Source, &Want)>> {
        let mut by_dst: BTreeMap<RepoId, Vec<(Source, &Want)>> = BTreeMap::new();
        for (source, destinations) in &self.images {
            for (destination, want) in destinations {
                by_dst.entry(*destination).or_default().push((*source, want));
            }
        }
        by_dst
    }
}

/// Copies everything `request` asks for. Failures are collected, not fatal: each blocks
/// only what depends on it, and a rerun finishes the rest. After `cancel`, work in
/// flight finishes and nothing new starts.
pub async fn run(request: &Request, cancel: &Cancel) -> Report {
    let ctx = Ctx {
        request,
        cancel: cancel.clone(),
        report: Mutex::new(Report::default()),
    };
    let by_dst = request.by_destination();
    info!(
        "copying {} source images to {} destination repositories",
        request.images.len(),
        by_dst.len()
    );
    let (graphs, unread) = graph::read(&ctx).await;
    let plan = discover::plan(&ctx, &graphs, &by_dst).await;
    let total_images = by_dst.values().map(|images| images.len() as u64).sum();
    let (progress, ticker) = progress::Progress::start(plan.bytes, total_images);
    let arrivals = Arrivals::expecting(
        plan.blobs
            .iter()
            .flat_map(|job| job.targets.iter().map(|dst| (*dst, job.digest))),
    );
    let sources = push::Sources {
        graphs: &graphs,
        unread: &unread,
    };
    // Each destination repository pushes its manifests as soon as its own blobs are in.
    tokio::join!(
        blobs::copy(&ctx, plan.blobs, &progress, &arrivals),
        push::all(&ctx, sources, &by_dst, &plan.manifests, &arrivals, &progress)
    );
    progress.finish(ticker);
    std::mem::take(&mut *lock(&ctx.report))
}

/// Everything one run shares.
struct Ctx<'a> {
    request: &'a Request,
    cancel: Cancel,
    report: Mutex<Report>,
}

impl Ctx<'_> {
    fn fail(&self, failure: Failure) {
        error!("{failure}");
        self.with(|r| r.failures.push(failure));
    }

    fn count(&self, f: impl FnOnce(&mut Counters)) {
        self.with(|r| f(&mut r.counters));
    }

    fn with(&self, f: impl FnOnce(&mut Report)) {
        f(&mut lock(&self.report));
    }

    fn repo(&self, id: RepoId) -> &Repo {
        self.request.repository(id)
    }
}
