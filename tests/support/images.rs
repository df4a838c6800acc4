//! Deterministic synthetic images, the one image generator of the tests. Registries never
//! look inside layers, so layer bytes are pseudo-random from a seed: the same seed always
//! gives the same digests. Big layers are generated on the fly in 1 MiB chunks and never
//! held in memory whole. Where a real unpacker may look (skopeo, the committed demo),
//! layers are small uncompressed tar archives instead ([`Blob::tar`], [`Image::for_layout`]).
//!
//! Digests are computed here with `sha2`, never with kpromo's code, so a test never lets the
//! client under test grade its own work.
use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use serde_json::json;
use sha2::{Digest as _, Sha256};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
#[allow(dead_code, reason = "only the offline binary builds layout images")]
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

const CHUNK: usize = 1 << 20;

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A blob with a known digest: small ones in memory, big ones regenerated per read.
#[derive(Debug, Clone)]
pub struct Blob {
    pub digest: String,
    pub size: u64,
    content: Content,
}

#[derive(Debug, Clone)]
enum Content {
    Bytes(Bytes),
    /// `size` bytes: chunk `i` is a seeded 1 MiB block stamped with `i`.
    Synthetic {
        seed: u64,
    },
}

impl Blob {
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Blob {
        let bytes = bytes.into();
        Blob {
            digest: sha256_digest(&bytes),
            size: bytes.len() as u64,
            content: Content::Bytes(bytes),
        }
    }

    /// `size` pseudo-random bytes from `seed`, held in memory (use for layers up to a few MiB).
    pub fn random(seed: u64, size: usize) -> Blob {
        let mut rng = SplitMix(seed);
        let mut bytes = vec![0u8; size];
        rng.fill(&mut bytes);
        Blob::from_bytes(bytes)
    }

    /// A blob of any size generated while streaming; hashing it reads it once (about a
    /// second per GB), nothing is kept in memory.
    pub fn big(seed: u64, size: u64) -> Blob {
        let mut hasher = Sha256::new();
        let block = seed_block(seed);
        let mut chunk = vec![0u8; CHUNK];
        for index in 0..size.div_ceil(CHUNK as u64) {
            let len = stamp(&block, index, size, &mut chunk);
            hasher.update(&chunk[..len]);
        }
        Blob {
            digest: format!("sha256:{}", hex::encode(hasher.finalize())),
            size,
            content: Content::Synthetic { seed },
        }
    }

    /// A one-file ustar archive (uncompressed, mtime 0, root-owned): a layer that tools which
    /// unpack layers accept, with bytes that never change.
    #[allow(dead_code, reason = "only the offline binary builds layout images")]
    pub fn tar(path: &str, content: &[u8]) -> Blob {
        fn octal(field: &mut [u8], value: u64) {
            let text = format!("{value:0width$o}\0", width = field.len() - 1);
            field.copy_from_slice(text.as_bytes());
        }
        let mut header = [0u8; 512];
        header[..path.len()].copy_from_slice(path.as_bytes());
        octal(&mut header[100..108], 0o644);
        octal(&mut header[108..116], 0);
        octal(&mut header[116..124], 0);
        octal(&mut header[124..136], content.len() as u64);
        octal(&mut header[136..148], 0);
        header[148..156].fill(b' ');
        header[156] = b'0';
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        let sum: u64 = header.iter().map(|&b| u64::from(b)).sum();
        header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let mut out = header.to_vec();
        out.extend_from_slice(content);
        out.resize(out.len().div_ceil(512) * 512 + 1024, 0);
        Blob::from_bytes(out)
    }

    /// The bytes of a small blob. Panics for synthetic big blobs (use [`Blob::stream`]).
    pub fn bytes(&self) -> Bytes {
        match &self.content {
            Content::Bytes(bytes) => bytes.clone(),
            Content::Synthetic { .. } => panic!("blob {} is streamed only", self.digest),
        }
    }

    /// The content as a stream of chunks (1 MiB each).
    pub fn stream(&self) -> BoxStream<'static, Result<Bytes, std::io::Error>> {
        match &self.content {
            Content::Bytes(bytes) => {
                let chunks: Vec<Bytes> = (0..bytes.len())
                    .step_by(CHUNK)
                    .map(|start| bytes.slice(start..(start + CHUNK).min(bytes.len())))
                    .collect();
                stream::iter(chunks.into_iter().map(Ok)).boxed()
            }
            Content::Synthetic { seed } => {
                let (block, size) = (seed_block(*seed), self.size);
                stream::iter(0..size.div_ceil(CHUNK as u64))
                    .map(move |index| {
                        let mut chunk = vec![0u8; CHUNK];
                        let len = stamp(&block, index, size, &mut chunk);
                        chunk.truncate(len);
                        Ok(Bytes::from(chunk))
                    })
                    .boxed()
            }
        }
    }

    /// The content as one `Vec`, for small blobs and checks.
    pub fn to_vec(&self) -> Vec<u8> {
        self.bytes().to_vec()
    }
}

fn seed_block(seed: u64) -> Vec<u8> {
    let mut block = vec![0u8; CHUNK];
    SplitMix(seed ^ 0x6b70_726f_6d6f).fill(&mut block);
    block
}

/// Writes chunk `index` of a synthetic blob of `size` bytes into `out`; returns its length.
fn stamp(block: &[u8], index: u64, size: u64, out: &mut [u8]) -> usize {
    let len = (size - index * CHUNK as u64).min(CHUNK as u64) as usize;
    out[..len].copy_from_slice(&block[..len]);
    let tag = index.to_le_bytes();
    let n = tag.len().min(len);
    out[..n].copy_from_slice(&tag[..n]);
    len
}

/// SplitMix64: tiny, fast enough unoptimised, and stable across versions (unlike `rand`).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let word = self.next().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// How manifest JSON is written. The e2e worlds are pretty-printed, as registries' own
/// fixtures often are, so a client that re-serialised manifests would change their digests;
/// the demo's layouts are compact, and their committed digests depend on those bytes.
#[derive(Debug, Clone, Copy)]
enum Json {
    Pretty,
    #[allow(dead_code, reason = "only the offline binary builds layout images")]
    Compact,
}

impl Json {
    fn bytes(self, value: &serde_json::Value) -> Bytes {
        let bytes = match self {
            Json::Pretty => serde_json::to_vec_pretty(value),
            Json::Compact => serde_json::to_vec(value),
        };
        Bytes::from(bytes.expect("serialise manifest"))
    }
}

/// Docker schema 2 or OCI media types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Oci,
    Docker,
}

impl Format {
    pub fn manifest_type(self) -> &'static str {
        match self {
            Format::Oci => OCI_MANIFEST,
            Format::Docker => DOCKER_MANIFEST,
        }
    }
    pub fn index_type(self) -> &'static str {
        match self {
            Format::Oci => OCI_INDEX,
            Format::Docker => DOCKER_LIST,
        }
    }
    fn config_type(self) -> &'static str {
        match self {
            Format::Oci => OCI_CONFIG,
            Format::Docker => DOCKER_CONFIG,
        }
    }
    fn layer_type(self) -> &'static str {
        match self {
            Format::Oci => OCI_LAYER,
            Format::Docker => DOCKER_LAYER,
        }
    }
}

/// A single-platform image: config + layers + manifest bytes.
#[derive(Debug, Clone)]
pub struct Image {
    pub format: Format,
    pub platform: (String, Option<String>),
    pub config: Blob,
    pub layers: Vec<Blob>,
    pub manifest: Bytes,
    pub digest: String,
}

impl Image {
    /// An image for `arch` (`amd64`, `arm64/v8`, …) with the given layers; `seed` makes
    /// the config (and so the digest) distinct between otherwise equal images.
    pub fn new(format: Format, seed: u64, arch: &str, layers: Vec<Blob>) -> Image {
        let label = ("kpromo.test/seed", seed.to_string());
        Image::build(format, arch, label, layers, format.layer_type(), Json::Pretty)
    }

    /// An OCI image as the demo's layouts hold it: uncompressed tar layers ([`Blob::tar`]),
    /// `label` as `org.example.demo` (it tells otherwise equal images apart), compact JSON.
    /// The committed demo's digests depend on these exact bytes.
    #[allow(dead_code, reason = "only the offline binary builds layout images")]
    pub fn for_layout(arch: &str, layers: Vec<Blob>, label: &str) -> Image {
        let label = ("org.example.demo", label.to_string());
        Image::build(Format::Oci, arch, label, layers, OCI_LAYER_TAR, Json::Compact)
    }

    fn build(
        format: Format,
        arch: &str,
        (label_key, label): (&str, String),
        layers: Vec<Blob>,
        layer_type: &str,
        json: Json,
    ) -> Image {
        let (architecture, variant) = match arch.split_once('/') {
            Some((a, v)) => (a.to_string(), Some(v.to_string())),
            None => (arch.to_string(), None),
        };
        let config = Blob::from_bytes(
            json!({
                "architecture": architecture, "os": "linux",
                "config": {"Labels": {label_key: label}},
                "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| &l.digest).collect::<Vec<_>>()},
            })
            .to_string(),
        );
        let descriptor =
            |media_type: &str, blob: &Blob| json!({"mediaType": media_type, "digest": blob.digest, "size": blob.size});
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": format.manifest_type(),
            "config": descriptor(format.config_type(), &config),
            "layers": layers.iter().map(|l| descriptor(layer_type, l)).collect::<Vec<_>>(),
        });
        let manifest = json.bytes(&manifest);
        Image {
            format,
            platform: (architecture, variant),
            digest: sha256_digest(&manifest),
            config,
            layers,
            manifest,
        }
    }

    /// A one-layer image with a small random layer.
    pub fn simple(format: Format, seed: u64) -> Image {
        Image::new(
            format,
            seed,
            "amd64",
            vec![Blob::random(seed, 4096 + (seed % 1024) as usize)],
        )
    }

    pub fn media_type(&self) -> &'static str {
        self.format.manifest_type()
    }

    /// Config and layers, in push order.
    pub fn blobs(&self) -> impl Iterator<Item = &Blob> {
        std::iter::once(&self.config).chain(self.layers.iter())
    }
}

/// A multi-platform index (OCI) or manifest list (Docker).
#[derive(Debug, Clone)]
pub struct Index {
    pub format: Format,
    pub children: Vec<Image>,
    pub manifest: Bytes,
    pub digest: String,
}

impl Index {
    pub fn new(format: Format, children: Vec<Image>) -> Index {
        Index::build(format, children, Json::Pretty)
    }

    /// An OCI index over [`Image::for_layout`] images, as compact as they are.
    #[allow(dead_code, reason = "only the offline binary builds layout images")]
    pub fn for_layout(children: Vec<Image>) -> Index {
        Index::build(Format::Oci, children, Json::Compact)
    }

    fn build(format: Format, children: Vec<Image>, json: Json) -> Index {
        let manifests: Vec<_> = children
            .iter()
            .map(|child| {
                let mut platform = json!({"architecture": child.platform.0, "os": "linux"});
                if let Some(variant) = &child.platform.1 {
                    platform["variant"] = json!(variant);
                }
                json!({"mediaType": child.media_type(), "digest": child.digest, "size": child.manifest.len(), "platform": platform})
            })
            .collect();
        let manifest = json!({"schemaVersion": 2, "mediaType": format.index_type(), "manifests": manifests});
        let manifest = json.bytes(&manifest);
        Index {
            format,
            digest: sha256_digest(&manifest),
            children,
            manifest,
        }
    }

    /// One image per arch, each with the shared `base` layer (if any) plus a small own layer.
    pub fn multi_arch(format: Format, seed: u64, archs: &[&str], base: Option<&Blob>) -> Index {
        let children = archs
            .iter()
            .enumerate()
            .map(|(i, arch)| {
                let child_seed = seed.wrapping_mul(131).wrapping_add(i as u64 + 1);
                let mut layers: Vec<Blob> = base.into_iter().cloned().collect();
                layers.push(Blob::random(child_seed, 2048 + (child_seed % 4096) as usize));
                Image::new(format, child_seed, arch, layers)
            })
            .collect();
        Index::new(format, children)
    }

    pub fn media_type(&self) -> &'static str {
        self.format.index_type()
    }
}
