//! The JSON Lines sink: one record per line, appended to a file (or stdout), each
//! batch written with one `write` so a killed process leaves whole lines.
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Mutex;

use crate::sync::lock;

use super::{Record, Sink};

/// Appends records as JSON Lines.
#[derive(Debug)]
pub struct JsonLines {
    name: String,
    target: Mutex<Target>,
}

#[derive(Debug)]
enum Target {
    File(File),
    Stdout,
}

impl JsonLines {
    /// Opens `path` for appending (created if missing), or stdout for `-`. Fails now,
    /// before anything else runs, when the file cannot be written.
    ///
    /// When an earlier run died mid-line (a full disk, say), a newline is added first so
    /// this run's records start on a line of their own.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        if path.as_os_str() == "-" {
            return Ok(Self {
                name: "stdout".into(),
                target: Mutex::new(Target::Stdout),
            });
        }
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(path)?;
        if file.metadata()?.len() > 0 {
            let mut last = [0u8; 1];
            file.seek(SeekFrom::End(-1))?;
            file.read_exact(&mut last)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
            }
        }
        Ok(Self {
            name: path.display().to_string(),
            target: Mutex::new(Target::File(file)),
        })
    }
}

impl Sink for JsonLines {
    fn name(&self) -> &str {
        &self.name
    }

    fn append(&self, records: &[Record], durable: bool) -> std::io::Result<()> {
        let mut lines = Vec::with_capacity(records.len() * 256);
        for record in records {
            serde_json::to_writer(&mut lines, record)?;
            lines.push(b'\n');
        }
        let mut target = lock(&self.target);
        match &mut *target {
            Target::File(file) => {
                if !lines.is_empty() {
                    file.write_all(&lines)?;
                }
                if durable {
                    file.sync_data()?;
                }
                Ok(())
            }
            // A pipe has nothing to sync; whoever reads it owns durability.
            Target::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(&lines)?;
                out.flush()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Event, PhaseEvent};

    fn record(n: u64) -> Record {
        Record {
            time: "2026-01-01T00:00:00.000Z".into(),
            run_id: "r".into(),
            event: Event::Phase(PhaseEvent {
                phase: "plan".into(),
                status: "done".into(),
                duration_ms: Some(n),
            }),
        }
    }

    #[test]
    fn appends_whole_lines_and_starts_a_fresh_line_after_a_torn_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, "{\"torn\":").unwrap();
        let sink = JsonLines::open(&path).unwrap();
        sink.append(&[record(1), record(2)], true).unwrap();
        drop(sink);
        JsonLines::open(&path).unwrap().append(&[record(3)], false).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "{\"torn\":");
        assert_eq!(
            lines[1],
            r#"{"time":"2026-01-01T00:00:00.000Z","run_id":"r","event":"phase","phase":"plan","status":"done","duration_ms":1}"#
        );
        assert_eq!(lines.len(), 4);
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn an_unwritable_path_fails_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let err = JsonLines::open(&dir.path().join("missing/audit.jsonl")).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    }
}
