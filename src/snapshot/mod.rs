//! Inventory snapshots, a use case beside the promotion pipeline: what a registry holds
//! (`--snapshot REG`, a registry walk) or should hold according to the manifests
//! (`--manifest-based-snapshot-of REG`, offline), rendered in Go kpromo's `images.yaml`
//! YAML format or its CSV format.
//!
//! The printed bytes must equal Go's: snapshots are diffed against checked-in
//! `images.yaml` files and fed to scripts that grew around the Go output. The model is
//! therefore kept in sorted maps, so the writers never depend on insertion order.
mod error;
pub mod from_manifests;
pub mod minimal;
mod quote;
mod take;
pub mod walk;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::str::FromStr;

use crate::digest::Digest;

pub use error::Error;
pub use quote::go_quote;
pub use take::{Request, Source, take};

/// Go's `RegInvImage`: image name -> digest -> tags. Image names are relative to the
/// snapshotted registry (`kubernetes/pause`, not `registry.k8s.io/kubernetes/pause`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegInvImage {
    images: BTreeMap<String, BTreeMap<Digest, BTreeSet<String>>>,
}

impl RegInvImage {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `image` holds `digest`, without adding a tag (a tagless entry unless
    /// a tag is added later).
    pub fn insert_digest(&mut self, image: &str, digest: Digest) {
        self.images
            .entry(image.to_string())
            .or_default()
            .entry(digest)
            .or_default();
    }

    /// Records that `image:tag` points at `digest`.
    pub fn insert_tag(&mut self, image: &str, digest: Digest, tag: &str) {
        self.images
            .entry(image.to_string())
            .or_default()
            .entry(digest)
            .or_default()
            .insert(tag.to_string());
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// Image names in output order.
    pub fn image_names(&self) -> impl Iterator<Item = &str> {
        self.images.keys().map(String::as_str)
    }

    /// The digests of `image` with their tags, in output order.
    pub fn digests(&self, image: &str) -> impl Iterator<Item = (&Digest, &BTreeSet<String>)> {
        self.images.get(image).into_iter().flat_map(|d| d.iter())
    }

    /// Every (image, digest, tags) triple in output order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Digest, &BTreeSet<String>)> {
        self.images
            .iter()
            .flat_map(|(name, dmap)| dmap.iter().map(move |(d, tags)| (name.as_str(), d, tags)))
    }

    /// Go's `FilterByTag`: keeps only digests carrying `tag`, each with that one tag;
    /// images left without digests disappear.
    pub fn filter_by_tag(&self, tag: &str) -> Self {
        let mut out = Self::new();
        for (image, digest, tags) in self.entries() {
            if tags.contains(tag) {
                out.insert_tag(image, *digest, tag);
            }
        }
        out
    }

    /// Go's `RemoveChildDigestEntries`: drops tagless entries whose digest is in
    /// `children`; images left without digests disappear. Tagged children stay: someone
    /// chose to tag them.
    pub fn without_tagless(&self, children: &BTreeSet<Digest>) -> Self {
        let mut out = Self::new();
        for (image, digest, tags) in self.entries() {
            if tags.is_empty() && children.contains(digest) {
                continue;
            }
            out.insert_digest(image, *digest);
            for tag in tags {
                out.insert_tag(image, *digest, tag);
            }
        }
        out
    }

    /// Go's `RegInvImage.ToYAML` with default options: the `images.yaml` format.
    ///
    /// ```text
    /// - name: foo
    ///   dmap:
    ///     "sha256:…": ["1.0", "latest"]
    ///     "sha256:…": []
    /// ```
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        for (name, dmap) in &self.images {
            // Writing into a String cannot fail.
            let _ = writeln!(out, "- name: {name}");
            out.push_str("  dmap:\n");
            for (digest, tags) in dmap {
                let _ = write!(out, "    {}:", go_quote(&digest.to_string()));
                if tags.is_empty() {
                    out.push_str(" []\n");
                } else {
                    let quoted: Vec<String> = tags.iter().map(|t| go_quote(t)).collect();
                    let _ = writeln!(out, " [{}]", quoted.join(", "));
                }
            }
        }
        out
    }

    /// Go's `RegInvImage.ToCSV`: one `name@digest,name:tag` line per tag, or
    /// `name@digest,-` for a tagless digest.
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        for (name, digest, tags) in self.entries() {
            if tags.is_empty() {
                let _ = writeln!(out, "{name}@{digest},-");
            }
            for tag in tags {
                let _ = writeln!(out, "{name}@{digest},{name}:{tag}");
            }
        }
        out
    }

    /// The text Go prints to stdout: the rendering plus the newline of `fmt.Println`
    /// (so a non-empty snapshot ends with a blank line).
    pub fn render(&self, format: OutputFormat) -> String {
        let mut text = match format {
            OutputFormat::Yaml => self.to_yaml(),
            OutputFormat::Csv => self.to_csv(),
        };
        text.push('\n');
        text
    }
}

/// `--output`: `yaml` or `csv`, case-insensitive as in Go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Yaml,
    Csv,
}

/// The error text is Go's, so scripts grepping for it keep working.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid snapshot output format: {0}")]
pub struct InvalidOutputFormat(pub String);

impl FromStr for OutputFormat {
    type Err = InvalidOutputFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "yaml" => Ok(Self::Yaml),
            "csv" => Ok(Self::Csv),
            _ => Err(InvalidOutputFormat(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> Digest {
        format!("sha256:{}", c.to_string().repeat(64)).parse().unwrap()
    }

    fn sample() -> RegInvImage {
        let mut rii = RegInvImage::new();
        rii.insert_tag("foo", d('b'), "latest");
        rii.insert_tag("foo", d('b'), "1.10");
        rii.insert_tag("foo", d('b'), "1.9");
        rii.insert_digest("foo", d('a'));
        rii.insert_tag("bar/baz", d('c'), "v1");
        rii
    }

    #[test]
    fn yaml_sorts_images_digests_and_tags_as_strings() {
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let c = "c".repeat(64);
        let expected = format!(
            "- name: bar/baz\n  dmap:\n    \"sha256:{c}\": [\"v1\"]\n\
             - name: foo\n  dmap:\n    \"sha256:{a}\": []\n    \"sha256:{b}\": [\"1.10\", \"1.9\", \"latest\"]\n"
        );
        assert_eq!(sample().to_yaml(), expected);
    }

    #[test]
    fn csv_has_one_line_per_tag_and_a_dash_for_tagless() {
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let c = "c".repeat(64);
        let expected = format!(
            "bar/baz@sha256:{c},bar/baz:v1\n\
             foo@sha256:{a},-\n\
             foo@sha256:{b},foo:1.10\n\
             foo@sha256:{b},foo:1.9\n\
             foo@sha256:{b},foo:latest\n"
        );
        assert_eq!(sample().to_csv(), expected);
    }

    #[test]
    fn render_adds_the_println_newline_even_when_empty() {
        assert_eq!(RegInvImage::new().render(OutputFormat::Yaml), "\n");
        assert!(sample().render(OutputFormat::Csv).ends_with(",foo:latest\n\n"));
    }

    #[test]
    fn filter_by_tag_keeps_only_that_tag() {
        let filtered = sample().filter_by_tag("1.10");
        let entries: Vec<_> = filtered
            .entries()
            .map(|(i, d, t)| (i.to_string(), *d, t.clone()))
            .collect();
        assert_eq!(
            entries,
            [("foo".to_string(), d('b'), BTreeSet::from(["1.10".to_string()]))]
        );
        assert!(sample().filter_by_tag("nope").is_empty());
    }

    #[test]
    fn without_tagless_drops_only_tagless_children() {
        let children = BTreeSet::from([d('a'), d('c')]);
        let out = sample().without_tagless(&children);
        let digests: Vec<_> = out.entries().map(|(i, d, _)| (i.to_string(), *d)).collect();
        assert_eq!(
            digests,
            [("bar/baz".to_string(), d('c')), ("foo".to_string(), d('b'))],
            "tagless child a is gone, tagged child c stays"
        );
    }

    #[test]
    fn output_format_is_case_insensitive_and_names_bad_values() {
        assert_eq!("YAML".parse::<OutputFormat>(), Ok(OutputFormat::Yaml));
        assert_eq!("Csv".parse::<OutputFormat>(), Ok(OutputFormat::Csv));
        assert_eq!(
            "json".parse::<OutputFormat>().unwrap_err().to_string(),
            "invalid snapshot output format: json"
        );
    }
}
