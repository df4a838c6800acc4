//! `--manifest-based-snapshot-of REG`: what REG should contain according to the
//! manifests, computed offline from the promotion edges.
//!
//! Differences from Go kpromo (documented in `docs/flags.md`):
//! - Go keeps every edge whose destination registry name merely *starts with* REG, so
//!   `--manifest-based-snapshot-of gcr.io/foo` also swallowed `gcr.io/foo-bar`. Here a
//!   destination matches only when it equals REG or continues with `/`.
//! - Go fills the inventory from a hash map, so a digest that is tagless in one manifest
//!   and tagged in another came out either way. Here tags always win: the digest is
//!   listed with the union of its tags.
use crate::edges::EdgeSet;

use super::RegInvImage;

/// The inventory the manifests promise for `registry` (a registry name as used in
/// manifests, e.g. `us-central1-docker.pkg.dev/k8s-artifacts-prod/images`).
///
/// Destinations below `registry` contribute their remaining path as a prefix of the
/// image name: with `registry` = `gcr.io/prod`, the edge `gcr.io/prod/sub` + `foo`
/// lists image `sub/foo`.
pub fn inventory_of(edges: &EdgeSet, registry: &str) -> RegInvImage {
    let registry = registry.trim_end_matches('/');
    let mut rii = RegInvImage::new();
    for edge in edges.edges() {
        let Some(prefix) = path_below(edges.name(edge.dst_registry), registry) else {
            continue;
        };
        let image = edges.name(edge.image);
        let name = if prefix.is_empty() {
            image.trim_start_matches('/').to_string()
        } else {
            format!("{prefix}/{image}")
        };
        match edges.tag(edge) {
            Some(tag) => rii.insert_tag(&name, edge.digest, tag),
            None => rii.insert_digest(&name, edge.digest),
        }
    }
    rii
}

/// The part of `destination` below `registry` (without the joining `/`), or `None`
/// when `destination` is not `registry` itself or a path under it.
fn path_below<'a>(destination: &'a str, registry: &str) -> Option<&'a str> {
    let destination = destination.trim_end_matches('/');
    let rest = destination.strip_prefix(registry)?;
    if rest.is_empty() {
        Some("")
    } else if registry.is_empty() {
        Some(rest.trim_start_matches('/'))
    } else {
        rest.strip_prefix('/').map(|r| r.trim_start_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;

    use super::*;
    use crate::manifest::{DigestEntry, Image, Manifest, Position, RegistryContext};

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn manifest(dsts: &[&str], images: &[(&str, char, &[&str])]) -> Manifest {
        let reg = |name: &str, src: bool| RegistryContext {
            name: name.to_string(),
            service_account: None,
            src,
            pos: Position::default(),
        };
        let mut registries = vec![reg("gcr.io/staging", true)];
        registries.extend(dsts.iter().map(|d| reg(d, false)));
        let path = Arc::new(PathBuf::from("m.yaml"));
        Manifest {
            path: path.clone(),
            images_path: path,
            registries,
            images: images
                .iter()
                .map(|(name, c, tags)| Image {
                    name: name.to_string(),
                    dmap: vec![DigestEntry {
                        digest: digest(*c),
                        tags: tags.iter().map(|t| t.to_string()).collect(),
                        pos: Position::default(),
                    }],
                    pos: Position::default(),
                })
                .collect(),
        }
    }

    #[test]
    fn keeps_the_registry_and_paths_below_it_only() {
        let m = manifest(
            &["gcr.io/prod", "gcr.io/prod/sub", "gcr.io/prod-other", "eu.gcr.io/prod"],
            &[("foo", 'a', &["1.0"]), ("bar", 'b', &[])],
        );
        let edges = EdgeSet::from_manifests(&[m]);
        let rii = inventory_of(&edges, "gcr.io/prod/");
        let names: Vec<&str> = rii.image_names().collect();
        assert_eq!(
            names,
            ["bar", "foo", "sub/bar", "sub/foo"],
            "gcr.io/prod-other is not below gcr.io/prod"
        );
        let foo: Vec<_> = rii
            .digests("sub/foo")
            .map(|(d, t)| (d.to_string(), t.clone()))
            .collect();
        assert_eq!(foo, [(digest('a'), ["1.0".to_string()].into())]);
        assert!(rii.digests("bar").all(|(_, tags)| tags.is_empty()));
    }

    #[test]
    fn tags_win_over_a_tagless_entry_of_the_same_digest() {
        let tagged = manifest(&["gcr.io/prod"], &[("foo", 'a', &["1.0"])]);
        let tagless = manifest(&["gcr.io/prod"], &[("foo", 'a', &[])]);
        let rii = inventory_of(&EdgeSet::from_manifests(&[tagless, tagged]), "gcr.io/prod");
        let tags: Vec<_> = rii.digests("foo").map(|(_, t)| t.clone()).collect();
        assert_eq!(tags, [["1.0".to_string()].into()]);
    }

    #[test]
    fn path_below_respects_segment_boundaries() {
        assert_eq!(path_below("gcr.io/prod", "gcr.io/prod"), Some(""));
        assert_eq!(path_below("gcr.io/prod/a/b", "gcr.io/prod"), Some("a/b"));
        assert_eq!(path_below("gcr.io/prod-x", "gcr.io/prod"), None);
        assert_eq!(path_below("us.gcr.io/prod", "gcr.io/prod"), None);
    }
}
