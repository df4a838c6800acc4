//! Every `Registry` operation of the remote client against real CNCF distribution 2.8, in
//! each variant a user meets: plain HTTP, htpasswd Basic auth, token auth, and TLS with a
//! private CA. Fixtures are pushed by the harness's own client; results are checked with
//! skopeo, so the client under test never grades its own work.
use kpromo::registry::{ManifestRef, MountOutcome, RawManifest, Registry};

use crate::support;
use crate::support::client::{
    copy_blob, digest, login_options, login_options_as, open, options_for, read_blob, stream_of,
};
use crate::support::images::{Blob, Format, Image, Index};
use crate::support::{FaultProxy, RegistryOptions, TestRegistry, within};

fn tag(t: &str) -> ManifestRef {
    ManifestRef::Tag(t.to_string())
}

fn by_digest(d: &str) -> ManifestRef {
    ManifestRef::Digest(digest(d))
}

/// Copies an index, its children and their blobs with the client alone, children first,
/// reading every manifest through `get_manifest` (never re-serialised).
async fn copy_index_with_client(reg: &dyn Registry, from: &str, to: &str, index: &Index, tags: &[&str]) {
    for child in &index.children {
        for blob in child.blobs() {
            let d = digest(&blob.digest);
            if reg.blob_size(to, &d).await.expect("blob HEAD").is_none() {
                copy_blob(reg, from, reg, to, &d, blob.size).await.expect("copy blob");
            }
        }
        let raw = reg
            .get_manifest(from, &by_digest(&child.digest))
            .await
            .expect("GET child")
            .expect("child exists");
        reg.put_manifest(to, &by_digest(&child.digest), &raw)
            .await
            .expect("PUT child by digest");
    }
    let raw = reg
        .get_manifest(from, &by_digest(&index.digest))
        .await
        .expect("GET index")
        .expect("index exists");
    reg.put_manifest(to, &by_digest(&index.digest), &raw)
        .await
        .expect("PUT index by digest");
    for t in tags {
        reg.put_manifest(to, &tag(t), &raw).await.expect("PUT index by tag");
    }
}

async fn every_operation(options: RegistryOptions) {
    let registry = TestRegistry::start(options);
    let pusher = registry.pusher();
    let base = Blob::random(100, 256 * 1024);
    let oci = Index::multi_arch(Format::Oci, 1, &["amd64", "arm64/v8", "ppc64le"], Some(&base));
    let docker = Index::multi_arch(Format::Docker, 2, &["amd64", "arm64/v8"], Some(&base));
    let single = Image::simple(Format::Docker, 3);
    within(60, "push fixtures", async {
        pusher.push_index("src/oci", &oci, &["v1", "latest"]).await;
        pusher.push_index("src/docker", &docker, &["v2"]).await;
        pusher.push_image("src/single", &single, &["v3", "v3.0"]).await;
    })
    .await;

    let (_registries, root) = open(&registry.host(), login_options(&registry));
    let reg = root.registry.as_ref();
    within(120, "client operations", async {
        // Tags and catalog.
        let mut tags = reg
            .list_tags("src/oci")
            .await
            .expect("tags list")
            .expect("repo exists")
            .tags;
        tags.sort();
        assert_eq!(tags, ["latest", "v1"]);
        assert_eq!(reg.list_tags("src/absent").await.expect("tags of missing repo"), None);
        let catalog = reg.catalog().await.expect("catalog");
        for repo in ["src/oci", "src/docker", "src/single"] {
            assert!(
                catalog.iter().any(|r| r == repo),
                "{repo} missing from catalog {catalog:?}"
            );
        }

        // Manifest HEAD and GET by tag and by digest: exact digest, type, size and bytes.
        // The OCI index needs an exact Accept, the Docker list would come back rewritten
        // to schema 1 without one: both must arrive byte-exact.
        let cases = [
            ("src/oci", "v1", &oci.digest, oci.media_type(), &oci.manifest),
            (
                "src/docker",
                "v2",
                &docker.digest,
                docker.media_type(),
                &docker.manifest,
            ),
            (
                "src/single",
                "v3",
                &single.digest,
                single.media_type(),
                &single.manifest,
            ),
            (
                "src/oci",
                "",
                &oci.children[2].digest,
                oci.children[2].media_type(),
                &oci.children[2].manifest,
            ),
        ];
        for (repo, t, d, media_type, bytes) in cases {
            let mut refs = vec![by_digest(d)];
            if !t.is_empty() {
                refs.push(tag(t));
            }
            for reference in refs {
                let head = reg
                    .head_manifest(repo, &reference)
                    .await
                    .expect("HEAD manifest")
                    .expect("manifest exists");
                assert_eq!(
                    (head.digest.to_string().as_str(), head.media_type.as_str(), head.size),
                    (d.as_str(), media_type, bytes.len() as u64),
                    "HEAD {repo}{reference}"
                );
                let raw = reg
                    .get_manifest(repo, &reference)
                    .await
                    .expect("GET manifest")
                    .expect("manifest exists");
                assert_eq!(&raw.bytes, bytes, "GET {repo}{reference} must be byte-exact");
                assert_eq!(
                    (raw.digest.to_string().as_str(), raw.media_type.as_str()),
                    (d.as_str(), media_type)
                );
            }
        }
        assert_eq!(
            reg.head_manifest("src/oci", &tag("absent"))
                .await
                .expect("HEAD missing tag"),
            None
        );
        assert_eq!(
            reg.get_manifest("src/oci", &tag("absent"))
                .await
                .expect("GET missing tag"),
            None
        );
        assert_eq!(
            reg.head_manifest("src/absent", &tag("v1"))
                .await
                .expect("HEAD in missing repo"),
            None
        );

        // Blobs: HEAD, streamed GET.
        assert_eq!(
            reg.blob_size("src/oci", &digest(&base.digest))
                .await
                .expect("blob HEAD"),
            Some(base.size)
        );
        let absent = Blob::random(999, 10);
        assert_eq!(
            reg.blob_size("src/oci", &digest(&absent.digest))
                .await
                .expect("blob HEAD absent"),
            None
        );
        assert_eq!(
            read_blob(reg, "src/oci", &digest(&base.digest))
                .await
                .expect("GET blob"),
            base.to_vec()
        );

        // Writes: blob uploads and manifest PUTs by digest and tag, children first.
        copy_index_with_client(reg, "src/oci", "dst/oci", &oci, &["v1"]).await;
        copy_index_with_client(reg, "src/docker", "dst/docker", &docker, &["v2", "stable"]).await;
        let fresh = Blob::random(555, 70_000);
        reg.put_blob(
            "dst/fresh",
            &digest(&fresh.digest),
            fresh.size,
            stream_of(fresh.bytes()),
        )
        .await
        .expect("upload from memory");
        assert!(
            pusher.has_blob("dst/fresh", &fresh.digest).await,
            "uploaded blob visible to another client"
        );
    })
    .await;

    // Checked by skopeo: byte-exact copies, every tag, tagless children present.
    let creds = registry.credentials();
    let at = |reference: &str| support::skopeo::digest_of(&format!("{}/{reference}", registry.host()), creds);
    assert_eq!(at("dst/oci:v1"), Some(oci.digest.clone()));
    assert_eq!(at("dst/docker:v2"), Some(docker.digest.clone()));
    assert_eq!(at("dst/docker:stable"), Some(docker.digest.clone()));
    for child in oci.children.iter().chain(&docker.children) {
        let repo = if child.format == Format::Oci {
            "dst/oci"
        } else {
            "dst/docker"
        };
        assert_eq!(at(&format!("{repo}@{}", child.digest)), Some(child.digest.clone()));
    }
    assert_eq!(registry.skopeo_tags("dst/docker"), ["stable", "v2"]);

    let stats = reg.stats();
    assert!(
        stats.requests.keys().any(|k| k.starts_with("PUT 201")),
        "PUTs counted: {stats:?}"
    );
    assert!(stats.bytes_written >= base.size, "bytes written counted: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_plain_http() {
    every_operation(RegistryOptions::plain()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_basic_auth() {
    every_operation(RegistryOptions::basic()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_token_auth() {
    every_operation(RegistryOptions::token()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_tls_private_ca() {
    every_operation(RegistryOptions::tls()).await;
}

/// Cross-repository mount: 201 when the source repository has the blob (nothing uploaded),
/// 202 when it does not, which opens an upload session the client must use or drop; the
/// follow-up upload must still work. Seen through the proxy to prove which status came back.
async fn mount_paths(options: RegistryOptions) {
    let registry = TestRegistry::start(options);
    let image = Image::simple(Format::Oci, 31);
    registry.pusher().push_image("team/src", &image, &["v1"]).await;
    let proxy = FaultProxy::start(registry.port());
    let (_registries, root) = open(&proxy.host(), login_options_as(&registry, &proxy.host()));
    let reg = root.registry.as_ref();
    let layer = &image.layers[0];
    let unknown = Blob::random(32, 9_000);
    within(60, "mounts", async {
        let outcome = reg
            .mount_blob("team/dst", &digest(&layer.digest), "team/src")
            .await
            .expect("mount");
        assert_eq!(outcome, MountOutcome::Mounted);
        assert_eq!(
            reg.blob_size("team/dst", &digest(&layer.digest)).await.expect("HEAD"),
            Some(layer.size)
        );

        let outcome = reg
            .mount_blob("team/other", &digest(&unknown.digest), "team/src")
            .await
            .expect("refused mount");
        assert_eq!(outcome, MountOutcome::NotMounted);
        reg.put_blob(
            "team/other",
            &digest(&unknown.digest),
            unknown.size,
            stream_of(unknown.bytes()),
        )
        .await
        .expect("upload after a refused mount");
        let raw = RawManifest::new(image.media_type(), image.manifest.clone());
        for blob in image.blobs() {
            if reg
                .mount_blob("team/other", &digest(&blob.digest), "team/src")
                .await
                .expect("mount")
                == MountOutcome::NotMounted
            {
                panic!("blob {} of team/src was not mounted", blob.digest);
            }
        }
        reg.put_manifest("team/other", &tag("v1"), &raw)
            .await
            .expect("PUT manifest over mounted blobs");
    })
    .await;
    let mounts: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.method == "POST" && s.query.as_deref().unwrap_or("").contains("mount="))
        .collect();
    let statuses: Vec<_> = mounts.iter().map(|s| (s.path.as_str(), s.status)).collect();
    assert!(
        statuses.contains(&("/v2/team/dst/blobs/uploads/", Some(201))),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&("/v2/team/other/blobs/uploads/", Some(202))),
        "{statuses:?}"
    );
    assert_eq!(
        proxy.count("GET", "^/v2/team/src/blobs/"),
        0,
        "a mount never reads the blob"
    );
    assert!(registry.pusher().has_blob("team/other", &unknown.digest).await);
    assert_eq!(
        support::skopeo::digest_of(&format!("{}/team/other:v1", registry.host()), registry.credentials()),
        Some(image.digest.clone())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mount_201_and_202_plain() {
    mount_paths(RegistryOptions::plain()).await;
}

/// With token auth the mount needs one token scoped to both repositories.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mount_201_and_202_token_auth() {
    mount_paths(RegistryOptions::token()).await;
}

/// Distribution races on concurrent uploads of one blob to one repository (sporadic 500s,
/// "blob unknown"): the client must still land every upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uploads_of_one_blob_all_succeed() {
    let registry = TestRegistry::start(RegistryOptions::plain());
    let (_registries, root) = open(&registry.host(), options_for(&registry));
    let blob = Blob::random(91, 2 << 20);
    let uploads = (0..8).map(|_| {
        let (reg, blob) = (root.registry.clone(), blob.clone());
        tokio::spawn(async move {
            reg.put_blob("race/same", &digest(&blob.digest), blob.size, stream_of(blob.bytes()))
                .await
        })
    });
    for result in within(120, "8 concurrent uploads", futures_util::future::join_all(uploads)).await {
        result.expect("task").expect("every concurrent upload succeeds");
    }
    assert!(registry.pusher().has_blob("race/same", &blob.digest).await);
}

/// An index whose children are missing is refused by the registry: a clear, bounded error
/// naming the registry, and no tag appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_without_its_children_is_refused() {
    let registry = TestRegistry::start(RegistryOptions::plain());
    let (_registries, root) = open(&registry.host(), options_for(&registry));
    let index = Index::multi_arch(Format::Oci, 92, &["amd64", "arm64"], None);
    let raw = RawManifest::new(index.media_type(), index.manifest.clone());
    let error = within(
        120,
        "PUT an orphan index",
        root.registry.put_manifest("orphan", &tag("v1"), &raw),
    )
    .await
    .expect_err("distribution refuses an index with missing children");
    assert!(
        error.to_string().contains(&registry.host()),
        "names the registry: {error}"
    );
    assert_eq!(registry.skopeo_raw("orphan:v1"), None, "nothing half-written");
}
