//! Per-host settings: which hosts a rule or a quota applies to, and what one host ends up
//! with once the flags, the settings file (`--registry-config`) and the defaults are
//! resolved. Pure data; the CLI loads the file, the gate and the transport apply the result.
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::ClientOptions;

/// A glob over registry hosts (`host[:port]`): `*` matches any run of characters, `?` one
/// character; everything else matches itself, case-insensitively (host names are).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern(String);

impl HostPattern {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, host: &str) -> bool {
        glob(self.0.as_bytes(), host.to_ascii_lowercase().as_bytes())
    }
}

impl FromStr for HostPattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("an empty host pattern".into());
        }
        // A host, a port, and the two wildcards: nothing that could smuggle a path or a
        // scheme into what is compared with host names.
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '*' | '?' | '_' | '[' | ']')))
        {
            return Err(format!(
                "host pattern {s:?} has {c:?}: use a host[:port] with * and ? wildcards"
            ));
        }
        Ok(Self(s.to_ascii_lowercase()))
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Iterative glob matching with backtracking to the last `*` (linear in practice, never
/// exponential).
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(c) if *c == b'?' || *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == b'*')
}

/// A budget of requests: `N/s` or `N/min`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub requests: u32,
    pub per: Duration,
}

impl Budget {
    pub fn per_second(&self) -> f64 {
        f64::from(self.requests) / self.per.as_secs_f64()
    }
}

impl FromStr for Budget {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a budget: write N/s or N/min with N a whole number of at least 1");
        let (n, unit) = s.trim().split_once('/').ok_or_else(bad)?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            _ => return Err(bad()),
        };
        let requests: u32 = n.trim().parse().map_err(|_| bad())?;
        if requests == 0 {
            return Err(format!("{s:?}: a budget of 0 would never let a request through"));
        }
        Ok(Self { requests, per })
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.per == Duration::from_secs(60) {
            write!(f, "{}/min", self.requests)
        } else {
            write!(f, "{}/s", self.requests)
        }
    }
}

/// A shared budget several hosts draw on, on top of their own controllers: a project-wide
/// quota enforced across regional hosts (Artifact Registry's "requests per project per
/// user per minute").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    pub name: String,
    pub budget: Budget,
    /// The hosts it covers: `--registry-quota PATTERN=N/s` names them by pattern; the
    /// settings file's quotas are joined by the hosts rules that name them.
    pub hosts: Option<HostPattern>,
}

impl Quota {
    /// `PATTERN=N/s` (or `N/min`), as `--registry-quota` takes it; the pattern names it.
    pub fn parse_flag(s: &str) -> Result<Self, String> {
        let (pattern, budget) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: write PATTERN=N/s, e.g. '*-docker.pkg.dev=80/s'"))?;
        let hosts: HostPattern = pattern.trim().parse()?;
        Ok(Self {
            name: hosts.to_string(),
            budget: budget.parse()?,
            hosts: Some(hosts),
        })
    }
}

/// A client certificate for mutual TLS: PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

/// Settings for the hosts a pattern matches (one entry of the settings file's `hosts`).
/// Every field is optional; for each, the first rule that matches a host and sets it wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRule {
    pub hosts: HostPattern,
    /// Ceiling on requests per second.
    pub rate_limit: Option<u32>,
    pub burst: Option<u32>,
    /// Ceiling on requests in flight.
    pub max_concurrency: Option<usize>,
    /// Name of a quota (`quotas` in the file) the hosts share.
    pub quota: Option<String>,
    /// Plain HTTP allowed, as `--insecure-registry`.
    pub insecure: Option<bool>,
    pub ca_file: Option<PathBuf>,
    pub client_certificate: Option<ClientCertificate>,
}

impl HostRule {
    pub fn new(hosts: HostPattern) -> Self {
        Self {
            hosts,
            rate_limit: None,
            burst: None,
            max_concurrency: None,
            quota: None,
            insecure: None,
            ca_file: None,
            client_certificate: None,
        }
    }
}

/// What one host gets.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HostSettings {
    pub max_rate: Option<f64>,
    pub burst: u32,
    pub max_concurrency: usize,
    pub quota: Option<Quota>,
    pub plain_allowed: bool,
    /// TLS material of its own, when it differs from the run's (a client of its own).
    pub ca_file: Option<PathBuf>,
    pub client_certificate: Option<ClientCertificate>,
}

impl HostSettings {
    /// Whether this host needs an HTTP client of its own (other trust or a client
    /// certificate).
    pub(crate) fn own_tls(&self, options: &ClientOptions) -> bool {
        self.ca_file != options.ca_file || self.client_certificate.is_some()
    }
}

impl ClientOptions {
    /// Resolves `host`'s settings: for each, the first matching rule that sets it, else the
    /// run-wide value. A `--registry-quota` pattern that matches wins over a rule's quota.
    pub(crate) fn for_host(&self, host: &str) -> HostSettings {
        let rules: Vec<&HostRule> = self.hosts.iter().filter(|r| r.hosts.matches(host)).collect();
        fn first<'a, T: 'a>(rules: &[&'a HostRule], field: impl Fn(&'a HostRule) -> Option<T>) -> Option<T> {
            rules.iter().find_map(|r| field(r))
        }
        let quota = self
            .quotas
            .iter()
            .find(|q| q.hosts.as_ref().is_some_and(|p| p.matches(host)))
            .or_else(|| {
                let name = first(&rules, |r| r.quota.as_ref())?;
                self.quotas.iter().find(|q| &q.name == name)
            })
            .cloned();
        // `--insecure-registry` naming the host wins over a rule that says otherwise.
        let insecure = self.insecure_registries.iter().any(|h| h.eq_ignore_ascii_case(host))
            || first(&rules, |r| r.insecure).unwrap_or(false);
        HostSettings {
            max_rate: first(&rules, |r| r.rate_limit).or(self.rate_limit).map(f64::from),
            burst: first(&rules, |r| r.burst).unwrap_or(self.burst),
            max_concurrency: first(&rules, |r| r.max_concurrency).unwrap_or(self.max_concurrency),
            quota,
            plain_allowed: super::super::reference::is_loopback(host) || insecure,
            ca_file: first(&rules, |r| r.ca_file.clone()).or_else(|| self.ca_file.clone()),
            client_certificate: first(&rules, |r| r.client_certificate.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(s: &str) -> HostPattern {
        s.parse().unwrap()
    }

    #[test]
    fn globs_match_hosts() {
        let cases = [
            ("*-docker.pkg.dev", "us-central1-docker.pkg.dev", true),
            ("*-docker.pkg.dev", "docker.pkg.dev", false),
            ("*-docker.pkg.dev", "us-docker.pkg.dev.evil", false),
            ("registry.k8s.io", "REGISTRY.k8s.io", true),
            ("127.0.0.1:*", "127.0.0.1:5000", true),
            ("127.0.0.1:50?0", "127.0.0.1:5010", true),
            ("127.0.0.1:50?0", "127.0.0.1:50100", false),
            ("*", "anything:1", true),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
        ];
        for (p, host, expected) in cases {
            assert_eq!(pattern(p).matches(host), expected, "{p} vs {host}");
        }
        assert!("".parse::<HostPattern>().is_err());
        assert!("host/path".parse::<HostPattern>().is_err());
        assert!("https://host".parse::<HostPattern>().is_err());
    }

    #[test]
    fn budgets_per_second_and_per_minute() {
        assert_eq!(
            "80/s".parse::<Budget>(),
            Ok(Budget {
                requests: 80,
                per: Duration::from_secs(1)
            })
        );
        let per_minute: Budget = "4800/min".parse().unwrap();
        assert_eq!(per_minute.per_second(), 80.0);
        assert_eq!(per_minute.to_string(), "4800/min");
        for bad in ["0/s", "-5/s", "80", "80/h", "x/s", "1.5/s", ""] {
            assert!(bad.parse::<Budget>().is_err(), "{bad}");
        }
        let flag = Quota::parse_flag("*-docker.pkg.dev=80/s").unwrap();
        assert_eq!(flag.name, "*-docker.pkg.dev");
        assert!(flag.hosts.unwrap().matches("europe-docker.pkg.dev"));
        assert!(Quota::parse_flag("*-docker.pkg.dev").is_err());
        assert!(Quota::parse_flag("=80/s").is_err());
    }

    #[test]
    fn the_first_matching_rule_that_sets_a_field_wins_then_the_run_wide_value() {
        let mut specific = HostRule::new(pattern("eu-docker.pkg.dev"));
        specific.max_concurrency = Some(4);
        let mut general = HostRule::new(pattern("*-docker.pkg.dev"));
        general.rate_limit = Some(200);
        general.max_concurrency = Some(64);
        general.quota = Some("ar".into());
        let options = ClientOptions {
            hosts: vec![specific, general],
            quotas: vec![Quota {
                name: "ar".into(),
                budget: "80/s".parse().unwrap(),
                hosts: None,
            }],
            ..ClientOptions::default()
        };
        let eu = options.for_host("eu-docker.pkg.dev");
        assert_eq!((eu.max_rate, eu.max_concurrency, eu.burst), (Some(200.0), 4, 16));
        assert_eq!(eu.quota.as_ref().map(|q| q.name.as_str()), Some("ar"));
        let other = options.for_host("registry.k8s.io");
        assert_eq!((other.max_rate, other.max_concurrency, other.quota), (None, 32, None));
        assert!(!other.plain_allowed);
        assert!(options.for_host("127.0.0.1:5000").plain_allowed);

        // --insecure-registry wins over a rule that says no.
        let mut strict = HostRule::new(pattern("mirror.internal"));
        strict.insecure = Some(false);
        let flagged = ClientOptions {
            hosts: vec![strict],
            insecure_registries: vec!["mirror.internal".into()],
            ..ClientOptions::default()
        };
        assert!(flagged.for_host("mirror.internal").plain_allowed);
        assert!(!flagged.for_host("other.internal").plain_allowed);

        // A --registry-quota pattern wins over a rule's quota.
        let mut with_flag = options.clone();
        with_flag.quotas.push(Quota::parse_flag("eu-*=10/s").unwrap());
        assert_eq!(
            with_flag.for_host("eu-docker.pkg.dev").quota.map(|q| q.name),
            Some("eu-*".into())
        );
    }
}
