//! Images as users type them on a command line (`kpromo verify REF...`), as opposed to
//! manifests' registry names plus image names.
use std::path::Path;

use super::{Error, ManifestRef};
use crate::digest::Digest;

/// `HOST[:PORT]/REPO:TAG`, `HOST[:PORT]/REPO@sha256:…`, or an OCI layout directory as
/// skopeo writes it: `oci:DIR:TAG`, `oci:DIR@sha256:…` (`DIR` being the repository's own
/// layout, inside the layout registry that is its parent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// The registry name to open (`HOST[:PORT]`, or `oci:PARENT`).
    pub registry: String,
    pub repo: String,
    pub reference: ManifestRef,
}

impl ImageRef {
    pub fn parse(text: &str) -> Result<Self, Error> {
        let invalid = |message: &str| Error::InvalidReference {
            reference: text.to_string(),
            message: message.to_string(),
        };
        let (name, reference) =
            split_reference(text).ok_or_else(|| invalid("expected REPOSITORY:TAG or REPOSITORY@sha256:DIGEST"))?;
        let reference = match reference {
            Reference::Tag(tag) if !tag.is_empty() => ManifestRef::Tag(tag.to_string()),
            Reference::Tag(_) => return Err(invalid("empty tag")),
            Reference::Digest(d) => ManifestRef::Digest(d.parse::<Digest>().map_err(|e| invalid(&e.to_string()))?),
        };
        if let Some(dir) = name.strip_prefix("oci:") {
            let dir = Path::new(dir);
            let (Some(parent), Some(repo)) = (dir.parent(), dir.file_name().and_then(|f| f.to_str())) else {
                return Err(invalid("an OCI layout reference needs a directory"));
            };
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            return Ok(Self {
                registry: format!("oci:{}", parent.display()),
                repo: repo.to_string(),
                reference,
            });
        }
        let (host, repo) = name
            .split_once('/')
            .ok_or_else(|| invalid("expected HOST/REPOSITORY"))?;
        if repo.is_empty() {
            return Err(invalid("empty repository"));
        }
        Ok(Self {
            registry: host.to_string(),
            repo: repo.to_string(),
            reference,
        })
    }
}

enum Reference<'a> {
    Tag(&'a str),
    Digest(&'a str),
}

/// `NAME@DIGEST` or `NAME:TAG`, the tag's `:` being after the last `/` (a port's is not).
fn split_reference(text: &str) -> Option<(&str, Reference<'_>)> {
    if let Some((name, digest)) = text.rsplit_once('@') {
        return Some((name, Reference::Digest(digest)));
    }
    let last_slash = text.rfind('/').unwrap_or(0);
    let colon = text[last_slash..].rfind(':')? + last_slash;
    Some((&text[..colon], Reference::Tag(&text[colon + 1..])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_and_layout_references() {
        let digest = Digest::of(b"x");
        let parse = |s: &str| ImageRef::parse(s).unwrap();
        assert_eq!(
            parse("127.0.0.1:5000/prod/foo:1.0"),
            ImageRef {
                registry: "127.0.0.1:5000".into(),
                repo: "prod/foo".into(),
                reference: ManifestRef::Tag("1.0".into())
            }
        );
        assert_eq!(
            parse(&format!("registry.k8s.io/pause@{digest}")).reference,
            ManifestRef::Digest(digest)
        );
        let layout = parse("oci:./mirrors/asia/multi:2.0");
        assert_eq!(
            (layout.registry.as_str(), layout.repo.as_str()),
            ("oci:./mirrors/asia", "multi")
        );
        for bad in [
            "registry.k8s.io/pause",
            "pause:1.0",
            "host/repo@sha256:zz",
            "host/:x",
            "host/repo:",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad}");
        }
    }
}
