//! What the fuzz targets run (`fuzz/fuzz_targets/`, built by `cargo fuzz`;
//! `docs/decisions/0005-fuzzing.md`), and the replay of their corpora
//! (`fuzz/corpus/<target>/`, findings included) as unit tests. Each takes any bytes and,
//! besides not panicking, checks what must hold for every input.
use std::path::Path;

use bytes::Bytes;

use crate::edges::EdgeSet;
use crate::manifest::load;
use crate::registry::media::{self, ManifestLinks, MediaType};
use crate::registry::reference::{RegistryName, check_repository, is_loopback};
use crate::registry::remote::auth::{self, Challenge};
use crate::registry::{RawManifest, referrers};

/// The manifest YAML loader, every validation rule and the edge set. The input is a plain
/// manifest, or a thin project's `promoter-manifest.yaml` and `images.yaml` separated by
/// a NUL byte (which YAML text cannot hold).
pub fn manifest_yaml(data: &[u8]) {
    // Files that are not UTF-8 are refused before parsing (`yaml::read_text`).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let loaded = match text.split_once('\0') {
        Some((manifest, images)) => load::thin_from_text(
            (Path::new("promoter-manifest.yaml"), manifest),
            (Path::new("images.yaml"), images),
        ),
        None => load::plain_from_text(Path::new("manifest.yaml"), text),
    };
    // YAML's line breaks: CRLF, CR and LF (a lone CR counts, as in classic Mac files).
    let breaks = text.matches('\n').count() + text.matches('\r').count() - text.matches("\r\n").count();
    let lines = u32::try_from(breaks + 1).unwrap_or(u32::MAX);
    for problem in &loaded.problems {
        if let Some(pos) = problem.pos {
            assert!(
                pos.line >= 1 && pos.line <= lines,
                "position outside the text: {problem}"
            );
        }
    }
    let edges = EdgeSet::from_manifests(&loaded.manifests);
    // Offline validation refuses every name a run would refuse.
    if loaded.problems.is_empty() {
        assert!(
            edges.refused().is_empty(),
            "validation accepted what the edge set refuses: {:?}",
            edges.refused()
        );
    }
    // No edge writes outside its destination registry's path.
    for edge in edges.edges() {
        let registry = RegistryName::parse(edges.name(edge.dst_registry)).expect("edges name valid registries");
        let repository = registry
            .repository(edges.name(edge.image))
            .expect("edges name valid repositories");
        let prefix = registry.prefix();
        assert!(
            prefix.is_empty() || repository.starts_with(&format!("{prefix}/")),
            "{repository}"
        );
        assert_eq!(check_repository(&repository), Ok(()), "{repository}");
    }
}

/// The one reader of manifest JSON: references, the sniffer, the served media type and
/// the referrers list.
pub fn manifest_json(data: &[u8]) {
    let bytes = Bytes::copy_from_slice(data);
    let links = ManifestLinks::parse(data);
    for media_type in [media::OCI_MANIFEST, media::OCI_INDEX, media::DOCKER_SCHEMA1] {
        let manifest = RawManifest::new(media_type, bytes.clone());
        if let (Ok(refs), Ok(links)) = (media::references(&manifest), &links) {
            // Exactly the children listed, and only blobs the manifest names.
            assert_eq!(refs.children.len(), links.manifests.len());
            let named: Vec<_> = links.config.iter().chain(&links.layers).chain(&links.blobs).collect();
            assert!(refs.blobs.iter().all(|b| named.iter().any(|n| n.digest == b.digest)));
        }
    }
    // The body's declared type wins over any header.
    let header = MediaType::from(media::OCI_INDEX);
    if let (Ok(links), Ok((used, _))) = (&links, media::served_media_type(Some(&header), data))
        && let Some(declared) = &links.media_type
    {
        assert_eq!(&used, declared);
    }
    let _ = media::sniff_media_type(data);
    let _ = referrers::listed(data, Some("application/example"));
}

/// The `WWW-Authenticate` parser and the token realm rule: a realm accepted for a registry
/// reached over TLS is HTTPS; a plain-HTTP realm is accepted only for a plain registry,
/// on a loopback host, and never carries user info.
pub fn www_authenticate(data: &[u8]) {
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    let Some(Challenge::Bearer { realm, scopes, .. }) = auth::parse_challenge(header) else {
        return;
    };
    assert!(scopes.iter().all(|s| !s.is_empty() && !s.contains(' ')), "{scopes:?}");
    let Ok(url) = url::Url::parse(&realm) else {
        return;
    };
    for registry_tls in [true, false] {
        if auth::realm_refusal(&url, registry_tls, is_loopback).is_some() {
            continue;
        }
        assert!(url.username().is_empty() && url.password().is_none(), "{url}");
        match url.scheme() {
            "https" => {}
            "http" => {
                assert!(!registry_tls, "plain realm {url} accepted for a TLS registry");
                let host = url.host_str().unwrap_or_default();
                let host = match url.port() {
                    Some(port) => format!("{host}:{port}"),
                    None => host.to_string(),
                };
                assert!(is_loopback(&host), "plain realm {url} on a host that is not loopback");
            }
            other => panic!("realm scheme {other} accepted: {url}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs every file of `fuzz/corpus/<target>/` (seeds, and findings kept as regression
    /// inputs) through the target.
    fn replay(target: &str, run: fn(&[u8])) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("corpus entry").path())
            .collect();
        files.sort();
        for file in &files {
            let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            run(&data);
        }
        assert!(files.len() >= 10, "{}: only {} inputs", dir.display(), files.len());
    }

    #[test]
    fn manifest_yaml_corpus_replays() {
        replay("manifest_yaml", manifest_yaml);
    }

    #[test]
    fn manifest_json_corpus_replays() {
        replay("manifest_json", manifest_json);
    }

    #[test]
    fn www_authenticate_corpus_replays() {
        replay("www_authenticate", www_authenticate);
    }
}
