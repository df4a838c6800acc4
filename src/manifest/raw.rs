//! The YAML shapes as written on disk, deserialised strictly (unknown keys are errors)
//! and with the position of every registry, image and `dmap` entry, then converted to
//! the shared model in [`super::schema`].
use std::fmt;

use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde_saphyr::Spanned;

use super::yaml::position;
use super::{DigestEntry, Image, RegistryContext};

/// A plain manifest (`--manifest`): registries and images in one file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlainManifest {
    #[serde(default)]
    pub registries: Option<Spanned<Vec<Spanned<RawRegistry>>>>,
    #[serde(default)]
    pub images: Option<Vec<Spanned<RawImage>>>,
}

/// A thin `promoter-manifest.yaml`: registries only; the images come from the sibling
/// `images/<project>/images.yaml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThinManifest {
    #[serde(default)]
    pub registries: Option<Spanned<Vec<Spanned<RawRegistry>>>>,
    /// Deprecated upstream and ignored (the images path is fixed by the layout), but
    /// still present in real manifests, so accepted.
    #[serde(default, rename = "imagesPath")]
    #[allow(dead_code, reason = "accepted for compatibility, never read")]
    pub images_path: Option<IgnoredAny>,
}

/// `images.yaml`: a bare list of images.
pub type ImagesFile = Vec<Spanned<RawImage>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegistry {
    #[serde(default)]
    pub name: String,
    #[serde(default, rename = "service-account")]
    pub service_account: Option<String>,
    #[serde(default)]
    pub src: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawImage {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub dmap: Option<Dmap>,
}

/// A `dmap` in file order with the position of each digest key. serde-saphyr rejects
/// a digest that appears twice before this visitor sees it.
#[derive(Debug, Default)]
pub struct Dmap(pub Vec<DigestEntry>);

impl<'de> Deserialize<'de> for Dmap {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DmapVisitor;
        impl<'de> Visitor<'de> for DmapVisitor {
            type Value = Dmap;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping from digest to a list of tags")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Dmap, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    // A null tag list (`"sha256:...":`) means no tags, as in Go.
                    let tags: Option<Vec<String>> = map.next_value()?;
                    let pos = position(&key);
                    entries.push(DigestEntry {
                        digest: key.value,
                        tags: tags.unwrap_or_default(),
                        pos,
                    });
                }
                Ok(Dmap(entries))
            }
        }
        deserializer.deserialize_map(DmapVisitor)
    }
}

pub fn registries(raw: Vec<Spanned<RawRegistry>>) -> Vec<RegistryContext> {
    raw.into_iter()
        .map(|r| {
            let pos = position(&r);
            let RawRegistry {
                name,
                service_account,
                src,
            } = r.value;
            RegistryContext {
                name,
                service_account,
                src,
                pos,
            }
        })
        .collect()
}

pub fn images(raw: Vec<Spanned<RawImage>>) -> Vec<Image> {
    raw.into_iter()
        .map(|i| {
            let pos = position(&i);
            let RawImage { name, dmap } = i.value;
            Image {
                name,
                dmap: dmap.unwrap_or_default().0,
                pos,
            }
        })
        .collect()
}
