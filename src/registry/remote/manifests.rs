//! Manifests: HEAD, digest-verified GET, and PUT by tag or digest.
use std::time::Duration;

use reqwest::header;
use reqwest::{Method, StatusCode};
use url::Url;

use super::send::{BodyCap, Call, Payload, header_str};
use super::{RemoteRegistry, auth, referrers};
use crate::digest::Digest;
use crate::registry::media::{self, ManifestError, MediaType};
use crate::registry::{Descriptor, Error, ManifestRef, OciCode, RawManifest};

/// Largest manifest accepted (distribution caps PUT bodies at 4 MiB; leave room).
const MANIFEST_CAP: BodyCap = BodyCap {
    bytes: 16 << 20,
    what: "bytes in one manifest",
    flag: None,
};
/// Extra attempts of a manifest PUT refused with `MANIFEST_BLOB_UNKNOWN` (see its use).
const MANIFEST_BLOB_UNKNOWN_RETRIES: usize = 2;

impl RemoteRegistry {
    pub(super) async fn head_manifest(&self, repo: &str, reference: &ManifestRef) -> Result<Option<Descriptor>, Error> {
        let op = format!("HEAD manifest {repo}{reference}");
        let call = Call::new(
            op.clone(),
            Method::HEAD,
            self.manifest_url(&op, repo, reference).await?,
            vec![auth::repo_scope(repo, false)],
        )
        .header(header::ACCEPT, media::ACCEPT_MANIFESTS)
        .hedgeable();
        let reply = self.send(call).await?;
        match reply.status() {
            StatusCode::NOT_FOUND => return Ok(None),
            s if s.is_success() => {}
            _ => return Err(self.failure(&op, reply).await),
        }
        let header_digest = self.header_digest(&op, reply.response.headers())?;
        let size = reply.header(header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
        let media_type = reply.header(header::CONTENT_TYPE).map(clean_media_type);
        if let (Some(digest), Some(size), Some(media_type)) = (header_digest, size, media_type.clone()) {
            if let ManifestRef::Digest(want) = reference
                && *want != digest
            {
                return Err(self.mismatch(&op, *want, digest));
            }
            return Ok(Some(Descriptor {
                digest,
                media_type,
                size,
            }));
        }
        // Some registries omit the digest or length on HEAD: fetch the bytes instead.
        drop(reply);
        Ok(self.get_manifest(repo, reference).await?.map(|m| m.descriptor()))
    }

    async fn manifest_url(&self, op: &str, repo: &str, reference: &ManifestRef) -> Result<Url, Error> {
        let r = match reference {
            ManifestRef::Tag(t) if !crate::registry::reference::is_valid_tag(t) => {
                return Err(Error::InvalidName {
                    registry: self.name.clone(),
                    operation: op.to_string(),
                    what: "tag",
                    name: t.clone(),
                    message: "a tag is 1 to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'".into(),
                });
            }
            ManifestRef::Tag(t) => t.clone(),
            ManifestRef::Digest(d) => d.to_string(),
        };
        self.repo_url(op, repo, &format!("manifests/{r}")).await
    }

    pub(super) async fn get_manifest(&self, repo: &str, reference: &ManifestRef) -> Result<Option<RawManifest>, Error> {
        let op = format!("GET manifest {repo}{reference}");
        let call = Call::new(
            op.clone(),
            Method::GET,
            self.manifest_url(&op, repo, reference).await?,
            vec![auth::repo_scope(repo, false)],
        )
        .header(header::ACCEPT, media::ACCEPT_MANIFESTS)
        .hedgeable();
        let fetched = self.fetch(call, MANIFEST_CAP).await?;
        match fetched.status {
            StatusCode::NOT_FOUND => return Ok(None),
            s if s.is_success() => {}
            s => return Err(self.error_for(&op, s.as_u16(), &fetched.body)),
        }
        let header_digest = self.header_digest(&op, &fetched.headers)?;
        let content_type = header_str(&fetched.headers, header::CONTENT_TYPE).map(clean_media_type);
        if content_type.as_ref().is_some_and(MediaType::is_schema1) {
            return Err(self.protocol(&op, ManifestError::Schema1.to_string()));
        }
        let bytes = fetched.body;
        let actual = Digest::of(&bytes);
        if let ManifestRef::Digest(want) = reference
            && *want != actual
        {
            return Err(self.mismatch(&op, *want, actual));
        }
        if let Some(said) = header_digest
            && said != actual
        {
            return Err(self.mismatch(&op, said, actual));
        }
        let (media_type, contradicted) = media::served_media_type(content_type.as_ref(), &bytes).map_err(|e| {
            let sent = content_type.map_or_else(|| "no Content-Type".to_string(), |ct| format!("Content-Type {ct}"));
            self.protocol(&op, format!("the registry sent {sent}, and {e}"))
        })?;
        if let Some(header) = contradicted {
            tracing::warn!(
                registry = %self.name,
                %op,
                "the registry sent Content-Type {header} but the manifest is {media_type}: using the manifest's own type"
            );
        }
        Ok(Some(RawManifest {
            media_type,
            bytes,
            digest: actual,
        }))
    }

    /// PUTs a manifest; returns whether the registry acknowledged its `subject`
    /// (`OCI-Subject`, i.e. it maintains the referrers list itself).
    pub(super) async fn put_manifest(
        &self,
        repo: &str,
        reference: &ManifestRef,
        manifest: &RawManifest,
    ) -> Result<bool, Error> {
        let op = format!("PUT manifest {repo}{reference}");
        let actual = Digest::of(&manifest.bytes);
        if actual != manifest.digest {
            return Err(self.mismatch(&op, manifest.digest, actual));
        }
        if let ManifestRef::Digest(want) = reference
            && *want != actual
        {
            return Err(self.mismatch(&op, *want, actual));
        }
        let url = self.manifest_url(&op, repo, reference).await?;
        let mut blob_unknown_retries = 0;
        let reply = loop {
            let call = Call::new(op.clone(), Method::PUT, url.clone(), vec![auth::repo_scope(repo, true)])
                .header(header::CONTENT_TYPE, manifest.media_type.as_str())
                .body(Payload::Bytes(manifest.bytes.clone()))
                .hedgeable();
            let reply = self.send(call).await?;
            if reply.status().is_success() {
                break reply;
            }
            let error = self.failure(&op, reply).await;
            // Distribution 2.8 links blobs into a repository non-atomically: right after
            // concurrent uploads of one blob, a manifest PUT can briefly see it missing.
            let racy =
                matches!(&error, Error::Status { status: 400, .. }) && error.has_code(OciCode::ManifestBlobUnknown);
            if !racy || blob_unknown_retries == MANIFEST_BLOB_UNKNOWN_RETRIES {
                return Err(error);
            }
            blob_unknown_retries += 1;
            self.retry_sleep(Duration::from_millis(500 * blob_unknown_retries as u64), false)
                .await;
        };
        // `Location` is optional in practice (ECR omits it): never rely on it.
        if let Some(said) = self.header_digest(&op, reply.response.headers())?
            && said != actual
        {
            return Err(self.mismatch(&op, actual, said));
        }
        Ok(reply.response.headers().contains_key(referrers::oci_subject_header()))
    }
}

impl RemoteRegistry {
    /// DELETE /v2/<name>/manifests/<digest>: 202 deleted, 404 not there. Distribution
    /// answers 405 UNSUPPORTED unless deletes are enabled in its storage settings.
    pub(super) async fn delete_manifest(&self, repo: &str, digest: &Digest) -> Result<bool, Error> {
        let reference = ManifestRef::Digest(*digest);
        let op = format!("DELETE manifest {repo}{reference}");
        let call = Call::new(
            op.clone(),
            Method::DELETE,
            self.manifest_url(&op, repo, &reference).await?,
            vec![auth::repo_delete_scope(repo)],
        );
        let reply = self.send(call).await?;
        match reply.status() {
            StatusCode::NOT_FOUND => Ok(false),
            s if s.is_success() => Ok(true),
            _ => Err(self.failure(&op, reply).await),
        }
    }
}

/// `application/json; charset=utf-8` -> `application/json`.
fn clean_media_type(value: &str) -> MediaType {
    value.split(';').next().unwrap_or(value).trim().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_parameters_are_dropped() {
        assert_eq!(clean_media_type("application/json; charset=utf-8"), "application/json");
    }
}
