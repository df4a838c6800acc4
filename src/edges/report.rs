//! Overlaps and redundancies reported as manifest problems, with the file and position
//! of the `dmap` entries behind them. One renderer for every command that refuses
//! overlaps: `kpromo manifest validate`, `kpromo cip` and the manifest-based snapshot.
use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::manifest::{Manifest, Position, Problem};

use super::{EdgeSet, Overlap};

/// A `dmap` entry behind an overlapping edge: its file, position and source reference.
type WantedBy = (PathBuf, Option<Position>, String);

/// One problem per conflicting set of `dmap` entries, however many destination
/// registries they collide in (a tag clash between two projects with 22 regions is
/// one mistake, not 22). It points at the first entry and names all of them.
pub fn overlap_problems(edges: &EdgeSet, manifests: &[Manifest]) -> Vec<Problem> {
    let mut grouped: BTreeMap<Vec<WantedBy>, Vec<&Overlap>> = BTreeMap::new();
    for overlap in edges.overlaps() {
        let mut entries: Vec<WantedBy> = overlap
            .origins
            .iter()
            .zip(&overlap.sources)
            .map(|((edge, index), (src, _))| {
                let manifest = &manifests[*index];
                let digest = edge.digest.to_string();
                let pos = manifest
                    .images
                    .iter()
                    .filter(|i| i.name == edges.name(edge.image))
                    .flat_map(|i| &i.dmap)
                    .find(|e| e.digest == digest)
                    .map(|e| e.pos);
                (manifest.images_path.to_path_buf(), pos, src.clone())
            })
            .collect();
        entries.dedup();
        grouped.entry(entries).or_default().push(overlap);
    }
    grouped
        .into_iter()
        .map(|(entries, overlaps)| {
            let mut message = format!("overlapping edges detected: {}", overlaps[0].destination);
            if overlaps.len() > 1 {
                message.push_str(&format!(" (and {} more destinations)", overlaps.len() - 1));
            }
            message.push_str(" is wanted with different digests by");
            for (i, (file, pos, src)) in entries.iter().enumerate() {
                let sep = if i == 0 { " " } else { ", " };
                let at = match pos {
                    Some(p) => format!("{}:{}:{}", file.display(), p.line, p.column),
                    None => file.display().to_string(),
                };
                message.push_str(&format!("{sep}{src} ({at})"));
            }
            let (file, pos, _) = &entries[0];
            Problem {
                file: file.clone(),
                pos: *pos,
                message,
            }
        })
        .collect()
}

/// One note per digest asked for by the same set of manifests.
pub fn redundant_notes(edges: &EdgeSet) -> Vec<Problem> {
    let mut grouped: BTreeMap<(Vec<PathBuf>, String), (String, usize)> = BTreeMap::new();
    for r in edges.redundant() {
        let key = (
            r.manifests.iter().map(|p| p.to_path_buf()).collect(),
            r.digest.to_string(),
        );
        grouped.entry(key).or_insert_with(|| (r.destination.clone(), 0)).1 += 1;
    }
    grouped
        .into_iter()
        .map(|((manifests, digest), (first, count))| {
            let more = if count > 1 {
                format!(" (and {} more destinations)", count - 1)
            } else {
                String::new()
            };
            let others: Vec<String> = manifests[1..].iter().map(|p| p.display().to_string()).collect();
            Problem::file(
                &manifests[0],
                format!(
                    "redundant promotion: {digest} to {first}{more} is also asked for by {}; promoted once",
                    others.join(", ")
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_problem_per_clash_naming_the_destination_every_source_and_where_it_is_asked() {
        let digest = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let mut a = Manifest::for_test(
            "a/images.yaml",
            "stage/a",
            &["m1/prod", "m2/prod"],
            &[("foo", vec![(digest('a'), vec!["1.0"])])],
        );
        a.images[0].dmap[0].pos = Position { line: 3, column: 5 };
        let b = Manifest::for_test(
            "b/images.yaml",
            "stage/b",
            &["m1/prod", "m2/prod"],
            &[("foo", vec![(digest('b'), vec!["1.0"])])],
        );
        let manifests = [a, b];
        let problems = overlap_problems(&EdgeSet::from_manifests(&manifests), &manifests);
        assert_eq!(problems.len(), 1, "one mistake, however many mirrors: {problems:?}");
        let text = problems[0].to_string();
        assert!(
            text.starts_with("a/images.yaml:3:5: overlapping edges detected: m1/prod/foo:1.0"),
            "{text}"
        );
        assert!(text.contains("(and 1 more destinations)"), "{text}");
        assert!(text.contains(&format!("stage/a/foo@{}", digest('a'))), "{text}");
        assert!(text.contains(&format!("stage/b/foo@{}", digest('b'))), "{text}");
    }
}
