//! Many concurrent writers (through two backends) into one repository of one layout: every upload lands,
//! `index.json` stays valid and complete, and no temp file is left behind.
use std::sync::Arc;

use kpromo::registry::oci_layout;
use kpromo::registry::{ManifestRef, Registry};

use crate::layout::{ToRaw, files, push_image, tag};
use crate::support::images::{Blob, Image};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pushes_keep_index_json_complete() {
    const IMAGES: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let reg = Arc::new(oci_layout::open(&dir.path().join("reg")).unwrap());
    // A second backend on the same directory (as two spellings of one registry name in
    // a manifest would open) shares the index lock.
    let twin = Arc::new(oci_layout::open(&dir.path().join("./reg")).unwrap());
    // One shared layer every task uploads at the same time (same-blob races), plus one
    // layer of its own per image.
    let shared = Blob::tar("shared", b"shared base");
    let images: Vec<_> = (0..IMAGES)
        .map(|i| {
            Image::for_layout(
                "amd64",
                vec![shared.clone(), Blob::tar("own", format!("{i}").as_bytes())],
                &i.to_string(),
            )
        })
        .collect();
    let tasks: Vec<_> = images
        .iter()
        .enumerate()
        .map(|(i, img)| {
            let reg = if i % 2 == 0 { reg.clone() } else { twin.clone() };
            let img = img.clone();
            tokio::spawn(async move {
                push_image(reg.as_ref(), "team/app", &img, &[&format!("t{i}"), &format!("u{i}")]).await;
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }

    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(reg.root().join("team/app/index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"].as_array().unwrap().len(),
        2 * IMAGES,
        "two tags per image, no untagged leftovers"
    );
    let mut expected: Vec<String> = (0..IMAGES).flat_map(|i| [format!("t{i}"), format!("u{i}")]).collect();
    expected.sort();
    assert_eq!(reg.list_tags("team/app").await.unwrap().unwrap().tags, expected);
    for (i, img) in images.iter().enumerate() {
        let got = reg.get_manifest("team/app", &tag(&format!("t{i}"))).await.unwrap();
        assert_eq!(got.as_ref(), Some(&img.raw()));
        let by_digest = reg
            .head_manifest("team/app", &ManifestRef::Digest(img.raw().digest))
            .await
            .unwrap();
        assert_eq!(by_digest, Some(img.raw().descriptor()));
    }
    let leftovers: Vec<_> = files(dir.path())
        .into_iter()
        .filter(|f| f.contains(".kpromo-tmp-"))
        .collect();
    assert_eq!(leftovers, Vec::<String>::new());
    // config + own layer per image, one shared layer, one manifest per image.
    let blobs = files(&reg.root().join("team/app/blobs/sha256"));
    assert_eq!(blobs.len(), 3 * IMAGES + 1);
}
