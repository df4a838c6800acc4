//! CEL conditions: compiled once with cel-rust, checked against the policy's typed
//! context before any edge is evaluated, evaluated per distinct context.
//!
//! cel-rust parses and evaluates but has no type checker, and a typo in a policy must
//! not surface as "deny" on the day of a release. So [`Condition::compile`] walks the
//! parsed expression with the context's declared shape ([`VARIABLES`]): unknown
//! variables, fields and functions and wrong operand types are load errors, with the
//! column in the condition. The same walk records which parts of the context the
//! condition reads ([`Reads`]), which is what lets the evaluator reuse one result for
//! every edge that agrees on those parts.
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, LazyLock};

use cel::common::ast::{EntryExpr, Expr, LiteralValue, operators};
use cel::{Context, Env, ExecutionError, IdedExpr, Program, Value};

/// The parts of the CEL context an edge's answer can vary by. Actor and `now` are the
/// same for every edge of a run, so they need no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    SrcRegistry,
    DstRegistry,
    Image,
    Tag,
    Digest,
    Decision,
    ImageFacts,
    Provenance,
    StagingSignature,
}

impl Part {
    pub const ALL: [Part; 9] = [
        Part::SrcRegistry,
        Part::DstRegistry,
        Part::Image,
        Part::Tag,
        Part::Digest,
        Part::Decision,
        Part::ImageFacts,
        Part::Provenance,
        Part::StagingSignature,
    ];

    /// Known only once registries have been read: offline checks cannot evaluate these.
    pub fn needs_registry(self) -> bool {
        matches!(
            self,
            Part::Decision | Part::ImageFacts | Part::Provenance | Part::StagingSignature
        )
    }
}

/// The set of [`Part`]s a condition reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Reads(u16);

impl Reads {
    fn add(&mut self, part: Part) {
        self.0 |= 1 << part as u16;
    }

    pub fn contains(self, part: Part) -> bool {
        self.0 & (1 << part as u16) != 0
    }
}

/// A static type, as far as the checker can tell; `Dyn` accepts anything.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ty {
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    Null,
    Timestamp,
    Duration,
    List(Box<Ty>),
    Map,
    Object(&'static Variable),
    Dyn,
}

impl Ty {
    fn is_numeric(&self) -> bool {
        matches!(self, Ty::Int | Ty::Uint | Ty::Double)
    }

    /// Whether values of the two types can meet in `==` or `<`: same kind, numbers of
    /// any kind, or anything dynamic.
    fn compatible(&self, other: &Ty) -> bool {
        match (self, other) {
            (Ty::Dyn, _) | (_, Ty::Dyn) => true,
            (a, b) if a.is_numeric() && b.is_numeric() => true,
            (Ty::List(a), Ty::List(b)) => a.compatible(b),
            (Ty::Object(a), Ty::Object(b)) => std::ptr::eq(*a, *b),
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Bool => f.write_str("bool"),
            Ty::Int => f.write_str("int"),
            Ty::Uint => f.write_str("uint"),
            Ty::Double => f.write_str("double"),
            Ty::String => f.write_str("string"),
            Ty::Bytes => f.write_str("bytes"),
            Ty::Null => f.write_str("null"),
            Ty::Timestamp => f.write_str("timestamp"),
            Ty::Duration => f.write_str("duration"),
            Ty::List(t) => write!(f, "list({t})"),
            Ty::Map => f.write_str("map"),
            Ty::Object(v) => f.write_str(v.name),
            Ty::Dyn => f.write_str("dyn"),
        }
    }
}

/// A top-level variable of the CEL context: a scalar, or an object with fields.
#[derive(Debug, PartialEq, Eq)]
pub struct Variable {
    pub name: &'static str,
    /// The part it belongs to (`None` when it is the same for every edge of a run).
    part: Option<Part>,
    shape: Shape,
}

#[derive(Debug, PartialEq, Eq)]
enum Shape {
    Scalar(Ty),
    /// (field, type, the part it belongs to when the variable's own part does not say).
    Fields(&'static [(&'static str, FieldTy, Option<Part>)]),
}

/// Field types, spelt without boxes so that [`VARIABLES`] can be a constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldTy {
    Bool,
    Int,
    String,
    StringList,
}

impl FieldTy {
    fn ty(self) -> Ty {
        match self {
            FieldTy::Bool => Ty::Bool,
            FieldTy::Int => Ty::Int,
            FieldTy::String => Ty::String,
            FieldTy::StringList => Ty::List(Box::new(Ty::String)),
        }
    }
}

/// The CEL context every condition sees (`docs/policy.md` documents it).
pub static VARIABLES: [Variable; 7] = [
    Variable {
        name: "actor",
        part: None,
        shape: Shape::Fields(&[("name", FieldTy::String, None), ("roles", FieldTy::StringList, None)]),
    },
    Variable {
        name: "edge",
        part: None,
        shape: Shape::Fields(&[
            ("src_registry", FieldTy::String, Some(Part::SrcRegistry)),
            ("dst_registry", FieldTy::String, Some(Part::DstRegistry)),
            ("image", FieldTy::String, Some(Part::Image)),
            ("digest", FieldTy::String, Some(Part::Digest)),
            ("tag", FieldTy::String, Some(Part::Tag)),
        ]),
    },
    Variable {
        name: "decision",
        part: Some(Part::Decision),
        shape: Shape::Scalar(Ty::String),
    },
    Variable {
        name: "image",
        part: Some(Part::ImageFacts),
        shape: Shape::Fields(&[
            ("media_type", FieldTy::String, None),
            ("platforms", FieldTy::StringList, None),
            ("size", FieldTy::Int, None),
        ]),
    },
    Variable {
        name: "provenance",
        part: Some(Part::Provenance),
        shape: Shape::Fields(&[
            ("verified", FieldTy::Bool, None),
            ("builder_id", FieldTy::String, None),
            ("source_repo", FieldTy::String, None),
            ("predicate_type", FieldTy::String, None),
        ]),
    },
    Variable {
        name: "staging_signature",
        part: Some(Part::StagingSignature),
        shape: Shape::Fields(&[
            ("present", FieldTy::Bool, None),
            ("verified", FieldTy::Bool, None),
            ("identity", FieldTy::String, None),
        ]),
    },
    Variable {
        name: "now",
        part: None,
        shape: Shape::Scalar(Ty::Timestamp),
    },
];

impl Variable {
    fn ty(&'static self) -> Ty {
        match &self.shape {
            Shape::Scalar(t) => t.clone(),
            Shape::Fields(_) => Ty::Object(self),
        }
    }

    fn field(&self, name: &str) -> Option<(Ty, Option<Part>)> {
        match &self.shape {
            Shape::Fields(fields) => fields
                .iter()
                .find(|(f, _, _)| *f == name)
                .map(|(_, t, part)| (t.ty(), part.or(self.part))),
            Shape::Scalar(_) => None,
        }
    }

    /// Every part reading the whole variable depends on.
    fn parts(&self) -> Vec<Part> {
        match &self.shape {
            Shape::Fields(fields) => fields.iter().filter_map(|(_, _, p)| p.or(self.part)).collect(),
            Shape::Scalar(_) => self.part.into_iter().collect(),
        }
    }

    fn field_names(&self) -> String {
        match &self.shape {
            Shape::Fields(fields) => fields.iter().map(|(f, _, _)| *f).collect::<Vec<_>>().join(", "),
            Shape::Scalar(_) => String::new(),
        }
    }
}

fn variable(name: &str) -> Option<&'static Variable> {
    VARIABLES.iter().find(|v| v.name == name)
}

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

/// A checker error: the expression id it is about, and the message.
type CheckError = (u64, String);

struct Checker {
    reads: Reads,
    /// Comprehension variables in scope, innermost last.
    scope: Vec<(String, Ty)>,
}

/// Functions of CEL's standard library that the checker knows, beyond operators.
const TIMESTAMP_PARTS: &[&str] = &[
    "getDate",
    "getDayOfMonth",
    "getDayOfWeek",
    "getDayOfYear",
    "getFullYear",
    "getHours",
    "getMilliseconds",
    "getMinutes",
    "getMonth",
    "getSeconds",
];

impl Checker {
    fn check(&mut self, e: &IdedExpr) -> Result<Ty, CheckError> {
        let fail = |message: String| Err((e.id, message));
        match &e.expr {
            Expr::Literal(literal) => Ok(match literal {
                LiteralValue::Boolean(_) => Ty::Bool,
                LiteralValue::Bytes(_) => Ty::Bytes,
                LiteralValue::Double(_) => Ty::Double,
                LiteralValue::Int(_) => Ty::Int,
                LiteralValue::Null => Ty::Null,
                LiteralValue::String(_) => Ty::String,
                LiteralValue::UInt(_) => Ty::Uint,
            }),
            Expr::Ident(name) => self.ident(e.id, name),
            Expr::Select(select) => {
                // `has(x.f)` is a select with `test`: it checks like `x.f` and gives a bool.
                let ty = self.select(e.id, &select.operand, &select.field)?;
                Ok(if select.test { Ty::Bool } else { ty })
            }
            Expr::List(list) => {
                let mut element = None::<Ty>;
                for item in &list.elements {
                    let ty = self.check(item)?;
                    element = Some(match element {
                        Some(prev) if prev != ty => Ty::Dyn,
                        _ => ty,
                    });
                }
                Ok(Ty::List(Box::new(element.unwrap_or(Ty::Dyn))))
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(entry) = &entry.expr {
                        self.check(&entry.key)?;
                        self.check(&entry.value)?;
                    }
                }
                Ok(Ty::Map)
            }
            Expr::Struct(s) => fail(format!("message literals ({}{{…}}) are not supported", s.type_name)),
            Expr::Comprehension(c) => {
                let element = match self.check(&c.iter_range)? {
                    Ty::List(t) => *t,
                    Ty::Map | Ty::Dyn => Ty::Dyn,
                    other => return Err((c.iter_range.id, format!("cannot iterate over {other}"))),
                };
                let accu = self.check(&c.accu_init)?;
                let depth = self.scope.len();
                self.scope.push((c.iter_var.clone(), element));
                if let Some(second) = &c.iter_var2 {
                    self.scope.push((second.clone(), Ty::Dyn));
                }
                self.scope.push((c.accu_var.clone(), accu));
                let checked = (|| {
                    self.check(&c.loop_cond)?;
                    self.check(&c.loop_step)?;
                    self.check(&c.result)
                })();
                self.scope.truncate(depth);
                checked
            }
            Expr::Call(call) => self.call(e.id, &call.func_name, call.target.as_deref(), &call.args),
            Expr::Unspecified => fail("empty expression".into()),
        }
    }

    fn ident(&mut self, id: u64, name: &str) -> Result<Ty, CheckError> {
        if let Some((_, ty)) = self.scope.iter().rev().find(|(n, _)| n == name) {
            return Ok(ty.clone());
        }
        let Some(var) = variable(name) else {
            let known: Vec<&str> = VARIABLES.iter().map(|v| v.name).collect();
            return Err((
                id,
                format!("unknown variable '{name}' (the context has {})", known.join(", ")),
            ));
        };
        // Reading a whole variable reads every part it holds.
        for part in var.parts() {
            self.reads.add(part);
        }
        Ok(var.ty())
    }

    fn select(&mut self, id: u64, operand: &IdedExpr, field: &str) -> Result<Ty, CheckError> {
        // A field of a context variable reads only that field's part.
        if let Expr::Ident(name) = &operand.expr
            && !self.scope.iter().any(|(n, _)| n == name)
            && let Some(var) = variable(name)
        {
            return match (&var.shape, var.field(field)) {
                (_, Some((ty, part))) => {
                    if let Some(part) = part {
                        self.reads.add(part);
                    }
                    Ok(ty)
                }
                (Shape::Fields(_), None) => Err((
                    id,
                    format!("{name} has no field '{field}' (its fields: {})", var.field_names()),
                )),
                (Shape::Scalar(ty), None) => Err((id, format!("{name} is a {ty}, it has no field '{field}'"))),
            };
        }
        match self.check(operand)? {
            Ty::Map | Ty::Dyn => Ok(Ty::Dyn),
            Ty::Object(var) => var.field(field).map(|(ty, _)| ty).ok_or_else(|| {
                (
                    id,
                    format!(
                        "{} has no field '{field}' (its fields: {})",
                        var.name,
                        var.field_names()
                    ),
                )
            }),
            other => Err((id, format!("a {other} has no field '{field}'"))),
        }
    }

    fn call(&mut self, id: u64, name: &str, target: Option<&IdedExpr>, args: &[IdedExpr]) -> Result<Ty, CheckError> {
        let target = target.map(|t| self.check(t)).transpose()?;
        let mut types = Vec::with_capacity(args.len());
        for arg in args {
            types.push(self.check(arg)?);
        }
        let wrong = || -> CheckError {
            let mut shown: Vec<String> = target.iter().map(ToString::to_string).collect();
            shown.extend(types.iter().map(ToString::to_string));
            (id, format!("no '{}' for ({})", display_name(name), shown.join(", ")))
        };
        let is = |ty: &Ty, want: &Ty| ty.compatible(want) && !matches!((ty, want), (Ty::Null, w) if *w != Ty::Null);
        let result = match (name, target.as_ref(), types.as_slice()) {
            (operators::LOGICAL_AND | operators::LOGICAL_OR, None, [a, b]) if is(a, &Ty::Bool) && is(b, &Ty::Bool) => {
                Ty::Bool
            }
            (operators::LOGICAL_NOT | operators::NOT_STRICTLY_FALSE, None, [a]) if is(a, &Ty::Bool) => Ty::Bool,
            (operators::CONDITIONAL, None, [c, a, b]) if is(c, &Ty::Bool) => {
                if a == b {
                    a.clone()
                } else {
                    Ty::Dyn
                }
            }
            (operators::EQUALS | operators::NOT_EQUALS, None, [a, b])
                if a.compatible(b) || *a == Ty::Null || *b == Ty::Null =>
            {
                Ty::Bool
            }
            (
                operators::LESS | operators::LESS_EQUALS | operators::GREATER | operators::GREATER_EQUALS,
                None,
                [a, b],
            ) if a.compatible(b) && !matches!(a, Ty::Map | Ty::List(_) | Ty::Object(_) | Ty::Null) => Ty::Bool,
            (operators::NEGATE, None, [a]) if a.is_numeric() || matches!(a, Ty::Duration | Ty::Dyn) => a.clone(),
            (operators::ADD, None, [a, b]) => arithmetic(a, b, true).ok_or_else(wrong)?,
            (operators::SUBSTRACT, None, [a, b]) => arithmetic(a, b, false).ok_or_else(wrong)?,
            (operators::MULTIPLY | operators::DIVIDE | operators::MODULO, None, [a, b])
                if (a.is_numeric() || *a == Ty::Dyn) && a.compatible(b) =>
            {
                if *a == Ty::Dyn {
                    b.clone()
                } else {
                    a.clone()
                }
            }
            (operators::IN, None, [element, container]) => match container {
                Ty::List(t) if element.compatible(t) => Ty::Bool,
                Ty::Map | Ty::Dyn => Ty::Bool,
                _ => return Err(wrong()),
            },
            (operators::INDEX, None, [container, index]) => match container {
                Ty::List(t) if is(index, &Ty::Int) || *index == Ty::Uint => (**t).clone(),
                Ty::Map | Ty::Dyn => Ty::Dyn,
                _ => return Err(wrong()),
            },
            ("startsWith" | "endsWith" | "contains" | "matches", Some(s), [arg])
                if is(s, &Ty::String) && is(arg, &Ty::String) =>
            {
                Ty::Bool
            }
            ("matches", None, [s, re]) if is(s, &Ty::String) && is(re, &Ty::String) => Ty::Bool,
            ("size", None, [a]) | ("size", Some(a), []) if sized(a) => Ty::Int,
            ("int", None, [_]) => Ty::Int,
            ("uint", None, [_]) => Ty::Uint,
            ("double", None, [_]) => Ty::Double,
            ("string", None, [_]) => Ty::String,
            ("bool", None, [_]) => Ty::Bool,
            ("bytes", None, [_]) => Ty::Bytes,
            ("dyn" | "type", None, [_]) => Ty::Dyn,
            ("timestamp", None, [a]) if is(a, &Ty::String) || is(a, &Ty::Int) => Ty::Timestamp,
            ("duration", None, [a]) if is(a, &Ty::String) => Ty::Duration,
            (part, Some(t), rest)
                if TIMESTAMP_PARTS.contains(&part)
                    && matches!(t, Ty::Timestamp | Ty::Duration | Ty::Dyn)
                    && rest.len() <= 1
                    && rest.iter().all(|a| is(a, &Ty::String)) =>
            {
                Ty::Int
            }
            _ if !known_function(name) => {
                return Err((id, format!("unknown function '{}'", display_name(name))));
            }
            _ => return Err(wrong()),
        };
        Ok(result)
    }
}

fn sized(ty: &Ty) -> bool {
    matches!(ty, Ty::String | Ty::Bytes | Ty::List(_) | Ty::Map | Ty::Dyn)
}

/// `+` (when `add`) or `-` on two types: numbers, strings and lists (`+` only),
/// timestamps and durations.
fn arithmetic(a: &Ty, b: &Ty, add: bool) -> Option<Ty> {
    use Ty::{Duration, Dyn, Timestamp};
    Some(match (a, b) {
        (Dyn, other) | (other, Dyn) => {
            if *other == Timestamp && !add {
                Dyn
            } else {
                other.clone()
            }
        }
        (x, y) if x.is_numeric() && x == y => x.clone(),
        (Ty::String, Ty::String) if add => Ty::String,
        (Ty::Bytes, Ty::Bytes) if add => Ty::Bytes,
        (Ty::List(x), Ty::List(y)) if add => Ty::List(Box::new(if x == y { (**x).clone() } else { Dyn })),
        (Timestamp, Duration) => Timestamp,
        (Duration, Timestamp) if add => Timestamp,
        (Duration, Duration) => Duration,
        (Timestamp, Timestamp) if !add => Duration,
        _ => return None,
    })
}

fn known_function(name: &str) -> bool {
    const OTHERS: &[&str] = &[
        "startsWith",
        "endsWith",
        "contains",
        "matches",
        "size",
        "int",
        "uint",
        "double",
        "string",
        "bool",
        "bytes",
        "dyn",
        "type",
        "timestamp",
        "duration",
    ];
    name.starts_with('_')
        || name.starts_with('@')
        || name.starts_with('!')
        || name.starts_with('-')
        || OTHERS.contains(&name)
        || TIMESTAMP_PARTS.contains(&name)
}

/// Operators as a policy author writes them (`&&`, not `_&&_`).
fn display_name(name: &str) -> &str {
    match name {
        operators::LOGICAL_AND => "&&",
        operators::LOGICAL_OR => "||",
        operators::LOGICAL_NOT => "!",
        operators::EQUALS => "==",
        operators::NOT_EQUALS => "!=",
        operators::LESS => "<",
        operators::LESS_EQUALS => "<=",
        operators::GREATER => ">",
        operators::GREATER_EQUALS => ">=",
        operators::ADD => "+",
        operators::SUBSTRACT => "-",
        operators::MULTIPLY => "*",
        operators::DIVIDE => "/",
        operators::MODULO => "%",
        operators::NEGATE => "-",
        operators::IN => "in",
        operators::INDEX => "[]",
        operators::CONDITIONAL => "?:",
        other => other,
    }
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
