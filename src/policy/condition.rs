//! CEL conditions: compiled once with cel-rust, checked against the policy's typed
//! context before any edge is evaluated, evaluated per distinct context.
//!
//! cel-rust parses and evaluates but has no type checker, and a typo in a policy must
//! not surface as "deny" on the day of a release. So [`Condition::compile`] walks the
//! parsed expression with the context's declared shape ([`super::context::VARIABLES`]): unknown
//! variables, fields and functions and wrong operand types are load errors, with the
//! column in the condition. The same walk records which parts of the context the
//! condition reads ([`Reads`]), which is what lets the evaluator reuse one result for
//! every edge that agrees on those parts.
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, LazyLock};

use cel::{Context, Env, ExecutionError, Program, Value};

use super::checker::Checker;
pub use super::context::{Part, Reads};
use super::context::{Ty, variable};

/// The standard environment, built once: building it registers every overload, which
/// costs far more than evaluating a condition.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib().with_optional_support(false)));

/// A compiled, checked condition.
pub struct Condition {
    source: String,
    program: Program,
    reads: Reads,
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("source", &self.source)
            .field("reads", &self.reads)
            .finish_non_exhaustive()
    }
}

/// Why a condition was refused, and where in it (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionError {
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl fmt::Display for ConditionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 1 {
            write!(f, "line {}, ", self.line)?;
        }
        write!(f, "column {}: {}", self.column, self.message)
    }
}

/// What one evaluation gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    True,
    False,
    /// Offline, the condition needed a part of the context only registries can tell.
    Unknown,
    /// The condition failed at run time (the edge is denied, with this reason).
    Error(Arc<str>),
}

impl Condition {
    /// Parses and checks `source` against the policy context.
    pub fn compile(source: &str) -> Result<Self, ConditionError> {
        let program = catch_unwind(|| ENV.compile(source))
            .map_err(|_| ConditionError {
                line: 1,
                column: 1,
                message: "the CEL parser failed on this condition".into(),
            })?
            .map_err(|errors| {
                let first = errors.errors.first();
                ConditionError {
                    line: first.map_or(1, |e| clamp(e.pos.0)),
                    column: first.map_or(1, |e| clamp(e.pos.1 + 1)),
                    message: first.map_or_else(|| "invalid CEL".to_string(), |e| format!("invalid CEL: {}", e.msg)),
                }
            })?;
        let mut checker = Checker {
            reads: Reads::default(),
            scope: Vec::new(),
        };
        let ty = checker.check(program.expression()).map_err(|(id, message)| {
            let offset = program
                .source_info()
                .offset_for(id)
                .map_or(0, |(start, _)| start as usize);
            let (line, column) = line_column(source, offset);
            ConditionError { line, column, message }
        })?;
        if !matches!(ty, Ty::Bool | Ty::Dyn) {
            return Err(ConditionError {
                line: 1,
                column: 1,
                message: format!("a condition must be a boolean, this one is {ty}"),
            });
        }
        Ok(Self {
            source: source.to_string(),
            program,
            reads: checker.reads,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The parts of the context this condition reads.
    pub fn reads(&self) -> Reads {
        self.reads
    }

    /// Evaluates against `context` (see [`super::evaluate::cel_context`]). Variables
    /// left out of the context are unknown: needing one gives [`Outcome::Unknown`].
    pub fn evaluate(&self, context: &Context<'_, '_>) -> Outcome {
        let result = catch_unwind(AssertUnwindSafe(|| self.program.execute(context)));
        match result {
            Ok(Ok(Value::Bool(true))) => Outcome::True,
            Ok(Ok(Value::Bool(false))) => Outcome::False,
            Ok(Ok(other)) => Outcome::Error(format!("the condition gave {other:?}, not a boolean").into()),
            Ok(Err(ExecutionError::UndeclaredReference(name))) if variable(&name).is_some() => Outcome::Unknown,
            Ok(Err(e)) => Outcome::Error(e.to_string().into()),
            Err(_) => Outcome::Error("the CEL evaluator failed on this condition".into()),
        }
    }
}

/// The shared environment, for building evaluation contexts.
pub fn env() -> Arc<Env> {
    ENV.clone()
}

fn clamp(n: isize) -> u32 {
    u32::try_from(n.max(1)).unwrap_or(u32::MAX)
}

/// 1-based line and column (in characters) of byte `offset` in `source`.
fn line_column(source: &str, offset: usize) -> (u32, u32) {
    let before = source.get(..offset.min(source.len())).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(column).unwrap_or(u32::MAX),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(source: &str) -> String {
        match Condition::compile(source) {
            Ok(c) => panic!("{source:?} compiled: {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn reads(source: &str) -> Vec<Part> {
        let condition = Condition::compile(source).unwrap_or_else(|e| panic!("{source}: {e}"));
        Part::ALL
            .into_iter()
            .filter(|p| condition.reads().contains(*p))
            .collect()
    }

    #[test]
    fn accepts_the_documented_examples() {
        for source in [
            r#"provenance.verified && provenance.builder_id.startsWith("https://cloudbuild.googleapis.com/")"#,
            r#""release-managers" in actor.roles"#,
            r#"now < timestamp("2026-12-01T00:00:00Z") || now > timestamp("2027-01-05T00:00:00Z")"#,
            r#"edge.tag.matches("^v[0-9]+\\.[0-9]+\\.[0-9]+$")"#,
            "image.platforms.all(p, p.startsWith('linux/'))",
            "image.size < 2 * 1024 * 1024 * 1024",
            "decision == 'retag' || staging_signature.verified",
            "has(provenance.verified) && size(edge.tag) > 0",
            "now.getDayOfWeek() != 0 && now.getHours('America/Los_Angeles') < 17",
            "[1, 2].exists_one(x, x == 2) ? true : false",
        ] {
            Condition::compile(source).unwrap_or_else(|e| panic!("{source}: {e}"));
        }
    }

    #[test]
    fn refuses_typos_and_type_errors_with_their_column() {
        assert_eq!(
            error("provenance.verifed"),
            "column 11: provenance has no field 'verifed' (its fields: verified, builder_id, source_repo, predicate_type)"
        );
        assert_eq!(
            error("actr.name == 'x'"),
            "column 1: unknown variable 'actr' (the context has actor, edge, decision, image, provenance, staging_signature, now)"
        );
        assert_eq!(
            error("provenance.verified == 'true'"),
            "column 21: no '==' for (bool, string)"
        );
        assert_eq!(
            error("edge.tag.startsWith(1)"),
            "column 20: no 'startsWith' for (string, int)"
        );
        assert_eq!(
            error("edge.tag.beginsWith('v')"),
            "column 20: unknown function 'beginsWith'"
        );
        assert_eq!(
            error("edge.tag"),
            "column 1: a condition must be a boolean, this one is string"
        );
        assert_eq!(
            error("decision.name == 'x'"),
            "column 9: decision is a string, it has no field 'name'"
        );
        assert_eq!(error("now > 3"), "column 5: no '>' for (timestamp, int)");
        assert!(
            error("provenance.verified &&").starts_with("column 24: invalid CEL"),
            "{}",
            error("provenance.verified &&")
        );
        assert_eq!(
            error("true &&\n  edge.nope"),
            "line 2, column 7: edge has no field 'nope' (its fields: src_registry, dst_registry, image, digest, tag)"
        );
    }

    #[test]
    fn records_the_parts_it_reads() {
        assert_eq!(
            reads("actor.name == 'x' && now > timestamp('2020-01-01T00:00:00Z')"),
            []
        );
        assert_eq!(reads("edge.tag == 'latest'"), [Part::Tag]);
        assert_eq!(reads("provenance.verified"), [Part::Provenance]);
        assert_eq!(
            reads("edge.image.startsWith('k') && decision == 'copy'"),
            [Part::Image, Part::Decision]
        );
        assert_eq!(
            reads("edge == edge"),
            [
                Part::SrcRegistry,
                Part::DstRegistry,
                Part::Image,
                Part::Tag,
                Part::Digest
            ]
        );
        // A comprehension variable named like a context variable shadows it.
        assert_eq!(reads("['a'].all(edge, edge == 'a')"), []);
    }
}
