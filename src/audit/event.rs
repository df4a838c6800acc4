//! The typed records of the audit log. Field names are the contract consumers rely on
//! (`docs/audit.md`): add fields, never rename them.
use serde::Serialize;

/// One line of the log: when, which run, and what happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    pub run_id: String,
    #[serde(flatten)]
    pub event: Event,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStart(RunStart),
    Phase(PhaseEvent),
    Decision(DecisionEvent),
    Policy(PolicyEvent),
    Write(WriteEvent),
    RunEnd(RunEnd),
}

/// Who started the run, with what, on which inputs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunStart {
    pub actor: String,
    /// Where the actor's name came from (`flag`, `prow-job-spec-author`, `USER`, …).
    pub actor_source: String,
    pub version: String,
    /// The command line, secrets redacted.
    pub arguments: Vec<String>,
    /// Every manifest file read, with its sha256.
    pub manifests: Vec<FileDigest>,
    pub policy: Option<FileDigest>,
}

/// A file and the sha256 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileDigest {
    pub path: String,
    pub sha256: String,
}

/// A phase starting or ending.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseEvent {
    pub phase: String,
    /// `start`, `done`, `stop` (a clean early stop: dry run, `--parse-only`) or `failed`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

/// An edge by name, as every record names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EdgeRecord {
    pub src_registry: String,
    pub dst_registry: String,
    pub image: String,
    pub digest: String,
    /// Empty for a tagless edge.
    pub tag: String,
}

/// What the plan decided for one edge.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecisionEvent {
    pub edge: EdgeRecord,
    /// `copy`, `retag`, `lost`, `tag-move`, `skip-still-lost`.
    pub decision: String,
}

/// The policy's verdict on one edge.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyEvent {
    pub edge: EdgeRecord,
    /// `allow` or `deny`.
    pub effect: String,
    /// The deciding rule's name; absent when the default decided.
    pub rule: Option<String>,
    /// `file:line` of the deciding rule (or of `default`).
    pub at: Option<String>,
    /// The verdict in words, as the run logs it.
    pub reason: String,
}

/// What a registry write wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteKind {
    Blob,
    Manifest,
    Tag,
    Signature,
    Attestation,
    /// A manifest deleted by digest (`--rollback-on-failure`: only manifests the run itself
    /// created), which removes the tags on it.
    ManifestDeletion,
}

/// One registry write, acknowledged or refused.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WriteEvent {
    pub kind: WriteKind,
    /// The registry host (or `oci:PATH`).
    pub registry: String,
    pub repository: String,
    /// The tag for a tag, the digest otherwise.
    pub reference: String,
    pub digest: String,
    pub bytes: u64,
    /// For a blob linked by a cross-repository mount instead of uploaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mounted_from: Option<String>,
    /// `ok` or `error`.
    pub result: String,
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// How the run ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunEnd {
    pub exit_code: u8,
    /// `ok`, or the error that ended the run.
    pub outcome: String,
    pub totals: Totals,
}

/// The run's counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub edges: usize,
    pub copy: usize,
    pub retag: usize,
    pub skip: usize,
    pub lost: usize,
    pub tag_moves: usize,
    pub denied: usize,
    /// `write` records of this run, and how many of them failed.
    pub writes: u64,
    pub write_errors: u64,
}
