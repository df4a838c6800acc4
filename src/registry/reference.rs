//! Registry names.
//!
//! A promotion manifest names a registry as `host[:port][/prefix]`, and images under it
//! by a path appended to the prefix (`us-central1-docker.pkg.dev/k8s-artifacts-prod/images`
//! plus `kubernetes/pause`). A registry may also be an OCI image-layout directory
//! (`oci:PATH` or `oci-layout://PATH`). Tags are checked where manifests are validated
//! (`manifest::validate`), not here.
use std::path::PathBuf;

use super::Error;

/// Where a manifest's registry name points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryName {
    /// A distribution-spec registry: `host[:port]` and a path prefix (may be empty).
    Remote { host: String, prefix: String },
    /// An OCI image-layout directory.
    Layout { path: PathBuf },
}

impl RegistryName {
    /// Parses `host[:port][/prefix]`, `oci:PATH` or `oci-layout://PATH`.
    pub fn parse(name: &str) -> Result<Self, Error> {
        let invalid = |message: &str| Error::InvalidReference {
            reference: name.to_string(),
            message: message.to_string(),
        };
        if let Some(path) = name.strip_prefix("oci-layout://").or_else(|| name.strip_prefix("oci:")) {
            if path.is_empty() {
                return Err(invalid("an OCI layout name needs a directory path"));
            }
            return Ok(RegistryName::Layout {
                path: PathBuf::from(path),
            });
        }
        let trimmed = name.trim_end_matches('/');
        let (host, prefix) = trimmed.split_once('/').unwrap_or((trimmed, ""));
        validate_host(host).map_err(invalid)?;
        if !prefix.is_empty() {
            validate_repository(prefix).map_err(invalid)?;
        }
        Ok(RegistryName::Remote {
            host: host.to_string(),
            prefix: prefix.to_string(),
        })
    }
}

/// Host names, IPv4/IPv6 literals and an optional port, as the distribution grammar allows.
fn validate_host(host: &str) -> Result<(), &'static str> {
    if host.is_empty() {
        return Err("empty registry host");
    }
    let (name, port) = split_host_port(host);
    if let Some(port) = port
        && port.parse::<u16>().is_err()
    {
        return Err("invalid port in registry host");
    }
    let ok = if let Some(v6) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !name.is_empty()
            && name.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
    };
    if ok { Ok(()) } else { Err("invalid registry host") }
}

/// Splits `host:port` and `[v6]:port`; the host keeps its brackets.
pub(crate) fn split_host_port(host: &str) -> (&str, Option<&str>) {
    if host.starts_with('[') {
        match host.find(']') {
            Some(end) => {
                let rest = &host[end + 1..];
                (&host[..=end], rest.strip_prefix(':'))
            }
            None => (host, None),
        }
    } else {
        match host.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host, None),
        }
    }
}

/// Whether requests to `host` may use plain HTTP without being asked: loopback only.
pub(crate) fn is_loopback(host: &str) -> bool {
    let (name, _) = split_host_port(host);
    let name = name.trim_start_matches('[').trim_end_matches(']');
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Repository path components: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, joined by `/`.
fn validate_repository(repo: &str) -> Result<(), &'static str> {
    if repo.len() > 255 {
        return Err("repository path longer than 255 characters");
    }
    for component in repo.split('/') {
        let b = component.as_bytes();
        let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
            return Err("repository components must start and end with [a-z0-9]");
        }
        let mut i = 0;
        while i < b.len() {
            if alnum(b[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < b.len() && !alnum(b[i]) {
                i += 1;
            }
            let sep = &component[start..i];
            let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
            if !ok {
                return Err("repository components may contain only [a-z0-9] separated by '.', '_', '__' or '-'");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(host: &str, prefix: &str) -> RegistryName {
        RegistryName::Remote {
            host: host.into(),
            prefix: prefix.into(),
        }
    }

    #[test]
    fn registry_names_with_prefixes_ports_and_layouts() {
        assert_eq!(
            RegistryName::parse("us-central1-docker.pkg.dev/k8s-artifacts-prod/images").unwrap(),
            remote("us-central1-docker.pkg.dev", "k8s-artifacts-prod/images")
        );
        assert_eq!(
            RegistryName::parse("127.0.0.1:5000").unwrap(),
            remote("127.0.0.1:5000", "")
        );
        assert_eq!(
            RegistryName::parse("gcr.io/k8s-staging-foo/").unwrap(),
            remote("gcr.io", "k8s-staging-foo")
        );
        assert_eq!(RegistryName::parse("[::1]:5000/a").unwrap(), remote("[::1]:5000", "a"));
        assert_eq!(
            RegistryName::parse("oci:./mirror").unwrap(),
            RegistryName::Layout {
                path: "./mirror".into()
            }
        );
        assert_eq!(
            RegistryName::parse("oci-layout:///srv/m").unwrap(),
            RegistryName::Layout { path: "/srv/m".into() }
        );
        for bad in ["", "oci:", "host:port", "host/UPPER", "host//a", "-bad.io/x", "h/a..b"] {
            assert!(RegistryName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn loopback_hosts() {
        for h in ["127.0.0.1:5000", "127.3.2.1", "localhost:1", "[::1]:5000", "LOCALHOST"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["10.0.0.1:5000", "gcr.io", "localhost.example.com"] {
            assert!(!is_loopback(h), "{h}");
        }
    }
}
