//! Reading and strictly parsing one YAML file, turning every failure into a [`Problem`]
//! with the file's line and column.
//!
//! Files are size-checked before they are read and must be UTF-8, so a stray 100 MB
//! file or a binary blob gives one clear message instead of a parser error deep inside
//! the input. Alias bombs are stopped by serde-saphyr's budgets.
use std::borrow::Cow;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde_saphyr::{Budget, MessageFormatter, Options, UserMessageFormatter};

use super::{Position, Problem};

/// Largest manifest or images.yaml accepted. The largest real images.yaml is about
/// 1 MB, so this leaves ample room while keeping memory bounded.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Reads `path` as UTF-8 text, refusing files over [`MAX_FILE_BYTES`].
pub fn read_text(path: &Path) -> Result<String, Problem> {
    let io_problem = |e: std::io::Error| Problem::file(path, io_message(&e));
    let meta = std::fs::metadata(path).map_err(io_problem)?;
    if !meta.is_file() {
        return Err(Problem::file(path, "not a regular file"));
    }
    let too_large = |len: u64| {
        Problem::file(
            path,
            format!(
                "file is too large: {len} bytes (the limit is {} MiB)",
                MAX_FILE_BYTES / (1024 * 1024)
            ),
        )
    };
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_large(meta.len()));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // The file may grow between stat and read; never read more than the limit + 1.
    File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(io_problem)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let offset = e.utf8_error().valid_up_to();
        let pos = position_of(&bytes[..offset]);
        Problem::at(
            path,
            pos,
            format!("invalid UTF-8: byte 0x{:02x} at offset {offset}", bytes[offset]),
        )
    })
}

/// Strictly parses `text` (read from `path`): unknown keys (when `T` denies them) and
/// duplicate mapping keys are errors. An empty or comment-only document gives `None`.
pub fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<Option<T>, Problem> {
    serde_saphyr::from_str_with_options::<Option<T>>(text, options()).map_err(|e| yaml_problem(path, &e))
}

fn options() -> Options {
    let mut budget = Budget::default();
    // The defaults suit small config files; an images.yaml within the size limit can
    // hold a few hundred thousand digests (3 nodes and about 4 events each).
    budget.max_nodes = 8_000_000;
    budget.max_events = 16_000_000;
    let mut options = Options::default();
    options.budget = Some(budget);
    options.with_snippet = false;
    options
}

fn yaml_problem(path: &Path, err: &serde_saphyr::Error) -> Problem {
    let err = err.without_snippet();
    let message = match UserMessageFormatter.format_message(err) {
        // The formatter's text may quote input; keep it on one line.
        Cow::Borrowed(s) => s.escape_debug().to_string(),
        Cow::Owned(s) => s.escape_debug().to_string(),
    };
    match err.location().filter(|l| l.line() > 0) {
        Some(loc) => Problem::at(
            path,
            Position {
                line: u32::try_from(loc.line()).unwrap_or(u32::MAX),
                column: u32::try_from(loc.column()).unwrap_or(u32::MAX),
            },
            message,
        ),
        None => Problem::file(path, message),
    }
}

/// Where a value was written (for a spanned value read through an alias, where the alias
/// is).
pub fn position<T>(spanned: &serde_saphyr::Spanned<T>) -> Position {
    let loc = spanned.referenced;
    Position {
        line: u32::try_from(loc.line()).unwrap_or(u32::MAX),
        column: u32::try_from(loc.column()).unwrap_or(u32::MAX),
    }
}

/// The 1-based line and column just after `prefix` (column counted in characters), with
/// YAML's line breaks (CRLF, CR, LF), so that these positions agree with the parser's.
fn position_of(prefix: &[u8]) -> Position {
    let line_start = prefix
        .iter()
        .rposition(|&b| b == b'\n' || b == b'\r')
        .map_or(0, |i| i + 1);
    let crlf = prefix.windows(2).filter(|w| w == b"\r\n").count();
    let line = prefix.iter().filter(|&&b| b == b'\n' || b == b'\r').count() - crlf + 1;
    let column = String::from_utf8_lossy(&prefix[line_start..]).chars().count() + 1;
    Position {
        line: u32::try_from(line).unwrap_or(u32::MAX),
        column: u32::try_from(column).unwrap_or(u32::MAX),
    }
}

/// Go-style text for an I/O error (`no such file or directory`, ...), without Rust's
/// `(os error N)` suffix.
pub fn io_message(err: &std::io::Error) -> String {
    let text = err.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    text.to_lowercase()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn parse_str<T: DeserializeOwned>(text: &str) -> Result<Option<T>, Problem> {
        parse(Path::new("f.yaml"), text)
    }

    #[test]
    fn duplicate_keys_are_errors_with_their_position() {
        let text = "a: [x]\nb: []\na: [y]\n";
        let err = parse_str::<BTreeMap<String, Vec<String>>>(text).unwrap_err();
        assert_eq!(err.pos, Some(Position { line: 3, column: 1 }), "{err}");
        assert!(err.message.contains("duplicate"), "{err}");
    }

    #[test]
    fn unquoted_numbers_stay_verbatim_strings() {
        let v: Vec<String> = parse_str("[1.10, 1.0, 010, 1e3, yes]").unwrap().unwrap();
        assert_eq!(v, ["1.10", "1.0", "010", "1e3", "yes"]);
    }

    #[test]
    fn empty_and_comment_only_documents_are_none() {
        assert_eq!(parse_str::<Vec<String>>("").unwrap(), None);
        assert_eq!(parse_str::<Vec<String>>("# TODO: add images\n").unwrap(), None);
    }

    #[test]
    fn alias_bomb_is_one_error() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
        let mut prev = 'a';
        for c in 'b'..='k' {
            text.push_str(&format!(
                "{c}: &{c} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
            prev = c;
        }
        let err = parse_str::<BTreeMap<String, serde_json::Value>>(&text).unwrap_err();
        assert!(err.message.contains("too large or too complex"), "{err}");
    }

    #[test]
    fn non_utf8_bytes_are_reported_at_their_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.yaml");
        std::fs::write(&path, b"a: 1\nb: \xe9t\xc3\xa9\n").unwrap();
        let err = read_text(&path).unwrap_err();
        assert_eq!(err.pos, Some(Position { line: 2, column: 4 }));
        assert_eq!(err.message, "invalid UTF-8: byte 0xe9 at offset 8");
    }

    #[test]
    fn invalid_utf8_positions_count_lines_as_yaml_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.yaml");
        std::fs::write(&path, b"a: 1\r\nb: 2\rc: \xe9\n").unwrap();
        assert_eq!(read_text(&path).unwrap_err().pos, Some(Position { line: 3, column: 4 }));
        // The parser counts the same way: a lone CR ends a line.
        let err = parse::<BTreeMap<String, String>>(&path, "a: 1\r\nb: 2\rc: [\n").unwrap_err();
        assert_eq!(err.pos.map(|p| p.line), Some(3), "{err}");
    }

    #[test]
    fn oversized_files_are_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.yaml");
        let f = File::create(&path).unwrap();
        f.set_len(100 * 1024 * 1024).unwrap(); // sparse: no 100 MB written
        let err = read_text(&path).unwrap_err();
        assert_eq!(err.pos, None);
        assert_eq!(err.message, "file is too large: 104857600 bytes (the limit is 64 MiB)");
    }

    #[test]
    fn missing_file_is_go_style() {
        let err = read_text(Path::new("/nonexistent/x.yaml")).unwrap_err();
        assert_eq!(err.to_string(), "/nonexistent/x.yaml: no such file or directory");
    }
}
