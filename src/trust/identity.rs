//! Which name a signature vouches for, and which destination holds it. Pure.
//!
//! Users pull `registry.k8s.io/<image>`, a redirector in front of many regional mirrors,
//! and `cosign verify registry.k8s.io/<image>` finds the signature at the one registry the
//! redirector sends `.sig` requests to. So an image promoted to twenty mirrors is signed
//! once, at the canonical mirror, for its public name.

/// `FROM=TO`: in a destination `registry/image`, everything up to and including the path
/// segments `FROM` is replaced by `TO` (Go kpromo's rule for `k8s-artifacts-prod/images`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRewrite {
    pub from: String,
    pub to: String,
}

impl IdentityRewrite {
    /// The production rule: `…/k8s-artifacts-prod/images/<image>` is `registry.k8s.io/<image>`.
    pub fn k8s() -> Self {
        Self {
            from: "k8s-artifacts-prod/images".into(),
            to: "registry.k8s.io".into(),
        }
    }

    /// Parses `FROM=TO`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (from, to) = text
            .split_once('=')
            .ok_or_else(|| format!("{text:?}: expected FROM=TO"))?;
        let (from, to) = (from.trim_matches('/'), to.trim_end_matches('/'));
        if from.is_empty() || to.is_empty() {
            return Err(format!("{text:?}: FROM and TO must not be empty"));
        }
        Ok(Self {
            from: from.into(),
            to: to.into(),
        })
    }

    /// `reference` rewritten, if `from` is a run of whole path segments in it.
    fn apply(&self, reference: &str) -> Option<String> {
        let segments: Vec<&str> = reference.split('/').collect();
        let wanted: Vec<&str> = self.from.split('/').collect();
        let at = segments.windows(wanted.len()).position(|w| w == wanted.as_slice())?;
        let rest = &segments[at + wanted.len()..];
        Some(
            std::iter::once(self.to.as_str())
                .chain(rest.iter().copied())
                .collect::<Vec<_>>()
                .join("/"),
        )
    }
}

/// The name a signature of `image` promoted to `registry` vouches for: the first rule
/// that applies, else `registry/image` itself.
pub fn signed_identity(rewrites: &[IdentityRewrite], registry: &str, image: &str) -> String {
    let reference = format!("{registry}/{image}");
    rewrites.iter().find_map(|r| r.apply(&reference)).unwrap_or(reference)
}

/// Where signatures are written, and under which names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureTarget {
    /// `--signature-registry`: this destination, whenever an image goes there.
    pub registry: Option<String>,
    /// `--canonical-registry-prefix`: otherwise the first destination starting with it.
    pub canonical_prefix: String,
    pub rewrites: Vec<IdentityRewrite>,
}

impl Default for SignatureTarget {
    fn default() -> Self {
        Self {
            registry: None,
            canonical_prefix: "us-central1-docker.pkg.dev".into(),
            rewrites: vec![IdentityRewrite::k8s()],
        }
    }
}

impl SignatureTarget {
    /// The destination registry (as the manifests name it) that holds the signatures of an
    /// image promoted to `destinations`: `--signature-registry` if it is one of them, else
    /// the first one whose name starts with the canonical prefix, else the first in sort
    /// order. Chosen from every destination of the image, not only those this run copied
    /// to, so that an image only a regional mirror needed is still signed canonically.
    pub fn canonical<'a>(&self, destinations: &[&'a str]) -> Option<&'a str> {
        let mut sorted: Vec<&'a str> = destinations.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        if let Some(wanted) = &self.registry
            && let Some(found) = sorted.iter().find(|d| *d == wanted)
        {
            return Some(found);
        }
        sorted
            .iter()
            .find(|d| d.starts_with(&self.canonical_prefix))
            .or_else(|| sorted.first())
            .copied()
    }

    pub fn identity(&self, registry: &str, image: &str) -> String {
        signed_identity(&self.rewrites, registry, image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_replace_everything_up_to_whole_segments() {
        let rules = [IdentityRewrite::k8s()];
        let cases = [
            (
                "us-west2-docker.pkg.dev/k8s-artifacts-prod/images/kubernetes",
                "conformance-arm64",
                "registry.k8s.io/kubernetes/conformance-arm64",
            ),
            (
                "us-central1-docker.pkg.dev/k8s-artifacts-prod/images",
                "pause",
                "registry.k8s.io/pause",
            ),
            // Not whole segments, not rewritten.
            (
                "example.com/k8s-artifacts-prod/images-x",
                "pause",
                "example.com/k8s-artifacts-prod/images-x/pause",
            ),
            ("127.0.0.1:5000/prod", "foo", "127.0.0.1:5000/prod/foo"),
        ];
        for (registry, image, want) in cases {
            assert_eq!(signed_identity(&rules, registry, image), want, "{registry}");
        }
        let custom = IdentityRewrite::parse("127.0.0.1:5000/prod=registry.example/").unwrap();
        assert_eq!(
            signed_identity(&[custom], "127.0.0.1:5000/prod", "a/b"),
            "registry.example/a/b"
        );
        assert!(IdentityRewrite::parse("nothing").is_err());
        assert!(IdentityRewrite::parse("=x").is_err());
    }

    #[test]
    fn canonical_registry_choice() {
        let target = SignatureTarget::default();
        let eu = "europe-west1-docker.pkg.dev/k8s-artifacts-prod/images";
        let us = "us-central1-docker.pkg.dev/k8s-artifacts-prod/images";
        let asia = "asia-east1-docker.pkg.dev/k8s-artifacts-prod/images";
        assert_eq!(target.canonical(&[eu, us, asia]), Some(us), "the canonical prefix wins");
        assert_eq!(
            target.canonical(&[eu, asia]),
            Some(asia),
            "else the first in sort order"
        );
        let pinned = SignatureTarget {
            registry: Some(eu.into()),
            ..SignatureTarget::default()
        };
        assert_eq!(pinned.canonical(&[us, eu]), Some(eu));
        assert_eq!(
            pinned.canonical(&[us, asia]),
            Some(us),
            "a pinned registry not among them"
        );
        assert_eq!(target.canonical(&[]), None);
    }
}
