//! A problem found in a manifest, reported as `file:line:col: message`.
use std::fmt;
use std::path::PathBuf;

use super::Position;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub file: PathBuf,
    /// `None` for problems that belong to a whole file or directory.
    pub pos: Option<Position>,
    pub message: String,
}

impl Problem {
    /// A problem at a position in `file`.
    pub fn at(file: impl Into<PathBuf>, pos: Position, message: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            pos: Some(pos),
            message: message.into(),
        }
    }

    /// A problem with a whole file or directory (missing, unreadable, misplaced).
    pub fn file(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            pos: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pos {
            Some(p) => write!(f, "{}:{}:{}: {}", self.file.display(), p.line, p.column, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}
