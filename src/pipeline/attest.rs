//! Phase 7, Attest: attach a promotion attestation to every image Sign signed (the same
//! jobs: once per signed name and digest, at the canonical destination, index children
//! and tagless digests included), carry the staging image's referrers (SBOMs, build
//! attestations, signatures) there with the copy engine, and with
//! `--replicate-signatures` copy every referrer of the canonical destination to the other
//! destinations. Like Go, `--sign=false` disables it.
//!
//! The domain work is `trust::attest`; this phase decides what goes where. A failure
//! leaves the run "promoted and signed but not attested" (exit 1); a rerun only attests.
use std::collections::{BTreeMap, BTreeSet};

use futures_util::{StreamExt, stream};
use tracing::{error, info};

use crate::copy;
use crate::digest::Digest;
use crate::registry::Referrer;
use crate::trust::Signer;
use crate::trust::attest::{Outcome, Promotion, attest_image, put_empty_config};
use crate::trust::attestation::{PromotionRecord, builder_id};

use super::state::{AttestReport, Attested, RepoKey, RunState};
use super::trust_jobs::{self, TrustJob};
use super::{Error, Flow};

/// One job after attesting: the referrers now at its canonical destination.
struct Done {
    job: TrustJob,
    /// Attested by this run (as opposed to found attested).
    newly: bool,
    /// Listed there before this phase, plus what it attached.
    at_canonical: BTreeSet<Digest>,
    /// Staging referrers the canonical destination lacks.
    to_carry: Vec<Digest>,
}

pub(super) async fn run(state: &mut RunState) -> Result<Flow, Error> {
    if !state.options.sign {
        info!("attestation disabled (--sign=false)");
        return Ok(Flow::Continue);
    }
    let jobs = match state.trust_jobs.take() {
        Some(jobs) => jobs,
        None => trust_jobs::plan(state).await?,
    };
    let mut report = AttestReport::default();
    let mut done = attest_all(state, jobs, &mut report).await?;
    carry(state, &mut done, &mut report).await?;
    if state.options.trust.replicate {
        replicate(state, &done, &mut report).await?;
    }
    info!(
        "attestations: {} new, {} already there, {} failed; {} staging referrers carried, {} referrers replicated",
        report.attested.iter().filter(|a| a.newly).count(),
        report.attested.iter().filter(|a| !a.newly).count(),
        report.failed.len(),
        report.carried,
        report.replicated
    );
    let failed = report.failed.first().cloned();
    let count = report.failed.len();
    state.attesting = report;
    match failed {
        Some((reference, why)) => Err(Error::Unattested {
            count,
            first: format!("{reference}: {why}"),
        }),
        None => Ok(Flow::Continue),
    }
}

/// Attests every job's image at its canonical destination (`--max-signature-ops` at
/// once), and finds the staging referrers it lacks.
async fn attest_all(state: &RunState, jobs: Vec<TrustJob>, report: &mut AttestReport) -> Result<Vec<Done>, Error> {
    let Some(signer) = &state.signer else {
        // Setup builds a signer for every run that reaches this phase.
        return Err(Error::NoSigner(Vec::new()));
    };
    let timestamp = run_timestamp();
    let builder = builder_id();
    // The empty config every attestation names: once per canonical repository.
    let repos: BTreeSet<RepoKey> = jobs.iter().map(|j| j.at).collect();
    let configs: BTreeMap<RepoKey, Result<(), String>> = stream::iter(repos)
        .map(|key| async move {
            let put = async {
                let repo = state.repo(key).map_err(|e| e.to_string())?;
                put_empty_config(&repo).await.map_err(|e| e.to_string())
            };
            (key, put.await)
        })
        .buffer_unordered(copy::PENDING_REQUESTS)
        .collect()
        .await;
    let context = Context {
        signer,
        timestamp: &timestamp,
        builder: &builder,
        configs: &configs,
    };
    let results: Vec<(TrustJob, Result<Done, String>)> = stream::iter(jobs)
        .map(|job| async move {
            let outcome = attest_one(state, context, &job).await;
            (job, outcome)
        })
        .buffer_unordered(state.options.trust.max_ops.max(1))
        .collect()
        .await;
    let mut done = Vec::new();
    for (job, outcome) in results {
        let reference = format!("{}@{}", state.repo_display(job.at), job.image);
        match outcome {
            Ok(finished) => {
                report.attested.push(Attested {
                    reference,
                    newly: finished.newly,
                });
                done.push(finished);
            }
            Err(why) => {
                error!("{reference}: attestation failed: {why}");
                report.failed.push((reference, why));
            }
        }
    }
    report.attested.sort_by(|a, b| a.reference.cmp(&b.reference));
    Ok(done)
}

/// What every attestation of the run shares.
#[derive(Clone, Copy)]
struct Context<'a> {
    signer: &'a Signer,
    /// This run's time, RFC 3339 UTC.
    timestamp: &'a str,
    builder: &'a str,
    /// Whether the empty config got into each canonical repository.
    configs: &'a BTreeMap<RepoKey, Result<(), String>>,
}

/// Attests one job's image at its canonical destination, and finds the staging referrers
/// that destination lacks.
async fn attest_one(state: &RunState, context: Context<'_>, job: &TrustJob) -> Result<Done, String> {
    context.configs.get(&job.at).cloned().unwrap_or(Ok(()))?;
    let at = state.repo(job.at).map_err(|e| e.to_string())?;
    let staging = state.repo(job.staging).map_err(|e| e.to_string())?;
    let image = job
        .descriptor
        .clone()
        .ok_or_else(|| format!("{} has no such manifest", at.display))?;
    let listed = list(&at, &job.image).await?;
    let record = PromotionRecord {
        src_ref: format!("{}@{}", staging.display, job.image),
        dst_ref: format!("{}@{}", at.display, job.image),
        digest: job.image.to_string(),
        timestamp: context.timestamp.to_string(),
        builder_id: context.builder.to_string(),
    };
    let promotion = Promotion {
        name: &job.identity,
        record: &record,
    };
    let outcome = attest_image(context.signer, &at, &image, &listed, promotion)
        .await
        .map_err(|e| e.to_string())?;
    let mut at_canonical: BTreeSet<Digest> = listed.iter().map(|r| r.digest).collect();
    if let Outcome::Attested(manifest) = outcome {
        at_canonical.insert(manifest);
    }
    let staged = match state.staging_referrers.get(&(job.staging, job.image)) {
        Some(known) => known.clone(),
        None => list(&staging, &job.image).await?,
    };
    let to_carry = staged
        .iter()
        .map(|r| r.digest)
        .filter(|d| !at_canonical.contains(d))
        .collect();
    Ok(Done {
        job: job.clone(),
        newly: outcome != Outcome::AlreadyAttested,
        at_canonical,
        to_carry,
    })
}

/// The referrers of `image` in `repo`, as its registry lists them.
async fn list(repo: &copy::Repo, image: &Digest) -> Result<Vec<Referrer>, String> {
    repo.registry
        .list_referrers(&repo.path, image, None)
        .await
        .map_err(|e| e.to_string())
}

/// The staging referrers each canonical destination lacks, copied there (one read of
/// each, byte for byte) and listed as referrers of the image.
async fn carry(state: &RunState, done: &mut [Done], report: &mut AttestReport) -> Result<(), Error> {
    let mut request = copy::Request::default();
    let mut wanted_by: BTreeMap<(copy::RepoId, Digest), usize> = BTreeMap::new();
    for (i, finished) in done.iter().enumerate() {
        if finished.to_carry.is_empty() {
            continue;
        }
        let from = request.repo(state.repo(finished.job.staging)?);
        let to = request.repo(state.repo(finished.job.at)?);
        for referrer in &finished.to_carry {
            request.want_referrer((from, *referrer), to);
            wanted_by.insert((to, *referrer), i);
        }
    }
    for delivered in run_copy(state, &request, report).await {
        let referrer = delivered.source.1;
        if let Some(i) = wanted_by.get(&(delivered.destination, referrer)) {
            done[*i].at_canonical.insert(referrer);
            report.carried += 1;
        }
    }
    Ok(())
}

/// `--replicate-signatures`: every referrer of the canonical destination (carried,
/// attested, or there before) copied to each other destination that does not list it.
async fn replicate(state: &RunState, done: &[Done], report: &mut AttestReport) -> Result<(), Error> {
    let wanted: Vec<(&Done, RepoKey)> = done
        .iter()
        .flat_map(|d| d.job.mirrors.iter().map(move |m| (d, *m)))
        .collect();
    let listed: Vec<Result<MirrorListing, (String, String)>> = stream::iter(wanted)
        .map(|(done, mirror)| async move {
            let repo = state
                .repo(mirror)
                .map_err(|e| (state.repo_display(mirror), e.to_string()))?;
            let image = done.job.image;
            let referrers = list(&repo, &image)
                .await
                .map_err(|why| (format!("{}@{image}", repo.display), why))?;
            Ok(MirrorListing {
                done,
                mirror,
                referrers,
            })
        })
        .buffer_unordered(copy::PENDING_REQUESTS)
        .collect()
        .await;
    let mut request = copy::Request::default();
    for result in listed {
        let listing = match result {
            Ok(listing) => listing,
            Err((reference, why)) => {
                error!("{reference}: listing referrers to replicate failed: {why}");
                report.failed.push((reference, why));
                continue;
            }
        };
        let there: BTreeSet<Digest> = listing.referrers.iter().map(|r| r.digest).collect();
        // The same registry and path always get the same id from the request.
        let from = request.repo(state.repo(listing.done.job.at)?);
        let to = request.repo(state.repo(listing.mirror)?);
        for referrer in listing.done.at_canonical.difference(&there) {
            request.want_referrer((from, *referrer), to);
        }
    }
    report.replicated += run_copy(state, &request, report).await.len();
    Ok(())
}

/// The referrers of one image at one of its other destinations.
struct MirrorListing<'a> {
    done: &'a Done,
    mirror: RepoKey,
    referrers: Vec<Referrer>,
}

/// Runs a copy of referrers; returns what was delivered, reporting every failure.
async fn run_copy(state: &RunState, request: &copy::Request, report: &mut AttestReport) -> Vec<copy::Delivered> {
    if request.is_empty() {
        return Vec::new();
    }
    let copied = copy::run(request, &state.cancel).await;
    for failure in copied.failures {
        report.failed.push((failure.at.clone(), failure.cause.to_string()));
    }
    copied.delivered
}

/// This run's time, RFC 3339 UTC to the second: one for every attestation it writes.
fn run_timestamp() -> String {
    let now = jiff::Timestamp::now();
    now.round(jiff::Unit::Second).unwrap_or(now).to_string()
}
