//! OCI 1.1 referrers through the registry's own API (`GET /v2/<name>/referrers/<digest>`,
//! and the `OCI-Subject` answer to a manifest PUT), falling back to the tag-schema index
//! of [`crate::registry::referrers`] for registries without it, such as distribution 2.8.
use std::sync::atomic::Ordering;

use reqwest::header::{self, HeaderName};
use reqwest::{Method, StatusCode};

use super::send::{BodyCap, Call, error_body};
use super::{RemoteRegistry, auth};
use crate::digest::Digest;
use crate::registry::referrers::{self, Pushed, Referrer};
use crate::registry::{Error, ManifestRef, RawManifest, media};

/// What the referrers API says about a subject.
enum Native {
    /// The registry keeps the list: here it is (an OCI index).
    Listed(bytes::Bytes),
    /// No referrers API here (404, 405).
    Absent,
}

impl RemoteRegistry {
    pub(super) async fn list_referrers(
        &self,
        repo: &str,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>, Error> {
        let op = format!("list referrers of {repo}@{subject}");
        match self.referrers_api(&op, repo, subject, artifact_type).await? {
            Native::Listed(index) => {
                referrers::listed(&index, artifact_type).map_err(|source| Error::InvalidManifest {
                    registry: self.name.clone(),
                    operation: op,
                    source,
                })
            }
            Native::Absent => {
                // The fallback index is read as a manifest (up to a manifest's cap): hold
                // it to the same cap as the API's answer.
                let cap = self.referrers_cap();
                let within_cap = |index: &RawManifest| {
                    if index.bytes.len() <= cap.bytes {
                        return Ok(());
                    }
                    Err(Error::Limit {
                        registry: self.name.clone(),
                        operation: op.clone(),
                        what: cap.what.to_string(),
                        cap: cap.bytes as u64,
                        flag: cap.flag,
                    })
                };
                referrers::list_from_fallback(self, repo, subject, artifact_type, within_cap).await
            }
        }
    }

    /// `--registry-max-referrers-bytes`, for both ways a referrers list is read.
    fn referrers_cap(&self) -> BodyCap {
        BodyCap {
            bytes: self.limits.referrers_bytes,
            what: "bytes in one referrers list",
            flag: Some("registry-max-referrers-bytes"),
        }
    }

    /// Pushes a referrer and makes it findable: by the registry itself when it keeps the
    /// list (it acknowledges the subject with `OCI-Subject`), else through the fallback
    /// index. A referrer already present is not pushed again; whether the registry keeps
    /// its list is then asked of its referrers API, so that a second call writes nothing.
    pub(super) async fn put_referrer(&self, repo: &str, manifest: &RawManifest) -> Result<(), Error> {
        let pushed = Pushed::read(&self.name, repo, manifest)?;
        let by_digest = ManifestRef::Digest(manifest.digest);
        let registry_keeps_list = if self.head_manifest(repo, &by_digest).await?.is_some() {
            let op = format!("push referrer {repo}@{}", manifest.digest);
            matches!(
                self.referrers_api(&op, repo, &pushed.subject, None).await?,
                Native::Listed(_)
            )
        } else {
            self.put_manifest(repo, &by_digest, manifest).await?
        };
        if registry_keeps_list {
            return Ok(());
        }
        referrers::add_to_fallback_index(self, repo, &pushed).await
    }

    /// `GET /v2/<repo>/referrers/<subject>`, with the `artifactType` filter when given.
    async fn referrers_api(
        &self,
        op: &str,
        repo: &str,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Native, Error> {
        if self.lacks_referrers_api.load(Ordering::Relaxed) {
            return Ok(Native::Absent);
        }
        let mut url = self.repo_url(op, repo, &format!("referrers/{subject}")).await?;
        if let Some(t) = artifact_type {
            url.query_pairs_mut().append_pair("artifactType", t);
        }
        let call = Call::new(op.to_string(), Method::GET, url, vec![auth::repo_scope(repo, false)])
            .header(header::ACCEPT, media::OCI_INDEX)
            .hedgeable();
        let fetched = self.fetch(call, self.referrers_cap()).await?;
        match fetched.status {
            s if s.is_success() => Ok(Native::Listed(fetched.body)),
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => {
                let (_, codes) = error_body(&fetched.body);
                if fetched.status == StatusCode::METHOD_NOT_ALLOWED || codes.is_empty() {
                    self.lacks_referrers_api.store(true, Ordering::Relaxed);
                }
                Ok(Native::Absent)
            }
            s => Err(self.error_for(op, s.as_u16(), &fetched.body)),
        }
    }
}

/// The header a registry with referrers support sets on a manifest PUT with a subject.
pub(super) fn oci_subject_header() -> HeaderName {
    HeaderName::from_static("oci-subject")
}
