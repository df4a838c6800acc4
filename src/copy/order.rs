//! Leaves first: the order in which one destination repository receives manifests.
//!
//! A registry refuses a manifest whose children are missing (distribution answers
//! `MANIFEST_UNKNOWN`), so children go before the indexes that list them. Kept free of
//! I/O so the ordering is table-tested directly, like the plan's decision table.
use std::collections::{BTreeMap, BTreeSet};

use super::MAX_DEPTH;

/// Groups `needed` into levels: level 0 holds manifests none of whose children are
/// needed, level n+1 those whose deepest needed child is at level n. Pushing level by
/// level, each level concurrently, never pushes a manifest before a child it lists.
///
/// Children that are not `needed` (already at the destination) do not count. Nesting is
/// followed to [`MAX_DEPTH`] levels: the graph reader refuses deeper indexes, and a
/// content-addressed graph cannot loop, but a bound costs nothing.
pub fn levels<K, C>(needed: &BTreeSet<K>, children: C) -> Vec<Vec<K>>
where
    K: Ord + Copy,
    C: Fn(K) -> Vec<K>,
{
    let mut level: BTreeMap<K, usize> = BTreeMap::new();
    for &manifest in needed {
        level_of(manifest, needed, &children, &mut level, 0);
    }
    let mut out: Vec<Vec<K>> = Vec::new();
    for (manifest, l) in level {
        if out.len() <= l {
            out.resize_with(l + 1, Vec::new);
        }
        out[l].push(manifest);
    }
    out
}

fn level_of<K, C>(at: K, needed: &BTreeSet<K>, children: &C, level: &mut BTreeMap<K, usize>, depth: usize) -> usize
where
    K: Ord + Copy,
    C: Fn(K) -> Vec<K>,
{
    if let Some(l) = level.get(&at) {
        return *l;
    }
    let mut l = 0;
    if depth <= MAX_DEPTH {
        for child in children(at) {
            if needed.contains(&child) {
                l = l.max(level_of(child, needed, children, level, depth + 1) + 1);
            }
        }
    }
    level.insert(at, l);
    l
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (manifest, its children)
    type Graph<'a> = &'a [(char, &'a str)];

    /// `graph` lists manifests and their children; `needed` the manifests to push.
    fn order(graph: Graph, needed: &str) -> Vec<String> {
        let children = |m: char| {
            graph
                .iter()
                .find(|(n, _)| *n == m)
                .map(|(_, c)| c.chars().collect())
                .unwrap_or_default()
        };
        levels(&needed.chars().collect(), children)
            .into_iter()
            .map(|level| level.into_iter().collect())
            .collect()
    }

    #[test]
    fn table() {
        // (case, graph, needed, expected levels)
        let cases: &[(&str, Graph, &str, &[&str])] = &[
            ("one image", &[], "a", &["a"]),
            ("nothing to push", &[('i', "ab")], "", &[]),
            ("index after its children", &[('i', "ab")], "iab", &["ab", "i"]),
            (
                "a child already there does not count",
                &[('i', "ab")],
                "ia",
                &["a", "i"],
            ),
            ("every child already there", &[('i', "ab")], "i", &["i"]),
            (
                "nested index: grandchildren, children, top",
                &[('t', "ij"), ('i', "ab"), ('j', "c")],
                "tijabc",
                &["abc", "ij", "t"],
            ),
            (
                "the level is one more than the deepest child",
                &[('t', "ia"), ('i', "b")],
                "tiab",
                &["ab", "i", "t"],
            ),
            (
                "a child shared by two indexes comes once",
                &[('i', "ab"), ('j', "bc")],
                "ijabc",
                &["abc", "ij"],
            ),
            ("unrelated images share level 0", &[], "xyz", &["xyz"]),
        ];
        for (case, graph, needed, expected) in cases {
            assert_eq!(order(graph, needed), *expected, "{case}");
        }
    }

    #[test]
    fn a_loop_is_cut_at_the_depth_bound_instead_of_recursing_forever() {
        let levels = order(&[('a', "b"), ('b', "a")], "ab");
        assert_eq!(levels.iter().map(String::len).sum::<usize>(), 2, "{levels:?}");
    }
}
