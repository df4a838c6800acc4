//! What a copy did: counters for the summary, the images it delivered (for signing and
//! attestation), and every failure, typed.
use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::digest::Digest;
use crate::registry::media::ManifestError;
use crate::registry::{self, MediaType};

use super::{RepoId, Source};

/// Counted by the engine; written as is into the run summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Manifests written by digest (children and tops).
    pub manifests_pushed: u64,
    pub tags_pushed: u64,
    /// Blob uploads, counted once per destination repository.
    pub blobs_uploaded: u64,
    pub blobs_mounted: u64,
    /// Blobs a destination already had (HEAD said so).
    pub blobs_present: u64,
    /// Bytes read from sources: each missing blob once, whatever the number of mirrors.
    pub source_bytes_read: u64,
    /// Bytes sent to destinations (source bytes times the destinations that needed them).
    pub bytes_uploaded: u64,
}

impl Counters {
    /// Adds another run's counters (a rollout runs the engine once per wave).
    pub fn add(&mut self, other: &Counters) {
        let Counters {
            manifests_pushed,
            tags_pushed,
            blobs_uploaded,
            blobs_mounted,
            blobs_present,
            source_bytes_read,
            bytes_uploaded,
        } = other;
        self.manifests_pushed += manifests_pushed;
        self.tags_pushed += tags_pushed;
        self.blobs_uploaded += blobs_uploaded;
        self.blobs_mounted += blobs_mounted;
        self.blobs_present += blobs_present;
        self.source_bytes_read += source_bytes_read;
        self.bytes_uploaded += bytes_uploaded;
    }
}

/// A source image now complete in a destination repository: its manifest graph, every
/// blob, and the tags asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub source: Source,
    pub destination: RepoId,
    pub media_type: MediaType,
    /// The size of its top manifest (what a descriptor of it needs, e.g. a referrer's
    /// `subject`).
    pub size: u64,
    pub tags: Vec<String>,
    /// The manifest was pushed by this run (a copy), rather than found there (a retag).
    pub copied: bool,
}

/// A source image that did not reach a destination repository, and the failure that
/// stopped it there (its class says whether a rerun helps).
#[derive(Debug, Clone)]
pub struct Undelivered {
    pub source: Source,
    pub destination: RepoId,
    pub tags: Vec<String>,
    pub failure: Failure,
}

/// What one copy run did.
#[derive(Debug, Default)]
pub struct Report {
    pub counters: Counters,
    pub delivered: Vec<Delivered>,
    /// Every image asked for and not delivered: one entry each.
    pub undelivered: Vec<Undelivered>,
    /// Every failure, in the order they happened.
    pub failures: Vec<Failure>,
}

/// Whether running again can succeed where a failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// Network, 5xx, 429, timeouts, bodies cut off, races, Ctrl-C: a rerun converges.
    Transient,
    /// A corrupt or unreadable source, a manifest kpromo cannot copy, a refusal that is
    /// not a race: a rerun fails the same way until someone fixes the cause.
    Permanent,
}

impl fmt::Display for Class {
    /// As in `--summary-json`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Class::Transient => "transient",
            Class::Permanent => "permanent",
        })
    }
}

impl Class {
    /// What to tell the user about failures of this class.
    pub fn advice(self) -> &'static str {
        match self {
            Class::Transient => "rerun converges",
            Class::Permanent => "fix the source or the manifest; a rerun will not help",
        }
    }
}

/// One thing that could not be copied, and why.
#[derive(Debug, Clone)]
pub struct Failure {
    /// What failed, for messages: `registry/image@digest`, `registry/image:tag`, or
    /// `registry/image: blob sha256:…`.
    pub at: String,
    pub cause: Cause,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.cause)
    }
}

/// Why something could not be copied.
#[derive(Debug, Clone)]
pub enum Cause {
    /// A registry refused or failed (it names itself and the operation). Shared: one
    /// failed source read fails the copy to every destination that waited for it.
    Registry(Arc<registry::Error>),
    /// The source manifest cannot be copied as it is (not JSON, schema1, a digest kpromo
    /// cannot verify).
    Unreadable(Arc<ManifestError>),
    /// The source manifest was there when the work was planned, and is gone.
    Vanished,
    /// Image indexes nest deeper than [`super::MAX_DEPTH`] levels.
    TooDeep,
    /// Ctrl-C: not started.
    Interrupted,
    /// Not attempted, because something it needs failed (reported on its own, with the
    /// class it passes on).
    Blocked { write: Write, by: Missing, class: Class },
    /// A copy task ended without an answer (it panicked): a bug, reported rather than
    /// hidden.
    Task(String),
}

/// What was not written because of a [`Cause::Blocked`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    Blob,
    Manifest,
    Tags,
}

/// What a blocked write needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    SourceManifest,
    Child(Digest),
    Blob(Digest),
    Image,
    /// The upload into another repository of the same registry, which this one mounts from.
    Upload(String),
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Registry(e) => write!(f, "{e}"),
            Cause::Unreadable(why) => write!(f, "{why}"),
            Cause::Vanished => write!(f, "manifest disappeared from the source since planning"),
            Cause::TooDeep => write!(
                f,
                "image indexes nested deeper than {} levels are not supported",
                super::MAX_DEPTH
            ),
            Cause::Interrupted => write!(f, "not written (interrupted)"),
            Cause::Blocked { write, by, .. } => {
                let not = match write {
                    Write::Blob => "not copied",
                    Write::Manifest => "not pushed",
                    Write::Tags => "tags not written",
                };
                match by {
                    Missing::SourceManifest => write!(f, "{not} because the source manifest could not be read"),
                    Missing::Child(d) => write!(f, "{not} because child {d} could not be copied"),
                    Missing::Blob(d) => write!(f, "{not} because blob {d} could not be copied"),
                    Missing::Image => write!(f, "{not} because the image could not be copied"),
                    Missing::Upload(to) => write!(f, "{not} because its upload to {to} failed"),
                }
            }
            Cause::Task(why) => write!(f, "copy task failed: {why}"),
        }
    }
}

impl Failure {
    pub(super) fn new(at: impl Into<String>, cause: Cause) -> Self {
        Self { at: at.into(), cause }
    }

    /// Whether another read of the source could succeed where this one failed.
    pub(super) fn is_transient(&self) -> bool {
        matches!(&self.cause, Cause::Registry(e) if e.is_transient())
    }

    /// Whether a rerun can succeed where this failed; a blocked write has the class of
    /// what blocked it.
    pub fn class(&self) -> Class {
        match &self.cause {
            Cause::Registry(e) if e.rerun_helps() => Class::Transient,
            Cause::Interrupted => Class::Transient,
            Cause::Blocked { class, .. } => *class,
            Cause::Registry(_) | Cause::Unreadable(_) | Cause::Vanished | Cause::TooDeep | Cause::Task(_) => {
                Class::Permanent
            }
        }
    }

    /// Whether this is only a consequence of Ctrl-C.
    pub fn is_interrupted(&self) -> bool {
        matches!(self.cause, Cause::Interrupted)
    }
}
