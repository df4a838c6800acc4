//! A promotion scene for the throttling tests (`tests/e2e/solo/registry_throttle.rs`) and
//! the throttling benchmark (`tests/e2e/throttle_bench.rs`): staging and mirrors behind
//! fault proxies (a `World`), a set of images in staging, and promotions of all of them,
//! each into fresh repositories (`run<N>/…`) so that every run does the same work on the
//! same registries. What a run left at each mirror is checked with the harness's own
//! client; when each mirror got its last tag is read from its proxy's log.
use std::time::{Duration, Instant};

use super::images::{Blob, Format, Image, Index};
use super::world::{self, Run, World};
use super::{FaultProxy, Pusher, TestRegistry, within};
use futures_util::{StreamExt, stream};

/// What an image of the scene is.
#[derive(Debug, Clone)]
pub enum Content {
    Index(Index),
    Image(Image),
}

/// One image of the scene: its repository under `staging/`, digest, tags and content.
#[derive(Debug, Clone)]
pub struct SceneImage {
    pub name: String,
    pub digest: String,
    pub tags: Vec<String>,
    pub content: Content,
}

impl SceneImage {
    /// Pushes it with the harness's pusher (blobs, children, manifest, tags) into
    /// `prefix/<name>`.
    pub async fn push(&self, pusher: &Pusher, prefix: &str) {
        let repo = &format!("{prefix}/{}", self.name);
        let tags: Vec<&str> = self.tags.iter().map(String::as_str).collect();
        match &self.content {
            Content::Index(index) => pusher.push_index(repo, index, &tags).await,
            Content::Image(image) => pusher.push_image(repo, image, &tags).await,
        };
    }

    /// Reads it back from `prefix/<name>` with the harness's client, each manifest (the
    /// index's children too) and blob once: what copying it must read from its source.
    pub async fn read(&self, reader: &Pusher, prefix: &str) {
        let repo = &format!("{prefix}/{}", self.name);
        let images = match &self.content {
            Content::Index(index) => {
                reader.get_manifest(repo, &index.digest).await;
                index.children.iter().collect()
            }
            Content::Image(image) => vec![image],
        };
        for image in images {
            reader.get_manifest(repo, &image.digest).await;
            for blob in image.blobs() {
                assert!(
                    reader.get_blob(repo, &blob.digest).await.is_some(),
                    "{repo} lacks {}",
                    blob.digest
                );
            }
        }
    }
}

/// A destination of a promotion: the host the manifests name (a mirror's fault proxy, or
/// a front in front of that proxy), and the mirror behind it.
#[derive(Debug, Clone)]
pub struct Destination {
    pub host: String,
    pub mirror: usize,
}

#[derive(Debug)]
pub struct Scene {
    pub world: World,
    pub images: Vec<SceneImage>,
    runs: usize,
}

/// How one promotion went.
#[derive(Debug)]
pub struct Promotion {
    pub run: Run,
    pub elapsed: Duration,
    /// Per destination (in the order given): time from the start of the run to the last
    /// tag the mirror received (`None`: none arrived).
    pub last_tag: Vec<Option<Duration>>,
    /// Requests every proxy saw (staging's first), and of those, faults injected.
    pub requests: Vec<usize>,
    pub faults: Vec<usize>,
}

impl Scene {
    /// Staging with `images` images (every other one a two-platform index sharing a base
    /// layer, the rest single images; `layer_kb` per own layer), and `mirrors` mirrors.
    pub async fn start(kpromo: &str, mirrors: usize, images: usize, layer_kb: usize) -> Scene {
        let world = World::start(kpromo, mirrors);
        let base = Blob::random(500, 256 * 1024);
        let own = |s: u64| Blob::random(s, layer_kb * 1024);
        let out: Vec<SceneImage> = (0..images)
            .map(|i| {
                let seed = 1000 + i as u64 * 10;
                let content = if i % 2 == 0 {
                    let children = ["amd64", "arm64/v8"]
                        .iter()
                        .enumerate()
                        .map(|(a, arch)| {
                            let s = seed + a as u64;
                            Image::new(Format::Oci, s, arch, vec![base.clone(), own(s)])
                        })
                        .collect();
                    Content::Index(Index::new(Format::Oci, children))
                } else {
                    Content::Image(Image::new(Format::Oci, seed, "amd64", vec![base.clone(), own(seed)]))
                };
                let digest = match &content {
                    Content::Index(index) => index.digest.clone(),
                    Content::Image(image) => image.digest.clone(),
                };
                SceneImage {
                    name: format!("img{i:03}"),
                    digest,
                    tags: vec!["v1".to_string(), format!("v1.0.{i}")],
                    content,
                }
            })
            .collect();
        let pusher = world.staging.pusher();
        within(600, "push the scene to staging", async {
            stream::iter(&out)
                .for_each_concurrent(8, |image| image.push(&pusher, "staging"))
                .await;
        })
        .await;
        Scene {
            world,
            images: out,
            runs: 0,
        }
    }

    /// Promotes every image into fresh repositories (`run<N>`, returned) at
    /// `destinations` with `extra` flags, bounded by `seconds`.
    pub fn promote(&mut self, destinations: &[Destination], extra: &[&str], seconds: u64) -> (Promotion, String) {
        self.runs += 1;
        let prefix = format!("run{}", self.runs);
        (self.promote_into(&prefix, destinations, extra, seconds), prefix)
    }

    /// Promotes every image into `prefix` at `destinations` (a rerun, when an earlier run
    /// used that prefix). Proxies' logs are cleared first.
    pub fn promote_into(&self, prefix: &str, destinations: &[Destination], extra: &[&str], seconds: u64) -> Promotion {
        let dsts: Vec<String> = destinations.iter().map(|d| format!("{}/{prefix}", d.host)).collect();
        let images: Vec<world::ImageSpec> = self
            .images
            .iter()
            .map(|i| {
                (
                    i.name.as_str(),
                    vec![(i.digest.as_str(), i.tags.iter().map(String::as_str).collect())],
                )
            })
            .collect();
        let _ = std::fs::remove_dir_all(self.world.dir.path().join("manifests"));
        let _ = std::fs::remove_dir_all(self.world.dir.path().join("images"));
        self.world.write_project("scene", &self.world.src(), &dsts, &images);
        self.world.clear_seen();
        let started = Instant::now();
        let run = self.world.spawn_confirm(extra).wait(seconds);
        let elapsed = started.elapsed();
        let proxies: Vec<&FaultProxy> = std::iter::once(&self.world.staging_proxy)
            .chain(&self.world.proxies)
            .collect();
        let last_tag = destinations
            .iter()
            .map(|d| {
                self.world.proxies[d.mirror]
                    .seen()
                    .iter()
                    .filter(|s| {
                        s.method == "PUT"
                            && s.forwarded
                            && s.status.is_some_and(|c| c < 300)
                            && s.path.contains("/manifests/")
                            && !s.path.contains("/manifests/sha256:")
                    })
                    .map(|s| s.at.saturating_duration_since(started))
                    .max()
            })
            .collect();
        Promotion {
            run,
            elapsed,
            last_tag,
            requests: proxies.iter().map(|p| p.seen().len()).collect(),
            faults: proxies.iter().map(|p| p.faults()).collect(),
        }
    }

    /// Every mirror's fault proxy, as destinations in mirror order.
    pub fn mirrors(&self) -> Vec<Destination> {
        self.world
            .proxies
            .iter()
            .enumerate()
            .map(|(mirror, p)| Destination { host: p.host(), mirror })
            .collect()
    }

    /// Asserts that mirror `mirror` holds every image of the scene under `prefix`, with
    /// its tags pointing at the staging digest and its whole graph present.
    pub async fn assert_delivered(&self, mirror: usize, prefix: &str) {
        let registry: &TestRegistry = &self.world.mirrors[mirror];
        for image in &self.images {
            let repo = format!("{prefix}/{}", image.name);
            let mut want = image.tags.clone();
            want.sort();
            assert_eq!(
                world::assert_complete(registry, &repo).await,
                want,
                "{repo} at mirror {mirror}"
            );
            for tag in &image.tags {
                let (status, _, bytes) = registry.pusher().get_manifest(&repo, tag).await;
                assert_eq!(status, 200, "{repo}:{tag}");
                assert_eq!(super::images::sha256_digest(&bytes), image.digest, "{repo}:{tag}");
            }
        }
    }
}
