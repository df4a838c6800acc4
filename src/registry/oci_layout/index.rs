//! The `index.json` of one layout: the only mutable file, so all tag logic lives here
//! as pure functions over the parsed document.
//!
//! Fields kpromo does not know (platforms, other annotations, vendor keys) are kept
//! through `extra`, so rewriting an index that another tool wrote loses nothing.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::digest::Digest;
use crate::registry::Descriptor;
use crate::registry::media::{self, MediaType};

/// The annotation that names a tag in an OCI layout (read by skopeo, crane, oras...).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The parsed `index.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Index {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<MediaType>,
    #[serde(default)]
    pub manifests: Vec<Entry>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One descriptor of `index.json`: a manifest, tagged when it carries [`REF_NAME`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<MediaType>,
    /// Kept as text: layouts written by other tools may hold non-sha256 digests, which
    /// kpromo never addresses but must not drop.
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Entry {
    fn new(descriptor: &Descriptor, tag: Option<&str>) -> Self {
        let mut annotations = BTreeMap::new();
        if let Some(tag) = tag {
            annotations.insert(REF_NAME.to_string(), tag.to_string());
        }
        Self {
            media_type: Some(descriptor.media_type.clone()),
            digest: descriptor.digest.to_string(),
            size: descriptor.size,
            annotations,
            extra: Map::new(),
        }
    }

    pub fn tag(&self) -> Option<&str> {
        self.annotations.get(REF_NAME).map(String::as_str)
    }

    /// The entry's digest when it is a valid sha256 digest.
    pub fn digest(&self) -> Option<Digest> {
        self.digest.parse().ok()
    }

    fn is(&self, digest: &Digest) -> bool {
        self.digest() == Some(*digest)
    }
}

impl Default for Index {
    fn default() -> Self {
        Self {
            schema_version: 2,
            media_type: Some(media::OCI_INDEX.into()),
            manifests: Vec::new(),
            extra: Map::new(),
        }
    }
}

impl Index {
    /// Every tag, sorted and without duplicates.
    pub fn tags(&self) -> Vec<String> {
        let mut tags: Vec<String> = self
            .manifests
            .iter()
            .filter_map(Entry::tag)
            .map(str::to_string)
            .collect();
        tags.sort();
        tags.dedup();
        tags
    }

    /// The entry carrying `tag` (the last one if a foreign tool wrote duplicates, as
    /// later entries are the more recent ones).
    pub fn tagged(&self, tag: &str) -> Option<&Entry> {
        self.manifests.iter().rev().find(|e| e.tag() == Some(tag))
    }

    /// Any entry for `digest`, tagged or not.
    pub fn by_digest(&self, digest: &Digest) -> Option<&Entry> {
        self.manifests.iter().find(|e| e.is(digest))
    }

    /// Records a manifest stored by digest only. Returns whether the index changed.
    ///
    /// Why an entry at all: a manifest only present under `blobs/` is indistinguishable
    /// from a layer for tools that walk `index.json` (skopeo, crane, garbage collectors),
    /// so every manifest kpromo writes is listed, untagged when it has no tag.
    pub fn add_untagged(&mut self, descriptor: &Descriptor) -> bool {
        if self.by_digest(&descriptor.digest).is_some() {
            return false;
        }
        self.manifests.push(Entry::new(descriptor, None));
        true
    }

    /// Removes every entry for `digest`, tagged or not. Returns whether the index changed.
    pub fn remove(&mut self, digest: &Digest) -> bool {
        let before = self.manifests.len();
        self.manifests.retain(|e| !e.is(digest));
        self.manifests.len() != before
    }

    /// Points `tag` at `descriptor`. Returns whether the index changed.
    ///
    /// A tag that pointed elsewhere moves (its old manifest stays listed untagged, so it
    /// is still found by digest); an untagged entry for the same digest is folded into
    /// the tagged one.
    pub fn set_tag(&mut self, tag: &str, descriptor: &Descriptor) -> bool {
        if let Some(current) = self.tagged(tag)
            && current.is(&descriptor.digest)
            && current.media_type.as_ref() == Some(&descriptor.media_type)
        {
            return false;
        }
        let mut orphans = Vec::new();
        self.manifests.retain(|e| {
            if e.tag() == Some(tag) {
                orphans.push(e.clone());
                return false;
            }
            !(e.tag().is_none() && e.is(&descriptor.digest))
        });
        for mut orphan in orphans {
            if orphan.is(&descriptor.digest) || self.manifests.iter().any(|e| e.digest == orphan.digest) {
                continue;
            }
            orphan.annotations.remove(REF_NAME);
            self.manifests.push(orphan);
        }
        self.manifests.push(Entry::new(descriptor, Some(tag)));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(byte: u8) -> Descriptor {
        Descriptor {
            digest: Digest::from_bytes([byte; 32]),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            size: u64::from(byte) * 10,
        }
    }

    #[test]
    fn untagged_then_tagged_leaves_one_entry() {
        let mut index = Index::default();
        assert!(index.add_untagged(&desc(1)));
        assert!(!index.add_untagged(&desc(1)));
        assert!(index.set_tag("v1", &desc(1)));
        assert!(!index.set_tag("v1", &desc(1)));
        assert_eq!(index.manifests.len(), 1);
        assert_eq!(index.tagged("v1").and_then(Entry::digest), Some(desc(1).digest));
        assert!(
            !index.add_untagged(&desc(1)),
            "a tagged entry already finds it by digest"
        );
    }

    #[test]
    fn two_tags_on_one_digest_are_two_entries() {
        let mut index = Index::default();
        index.set_tag("a", &desc(1));
        index.set_tag("b", &desc(1));
        assert_eq!(index.tags(), ["a", "b"]);
        assert_eq!(index.manifests.len(), 2);
    }

    #[test]
    fn moving_a_tag_keeps_the_old_manifest_findable() {
        let mut index = Index::default();
        index.set_tag("latest", &desc(1));
        index.set_tag("latest", &desc(2));
        assert_eq!(index.tagged("latest").and_then(Entry::digest), Some(desc(2).digest));
        let old = index.by_digest(&desc(1).digest).expect("old manifest still listed");
        assert_eq!(old.tag(), None);
        // A second tag on the old digest means no untagged copy is needed.
        index.set_tag("keep", &desc(1));
        index.set_tag("keep", &desc(2));
        assert_eq!(index.manifests.iter().filter(|e| e.is(&desc(1).digest)).count(), 1);
    }

    #[test]
    fn removing_a_digest_drops_every_entry_and_tag_on_it_and_nothing_else() {
        let mut index = Index::default();
        index.set_tag("a", &desc(1));
        index.set_tag("b", &desc(1));
        index.add_untagged(&desc(2));
        index.set_tag("c", &desc(3));
        assert!(index.remove(&desc(1).digest));
        assert!(!index.remove(&desc(1).digest), "already gone");
        assert_eq!(index.tags(), ["c"]);
        assert!(index.by_digest(&desc(2).digest).is_some());
    }

    #[test]
    fn foreign_fields_survive_a_rewrite() {
        let text = r#"{"schemaVersion":2,"x-vendor":1,"manifests":[{"mediaType":"m","digest":"sha512:ab","size":3,
            "platform":{"os":"linux"},"annotations":{"other":"y"}}]}"#;
        let mut index: Index = serde_json::from_str(text).unwrap();
        index.set_tag("v1", &desc(3));
        let back: Value = serde_json::to_value(&index).unwrap();
        assert_eq!(back["x-vendor"], 1);
        assert_eq!(back["manifests"][0]["platform"]["os"], "linux");
        assert_eq!(back["manifests"][0]["annotations"]["other"], "y");
        assert_eq!(back["manifests"][0]["digest"], "sha512:ab");
        assert_eq!(back["manifests"][1]["annotations"][REF_NAME], "v1");
    }
}
