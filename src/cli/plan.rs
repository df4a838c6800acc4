//! The decided plan as the user sees it: one line per edge that changes something on
//! stdout, and the whole plan as JSON with `--plan-out`.
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use serde::Serialize;

use crate::pipeline::{Decision, Plan, PlanSink, SinkError, Wave};

/// Receives the plan from the pipeline as soon as it is decided (before promotion
/// starts, so a long promotion shows its plan first).
pub struct PlanPrinter {
    plan_out: Option<PathBuf>,
}

impl PlanPrinter {
    pub fn new(plan_out: Option<PathBuf>) -> Self {
        Self { plan_out }
    }
}

impl PlanSink for PlanPrinter {
    fn plan(&mut self, plan: &Plan<'_>) -> Result<(), SinkError> {
        super::write_stdout(|out| print_plan(plan, out)).map_err(|e| format!("printing the plan: {e}"))?;
        if let Some(path) = &self.plan_out {
            write_plan_json(plan, path).map_err(|e| format!("writing the plan to {}: {e}", path.display()))?;
        }
        Ok(())
    }
}

fn print_plan(plan: &Plan<'_>, out: &mut impl Write) -> std::io::Result<()> {
    let edges = plan.edges;
    let c = &plan.counts;
    writeln!(
        out,
        "plan: {} edges from {} manifests: {} copy, {} retag, {} already promoted, {} lost, {} tag moves",
        edges.len(),
        plan.manifests,
        c.copy,
        c.retag,
        c.skip,
        c.lost,
        c.tag_moves
    )?;
    print_waves(plan, out)?;
    for (edge, decision) in plan.decided() {
        let src = edges.src_reference(edge);
        let dst = edges.destination(edge);
        match decision {
            Decision::Skip => {}
            Decision::SkipStillLost => writeln!(
                out,
                "  skip     {src} -> {dst} (already promoted; still _LOST_ in the source)"
            )?,
            Decision::Copy | Decision::Retag => writeln!(out, "  {:<8} {src} -> {dst}", decision.label())?,
            Decision::Lost => writeln!(out, "  lost     {src} -> {dst} (_LOST_: not in the source registry)")?,
            Decision::TagMove { current, .. } => writeln!(
                out,
                "  TAG MOVE {dst} points to {current}, manifests want {}",
                edge.digest
            )?,
        }
    }
    Ok(())
}

/// `rollout: N waves` and one line per wave, canaries marked.
fn print_waves(plan: &Plan<'_>, out: &mut impl Write) -> std::io::Result<()> {
    if plan.waves.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "rollout: {} waves, each read back before the next",
        plan.waves.len()
    )?;
    for (i, wave) in plan.waves.iter().enumerate() {
        writeln!(
            out,
            "  wave {}{}: {}",
            i + 1,
            if wave.canary { " (canary)" } else { "" },
            wave_names(plan, wave).join(", ")
        )?;
    }
    Ok(())
}

fn wave_names(plan: &Plan<'_>, wave: &Wave) -> Vec<String> {
    wave.registries
        .iter()
        .map(|r| plan.edges.name(*r).to_string())
        .collect()
}

#[derive(Serialize)]
struct PlanWave {
    registries: Vec<String>,
    canary: bool,
}

#[derive(Serialize)]
struct PlanEdge<'a> {
    source: String,
    destination: String,
    image: &'a str,
    tag: Option<&'a str>,
    digest: String,
    decision: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    current_digest: Option<String>,
}

/// Streams the plan as JSON, one edge at a time: the real tree has a million edges.
fn write_plan_json(plan: &Plan<'_>, path: &std::path::Path) -> std::io::Result<()> {
    let mut w = BufWriter::new(File::create(path)?);
    write!(w, "{{\"manifests\":{},\"counts\":", plan.manifests)?;
    serde_json::to_writer(&mut w, &plan.counts)?;
    if !plan.waves.is_empty() {
        let waves: Vec<PlanWave> = plan
            .waves
            .iter()
            .map(|wave| PlanWave {
                registries: wave_names(plan, wave),
                canary: wave.canary,
            })
            .collect();
        write!(w, ",\"waves\":")?;
        serde_json::to_writer(&mut w, &waves)?;
    }
    write!(w, ",\"edges\":[")?;
    let edges = plan.edges;
    for (i, (edge, decision)) in plan.decided().enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        let entry = PlanEdge {
            source: edges.src_reference(edge),
            destination: edges.destination(edge),
            image: edges.name(edge.image),
            tag: edges.tag(edge),
            digest: edge.digest.to_string(),
            decision: decision.label(),
            current_digest: match decision {
                Decision::TagMove { current, .. } => Some(current.to_string()),
                _ => None,
            },
        };
        serde_json::to_writer(&mut w, &entry)?;
    }
    w.write_all(b"]}\n")?;
    w.flush()
}
