//! The type checker cel-rust does not have: walks a parsed condition against the
//! declared context ([`super::context::VARIABLES`]), refusing unknown variables, fields
//! and functions and operands of the wrong type, and recording which parts of the
//! context the condition reads.
use cel::IdedExpr;
use cel::common::ast::{EntryExpr, Expr, LiteralValue, operators};

use super::context::{Reads, Shape, Ty, VARIABLES, variable};

/// A checker error: the expression id it is about, and the message.
pub(super) type CheckError = (u64, String);

pub(super) struct Checker {
    pub(super) reads: Reads,
    /// Comprehension variables in scope, innermost last.
    pub(super) scope: Vec<(String, Ty)>,
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
    pub(super) fn check(&mut self, e: &IdedExpr) -> Result<Ty, CheckError> {
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
