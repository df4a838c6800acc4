//! Step 4: copy every missing blob once per destination repository.
//!
//! A destination on the source's registry gets a cross-repository mount. The others get
//! one source read streamed to every destination registry that lacks the blob
//! ([`fan_out`]), and further repositories of a destination registry then mount from the
//! first one there. Blob copies run on their own tasks (hashing uses every core), at most
//! [`BLOB_JOBS`] at a time.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, stream};
use tracing::warn;

use crate::digest::Digest;
use crate::registry::MountOutcome;
use crate::sync::Cancel;

use super::discover::BlobJob;
use super::fanout::fan_out;
use super::progress::Progress;
use super::{Cause, Class, Ctx, Failure, Missing, Repo, RepoId, Write};

/// Blob copies in flight. Kept well under a host's connection gate: a copy holds a
/// source read open while its uploads wait for slots, and source and destination can
/// be the same host.
const BLOB_JOBS: usize = 8;
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

/// A blob copy with its repositories resolved, so it can run on its own task.
struct BlobTask {
    digest: Digest,
    size: u64,
    sources: Vec<(RepoId, Repo)>,
    targets: Vec<(RepoId, Repo)>,
    /// Further source reads after transient failures (`Request::transient_retries`).
    retries: usize,
}

/// The (destination, blob) pairs that failed, and whether a rerun could copy them.
pub(super) type FailedBlobs = BTreeMap<(RepoId, Digest), Class>;

/// Runs every blob copy; returns the (destination, blob) pairs that failed.
pub(super) async fn copy(ctx: &Ctx<'_>, jobs: Vec<BlobJob>, progress: &Progress) -> FailedBlobs {
    let resolve = |ids: &BTreeSet<RepoId>| ids.iter().map(|id| (*id, ctx.repo(*id).clone())).collect();
    let tasks: Vec<BlobTask> = jobs
        .into_iter()
        .map(|job| BlobTask {
            digest: job.digest,
            size: job.size,
            sources: resolve(&job.sources),
            targets: resolve(&job.targets),
            retries: ctx.request.transient_retries,
        })
        .collect();
    let results: Vec<Vec<BlobResult>> = stream::iter(tasks)
        .map(|task| {
            let cancel = ctx.cancel.clone();
            let progress = progress.clone();
            let digest = task.digest;
            let targets: Vec<(RepoId, String)> = task.targets.iter().map(|(id, r)| (*id, r.display.clone())).collect();
            async move {
                // Its own task: hashing and copying use every core.
                match tokio::spawn(copy_blob(task, cancel, progress)).await {
                    Ok(done) => done,
                    Err(e) => targets
                        .into_iter()
                        .map(|(id, display)| {
                            (
                                id,
                                digest,
                                Err(blob_failure(&display, digest, Cause::Task(e.to_string()))),
                            )
                        })
                        .collect(),
                }
            }
        })
        .buffer_unordered(BLOB_JOBS)
        .collect()
        .await;

    let mut failed = FailedBlobs::new();
    for (dst, digest, outcome) in results.into_iter().flatten() {
        match outcome {
            Ok(Placed::Uploaded) => ctx.count(|c| c.blobs_uploaded += 1),
            Ok(Placed::Mounted) => ctx.count(|c| c.blobs_mounted += 1),
            Err(failure) => {
                failed.insert((dst, digest), failure.class());
                ctx.fail(failure);
            }
        }
    }
    ctx.count(|c| {
        c.source_bytes_read = progress.source_bytes();
        c.bytes_uploaded = progress.uploaded_bytes();
    });
    failed
}

fn blob_failure(display: &str, digest: Digest, cause: Cause) -> Failure {
    Failure::new(format!("{display}: blob {digest}"), cause)
}

fn registry_failure(repo: &Repo, digest: Digest, e: crate::registry::Error) -> Failure {
    blob_failure(&repo.display, digest, Cause::Registry(Arc::new(e)))
}

/// Copies one blob to every target: mount where the registry is shared, one source
/// read for the rest, then mounts inside each destination registry.
async fn copy_blob(task: BlobTask, cancel: Cancel, progress: Progress) -> Vec<BlobResult> {
    let digest = task.digest;
    if cancel.is_cancelled() {
        return task
            .targets
            .iter()
            .map(|(id, t)| (*id, digest, Err(blob_failure(&t.display, digest, Cause::Interrupted))))
            .collect();
    }
    let mut done: Vec<BlobResult> = Vec::new();

    // Mount from a source repository on the same registry, if any.
    let mut to_stream: Vec<(RepoId, Repo)> = Vec::new();
    for (id, target) in &task.targets {
        let local = task
            .sources
            .iter()
            .find(|(_, s)| s.registry.name() == target.registry.name());
        match local {
            Some((_, src)) => match target.registry.mount_blob(&target.path, &digest, &src.path).await {
                Ok(MountOutcome::Mounted) => done.push((*id, digest, Ok(Placed::Mounted))),
                Ok(MountOutcome::NotMounted) => to_stream.push((*id, target.clone())),
                Err(e) => done.push((*id, digest, Err(registry_failure(target, digest, e)))),
            },
            None => to_stream.push((*id, target.clone())),
        }
    }
    if to_stream.is_empty() {
        return done;
    }

    // One upload per destination registry; its other repositories mount from it.
    let mut firsts: Vec<(RepoId, Repo)> = Vec::new();
    let mut followers: Vec<((RepoId, Repo), usize)> = Vec::new();
    for target in to_stream {
        match firsts
            .iter()
            .position(|(_, f)| f.registry.name() == target.1.registry.name())
        {
            Some(i) => followers.push((target, i)),
            None => firsts.push(target),
        }
    }
    let Some((_, source)) = task.sources.first() else {
        return done;
    };
    let first_repos: Vec<Repo> = firsts.iter().map(|(_, r)| r.clone()).collect();
    let reads = Reads {
        digest,
        size: task.size,
        retries: task.retries,
        progress: &progress,
        cancel: &cancel,
    };
    let streamed = reads.stream_with_retries(source, &first_repos).await;
    // Per first upload: `None` when it succeeded, else the class of its failure.
    let mut first_failed: Vec<Option<Class>> = vec![None; firsts.len()];
    for (i, ((id, _), result)) in firsts.iter().zip(streamed).enumerate() {
        first_failed[i] = result.as_ref().err().map(Failure::class);
        done.push((*id, digest, result.map(|()| Placed::Uploaded)));
    }
    for ((id, follower), i) in followers {
        let first = &firsts[i].1;
        if let Some(class) = first_failed[i] {
            let blocked = Cause::Blocked {
                write: Write::Blob,
                by: Missing::Upload(first.display.clone()),
                class,
            };
            done.push((id, digest, Err(blob_failure(&follower.display, digest, blocked))));
            continue;
        }
        let result = match follower.registry.mount_blob(&follower.path, &digest, &first.path).await {
            Ok(MountOutcome::Mounted) => Ok(Placed::Mounted),
            // No mount support: copy within the destination registry, not from the source.
            Ok(MountOutcome::NotMounted) => reads
                .stream_with_retries(first, std::slice::from_ref(&follower))
                .await
                .remove(0)
                .map(|()| Placed::Uploaded),
            Err(e) => Err(registry_failure(&follower, digest, e)),
        };
        done.push((id, digest, result));
    }
    done
}

/// The source reads of one blob copy.
struct Reads<'a> {
    digest: Digest,
    size: u64,
    retries: usize,
    progress: &'a Progress,
    cancel: &'a Cancel,
}

impl Reads<'_> {
    /// [`stream_to`], then again from a fresh source read, after a backoff, for the
    /// targets whose copy failed transiently. A source body that broke off mid-stream
    /// (after its request succeeded, so the client's own retries never saw it) is read
    /// again up to `retries` times; anything else once more, as each attempt already
    /// spent the client's retries of its requests (a dead mirror must not take seven
    /// times as long to report). One result per target.
    async fn stream_with_retries(&self, from: &Repo, targets: &[Repo]) -> Vec<Result<(), Failure>> {
        let (digest, size) = (self.digest, self.size);
        let mut streamed = stream_to(from, targets, digest, size, self.progress).await;
        let (mut body_rereads, mut other_rereads) = (self.retries, UPLOAD_REREADS);
        let mut delay = REREAD_DELAY;
        loop {
            let again: Vec<usize> = (0..streamed.results.len())
                .filter(|i| matches!(&streamed.results[*i], Err(f) if f.is_transient()))
                .collect();
            let budget = if streamed.body_broke {
                &mut body_rereads
            } else {
                &mut other_rereads
            };
            if again.is_empty() || *budget == 0 || self.cancel.is_cancelled() {
                break;
            }
            *budget -= 1;
            let subset: Vec<Repo> = again.iter().map(|i| targets[*i].clone()).collect();
            for i in &again {
                if let Err(failure) = &streamed.results[*i] {
                    warn!("{failure} (reading the source again in {delay:?})");
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_REREAD_DELAY);
            let retried = stream_to(from, &subset, digest, size, self.progress).await;
            for (i, result) in again.into_iter().zip(retried.results) {
                streamed.results[i] = result;
            }
            streamed.body_broke = retried.body_broke;
        }
        streamed.results
    }
}

/// What one source read did for its targets.
struct Streamed {
    /// One per target.
    results: Vec<Result<(), Failure>>,
    /// The source's body failed part-way, transiently (cut off, reset, stalled).
    body_broke: bool,
}

/// Opens `from` once and streams it to `targets`. A failed source read fails every target
/// with that same error.
async fn stream_to(from: &Repo, targets: &[Repo], digest: Digest, size: u64, progress: &Progress) -> Streamed {
    let body = match from.registry.get_blob(&from.path, &digest).await {
        Ok(body) => body,
        Err(e) => {
            let failure = registry_failure(from, digest, e);
            return Streamed {
                results: targets.iter().map(|_| Err(failure.clone())).collect(),
                body_broke: false,
            };
        }
    };
    let fan = targets.len() as u64;
    let result = fan_out(body, from.registry.name(), digest, size, targets, |n| {
        progress.add_read(n, fan)
    })
    .await;
    let read_error = result.read.err().map(|e| registry_failure(from, digest, e));
    let body_broke = read_error.as_ref().is_some_and(Failure::is_transient);
    let results = targets
        .iter()
        .zip(result.uploads)
        .map(|(target, upload)| match (&read_error, upload) {
            (Some(failure), _) => Err(failure.clone()),
            (None, Ok(())) => Ok(()),
            (None, Err(e)) => Err(registry_failure(target, digest, e)),
        })
        .collect();
    Streamed { results, body_broke }
}
