//! Step 4: copy every missing blob once per destination repository, each destination
//! registry at its own pace.
//!
//! A destination on the source's registry gets a cross-repository mount. The others share
//! one source read streamed to every destination registry that lacks the blob
//! ([`fan_out`]), and further repositories of a destination registry then mount from the
//! first one there. Each outcome is announced the moment it is known ([`Arrivals`]), so
//! that repository's manifests go out without waiting for the other mirrors.
//!
//! A mirror that falls behind (throttled, hanging, failing) must not hold back the others,
//! which is what *lanes* are for. Each destination registry has at most [`LANE_SLOTS`]
//! deliveries in progress. A blob copy gives its slowest destinations a short grace once
//! its first one is done, then leaves them to finish on their own (upload, retries and
//! mounts go on, holding their lane slot) and makes room for the next blob. A destination
//! whose lane is full stays out of the shared read and gets a source read of its own once
//! a slot frees. So the read-once fan-out holds for mirrors that keep up, and memory stays
//! bounded: an upload left behind holds at most its channel's few chunks.
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::FuturesUnordered;
use futures_util::{StreamExt, stream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::warn;

use crate::digest::Digest;
use crate::registry::MountOutcome;
use crate::sync::Cancel;

use super::arrivals::Arrivals;
use super::discover::BlobJob;
use super::fanout::fan_out;
use super::progress::Progress;
use super::{Cause, Ctx, Failure, Missing, Repo, RepoId, Write};

/// Blob copies in flight (each with its source read and uploads). Kept well under a host's
/// connection gate: a copy holds a source read open while its uploads wait for slots, and
/// source and destination can be the same host.
const BLOB_JOBS: usize = 8;
/// Deliveries in progress per destination registry: room for every blob copy in flight,
/// and as many again that were left behind before a lagging mirror drops out of the
/// shared reads.
const LANE_SLOTS: usize = 2 * BLOB_JOBS;
/// The least a blob copy waits for its other destinations once the first is done, before
/// it leaves them behind: well over a healthy registry's commit, well under a throttled
/// one's back-off.
const GRACE: Duration = Duration::from_millis(500);
/// Source reads after an attempt failed transiently for another reason than the source's
/// body breaking off (an upload that broke, a source that would not open): each attempt
/// already includes the client's retries of its requests, so one more covers a blip.
const UPLOAD_REREADS: usize = 1;
/// First wait before a blob's source is read again; doubled each time, up to
/// [`MAX_REREAD_DELAY`].
const REREAD_DELAY: Duration = Duration::from_millis(250);
const MAX_REREAD_DELAY: Duration = Duration::from_secs(8);

/// How a blob reached one destination repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placed {
    Uploaded,
    Mounted,
}

/// The outcome of one (destination repository, blob) copy.
type BlobResult = (RepoId, Digest, Result<Placed, Failure>);

/// Runs every blob copy, announcing each outcome in `arrivals` as it comes.
pub(super) async fn copy(ctx: &Ctx<'_>, jobs: Vec<BlobJob>, progress: &Progress, arrivals: &Arrivals) {
    let resolve = |ids: &BTreeSet<RepoId>| ids.iter().map(|id| (*id, ctx.repo(*id).clone())).collect();
    let tasks: Vec<BlobTask> = jobs
        .into_iter()
        .map(|job| BlobTask {
            digest: job.digest,
            size: job.size,
            sources: resolve(&job.sources),
            targets: resolve(&job.targets),
        })
        .collect();
    let lanes: Lanes = Arc::new(
        tasks
            .iter()
            .flat_map(|task| &task.targets)
            .map(|(_, repo)| (repo.registry.name().to_string(), Arc::new(Semaphore::new(LANE_SLOTS))))
            .collect(),
    );
    let (results, mut announced) = mpsc::unbounded_channel();
    let env = Env {
        lanes,
        results,
        progress: progress.clone(),
        cancel: ctx.cancel.clone(),
        retries: ctx.request.transient_retries,
    };
    // Every delivery holds a clone of `env`'s sender: the channel closes once the last
    // one, wherever it was left to finish, has reported.
    let copies = async move {
        stream::iter(tasks)
            .for_each_concurrent(BLOB_JOBS, |task| {
                // Its own task: hashing and copying use every core.
                let copy = tokio::spawn(copy_blob(task, env.clone()));
                async move {
                    if let Err(e) = copy.await {
                        warn!("a blob copy task ended early: {e}");
                    }
                }
            })
            .await;
    };
    let record = async {
        while let Some((dst, digest, outcome)) = announced.recv().await {
            arrivals.settle((dst, digest), outcome.as_ref().map(|_| ()).map_err(Failure::class));
            match outcome {
                Ok(Placed::Uploaded) => ctx.count(|c| c.blobs_uploaded += 1),
                Ok(Placed::Mounted) => ctx.count(|c| c.blobs_mounted += 1),
                Err(failure) => ctx.fail(failure),
            }
        }
    };
    tokio::join!(copies, record);
    // A task that died without a word (a panic) must not leave manifests waiting for it.
    for (dst, digest) in arrivals.unsettled() {
        let failure = blob_failure(
            &ctx.repo(dst).display,
            digest,
            Cause::Task("the copy ended without an outcome".into()),
        );
        arrivals.settle((dst, digest), Err(failure.class()));
        ctx.fail(failure);
    }
    ctx.count(|c| {
        c.source_bytes_read = progress.source_bytes();
        c.bytes_uploaded = progress.uploaded_bytes();
    });
}

/// One blob with its repositories resolved, so it can be copied on a task of its own.
struct BlobTask {
    digest: Digest,
    size: u64,
    sources: Vec<(RepoId, Repo)>,
    targets: Vec<(RepoId, Repo)>,
}

/// A bounded number of deliveries per destination registry (by name).
type Lanes = Arc<HashMap<String, Arc<Semaphore>>>;

/// What every delivery shares; it outlives the blob copy that started it.
#[derive(Clone)]
struct Env {
    lanes: Lanes,
    results: mpsc::UnboundedSender<BlobResult>,
    progress: Progress,
    cancel: Cancel,
    /// Further source reads after the source's body broke (`Request::transient_retries`).
    retries: usize,
}

impl Env {
    fn lane(&self, registry: &str) -> Arc<Semaphore> {
        self.lanes
            .get(registry)
            .cloned()
            .unwrap_or_else(|| Arc::new(Semaphore::new(LANE_SLOTS)))
    }

    fn report(&self, result: BlobResult) {
        // The receiver lives until every sender is gone.
        let _ = self.results.send(result);
    }
}

/// Copies one blob to every target: a delivery per destination registry, sharing one
/// source read among those whose lane has room.
async fn copy_blob(task: BlobTask, env: Env) {
    let (digest, size) = (task.digest, task.size);
    let Some((_, source)) = task.sources.first() else {
        return;
    };
    if env.cancel.is_cancelled() {
        for (id, target) in &task.targets {
            env.report((
                *id,
                digest,
                Err(blob_failure(&target.display, digest, Cause::Interrupted)),
            ));
        }
        return;
    }
    let started = Instant::now();
    let mut finishing: FuturesUnordered<JoinHandle<()>> = FuturesUnordered::new();
    let mut sharing: Vec<(Delivery, OwnedSemaphorePermit)> = Vec::new();
    for delivery in deliveries(&task, source) {
        let lane = env.lane(delivery.first.1.registry.name());
        let Ok(slot) = lane.clone().try_acquire_owned() else {
            // Its lane is full: a read of its own once a slot frees, on its own time.
            let env = env.clone();
            tokio::spawn(async move {
                // Lanes are never closed, so the wait ends with a slot.
                if let Ok(slot) = lane.acquire_owned().await {
                    let start = delivery.alone();
                    delivery.run(start, env, slot).await;
                }
            });
            continue;
        };
        match delivery.mount_from.clone() {
            Some(from) => finishing.push(tokio::spawn(delivery.run(Start::Mount(from), env.clone(), slot))),
            None => sharing.push((delivery, slot)),
        }
    }
    if !sharing.is_empty() {
        let targets: Vec<Repo> = sharing.iter().map(|(d, _)| d.first.1.clone()).collect();
        let fed = stream_to(source, &targets, digest, size, &env.progress).await;
        for ((delivery, slot), fed) in sharing.into_iter().zip(fed) {
            finishing.push(tokio::spawn(delivery.run(Start::Shared(fed), env.clone(), slot)));
        }
    }
    // Wait for every destination, but once one is done the others get only a grace.
    if finishing.next().await.is_some() {
        let until = Instant::now() + GRACE.max(started.elapsed());
        while let Ok(Some(_)) = tokio::time::timeout_at(until, finishing.next()).await {}
    }
    // Dropping the handles leaves the rest to finish on their own.
}

/// Groups a blob's targets by destination registry: one delivery each.
fn deliveries(task: &BlobTask, source: &Repo) -> Vec<Delivery> {
    let mut deliveries: Vec<Delivery> = Vec::new();
    for (id, target) in &task.targets {
        let registry = target.registry.name();
        match deliveries.iter_mut().find(|d| d.first.1.registry.name() == registry) {
            Some(delivery) => delivery.followers.push((*id, target.clone())),
            None => deliveries.push(Delivery {
                digest: task.digest,
                size: task.size,
                source: source.clone(),
                mount_from: task
                    .sources
                    .iter()
                    .find(|(_, s)| s.registry.name() == registry)
                    .map(|(_, s)| s.clone()),
                first: (*id, target.clone()),
                followers: Vec::new(),
            }),
        }
    }
    deliveries
}

/// A blob's way into the repositories of one destination registry that lack it: the first
/// gets it (a mount, the shared read, or a read of its own), the followers mount it from
/// the first.
struct Delivery {
    digest: Digest,
    size: u64,
    source: Repo,
    /// A source repository on the destination's registry: mount from it, read nothing.
    mount_from: Option<Repo>,
    first: (RepoId, Repo),
    followers: Vec<(RepoId, Repo)>,
}

/// How the first repository of a delivery gets its blob.
enum Start {
    /// A cross-repository mount from a source repository on the same registry.
    Mount(Repo),
    /// What the shared source read did for it.
    Shared(Fed),
    /// A source read of its own.
    Own,
}

/// How one attempt to bring the blob into a repository went.
struct Attempt {
    result: Result<(), Failure>,
    /// The source's body failed part-way, transiently (cut off, reset, stalled).
    body_broke: bool,
}

impl Delivery {
    /// How a delivery left out of the shared read starts.
    fn alone(&self) -> Start {
        match &self.mount_from {
            Some(from) => Start::Mount(from.clone()),
            None => Start::Own,
        }
    }

    /// Brings the blob into the first repository, then into the followers; reports each.
    async fn run(self, start: Start, env: Env, _slot: OwnedSemaphorePermit) {
        let digest = self.digest;
        if env.cancel.is_cancelled() && matches!(start, Start::Own | Start::Mount(_)) {
            for (id, to) in std::iter::once(&self.first).chain(&self.followers) {
                env.report((*id, digest, Err(blob_failure(&to.display, digest, Cause::Interrupted))));
            }
            return;
        }
        let first = self.first_repository(start, &env).await;
        let first_failed = first.as_ref().err().map(Failure::class);
        env.report((self.first.0, digest, first));
        let to = &self.first.1;
        for (id, follower) in &self.followers {
            let result = match first_failed {
                Some(class) => {
                    let blocked = Cause::Blocked {
                        write: Write::Blob,
                        by: Missing::Upload(to.display.clone()),
                        class,
                    };
                    Err(blob_failure(&follower.display, digest, blocked))
                }
                None => match follower.registry.mount_blob(&follower.path, &digest, &to.path).await {
                    Ok(MountOutcome::Mounted) => Ok(Placed::Mounted),
                    // No mount support: copy within the destination registry, not from the source.
                    Ok(MountOutcome::NotMounted) => {
                        let attempt = self.read(to, follower, &env).await;
                        self.retry(attempt, to, follower, &env).await.map(|()| Placed::Uploaded)
                    }
                    Err(e) => Err(registry_failure(follower, digest, e)),
                },
            };
            env.report((*id, digest, result));
        }
    }

    async fn first_repository(&self, start: Start, env: &Env) -> Result<Placed, Failure> {
        let to = &self.first.1;
        let attempt = match start {
            Start::Mount(from) => match to.registry.mount_blob(&to.path, &self.digest, &from.path).await {
                Ok(MountOutcome::Mounted) => return Ok(Placed::Mounted),
                Ok(MountOutcome::NotMounted) => self.read(&self.source, to, env).await,
                Err(e) => return Err(registry_failure(to, self.digest, e)),
            },
            Start::Shared(fed) => self.settle(to, fed).await,
            Start::Own => self.read(&self.source, to, env).await,
        };
        self.retry(attempt, &self.source, to, env)
            .await
            .map(|()| Placed::Uploaded)
    }

    /// After a transient failure, reads `from` again for `to` alone, with backoff. A source
    /// body that broke off mid-stream (after its request succeeded, so the client's own
    /// retries never saw it) is read again up to `Request::transient_retries` times;
    /// anything else once more, as each attempt already spent the client's retries of its
    /// requests (a dead mirror must not take seven times as long to report).
    async fn retry(&self, mut attempt: Attempt, from: &Repo, to: &Repo, env: &Env) -> Result<(), Failure> {
        let (mut body_rereads, mut other_rereads) = (env.retries, UPLOAD_REREADS);
        let mut delay = REREAD_DELAY;
        loop {
            let failure = match &attempt.result {
                Err(failure) if failure.is_transient() => failure,
                _ => return attempt.result,
            };
            let budget = if attempt.body_broke {
                &mut body_rereads
            } else {
                &mut other_rereads
            };
            if *budget == 0 || env.cancel.is_cancelled() {
                return attempt.result;
            }
            *budget -= 1;
            warn!("{failure} (reading the source again in {delay:?})");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_REREAD_DELAY);
            attempt = self.read(from, to, env).await;
        }
    }

    /// One source read of `from` streamed to `to` alone.
    async fn read(&self, from: &Repo, to: &Repo, env: &Env) -> Attempt {
        let fed = stream_to(from, std::slice::from_ref(to), self.digest, self.size, &env.progress).await;
        match fed.into_iter().next() {
            Some(fed) => self.settle(to, fed).await,
            // `stream_to` answers once per target, and there was one.
            None => unreachable!("one target, one answer"),
        }
    }

    /// The outcome of what a source read fed into `to`. The upload is awaited even when
    /// the read failed: another upload of the same blob into the same repository must not
    /// start while this one may still commit.
    async fn settle(&self, to: &Repo, fed: Fed) -> Attempt {
        let (upload, read, body_broke) = match fed {
            Fed::Unopened(failure) => {
                return Attempt {
                    result: Err(failure),
                    body_broke: false,
                };
            }
            Fed::Streamed {
                upload,
                read,
                body_broke,
            } => (upload, read, body_broke),
        };
        let result = match (read, upload.await) {
            (Err(failure), _) => Err(failure),
            (Ok(()), Ok(Ok(()))) => Ok(()),
            (Ok(()), Ok(Err(e))) => Err(registry_failure(to, self.digest, e)),
            (Ok(()), Err(e)) => Err(blob_failure(&to.display, self.digest, Cause::Task(e.to_string()))),
        };
        Attempt { result, body_broke }
    }
}

fn blob_failure(display: &str, digest: Digest, cause: Cause) -> Failure {
    Failure::new(format!("{display}: blob {digest}"), cause)
}

fn registry_failure(repo: &Repo, digest: Digest, e: crate::registry::Error) -> Failure {
    blob_failure(&repo.display, digest, Cause::Registry(Arc::new(e)))
}

/// An upload into one repository, going on as a task of its own.
type Upload = JoinHandle<Result<(), crate::registry::Error>>;

/// What one source read did for one target.
enum Fed {
    /// The source would not open: nothing was sent.
    Unopened(Failure),
    /// The target's upload (which may still be going on) and how the read ended; a
    /// failed read fails every target alike.
    Streamed {
        upload: Upload,
        read: Result<(), Failure>,
        /// The source's body failed part-way, transiently (cut off, reset, stalled).
        body_broke: bool,
    },
}

/// Opens `from` once and streams it to `targets`; one answer per target, in order.
async fn stream_to(from: &Repo, targets: &[Repo], digest: Digest, size: u64, progress: &Progress) -> Vec<Fed> {
    let body = match from.registry.get_blob(&from.path, &digest).await {
        Ok(body) => body,
        Err(e) => {
            let failure = registry_failure(from, digest, e);
            return targets.iter().map(|_| Fed::Unopened(failure.clone())).collect();
        }
    };
    let fan = targets.len() as u64;
    let fanned = fan_out(body, from.registry.name(), digest, size, targets, |n| {
        progress.add_read(n, fan)
    })
    .await;
    let read = fanned.read.map(|_| ()).map_err(|e| registry_failure(from, digest, e));
    let body_broke = matches!(&read, Err(failure) if failure.is_transient());
    fanned
        .uploads
        .into_iter()
        .map(|upload| Fed::Streamed {
            upload,
            read: read.clone(),
            body_broke,
        })
        .collect()
}
