//! `kpromo summary merge`: the `--summary-json` files of the N shards of one promotion
//! added up into the summary of the whole promotion.
//!
//! Counts add up (edges, decisions, copies, bytes, requests per registry), lists are
//! joined (signatures, failed images, rollout waves), wall times are the longest shard's
//! (shards run side by side), and the outcome is `ok` only when every shard's was. Every
//! shard of one split must be there exactly once, so a missing or doubled shard is not
//! mistaken for the whole promotion.
use std::path::PathBuf;

use serde_json::{Map, Value};

use super::exit::Failure;

#[derive(Debug, clap::Subcommand)]
pub enum SummaryCommand {
    /// Add up the `--summary-json` files of every shard of one promotion (`--shard
    /// INDEX/COUNT`) and print the summary of the whole promotion as JSON.
    Merge {
        /// One summary per shard, every shard exactly once.
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
    },
}

pub fn run(command: &SummaryCommand) -> Result<(), Failure> {
    let SummaryCommand::Merge { files } = command;
    let mut summaries = Vec::with_capacity(files.len());
    for file in files {
        let text =
            std::fs::read(file).map_err(|e| Failure::Usage(format!("reading the summary {}: {e}", file.display())))?;
        let summary: Value = serde_json::from_slice(&text)
            .map_err(|e| Failure::Usage(format!("{}: not a --summary-json file: {e}", file.display())))?;
        summaries.push((file.display().to_string(), summary));
    }
    let merged = merge(summaries).map_err(Failure::Usage)?;
    let text = serde_json::to_string_pretty(&merged).map_err(|e| Failure::Output {
        what: "printing the merged summary".into(),
        source: e.into(),
    })?;
    super::print(&format!("{text}\n"))
}

/// The merged summary of every shard, or why these files are not every shard of one
/// promotion.
pub fn merge(summaries: Vec<(String, Value)>) -> Result<Value, String> {
    let mut count = None;
    let mut seen = Vec::new();
    for (file, summary) in &summaries {
        let shard = summary["shard"]
            .as_str()
            .and_then(|s| crate::edges::shard::Shard::parse(s).ok())
            .ok_or_else(|| {
                format!("{file}: not the summary of a shard (no \"shard\": run with --shard or --shards)")
            })?;
        if *count.get_or_insert(shard.count) != shard.count {
            return Err(format!(
                "{file}: shard {shard} is from a split into {} shards, the others into {}",
                shard.count,
                count.unwrap_or_default()
            ));
        }
        if seen.contains(&shard.index) {
            return Err(format!("{file}: shard {shard} is given twice"));
        }
        seen.push(shard.index);
    }
    let count = count.ok_or("no summary to merge")?;
    let missing: Vec<String> = (0..count)
        .filter(|i| !seen.contains(i))
        .map(|i| format!("{i}/{count}"))
        .collect();
    if !missing.is_empty() {
        return Err(format!("missing the summaries of shards {}", missing.join(", ")));
    }
    let outcomes: Vec<String> = summaries
        .iter()
        .filter(|(_, s)| s["outcome"] != "ok")
        .map(|(_, s)| {
            format!(
                "shard {}: {}",
                s["shard"].as_str().unwrap_or("?"),
                s["outcome"].as_str().unwrap_or("?")
            )
        })
        .collect();
    let mut merged = Value::Null;
    for (_, summary) in summaries {
        merged = add(merged, summary, "");
    }
    merged["shard"] = Value::String(format!("all {count}"));
    merged["outcome"] = Value::String(if outcomes.is_empty() {
        "ok".into()
    } else {
        outcomes.join("; ")
    });
    Ok(merged)
}

/// `a` plus `b`, where `key` names what is being added (its rule).
fn add(a: Value, b: Value, key: &str) -> Value {
    match (a, b) {
        (Value::Null, b) => b,
        (a, Value::Null) => a,
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_u64().unwrap_or_default(), y.as_u64().unwrap_or_default());
            Value::from(match key {
                // Shards run side by side: the whole took as long as the longest; the
                // adaptive limits are per process.
                "total_ms" | "limit" | "peak" | "in_flight_peak" => x.max(y),
                "lowest" => x.min(y),
                _ => x + y,
            })
        }
        (Value::Bool(x), Value::Bool(y)) => Value::Bool(x || y),
        (Value::Array(x), Value::Array(y)) if key == "phases_ms" => longest_phases(x, y),
        (Value::Array(x), Value::Array(y)) if key == "phase_requests" => by_phase(x, y),
        (Value::Array(mut x), Value::Array(y)) => {
            x.extend(y);
            Value::Array(x)
        }
        (Value::Object(mut x), Value::Object(y)) => {
            for (k, v) in y {
                let mine = x.remove(&k).unwrap_or(Value::Null);
                let sum = add(mine, v, &k);
                x.insert(k, sum);
            }
            Value::Object(x)
        }
        (Value::String(x), Value::String(y)) if x == y => Value::String(x),
        (Value::String(x), Value::String(y)) => Value::String(format!("{x}; {y}")),
        (a, _) => a,
    }
}

/// `[{"phase": name, counts…}, …]`: each phase's counts added up over the shards, in the
/// first's order.
fn by_phase(a: Vec<Value>, b: Vec<Value>) -> Value {
    let mut phases: Vec<Value> = Vec::new();
    for entry in a.into_iter().chain(b) {
        match phases.iter_mut().find(|p| p["phase"] == entry["phase"]) {
            Some(phase) => *phase = add(std::mem::take(phase), entry, "phase_requests"),
            None => phases.push(entry),
        }
    }
    Value::Array(phases)
}

/// `[[phase, ms], …]`: each phase as long as in the slowest shard, in the first's order.
fn longest_phases(a: Vec<Value>, b: Vec<Value>) -> Value {
    let mut longest: Map<String, Value> = Map::new();
    let mut order = Vec::new();
    for pair in a.into_iter().chain(b) {
        let (Some(name), Some(ms)) = (pair[0].as_str(), pair[1].as_u64()) else {
            continue;
        };
        let current = longest.get(name).and_then(Value::as_u64);
        if current.is_none() {
            order.push(name.to_string());
        }
        longest.insert(name.to_string(), Value::from(current.unwrap_or(0).max(ms)));
    }
    Value::Array(
        order
            .into_iter()
            .map(|name| {
                let ms = longest[&name].clone();
                Value::Array(vec![Value::String(name), ms])
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn shard(index: u32, copies: u64, outcome: &str) -> (String, Value) {
        (
            format!("s{index}.json"),
            json!({
                "outcome": outcome,
                "dry_run": false,
                "shard": format!("{index}/2"),
                "edges": copies,
                "decisions": {"copy": copies, "retag": 0},
                "bytes_uploaded": 100 * copies,
                "signatures": {"signed": [{"reference": format!("r/i@{index}"), "newly": true}], "failed": []},
                "registries": {"127.0.0.1:1": {"requests": {"PUT 201": copies}, "concurrency": {"limit": 8 + index, "lowest": 4 + index}}},
                "phases_ms": [["setup", 1], ["plan", 10 * (index + 1)]],
                "phase_requests": [{"phase": "plan", "reads": copies}, {"phase": "promote", "writes": copies}],
                "total_ms": 100 + index,
            }),
        )
    }

    #[test]
    fn shards_add_up_into_the_whole_promotion() {
        let merged = merge(vec![shard(1, 3, "ok"), shard(0, 2, "ok")]).unwrap();
        assert_eq!(merged["outcome"], "ok");
        assert_eq!(merged["shard"], "all 2");
        assert_eq!(merged["edges"], 5);
        assert_eq!(merged["decisions"]["copy"], 5);
        assert_eq!(merged["bytes_uploaded"], 500);
        assert_eq!(merged["signatures"]["signed"].as_array().map(Vec::len), Some(2));
        assert_eq!(merged["registries"]["127.0.0.1:1"]["requests"]["PUT 201"], 5);
        assert_eq!(merged["registries"]["127.0.0.1:1"]["concurrency"]["limit"], 9);
        assert_eq!(merged["registries"]["127.0.0.1:1"]["concurrency"]["lowest"], 4);
        assert_eq!(merged["phases_ms"], json!([["setup", 1], ["plan", 20]]));
        assert_eq!(
            merged["phase_requests"],
            json!([{"phase": "plan", "reads": 5}, {"phase": "promote", "writes": 5}])
        );
        assert_eq!(merged["total_ms"], 101);
        assert_eq!(merged["dry_run"], false);
    }

    #[test]
    fn a_failed_shard_fails_the_whole() {
        let merged = merge(vec![shard(0, 2, "ok"), shard(1, 3, "running image promotion: …")]).unwrap();
        assert_eq!(merged["outcome"], "shard 1/2: running image promotion: …");
    }

    #[test]
    fn every_shard_exactly_once() {
        assert_eq!(
            merge(vec![shard(0, 1, "ok")]).unwrap_err(),
            "missing the summaries of shards 1/2"
        );
        assert!(
            merge(vec![shard(0, 1, "ok"), shard(0, 1, "ok")])
                .unwrap_err()
                .contains("given twice")
        );
        let mut other = shard(1, 1, "ok");
        other.1["shard"] = json!("1/3");
        assert!(
            merge(vec![shard(0, 1, "ok"), other])
                .unwrap_err()
                .contains("split into 3 shards")
        );
        let (file, mut plain) = shard(0, 1, "ok");
        plain.as_object_mut().unwrap().remove("shard");
        assert!(
            merge(vec![(file, plain)])
                .unwrap_err()
                .contains("not the summary of a shard")
        );
    }
}
