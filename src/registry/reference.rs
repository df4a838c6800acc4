//! Registry and repository names: one grammar, checked offline (`kpromo manifest
//! validate`), when a run opens its registries, where edges are built, and again by each
//! backend before a name becomes a URL or a directory.
//!
//! A promotion manifest names a registry as `host[:port][/prefix]`, and images under it
//! by a path appended to the prefix (`us-central1-docker.pkg.dev/k8s-artifacts-prod/images`
//! plus `kubernetes/pause`). A registry may also be an OCI image-layout directory
//! (`oci:PATH` or `oci-layout://PATH`). Tags are checked where manifests are validated
//! (`manifest::validate`), not here.
//!
//! Why a grammar and not "whatever the registry accepts": in registry.k8s.io every project
//! owns one path prefix, and an image name such as `../other-project/img` would write
//! outside it (URLs resolve `..`). Path components follow the distribution reference
//! grammar (`[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`), which has no `.` or `..` component, so
//! a valid image name can only ever extend its registry's path.
use std::path::PathBuf;

/// Longest repository path (registry prefix + `/` + image), as distribution enforces.
pub const MAX_REPOSITORY_LEN: usize = 255;
/// Longest DNS host name.
const MAX_HOST_LEN: usize = 253;
/// Longest DNS label.
const MAX_LABEL_LEN: usize = 63;
/// Longest registry name worth reading: a host, a port and a whole repository path.
const MAX_REGISTRY_NAME_LEN: usize = MAX_HOST_LEN + ":65535/".len() + MAX_REPOSITORY_LEN;
/// Longest tag the registry spec allows (`^\w[\w.-]{0,127}$`).
const MAX_TAG_LEN: usize = 128;
/// How much of a refused name a message quotes: a 100,000-character name is not echoed.
const QUOTED_CHARS: usize = 80;

/// Where a manifest's registry name points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryName {
    /// A distribution-spec registry: `host[:port]` and a path prefix (may be empty).
    Remote { host: String, prefix: String },
    /// An OCI image-layout directory.
    Layout { path: PathBuf },
}

/// Why a name is refused. The text says what is wrong and how to write it instead; it
/// never repeats more than [`QUOTED_CHARS`] characters of the name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NameError(String);

impl NameError {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// `name` quoted for a message: escaped (a NUL shows as `\0`) and cut to [`QUOTED_CHARS`].
pub fn quoted(name: &str) -> String {
    let count = name.chars().count();
    if count <= QUOTED_CHARS {
        return format!("{name:?}");
    }
    let head: String = name.chars().take(QUOTED_CHARS).collect();
    format!("{head:?}… ({count} characters)")
}

impl RegistryName {
    /// Parses `host[:port][/prefix]`, `oci:PATH` or `oci-layout://PATH`. A trailing `/`
    /// is dropped.
    pub fn parse(name: &str) -> Result<Self, NameError> {
        if name.is_empty() {
            return Err(NameError::new("empty registry name"));
        }
        if let Some(path) = name.strip_prefix("oci-layout://").or_else(|| name.strip_prefix("oci:")) {
            if path.is_empty() {
                return Err(NameError::new("an OCI layout name needs a directory path"));
            }
            if path.contains('\0') {
                return Err(NameError::new("an OCI layout path cannot contain a NUL character"));
            }
            return Ok(RegistryName::Layout {
                path: PathBuf::from(path),
            });
        }
        let length = name.chars().count();
        if length > MAX_REGISTRY_NAME_LEN {
            return Err(NameError::new(format!(
                "{length} characters long; a registry name is at most {MAX_REGISTRY_NAME_LEN} \
                 (a {MAX_HOST_LEN}-character host, a port and a {MAX_REPOSITORY_LEN}-character path)"
            )));
        }
        if let Some((scheme, _)) = name.split_once("://") {
            return Err(NameError::new(format!(
                "a registry name has no scheme: drop {:?} (HTTPS is always used; plain HTTP only \
                 for loopback hosts and --insecure-registry)",
                format!("{scheme}://")
            )));
        }
        check_characters(name)?;
        if name.contains('@') {
            return Err(NameError::new(
                "'@' has no place in a registry name: credentials come from the docker config, \
                 and digests belong in the images list",
            ));
        }
        if let Some(c) = name.chars().find(|c| matches!(c, '?' | '#')) {
            return Err(NameError::new(format!(
                "a registry name has no query or fragment ({c:?})"
            )));
        }
        let trimmed = name.strip_suffix('/').unwrap_or(name);
        let (host, prefix) = trimmed.split_once('/').unwrap_or((trimmed, ""));
        check_host(host)?;
        if !prefix.is_empty() {
            check_repository(prefix).map_err(|e| NameError::new(format!("path {}: {e}", quoted(prefix))))?;
        }
        Ok(RegistryName::Remote {
            host: host.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// The path prefix inside the registry (empty for a layout or a bare host).
    pub fn prefix(&self) -> &str {
        match self {
            RegistryName::Remote { prefix, .. } => prefix,
            RegistryName::Layout { .. } => "",
        }
    }

    /// The repository path of `image` under this registry: the prefix, `/`, the image.
    /// The image must be a valid image name, and the whole path within
    /// [`MAX_REPOSITORY_LEN`]; a layout also refuses a component named `blobs` (see
    /// [`check_layout_repository`]). What comes back always starts with the prefix and
    /// has no `.` or `..` component: it cannot leave the registry's path.
    pub fn repository(&self, image: &str) -> Result<String, NameError> {
        check_image_name(image)?;
        let prefix = self.prefix();
        let repository = if prefix.is_empty() {
            image.to_string()
        } else {
            format!("{prefix}/{image}")
        };
        if repository.len() > MAX_REPOSITORY_LEN {
            return Err(NameError::new(format!(
                "the repository path would be {} characters long; the limit is {MAX_REPOSITORY_LEN} \
                 (registry path and image name together)",
                repository.len()
            )));
        }
        if let RegistryName::Layout { .. } = self {
            check_layout_repository(&repository)?;
        }
        Ok(repository)
    }
}

/// An image name: one or more path components of the distribution grammar, joined by `/`,
/// at most [`MAX_REPOSITORY_LEN`] characters.
pub fn check_image_name(image: &str) -> Result<(), NameError> {
    if image.is_empty() {
        return Err(NameError::new("empty image name"));
    }
    check_characters(image)?;
    check_repository(image)
}

/// A repository path as a registry sees it (prefix and image together): components of
/// the distribution grammar, at most [`MAX_REPOSITORY_LEN`] characters. Backends call this
/// before a name becomes a URL or a directory.
pub fn check_repository(repo: &str) -> Result<(), NameError> {
    if repo.len() > MAX_REPOSITORY_LEN {
        return Err(NameError::new(format!(
            "{} characters long; a repository path is at most {MAX_REPOSITORY_LEN}",
            repo.chars().count()
        )));
    }
    if repo.starts_with('/') {
        return Err(NameError::new("starts with '/': a path is relative to its registry"));
    }
    for component in repo.split('/') {
        check_component(component)?;
    }
    Ok(())
}

/// [`check_repository`], and no component after the first named `blobs`: in a layout
/// directory it would be the parent repository's blob store.
pub fn check_layout_repository(repo: &str) -> Result<(), NameError> {
    check_repository(repo)?;
    if repo.split('/').skip(1).any(|c| c == "blobs") {
        return Err(NameError::new(
            "a component named \"blobs\" would collide with the parent repository's blob store",
        ));
    }
    Ok(())
}

/// One path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn check_component(component: &str) -> Result<(), NameError> {
    match component {
        "" => {
            return Err(NameError::new(
                "empty path component (a leading, trailing or doubled '/')",
            ));
        }
        "." | ".." => {
            return Err(NameError::new(format!(
                "{component:?} is not a path component: a name cannot climb out of its registry's path"
            )));
        }
        _ => {}
    }
    if component.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(NameError::new(format!(
            "{} has upper-case letters: repository names are lower case",
            quoted(component)
        )));
    }
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let bytes = component.as_bytes();
    let mut valid = alnum(bytes[0]) && alnum(bytes[bytes.len() - 1]);
    let mut i = 0;
    while valid && i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        valid = separator == "." || separator == "_" || separator == "__" || separator.bytes().all(|c| c == b'-');
    }
    if valid {
        Ok(())
    } else {
        Err(NameError::new(format!(
            "{} is not a valid path component: lower-case letters and digits, separated by \
             '.', '_', '__' or dashes, starting and ending with a letter or digit",
            quoted(component)
        )))
    }
}

/// True when `tag` matches `^\w[\w.-]{0,127}$` with ASCII `\w`, as Go's regexp does: no
/// `/`, and never `.` or `..`, so a tag cannot change the path of a URL either.
pub fn is_valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    match bytes.split_first() {
        Some((first, rest)) => {
            word(first) && bytes.len() <= MAX_TAG_LEN && rest.iter().all(|b| word(b) || *b == b'.' || *b == b'-')
        }
        None => false,
    }
}

/// Whitespace, control and non-ASCII characters, named before any other rule so that the
/// message says what is really wrong.
fn check_characters(name: &str) -> Result<(), NameError> {
    match name
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || !c.is_ascii())
    {
        None => Ok(()),
        Some(c) if c.is_whitespace() => Err(NameError::new(format!("contains whitespace ({c:?})"))),
        Some(c) if c.is_control() => Err(NameError::new(format!("contains a control character ({c:?})"))),
        Some(c) => Err(NameError::new(format!(
            "contains the non-ASCII character {c:?}: names are ASCII (write an internationalised \
             host name in its xn-- form)"
        ))),
    }
}

/// Host names (lower case), IPv4 literals, bracketed IPv6 literals, and a port 1–65535.
fn check_host(host: &str) -> Result<(), NameError> {
    if host.is_empty() {
        return Err(NameError::new("empty registry host"));
    }
    let (name, port) = split_host_port(host);
    if let Some(port) = port {
        let valid = !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u32>().is_ok_and(|p| (1..=65535).contains(&p));
        if !valid {
            return Err(NameError::new(format!(
                "invalid port {}: a port is a number from 1 to 65535",
                quoted(port)
            )));
        }
    }
    if let Some(v6) = name.strip_prefix('[') {
        return match v6.strip_suffix(']').map(str::parse::<std::net::Ipv6Addr>) {
            Some(Ok(_)) => Ok(()),
            _ => Err(NameError::new(format!("invalid IPv6 address {}", quoted(name)))),
        };
    }
    if name.len() > MAX_HOST_LEN {
        return Err(NameError::new(format!(
            "the host is {} characters long; a host name is at most {MAX_HOST_LEN}",
            name.len()
        )));
    }
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(NameError::new(format!(
            "host {} has upper-case letters: write host names in lower case, so one registry \
             has one name",
            quoted(name)
        )));
    }
    for label in name.split('.') {
        let valid = !label.is_empty()
            && label.len() <= MAX_LABEL_LEN
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(NameError::new(format!(
                "invalid host {}: labels of 1 to {MAX_LABEL_LEN} lower-case letters, digits and \
                 inner dashes, separated by dots",
                quoted(name)
            )));
        }
    }
    Ok(())
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
    name.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

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

    /// The names an outside tester found `manifest validate` accepting and a run refusing
    /// (issue 14), and their messages: each says what is wrong.
    #[test]
    fn hostile_registry_names_are_refused_with_what_is_wrong() {
        let long = format!("gcr.io/{}", "a".repeat(100_000));
        let cases: [(&str, &str); 16] = [
            ("http://gcr.io/proj", "a registry name has no scheme: drop \"http://\""),
            (
                "https://gcr.io/proj",
                "a registry name has no scheme: drop \"https://\"",
            ),
            ("user:pw@gcr.io/proj", "'@' has no place in a registry name"),
            (
                "gcr.io:99999/proj",
                "invalid port \"99999\": a port is a number from 1 to 65535",
            ),
            ("gcr.io:5x02/proj", "invalid port \"5x02\""),
            ("gcr.io:0/proj", "invalid port \"0\""),
            ("gcr.io/proj?x=1", "a registry name has no query or fragment ('?')"),
            ("gcr.io/proj#frag", "a registry name has no query or fragment ('#')"),
            ("gcr.io/my proj", "contains whitespace (' ')"),
            ("gcr.io/proj\0", "contains a control character ('\\0')"),
            ("gcr.io/../proj", "path \"../proj\": \"..\" is not a path component"),
            ("gcr.io/Proj", "path \"Proj\": \"Proj\" has upper-case letters"),
            ("GCR.io/proj", "host \"GCR.io\" has upper-case letters"),
            ("gcr.iö/proj", "contains the non-ASCII character 'ö'"),
            (&long, "100007 characters long; a registry name is at most"),
            ("gcr.io:+443/proj", "invalid port \"+443\""),
        ];
        for (name, message) in cases {
            let err = RegistryName::parse(name).unwrap_err().to_string();
            assert!(err.starts_with(message), "{}: {err}", quoted(name));
            assert!(
                err.len() < 400,
                "the message quotes at most a little of the name: {err}"
            );
        }
    }

    #[test]
    fn image_names_follow_the_repository_grammar() {
        for good in ["pause", "kubernetes/pause", "a_b/c__d/e---f", "x.y/z", "0"] {
            assert_eq!(check_image_name(good), Ok(()), "{good}");
        }
        let cases = [
            ("../proj01/img000", "\"..\" is not a path component"),
            ("a/./b", "\".\" is not a path component"),
            ("/abs", "starts with '/'"),
            ("a//b", "empty path component"),
            ("a/", "empty path component"),
            ("Img", "\"Img\" has upper-case letters"),
            ("a b", "contains whitespace"),
            ("-x", "\"-x\" is not a valid path component"),
            ("a..b", "\"a..b\" is not a valid path component"),
            ("a%2e%2e", "\"a%2e%2e\" is not a valid path component"),
        ];
        for (image, message) in cases {
            let err = check_image_name(image).unwrap_err().to_string();
            assert!(err.contains(message), "{image}: {err}");
        }
        let long = "a".repeat(300);
        assert!(check_image_name(&long).unwrap_err().to_string().contains("at most 255"));
    }

    #[test]
    fn repositories_stay_under_the_registry_path_and_within_255() {
        let name = RegistryName::parse("gcr.io/proj00").unwrap();
        assert_eq!(name.repository("img").unwrap(), "proj00/img");
        assert!(name.repository("../proj01/img000").is_err());
        let err = name.repository(&"a".repeat(250)).unwrap_err().to_string();
        assert!(err.contains("would be 257 characters long; the limit is 255"), "{err}");
        let layout = RegistryName::parse("oci:/srv/m").unwrap();
        assert_eq!(layout.repository("a/b").unwrap(), "a/b");
        assert!(
            layout
                .repository("a/blobs")
                .unwrap_err()
                .to_string()
                .contains("blob store")
        );
        assert!(layout.repository("blobs").is_ok(), "only below another repository");
    }

    #[test]
    fn loopback_hosts() {
        for h in [
            "127.0.0.1:5000",
            "127.3.2.1",
            "localhost:1",
            "[::1]:5000",
            "LOCALHOST",
            "[::ffff:127.0.0.1]:5000",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["10.0.0.1:5000", "gcr.io", "localhost.example.com", "[::ffff:10.0.0.1]"] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    /// Any string with the characters that make trouble in names and URLs.
    fn hostile_path() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[a-zA-Z0-9._/%:@?# -]{0,40}|(\\.\\./)+[a-z]{1,5}|[a-z]{1,4}(/\\.\\.){1,3}")
            .expect("valid regex")
    }

    proptest! {
        /// Whatever the name, an accepted repository extends its registry's path, and a
        /// URL built from it (which resolves dot segments) stays under `/v2/<prefix>/`.
        #[test]
        fn accepted_repositories_never_leave_their_registry(prefix in "[a-z0-9]{1,6}(/[a-z0-9]{1,6}){0,2}", image in hostile_path()) {
            let name = RegistryName::parse(&format!("registry.example/{prefix}")).unwrap();
            if let Ok(repository) = name.repository(&image) {
                let expected_start = format!("{prefix}/");
                prop_assert!(repository.starts_with(&expected_start));
                let url = url::Url::parse("https://registry.example/").unwrap()
                    .join(&format!("/v2/{repository}/tags/list")).unwrap();
                prop_assert_eq!(url.path(), format!("/v2/{repository}/tags/list"));
                prop_assert!(repository.split('/').all(|c| c != ".." && c != "." && !c.is_empty()));
            }
        }

        #[test]
        fn no_name_panics_the_parsers(name in any::<String>()) {
            let _ = RegistryName::parse(&name);
            let _ = check_image_name(&name);
            let _ = quoted(&name);
        }

        /// The component checker is the distribution grammar's regular expression.
        #[test]
        fn components_equal_the_distribution_regex(component in "[a-zA-Z0-9._-]{1,12}") {
            let re = regex::Regex::new(r"^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$").unwrap();
            prop_assert_eq!(check_component(&component).is_ok(), re.is_match(&component));
        }
    }
}
