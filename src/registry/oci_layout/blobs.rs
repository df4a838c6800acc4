//! Blobs: HEAD by file size, verified streaming reads, atomic uploads, and mounts as
//! hard links between repositories of one layout.
use super::OciLayout;
use super::store;
use crate::digest::Digest;
use crate::registry::{BlobStream, Error, MountOutcome};

impl OciLayout {
    pub(super) async fn blob_size(&self, repo: &str, digest: &Digest) -> Result<Option<u64>, Error> {
        let op = self.op(format!("head blob {repo}@{digest}"));
        let dir = self.repo_dir(&op, repo)?;
        let size = store::file_size(&Self::blob_path(&dir, digest))
            .await
            .map_err(|e| op.io(e))?;
        self.count(if size.is_some() { "HEAD 200" } else { "HEAD 404" }, 0, 0);
        Ok(size)
    }

    pub(super) async fn get_blob(&self, repo: &str, digest: &Digest) -> Result<BlobStream, Error> {
        let op = self.op(format!("get blob {repo}@{digest}"));
        let dir = self.repo_dir(&op, repo)?;
        let result = store::read_verified(op, Self::blob_path(&dir, digest), *digest, self.stats.clone()).await;
        self.count(if result.is_ok() { "GET 200" } else { "GET 404" }, 0, 0);
        result
    }

    pub(super) async fn put_blob(&self, repo: &str, digest: &Digest, size: u64, body: BlobStream) -> Result<(), Error> {
        let op = self.op(format!("put blob {repo}@{digest}"));
        let dir = self.repo_dir(&op, repo)?;
        self.ensure_layout(&op, &dir).await?;
        store::upload(&op, Self::blob_path(&dir, digest), *digest, size, body, &self.stats).await?;
        self.count("PUT 201", 0, 0);
        Ok(())
    }

    pub(super) async fn mount_blob(&self, repo: &str, digest: &Digest, from_repo: &str) -> Result<MountOutcome, Error> {
        let op = self.op(format!("mount blob {repo}@{digest} from {from_repo}"));
        let dir = self.repo_dir(&op, repo)?;
        let from = Self::blob_path(&self.repo_dir(&op, from_repo)?, digest);
        let Some(size) = store::file_size(&from).await.map_err(|e| op.io(e))? else {
            self.count("POST 202", 0, 0);
            return Ok(MountOutcome::NotMounted);
        };
        self.ensure_layout(&op, &dir).await?;
        let to = Self::blob_path(&dir, digest);
        let (link_from, link_to) = (from.clone(), to.clone());
        if !op.blocking(move || store::hard_link(&link_from, &link_to)).await? {
            // No hard links here (another filesystem below the root, or none supported):
            // copy through the same verified path as any upload.
            let body = store::read_verified(op.clone(), from, *digest, self.stats.clone()).await?;
            store::upload(&op, to, *digest, size, body, &self.stats).await?;
        }
        self.count("POST 201", 0, 0);
        Ok(MountOutcome::Mounted)
    }
}
