//! The scheme router: a manifest's registry name (`host/prefix`, `oci:PATH`) to a backend,
//! one backend per registry host or layout directory.
use crate::sync::lock;
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::{ClientOptions, Error, Registry, RegistryStats, oci_layout, reference, remote};

/// A manifest registry name resolved to a backend: `host[:port]/prefix` (remote) or
/// `oci:PATH` / `oci-layout://PATH` (OCI layout directory). Image names are appended to
/// `prefix` to get repository paths.
#[derive(Debug, Clone)]
pub struct RepoRoot {
    pub registry: Arc<dyn Registry>,
    /// Path prefix inside the registry, without leading or trailing `/` (may be empty).
    pub prefix: String,
}

impl RepoRoot {
    /// The repository path of `image` under this root.
    pub fn repo(&self, image: &str) -> String {
        if self.prefix.is_empty() {
            image.to_string()
        } else {
            format!("{}/{image}", self.prefix)
        }
    }
}

/// Opens registries by manifest name, sharing one backend (one connection pool, one
/// gate) per registry host or layout directory, and one pacer per shared quota.
pub struct Registries {
    options: ClientOptions,
    http: reqwest::Client,
    remotes: Mutex<HashMap<String, Arc<remote::RemoteRegistry>>>,
    layouts: Mutex<HashMap<PathBuf, Arc<dyn Registry>>>,
    quotas: Mutex<HashMap<String, Arc<remote::SharedQuota>>>,
    /// Each host's budget (rate, requests in flight, learned latency), by host. Kept apart
    /// from the backends so that [`Registries::fresh_connections`] can hand them on.
    gates: Mutex<HashMap<String, Arc<remote::Gate>>>,
}

impl fmt::Debug for Registries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registries")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Registries {
    /// Builds the shared HTTP client (reads `ca_file` now, so a bad CA fails early).
    pub fn new(options: ClientOptions) -> Result<Self, Error> {
        let http = remote::build_client(&options.tls())?;
        Ok(Self {
            options,
            http,
            remotes: Mutex::new(HashMap::new()),
            layouts: Mutex::new(HashMap::new()),
            quotas: Mutex::new(HashMap::new()),
            gates: Mutex::new(HashMap::new()),
        })
    }

    /// A client set for reading back what this one wrote: new connections, new tokens,
    /// new backends (nothing this set learned about a repository vouches for what the
    /// registry serves now), but each host's budget handed on. The budget is about the
    /// registry's capacity, which a second client does not change: a new one would start
    /// over at 50 requests/s and 8 in flight and slow-start against a registry whose
    /// capacity is already known, and two budgets for one host would add up past it.
    pub fn fresh_connections(&self) -> Result<Self, Error> {
        let fresh = Self::new(self.options.clone())?;
        *lock(&fresh.quotas) = lock(&self.quotas).clone();
        *lock(&fresh.gates) = lock(&self.gates).clone();
        Ok(fresh)
    }

    /// Resolves a manifest registry name such as
    /// `us-central1-docker.pkg.dev/k8s-artifacts-prod/images/kubernetes` or `oci:./mirror`.
    pub fn open(&self, name: &str) -> Result<RepoRoot, Error> {
        let parsed = reference::RegistryName::parse(name).map_err(|e| Error::InvalidReference {
            reference: name.to_string(),
            message: e.to_string(),
        })?;
        match parsed {
            reference::RegistryName::Remote { host, prefix } => Ok(RepoRoot {
                registry: self.remote(&host)?,
                prefix,
            }),
            reference::RegistryName::Layout { path } => Ok(RepoRoot {
                registry: self.layout(&path)?,
                prefix: String::new(),
            }),
        }
    }

    /// One layout backend per directory name, like one remote backend per host.
    fn layout(&self, path: &std::path::Path) -> Result<Arc<dyn Registry>, Error> {
        let mut layouts = lock(&self.layouts);
        if let Some(l) = layouts.get(path) {
            return Ok(l.clone());
        }
        let backend: Arc<dyn Registry> = Arc::new(oci_layout::open(path)?);
        layouts.insert(path.to_path_buf(), backend.clone());
        Ok(backend)
    }

    /// The remote backend for `host` (`host[:port]`) as its concrete type, the one
    /// [`Registries::open`] hands out for that host. Everything kpromo does goes through
    /// the [`Registry`] trait; this is for what only a remote registry has (`ping`).
    pub fn remote(&self, host: &str) -> Result<Arc<remote::RemoteRegistry>, Error> {
        let mut remotes = lock(&self.remotes);
        if let Some(r) = remotes.get(host) {
            return Ok(r.clone());
        }
        let settings = self.options.for_host(host);
        // Other trust or a client certificate: a client (and connection pool) of its own.
        let http = if settings.own_tls(&self.options) {
            remote::build_client(&remote::Tls {
                ca_file: settings.ca_file.clone(),
                client_certificate: settings.client_certificate.clone(),
                connect_timeout: self.options.connect_timeout,
            })?
        } else {
            self.http.clone()
        };
        let gate = lock(&self.gates)
            .entry(host.to_string())
            .or_insert_with(|| {
                let quota = settings.quota.as_ref().map(|q| {
                    lock(&self.quotas)
                        .entry(q.name.clone())
                        .or_insert_with(|| Arc::new(remote::SharedQuota::new(q)))
                        .clone()
                });
                Arc::new(remote::Gate::new(&settings, quota, self.options.response_timeout))
            })
            .clone();
        let backend = Arc::new(remote::RemoteRegistry::new(host, http, gate, &settings, &self.options)?);
        remotes.insert(host.to_string(), backend.clone());
        Ok(backend)
    }

    /// Counters of every backend opened so far, by registry name.
    pub fn stats(&self) -> Vec<(String, RegistryStats)> {
        let remotes = lock(&self.remotes);
        let layouts = lock(&self.layouts);
        let mut out: Vec<(String, RegistryStats)> = remotes
            .iter()
            .map(|(k, r)| (k.clone(), r.stats()))
            .chain(layouts.values().map(|l| (l.name().to_string(), l.stats())))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_backend_per_host_and_per_layout_directory() {
        let registries = Registries::new(ClientOptions::default()).unwrap();
        let a = registries
            .open("us-central1-docker.pkg.dev/k8s-artifacts-prod/images")
            .unwrap();
        let b = registries.open("us-central1-docker.pkg.dev/other").unwrap();
        assert!(Arc::ptr_eq(&a.registry, &b.registry), "one host, one gate and pool");
        assert_eq!(a.repo("kubernetes/pause"), "k8s-artifacts-prod/images/kubernetes/pause");
        assert_eq!(a.registry.name(), "us-central1-docker.pkg.dev");

        let dir = tempfile::tempdir().unwrap();
        let name = format!("oci:{}", dir.path().display());
        let l1 = registries.open(&name).unwrap();
        let l2 = registries.open(&name).unwrap();
        assert!(Arc::ptr_eq(&l1.registry, &l2.registry));
        assert_eq!(l1.repo("x"), "x");
        assert!(!Arc::ptr_eq(&a.registry, &l1.registry));

        let names: Vec<String> = registries.stats().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(registries.open("not a registry").is_err());
    }

    #[test]
    fn an_unreadable_ca_file_fails_early() {
        let options = ClientOptions {
            ca_file: Some("/nonexistent/kpromo-ca.pem".into()),
            ..ClientOptions::default()
        };
        let err = Registries::new(options).unwrap_err();
        assert!(err.to_string().contains("kpromo-ca.pem"), "{err}");
    }

    /// A CA file that is not what it should be is a CA-file error, not a registry name.
    #[test]
    fn a_bad_ca_file_is_reported_as_a_ca_file_error() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [(&str, &[u8]); 2] = [("empty.pem", b""), ("garbage.pem", b"not a certificate\n")];
        for (file, content) in cases {
            let path = dir.path().join(file);
            std::fs::write(&path, content).unwrap();
            let options = ClientOptions {
                ca_file: Some(path.clone()),
                ..ClientOptions::default()
            };
            let err = Registries::new(options).unwrap_err();
            assert!(matches!(err, Error::CaFile { .. }), "{file}: {err:?}");
            let text = err.to_string();
            assert!(text.starts_with(&format!("CA file {}: ", path.display())), "{text}");
            assert!(!text.contains("registry reference"), "{text}");
        }
        let missing = ClientOptions {
            ca_file: Some(dir.path().join("missing.pem")),
            ..ClientOptions::default()
        };
        let err = Registries::new(missing).unwrap_err().to_string();
        assert!(err.contains("missing.pem: cannot read it"), "{err}");
    }
}
