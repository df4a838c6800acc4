//! OCI 1.1 referrers: the `/v2/<name>/referrers/<digest>` API, and the tag-schema
//! fallback (an OCI index tagged `sha256-<hex>` listing the referrers) for registries
//! without it, such as distribution 2.8. Both reading and writing use the fallback when
//! the registry shows no support.
use std::collections::BTreeMap;

use reqwest::header::{self, HeaderName};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::send::Call;
use super::{PAGE_LIMIT, RemoteRegistry, auth};
use crate::digest::Digest;
use crate::registry::media::{self, ContentDescriptor, ManifestLinks};
use crate::registry::{Error, ManifestRef, MediaType, RawManifest};

/// One manifest that names a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrer {
    pub digest: Digest,
    pub media_type: MediaType,
    pub size: u64,
    pub artifact_type: Option<MediaType>,
    pub annotations: BTreeMap<String, String>,
}

impl From<ContentDescriptor> for Referrer {
    fn from(d: ContentDescriptor) -> Self {
        Self {
            digest: d.digest,
            media_type: d.media_type,
            size: d.size,
            artifact_type: d.artifact_type,
            annotations: d.annotations.unwrap_or_default(),
        }
    }
}

/// The fallback tag for a subject: `sha256-<hex>`.
pub(crate) fn fallback_tag(subject: &Digest) -> String {
    format!("sha256-{}", subject.hex())
}

impl RemoteRegistry {
    /// Referrers of `subject` in `repo`, optionally only those of `artifact_type`.
    pub async fn list_referrers(
        &self,
        repo: &str,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>, Error> {
        let op = format!("list referrers of {repo}@{subject}");
        let mut url = self.url(&format!("/v2/{repo}/referrers/{subject}")).await?;
        if let Some(t) = artifact_type {
            url.query_pairs_mut().append_pair("artifactType", t);
        }
        let call = Call::new(op.clone(), Method::GET, url, vec![auth::repo_scope(repo, false)])
            .header(header::ACCEPT, media::OCI_INDEX);
        let fetched = self.fetch(call, PAGE_LIMIT).await?;
        let index = match fetched.status {
            s if s.is_success() => Some(fetched.body),
            // No referrers API: read the fallback tag instead.
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => {
                let tag = ManifestRef::Tag(fallback_tag(subject));
                self.get_manifest(repo, &tag).await?.map(|m| m.bytes)
            }
            s => return Err(self.error_for(&op, s.as_u16(), &fetched.body)),
        };
        let Some(index) = index else {
            return Ok(Vec::new());
        };
        let links = ManifestLinks::parse(&index).map_err(|e| self.protocol(&op, format!("referrers index: {e}")))?;
        // Filter here too: registries may ignore the filter (it is reported in a header
        // that the fallback path does not have).
        Ok(links
            .manifests
            .into_iter()
            .map(Referrer::from)
            .filter(|r| artifact_type.is_none_or(|t| r.artifact_type.as_ref().is_some_and(|a| a == t)))
            .collect())
    }

    /// Pushes a manifest that has a `subject`, and makes it findable as a referrer: by the
    /// registry itself when it supports the API (it answers with `OCI-Subject`), else by
    /// adding it to the `sha256-<hex>` fallback index.
    pub async fn put_referrer(&self, repo: &str, manifest: &RawManifest) -> Result<(), Error> {
        let op = format!("push referrer {repo}@{}", manifest.digest);
        let links =
            ManifestLinks::parse(&manifest.bytes).map_err(|e| self.protocol(&op, format!("not a manifest: {e}")))?;
        let subject = links
            .subject
            .as_ref()
            .ok_or_else(|| self.protocol(&op, "manifest has no subject".into()))?
            .digest;
        let acknowledged = self
            .put_manifest(repo, &ManifestRef::Digest(manifest.digest), manifest)
            .await?;
        if acknowledged {
            return Ok(());
        }
        // Read-modify-write of the fallback index: one writer per subject in this process
        // (another process can still race; the registry offers no compare-and-swap).
        let _guard = self.referrer_locks.lock((repo.to_string(), subject)).await;
        let tag = ManifestRef::Tag(fallback_tag(&subject));
        let mut index: Value = match self.get_manifest(repo, &tag).await? {
            Some(existing) => serde_json::from_slice(&existing.bytes)
                .map_err(|e| self.protocol(&op, format!("fallback index {tag}: {e}")))?,
            None => json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": []}),
        };
        let entries = index
            .get_mut("manifests")
            .and_then(Value::as_array_mut)
            .ok_or_else(|| self.protocol(&op, format!("fallback index {tag} has no manifests list")))?;
        let digest = manifest.digest.to_string();
        if entries
            .iter()
            .any(|e| e.get("digest").and_then(Value::as_str) == Some(digest.as_str()))
        {
            return Ok(());
        }
        let mut entry = json!({
            "mediaType": manifest.media_type,
            "digest": digest,
            "size": manifest.bytes.len(),
        });
        // The spec's artifact type: the manifest's own, else its config's media type.
        let artifact_type = links
            .artifact_type
            .clone()
            .or_else(|| links.config.as_ref().map(|c| c.media_type.clone()));
        if let Some(t) = artifact_type {
            entry["artifactType"] = Value::String(t.to_string());
        }
        if let Some(annotations) = serde_json::from_slice::<Value>(&manifest.bytes)
            .ok()
            .and_then(|v| v.get("annotations").cloned())
        {
            entry["annotations"] = annotations;
        }
        entries.push(entry);
        // This index is ours to (re)write: it is the mutable fallback list, not content
        // being copied.
        let bytes = serde_json::to_vec(&index).map_err(|e| self.protocol(&op, e.to_string()))?;
        let updated = RawManifest::new(media::OCI_INDEX, bytes.into());
        self.put_manifest(repo, &tag, &updated).await.map(|_| ())
    }
}

/// The header a registry with referrers support sets on a manifest PUT with a subject.
pub(crate) fn oci_subject_header() -> HeaderName {
    HeaderName::from_static("oci-subject")
}
