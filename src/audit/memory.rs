//! An in-memory sink for unit tests: keeps every record, can be told to fail.
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::sync::lock;

use super::{Record, Sink};

#[derive(Debug, Default)]
pub struct MemorySink {
    records: Mutex<Vec<Record>>,
    failing: AtomicBool,
}

impl MemorySink {
    pub fn records(&self) -> Vec<Record> {
        lock(&self.records).clone()
    }

    /// From now on every append fails, as a full disk would.
    pub fn fail(&self) {
        self.failing.store(true, Ordering::Relaxed);
    }
}

impl Sink for MemorySink {
    fn name(&self) -> &str {
        "memory"
    }

    fn append(&self, records: &[Record], _durable: bool) -> std::io::Result<()> {
        if self.failing.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("no space left on device"));
        }
        lock(&self.records).extend_from_slice(records);
        Ok(())
    }
}
