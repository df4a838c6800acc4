//! The audit log: who ran a promotion, what the plan and the policy decided, and every
//! registry write, acknowledged or refused, as typed events ([`event`]).
//!
//! Events go through an [`AuditLog`] (one per run: run id, counters) to a [`Sink`] the
//! CLI picks: [`JsonLines`] (a file, append-only, or stdout). Registry writes are
//! recorded by [`Audited`], a decorator over any [`crate::registry::Registry`], so
//! every phase's writes are audited without the copy engine knowing.
//!
//! Durability: a record about a registry write or a phase boundary is `fsync`ed before
//! the call returns; batches of plan records are written whole lines at a time and made
//! durable at the next boundary. A process killed at any moment leaves whole lines.
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

mod audited;
pub mod event;
mod jsonl;
#[cfg(test)]
pub mod memory;
mod redact;

pub use audited::Audited;
pub use event::{
    DecisionEvent, EdgeRecord, Event, FileDigest, PhaseEvent, PolicyEvent, Record, RunEnd, RunStart, Totals,
    WriteEvent, WriteKind,
};
pub use jsonl::JsonLines;
pub use redact::redact_arguments;

/// Where records go. Implementations append; they never rewrite what is there.
pub trait Sink: Send + Sync + fmt::Debug {
    /// A name for messages (`audit.jsonl`, `stdout`).
    fn name(&self) -> &str;

    /// Appends `records` in order, each whole; when `durable`, they are on stable
    /// storage when this returns.
    fn append(&self, records: &[Record], durable: bool) -> std::io::Result<()>;
}

/// A record could not be written: the run stops, since what follows would go unaudited.
#[derive(Debug, thiserror::Error)]
#[error("writing the audit log {sink}: {source}")]
pub struct Error {
    pub sink: String,
    #[source]
    pub source: std::io::Error,
}

/// Plan records written per batch: large enough to keep system calls few on the real
/// tree, small enough to bound memory.
const BATCH: usize = 4096;

/// One run's audit log.
#[derive(Debug)]
pub struct AuditLog {
    run_id: String,
    sink: Arc<dyn Sink>,
    arguments: Vec<String>,
    writes: AtomicU64,
    write_errors: AtomicU64,
}

impl AuditLog {
    /// A log for a new run, with the command line it was started with (redacted here,
    /// so no caller can forget to).
    pub fn new(sink: Arc<dyn Sink>, arguments: &[String]) -> Self {
        Self {
            run_id: new_run_id(),
            sink,
            arguments: redact_arguments(arguments),
            writes: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
        }
    }

    /// The redacted command line, for `run_start`.
    pub fn arguments(&self) -> &[String] {
        &self.arguments
    }

    /// Writes one record durably.
    pub fn emit(&self, event: Event) -> Result<(), Error> {
        if let Event::Write(write) = &event {
            self.writes.fetch_add(1, Ordering::Relaxed);
            if write.error.is_some() {
                self.write_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.append(&[self.record(event)], true)
    }

    /// A writer for many records produced one by one: whole-line batches, durable at
    /// [`Batch::finish`].
    pub fn batch(&self) -> Batch<'_> {
        Batch {
            log: self,
            pending: Vec::with_capacity(BATCH),
        }
    }

    /// `write` records so far, and how many of them failed.
    pub fn write_counts(&self) -> (u64, u64) {
        (
            self.writes.load(Ordering::Relaxed),
            self.write_errors.load(Ordering::Relaxed),
        )
    }

    fn record(&self, event: Event) -> Record {
        Record {
            time: rfc3339(SystemTime::now()),
            run_id: self.run_id.clone(),
            event,
        }
    }

    fn append(&self, records: &[Record], durable: bool) -> Result<(), Error> {
        self.sink.append(records, durable).map_err(|source| Error {
            sink: self.sink.name().to_string(),
            source,
        })
    }
}

/// Records on their way to the sink, [`BATCH`] at a time.
#[derive(Debug)]
pub struct Batch<'a> {
    log: &'a AuditLog,
    pending: Vec<Record>,
}

impl Batch<'_> {
    pub fn push(&mut self, event: Event) -> Result<(), Error> {
        self.pending.push(self.log.record(event));
        if self.pending.len() == BATCH {
            self.log.append(&self.pending, false)?;
            self.pending.clear();
        }
        Ok(())
    }

    /// Writes what is pending and makes everything durable.
    pub fn finish(self) -> Result<(), Error> {
        self.log.append(&self.pending, true)
    }
}

/// RFC 3339 in UTC with milliseconds, as log systems parse it.
fn rfc3339(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A run id unique across machines and runs without a random-number dependency: the
/// sha256 of the start time, process id and host name, shortened.
fn new_run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let seed = format!("{nanos}/{}/{}", std::process::id(), host.trim());
    crate::digest::Digest::of(seed.as_bytes()).hex()[..32].to_string()
}
