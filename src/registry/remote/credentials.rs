//! Registry credentials from a docker `config.json` (`auths`, `credHelpers`, `credsStore`,
//! identity tokens), read through the `docker_credential` crate.
//!
//! Credential helpers are external programs, so the lookup is blocking and runs in
//! `spawn_blocking`. Nothing here ever prints a secret: the `Debug` impl redacts.
use std::fmt;
use std::path::PathBuf;

use docker_credential::{CredentialRetrievalError, DockerCredential};

/// A secret for one registry host.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Credential {
    /// Username and password: sent as Basic auth, or to the token realm.
    Basic { username: String, password: String },
    /// An OAuth2 refresh token (`identitytoken`), exchanged at the token realm by POST.
    IdentityToken(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Basic { username, .. } => {
                write!(f, "Basic {{ username: {username:?}, password: <redacted> }}")
            }
            Credential::IdentityToken(_) => write!(f, "IdentityToken(<redacted>)"),
        }
    }
}

/// Looks up the credential for `host` in `config_dir/config.json` (or `$DOCKER_CONFIG`,
/// then `~/.docker`, when `config_dir` is `None`).
///
/// `Ok(None)` means "anonymous": no config file, or nothing configured for this host.
/// A broken config or a failing credential helper is an error, so that a typo does not
/// silently turn into an anonymous run that fails much later with a bare 401.
pub(crate) async fn lookup(config_dir: Option<PathBuf>, host: String) -> Result<Option<Credential>, String> {
    let joined = tokio::task::spawn_blocking(move || lookup_blocking(config_dir, &host)).await;
    joined.map_err(|e| format!("credential lookup task failed: {e}"))?
}

fn lookup_blocking(config_dir: Option<PathBuf>, host: &str) -> Result<Option<Credential>, String> {
    let result = match &config_dir {
        Some(dir) => {
            let path = dir.join("config.json");
            match std::fs::File::open(&path) {
                Ok(file) => docker_credential::get_credential_from_reader(std::io::BufReader::new(file), host),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
            }
        }
        None => docker_credential::get_credential(host),
    };
    match result {
        Ok(DockerCredential::UsernamePassword(username, password)) => {
            Ok(Some(Credential::Basic { username, password }))
        }
        Ok(DockerCredential::IdentityToken(token)) => Ok(Some(Credential::IdentityToken(token))),
        Err(CredentialRetrievalError::NoCredentialConfigured | CredentialRetrievalError::ConfigNotFound) => Ok(None),
        // Without an explicit directory a missing default file is normal.
        Err(CredentialRetrievalError::ConfigReadError) if config_dir.is_none() && !default_config_exists() => Ok(None),
        // The crate's messages name the helper and the failure, never the secret.
        Err(e) => Err(format!("docker credentials for {host}: {e}")),
    }
}

fn default_config_exists() -> bool {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")));
    dir.is_some_and(|d| d.join("config.json").exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_config(json: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), json).unwrap();
        dir
    }

    #[tokio::test]
    async fn reads_auths_identity_tokens_and_absence() {
        // "promoter:s3cret" in base64.
        let dir = write_config(
            r#"{"auths":{"127.0.0.1:5005":{"auth":"cHJvbW90ZXI6czNjcmV0"},
                "https://reg.example/v1/":{"identitytoken":"refresh-abc"}}}"#,
        );
        let path = Some(dir.path().to_path_buf());
        let basic = lookup(path.clone(), "127.0.0.1:5005".into()).await.unwrap().unwrap();
        assert_eq!(
            basic,
            Credential::Basic {
                username: "promoter".into(),
                password: "s3cret".into()
            }
        );
        let token = lookup(path.clone(), "reg.example".into()).await.unwrap().unwrap();
        assert_eq!(token, Credential::IdentityToken("refresh-abc".into()));
        assert_eq!(lookup(path, "other.example".into()).await.unwrap(), None);

        let empty = tempfile::tempdir().unwrap();
        assert_eq!(lookup(Some(empty.path().into()), "x.io".into()).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_broken_config_or_missing_helper_is_an_error_without_secrets() {
        let dir = write_config("{not json");
        assert!(lookup(Some(dir.path().into()), "h.io".into()).await.is_err());

        let dir = write_config(
            r#"{"credHelpers":{"h.io":"kpromo-test-absent-helper"},"auths":{"h.io":{"auth":"dTpzM2NyZXQ="}}}"#,
        );
        let err = lookup(Some(dir.path().into()), "h.io".into()).await.unwrap_err();
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn debug_redacts_secrets() {
        let basic = Credential::Basic {
            username: "u".into(),
            password: "hunter2".into(),
        };
        let token = Credential::IdentityToken("tok-123".into());
        let shown = format!("{basic:?} {token:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("tok-123"), "{shown}");
        assert!(shown.contains("\"u\""));
    }
}
