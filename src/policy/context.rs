//! The CEL context a policy condition sees, declared once: each variable, its fields,
//! their types, and which part of an edge's context each belongs to. The checker types
//! conditions against it, the evaluator keys its memo by its parts, and `docs/policy.md`
//! documents it.
use std::fmt;

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
    pub(super) fn add(&mut self, part: Part) {
        self.0 |= 1 << part as u16;
    }

    pub fn contains(self, part: Part) -> bool {
        self.0 & (1 << part as u16) != 0
    }
}

/// A static type, as far as the checker can tell; `Dyn` accepts anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Ty {
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
    pub(super) fn is_numeric(&self) -> bool {
        matches!(self, Ty::Int | Ty::Uint | Ty::Double)
    }

    /// Whether values of the two types can meet in `==` or `<`: same kind, numbers of
    /// any kind, or anything dynamic.
    pub(super) fn compatible(&self, other: &Ty) -> bool {
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
    pub(super) shape: Shape,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Shape {
    Scalar(Ty),
    /// (field, type, the part it belongs to when the variable's own part does not say).
    Fields(&'static [(&'static str, FieldTy, Option<Part>)]),
}

/// Field types, spelt without boxes so that [`VARIABLES`] can be a constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FieldTy {
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
    pub(super) fn ty(&'static self) -> Ty {
        match &self.shape {
            Shape::Scalar(t) => t.clone(),
            Shape::Fields(_) => Ty::Object(self),
        }
    }

    pub(super) fn field(&self, name: &str) -> Option<(Ty, Option<Part>)> {
        match &self.shape {
            Shape::Fields(fields) => fields
                .iter()
                .find(|(f, _, _)| *f == name)
                .map(|(_, t, part)| (t.ty(), part.or(self.part))),
            Shape::Scalar(_) => None,
        }
    }

    /// Every part reading the whole variable depends on.
    pub(super) fn parts(&self) -> Vec<Part> {
        match &self.shape {
            Shape::Fields(fields) => fields.iter().filter_map(|(_, _, p)| p.or(self.part)).collect(),
            Shape::Scalar(_) => self.part.into_iter().collect(),
        }
    }

    pub(super) fn field_names(&self) -> String {
        match &self.shape {
            Shape::Fields(fields) => fields.iter().map(|(f, _, _)| *f).collect::<Vec<_>>().join(", "),
            Shape::Scalar(_) => String::new(),
        }
    }
}

pub(super) fn variable(name: &str) -> Option<&'static Variable> {
    VARIABLES.iter().find(|v| v.name == name)
}
