//! `--registry-config FILE`: per-host registry settings in YAML (`docs/registries.md`),
//! loaded strictly with positions the way manifests are: an unknown key or a bad value is
//! `file:line:col: message` and exit 2, before anything is read from a registry.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::manifest::Problem;
use crate::manifest::yaml::{self, position};
use crate::registry::remote::{Budget, ClientCertificate, HostPattern, HostRule, Quota};

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    hosts: Vec<Spanned<RawHost>>,
    /// Quota name → budget (`80/s`, `4800/min`).
    #[serde(default)]
    quotas: BTreeMap<String, Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawHost {
    host: Spanned<String>,
    rate_limit: Option<Spanned<u32>>,
    burst: Option<Spanned<u32>>,
    max_concurrency: Option<Spanned<u32>>,
    quota: Option<Spanned<String>>,
    insecure: Option<bool>,
    ca_file: Option<Spanned<PathBuf>>,
    client_certificate: Option<Spanned<PathBuf>>,
    client_key: Option<Spanned<PathBuf>>,
}

/// The settings file's host rules (in file order) and its named quotas.
#[derive(Debug, Default, PartialEq)]
pub(super) struct RegistryConfig {
    pub hosts: Vec<HostRule>,
    pub quotas: Vec<Quota>,
}

/// Reads and checks `path`. Relative file paths inside it are relative to its directory.
pub(super) fn load(path: &Path) -> Result<RegistryConfig, Problem> {
    let text = yaml::read_text(path)?;
    let raw: RawConfig = yaml::parse(path, &text)?.unwrap_or_default();
    let base = path.parent().unwrap_or(Path::new("."));
    let problem = |at: crate::manifest::Position, message: String| Problem::at(path, at, message);

    let mut quotas = Vec::new();
    for (name, budget) in &raw.quotas {
        let parsed: Budget = budget.value.parse().map_err(|e| problem(position(budget), e))?;
        quotas.push(Quota {
            name: name.clone(),
            budget: parsed,
            hosts: None,
        });
    }

    let mut hosts = Vec::new();
    for entry in raw.hosts {
        let at = position(&entry);
        let raw = entry.value;
        let pattern: HostPattern = raw.host.value.parse().map_err(|e| problem(position(&raw.host), e))?;
        let positive = |value: &Option<Spanned<u32>>, key: &str| -> Result<Option<u32>, Problem> {
            match value {
                Some(v) if v.value == 0 => Err(problem(position(v), format!("{key} must be at least 1"))),
                Some(v) => Ok(Some(v.value)),
                None => Ok(None),
            }
        };
        let mut rule = HostRule::new(pattern);
        rule.rate_limit = positive(&raw.rate_limit, "rate-limit")?;
        rule.burst = positive(&raw.burst, "burst")?;
        rule.max_concurrency = positive(&raw.max_concurrency, "max-concurrency")?.map(|n| n as usize);
        if let Some(quota) = &raw.quota {
            if !quotas.iter().any(|q| q.name == quota.value) {
                return Err(problem(
                    position(quota),
                    format!("no quota named {:?} under quotas:", quota.value),
                ));
            }
            rule.quota = Some(quota.value.clone());
        }
        rule.insecure = raw.insecure;
        let file = |p: &Spanned<PathBuf>| base.join(&p.value);
        rule.ca_file = raw.ca_file.as_ref().map(file);
        rule.client_certificate = match (&raw.client_certificate, &raw.client_key) {
            (Some(certificate), Some(key)) => Some(ClientCertificate {
                certificate: file(certificate),
                key: file(key),
            }),
            (None, None) => None,
            (Some(_), None) | (None, Some(_)) => {
                return Err(problem(
                    at,
                    "client-certificate and client-key go together: set both or neither".into(),
                ));
            }
        };
        hosts.push(rule);
    }
    Ok(RegistryConfig { hosts, quotas })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<RegistryConfig, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registries.yaml");
        std::fs::write(&path, text).unwrap();
        load(&path).map_err(|p| {
            // Positions only: the temporary directory differs per run.
            let pos = p.pos.map(|p| format!("{}:{}", p.line, p.column)).unwrap_or_default();
            format!("{pos}: {}", p.message)
        })
    }

    #[test]
    fn hosts_and_quotas_load_in_order() {
        let config = load_text(
            "hosts:\n\
             - host: eu-docker.pkg.dev\n  max-concurrency: 4\n\
             - host: '*-docker.pkg.dev'\n  rate-limit: 200\n  burst: 8\n  quota: ar\n\
             - host: registry.internal:5000\n  insecure: true\n  ca-file: ca.pem\n  client-certificate: c.pem\n  client-key: k.pem\n\
             quotas:\n  ar: 4800/min\n",
        )
        .unwrap();
        assert_eq!(config.hosts.len(), 3);
        assert_eq!(config.hosts[0].max_concurrency, Some(4));
        let ar = &config.hosts[1];
        assert_eq!(
            (ar.rate_limit, ar.burst, ar.quota.as_deref()),
            (Some(200), Some(8), Some("ar"))
        );
        assert!(ar.hosts.matches("us-docker.pkg.dev"));
        let internal = &config.hosts[2];
        assert_eq!(internal.insecure, Some(true));
        assert!(internal.ca_file.as_ref().unwrap().ends_with("ca.pem"));
        assert!(internal.ca_file.as_ref().unwrap().is_absolute(), "relative to the file");
        assert_eq!(config.quotas.len(), 1);
        assert_eq!(config.quotas[0].budget.per_second(), 80.0);
        assert_eq!(load_text("").unwrap(), RegistryConfig::default());
    }

    #[test]
    fn bad_input_is_refused_at_its_position() {
        let cases = [
            ("hosts:\n- host: a\n  rate_limit: 5\n", "3:3", "unknown field"),
            (
                "hosts:\n- host: a\n  rate-limit: 0\n",
                "3:15",
                "rate-limit must be at least 1",
            ),
            ("hosts:\n- host: a\n  max-concurrency: -3\n", "3:20", ""),
            ("hosts:\n- host: a\n  burst: lots\n", "3:10", ""),
            ("hosts:\n- host: a/b\n", "2:9", "host pattern"),
            ("hosts:\n- host: a\n  quota: nope\n", "3:10", "no quota named \"nope\""),
            ("quotas:\n  ar: 0/s\n", "2:7", "never let a request through"),
            ("quotas:\n  ar: 80/hour\n", "2:7", "N/s or N/min"),
            ("hosts:\n- host: a\n  client-key: k.pem\n", "2:3", "go together"),
            ("proxies: []\n", "1:1", "unknown field"),
            ("hosts:\n- rate-limit: 5\n", "2:3", "host"),
        ];
        for (text, at, needle) in cases {
            let err = load_text(text).unwrap_err();
            assert!(err.starts_with(&format!("{at}: ")), "{text:?}: {err}");
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }
}
